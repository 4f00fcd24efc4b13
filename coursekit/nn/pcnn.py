r"""PCNN convolution by extension operators: a continuous kernel interpolated from RBFs at fixed translations.

Atzmon, Maron, Lipman, "Point Convolutional Neural Networks by Extension Operators", ACM TOG
(SIGGRAPH) 2018. The slide's "learn kernel value at anchor points and interpolate to build
continuous kernel":

.. math::  \kappa_{jm}(z) = \sum_{l} k_{ljm}\, \Phi(\lvert z - y_l \rvert), \qquad
           \Phi(r) = \exp\Big(-\frac{r^2}{2\sigma^2}\Big)

with the translations :math:`y_l` on a regular :math:`3 \times 3 \times 3` lattice around the
origin, one learned matrix :math:`k_{l} \in \mathbb{R}^{C_{in} \times C_{out}}` per translation
(index ``j`` = input channel, ``m`` = output channel). PCNN convolves this kernel with the
*extension* of the point function to :math:`\mathbb{R}^3` (a sum of Gaussians centred at the
points) and *restricts* the result back to the points; both steps are closed-form because
Gaussians convolve to a Gaussian. The result is a weighted sum over the neighbours of the
kernel evaluated at their relative positions:

.. math::  f'_m(x_i) = \sum_{x_q \in \mathcal{N}(x_i)} \omega_q \sum_j f_j(x_q)\, \kappa_{jm}(x_q - x_i)

Kept: the RBF-interpolated kernel with 27 lattice translations and Gaussian :math:`\Phi`.
Simplified (documented, not the paper's exact operator): the Gaussian of the extension is
folded into :math:`\Phi` (its convolution with the kernel's Gaussian only widens
:math:`\sigma` and rescales :math:`k`, both learned or chosen anyway), and the extension
weights are uniform, :math:`\omega_q = 1/|\mathcal{N}(x_i)|`. The lattice spacing is ``2r/3``
(the lattice spans ``[-2r/3, 2r/3]^3``) and :math:`\sigma = r/3` by default.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..geometry.neighbors import group
from .mlp import NormAct
from .set_abstraction import conv_defaults


def lattice_translations(radius: float, size: int = 3) -> torch.Tensor:
    r"""The translations :math:`y_l`: a ``size^3`` lattice spanning :math:`[-2r/3, 2r/3]^3`.

    Args:
        radius: the neighbourhood radius ``r``.
        size: points per axis (odd, so the origin is one of them).

    Returns:
        ``(size**3, 3)`` float32, x varying slowest.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    axis = torch.linspace(-2 * radius / 3, 2 * radius / 3, size) if size > 1 else torch.zeros(1)
    return torch.tensor(list(itertools.product(axis.tolist(), repeat=3)), dtype=torch.float32)


def rbf_weights(z: torch.Tensor, translations: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""The interpolation weights :math:`\Phi(\lvert z - y_l \rvert) = \exp(-\lvert z - y_l\rvert^2 / 2\sigma^2)`.

    Args:
        z: ``(*, 3)`` relative positions.
        translations: ``(L, 3)`` the :math:`y_l`.
        sigma: RBF width.

    Returns:
        ``(*, L)``.
    """
    return torch.exp(-(z.unsqueeze(-2) - translations).pow(2).sum(-1) / (2 * sigma ** 2))


def rbf_kernel(z: torch.Tensor, translations: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""Evaluate :math:`\kappa_{jm}(z) = \sum_l k_{ljm}\, \Phi(\lvert z - y_l\rvert)`.

    Args:
        z: ``(*, 3)`` relative positions.
        translations: ``(L, 3)`` the :math:`y_l`.
        weight: ``(L, C_in, C_out)`` the :math:`k_{ljm}`.
        sigma: RBF width.

    Returns:
        ``(*, C_in, C_out)``.
    """
    return torch.einsum("...l,ljm->...jm", rbf_weights(z, translations, sigma), weight)


class PCNNConv(nn.Module):
    r"""Convolution with an RBF-interpolated continuous kernel, averaged over the neighbourhood.

    .. math::  f'_m(x_i) = \phi\Big(\frac{1}{|\mathcal{N}(i)|}\sum_{q \in \mathcal{N}(i)} \sum_l
               \Phi(\lvert x_q - x_i - y_l \rvert) \sum_j f_j(x_q)\, k_{ljm} + b_m\Big)

    (the RBF weights are computed once per neighbour and contracted with the features before
    the ``L`` weight matrices, never building the ``C_in x C_out`` kernel per neighbour).
    Input without features uses the constant feature 1.

    Args:
        in_channels: ``C_in`` (0: the constant feature 1).
        out_channels: ``C_out``.
        radius: neighbourhood radius ``r``.
        lattice: translations per axis (paper 3).
        sigma: RBF width (default ``r / 3``).
        activation: apply :math:`\phi` = BatchNorm + ReLU.

    Shapes:
        ``points (B, N, 3), features (B, N, C_in) or None, centres (B, M, 3), idx (B, M, S),
        valid (B, M, S) -> (B, M, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, radius: float, lattice: int = 3,
                 sigma: float | None = None, activation: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.radius = float(radius)
        self.sigma = float(sigma) if sigma is not None else self.radius / 3
        self.register_buffer("translations", lattice_translations(self.radius, lattice))
        n, c = len(self.translations), max(self.in_channels, 1)
        self.weight = nn.Parameter(torch.empty(n, c, self.out_channels))
        nn.init.kaiming_uniform_(self.weight.view(n * c, self.out_channels).T, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.act = NormAct(self.out_channels) if activation else nn.Identity()

    def kernel(self, z: torch.Tensor) -> torch.Tensor:
        """The continuous kernel :math:`\\kappa(z)`: ``(*, 3) -> (*, C_in, C_out)`` (for plots)."""
        return rbf_kernel(z, self.translations.to(z.dtype), self.weight, self.sigma)

    def forward(self, points: torch.Tensor, features: torch.Tensor | None, centres: torch.Tensor,
                idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        features, valid = conv_defaults(points, features, idx, valid)
        z = group(points, idx) - centres.unsqueeze(2)                                           # (B, M, S, 3)
        phi = rbf_weights(z, self.translations.to(z.dtype), self.sigma)                        # (B, M, S, L)
        omega = valid / valid.sum(-1, keepdim=True).clamp_min(1)                                # (B, M, S)
        per_translation = (phi * omega.to(z.dtype).unsqueeze(-1)).transpose(-1, -2) @ group(features, idx)  # (B, M, L, C)
        return self.act(per_translation.flatten(-2) @ self.weight.flatten(0, 1) + self.bias)
