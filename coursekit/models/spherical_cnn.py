r"""Spherical CNN: a shape as a function on the sphere, zonal spherical convolutions, rotation-invariant features.

Paper: Esteves, Allen-Blanchette, Makadia, Daniilidis, "Learning SO(3) equivariant
representations with spherical CNNs", ECCV 2018 (ModelNet40: 88.9 in the spherical-CNN
comparison table of ``REFERENCES.md``); the group-convolution variant is Cohen, Geiger,
Koehler, Welling, "Spherical CNNs", ICLR 2018.

**Kept**: the input is the shape seen from its centre, ray casting the farthest surface point
in every direction of an equiangular ``2L x 2L`` grid
(:mod:`coursekit.geometry.spherical`); convolutions are zonal filters applied as per-degree
multipliers on spherical-harmonic coefficients, interpolated from a few anchor degrees
(localised filters, :class:`~coursekit.nn.spherical.SphericalConv`); ReLU on the grid; spectral
pooling (halving the bandwidth by dropping high degrees) between layers; rotation-invariant
global features at the end. Everything before the head is equivariant to rotations about the
pole by grid steps exactly (``tests/test_grid_models.py`` checks it to 1e-4) and to other
rotations up to the grid non-linearity.

**Ours / scaled down**: one input channel (the ray length; the paper adds two channels of the
angle between ray and surface normal); invariant features are the per-degree amplitudes
:math:`\sqrt{P_l}` of the last layer's channels (the paper: weighted global average pooling,
i.e. only :math:`l = 0`); bandwidths 8-32 and widths in :data:`SIZES`.

Input: ``(B, 1, 2L, 2L)`` grid functions. From a world :class:`~coursekit.data.world.shapes.Shape`:
``spherical_function_mesh(shape.vertices, shape.faces, L)`` (exact ray casting against the
mesh) or ``spherical_function_sdf(shape.sdf, L)``; from point clouds, :meth:`SphericalCNN.prepare`
(``spherical_function_points``, the farthest point within a cone per direction).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import runtime
from ..geometry.spherical import power_spectrum, sht, spherical_function_points
from ..nn.spherical import SphericalConv, grid_nonlinearity

#: Sizes per runtime profile: input bandwidth ``L`` (grid ``2L x 2L``), channel widths, anchors per filter.
SIZES = {
    "fast": dict(bandwidth=8, widths=(8, 16), n_anchors=4),
    "cpu": dict(bandwidth=16, widths=(16, 32, 64), n_anchors=6),
    "gpu": dict(bandwidth=32, widths=(32, 64, 128), n_anchors=8),
}


class SphericalCNN(nn.Module):
    r"""Zonal spherical convolutions with grid ReLUs and spectral pooling, then invariant per-degree amplitudes and an MLP.

    .. math::  \hat h^{(t+1)} = \mathrm{SHT}_{L_t}\big(\mathrm{ReLU}(\mathrm{SHT}^{-1}_{L_t}(\mathrm{conv}_t(\hat h^{(t)})))\big)\big|_{l < L_{t+1}},
               \qquad \text{logits} = \mathrm{MLP}\big(\sqrt{P_l(\hat h^{(T)}_c)}\big)_{c, l}

    with :math:`L_{t+1} = L_t / 2` (at least 2) and :math:`P_l` the power per degree.

    Args:
        n_classes: number of classes.
        in_channels: channels of the input grid function.
        bandwidth, widths, n_anchors: default from :data:`SIZES` for the active profile.
        dropout: in the head.

    Shapes:
        ``grid (B, in_channels, 2L, 2L)`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, bandwidth: int | None = None,
                 widths: tuple[int, ...] | None = None, n_anchors: int | None = None, dropout: float = 0.5):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.bandwidth = bandwidth or sizes["bandwidth"]
        widths = tuple(widths or sizes["widths"])
        n_anchors = n_anchors or sizes["n_anchors"]
        self.in_channels = in_channels
        self.bandwidths = [max(2, self.bandwidth >> t) for t in range(len(widths) + 1)]
        self.convs = nn.ModuleList(
            SphericalConv(c_in, c_out, L, min(n_anchors, L))
            for c_in, c_out, L in zip((in_channels,) + widths, widths, self.bandwidths))
        self.head = nn.Sequential(nn.Linear(widths[-1] * self.bandwidths[-1], 128), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(128, n_classes))

    @property
    def rotation_step(self) -> float:
        """Smallest rotation about the pole (radians) that maps every grid of the network to itself."""
        return 2 * math.pi / (2 * self.bandwidths[len(self.convs) - 1])

    def prepare(self, points: torch.Tensor) -> torch.Tensor:
        """Grid functions of ``(B, N, 3)`` clouds centred on the origin: ``(B, 1, 2L, 2L)``."""
        return spherical_function_points(points, self.bandwidth).unsqueeze(1)

    def features(self, grid: torch.Tensor) -> torch.Tensor:
        """Equivariant features: spherical-harmonic coefficients ``(B, C_T, L_T^2)`` of the last layer."""
        want = (self.in_channels, 2 * self.bandwidth, 2 * self.bandwidth)
        if not isinstance(grid, torch.Tensor) or grid.dim() != 4 or tuple(grid.shape[1:]) != want:
            raise ValueError(f"grid must have shape (B, {', '.join(map(str, want))}), got {tuple(getattr(grid, 'shape', ()))}")
        h = sht(grid, self.bandwidth)
        for t, conv in enumerate(self.convs):
            h = grid_nonlinearity(conv(h), self.bandwidths[t], torch.relu, self.bandwidths[t + 1])
        return h

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        amplitudes = power_spectrum(self.features(grid)).clamp_min(1e-12).sqrt()  # (B, C, L_T): rotation invariant
        return self.head(amplitudes.flatten(1))
