r"""A SparseConvNet-style residual network for shape classification on sparse voxels.

Paper: Graham, Engelcke, van der Maaten, "3D semantic segmentation with submanifold sparse
convolutional networks", CVPR 2018 (the slides' "SparseConvNet: uses ResNet architecture",
https://github.com/facebookresearch/SparseConvNet).

**Kept**: the input is the set of occupied voxels only (a :class:`~coursekit.nn.sparse_conv.SparseTensor`),
every convolution is a gather-GEMM-scatter over kernel maps; submanifold 3x3x3 convolutions
inside a level (the occupied set never dilates), pre-activation residual blocks
(BN - ReLU - SubConv - BN - ReLU - SubConv, plus the identity), strided 2x2x2 sparse
convolutions between levels with the width growing linearly (SparseConvNet's ``nPlanes =
[m, 2m, 3m, ...]``), and global pooling of the last level before a linear classifier.

**Scaled down**: resolution (the paper's ScanNet nets use 2 cm voxels, 4096^3 extents; here
16-64 cells per axis), width ``m`` (the paper's 16-32 kept on GPU), levels and blocks per level
(``SIZES``). Global pooling concatenates max and mean over the sites (SparseConvNet's
classification examples use a final dense layer on a few remaining cells instead).

Input: ``(B, N, 3)`` point clouds in ``[-1, 1]^3`` (quantised here by
:func:`~coursekit.geometry.sparse.sparse_quantize`, one channel of ones per occupied cell,
or the mean of ``features`` such as normals), or a ready :class:`SparseTensor`. From a world
:class:`~coursekit.data.world.shapes.Shape`: ``points, normals, _ = shape.sample(1024)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.voxels import Bounds
from ..nn.sparse_conv import PerSite, SparseConv3d, SparseTensor, SubmanifoldConv3d, sparse_global_pool

#: Sizes per runtime profile: voxels per axis, base width ``m``, levels, residual blocks per level.
SIZES = {
    "fast": dict(resolution=16, width=8, levels=2, blocks=1),
    "cpu": dict(resolution=32, width=16, levels=3, blocks=1),
    "gpu": dict(resolution=64, width=32, levels=4, blocks=2),
}


class SparseResBlock(nn.Module):
    r"""Pre-activation residual block of two submanifold convolutions.

    .. math::  y = x + \mathrm{SubConv}(\mathrm{ReLU}(\mathrm{BN}(\mathrm{SubConv}(\mathrm{ReLU}(\mathrm{BN}(x))))))

    Shapes:
        ``SparseTensor`` ``(N, C)`` -> ``(N, C)`` on the same sites.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            PerSite(nn.BatchNorm1d(channels)), PerSite(nn.ReLU()), SubmanifoldConv3d(channels, channels, 3, bias=False),
            PerSite(nn.BatchNorm1d(channels)), PerSite(nn.ReLU()), SubmanifoldConv3d(channels, channels, 3, bias=False),
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.with_features(x.features + self.body(x).features)


class SparseResNet(nn.Module):
    r"""SparseConvNet-style classifier: submanifold ResNet levels joined by strided sparse convolutions.

    .. math::  \text{logits} = W\,[\max_i h_i;\ \operatorname{mean}_i h_i] + b,
               \qquad h = (\text{level}_{L} \circ \text{down} \circ \dots \circ \text{level}_1)(\mathrm{SubConv}(x))

    Args:
        n_classes: number of classes.
        in_channels: input feature channels (1: occupancy; 3: mean normals per voxel).
        resolution, width, levels, blocks: default from :data:`SIZES` for the active profile.
        bounds: the cube the points are quantised in.

    Shapes:
        ``points (B, N, 3)`` (and optional ``features (B, N, in_channels)``) or a
        :class:`SparseTensor` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, resolution: int | None = None, width: int | None = None,
                 levels: int | None = None, blocks: int | None = None, bounds: Bounds = (-1.0, 1.0)):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.resolution = resolution or sizes["resolution"]
        width = width or sizes["width"]
        levels = levels or sizes["levels"]
        blocks = blocks or sizes["blocks"]
        self.in_channels, self.bounds = in_channels, bounds
        self.stem = SubmanifoldConv3d(in_channels, width, 3)
        stages = []
        for level in range(levels):
            c = width * (level + 1)
            stage = [SparseResBlock(c) for _ in range(blocks)]
            if level < levels - 1:
                stage += [PerSite(nn.BatchNorm1d(c)), PerSite(nn.ReLU()), SparseConv3d(c, c + width, 2, stride=2, bias=False)]
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(PerSite(nn.BatchNorm1d(width * levels)), PerSite(nn.ReLU()))
        self.classifier = nn.Linear(2 * width * levels, n_classes)

    def forward(self, x: torch.Tensor | SparseTensor, features: torch.Tensor | None = None) -> torch.Tensor:
        batch_size = None
        if isinstance(x, torch.Tensor):
            batch_size = x.shape[0]
            if features is None and self.in_channels != 1:
                raise ValueError(f"this SparseResNet takes {self.in_channels} feature channels: pass features (B, N, {self.in_channels})")
            x = SparseTensor.from_points(x, self.resolution, self.bounds, features)
        h = self.head(self.stages(self.stem(x)))
        pooled = torch.cat([sparse_global_pool(h, "max", batch_size), sparse_global_pool(h, "mean", batch_size)], 1)
        return self.classifier(pooled)
