r"""Sparse convolutional U-Net for semantic segmentation of voxelised scenes.

Graham, Engelcke, van der Maaten, "3D semantic segmentation with submanifold sparse
convolutional networks", CVPR 2018 (SparseConvNet's ScanNet U-Net); Choy, Gwak, Savarese,
"4D spatio-temporal ConvNets", CVPR 2019 (MinkUNet). The slides' "Sparse Convolution" and
"Sparse Deconvolution" encoder-decoder:

* **encoder**: per level two submanifold 3x3x3 convolutions (the occupied set never dilates),
  then a strided 2x2x2 sparse convolution to the coarse sites (width grows ``m, 2m, 3m, ...``
  as SparseConvNet's ``nPlanes``);
* **decoder**: a transposed 2x2x2 sparse convolution ("sparse deconvolution") that **reuses the
  down-sampling kernel map** of that level (:class:`~coursekit.nn.sparse_conv.SparseConvTranspose3d`),
  so it restores exactly the encoder's sites; concatenation with the encoder's features there
  (skip link), two submanifold convolutions;
* a per-site linear classifier, and the site logits **mapped back to the original points**
  (every point takes the logits of its voxel, :func:`~coursekit.geometry.sparse.sparse_quantize`'s
  ``point_rows``).

.. math::  e_0 = \mathrm{Sub}^2(x),\ e_{l} = \mathrm{Sub}^2(\mathrm{Down}(e_{l-1})),\qquad
           d_{l} = \mathrm{Sub}^2\big([\mathrm{Up}_l(d_{l+1}),\ e_{l}]\big),\qquad s_p = W d_0[v(p)] + b

Optional **injection** (multimodal fusion, :mod:`coursekit.models.fusion` variant a): extra
per-site features computed at the centres of an intermediate level's sites are concatenated
there and mixed by a submanifold convolution.

Points are clamped into ``bounds`` before voxelisation so that every point gets a prediction.
Sizes from :data:`SIZES`: ``resolution`` (voxels per axis of ``bounds``), ``width`` ``m``, ``levels``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .. import runtime
from ..geometry.sparse import sparse_quantize
from ..geometry.validate import check_points
from ..geometry.voxels import Bounds
from ..nn.sparse_conv import PerSite, SparseConv3d, SparseConvTranspose3d, SparseTensor, SubmanifoldConv3d

__all__ = ["SIZES", "SparseUNet", "site_centres"]

SIZES = {
    "fast": dict(resolution=24, width=8, levels=3),
    "cpu": dict(resolution=48, width=16, levels=4),
    "gpu": dict(resolution=96, width=32, levels=5),
}
"""Voxels per axis, base width ``m`` and number of levels per profile (SparseConvNet's ScanNet net: 2 cm voxels, m = 16-32, 7 levels)."""


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two submanifold 3x3x3 convolutions, each followed by BatchNorm and ReLU."""
    return nn.Sequential(SubmanifoldConv3d(c_in, c_out, 3, bias=False), PerSite(nn.BatchNorm1d(c_out)), PerSite(nn.ReLU()),
                         SubmanifoldConv3d(c_out, c_out, 3, bias=False), PerSite(nn.BatchNorm1d(c_out)), PerSite(nn.ReLU()))


def site_centres(x: SparseTensor, resolution: int, bounds: Bounds = (-1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    r"""World positions of the centres of the sites of ``x`` (at any stride) and their batch index.

    .. math::  p = lo + \big(s\,(z, y, x)^{\text{rev}} + s/2\big)\,\frac{hi - lo}{R}

    Args:
        x: a :class:`SparseTensor` at stride ``s`` of a ``resolution``-cell grid over ``bounds``.

    Returns:
        ``(batch (M,) int64, xyz (M, 3) float)``.
    """
    lo, hi = bounds
    cells = x.coords[:, 1:].flip(-1).to(x.features.dtype)  # (x, y, z) order
    return x.coords[:, 0], lo + (cells * x.stride + x.stride / 2) * ((hi - lo) / resolution)


class SparseUNet(nn.Module):
    r"""Submanifold sparse U-Net: per-point logits of a voxelised scene.

    .. math::  d_l = \mathrm{Sub}^2\big([\,\mathrm{SparseConvT}_l(d_{l+1}),\ e_l\,]\big), \qquad
               s_p = W\, d_0[v(p)] + b

    Args:
        n_classes: ``K``.
        in_channels: per-point input features averaged per voxel (default 1: occupancy).
        resolution, width, levels: default from :data:`SIZES` for the active profile.
        bounds: the cube the points are voxelised in (points outside are clamped onto it).
        inject_level: encoder level (0 = finest) where extra per-site features are fused (or ``None``).
        inject_channels: channels of those extra features.

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None``, ``inject``: a
        callable ``(batch (M,), xyz (M, 3)) -> (M, inject_channels)`` evaluated at the sites of
        ``inject_level`` ``-> (B, N, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, *, resolution: int | None = None, width: int | None = None,
                 levels: int | None = None, bounds: Bounds = (-1.0, 1.0), inject_level: int | None = None,
                 inject_channels: int = 0):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.resolution = int(resolution or sizes["resolution"])
        width, levels = int(width or sizes["width"]), int(levels or sizes["levels"])
        if inject_level is not None and not 0 <= inject_level < levels:
            raise ValueError(f"inject_level must be in [0, {levels}), got {inject_level}")
        if self.resolution % (1 << (levels - 1)):
            raise ValueError(f"resolution {self.resolution} must be divisible by 2^(levels-1) = {1 << (levels - 1)}")
        self.in_channels, self.bounds = int(in_channels), bounds
        self.inject_level, self.inject_channels = inject_level, int(inject_channels)
        c = [width * (i + 1) for i in range(levels)]
        self.enc = nn.ModuleList(_block(in_channels if i == 0 else c[i], c[i]) for i in range(levels))
        self.down = nn.ModuleList(SparseConv3d(c[i], c[i + 1], 2, stride=2, bias=False) for i in range(levels - 1))
        self.down_norm = nn.ModuleList(nn.Sequential(PerSite(nn.BatchNorm1d(c[i + 1])), PerSite(nn.ReLU()))
                                       for i in range(levels - 1))
        self.up = nn.ModuleList(SparseConvTranspose3d(c[i + 1], c[i], 2, stride=2, bias=False) for i in range(levels - 1))
        self.dec = nn.ModuleList(_block(2 * c[i], c[i]) for i in range(levels - 1))
        self.fuse = None
        if inject_level is not None:
            k = inject_level
            self.fuse = nn.Sequential(SubmanifoldConv3d(c[k] + self.inject_channels, c[k], 3, bias=False),
                                      PerSite(nn.BatchNorm1d(c[k])), PerSite(nn.ReLU()))
        self.classifier = nn.Linear(c[0], n_classes)

    def voxelise(self, points: torch.Tensor, features: torch.Tensor | None = None) -> tuple[SparseTensor, torch.Tensor]:
        """The input :class:`SparseTensor` and the ``(B, N)`` site row of every point."""
        check_points(points)
        if features is None and self.in_channels != 1:
            raise ValueError(f"this SparseUNet takes {self.in_channels} feature channels: pass features (B, N, {self.in_channels})")
        lo, hi = self.bounds
        sites, rows = sparse_quantize(points.clamp(lo, hi), self.resolution, self.bounds, features)
        return SparseTensor(sites.features, sites), rows

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None,
                inject: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        if (inject is None) != (self.inject_level is None):
            raise ValueError("pass `inject` exactly when the network was built with an inject_level")
        x, rows = self.voxelise(points, features)
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x)
            if i == self.inject_level:
                batch, xyz = site_centres(x, self.resolution, self.bounds)
                x = self.fuse(x.with_features(torch.cat([x.features, inject(batch, xyz)], dim=1)))
            skips.append(x)
            if i < len(self.down):
                x = self.down_norm[i](self.down[i](x))
        for i in reversed(range(len(self.up))):
            up = self.up[i](x, skips[i])
            x = self.dec[i](up.with_features(torch.cat([up.features, skips[i].features], dim=1)))
        logits = self.classifier(x.features)
        return logits[rows]
