r"""The shared (point-wise) MLP: the same small network applied to every point, neighbour or edge.

PointNet's :math:`h` in :math:`f(x_1, \dots, x_n) = \gamma \circ \max \circ\, (h(x_1), \dots, h(x_n))`
is a :class:`SharedMLP`; so are PointNet++'s mini-PointNets, DGCNN's edge function and every
"1x1 convolution" of the original code bases (``conv2d`` with a ``[1, 1]`` kernel on a
``(B, C, N, S)`` tensor is a linear map of the channel vector at each position).

Shapes
    Input ``(*, C_in)``, output ``(*, C_out)``: any number of leading axes (points, neighbours,
    clouds); the channel axis is last.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class NormAct(nn.Module):
    r"""BatchNorm over the last (channel) axis followed by a ReLU or LeakyReLU.

    .. math::  y = \phi\Big(\gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta\Big), \qquad
               \phi(t) = \max(t, \alpha t)

    The statistics :math:`\mu, \sigma^2` pool every leading position (all points and clouds of
    the batch), as ``BatchNorm2d`` does on a ``(B, C, N, S)`` tensor.

    Args:
        channels: ``C``.
        norm: apply BatchNorm (``False``: activation only).
        negative_slope: :math:`\alpha` (0: ReLU; DGCNN uses 0.2).

    Shapes:
        ``(*, C) -> (*, C)``.
    """

    def __init__(self, channels: int, norm: bool = True, negative_slope: float = 0.0):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels) if norm else None
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            shape = x.shape
            x = self.norm(x.reshape(-1, shape[-1])).reshape(shape)
        if self.negative_slope:
            return nn.functional.leaky_relu(x, self.negative_slope)
        return torch.relu(x)


class SharedMLP(nn.Sequential):
    r"""A stack of ``Linear -> BatchNorm -> ReLU`` layers applied to the last axis of any tensor.

    .. math::  h(x) = \phi(W_L \cdots \phi(W_2\, \phi(W_1 x + b_1) + b_2) \cdots + b_L)

    with :math:`\phi` = BatchNorm + ReLU (:class:`NormAct`). With BatchNorm the linear layers
    carry no bias (the norm's shift replaces it), as in the original code bases.

    Args:
        channels: ``(C_in, C_1, ..., C_L)``, at least two entries.
        norm: BatchNorm after each linear layer.
        negative_slope: LeakyReLU slope (0: ReLU).
        dropout: dropout probability after each layer (the classifier heads' 0.3-0.5).

    Shapes:
        ``(*, C_in) -> (*, C_L)``.

    Example:
        >>> h = SharedMLP([3, 64, 128])
        >>> h(torch.rand(2, 100, 3)).shape
        torch.Size([2, 100, 128])
    """

    def __init__(self, channels: Sequence[int], norm: bool = True, negative_slope: float = 0.0, dropout: float = 0.0):
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels must list at least two positive sizes (C_in, C_out), got {channels}")
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Linear(c_in, c_out, bias=not norm), NormAct(c_out, norm, negative_slope)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.in_channels, self.out_channels = channels[0], channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels on the last axis, got shape {tuple(x.shape)}")
        return super().forward(x)


def classifier_head(in_channels: int, hidden: Sequence[int], n_classes: int, dropout: float = 0.5,
                    negative_slope: float = 0.0) -> nn.Sequential:
    r"""The fully connected classifier :math:`\gamma` on a global feature: hidden layers, then logits.

    .. math::  \text{logits} = W_{\text{out}}\, \text{Dropout}(\phi(\cdots \phi(W_1 g)))+ b_{\text{out}}

    Args:
        in_channels: size of the global feature ``g``.
        hidden: hidden widths, e.g. ``(512, 256)`` (may be empty: one linear layer).
        n_classes: number of classes ``K``.
        dropout: dropout after each hidden layer (PointNet 0.3, PointNet++ SSG / DGCNN 0.5).
        negative_slope: LeakyReLU slope of the hidden layers.

    Shapes:
        ``(B, in_channels) -> (B, K)``.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    hidden = list(hidden)
    layers: list[nn.Module] = []
    if hidden:
        layers.append(SharedMLP([in_channels, *hidden], negative_slope=negative_slope, dropout=dropout))
    layers.append(nn.Linear(hidden[-1] if hidden else in_channels, n_classes))
    return nn.Sequential(*layers)
