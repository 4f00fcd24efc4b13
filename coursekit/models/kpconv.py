r"""KPConv classifier: kernel point convolutions, rigid or deformable, on PointNet++'s hierarchy.

Thomas, Qi, Deschaud, Marcotegui, Goulette, Guibas, "KPConv: Flexible and Deformable
Convolution for Point Clouds", ICCV 2019 (arXiv:1904.08889); the slide's "deformable kernel for
deformable objects — the 3D version of 2D deformable convolution".

Kept: the KPConv operator (15 kernel points, linear correlation, :math:`\sigma = 0.48\,r`,
neighbour-count normalisation), deformable layers whose offsets come from a rigid KPConv and
are regularised by the fitting + repulsive loss (``model.regularizer()`` after a forward pass),
the constant input feature 1, max pooling to a global feature and an FC head with dropout 0.5.
Changed (scaled): the paper's KP-CNN is a 5-level ResNet of bottleneck KPConv blocks on grid
subsampled clouds (first cell 2 cm on ModelNet40, conv radius 2.5 cells); here each level is
one KPConv on farthest-point-sampled centres with a ball-query neighbourhood, widths from the
table :data:`SIZES`, and with ``deformable=True`` the *last* level is deformable (the paper's
deformable KP-CNN also keeps its first layers rigid).
"""

from __future__ import annotations

from .. import runtime
from ..nn.kpconv import KPConv
from .pointnet2 import CONV_FAST_SIZES, ConvClassifier

SIZES = {
    "fast": CONV_FAST_SIZES,
    "cpu": dict(n_points=512, head=(128, 64), global_mlp=(256,), dropout=0.5,
                levels=[dict(n_centres=256, radius=0.2, n_samples=24, out=32),
                        dict(n_centres=64, radius=0.4, n_samples=32, out=64),
                        dict(n_centres=16, radius=0.8, n_samples=32, out=128)]),
    "gpu": dict(n_points=1024, head=(512, 256), global_mlp=(1024,), dropout=0.5,
                levels=[dict(n_centres=512, radius=0.1, n_samples=32, out=64),
                        dict(n_centres=256, radius=0.2, n_samples=32, out=128),
                        dict(n_centres=64, radius=0.4, n_samples=48, out=256),
                        dict(n_centres=16, radius=0.8, n_samples=48, out=512)]),
}
"""KPConv sizes per profile (the ``gpu`` radii double per level like KP-CNN's)."""


class KPConvNet(ConvClassifier):
    r"""KP-CNN-style classifier from rigid (or, in the last level, deformable) kernel point convolutions.

    .. math::  f'(x) = \phi\Big(\frac{1}{|\mathcal{N}_x|}\sum_{x_i \in \mathcal{N}_x}\sum_k
               \max\big(0, 1 - \lVert x_i - x - \tilde x_k\rVert/\sigma\big) f_i W_k\Big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (0: the constant feature 1).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        deformable: make the last level a deformable KPConv.

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, sizes: dict | None = None, deformable: bool = False):
        sizes = sizes or runtime.pick(SIZES)
        last = len(sizes["levels"]) - 1
        super().__init__(n_classes, in_channels, sizes, lambda c, spec, i: KPConv(
            c, spec["out"], spec["radius"], deformable=deformable and i == last))
        self.deformable = deformable
