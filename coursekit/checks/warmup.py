"""Notebook 00's warm-up exercise: normalise point clouds to the unit sphere."""

from __future__ import annotations

import torch

from ..geometry.normalize import normalize_unit_sphere
from .core import Case, Exercise, Mistake


def _cases(gen: torch.Generator) -> list[Case]:
    # Clouds off-centre, anisotropic and of different sizes, so that every mistake shows.
    def cloud(b: int, n: int) -> torch.Tensor:
        scale = torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
        shift = torch.randn(b, 1, 3, generator=gen, dtype=torch.float64) * 4
        size = torch.rand(b, 1, 1, generator=gen, dtype=torch.float64) * 5 + 0.5
        return torch.randn(b, n, 3, generator=gen, dtype=torch.float64) * scale * size + shift

    return [
        Case("one cloud of 50 points", (cloud(1, 50),)),
        Case("a batch of 3 clouds of 40 points", (cloud(3, 40),), grad=(0,)),
        Case("a batch of 2 clouds of 7 points", (cloud(2, 7),)),
    ]


def _centre_by_bbox(p):
    c = (p.amax(1, keepdim=True) + p.amin(1, keepdim=True)) / 2
    q = p - c
    return q / q.norm(dim=-1).amax(1, keepdim=True).unsqueeze(-1)


def _mean_radius(p):
    q = p - p.mean(1, keepdim=True)
    return q / q.norm(dim=-1).mean(1, keepdim=True).unsqueeze(-1)


def _batch_radius(p):
    q = p - p.mean(1, keepdim=True)
    return q / q.norm(dim=-1).max()


def _not_centred(p):
    return p / p.norm(dim=-1).amax(1, keepdim=True).unsqueeze(-1)


def _mean_over_batch(p):
    q = p - p.mean(0, keepdim=True)
    return q / q.norm(dim=-1).amax(1, keepdim=True).unsqueeze(-1)


def _per_axis(p):
    q = p - p.mean(1, keepdim=True)
    return q / q.abs().amax(1, keepdim=True)


EXERCISES = (
    Exercise(
        name="warmup.normalize_unit_sphere",
        points=1,
        reference=normalize_unit_sphere,
        make_cases=_cases,
        what="normalised cloud",
        mistakes=(
            Mistake("you centred on the bounding-box centre; centre on the centroid (the mean of the points)", _centre_by_bbox),
            Mistake("you divided by the mean distance to the centre; divide by the largest, so the farthest point lands on radius 1", _mean_radius),
            Mistake("you used one radius for the whole batch; each cloud needs its own (reduce over dim=1, not over everything)", _batch_radius),
            Mistake("you did not subtract the centroid before scaling", _not_centred),
            Mistake("you averaged over the batch axis (dim=0); the centroid is the mean over the points (dim=1)", _mean_over_batch),
            Mistake("you scaled each axis separately; scale by the Euclidean norm so the shape keeps its proportions", _per_axis),
        ),
    ),
)
