r"""Thin-plate spline (TPS) grid generator: a smooth warp fixed by K control points.

The localisation net predicts where each of ``K`` control points (a regular
``g x g`` grid over the output, the paper's 16 = 4 x 4) lands in the source.
The TPS is the smoothest map (least bending energy) that sends every control
point :math:`c_k` (target) exactly to its predicted source point :math:`v_k`:

.. math::
    \mathcal{T}(p) = \sum_{k=1}^K w_k\, U(\lVert p - c_k \rVert^2)
                     + a_x\, x + a_y\, y + a_1,
    \qquad U(r^2) = r^2 \log r^2 .

Coefficients are stacked as ``(K + 3, 2)``: rows ``w_1 .. w_K`` then the affine
rows ``a_x, a_y, a_1`` (the order of the homogeneous coordinates ``(x, y, 1)``,
so the affine rows are :math:`\mathbf{A}_\theta^\top` of :func:`~coursekit.stn.affine_grid`
when the control points move affinely). Parameters for a localisation net:
``(B, K, 2)`` source positions (32 numbers for 16 points); the identity is the
control points themselves.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .grids import _as_size, _check_shape, target_coordinates


def tps_control_points(grid_size: int = 4, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """A regular ``grid_size x grid_size`` grid of control points spanning [-1, 1]^2.

    Args:
        grid_size: points per side ``g`` (at least 2); ``K = g^2``.
        dtype, device: of the result.

    Returns:
        ``(K, 2)`` points ``(x, y)`` in row-major order (``y`` outer, ``x`` inner).
    """
    if not isinstance(grid_size, int) or grid_size < 2:
        raise ValueError(f"grid_size must be an int >= 2, got {grid_size!r}")
    ticks = torch.linspace(-1, 1, grid_size, dtype=dtype, device=device)
    ys, xs = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    r"""The TPS radial basis as a function of the *squared* distance.

    .. math::
        U(r^2) = r^2 \log r^2, \qquad U(0) = 0

    Args:
        r2: squared distances, any shape, ``>= 0``.

    Returns:
        ``U`` of the same shape (finite gradient at 0: the ``0 log 0`` branch is masked).
    """
    positive = r2 > 0
    return torch.where(positive, r2 * torch.log(torch.where(positive, r2, torch.ones_like(r2))),
                       torch.zeros_like(r2))


def _squared_distances(points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` squared distances between ``(N, 2)`` points and ``(K, 2)`` control points."""
    return (points[:, None, :] - control[None, :, :]).pow(2).sum(-1)


def _design(points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """Rows ``[U(|p - c_1|^2) .. U(|p - c_K|^2), x, y, 1]`` for each of the ``(N, 2)`` points."""
    ones = points.new_ones(points.shape[0], 1)
    return torch.cat([tps_kernel(_squared_distances(points, control)), points, ones], dim=1)


def tps_solve(source_points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    r"""TPS coefficients that map the control points (target) onto ``source_points``.

    Solves the closed-form system, with :math:`K_{jk} = U(\lVert c_j - c_k\rVert^2)`
    and :math:`P` the ``(K, 3)`` rows :math:`(x_k, y_k, 1)` of the control points:

    .. math::
        \begin{bmatrix} K & P \\ P^\top & 0 \end{bmatrix}
        \begin{bmatrix} w \\ a \end{bmatrix} =
        \begin{bmatrix} v \\ 0 \end{bmatrix}

    The first ``K`` equations make the spline interpolate (:math:`\mathcal{T}(c_k) = v_k`);
    :math:`P^\top w = 0` keeps the radial part free of affine components. The
    system is solved in float64 (it is small) and cast back.

    Args:
        source_points: ``(B, K, 2)`` where each control point lands in the source, :math:`v`.
        control: ``(K, 2)`` control points in target coordinates (not all on one line).

    Returns:
        ``(B, K + 3, 2)``: rows ``w_1 .. w_K``, then ``a_x, a_y, a_1``.
    """
    _check_shape(control, "control", (None, 2), "(K, 2)")
    k = control.shape[0]
    _check_shape(source_points, "source_points", (None, k, 2), f"(B, K={k}, 2) like the control points")
    if k < 3:
        raise ValueError(f"a thin-plate spline needs at least 3 control points, got {k}")
    c = control.to(torch.float64)
    system = c.new_zeros(k + 3, k + 3)
    system[:k, :k] = tps_kernel(_squared_distances(c, c))
    system[:k, k:] = torch.cat([c, c.new_ones(k, 1)], dim=1)
    system[k:, :k] = system[:k, k:].T
    rhs = torch.cat([source_points.to(torch.float64), c.new_zeros(source_points.shape[0], 3, 2)], dim=1)
    return torch.linalg.solve(system, rhs).to(source_points.dtype)


def tps_grid(source_points: torch.Tensor, size: Sequence[int], control: torch.Tensor | None = None) -> torch.Tensor:
    r"""TPS grid generator: evaluate the spline at every output pixel.

    .. math::
        \begin{pmatrix} x_i^s \\ y_i^s \end{pmatrix} =
        \sum_{k=1}^K w_k\, U(\lVert G_i - c_k\rVert^2) + a^\top \begin{pmatrix} x_i^t \\ y_i^t \\ 1 \end{pmatrix}

    Args:
        source_points: ``(B, K, 2)`` predicted source positions of the control points.
        size: output size ``(H', W')``.
        control: ``(K, 2)`` control points; default the regular ``sqrt(K) x sqrt(K)`` grid
            of :func:`tps_control_points`.

    Returns:
        ``(B, H', W', 2)`` grid; ``source_points == control`` gives the identity grid.
    """
    _check_shape(source_points, "source_points", (None, None, 2), "(B, K, 2)")
    height, width = _as_size(size)
    if control is None:
        side = math.isqrt(source_points.shape[1])
        if side * side != source_points.shape[1]:
            raise ValueError(f"{source_points.shape[1]} control points are not a square grid; pass `control`")
        control = tps_control_points(side, source_points.dtype, source_points.device)
    coefficients = tps_solve(source_points, control)                                  # (B, K+3, 2)
    target = target_coordinates(size, source_points.dtype, source_points.device)[:, :2]
    grid = _design(target, control.to(source_points.dtype)) @ coefficients          # (B, H'W', 2)
    return grid.reshape(source_points.shape[0], height, width, 2)
