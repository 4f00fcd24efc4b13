r"""RS-CNN: PointNet++'s hierarchy with relation-shape convolutions as the local operator.

Liu, Fan, Xiang, Pan, "Relation-Shape Convolutional Neural Network for Point Cloud Analysis",
CVPR 2019 (arXiv:1904.07601); the slide's "point convolution as graph convolution" where the
edge weights come from the geometric relation :math:`h_{ij} = (d_{ij}, x_i - x_j, x_i, x_j)`.

Kept from the authors' single-scale classifier ``RSCNN_SSN`` (``gpu`` size): two RS-conv
levels (512 centres, r 0.23, 48 samples, 128 channels, first layer raising xyz to 16; 128
centres, r 0.32, 64 samples, 512 channels), a global convolutional pooling to 1024 and
FC(512, 256) with dropout 0.5. Scaled in ``fast``/``cpu``: points, centres, radii and widths
(table :data:`SIZES`). Not kept: the 10x voting at test time behind the paper's 93.6%.
"""

from __future__ import annotations

from .. import runtime
from ..nn.rsconv import RSConv
from .pointnet2 import CONV_FAST_SIZES, ConvClassifier

SIZES = {
    "fast": dict(CONV_FAST_SIZES, lift=8),
    "cpu": dict(n_points=512, lift=16, head=(128, 64), global_mlp=(256,), dropout=0.5,
                levels=[dict(n_centres=128, radius=0.3, n_samples=32, out=64),
                        dict(n_centres=32, radius=0.5, n_samples=32, out=256)]),
    "gpu": dict(n_points=1024, lift=16, head=(512, 256), global_mlp=(1024,), dropout=0.5,
                levels=[dict(n_centres=512, radius=0.23, n_samples=48, out=128),
                        dict(n_centres=128, radius=0.32, n_samples=64, out=512)]),
}
"""RS-CNN sizes per profile; ``gpu`` is the authors' ``RSCNN_SSN``."""


class RSCNN(ConvClassifier):
    r"""Relation-shape CNN classifier (single-scale neighbourhoods).

    .. math::  f'_i = \phi\Big(W_{cr} \max_{j \in \mathcal{B}_r(c_i)} \phi\big(\mathcal{M}(h_{ij}) \odot f_j\big)\Big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (e.g. normals).
        sizes: a :data:`SIZES` entry (default: the active profile's).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, sizes: dict | None = None):
        sizes = sizes or runtime.pick(SIZES)
        super().__init__(n_classes, in_channels, sizes, lambda c, spec, i: RSConv(
            c, spec["out"], spec["radius"], lift=sizes["lift"] if i == 0 else None))
