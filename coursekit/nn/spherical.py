r"""Spherical convolution with zonal filters, in the spherical-harmonic domain (rotation-equivariant by construction).

Convolving a function :math:`f` on the sphere with a *zonal* filter :math:`h` (symmetric about
the pole) is, by the spherical convolution theorem (Driscoll & Healy 1994), a multiplication
per degree:

.. math::  \widehat{(f * h)}_{lm} = 2\pi \sqrt{\tfrac{4\pi}{2l + 1}}\; \hat f_{lm}\, \hat h_{l0}

Every coefficient of degree :math:`l` is scaled by the same number, and a rotation of :math:`f`
only mixes coefficients *within* a degree (by a Wigner matrix), so the convolution commutes with
every rotation: :math:`(Rf) * h = R (f * h)`. Esteves, Allen-Blanchette, Makadia, Daniilidis,
"Learning SO(3) equivariant representations with spherical CNNs", ECCV 2018, learn these
per-degree multipliers, interpolated from a few anchor degrees so that the filters are smooth
in frequency, i.e. localised on the sphere. The layer here does the same for every pair of
channels:

.. math::  \hat y_{o, lm} = \sum_c w_{co}(l)\, \hat x_{c, lm} \;+\; \sqrt{4\pi}\, b_o\, [l = 0],
           \qquad w_{co}(l) = \sum_a h_a\!\big(l / (L - 1)\big)\, \theta_{a c o}

(the constant :math:`2\pi\sqrt{4\pi/(2l+1)}` is absorbed into the learned weights; the bias is a
constant function, :math:`Y_{00} = 1/\sqrt{4\pi}`).

Non-linearities act point-wise on the grid (:func:`grid_nonlinearity`): exactly equivariant for
the rotations that map the grid to itself (about the pole, by multiples of the grid step),
approximately for the others. Per-degree power spectra (:func:`~coursekit.geometry.spherical.power_spectrum`)
are invariant to every rotation.

Convention: coefficients ``(B, C, L^2)`` at index :math:`l^2 + l + m` and grids
``(B, C, 2L, 2L)``, as in :mod:`coursekit.geometry.spherical`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.validate import check_count
from ..geometry.spherical import _degree_index, isht, sht
from .spectral import hat_weights

__all__ = ["SphericalConv", "grid_nonlinearity"]


class SphericalConv(nn.Module):
    r"""Zonal-filter spherical convolution on spherical-harmonic coefficients.

    .. math::  \hat y_{o, lm} = \sum_c w_{co}(l)\, \hat x_{c, lm} + \sqrt{4\pi}\, b_o\, [l = 0]

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        bandwidth: ``L`` (coefficients of degree ``l < L``).
        n_anchors: learned multipliers per filter, linearly interpolated over the degrees
            (default ``L``: one per degree, no smoothness constraint).

    Shapes:
        ``(B, C_in, L^2)`` -> ``(B, C_out, L^2)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bandwidth: int, n_anchors: int | None = None):
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"), (bandwidth, "bandwidth")):
            check_count(value, name)
        if bandwidth < 2:
            raise ValueError(f"bandwidth must be at least 2, got {bandwidth}")
        self.in_channels, self.bandwidth = in_channels, bandwidth
        n_anchors = bandwidth if n_anchors is None else n_anchors
        self.theta = nn.Parameter(torch.randn(n_anchors, in_channels, out_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        degrees = torch.arange(bandwidth, dtype=torch.float64) / (bandwidth - 1)
        self.register_buffer("interpolation", hat_weights(degrees, n_anchors).float(), persistent=False)
        self.register_buffer("degree", _degree_index(bandwidth * bandwidth), persistent=False)

    def multipliers(self) -> torch.Tensor:
        """``(L, C_in, C_out)`` the filter value of every degree."""
        return torch.einsum("la,aco->lco", self.interpolation.to(self.theta.dtype), self.theta)

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        want = (self.in_channels, self.bandwidth ** 2)
        if coeffs.dim() != 3 or tuple(coeffs.shape[1:]) != want:
            raise ValueError(f"coeffs must have shape (B, {want[0]}, {want[1]}), got {tuple(coeffs.shape)}")
        out = torch.einsum("bci,ico->boi", coeffs, self.multipliers()[self.degree])
        constant = F.pad(math.sqrt(4 * math.pi) * self.bias.view(1, -1, 1), (0, self.bandwidth ** 2 - 1))  # only l = 0
        return out + constant


def grid_nonlinearity(coeffs: torch.Tensor, bandwidth: int, fn: Callable[[torch.Tensor], torch.Tensor] = torch.relu,
                      out_bandwidth: int | None = None) -> torch.Tensor:
    r"""Apply ``fn`` point-wise on the grid, transform back, keep degrees below ``out_bandwidth`` (spectral pooling).

    .. math::  \hat y = \mathrm{SHT}_{L}\big(\sigma(\mathrm{SHT}_L^{-1}(\hat x))\big)\big|_{l < L'}

    Args:
        coeffs: ``(..., L^2)``.
        bandwidth: ``L`` of the grid the function is evaluated on.
        fn: point-wise function (default ReLU).
        out_bandwidth: ``L' <= L`` (default ``L``).

    Returns:
        ``(..., L'^2)``.
    """
    out_bandwidth = bandwidth if out_bandwidth is None else out_bandwidth
    if not 1 <= out_bandwidth <= bandwidth:
        raise ValueError(f"out_bandwidth must be in [1, {bandwidth}], got {out_bandwidth}")
    return sht(fn(isht(coeffs, bandwidth)), bandwidth)[..., : out_bandwidth ** 2]
