r"""Octree convolution and pooling (O-CNN), and OctNet's hybrid grid-octree pooling for comparison.

**O-CNN** (Wang, Liu, Guo, Sun, Tong, "O-CNN: octree-based convolutional neural networks for 3D
shape analysis", SIGGRAPH 2017) keeps features only on the *occupied* octants of each octree
level, starting with a signal on the finest leaves (the average normal of the points inside).
A 3x3x3 convolution at level :math:`L` visits, for every occupied octant, the 27 neighbouring
octants of the same level, found with the octree's hash lookup
(:meth:`~coursekit.geometry.octree.Octree.neighbours`, a ``searchsorted`` over Morton keys);
empty neighbours contribute zero. O-CNN's "octree2col" gathers the 27 neighbour rows of every
octant into one ``(n_L, 27 C_in)`` matrix, and one GEMM finishes the convolution:

.. math::  y_j = b + \sum_{\delta \in \{-1,0,1\}^3} W_\delta^\top x_{\mathcal{N}(j, \delta)},
           \qquad x_{-1} := 0

Max pooling takes every occupied parent at level :math:`L - 1` to the maximum over its occupied
children, the eight child slots of the octree (:math:`\text{parent}(k) = k \gg 3`):

.. math::  y_p = \max_{c\,:\ \text{parent}(c) = p} x_c

Both cost :math:`O(n_L)`, the number of occupied octants: on a surface, :math:`O(4^L)` instead
of the :math:`8^L` of a dense grid.

**OctNet** (Riegler, Ulusoy, Geiger, "OctNet: learning deep 3D representations at high
resolutions", CVPR 2017) makes the other choice: it keeps features for *all* of space, but
stores a region that is uniform (usually empty) as one large cell. Space is a regular grid of
shallow octrees (depth at most 3, so each covers :math:`8^3` voxels); a cell of side :math:`s`
holds one feature vector standing for its :math:`s^3` voxels. Pooling 2x2x2 then does real work
only on the finest cells (groups of eight unit cells become one); a cell of side :math:`s \ge 2`
is constant, so its maximum is itself and it simply becomes a cell of side :math:`s / 2` of the
coarser grid. :func:`hybrid_grid_octree`, :func:`hybrid_max_pool` and :func:`hybrid_to_dense`
implement exactly that on a small scale (the test proves :func:`hybrid_max_pool` equals
``F.max_pool3d`` on the dense grid).

============================  =====================================  ========================================
                              O-CNN                                   OctNet
============================  =====================================  ========================================
what is stored                occupied octants only, every level     every voxel, uniform regions merged
empty space                   absent (zero when read)                large cells with a real feature value
structure                     one octree per shape, any depth        regular grid of depth-3 octrees
convolution cost              :math:`O(\#\text{occupied})`           :math:`O(\#\text{cells})` (+ cell faces)
============================  =====================================  ========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.validate import check_count
from ..geometry.octree import Octree, morton_decode
from ..geometry.sparse import kernel_offsets, neighbour_table_conv
from ..geometry.validate import check_points
from ..geometry.voxels import Bounds

__all__ = [
    "OctreeBatch",
    "octree_conv",
    "octree_max_pool",
    "OctreeConv",
    "OctreeMaxPool",
    "HybridCells",
    "hybrid_grid_octree",
    "hybrid_max_pool",
    "hybrid_to_dense",
]


class OctreeBatch:
    """The octrees of a batch of clouds, with the nodes of all samples concatenated per level.

    Row ``r`` of level ``L`` is node ``r - offsets[L][b]`` of sample ``b``'s tree; per-node
    features are ``(n_L, C)`` tensors in that order. Neighbour tables are built once per level
    and kernel size, from each tree's hash lookup.

    Attributes:
        trees: one :class:`~coursekit.geometry.octree.Octree` per sample.
        depth: finest level.
        device: where the trees' keys live (and every index tensor here).
        offsets: per level, ``(B + 1,)`` first row of each sample.
        batch: per level, ``(n_L,)`` ``int64`` sample of each row.
    """

    def __init__(self, trees: list[Octree]):
        if not trees:
            raise ValueError("an OctreeBatch needs at least one tree")
        if len({t.depth for t in trees}) != 1:
            raise ValueError(f"all trees must have the same depth, got {[t.depth for t in trees]}")
        self.trees = trees
        self.depth = trees[0].depth
        self.device = trees[0].keys[0].device
        self.offsets, self.batch = [], []
        for level in range(self.depth + 1):
            counts = torch.tensor([t.num_nodes(level) for t in trees], device=self.device)
            self.offsets.append(torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
            self.batch.append(torch.repeat_interleave(torch.arange(len(trees), device=self.device), counts))
        self._neighbours: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def build(cls, points: torch.Tensor, depth: int, bounds: Bounds = (-1.0, 1.0)) -> "OctreeBatch":
        """Octrees of ``(B, N, 3)`` clouds down to ``depth`` (``2**depth`` cells per axis at the leaves)."""
        check_points(points)
        return cls([Octree.build(cloud, depth, bounds) for cloud in points])

    def __len__(self) -> int:
        return len(self.trees)

    def num_nodes(self, level: int) -> int:
        """Occupied octants at ``level``, all samples together."""
        return int(self.offsets[level][-1])

    def leaf_average(self, values: torch.Tensor) -> torch.Tensor:
        r"""Average per-point ``values (B, N, C)`` over the points of every leaf (O-CNN's input signal).

        .. math::  x_j = \frac{1}{|P_j|} \sum_{p \in P_j} v_p

        Returns:
            ``(n_depth, C)`` in row order.
        """
        if values.dim() != 3 or values.shape[0] != len(self):
            raise ValueError(f"values must have shape ({len(self)}, N, C), got {tuple(values.shape)}")
        rows = torch.cat([torch.where(t.point_rows >= 0, t.point_rows + self.offsets[self.depth][b], -1)
                          for b, t in enumerate(self.trees)])
        flat = values.reshape(-1, values.shape[-1])
        if rows.numel() != flat.shape[0]:
            raise ValueError(f"values have {values.shape[1]} points per sample; the trees were built from a different cloud")
        keep = rows >= 0
        sums = flat.new_zeros(self.num_nodes(self.depth), flat.shape[1]).index_add_(0, rows[keep], flat[keep])
        counts = torch.bincount(rows[keep], minlength=sums.shape[0]).clamp_min(1).to(flat.dtype)
        return sums / counts.unsqueeze(1)

    def neighbours(self, level: int, kernel_size: int = 3) -> torch.Tensor:
        """``(n_L, k^3)`` rows of the neighbouring octants (row-major ``(dz, dy, dx)`` offsets; ``-1`` = empty)."""
        key = (level, kernel_size)
        if key not in self._neighbours:
            offsets = kernel_offsets(kernel_size)
            tables = []
            for b, tree in enumerate(self.trees):
                rows = tree.neighbours(level, tree.keys[level], offsets)
                tables.append(torch.where(rows >= 0, rows + self.offsets[level][b], rows))
            self._neighbours[key] = torch.cat(tables)
        return self._neighbours[key]

    def parents(self, level: int) -> torch.Tensor:
        r"""``(n_L,)`` row at ``level - 1`` of every node's parent (:math:`k \gg 3`)."""
        if not 1 <= level <= self.depth:
            raise ValueError(f"level must be in [1, {self.depth}], got {level}")
        return torch.cat([tree.lookup(level - 1, tree.keys[level] >> 3) + self.offsets[level - 1][b]
                          for b, tree in enumerate(self.trees)])

    def coords(self, level: int) -> torch.Tensor:
        """``(n_L, 4)`` ``int64`` ``(batch, z, y, x)`` cells of the rows of ``level``."""
        cells = torch.cat([morton_decode(t.keys[level], level) for t in self.trees])
        return torch.cat([self.batch[level].unsqueeze(1), cells], 1)

    def to_dense(self, features: torch.Tensor, level: int) -> torch.Tensor:
        """Scatter ``(n_L, C)`` node features into a dense ``(B, C, 2^L, 2^L, 2^L)`` grid (zeros at empty cells)."""
        if features.dim() != 2 or features.shape[0] != self.num_nodes(level):
            raise ValueError(f"features must have shape ({self.num_nodes(level)}, C) at level {level}, got {tuple(features.shape)}")
        r = 2 ** level
        dense = features.new_zeros(len(self), r, r, r, features.shape[1])
        b, z, y, x = self.coords(level).unbind(1)
        dense[b, z, y, x] = features
        return dense.permute(0, 4, 1, 2, 3)


def octree_conv(features: torch.Tensor, neighbours: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    r"""O-CNN convolution on the occupied octants of one level ("octree2col" + one GEMM).

    .. math::  y_j = b + \sum_{\delta} W_\delta^\top x_{\mathcal{N}(j, \delta)}, \qquad x_{-1} := 0

    Args:
        features: ``(n, C_in)`` per-octant features.
        neighbours: ``(n, K)`` ``int64`` rows of the ``K`` neighbours (``-1`` = empty).
        weight: ``(K, C_in, C_out)`` (the sparse layout; see ``nn.sparse_conv.weight_from_conv3d``).
        bias: optional ``(C_out,)``.

    Returns:
        ``(n, C_out)``.
    """
    return neighbour_table_conv(features, neighbours, weight, bias)  # octree2col + GEMM


def octree_max_pool(features: torch.Tensor, parents: torch.Tensor, n_parents: int) -> torch.Tensor:
    r"""2x2x2 max pooling over the occupied children of every occupied parent octant.

    .. math::  y_p = \max_{c\,:\ \text{parent}(c) = p} x_c

    Args:
        features: ``(n_L, C)`` child features.
        parents: ``(n_L,)`` parent row of each child.
        n_parents: ``n_{L-1}``.

    Returns:
        ``(n_{L-1}, C)``.
    """
    if parents.shape != features.shape[:1]:
        raise ValueError(f"parents must have shape ({features.shape[0]},), got {tuple(parents.shape)}")
    index = parents.unsqueeze(1).expand_as(features)
    return features.new_zeros(n_parents, features.shape[1]).scatter_reduce(0, index, features, "amax", include_self=False)


class OctreeConv(nn.Module):
    r"""3x3x3 (or ``k^3``) convolution restricted to the occupied octants of one octree level.

    .. math::  y_j = b + \sum_{\delta \in \{-r..r\}^3} W_\delta^\top x_{\mathcal{N}(j, \delta)}

    Equal to a dense ``Conv3d(k, padding=k // 2)`` on that level's grid, read at the occupied
    octants, with empty octants holding zero features (the tests check it).

    Shapes:
        ``features (n_L, C_in)``, an :class:`OctreeBatch` and ``level`` -> ``(n_L, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"), (kernel_size, "kernel_size")):
            check_count(value, name)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        bound = 1 / math.sqrt(in_channels * kernel_size ** 3)  # nn.Conv3d's default initialisation
        self.weight = nn.Parameter(torch.empty(kernel_size ** 3, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None

    def forward(self, features: torch.Tensor, octree: OctreeBatch, level: int) -> torch.Tensor:
        if features.dim() != 2 or features.shape[0] != octree.num_nodes(level):
            raise ValueError(f"features must have shape ({octree.num_nodes(level)}, C) at level {level}, "
                             f"got {tuple(features.shape)}")
        return octree_conv(features, octree.neighbours(level, self.kernel_size), self.weight, self.bias)


class OctreeMaxPool(nn.Module):
    """Max pooling from the occupied octants of ``level`` to their parents at ``level - 1``.

    Shapes:
        ``features (n_L, C)`` -> ``(n_{L-1}, C)``.
    """

    def forward(self, features: torch.Tensor, octree: OctreeBatch, level: int) -> torch.Tensor:
        return octree_max_pool(features, octree.parents(level), octree.num_nodes(level - 1))


# ------------------------------------------------------------------ OctNet, for comparison

@dataclass
class HybridCells:
    """A hybrid grid-octree (OctNet): a partition of a ``(D, H, W)`` grid into aligned cubic cells.

    Attributes:
        corners: ``(M, 3)`` ``int64`` ``(z, y, x)`` first voxel of each cell (a multiple of its size).
        sizes: ``(M,)`` ``int64`` side of each cell in voxels (a power of two).
        features: ``(M, C)`` the one feature vector of each cell (constant over its voxels).
        shape: ``(D, H, W)`` of the grid.
    """

    corners: torch.Tensor
    sizes: torch.Tensor
    features: torch.Tensor
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return self.corners.shape[0]


def hybrid_grid_octree(grid: torch.Tensor, block: int = 8) -> HybridCells:
    r"""Split a dense ``(C, D, H, W)`` grid into OctNet cells: blocks of ``block^3`` voxels (the grid of
    shallow octrees) split in eight while not uniform.

    .. math::  \text{leaf}(c, s) \iff \big(x \text{ constant on } c \ \lor\ s = 1\big)
               \ \land\ x \text{ not constant on every ancestor of } c

    Args:
        grid: ``(C, D, H, W)`` features; ``D, H, W`` multiples of ``block``.
        block: side of each shallow octree, a power of two (OctNet: 8, octrees of depth 3).

    Returns:
        the :class:`HybridCells`.
    """
    if grid.dim() != 4:
        raise ValueError(f"grid must have shape (C, D, H, W), got {tuple(grid.shape)}")
    check_count(block, "block")
    if block & (block - 1) or any(n % block for n in grid.shape[1:]):
        raise ValueError(f"block must be a power of two dividing (D, H, W) = {tuple(grid.shape[1:])}, got {block}")
    corners, sizes, features = [], [], []
    considered = None
    s = block
    while s >= 1:
        high = F.max_pool3d(grid.unsqueeze(0), s)[0]
        low = -F.max_pool3d(-grid.unsqueeze(0), s)[0]
        uniform = (high == low).all(0)  # (D/s, H/s, W/s)
        if considered is None:
            considered = torch.ones_like(uniform)
        leaf = considered & (uniform | (s == 1))
        cells = torch.nonzero(leaf)
        corners.append(cells * s)
        sizes.append(torch.full((len(cells),), s, dtype=torch.int64))
        features.append(high[:, leaf].T)
        split = considered & ~leaf
        considered = split.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
        s //= 2
    return HybridCells(torch.cat(corners), torch.cat(sizes), torch.cat(features), tuple(grid.shape[1:]))


def hybrid_max_pool(cells: HybridCells) -> HybridCells:
    r"""2x2x2 max pooling on a grid-octree: unit cells pool in groups of eight, larger cells halve.

    .. math::  y_{\lfloor c/2 \rfloor} = \max_{c' : \lfloor c'/2 \rfloor = \lfloor c/2 \rfloor} x_{c'}
               \ \ (s = 1), \qquad (c, s, x) \mapsto (c/2,\ s/2,\ x) \ \ (s \ge 2)

    A cell of side :math:`s \ge 2` is constant, so the max over any 2x2x2 block inside it is its
    own value: no computation at all for the (mostly empty) space it covers.

    Returns:
        the :class:`HybridCells` of the ``(D/2, H/2, W/2)`` grid.
    """
    if any(n % 2 for n in cells.shape):
        raise ValueError(f"pooling needs even (D, H, W), got {cells.shape}")
    big = cells.sizes >= 2
    unit = ~big
    parents, inverse = torch.unique(cells.corners[unit] // 2, dim=0, return_inverse=True)
    feats = cells.features[unit]
    pooled = feats.new_zeros(len(parents), feats.shape[1]).scatter_reduce(
        0, inverse.unsqueeze(1).expand_as(feats), feats, "amax", include_self=False)
    return HybridCells(
        torch.cat([cells.corners[big] // 2, parents]),
        torch.cat([cells.sizes[big] // 2, torch.ones(len(parents), dtype=torch.int64)]),
        torch.cat([cells.features[big], pooled]),
        tuple(n // 2 for n in cells.shape),
    )


def hybrid_to_dense(cells: HybridCells) -> torch.Tensor:
    """Expand the cells into the dense ``(C, D, H, W)`` grid they stand for."""
    dense = cells.features.new_zeros(cells.features.shape[1], *cells.shape)
    for s in cells.sizes.unique().tolist():
        sel = cells.sizes == s
        r = torch.arange(s)
        local = torch.cartesian_prod(r, r, r)  # (s^3, 3)
        voxels = (cells.corners[sel].unsqueeze(1) + local).reshape(-1, 3)
        values = cells.features[sel].repeat_interleave(s ** 3, 0)
        dense[:, voxels[:, 0], voxels[:, 1], voxels[:, 2]] = values.T
    return dense
