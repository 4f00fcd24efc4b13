r"""Octrees: "recursively partition the space", storing only occupied octants.

Storage (as in O-CNN, Wang et al., SIGGRAPH 2017): one sorted ``int64`` tensor of **Morton
keys** per level; level ``L`` divides the bounds into ``2**L`` cells per axis and keeps the
cells that contain a point. Every internal node has exactly eight child *slots* (a
``(n_L, 8)`` table of rows at level ``L + 1``, ``-1`` for an empty octant).

Morton keys interleave the bits of the ``(z, y, x)`` cell coordinates (``voxels`` module
convention), z highest:

.. math::  \text{key}(z, y, x) = \sum_{j} \left(4 z_j + 2 y_j + x_j\right) 8^{j}

so a key's last three bits name the octant ``4 z_0 + 2 y_0 + x_0`` inside its parent,
``parent = key >> 3`` and ``children = 8 key + {0..7}``; the eight children of a node come
in the row-major ``(z, y, x)`` order of a ``(2, 2, 2)`` block. (O-CNN interleaves x highest;
z highest matches the ``(D, H, W)`` layout of our grids.)

"Neighborhood searching: hash table". The table here is the sorted key tensor itself:
:func:`torch.searchsorted` finds a key in :math:`O(\log n)`, for a whole batch of queries
in one vectorised call, on any device. A Python ``dict`` would need one interpreter step per
lookup (far slower for the ``27 n`` lookups of a 3x3x3 convolution) and cannot live on a
GPU; PyTorch has no built-in hash map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .voxels import Bounds, _check_bounds, cell_indices, voxelize_points

MAX_DEPTH = 21  # 3 x 21 bits fill a non-negative int64


def morton_encode(cells: torch.Tensor, level: int) -> torch.Tensor:
    """Morton keys of ``(..., 3)`` ``int64`` ``(z, y, x)`` cells in ``[0, 2**level)``; returns ``(...)`` ``int64``."""
    key = torch.zeros(cells.shape[:-1], dtype=torch.int64, device=cells.device)
    for j in range(level):
        for axis, shift in ((0, 2), (1, 1), (2, 0)):
            key |= ((cells[..., axis] >> j) & 1) << (3 * j + shift)
    return key


def morton_decode(keys: torch.Tensor, level: int) -> torch.Tensor:
    """Inverse of :func:`morton_encode`: ``(...)`` keys -> ``(..., 3)`` ``(z, y, x)`` cells."""
    cells = torch.zeros(*keys.shape, 3, dtype=torch.int64, device=keys.device)
    for j in range(level):
        for axis, shift in ((0, 2), (1, 1), (2, 0)):
            cells[..., axis] |= ((keys >> (3 * j + shift)) & 1) << j
    return cells


def sorted_lookup(table: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Rows of ``keys`` in the sorted 1-D ``table`` (``-1`` where absent): the searchsorted "hash table"."""
    if table.numel() == 0:
        return torch.full_like(keys, -1)
    rows = torch.searchsorted(table, keys).clamp_max(table.numel() - 1)
    return torch.where(table[rows] == keys, rows, torch.full_like(rows, -1))


@dataclass
class Octree:
    """An octree over one point cloud; build it with :meth:`Octree.build`.

    Attributes:
        depth: finest level (level ``L`` has ``2**L`` cells per axis; level 0 is the root).
        bounds: ``(lo, hi)`` of the cube it partitions.
        keys: per level, the sorted ``(n_L,)`` ``int64`` Morton keys of occupied cells.
            A node's *row* is its position in ``keys[L]`` (and in any per-node feature tensor).
        child_rows: per level ``L < depth``, the ``(n_L, 8)`` ``int64`` rows of the children
            at level ``L + 1``, ``-1`` for an empty octant.
        point_rows: ``(N,)`` ``int64`` row of each input point's leaf, ``-1`` for points outside ``bounds``.
    """

    depth: int
    bounds: Bounds
    keys: list[torch.Tensor]
    child_rows: list[torch.Tensor]
    point_rows: torch.Tensor

    @classmethod
    def build(cls, points: torch.Tensor, depth: int, bounds: Bounds = (-1.0, 1.0)) -> "Octree":
        r"""Partition the bounds recursively around a point cloud, down to ``depth``.

        .. math::  K_{\text{depth}} = \operatorname{unique}\{\text{key}(\text{cell}(p))\}, \qquad
                   K_{L-1} = \operatorname{unique}\{ k \gg 3 : k \in K_L \}

        Args:
            points: ``(N, 3)`` float ``(x, y, z)`` positions; points outside ``bounds`` are
                dropped (``voxels`` convention).
            depth: finest level, ``0 <= depth <= 21``.
            bounds: ``(lo, hi)`` of the cube.
        """
        if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {tuple(getattr(points, 'shape', ()))}")
        if not points.dtype.is_floating_point or not torch.isfinite(points).all():
            raise ValueError("points must be a finite float tensor")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be an int in [0, {MAX_DEPTH}], got {depth!r}")
        bounds = _check_bounds(bounds)
        cells, inside = cell_indices(points, 2 ** depth, bounds)
        leaf_keys = morton_encode(cells, depth)
        keys = [torch.unique(leaf_keys[inside])]
        for _ in range(depth):
            keys.insert(0, torch.unique(keys[0] >> 3))
        child_rows = []
        for level in range(depth):
            table = torch.full((len(keys[level]), 8), -1, dtype=torch.int64, device=points.device)
            children = keys[level + 1]
            table[sorted_lookup(keys[level], children >> 3), children & 7] = torch.arange(len(children), device=points.device)
            child_rows.append(table)
        point_rows = torch.where(inside, sorted_lookup(keys[depth], leaf_keys), torch.full_like(leaf_keys, -1))
        return cls(depth, bounds, keys, child_rows, point_rows)

    def _level(self, level: int, leaf_ok: bool = True, root_ok: bool = True) -> None:
        low, high = (0 if root_ok else 1), (self.depth if leaf_ok else self.depth - 1)
        if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
            raise ValueError(f"level must be an int in [{low}, {high}], got {level!r}")

    def num_nodes(self, level: int) -> int:
        """Number of occupied cells at ``level``."""
        self._level(level)
        return len(self.keys[level])

    def coords(self, level: int) -> torch.Tensor:
        """``(n_L, 3)`` ``int64`` ``(z, y, x)`` cells of the nodes at ``level``, in row order."""
        self._level(level)
        return morton_decode(self.keys[level], level)

    def lookup(self, level: int, keys: torch.Tensor) -> torch.Tensor:
        """Rows of ``keys`` at ``level`` (``-1`` where the cell is empty)."""
        self._level(level)
        return sorted_lookup(self.keys[level], keys)

    def children(self, level: int, keys: torch.Tensor) -> torch.Tensor:
        r"""The eight child slots of nodes: ``(K, 8)`` rows at ``level + 1`` (``-1`` for empty octants).

        .. math::  \text{child}_c(k) = 8k + c, \qquad c = 4 z_0 + 2 y_0 + x_0 \in \{0, \dots, 7\}

        Args:
            level: level of the parents, ``0 <= level < depth``.
            keys: ``(K,)`` keys of occupied nodes at ``level``.
        """
        self._level(level, leaf_ok=False)
        rows = self.lookup(level, keys)
        if (rows < 0).any():
            raise ValueError(f"keys {keys[rows < 0].tolist()} are not nodes of level {level}")
        return self.child_rows[level][rows]

    def parent(self, level: int, keys: torch.Tensor) -> torch.Tensor:
        r"""Keys of the parents (at ``level - 1``) of keys at ``level``: :math:`k \gg 3`."""
        self._level(level, root_ok=False)
        return keys >> 3

    def neighbours(self, level: int, keys: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        r"""Rows of the cells at ``cell(k) + offset`` for every key and offset (``-1``: empty or outside).

        .. math::  \text{row}\left(\text{key}\left(\text{cell}(k) + \delta\right)\right)

        Args:
            level: level of the keys.
            keys: ``(K,)`` keys at ``level``.
            offsets: ``(O, 3)`` ``int64`` ``(dz, dy, dx)`` offsets, e.g. the 27 of a 3x3x3 kernel.

        Returns:
            ``(K, O)`` ``int64`` rows at ``level``.
        """
        self._level(level)
        if not isinstance(offsets, torch.Tensor) or offsets.dim() != 2 or offsets.shape[-1] != 3 or offsets.dtype != torch.int64:
            raise ValueError(f"offsets must be an (O, 3) int64 tensor, got {getattr(offsets, 'dtype', None)} "
                             f"{tuple(getattr(offsets, 'shape', ()))}")
        cells = morton_decode(keys, level).unsqueeze(1) + offsets
        inside = ((cells >= 0) & (cells < 2 ** level)).all(-1)
        rows = self.lookup(level, morton_encode(cells.clamp(0, 2 ** level - 1), level))
        return torch.where(inside, rows, torch.full_like(rows, -1))

    def level_occupancy(self, level: int) -> torch.Tensor:
        """Dense ``(2**L, 2**L, 2**L)`` bool grid of the occupied cells at ``level`` (axes ``(z, y, x)``)."""
        self._level(level)
        r = 2 ** level
        grid = torch.zeros(r, r, r, dtype=torch.bool, device=self.keys[level].device)
        z, y, x = self.coords(level).unbind(-1)
        grid[z, y, x] = True
        return grid

    def memory_bytes(self) -> int:
        """Bytes of the tensors that describe the tree (keys and child tables of every level)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.child_rows)


def octree_occupancy(points: torch.Tensor, depth: int, bounds: Bounds = (-1.0, 1.0)) -> list[torch.Tensor]:
    r"""Dense occupancy of every octree level, root first: ``[O_0, O_1, ..., O_depth]``.

    .. math::  O_L[z, y, x] = \bigvee_{c \in \{0,1\}^3} O_{L+1}[2z + c_z,\ 2y + c_y,\ 2x + c_x]

    Args:
        points: ``(N, 3)`` positions (outside ``bounds``: dropped).
        depth: finest level.
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        ``depth + 1`` bool tensors; level ``L`` has shape ``(2**L, 2**L, 2**L)``.
    """
    tree = Octree.build(points, depth, bounds)
    return [tree.level_occupancy(level) for level in range(depth + 1)]


def _octree_occupancy_naive(points: torch.Tensor, depth: int, bounds: Bounds = (-1.0, 1.0)) -> list[torch.Tensor]:
    """Voxelise the points at the finest level, then OR-pool 2x2x2 blocks up to the root."""
    grids = [voxelize_points(points[None], 2 ** depth, bounds)[0, 0] > 0]
    for _ in range(depth):
        r = grids[0].shape[0] // 2
        grids.insert(0, grids[0].reshape(r, 2, r, 2, r, 2).any(5).any(3).any(1))
    return grids
