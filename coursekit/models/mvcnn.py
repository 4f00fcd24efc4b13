r"""Multi-view CNN and its single-view baseline ("CNN, 12 views") for shape classification.

Paper: Su, Maji, Kalogerakis, Learned-Miller, "Multi-view convolutional neural networks for 3D
shape recognition", ICCV 2015. The slides' pipeline: render the shape with multiple virtual
cameras; pass every image through CNN_1 (shared weights); combine the image features by view
pooling (element-wise max, :mod:`coursekit.nn.view_pooling`); pass the pooled feature through
CNN_2 to the class scores.

**Kept**: 12 cameras on a ring 30 degrees above the horizon or 20 on the vertices of a
dodecahedron (:func:`~coursekit.geometry.render.render_views`, the paper's two setups; its 80 views are these 20 with 4
in-plane rotations each); one CNN_1 shared by all views; view pooling after the last
convolution, before the fully connected layers (the paper pools after conv5); CNN_2 = FC -
ReLU - dropout - FC. The baseline :class:`SingleViewCNN` is the same network without view
pooling; its class probabilities are averaged over the views (the "CNN, 12 views" row).

**Scaled down**: VGG-M pre-trained on ImageNet becomes a small CNN trained from scratch
(``depth`` blocks of 3x3 conv - BN - ReLU - 2x2 max pool, widths ``width * 2^i`` capped at
``8 * width``), images 32-128 pixels instead of 224, one grey shaded channel, hidden FC 64-512
instead of 4096 (:data:`SIZES`).

Input: ``(B, V, C, H, W)`` views. From a world :class:`~coursekit.data.world.shapes.Shape`:
``render_views(shape.vertices, shape.faces, 12, 64)`` gives ``(V, 1, H, W)`` (stack a batch);
for a dataset, :func:`coursekit.data.world.datasets.make_multiview_split` renders the same
12-view ring.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import runtime
from ..geometry.render import render_views  # noqa: F401  (re-exported: the views MVCNN takes)
from ..nn.view_pooling import ViewPooling

#: Sizes per runtime profile: views, image side, base width, hidden FC units.
SIZES = {
    "fast": dict(views=12, image_size=32, width=8, hidden=64),
    "cpu": dict(views=12, image_size=64, width=8, hidden=128),
    "gpu": dict(views=12, image_size=128, width=32, hidden=512),
}


def _check_views(views: torch.Tensor, in_channels: int, image_size: int) -> None:
    if not isinstance(views, torch.Tensor) or views.dim() != 5:
        raise ValueError(f"views must have shape (B, V, C, H, W), got {tuple(getattr(views, 'shape', ()))}")
    if views.shape[1] == 0:
        raise ValueError("views has no views (V = 0)")
    if views.shape[2] != in_channels or views.shape[3:] != (image_size, image_size):
        raise ValueError(f"views must have shape (B, V, {in_channels}, {image_size}, {image_size}), got {tuple(views.shape)}")


class _ViewNetwork(nn.Module):
    """CNN_1 (shared per view) and CNN_2 (to class scores); subclasses decide how views combine."""

    def __init__(self, n_classes: int, in_channels: int, image_size: int | None, width: int | None,
                 hidden: int | None, dropout: float):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.image_size = image_size or sizes["image_size"]
        width = width or sizes["width"]
        hidden = hidden or sizes["hidden"]
        self.in_channels = in_channels
        depth = max(1, int(math.log2(self.image_size / 4)))  # down to a 4x4 map (or the nearest above)
        layers, c = [], in_channels
        for i in range(depth):
            c_out = width * min(2 ** i, 8)
            layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c = c_out
        self.cnn1 = nn.Sequential(*layers)
        side = self.image_size >> depth
        self.cnn2 = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))

    def view_features(self, views: torch.Tensor) -> torch.Tensor:
        """CNN_1 on every view: ``(B, V, C, H, W)`` -> ``(B, V, C', h, w)``."""
        _check_views(views, self.in_channels, self.image_size)
        B, V = views.shape[:2]
        f = self.cnn1(views.flatten(0, 1))
        return f.view(B, V, *f.shape[1:])


class MVCNN(_ViewNetwork):
    r"""Multi-view CNN: shared CNN_1 per view, element-wise max over views, CNN_2 to the classes.

    .. math::  \text{logits} = \mathrm{CNN}_2\Big(\max_{v} \mathrm{CNN}_1(I_v)\Big)

    Args:
        n_classes: number of classes.
        in_channels: image channels (1 for the grey renders).
        image_size, width, hidden: default from :data:`SIZES` for the active profile.
        dropout: in CNN_2.

    Shapes:
        ``views (B, V, C, H, W)`` (any ``V``; invariant to the order of the views) -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, image_size: int | None = None, width: int | None = None,
                 hidden: int | None = None, dropout: float = 0.5):
        super().__init__(n_classes, in_channels, image_size, width, hidden, dropout)
        self.view_pooling = ViewPooling()

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.cnn2(self.view_pooling(self.view_features(views)))


class SingleViewCNN(_ViewNetwork):
    r"""The "CNN, V views" baseline: one image CNN classifies every view; class probabilities are averaged.

    .. math::  \text{output} = \log \frac{1}{V} \sum_{v} \operatorname{softmax}\big(\mathrm{CNN}_2(\mathrm{CNN}_1(I_v))\big)

    The output is a log-probability, so ``cross_entropy`` and ``argmax`` use it like logits.
    Same layers as :class:`MVCNN`; only the view pooling is missing.

    Shapes:
        ``views (B, V, C, H, W)`` -> log-probabilities ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 1, image_size: int | None = None, width: int | None = None,
                 hidden: int | None = None, dropout: float = 0.5):
        super().__init__(n_classes, in_channels, image_size, width, hidden, dropout)

    def view_logits(self, views: torch.Tensor) -> torch.Tensor:
        """Class scores of every view on its own: ``(B, V, C, H, W)`` -> ``(B, V, n_classes)``."""
        f = self.view_features(views)
        B, V = f.shape[:2]
        return self.cnn2(f.flatten(0, 1)).view(B, V, -1)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(self.view_logits(views), dim=-1)
        return torch.logsumexp(log_p, dim=1) - math.log(log_p.shape[1])
