r"""PointNet++ set abstraction: sample anchor points, find their neighbourhoods, apply a local operator.

Qi, Yi, Su, Guibas, "PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space", NeurIPS 2017, Sec. 3.2. One set abstraction level turns ``N`` points into ``M < N``
centres with richer features, in three steps (the slide's "Repeat: sample anchor points, find
neighborhood of anchor points, apply PointNet in each neighborhood to mimic convolution"):

1. **Sampling**: farthest point sampling picks the ``M`` centres
   (:func:`~coursekit.geometry.sampling.farthest_point_sample`).
2. **Grouping**: ball query (up to ``S`` points within radius ``r``: fixed region scale, "more
   stable features") or kNN (``S`` nearest: faster, region size follows the density)
   (:func:`~coursekit.geometry.neighbors.ball_query`, :func:`~coursekit.geometry.neighbors.knn`).
3. **Local operator** on each region: PointNet++'s :class:`MiniPointNet` on coordinates
   relative to the centre; RS-CNN, PointConv, KPConv and PCNN plug their own convolution
   into the same slot (all share the call ``conv(points, features, centres, idx, valid)``).

Multi-scale grouping (MSG) runs several (radius, S, operator) scales on the same centres and
concatenates their features; single-scale grouping (SSG) is MSG with one scale.

Order of the points
    The original FPS starts at index 0 and ball query keeps the first ``S`` in-ball points
    in **index order**, so PointNet++ is not exactly invariant to a permutation of its input.
    :func:`sample_centres` therefore defaults to a permutation-invariant start (the point
    farthest from the centroid; ``start=0`` restores the original). The in-ball selection
    keeps the original rule: the layer is exactly permutation-invariant when no ball holds more
    than ``S`` points (or with kNN grouping), and otherwise depends on the order only through
    which ``S`` of the in-ball points are kept.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..geometry.neighbors import ball_query, group, knn
from ..geometry.sampling import farthest_point_sample
from ..geometry.validate import check_points
from .mlp import SharedMLP


def sample_centres(points: torch.Tensor, n_centres: int, start: int | str = "farthest") -> torch.Tensor:
    r"""Farthest point sampling of ``M`` centres with a permutation-invariant (or fixed-index) start.

    .. math::  s_0 = \operatorname*{arg\,max}_j \lVert p_j - \bar p \rVert, \qquad
               s_t = \operatorname*{arg\,max}_j \min_{t' < t} \lVert p_j - p_{s_{t'}} \rVert

    Args:
        points: ``(B, N, 3)``.
        n_centres: ``M <= N``.
        start: ``"farthest"`` (from the centroid: the same point whatever the order of the
            input) or an index (``0`` is the original PointNet++ rule).

    Returns:
        ``(B, M)`` ``int64`` indices into ``points``.
    """
    check_points(points)
    if isinstance(n_centres, bool) or not isinstance(n_centres, int) or not 1 <= n_centres <= points.shape[1]:
        raise ValueError(f"n_centres must be an int in [1, N = {points.shape[1]}], got {n_centres!r}")
    if start == "farthest":
        with torch.no_grad():
            start = (points - points.mean(dim=1, keepdim=True)).pow(2).sum(-1).argmax(dim=1)
    elif isinstance(start, str):
        raise ValueError(f"start must be 'farthest' or an index, got {start!r}")
    return farthest_point_sample(points, n_centres, start_idx=start)


def neighbourhoods(points: torch.Tensor, centres: torch.Tensor, n_samples: int,
                   radius: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Ball-query (``radius`` given) or kNN (``radius=None``) neighbourhoods with a validity mask.

    .. math::  \mathcal{N}(c) = \{ j : \lVert p_j - c \rVert < r \} \ \text{(first } S\text{ in index order)}
               \quad\text{or}\quad \mathcal{N}_S(c) \ \text{(the } S \text{ nearest)}

    Args:
        points: ``(B, N, 3)``.
        centres: ``(B, M, 3)``.
        n_samples: ``S`` slots per centre (kNN needs ``S <= N``).
        radius: ball radius, or ``None`` for kNN.

    Returns:
        ``(idx, valid)``: ``(B, M, S)`` ``int64`` indices and ``(B, M, S)`` booleans, ``False``
        on the slots ball query padded with the first found index.
    """
    if radius is None:
        _, idx = knn(centres, points, n_samples)
        return idx, torch.ones_like(idx, dtype=torch.bool)
    idx, counts = ball_query(centres, points, radius, n_samples, return_counts=True)
    valid = torch.arange(n_samples, device=idx.device) < counts.unsqueeze(-1)
    return idx, valid


def conv_defaults(points: torch.Tensor, features: torch.Tensor | None, idx: torch.Tensor,
                  valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The defaults of a local operator's call for kernel convolutions: every slot valid, feature 1 if none.

    .. math::  f_j = 1 \ \text{(no input features)}, \qquad \text{valid}_{ij} = \text{True} \ \text{(no mask)}

    Args:
        points: ``(B, N, 3)``; features: ``(B, N, C)`` or ``None``; idx: ``(B, M, S)``;
        valid: ``(B, M, S)`` booleans or ``None``.

    Returns:
        ``(features, valid)``: ``(B, N, C)`` (``(B, N, 1)`` ones if ``features`` is ``None``) and ``(B, M, S)``.
    """
    if valid is None:
        valid = torch.ones_like(idx, dtype=torch.bool)
    if features is None:
        features = points.new_ones(*points.shape[:2], 1)
    return features, valid


def relative_coordinates(points: torch.Tensor, centres: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    r"""Neighbour positions in the frame of their centre: :math:`x_j - c_i`.

    Args:
        points: ``(B, N, 3)``; centres: ``(B, M, 3)``; idx: ``(B, M, S)``.

    Returns:
        ``(B, M, S, 3)``.
    """
    return group(points, idx) - centres.unsqueeze(2)


class MiniPointNet(nn.Module):
    r"""PointNet++'s local operator: a PointNet on each region, in coordinates relative to the centre.

    .. math::  f'_i = \max_{j \in \mathcal{N}(i)} h\big([\,x_j - c_i,\ f_j\,]\big)

    (coordinates first, then features, as ``tf.concat([grouped_xyz, grouped_points], -1)`` in
    the original). Padded slots repeat a real neighbour, which does not change a maximum, so
    ``valid`` is not needed.

    Args:
        in_channels: feature channels ``C`` of the input points (0 for coordinates only).
        mlp: widths of :math:`h` (e.g. ``(64, 64, 128)``).

    Shapes:
        ``points (B, N, 3), features (B, N, C) or None, centres (B, M, 3), idx (B, M, S)
        -> (B, M, mlp[-1])``.
    """

    def __init__(self, in_channels: int, mlp: Sequence[int]):
        super().__init__()
        self.in_channels = int(in_channels)
        self.h = SharedMLP([3 + self.in_channels, *mlp])
        self.out_channels = self.h.out_channels

    def forward(self, points: torch.Tensor, features: torch.Tensor | None, centres: torch.Tensor,
                idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        grouped = relative_coordinates(points, centres, idx)
        if features is not None:
            grouped = torch.cat([grouped, group(features, idx)], dim=-1)
        return self.h(grouped).amax(dim=2)


class Scale(NamedTuple):
    """One grouping scale of a set abstraction level: ball ``radius`` (``None``: kNN), ``n_samples``, local ``conv``."""

    radius: float | None
    n_samples: int
    conv: nn.Module


class SetAbstraction(nn.Module):
    r"""One set abstraction level: FPS centres, grouping at one or more scales, local operators, concat.

    .. math::  c = \operatorname{FPS}(x, M), \qquad
               f'_i = \big\Vert_{s}\ \operatorname{conv}_s\big(\{(x_j, f_j) : j \in \mathcal{N}_{r_s, S_s}(c_i)\}\big)

    Args:
        n_centres: ``M``.
        scales: :class:`Scale` tuples ``(radius, n_samples, conv)``; one for SSG, several for MSG.
            Each ``conv`` is called ``conv(points, features, centres, idx, valid)`` and must have
            an ``out_channels`` attribute.
        start: FPS start rule (see :func:`sample_centres`).

    Shapes:
        ``points (B, N, 3), features (B, N, C) or None -> centres (B, M, 3), features (B, M, sum C_s)``.
    """

    def __init__(self, n_centres: int, scales: Sequence[Scale], start: int | str = "farthest"):
        super().__init__()
        if not scales:
            raise ValueError("a set abstraction level needs at least one scale")
        self.n_centres = int(n_centres)
        self.start = start
        self.radii = [s.radius for s in scales]
        self.n_samples = [int(s.n_samples) for s in scales]
        self.convs = nn.ModuleList(s.conv for s in scales)
        self.out_channels = sum(conv.out_channels for conv in self.convs)

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_features(points, features)
        centres = group(points, sample_centres(points, self.n_centres, self.start))
        out = []
        for radius, n_samples, conv in zip(self.radii, self.n_samples, self.convs):
            idx, valid = neighbourhoods(points, centres, n_samples, radius)
            out.append(conv(points, features, centres, idx, valid))
        return centres, torch.cat(out, dim=-1)


class GlobalSetAbstraction(nn.Module):
    r"""The last level, "group all": one PointNet over every remaining point, coordinates included.

    .. math::  g = \max_{i} h\big([\,x_i,\ f_i\,]\big)

    The original groups all points around the origin (``new_xyz`` = 0), so the coordinates
    enter as they are.

    Args:
        in_channels: feature channels ``C``.
        mlp: widths of :math:`h` (paper ``(256, 512, 1024)``).

    Shapes:
        ``points (B, N, 3), features (B, N, C) -> (B, mlp[-1])``.
    """

    def __init__(self, in_channels: int, mlp: Sequence[int]):
        super().__init__()
        self.h = SharedMLP([3 + int(in_channels), *mlp])
        self.out_channels = self.h.out_channels

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        _check_features(points, features)
        x = points if features is None else torch.cat([points, features], dim=-1)
        return self.h(x).amax(dim=1)


def _check_features(points: torch.Tensor, features: torch.Tensor | None) -> None:
    check_points(points)
    if features is not None:
        if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[:2] != points.shape[:2]:
            raise ValueError(f"features must have shape (B, N, C) = ({points.shape[0]}, {points.shape[1]}, C), "
                             f"got {tuple(getattr(features, 'shape', ()))}")
        if not torch.isfinite(features).all():
            raise ValueError("features contain NaN or infinite values")
