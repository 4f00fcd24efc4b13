r"""Kernel point convolution, rigid and deformable (KPConv).

Thomas, Qi, Deschaud, Marcotegui, Goulette, Guibas, "KPConv: Flexible and Deformable
Convolution for Point Clouds", ICCV 2019, eq. (1)-(4) and (8)-(10). The kernel is a set of
``K`` kernel points :math:`\tilde x_k` in the ball of radius ``r``, each carrying a weight
matrix :math:`W_k`; a neighbour's features reach each kernel point with a linear correlation
that fades to zero at distance :math:`\sigma`:

.. math::  (\mathcal{F} * g)(x) = \sum_{x_i \in \mathcal{N}_x} g(x_i - x) f_i, \qquad
           g(y_i) = \sum_{k < K} h(y_i, \tilde x_k) W_k, \qquad
           h(y_i, \tilde x_k) = \max\Big(0,\ 1 - \frac{\lVert y_i - \tilde x_k \rVert}{\sigma}\Big)

**Deformable KPConv** lets a rigid KPConv predict :math:`3K` offsets per centre, moving the
kernel points to :math:`\tilde x_k + \Delta_k(x)` (offsets in units of :math:`\sigma`,
initialised at zero: a fresh deformable KPConv *is* the rigid one). The paper regularises
them so they stay near the points (fitting) and apart (repulsion), eq. (10)-(11):

.. math::  \mathcal{L}_{fit} = \sum_k \min_{y_i} \Big(\frac{\lVert y_i - (\tilde x_k + \Delta_k)\rVert}{\sigma}\Big)^2,
           \qquad
           \mathcal{L}_{rep} = \sum_k \sum_{l \ne k} \max\Big(0,\ \rho - \frac{\lVert \tilde x_k + \Delta_k - \tilde x_l - \Delta_l\rVert}{\sigma}\Big)^2

Kept from the authors' PyTorch code (``KPConv`` and ``p2p_fitting_regularizer``): ``K = 15``
kernel points, the centre point fixed at the origin and the others at mean radius
``0.66 r``; :math:`\sigma = 0.48\,r` (``KP_extent = 1.2`` over ``conv_radius = 2.5`` grid
cells); the sum over neighbours divided by the number of real neighbours; the loss
``2 L_fit + L_rep`` with means over centres, :math:`\rho = 1.2`, and the other kernel points
detached in the repulsion. Changed: the disposition is not optimised by repulsion and
randomly rotated per layer, but fixed and symmetric — the centre, the 6 octahedron vertices
and the 8 cube corners (the vertices of a rhombic dodecahedron, all on one shell; other ``K``
use a Fibonacci sphere); neighbourhoods come from ball query (at most ``S`` per centre)
rather than from KPConv's grid subsampling and radius search; no modulations.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..geometry.neighbors import group
from .mlp import NormAct
from .set_abstraction import conv_defaults

KP_RATIO = 0.66
SIGMA_RATIO = 0.48
REPULSE_EXTENT = 1.2


def kernel_disposition(n_points: int = 15, radius: float = 1.0) -> torch.Tensor:
    r"""Kernel point positions: the centre, then ``K - 1`` points on the shell of radius ``0.66 r``.

    .. math::  \tilde x_0 = 0, \qquad \lVert \tilde x_k \rVert = 0.66\, r \quad (k \ge 1)

    ``K = 15``: the 6 octahedron vertices :math:`\pm e_a` and the 8 cube corners
    :math:`(\pm 1, \pm 1, \pm 1)/\sqrt 3`; otherwise a Fibonacci sphere of ``K - 1`` points.

    Args:
        n_points: ``K >= 2``.
        radius: the convolution radius ``r``.

    Returns:
        ``(K, 3)`` float32.
    """
    if n_points < 2:
        raise ValueError(f"a kernel needs at least 2 points (centre + shell), got {n_points}")
    if n_points == 15:
        octa = torch.cat([torch.eye(3), -torch.eye(3)])
        cube = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=3))) / math.sqrt(3)
        shell = torch.cat([octa, cube])
    else:
        m = n_points - 1
        i = torch.arange(m, dtype=torch.float64) + 0.5
        z = 1 - 2 * i / m
        phi = math.pi * (3 - math.sqrt(5)) * i
        rho = (1 - z * z).sqrt()
        shell = torch.stack([rho * phi.cos(), rho * phi.sin(), z], dim=-1).float()
    return torch.cat([torch.zeros(1, 3), shell]) * (KP_RATIO * radius)


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(-1).clamp_min(1e-24).sqrt()  # finite gradient where a point sits on a kernel point


class KPConv(nn.Module):
    r"""Kernel point convolution on given neighbourhoods, rigid or deformable.

    .. math::  f'(x) = \phi\Big(\frac{1}{|\mathcal{N}_x|} \sum_{x_i \in \mathcal{N}_x} \sum_{k<K}
               \max\Big(0, 1 - \frac{\lVert x_i - x - \tilde x_k - \sigma\Delta_k(x)\rVert}{\sigma}\Big)\, f_i W_k\Big)

    with :math:`\Delta = 0` (rigid) or predicted by a rigid KPConv (deformable), and
    :math:`\phi` = BatchNorm + ReLU. Input without features uses the constant feature 1 (as
    KPConv's first layer).

    Args:
        in_channels: feature channels ``C`` (0: the constant feature 1).
        out_channels: ``C_out``.
        radius: the neighbourhood radius ``r`` (kernel points lie within it).
        n_kernel_points: ``K`` (paper 15).
        sigma: influence distance (default ``0.48 r``).
        deformable: predict kernel point offsets.
        activation: apply :math:`\phi`.

    Shapes:
        ``points (B, N, 3), features (B, N, C) or None, centres (B, M, 3), idx (B, M, S),
        valid (B, M, S) -> (B, M, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, radius: float, n_kernel_points: int = 15,
                 sigma: float | None = None, deformable: bool = False, activation: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.radius = float(radius)
        self.sigma = float(sigma) if sigma is not None else SIGMA_RATIO * self.radius
        self.deformable = bool(deformable)
        self.register_buffer("kernel_points", kernel_disposition(n_kernel_points, self.radius))
        k, c = n_kernel_points, max(self.in_channels, 1)
        self.weight = nn.Parameter(torch.empty(k, c, self.out_channels))
        nn.init.kaiming_uniform_(self.weight.view(k * c, self.out_channels).T, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.act = NormAct(self.out_channels) if activation else nn.Identity()
        self.offset = None
        if self.deformable:
            self.offset = KPConv(in_channels, 3 * k, radius, n_kernel_points, self.sigma, deformable=False, activation=False)
            with torch.no_grad():
                self.offset.weight.zero_()
        self.last_min_d2: torch.Tensor | None = None
        self.last_kernel_points: torch.Tensor | None = None

    def forward(self, points: torch.Tensor, features: torch.Tensor | None, centres: torch.Tensor,
                idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        features, valid = conv_defaults(points, features, idx, valid)
        B, M, S = idx.shape
        y = group(points, idx) - centres.unsqueeze(2)                                   # (B, M, S, 3)
        kp = self.kernel_points.to(y.dtype).expand(B, M, -1, -1)                        # (B, M, K, 3)
        if self.offset is not None:
            kp = kp + self.sigma * self.offset(points, features, centres, idx, valid).view(B, M, -1, 3)
        d = _safe_norm(y.unsqueeze(3) - kp.unsqueeze(2))                                # (B, M, S, K)
        if self.offset is not None:
            self.last_min_d2 = (d * d).masked_fill(~valid.unsqueeze(-1), float("inf")).amin(dim=2)
            self.last_kernel_points = kp
        influence = torch.relu(1 - d / self.sigma) * valid.unsqueeze(-1)
        per_kernel = influence.transpose(-1, -2) @ group(features, idx)                  # (B, M, K, C)
        out = per_kernel.flatten(-2) @ self.weight.flatten(0, 1)
        out = out / valid.sum(-1, keepdim=True).clamp_min(1) + self.bias
        return self.act(out)

    def regularizer(self) -> torch.Tensor:
        r"""``2 L_fit + L_rep`` of the last forward pass (0 for a rigid KPConv or before any forward).

        .. math::  2\,\overline{\min_i \lVert y_i - \tilde x_k'\rVert^2 / \sigma^2}
                   + \frac{1}{K}\sum_k \overline{\sum_{l \ne k} \min\big(0,\ \lVert \tilde x_k' - \tilde x_l' \rVert/\sigma - \rho\big)^2}

        (bars: means over centres and kernel points; :math:`\tilde x'` the deformed kernel points,
        the :math:`\tilde x_l'` detached, :math:`\rho = 1.2`).
        """
        if self.last_min_d2 is None:
            return self.weight.new_zeros(())
        fitting = (self.last_min_d2 / self.sigma ** 2).mean()
        kp = self.last_kernel_points / self.sigma                                        # (B, M, K, 3)
        gap = _safe_norm(kp.unsqueeze(3) - kp.detach().unsqueeze(2))                    # (B, M, K, K)
        k = kp.shape[2]
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=kp.device)
        repulsion = (torch.clamp_max(gap - REPULSE_EXTENT, 0) ** 2 * off_diagonal).sum(-1).mean()
        return 2 * fitting + repulsion
