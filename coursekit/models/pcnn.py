r"""PCNN classifier: convolutions with RBF-interpolated continuous kernels on PointNet++'s hierarchy.

Atzmon, Maron, Lipman, "Point Convolutional Neural Networks by Extension Operators", ACM TOG
(SIGGRAPH) 2018 (arXiv:1803.10091); the slide's "interpolated kernel for convolution",
:math:`\kappa_{jm}(z) = \sum_l k_{ljm}\Phi(|z - y_l|)`.

Kept: the convolution operator (27 lattice translations, Gaussian RBF, see
:mod:`coursekit.nn.pcnn` for its simplified extension/restriction), a hierarchy of
convolution + pooling levels ending in a global max pool and an FC head with dropout 0.5.
Changed (scaled): the paper pools by farthest-point subsampling between three convolution
blocks with its own widths; here each level is one PCNN convolution on farthest-point-sampled
centres with a ball-query neighbourhood, widths from the table :data:`SIZES`.
"""

from __future__ import annotations

from .. import runtime
from ..nn.pcnn import PCNNConv
from .pointnet2 import CONV_FAST_SIZES, ConvClassifier

SIZES = {
    "fast": CONV_FAST_SIZES,
    "cpu": dict(n_points=512, head=(128, 64), global_mlp=(256,), dropout=0.5,
                levels=[dict(n_centres=128, radius=0.3, n_samples=32, out=64),
                        dict(n_centres=32, radius=0.6, n_samples=32, out=128)]),
    "gpu": dict(n_points=1024, head=(512, 256), global_mlp=(1024,), dropout=0.5,
                levels=[dict(n_centres=512, radius=0.15, n_samples=32, out=128),
                        dict(n_centres=256, radius=0.2, n_samples=32, out=256),
                        dict(n_centres=64, radius=0.4, n_samples=64, out=512)]),
}
"""PCNN sizes per profile."""


class PCNN(ConvClassifier):
    r"""Point convolutional network by extension operators (classification).

    .. math::  f'_m(x_i) = \phi\Big(\frac{1}{|\mathcal{N}(i)|}\sum_{q} \sum_j f_j(x_q)\,
               \sum_l k_{ljm}\, \Phi(\lvert x_q - x_i - y_l\rvert)\Big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (0: the constant feature 1).
        sizes: a :data:`SIZES` entry (default: the active profile's).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, sizes: dict | None = None):
        super().__init__(n_classes, in_channels, sizes or runtime.pick(SIZES),
                         lambda c, spec, i: PCNNConv(c, spec["out"], spec["radius"]))
