r"""X-ray projections of occupancy grids ("Idea 1: learn to project").

"X-ray rendering + image (2D) CNNs: very low #param, very low computation": summing a grid
along one axis gives an image whose pixels count the occupied cells on each ray, which a 2-D
CNN then classifies. Axes follow :mod:`coursekit.geometry.voxels`: ``(D, H, W) = (z, y, x)``.
"""

from __future__ import annotations

import torch

from .voxels import _check_grid

_AXES = {"z": 2, "y": 3, "x": 4}


def xray_projection(occupancy: torch.Tensor, axis: str, normalize: bool = False) -> torch.Tensor:
    r"""Sum an occupancy grid along one axis.

    .. math::  I_z[b, 0, h, w] = \sum_{d} O[b, 0, d, h, w]
               \quad (\text{and likewise for } y, x)

    Args:
        occupancy: ``(B, 1, D, H, W)`` grid.
        axis: ``"z"`` (sum over D), ``"y"`` (over H) or ``"x"`` (over W).
        normalize: divide by the number of cells on a ray, giving values in ``[0, 1]``.

    Returns:
        ``(B, 1, H, W)`` for ``"z"``, ``(B, 1, D, W)`` for ``"y"``, ``(B, 1, D, H)`` for ``"x"``.
    """
    _check_grid(occupancy, "occupancy", channels=1)
    if axis not in _AXES:
        raise ValueError(f"axis must be one of {sorted(_AXES)}, got {axis!r}")
    dim = _AXES[axis]
    image = occupancy.sum(dim)
    return image / occupancy.shape[dim] if normalize else image


def xray_views(occupancy: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    r"""The three axis-aligned X-ray images of a cubic grid stacked as channels (x, y, z).

    .. math::  V[b] = \left(I_x[b],\ I_y[b],\ I_z[b]\right)

    Args:
        occupancy: ``(B, 1, R, R, R)`` grid.
        normalize: as in :func:`xray_projection`.

    Returns:
        ``(B, 3, R, R)``: channel 0 projects along x (rows z, columns y), channel 1 along y
        (rows z, columns x), channel 2 along z (rows y, columns x).
    """
    _check_grid(occupancy, "occupancy", channels=1)
    if len(set(occupancy.shape[2:])) != 1:
        raise ValueError(f"xray_views needs a cubic grid (D = H = W), got {tuple(occupancy.shape[2:])}")
    return torch.cat([xray_projection(occupancy, a, normalize) for a in ("x", "y", "z")], dim=1)
