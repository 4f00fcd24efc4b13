r"""The two condition encoders shared by the conditional generators: an image CNN and a point-set encoder.

* :class:`ImageEncoder` — single-image reconstruction: a stride-2 CNN on a rendered view
  ``(B, C, H, W)``, global average pool, linear layer to the shape code ``z (B, latent)``. It
  also returns its feature maps, which Pixel2Mesh samples at the projected vertices.
* :class:`PointEncoder` — shape completion: PointNet without T-Nets on the partial cloud,
  :math:`z = W \max_i h(x_i)` (the clouds are in canonical pose).

Both are deliberately small: the lecture's point is the decoders.
"""

from __future__ import annotations

import torch
from torch import nn

from ...geometry.validate import check_points
from ...nn.mlp import SharedMLP

__all__ = ["ImageEncoder", "PointEncoder", "make_encoder"]


class ImageEncoder(nn.Module):
    r"""Stride-2 convolutions, global average pool, linear: an image to a shape code.

    .. math::  F_{k} = \mathrm{ReLU}(\mathrm{BN}(\mathrm{Conv}_{3\times3, s=2}(F_{k-1}))), \qquad
               z = W\, \mathrm{avgpool}(F_K) + b

    Args:
        in_channels: image channels (1: grey renders).
        latent: size of ``z``.
        widths: channels of the conv stages (each halves the resolution).

    Shapes:
        ``(B, C, H, W) -> (B, latent)``; :meth:`features` also gives the maps ``[(B, w_k, H/2^k, W/2^k)]``.
    """

    def __init__(self, in_channels: int = 1, latent: int = 128, widths=(16, 32, 64, 128)):
        super().__init__()
        stages, c = [], in_channels
        for w in widths:
            stages.append(nn.Sequential(nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                        nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()))
            c = w
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(c, latent)
        self.in_channels, self.latent, self.widths = in_channels, latent, tuple(widths)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(z (B, latent), [feature maps of every stage])``."""
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images must have shape (B, {self.in_channels}, H, W), got {tuple(images.shape)}")
        maps, x = [], images
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return self.fc(x.mean((2, 3))), maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)[0]


class PointEncoder(nn.Module):
    r"""PointNet encoder (no T-Nets): shared MLP, max pool, linear.

    .. math::  z = W \max_{i} h(x_i) + b

    Args:
        latent: size of ``z``.
        widths: the shared MLP's channels after the 3 coordinates.

    Shapes:
        ``(B, N, 3) -> (B, latent)``.
    """

    def __init__(self, latent: int = 128, widths=(64, 128, 256)):
        super().__init__()
        self.mlp = SharedMLP([3, *widths])
        self.fc = nn.Linear(widths[-1], latent)
        self.latent = latent

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        check_points(points)
        return self.fc(self.mlp(points).amax(1))


def make_encoder(kind: str, c_dim: int, widths, in_channels: int = 3) -> nn.Module:
    """The encoder of a conditional model: :class:`ImageEncoder` (``kind="image"``, ``in_channels``
    input channels, conv ``widths``) or :class:`PointEncoder` (``kind="points"``, shared-MLP ``widths``),
    both mapping their input to a ``(B, c_dim)`` code."""
    if kind == "image":
        return ImageEncoder(in_channels, c_dim, tuple(widths))
    if kind == "points":
        return PointEncoder(c_dim, tuple(widths))
    raise ValueError(f"encoder must be 'image' or 'points', got {kind!r}")
