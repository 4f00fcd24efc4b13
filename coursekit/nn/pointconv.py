r"""PointConv / Monte-Carlo convolution: a kernel MLP on relative coordinates, inverse-density weights.

The slide's continuous convolution :math:`(\mathcal{F} * g)(x) = \int g(y - x) f(y)\,dy` is
approximated by the empirical sum :math:`\sum_{x_j \in \mathcal{N}_x} g(x_j - x) f_j`, which
counts every sample equally, so a region sampled twice as densely weighs twice as much.
Monte-Carlo integration fixes that by dividing each sample by the density :math:`p(x_j)` it
was drawn with ("Remind us 'density estimation' from a population"):

.. math::  \int_{\mathcal{N}_x} g(y - x) f(y)\,dy \;\approx\; \frac{1}{n}\sum_{j} \frac{g(x_j - x)\, f_j}{p(x_j)}

* Hermosilla, Ritschel, Vázquez, Vinacua, Ropinski, "Monte Carlo Convolution for Learning on
  Non-Uniformly Sampled Point Clouds", SIGGRAPH Asia 2018: the estimator above with a
  kernel-density estimate of :math:`p`.
* Wu, Qi, Fuxin, "PointConv: Deep Convolutional Networks on 3D Point Clouds", CVPR 2019,
  eq. (3)-(4): :math:`g` is an MLP of the relative coordinates ("WeightNet"), :math:`1/p` a
  Gaussian kernel density estimate ("inverse density scale"), and the "efficient PointConv"
  reorders the sums so that one linear layer follows the aggregation:

.. math::  f'_i = W_{out}\ \operatorname{vec}\Big(\sum_{j \in \mathcal{N}(i)} w_{ij}\ \tilde f_j \otimes M(x_j - x_i)\Big),
           \qquad w_{ij} = \frac{1/\hat p(x_j)}{\sum_{k \in \mathcal{N}(i)} 1/\hat p(x_k)}

Kept from PointConv: the WeightNet MLP (hidden ``(8, 8)``, 16 outputs), Gaussian KDE over the
whole input cloud of the layer, the efficient reordering. Changed: the inverse densities are
used as they are, normalised to sum to one over the neighbourhood (the self-normalised
Monte-Carlo estimator: a density-weighted *mean* of the kernel response, independent of how
many samples fall in the ball and of the KDE's constant), where PointConv rescales them by
their neighbourhood maximum and passes them through a learned "DensityNet". The density is
treated as a constant of the sampling (no gradient flows through it).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..geometry.neighbors import group
from ..geometry.validate import check_points
from .mlp import NormAct, SharedMLP

_BLOCK = 1 << 22  # distances per block of the KDE


def kernel_density(points: torch.Tensor, bandwidth: float) -> torch.Tensor:
    r"""Gaussian kernel density estimate at every point of each cloud (constant w.r.t. autograd).

    .. math::  \hat p(x_i) = \frac{1}{N} \sum_{j=1}^{N} \frac{1}{(2\pi h^2)^{3/2}}
               \exp\Big(-\frac{\lVert x_i - x_j \rVert^2}{2 h^2}\Big)

    (PointConv's ``compute_density``; the sum includes :math:`j = i`). Computed block by block,
    never materialising more than ``2**22`` distances.

    Args:
        points: ``(B, N, 3)``.
        bandwidth: :math:`h > 0`.

    Returns:
        ``(B, N)`` densities (same dtype as ``points``, detached).
    """
    check_points(points)
    if not isinstance(bandwidth, (int, float)) or not bandwidth > 0 or not math.isfinite(bandwidth):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    points = points.detach()
    n = points.shape[1]
    rows = max(1, _BLOCK // (3 * n * points.shape[0]))
    out = []
    for start in range(0, n, rows):
        d2 = (points[:, start:start + rows, None, :] - points[:, None, :, :]).pow(2).sum(-1)
        out.append(torch.exp(-d2 / (2 * bandwidth ** 2)).mean(-1))
    return torch.cat(out, dim=1) / (2 * math.pi * bandwidth ** 2) ** 1.5


def inverse_density_weights(density: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    r"""Self-normalised Monte-Carlo weights :math:`w_{ij} = \hat p_j^{-1} / \sum_{k} \hat p_k^{-1}` over each neighbourhood.

    .. math::  w_{ij} = \frac{[j \text{ valid}]\ / \hat p(x_j)}{\sum_{k \in \mathcal{N}(i)} [k \text{ valid}]\ / \hat p(x_k)}

    Args:
        density: ``(B, N)`` from :func:`kernel_density`.
        idx: ``(B, M, S)`` neighbours.
        valid: ``(B, M, S)`` booleans (padded slots get weight 0).

    Returns:
        ``(B, M, S)`` non-negative weights summing to one over ``S`` (all zero for an empty ball).
    """
    inv = group(density.unsqueeze(-1), idx).squeeze(-1).reciprocal() * valid
    return inv / inv.sum(-1, keepdim=True).clamp_min(torch.finfo(inv.dtype).tiny)


class PointConv(nn.Module):
    r"""Density-weighted continuous convolution with an MLP kernel on relative coordinates.

    .. math::  f'_i = \phi\Big(W_{out}\ \operatorname{vec}\Big(\sum_{j \in \mathcal{N}(i)} w_{ij}\,
               g([\,x_j - x_i,\ f_j\,]) \otimes M(x_j - x_i)\Big)\Big)

    with :math:`g` an optional point-wise MLP (PointConv's ``mlp`` layers; identity when
    ``mlp`` is empty), :math:`M` the WeightNet (3 -> hidden -> ``weight_channels``, BatchNorm + ReLU),
    :math:`w_{ij}` from :func:`inverse_density_weights` (uniform :math:`1/|\mathcal{N}(i)|`
    with ``density_weighting=False``: the plain empirical convolution of the slide), and
    :math:`\phi` = BatchNorm + ReLU.

    Args:
        in_channels: feature channels ``C`` (0: coordinates only).
        out_channels: ``C_out``.
        bandwidth: KDE bandwidth :math:`h` (PointConv: 0.1, 0.2, 0.4 for its three levels).
        mlp: widths of :math:`g` (PointConv: e.g. ``(64, 64, 128)`` with ``out_channels = 128``).
        weight_hidden: hidden widths of :math:`M`.
        weight_channels: outputs of :math:`M` (PointConv: 16).
        density_weighting: use the inverse-density weights.
        activation: apply :math:`\phi` (``False``: the linear convolution only).

    Shapes:
        ``points (B, N, 3), features (B, N, C) or None, centres (B, M, 3), idx (B, M, S),
        valid (B, M, S) -> (B, M, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bandwidth: float, mlp: Sequence[int] = (),
                 weight_hidden: Sequence[int] = (8, 8), weight_channels: int = 16, density_weighting: bool = True,
                 activation: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.bandwidth = float(bandwidth)
        self.density_weighting = bool(density_weighting)
        self.mlp = SharedMLP([3 + self.in_channels, *mlp]) if mlp else nn.Identity()
        self.weight_net = SharedMLP([3, *weight_hidden, weight_channels])
        self.linear = nn.Linear((mlp[-1] if mlp else 3 + self.in_channels) * weight_channels, self.out_channels)
        self.act = NormAct(self.out_channels) if activation else nn.Identity()

    def forward(self, points: torch.Tensor, features: torch.Tensor | None, centres: torch.Tensor,
                idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is None:
            valid = torch.ones_like(idx, dtype=torch.bool)
        delta = group(points, idx) - centres.unsqueeze(2)
        x = self.mlp(delta if features is None else torch.cat([delta, group(features, idx)], dim=-1))
        if self.density_weighting:
            w = inverse_density_weights(kernel_density(points, self.bandwidth), idx, valid)
        else:
            w = valid / valid.sum(-1, keepdim=True).clamp_min(1)
        weighted = (x * w.to(x.dtype).unsqueeze(-1)).transpose(-1, -2)                 # (B, M, C, S)
        agg = weighted @ self.weight_net(delta)                                          # (B, M, C, weight_channels)
        return self.act(self.linear(agg.flatten(-2)))
