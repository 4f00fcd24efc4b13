r"""PointConv classifier: PointNet++'s hierarchy with density-weighted continuous convolutions.

Wu, Qi, Fuxin, "PointConv: Deep Convolutional Networks on 3D Point Clouds", CVPR 2019
(arXiv:1811.07246), with the Monte-Carlo view of Hermosilla et al. (SIGGRAPH Asia 2018): the
slide's "estimate the continuous kernel and point density for continuous convolution".

Kept from the authors' ``PointConvDensityClsSsg`` (``gpu`` size): three levels — 512 centres
(point-wise MLP 64-64-128, KDE bandwidth 0.1), 128 centres (128-128-256, 0.2), then all points
(256-512-1024, 0.4) — each an efficient PointConv with a WeightNet (8, 8 -> 16) and a linear
layer to the MLP's last width, FC(512, 256) with dropout 0.4. Changed: ball query (radii 0.2 /
0.4, 32 / 64 samples, as PointNet++ SSG) instead of kNN grouping, because a kNN region
shrinks where the sampling is dense, which defeats the density correction; the last level is
a plain max-pooled "group all" PointNet (as PointNet++); fixed inverse-density weights instead
of the learned DensityNet (see :mod:`coursekit.nn.pointconv`). Scaled in ``fast``/``cpu``
(table :data:`SIZES`).
"""

from __future__ import annotations

from .. import runtime
from ..nn.pointconv import PointConv
from .pointnet2 import ConvClassifier

SIZES = {
    "fast": dict(n_points=128, head=(32, 16), global_mlp=(32, 64), dropout=0.4,
                 levels=[dict(n_centres=32, radius=0.4, n_samples=16, mlp=(16, 32), out=32, bandwidth=0.2),
                         dict(n_centres=8, radius=0.8, n_samples=16, mlp=(32, 32), out=32, bandwidth=0.4)]),
    "cpu": dict(n_points=512, head=(128, 64), global_mlp=(128, 256), dropout=0.4,
                levels=[dict(n_centres=128, radius=0.3, n_samples=32, mlp=(32, 32, 64), out=64, bandwidth=0.15),
                        dict(n_centres=32, radius=0.6, n_samples=32, mlp=(64, 64, 128), out=128, bandwidth=0.3)]),
    "gpu": dict(n_points=1024, head=(512, 256), global_mlp=(256, 512, 1024), dropout=0.4,
                levels=[dict(n_centres=512, radius=0.2, n_samples=32, mlp=(64, 64, 128), out=128, bandwidth=0.1),
                        dict(n_centres=128, radius=0.4, n_samples=64, mlp=(128, 128, 256), out=256, bandwidth=0.2)]),
}
"""PointConv sizes per profile (``mlp`` = the point-wise layers before the convolution, ``out`` its width)."""


class PointConvNet(ConvClassifier):
    r"""PointConv classifier.

    .. math::  f'_i = \phi\Big(W \operatorname{vec}\sum_{j \in \mathcal{B}_r(c_i)}
               \frac{\hat p_j^{-1}}{\sum_k \hat p_k^{-1}}\ \mathrm{MLP}([x_j - c_i, f_j]) \otimes M(x_j - c_i)\Big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (e.g. normals).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        density_weighting: ``False`` gives the plain empirical convolution (the ablation).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, sizes: dict | None = None,
                 density_weighting: bool = True):
        super().__init__(n_classes, in_channels, sizes or runtime.pick(SIZES), lambda c, spec, i: PointConv(
            c, spec["out"], spec["bandwidth"], mlp=spec["mlp"], density_weighting=density_weighting))
