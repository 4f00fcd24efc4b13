r"""The spatial transformer module: localisation net -> grid generator -> sampler.

.. math::
    \theta = f_{loc}(U), \qquad
    (x_i^s, y_i^s) = \mathcal{T}_\theta(G_i), \qquad
    V_i^c = \sum_n^H \sum_m^W U_{nm}^c\, k(x_i^s - m)\, k(y_i^s - n)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .grids import (IDENTITY_AFFINE, IDENTITY_ATTENTION, IDENTITY_PROJECTIVE, _as_size, affine_grid,
                    attention_grid, projective_grid)
from .sampler import _KERNELS, sample
from .tps import tps_control_points, tps_grid

#: Transformations a :class:`SpatialTransformer` can use.
TRANSFORMS = ("affine", "attention", "projective", "tps")


def _check_transform(transform: str) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose one of {TRANSFORMS}")


def n_params(transform: str, tps_grid_size: int = 4) -> int:
    """How many numbers the localisation net must predict for ``transform``.

    6 (affine), 3 (attention), 8 (projective), ``2 * tps_grid_size**2`` (tps; 32 for 4 x 4).
    """
    return identity_params(transform, tps_grid_size).numel()


def identity_params(transform: str, tps_grid_size: int = 4) -> torch.Tensor:
    """The flat parameter vector of the identity transformation (the regression bias at init).

    Args:
        transform: one of :data:`TRANSFORMS`.
        tps_grid_size: control points per side for ``"tps"``.

    Returns:
        ``(n_params,)`` float32 tensor; for ``"tps"`` the flattened control points ``(x_1, y_1, x_2, ...)``.
    """
    _check_transform(transform)
    if transform == "tps":
        return tps_control_points(tps_grid_size).flatten()
    fixed = {"affine": IDENTITY_AFFINE, "attention": IDENTITY_ATTENTION, "projective": IDENTITY_PROJECTIVE}
    return torch.tensor(fixed[transform], dtype=torch.float32)


class SpatialTransformer(nn.Module):
    r"""A spatial transformer: warps its input by parameters it predicts from that input.

    Args:
        localisation: module mapping ``U (B, C, H, W)`` to flat parameters ``(B, n_params(transform))``
            (e.g. :class:`~coursekit.stn.FCLocalisation` / :class:`~coursekit.stn.ConvLocalisation`
            built with ``identity=identity_params(transform)``).
        transform: ``"affine"`` (6 params, row-major ``theta``), ``"attention"`` (3: ``s, t_x, t_y``),
            ``"projective"`` (8) or ``"tps"`` (``2 g^2``: source positions of the ``g x g`` control
            points, ``(x, y)`` interleaved).
        out_size: output ``(H', W')``; ``None`` keeps the input's size. A smaller size with an
            attention transform is the paper's zoom.
        kernel: sampling kernel, ``"bilinear"`` (trainable) or ``"nearest"`` (no gradient to
            the localisation net).
        tps_grid_size: control points per side for ``"tps"`` (4 -> the paper's 16 points).

    Shapes:
        input ``U`` ``(B, C, H, W)`` (an image or any feature map), output ``V`` ``(B, C, H', W')``.

    Attributes:
        last_theta: detached parameters of the last forward pass in the grid generator's shape:
            ``(B, 2, 3)`` affine, ``(B, 3)`` attention, ``(B, 8)`` projective, ``(B, K, 2)`` tps.
        last_grid: detached ``(B, H', W', 2)`` sampling grid of the last forward pass.
    """

    def __init__(self, localisation: nn.Module, transform: str = "affine", out_size: Sequence[int] | None = None,
                 kernel: str = "bilinear", tps_grid_size: int = 4):
        super().__init__()
        _check_transform(transform)
        if kernel not in _KERNELS:
            raise ValueError(f"unknown sampling kernel {kernel!r}; choose one of {sorted(_KERNELS)}")
        self.localisation = localisation
        self.transform = transform
        self.out_size = None if out_size is None else _as_size(out_size, "out_size")
        self.kernel = kernel
        self.tps_grid_size = tps_grid_size
        self.n_params = n_params(transform, tps_grid_size)
        if transform == "tps":
            self.register_buffer("control", tps_control_points(tps_grid_size), persistent=False)
        self.last_theta: torch.Tensor | None = None
        self.last_grid: torch.Tensor | None = None

    def theta(self, params: torch.Tensor) -> torch.Tensor:
        """Reshape flat ``(B, n_params)`` parameters into the grid generator's shape (see ``last_theta``)."""
        if not isinstance(params, torch.Tensor) or params.dim() != 2 or params.shape[1] != self.n_params:
            got = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ValueError(f"the localisation net must return (B, {self.n_params}) parameters for a "
                             f"{self.transform!r} transform, got {got}")
        if self.transform == "affine":
            return params.reshape(-1, 2, 3)
        if self.transform == "tps":
            return params.reshape(params.shape[0], -1, 2)
        return params

    def grid(self, params: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """The ``(B, H', W', 2)`` sampling grid of flat ``(B, n_params)`` parameters."""
        theta = self.theta(params)
        if self.transform == "affine":
            return affine_grid(theta, size)
        if self.transform == "attention":
            return attention_grid(theta, size)
        if self.transform == "projective":
            return projective_grid(theta, size)
        return tps_grid(theta, size, self.control.to(theta.dtype))

    def forward(self, U: torch.Tensor) -> torch.Tensor:
        if not isinstance(U, torch.Tensor) or U.dim() != 4:
            got = tuple(U.shape) if isinstance(U, torch.Tensor) else type(U).__name__
            raise ValueError(f"SpatialTransformer expects U of shape (B, C, H, W), got {got}")
        params = self.localisation(U).to(U.dtype)
        size = self.out_size or tuple(U.shape[-2:])
        grid = self.grid(params, size)
        self.last_theta = self.theta(params).detach()
        self.last_grid = grid.detach()
        return sample(U, grid, self.kernel)

    def extra_repr(self) -> str:
        extra = f", tps_grid_size={self.tps_grid_size}" if self.transform == "tps" else ""
        return f"transform={self.transform!r}, out_size={self.out_size}, kernel={self.kernel!r}{extra}"
