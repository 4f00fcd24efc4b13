r"""O-CNN: a classifier whose convolutions and poolings visit only the occupied octants of an octree.

Paper: Wang, Liu, Guo, Sun, Tong, "O-CNN: octree-based convolutional neural networks for 3D
shape analysis", SIGGRAPH 2017 (its O-CNN(5) and O-CNN(6) rows: octree depth 5 and 6).

**Kept**: one octree per shape (:class:`~coursekit.nn.octree_conv.OctreeBatch`, built with the
Morton-key hash table of :mod:`coursekit.geometry.octree`); the input signal on the finest
leaves is the average normal of the points inside (the paper's choice; occupancy when no
normals are given); per level ``L`` from ``depth`` down to 3: 3x3x3 octree convolution - batch
norm - ReLU on the occupied octants, then octree max pooling to level ``L - 1``; channels double
as the level coarsens; at level 2 the features are written into the full ``4^3`` grid (empty
octants zero) and classified by dropout - FC 128 - dropout - FC, as in the paper.

**Scaled down**: channel widths (the paper: :math:`2^{\max(2, 9 - L)}` at level :math:`L`, i.e. 32 at
depth 5 up to 128; here ``width * 2^(depth - L)``, capped at ``8 * width``) and the depth in the
``fast`` profile. See :mod:`coursekit.nn.octree_conv` for OctNet's hybrid grid-octree, the
other octree design on the slides.

Input: ``(B, N, 3)`` point clouds in ``[-1, 1]^3`` and their ``(B, N, 3)`` normals (or an
:class:`OctreeBatch` plus leaf features). From a world
:class:`~coursekit.data.world.shapes.Shape`: ``points, normals, _ = shape.sample(1024)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.voxels import Bounds
from ..nn.octree_conv import OctreeBatch, OctreeConv, OctreeMaxPool

#: Sizes per runtime profile: octree depth (leaves ``2^depth`` per axis) and base width.
SIZES = {
    "fast": dict(depth=4, width=8),
    "cpu": dict(depth=5, width=16),
    "gpu": dict(depth=6, width=32),
}


class OCNN(nn.Module):
    r"""O-CNN classifier on per-octant features, from the leaves down to level 2.

    .. math::  h_{L-1} = \operatorname{pool}\big(\mathrm{ReLU}(\mathrm{BN}(\mathrm{OctConv}_L(h_L)))\big),
               \qquad \text{logits} = \mathrm{FC}(\mathrm{FC}_{128}(\operatorname{dense}(h_2)))

    Args:
        n_classes: number of classes.
        in_channels: 3 (average normals, the paper) or 1 (occupancy).
        depth, width: default from :data:`SIZES` for the active profile (``depth >= 3``).
        bounds: the cube the octree partitions.
        dropout: before each FC layer.

    Shapes:
        ``points (B, N, 3)`` and ``normals (B, N, 3)`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 3, depth: int | None = None, width: int | None = None,
                 bounds: Bounds = (-1.0, 1.0), dropout: float = 0.5):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.depth = depth or sizes["depth"]
        width = width or sizes["width"]
        if self.depth < 3:
            raise ValueError(f"depth must be at least 3 (the classifier reads level 2), got {self.depth}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 3 (normals) or 1 (occupancy), got {in_channels}")
        self.in_channels, self.bounds = in_channels, bounds
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        c_in = in_channels
        for level in range(self.depth, 2, -1):
            c_out = width * min(2 ** (self.depth - level), 8)
            self.convs.append(OctreeConv(c_in, c_out, 3, bias=False))
            self.norms.append(nn.BatchNorm1d(c_out))
            c_in = c_out
        self.pool = OctreeMaxPool()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * 4 ** 3, 128), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(128, n_classes),
        )

    def forward(self, points: torch.Tensor | OctreeBatch, normals: torch.Tensor | None = None) -> torch.Tensor:
        octree = points if isinstance(points, OctreeBatch) else OctreeBatch.build(points, self.depth, self.bounds)
        if octree.depth != self.depth:
            raise ValueError(f"the octree has depth {octree.depth}, the model {self.depth}")
        if self.in_channels == 3:
            if normals is None:
                raise ValueError("this O-CNN reads average normals: call model(points, normals) or build it with in_channels=1")
            h = octree.leaf_average(normals)
        else:
            h = torch.ones(octree.num_nodes(self.depth), 1, dtype=self.convs[0].weight.dtype, device=octree.device)
        for i, level in enumerate(range(self.depth, 2, -1)):
            h = torch.relu(self.norms[i](self.convs[i](h, octree, level)))
            h = self.pool(h, octree, level)
        return self.classifier(octree.to_dense(h, 2))
