"""Normalising point clouds to the unit sphere."""

from __future__ import annotations

import torch

from .validate import check_points


def normalize_unit_sphere(points: torch.Tensor) -> torch.Tensor:
    r"""Centre each cloud on its centroid and scale it into the unit ball.

    .. math::  p_i' = \frac{p_i - \bar p}{\max_j \lVert p_j - \bar p \rVert_2},
               \qquad \bar p = \frac{1}{N} \sum_j p_j

    Args:
        points: ``(B, N, 3)`` clouds (any float dtype).

    Returns:
        ``(B, N, 3)``: each cloud's centroid at the origin, farthest point at radius 1.
        A cloud whose points all coincide is only centred.
    """
    check_points(points)
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=1, keepdim=True).unsqueeze(-1)
    return centred / radius.clamp_min(torch.finfo(points.dtype).tiny)
