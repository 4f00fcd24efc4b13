r"""PointNet++ feature propagation: the decoder step that brings coarse features back to dense points.

Qi, Yi, Su, Guibas, "PointNet++", NeurIPS 2017, Sec. 3.4 (the slide's "upsample point cloud
features by interpolating from 3 nearest points in the point cloud of lower resolution").
One level of the decoder, from the sparse level :math:`l` (positions :math:`x^{(l)}`, features
:math:`f^{(l)}`) to the denser level :math:`l-1` it was abstracted from:

1. **interpolate**: inverse-distance weights of the three nearest sparse points,
   :func:`~coursekit.geometry.neighbors.three_nn_interpolate` (the original code weights by
   :math:`1/d^2`: its ``three_nn`` returns squared distances; see that function);
2. **skip link**: concatenate the dense level's own features from the encoder;
3. **unit PointNet**: a shared MLP on every point (the original's 1x1 convolutions).

Shapes: dense ``(B, N, 3)`` / ``(B, N, C_skip)``, sparse ``(B, M, 3)`` / ``(B, M, C)`` with
``M <= N`` (any ``M >= 1`` works: fewer than three sparse points are all used).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..geometry.neighbors import three_nn_interpolate
from .mlp import SharedMLP

__all__ = ["FeaturePropagation"]


class FeaturePropagation(nn.Module):
    r"""One PointNet++ feature propagation level: three-NN interpolation, skip concat, unit PointNet.

    .. math::  f^{(l-1)}_i \leftarrow h\Big(\Big[\frac{\sum_{j=1}^{3} w_{ij} f^{(l)}_{j}}{\sum_{j=1}^{3} w_{ij}},\
               f^{(l-1)}_i\Big]\Big), \qquad w_{ij} = \frac{1}{\lVert x^{(l-1)}_i - x^{(l)}_j\rVert^2}

    (interpolated features first, then the skip features, as ``tf.concat([interpolated_points,
    points1])`` in ``pointnet_fp_module``).

    Args:
        in_channels: ``C`` of the sparse level's features.
        skip_channels: ``C_skip`` of the dense level's features (0: no skip link, e.g. the input
            level of a network that reads coordinates only).
        mlp: widths of the unit PointNet :math:`h` (e.g. ``(256, 256)``).

    Shapes:
        ``dense (B, N, 3), sparse (B, M, 3), sparse_features (B, M, C),
        skip (B, N, C_skip) or None -> (B, N, mlp[-1])``.
    """

    def __init__(self, in_channels: int, skip_channels: int, mlp: Sequence[int]):
        super().__init__()
        self.in_channels, self.skip_channels = int(in_channels), int(skip_channels)
        self.h = SharedMLP([self.in_channels + self.skip_channels, *mlp])
        self.out_channels = self.h.out_channels

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor, sparse_features: torch.Tensor,
                skip: torch.Tensor | None = None) -> torch.Tensor:
        interpolated = three_nn_interpolate(dense, sparse, sparse_features)
        if self.skip_channels:
            if skip is None or skip.shape != (*dense.shape[:2], self.skip_channels):
                raise ValueError(f"skip features must have shape ({dense.shape[0]}, {dense.shape[1]}, {self.skip_channels}), "
                                 f"got {None if skip is None else tuple(skip.shape)}")
            interpolated = torch.cat([interpolated, skip], dim=-1)
        elif skip is not None:
            raise ValueError("this level was built without a skip link (skip_channels=0) but skip features were passed")
        return self.h(interpolated)
