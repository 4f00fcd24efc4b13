"""Notebook 03's exercises on the view and grid methods: view pooling (MVCNN) and the X-ray projection."""

from __future__ import annotations

import torch

from ..geometry.xray import xray_projection
from ..nn.view_pooling import view_pool
from .core import Case, Exercise, Mistake

_DIMS = {"z": 2, "y": 3, "x": 4}


# ---------------------------------------------------------------- view pooling

def _view_cases(gen: torch.Generator) -> list[Case]:
    # B, V, C all different and values of both signs, so every wrong axis or reduction shows.
    def features(b: int, v: int, c: int) -> torch.Tensor:
        return torch.randn(b, v, c, generator=gen, dtype=torch.float64) * 2 - 0.5

    return [
        Case("a batch of 3 shapes, 12 views, 5 channels", (features(3, 12, 5),)),
        Case("a batch of 2 shapes, 4 views, 7 channels", (features(2, 4, 7),), grad=(0,)),
        Case("one shape, 20 views, 3 channels", (features(1, 20, 3),)),
    ]


def _view_mean(f):
    return f.mean(1)


def _view_sum(f):
    return f.sum(1)


def _max_over_channels(f):
    return f.amax(2)


def _max_over_batch(f):
    return f.amax(0)


def _max_with_indices(f):
    return torch.max(f, dim=1)


# ---------------------------------------------------------------- X-ray projection

def _xray_cases(gen: torch.Generator) -> list[Case]:
    # Non-cubic grids (D, H, W all different) and non-binary values: a wrong axis changes the shape,
    # a max or a mean changes the values.
    def grid(b: int, d: int, h: int, w: int) -> torch.Tensor:
        occupied = torch.rand(b, 1, d, h, w, generator=gen) < 0.4
        return occupied.double() * torch.rand(b, 1, d, h, w, generator=gen, dtype=torch.float64).add(0.5)

    return [
        Case("a batch of 2 grids of 4x5x6, along z", (grid(2, 4, 5, 6), "z")),
        Case("a batch of 2 grids of 4x5x6, along x", (grid(2, 4, 5, 6), "x")),
        Case("a batch of 3 grids of 6x3x5, along y", (grid(3, 6, 3, 5), "y"), grad=(0,)),
    ]


def _xray_max(occ, axis):
    return occ.amax(_DIMS[axis])


def _xray_mean(occ, axis):
    return occ.mean(_DIMS[axis])


def _xray_xyz_order(occ, axis):
    return occ.sum({"x": 2, "y": 3, "z": 4}[axis])


def _xray_no_channel(occ, axis):
    return occ[:, 0].sum(_DIMS[axis] - 1)


def _xray_reference(occupancy: torch.Tensor, axis: str) -> torch.Tensor:
    return xray_projection(occupancy, axis)


EXERCISES = (
    Exercise(
        name="classification.view_pooling",
        points=2,
        reference=view_pool,
        make_cases=_view_cases,
        what="pooled descriptor",
        mistakes=(
            Mistake("you averaged over the views; view pooling is an element-wise max (torch.amax over dim=1)", _view_mean),
            Mistake("you summed over the views; view pooling is an element-wise max over dim=1", _view_sum),
            Mistake("you took the max over the channels (dim=2); pool over the views, dim=1 of (B, V, C)", _max_over_channels),
            Mistake("you took the max over the batch (dim=0); each shape pools its own views, dim=1", _max_over_batch),
            Mistake("torch.max(x, dim=1) returns (values, indices); return only the values (or use torch.amax)", _max_with_indices),
        ),
    ),
    Exercise(
        name="classification.xray",
        points=1,
        reference=_xray_reference,
        make_cases=_xray_cases,
        what="X-ray image",
        mistakes=(
            Mistake("you took the maximum along the ray; an X-ray image sums the occupancy along it", _xray_max),
            Mistake("you averaged along the ray; sum it (the X-ray counts the occupied cells)", _xray_mean),
            Mistake("wrong axis: the grid is (B, 1, D, H, W) with D <- z, H <- y, W <- x, so 'z' is dim 2 and 'x' is dim 4",
                    _xray_xyz_order),
            Mistake("you dropped the channel axis; keep (B, 1, ...) by summing dim 2, 3 or 4 of the 5-D grid", _xray_no_channel),
        ),
    ),
)
