r"""Relation-shape convolution: neighbour weights learned from the geometric relation to the centre (RS-CNN).

Liu, Fan, Xiang, Pan, "Relation-Shape Convolutional Neural Network for Point Cloud Analysis",
CVPR 2019, eq. (2)-(4). A convolution over the neighbourhood :math:`\mathcal{N}(x_i)` whose
weight for neighbour :math:`x_j` is not a fixed parameter but a function of a low-level
relation between the two points,

.. math::  f_{P_{sub}} = \sigma\Big(\mathcal{A}\big(\{ \mathcal{T}(f_{x_j}) \odot
           \mathcal{M}(h_{ij}),\ \forall x_j \in \mathcal{N}(x_i) \}\big)\Big), \qquad
           h_{ij} = \big(\lVert x_i - x_j \rVert_2,\ x_i - x_j,\ x_i,\ x_j\big) \in \mathbb{R}^{10}

with :math:`\mathcal{M}` a shared MLP (10 -> hidden -> ``C_in``), :math:`\mathcal{A}` = max
and :math:`\sigma` = BatchNorm + ReLU. A last "channel-raising" linear map lifts ``C_in`` to
``C_out``. This follows the authors' code (``RSConv`` in ``utils/pytorch_utils``,
relation prior 1): ``max_pool(relu(bn(M(h) * x)))`` then ``relu(bn(cr_mapping(.)))``; the
hidden width of :math:`\mathcal{M}` is ``C_out / 4`` (``C_out / 2`` in the first layer).

Input features per neighbour are ``[(x_j - x_i) / r, f_j]``; in the first layer (no
features) the code "raises" the 3 coordinates to 16 channels with a point-wise layer first
(``lift=16`` here).
"""

from __future__ import annotations

import torch
from torch import nn

from ..geometry.neighbors import group
from .mlp import NormAct, SharedMLP


def relation_vector(points: torch.Tensor, centres: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    r"""The low-level relation :math:`h_{ij} = (\lVert x_i - x_j\rVert,\ x_i - x_j,\ x_i,\ x_j)`.

    Args:
        points: ``(B, N, 3)``; centres: ``(B, M, 3)`` (the :math:`x_i`); idx: ``(B, M, S)``.

    Returns:
        ``(B, M, S, 10)``.
    """
    xj = group(points, idx)
    xi = centres.unsqueeze(2).expand_as(xj)
    diff = xi - xj
    dist = diff.pow(2).sum(-1, keepdim=True).clamp_min(1e-24).sqrt()  # finite gradient at x_j = x_i
    return torch.cat([dist, diff, xi, xj], dim=-1)


class RSConv(nn.Module):
    r"""Relation-shape convolution on given neighbourhoods.

    .. math::  f'_i = \phi_{out}\Big(W_{cr}\ \max_{j \in \mathcal{N}(i)}
               \phi\big(\mathcal{M}(h_{ij}) \odot \mathcal{T}([\,(x_j - x_i)/r,\ f_j\,])\big)\Big)

    :math:`\mathcal{T}` is the identity, or the point-wise "raising" layer when ``lift`` is set.

    Args:
        in_channels: feature channels ``C`` of the input points (0: coordinates only).
        out_channels: ``C_out``.
        radius: the neighbourhood radius ``r`` used to scale the relative coordinates.
        lift: width of the raising layer :math:`\mathcal{T}` (RS-CNN's first layer: 16), or ``None``.
        hidden: width of :math:`\mathcal{M}`'s hidden layer (default ``C_out // 4``).

    Shapes:
        ``points (B, N, 3), features (B, N, C) or None, centres (B, M, 3), idx (B, M, S)
        -> (B, M, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, radius: float, lift: int | None = None,
                 hidden: int | None = None):
        super().__init__()
        self.radius = float(radius)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        width = 3 + self.in_channels
        self.lift = SharedMLP([width, lift]) if lift else None
        width = lift or width
        self.mapping = nn.Sequential(SharedMLP([10, hidden or max(1, self.out_channels // 4)]),
                                     nn.Linear(hidden or max(1, self.out_channels // 4), width))
        self.act = NormAct(width)
        self.channel_raising = SharedMLP([width, self.out_channels])

    def forward(self, points: torch.Tensor, features: torch.Tensor | None, centres: torch.Tensor,
                idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = (group(points, idx) - centres.unsqueeze(2)) / self.radius
        if features is not None:
            x = torch.cat([x, group(features, idx)], dim=-1)
        if self.lift is not None:
            x = self.lift(x)
        weights = self.mapping(relation_vector(points, centres, idx))
        # padded slots repeat a real neighbour: they cannot change the maximum
        return self.channel_raising(self.act(weights * x).amax(dim=2))
