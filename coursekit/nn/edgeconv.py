r"""EdgeConv: an edge function on the k-nearest-neighbour graph, max-aggregated (DGCNN).

Wang, Sun, Liu, Sarma, Bronstein, Solomon, "Dynamic Graph CNN for Learning on Point Clouds",
ACM TOG 2019 (arXiv:1801.07829), eq. (7) and (8): the edge feature combines the centre's
global position with its neighbours' local offsets,

.. math::  e'_{ij} = h_\Theta(x_i,\ x_j - x_i) = \phi\big(\theta_m \cdot (x_j - x_i) + \phi_m \cdot x_i\big),
           \qquad x'_i = \max_{j : (i, j) \in \mathcal{E}} e'_{ij}

with :math:`\phi` = BatchNorm + LeakyReLU(0.2). The graph is **dynamic**: DGCNN recomputes the
kNN graph in the feature space of each layer, so points far apart in space but alike in
features become neighbours after the first layer. As in the authors' code (``knn`` by
``pairwise_distance.topk``), a point is its own nearest neighbour and counts among its ``k``.

Computation
    :math:`[x_i, x_j - x_i] W = x_i (W_a - W_b) + x_j W_b` for :math:`W = [W_a; W_b]`: the
    linear map is applied once per point and gathered per edge, instead of once per edge on
    the ``2C`` concatenation (same result, ``k`` times fewer multiplications).
"""

from __future__ import annotations

import torch
from torch import nn

from ..geometry.neighbors import group, knn
from ..geometry.validate import check_points
from .mlp import NormAct


def feature_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    r"""The ``k`` nearest neighbours of every point in the space of ``x``, itself included.

    .. math::  \mathcal{N}_k(i) = \operatorname*{arg\,min}_{|S| = k} \sum_{j \in S} \lVert x_i - x_j \rVert^2

    Args:
        x: ``(B, N, C)`` coordinates or features (any ``C``).
        k: ``1 <= k <= N``.

    Returns:
        ``(B, N, k)`` ``int64``, nearest first (the point itself first unless duplicated).
    """
    return knn(x, x, k)[1]


def edge_messages(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    r"""The linear part of the edge function on every edge: :math:`[x_i,\ x_j - x_i]\, W + b`.

    .. math::  m_{ij} = [x_i,\ x_j - x_i]\, W + b = x_i\,(W_a - W_b) + x_j\, W_b + b,
               \qquad W = \begin{bmatrix} W_a \\ W_b \end{bmatrix}

    Args:
        x: ``(B, N, C)``.
        idx: ``(B, N, k)`` neighbours of each point.
        weight: ``(2C, C')``, rows ``[:C]`` act on :math:`x_i`, rows ``[C:]`` on :math:`x_j - x_i`.
        bias: ``(C',)`` or ``None``.

    Returns:
        ``(B, N, k, C')``.
    """
    c = x.shape[-1]
    if weight.dim() != 2 or weight.shape[0] != 2 * c:
        raise ValueError(f"weight must have shape (2C, C') = ({2 * c}, C'), got {tuple(weight.shape)}")
    centre = x @ (weight[:c] - weight[c:])
    if bias is not None:
        centre = centre + bias
    return centre.unsqueeze(2) + group(x @ weight[c:], idx)


class EdgeConv(nn.Module):
    r"""DGCNN's EdgeConv on the dynamic kNN graph of its input.

    .. math::  x'_i = \max_{j \in \mathcal{N}_k(i)} \phi\big([x_i,\ x_j - x_i]\, W\big)

    Args:
        in_channels: ``C``.
        out_channels: ``C'``.
        k: neighbours per point (paper 20), the point itself included.
        norm: BatchNorm over all edges before the activation (paper: yes).
        negative_slope: LeakyReLU slope (paper code 0.2).

    Shapes:
        ``x (B, N, C)`` [, ``idx (B, N, k)`` to reuse a graph] ``-> (B, N, C')``.

    Example:
        >>> conv = EdgeConv(3, 64, k=20)
        >>> conv(torch.rand(2, 128, 3)).shape
        torch.Size([2, 128, 64])
    """

    def __init__(self, in_channels: int, out_channels: int, k: int, norm: bool = True, negative_slope: float = 0.2):
        super().__init__()
        self.k = int(k)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.theta = nn.Linear(2 * self.in_channels, self.out_channels, bias=not norm)
        self.act = NormAct(self.out_channels, norm, negative_slope)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        check_points(x, "x", dim=self.in_channels)
        if idx is None:
            idx = feature_knn(x, self.k)
        return self.act(edge_messages(x, idx, self.theta.weight.T, self.theta.bias)).amax(dim=2)
