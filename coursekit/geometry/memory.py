r"""Memory of a shape as a dense grid, an octree and a sparse set ("Memory efficiency", computed).

A surface occupies :math:`O(R^2)` of the :math:`R^3` cells of a grid, so storing only the
occupied cells wins more the finer the grid. Every representation here stores one
``float32`` feature per cell it keeps:

============  =====================================================================
dense         :math:`R^3` features
octree        the keys and child tables of every level (:meth:`Octree.memory_bytes`)
              plus one feature per leaf
sparse set    one ``(batch, z, y, x)`` ``int64`` coordinate row plus one feature per occupied cell
============  =====================================================================
"""

from __future__ import annotations

import torch

from .octree import Octree
from .voxels import Bounds

FEATURE_BYTES = 4  # one float32 channel per stored cell
COORD_BYTES = 4 * 8  # (batch, z, y, x) int64


def representation_memory(points: torch.Tensor, resolutions, bounds: Bounds = (-1.0, 1.0)) -> list[dict]:
    r"""Bytes needed to store the occupancy of ``points`` at each resolution, three ways.

    .. math::  M_\text{dense} = 4 R^3, \qquad M_\text{sparse} = (32 + 4)\, n_R, \qquad
               M_\text{octree} = \sum_{L \le \log_2 R} 8\, n_L + 64\, n_L^{\text{internal}} + 4\, n_R

    Args:
        points: ``(N, 3)`` positions (e.g. samples of a mesh surface).
        resolutions: powers of two ``R`` (an octree of depth ``log2 R`` reaches them).
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        One dict per resolution with ``resolution``, ``occupied`` (cells), ``dense_bytes``,
        ``octree_bytes`` and ``sparse_bytes``.
    """
    rows = []
    for r in resolutions:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r & (r - 1):
            raise ValueError(f"resolutions must be powers of two, got {r!r}")
        tree = Octree.build(points, r.bit_length() - 1, bounds)
        occupied = tree.num_nodes(tree.depth)
        rows.append({
            "resolution": r,
            "occupied": occupied,
            "dense_bytes": r ** 3 * FEATURE_BYTES,
            "octree_bytes": tree.memory_bytes() + occupied * FEATURE_BYTES,
            "sparse_bytes": occupied * (COORD_BYTES + FEATURE_BYTES),
        })
    return rows
