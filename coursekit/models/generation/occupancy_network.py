r"""Occupancy Networks (Mescheder et al., CVPR 2019): an encoder and an occupancy decoder.

The slide's recipe "first map the input to a shape embedding, then reconstruct by decoding":
an encoder :math:`g_\psi` maps the observation (an image, or a point cloud) to a code
:math:`c`, and the decoder :math:`f_\theta(p, c) \in \mathbb{R}` is the logit of the
probability that point :math:`p` is inside the object. Training is binary cross-entropy on
points sampled in the volume with their true occupancy :math:`o \in \{0, 1\}`:

.. math::  \mathcal{L} = \frac{1}{BK} \sum_{b, k} \mathrm{BCE}\big(\sigma(f_\theta(p_{bk}, g_\psi(x_b))),\ o_{bk}\big)

The surface is the level set :math:`\sigma(f) = \tau` (``tau = 0.5``, i.e. logit 0, the authors'
default configuration; their single-image configuration uses 0.2 and the table of
:mod:`coursekit.models.generation.implicit_table` 0.4, see its ``LEVELS``), extracted with
:func:`coursekit.models.generation.marching.march` (``level=0``, ``inside="above"``).

Kept from the paper: the decoder ("Decoder" of ``im2mesh/onet/models/decoder.py``: the point
lifted by a linear layer, ``n_blocks`` fully connected ResNet blocks, the code added before
every block, ReLU, a linear logit) and BCE on volume samples (half near the surface, half
uniform). Changed: the encoders are the shared small ones of :mod:`.encoders` (a strided CNN;
paper: ResNet-18 on 224 px; a plain PointNet; paper: ResNet-PointNet), no conditional batch
norm, sizes from profile tables.

:class:`ConditionalField` is the generic encoder + decoder pair; IM-Net
(:mod:`.imnet`) plugs its own decoder into the same class.

Shapes: images ``(B, C, H, W)``, clouds ``(B, N, 3)``, query points ``(B, K, 3)``,
output ``(B, K)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.validate import check_points
from .encoders import make_encoder

__all__ = ["OccupancyDecoder", "ConditionalField", "occupancy_loss", "occupancy_network"]


class _ResnetBlockFC(nn.Module):
    """``x + fc2(relu(fc1(relu(x))))`` (the occupancy decoder's block)."""

    def __init__(self, width: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(torch.relu(x))))


class OccupancyDecoder(nn.Module):
    r"""The Occupancy Networks decoder: point lifted, code added before each ResNet block, a logit out.

    .. math::  h_0 = W_p p, \quad h_{l+1} = \mathrm{Block}_l(h_l + W_{c,l}\, c), \quad f = w^\top \mathrm{ReLU}(h_L)

    Args:
        c_dim: code size.
        hidden: width.
        n_blocks: ResNet blocks (paper 5).

    Shapes:
        ``points (B, K, 3)``, ``codes (B, c_dim) -> logits (B, K)``.
    """

    def __init__(self, c_dim: int, hidden: int = 128, n_blocks: int = 5):
        super().__init__()
        self.fc_p = nn.Linear(3, hidden)
        self.fc_c = nn.ModuleList([nn.Linear(c_dim, hidden) for _ in range(n_blocks)])
        self.blocks = nn.ModuleList([_ResnetBlockFC(hidden) for _ in range(n_blocks)])
        self.fc_out = nn.Linear(hidden, 1)

    def forward(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        check_points(points)
        h = self.fc_p(points)
        for fc_c, block in zip(self.fc_c, self.blocks):
            h = block(h + fc_c(codes)[:, None])
        return self.fc_out(torch.relu(h)).squeeze(-1)


class ConditionalField(nn.Module):
    """An encoder and an implicit decoder: ``field(inputs, points) = decoder(points, encoder(inputs))``.

    Args:
        encoder: observation ``(B, ...) -> (B, c_dim)``.
        decoder: ``(points (B, K, 3), codes (B, c_dim)) -> (B, K)``.

    Shapes:
        ``inputs (B, ...)``, ``points (B, K, 3) -> (B, K)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, inputs: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.decoder(points, self.encoder(inputs))

    @torch.no_grad()
    def field(self, inputs: torch.Tensor):
        """The field of ONE observation ``inputs (1, ...)`` as a callable ``(N, 3) -> (N,)`` for
        :func:`~coursekit.models.generation.marching.sample_grid` (the code is computed once)."""
        was_training = self.training
        self.eval()
        code = self.encoder(inputs)
        self.train(was_training)
        return lambda p: self.decoder(p[None].to(code.device), code)[0]


def occupancy_loss(logits: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    r"""Binary cross-entropy of occupancy logits (mean over points and batch).

    .. math::  -\frac{1}{BK}\sum \big(o \log \sigma(f) + (1 - o) \log(1 - \sigma(f))\big)

    Args:
        logits: ``(B, K)``; occupancy: ``(B, K)`` in ``{0, 1}`` (any float dtype).
    """
    if logits.shape != occupancy.shape:
        raise ValueError(f"logits and occupancy must have the same shape, got {tuple(logits.shape)} and {tuple(occupancy.shape)}")
    return F.binary_cross_entropy_with_logits(logits, occupancy.to(logits.dtype))


def occupancy_network(encoder: str = "image", c_dim: int = 128, hidden: int = 128, n_blocks: int = 5,
                      in_channels: int = 1, widths: Sequence[int] = (16, 32, 64, 128)) -> ConditionalField:
    """An Occupancy Network: an image (``"image"``) or point-cloud (``"points"``) encoder + :class:`OccupancyDecoder`.

    ``widths`` are the encoder's (:class:`~coursekit.models.generation.encoders.ImageEncoder` conv
    stages or :class:`~coursekit.models.generation.encoders.PointEncoder` shared-MLP channels).

    Train with ``loss_fn=occupancy_loss``; march with ``level=0.0, inside="above"`` (logits).

    >>> net = occupancy_network("points", c_dim=32, hidden=32, n_blocks=2)
    >>> net(torch.rand(2, 100, 3), torch.rand(2, 50, 3)).shape
    torch.Size([2, 50])
    """
    return ConditionalField(make_encoder(encoder, c_dim, widths, in_channels), OccupancyDecoder(c_dim, hidden, n_blocks))
