r"""IM-Net: the implicit decoder of Chen & Zhang, "Learning Implicit Fields for Generative Shape Modeling", CVPR 2019.

An MLP on the concatenation of a shape code :math:`z` and a point :math:`p` whose every hidden
layer also receives :math:`[z, p]` again (the paper's skip connections), LeakyReLU (slope
0.02), and an output squashed into :math:`[0, 1]` by the paper's piecewise-linear clamp;
trained by mean squared error against the inside/outside value:

.. math::  h_1 = \phi(W_1 [z, p]), \quad h_{l+1} = \phi(W_{l+1} [h_l, z, p]), \quad
           f = \operatorname{clip}(w^\top h_L), \qquad
           \operatorname{clip}(y) = \max\big(\min(y,\ 0.01 y + 0.99),\ 0.01 y\big)

.. math::  \mathcal{L} = \frac{1}{BK} \sum_{b,k} \big(f(z_b, p_{bk}) - o_{bk}\big)^2

The surface is :math:`f = 0.5` (``march(..., level=0.5, inside="above")``; the table of
:mod:`.implicit_table` marches at 0.4, see its ``LEVELS``).

Kept from the paper (``IM-NET-pytorch/modelAE.py``, ``generator``): the skip of ``[z, p]``
into every layer, LeakyReLU 0.02, the output clamp, the MSE loss. Changed: widths from the
profile tables (paper: 2048, 1024, 512, 256, 128 with ``gf_dim = 128``), the encoder (the
shared image or point encoder of :mod:`.encoders` instead of IM-AE's 3D CNN / IM-SVR's
ResNet), trained end to end from the observation (the paper trains the auto-encoder IM-AE on
voxels first and then IM-SVR's image encoder to regress its codes), no coarse-to-fine
16^3 -> 32^3 -> 64^3 sampling schedule.

Shapes: ``points (B, K, 3)``, ``codes (B, C) -> (B, K)`` in ``[0, 1]`` (nearly).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...geometry.validate import check_points
from .encoders import make_encoder
from .occupancy_network import ConditionalField

__all__ = ["IMNetDecoder", "imnet_clip", "imnet_loss", "imnet"]


def imnet_clip(y: torch.Tensor) -> torch.Tensor:
    r"""IM-Net's output squashing: slope 1 in :math:`[0, 1]`, slope 0.01 outside.

    .. math::  \operatorname{clip}(y) = \max\big(\min(y,\ 0.01 y + 0.99),\ 0.01 y\big)
    """
    return torch.maximum(torch.minimum(y, 0.01 * y + 0.99), 0.01 * y)


class IMNetDecoder(nn.Module):
    r"""IM-Net's decoder: ``[z, p]`` fed to every layer, LeakyReLU 0.02, clipped linear output.

    .. math::  h_{l+1} = \mathrm{LeakyReLU}_{0.02}(W_{l+1} [h_l, z, p]), \qquad f = \operatorname{clip}(w^\top h_L)

    Args:
        c_dim: code size.
        widths: hidden widths (paper: 2048, 1024, 512, 256, 128).

    Shapes:
        ``points (B, K, 3)``, ``codes (B, c_dim) -> (B, K)``.
    """

    def __init__(self, c_dim: int, widths: Sequence[int] = (256, 128, 64, 32)):
        super().__init__()
        if not widths:
            raise ValueError("widths must list at least one hidden layer")
        d_in = c_dim + 3
        self.layers = nn.ModuleList()
        c = 0
        for w in widths:
            self.layers.append(nn.Linear(c + d_in, w))
            c = w
        self.out = nn.Linear(c + d_in, 1)
        self.act = nn.LeakyReLU(0.02)

    def forward(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        check_points(points)
        x = torch.cat([codes[:, None].expand(-1, points.shape[1], -1), points], -1)
        h = self.act(self.layers[0](x))
        for layer in self.layers[1:]:
            h = self.act(layer(torch.cat([h, x], -1)))
        return imnet_clip(self.out(torch.cat([h, x], -1))).squeeze(-1)


def imnet_loss(values: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    r"""IM-Net's mean squared error against the inside indicator :math:`o \in \{0, 1\}`.

    .. math::  \frac{1}{BK} \sum (f - o)^2
    """
    if values.shape != occupancy.shape:
        raise ValueError(f"values and occupancy must have the same shape, got {tuple(values.shape)} and {tuple(occupancy.shape)}")
    return (values - occupancy.to(values.dtype)).pow(2).mean()


def imnet(encoder: str = "image", c_dim: int = 128, widths: Sequence[int] = (256, 128, 64, 32), in_channels: int = 1,
          encoder_widths: Sequence[int] = (16, 32, 64, 128)) -> ConditionalField:
    """IM-Net with an image (``"image"``) or point-cloud (``"points"``) encoder.

    Train with ``loss_fn=imnet_loss``; march with ``level=0.5, inside="above"``.

    >>> net = imnet("points", c_dim=16, widths=(32, 16), encoder_widths=(16, 32))
    >>> net(torch.rand(2, 100, 3), torch.rand(2, 50, 3)).shape
    torch.Size([2, 50])
    """
    return ConditionalField(make_encoder(encoder, c_dim, encoder_widths, in_channels), IMNetDecoder(c_dim, widths))
