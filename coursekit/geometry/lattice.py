r"""SPLATNet's lattice, a worked example: splat points onto a permutohedral lattice, convolve, slice back.

Su, Jampani, Sun, Maji, Kalogerakis, Yang, Kautz, "SPLATNet: sparse lattice networks for point
cloud processing", CVPR 2018 ("lattice: high-dimensional space"). A bilateral convolution layer
(BCL) works in three steps:

1. **Splat**: every point lies in one simplex of the *permutohedral lattice* :math:`A_d^*`
   (Adams, Baek, Davis, "Fast high-dimensional filtering using the permutohedral lattice",
   Eurographics 2010) and spreads its features onto the :math:`d + 1` vertices of that simplex
   with its barycentric weights. (A regular grid would need :math:`2^d` vertices per point; the
   permutohedral lattice needs :math:`d + 1`, so it scales to high-dimensional positions such as
   xyz + rgb.)
2. **Convolve** on the occupied lattice vertices only (a hash table of their keys), with a
   filter over each vertex and its :math:`2(d + 1)` lattice neighbours:

   .. math::  y_v = \sum_{\delta \in \{0, \pm e_0', \dots, \pm e_d'\}} W_\delta^\top x_{v + \delta}

3. **Slice**: read the result back at the points with the same barycentric weights.

The lattice lives in the hyperplane :math:`H_d = \{x \in \mathbb{R}^{d+1} : \sum_i x_i = 0\}`;
positions are *elevated* into it (:func:`elevate`) and vertices are the integer points of
:math:`H_d` whose coordinates are all congruent modulo :math:`d + 1`. The vertex keys, the
enclosing simplex and its barycentric weights follow Adams et al.'s reference code
(``permutohedral.h``), vectorised.

**Simplified (documented)**: one lattice scale (SPLATNet uses a different scale per layer), a
1-ring filter, one cloud at a time, and splatted features are normalised by the splatted weight
(a weighted mean per vertex, so density does not scale the signal; ``normalize=False`` gives
the plain sum). This is a worked cell, not a full model (the paper stacks BCLs at several
lattice scales and adds 2-D-3D fusion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .octree import sorted_lookup
from .sparse import neighbour_table_conv

__all__ = ["LatticeSplat", "elevate", "permutohedral_splat", "lattice_neighbours", "splat", "slice_lattice",
           "lattice_conv", "splat_conv_slice"]

_KEY_BITS = 20  # bits per packed lattice coordinate: d <= 3 coordinates fill 60 bits


def elevate(positions: torch.Tensor) -> torch.Tensor:
    r"""Embed ``(N, d)`` positions in the hyperplane :math:`\sum_i x_i = 0` of :math:`\mathbb{R}^{d+1}` (Adams et al.).

    .. math::  x = E\, \operatorname{diag}(\sigma)\, p, \qquad \sigma_i = \frac{(d + 1)\sqrt{2/3}}{\sqrt{(i + 1)(i + 2)}}

    with :math:`E` the orthogonal-column basis of the hyperplane used by the reference code
    (:math:`x_i = \sum_{j \ge i} c_j - i\, c_{i-1}`, :math:`c_j = \sigma_j p_j`). The scale makes the
    lattice spacing one standard deviation of the filter per unit of position.

    Returns:
        ``(N, d + 1)``, rows summing to 0.
    """
    n, d = positions.shape
    i = torch.arange(d, dtype=positions.dtype, device=positions.device)
    c = positions * ((d + 1) * math.sqrt(2 / 3) / torch.sqrt((i + 1) * (i + 2)))
    suffix = torch.flip(torch.cumsum(torch.flip(c, [1]), 1), [1])  # sum_{j >= i} c_j
    out = positions.new_zeros(n, d + 1)
    out[:, 0] = suffix[:, 0]
    out[:, 1:] = torch.cat([suffix[:, 1:], positions.new_zeros(n, 1)], 1) - i.add(1) * c
    return out


@dataclass
class LatticeSplat:
    """Where a cloud lands on the permutohedral lattice.

    Attributes:
        keys: ``(M, d + 1)`` ``int64`` coordinates of the occupied lattice vertices (rows sum to 0).
        vertex: ``(N, d + 1)`` ``int64`` row in ``keys`` of the vertices of each point's simplex.
        weights: ``(N, d + 1)`` barycentric weights (non-negative, summing to 1 per point).
        elevated: ``(N, d + 1)`` the elevated positions (:math:`\\sum_r w_r\\, \\text{key}_r = x`).
    """

    keys: torch.Tensor
    vertex: torch.Tensor
    weights: torch.Tensor
    elevated: torch.Tensor


def _pack(keys: torch.Tensor) -> torch.Tensor:
    """int64 key of the first ``d`` lattice coordinates (the last is minus their sum)."""
    d = keys.shape[1] - 1
    out = torch.zeros(keys.shape[0], dtype=torch.int64, device=keys.device)
    for i in range(d):
        out = (out << _KEY_BITS) | (keys[:, i] + (1 << (_KEY_BITS - 1)))
    return out


def permutohedral_splat(positions: torch.Tensor, spacing: float = 1.0) -> LatticeSplat:
    r"""Enclosing simplex and barycentric weights of every point on the permutohedral lattice.

    Adams et al.'s construction: the nearest *remainder-0* point :math:`r_0` (all coordinates
    multiples of :math:`d + 1`), corrected so its coordinates sum to 0; the *rank* of every
    coordinate of :math:`x - r_0`; the simplex vertices

    .. math::  v_k = r_0 + \text{canonical}_k[\text{rank}], \qquad
               \text{canonical}_k[i] = k - (d + 1)\,[i > d - k], \quad k = 0..d

    and barycentric weights :math:`b_k` from the sorted differences, so that
    :math:`\sum_k b_k v_k = x`, :math:`b_k \ge 0`, :math:`\sum_k b_k = 1`.

    Args:
        positions: ``(N, d)`` lattice features (xyz, or xyz + colour ...), ``d <= 3`` here.
        spacing: position units per lattice step (SPLATNet's :math:`1/\lambda`).

    Returns:
        the :class:`LatticeSplat`.
    """
    if positions.dim() != 2 or positions.shape[0] == 0 or not positions.dtype.is_floating_point:
        raise ValueError(f"positions must be a non-empty float (N, d) tensor, got {positions.dtype} {tuple(positions.shape)}")
    n, d = positions.shape
    if not 1 <= d <= 3:
        raise ValueError(f"this worked example packs lattice keys for d <= 3, got d = {d}")
    if not torch.isfinite(positions).all():
        raise ValueError("positions contain NaN or infinite values")
    x = elevate(positions.double() / spacing)
    d1 = d + 1
    v = x / d1
    up, down = torch.ceil(v) * d1, torch.floor(v) * d1
    rem0 = torch.where(up - x < x - down, up, down)
    total = torch.round(rem0.sum(1) / d1).long()  # how far r0 is off the hyperplane, in lattice steps
    diff = x - rem0
    # rank[i] = #{j < i : diff_j >= diff_i} + #{j > i : diff_j > diff_i}  (the reference code's tie rule)
    earlier = torch.tril(torch.ones(d1, d1, dtype=torch.bool, device=x.device), -1)  # [i, j]: j < i
    ge, gt = diff.unsqueeze(1) >= diff.unsqueeze(2), diff.unsqueeze(1) > diff.unsqueeze(2)  # [n, i, j]: diff_j vs diff_i
    rank = torch.where(earlier, ge, gt).sum(2)
    s = total.unsqueeze(1)
    high = (s > 0) & (rank >= d1 - s)
    low = (s < 0) & (rank < -s)
    rem0 = rem0 - d1 * high + d1 * low
    rank = rank + s - d1 * high + d1 * low
    delta = (x - rem0) / d1
    bary = x.new_zeros(n, d + 2)
    bary.scatter_add_(1, d - rank, delta)
    bary.scatter_add_(1, d + 1 - rank, -delta)
    bary[:, 0] += 1 + bary[:, d + 1]
    weights = bary[:, :d1]
    k = torch.arange(d1, device=x.device)
    canonical = torch.where(rank.unsqueeze(1) > d - k.view(1, d1, 1), k.view(1, d1, 1) - d1, k.view(1, d1, 1))  # (n, k, i)
    corners = (rem0.round().long().unsqueeze(1) + canonical).reshape(-1, d1)  # (n * (d + 1), d + 1)
    # unique() sorts rows lexicographically, which is also the order of their packed keys (the
    # packing is monotone and the last coordinate follows from the others): the hash table order
    keys, inverse = torch.unique(corners, dim=0, return_inverse=True)
    return LatticeSplat(keys, inverse.view(n, d1), weights.to(positions.dtype), x.to(positions.dtype))


def lattice_neighbours(keys: torch.Tensor) -> torch.Tensor:
    r"""Rows of every vertex and its :math:`2(d + 1)` lattice neighbours (``-1`` where not occupied).

    .. math::  v \pm \big((d + 1)\, e_j - \mathbf{1}\big), \qquad j = 0..d

    Args:
        keys: ``(M, d + 1)`` vertex keys sorted by their packed value (as :func:`permutohedral_splat` returns).

    Returns:
        ``(M, 2d + 3)`` ``int64``: column 0 the vertex itself, then ``+`` and ``-`` for each ``j``.
    """
    M, d1 = keys.shape
    table = _pack(keys)
    steps = d1 * torch.eye(d1, dtype=torch.int64, device=keys.device) - 1  # (d + 1, d + 1)
    offsets = torch.cat([torch.zeros(1, d1, dtype=torch.int64, device=keys.device),
                         torch.stack([steps, -steps], 1).reshape(-1, d1)])  # (2d + 3, d + 1)
    around = (keys.unsqueeze(1) + offsets).reshape(-1, d1)
    return sorted_lookup(table, _pack(around)).view(M, -1)


def splat(features: torch.Tensor, lattice: LatticeSplat, normalize: bool = True) -> torch.Tensor:
    r"""Spread ``(N, C)`` point features onto the lattice vertices with the barycentric weights.

    .. math::  x_v = \frac{\sum_{p, k : v_k(p) = v} b_k(p)\, f_p}{\sum_{p, k : v_k(p) = v} b_k(p)}
               \quad (\text{or just the numerator when not normalising})

    Returns:
        ``(M, C)``.
    """
    if features.dim() != 2 or features.shape[0] != lattice.vertex.shape[0]:
        raise ValueError(f"features must have shape ({lattice.vertex.shape[0]}, C), got {tuple(features.shape)}")
    w = lattice.weights.to(features.dtype)
    rows = lattice.vertex.reshape(-1)
    values = (w.unsqueeze(-1) * features.unsqueeze(1)).reshape(-1, features.shape[1])
    out = features.new_zeros(len(lattice.keys), features.shape[1]).index_add_(0, rows, values)
    if normalize:
        mass = features.new_zeros(len(lattice.keys)).index_add_(0, rows, w.reshape(-1))
        out = out / mass.clamp_min(1e-12).unsqueeze(1)
    return out


def slice_lattice(vertex_features: torch.Tensor, lattice: LatticeSplat) -> torch.Tensor:
    r"""Read lattice features back at the points: :math:`y_p = \sum_k b_k(p)\, x_{v_k(p)}`. Returns ``(N, C)``."""
    return (lattice.weights.to(vertex_features.dtype).unsqueeze(-1) * vertex_features[lattice.vertex]).sum(1)


def lattice_conv(vertex_features: torch.Tensor, neighbours: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    r"""1-ring convolution on the occupied lattice vertices (missing neighbours read as zero).

    .. math::  y_v = b + \sum_{t} W_t^\top x_{\mathcal{N}_t(v)}

    Args:
        vertex_features: ``(M, C_in)``.
        neighbours: ``(M, K)`` from :func:`lattice_neighbours`.
        weight: ``(K, C_in, C_out)``.
        bias: optional ``(C_out,)``.

    Returns:
        ``(M, C_out)``.
    """
    return neighbour_table_conv(vertex_features, neighbours, weight, bias, name="vertex_features", rows="M")


def splat_conv_slice(positions: torch.Tensor, features: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None = None, spacing: float = 1.0) -> torch.Tensor:
    r"""One bilateral convolution layer (SPLATNet BCL): splat, 1-ring lattice convolution, slice.

    .. math::  y = \operatorname{slice}\big(\operatorname{conv}(\operatorname{splat}(f))\big)

    Args:
        positions: ``(N, d)`` lattice features (``d <= 3``).
        features: ``(N, C_in)``.
        weight: ``(2d + 3, C_in, C_out)``.
        bias: optional ``(C_out,)``.
        spacing: position units per lattice step.

    Returns:
        ``(N, C_out)``, differentiable in ``features``, ``weight`` and ``bias``.
    """
    lattice = permutohedral_splat(positions, spacing)
    return slice_lattice(lattice_conv(splat(features, lattice), lattice_neighbours(lattice.keys), weight, bias), lattice)
