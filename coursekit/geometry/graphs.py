r"""Graphs on points and meshes ("points -> nodes, neighborhood -> edges").

Edges are ``(2, E)`` ``int64`` tensors in PyTorch Geometric's ``edge_index`` layout with its
default ``flow="source_to_target"``: **row 0 holds the source j, row 1 the target i**, and a
message passes from ``j`` to ``i``. In a k-NN graph "every target node will have exactly k
source nodes pointing to it" (PyG documentation of ``torch_geometric.transforms.KNNGraph``),
so ``edge_index[1]`` is the centre and ``edge_index[0]`` its neighbour. A layer aggregates
with ``out.index_add_(0, edge_index[1], message(x[edge_index[1]], x[edge_index[0]]))``.
"""

from __future__ import annotations

import torch

from .neighbors import ball_query, knn
from .validate import check_count, check_radius


def _check_cloud(points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(getattr(points, 'shape', ()))}")


def _drop_self(idx: torch.Tensor, keep: int) -> torch.Tensor:
    """Remove each row's own index from ``(N, K)`` neighbour lists, keeping the first ``keep`` others."""
    is_self = idx == torch.arange(len(idx), device=idx.device).unsqueeze(1)
    order = torch.sort(is_self.to(torch.int8), dim=1, stable=True).indices  # self entries move last
    return idx.gather(1, order)[:, :keep]


def knn_graph(points: torch.Tensor, k: int, loop: bool = False) -> torch.Tensor:
    r"""Directed k-nearest-neighbour graph: an edge from each of the ``k`` nearest points to every point.

    .. math::  \mathcal{E} = \{(j \to i) : j \in \mathcal{N}_k(i)\}

    Args:
        points: ``(N, 3)`` positions.
        k: neighbours per node (``k <= N - 1`` without loops, ``k <= N`` with).
        loop: count the point itself as one of its neighbours.

    Returns:
        ``(2, N k)`` ``int64`` ``edge_index`` (row 0 source ``j``, row 1 target ``i``), grouped by
        target in increasing order, nearest source first.
    """
    _check_cloud(points)
    n = points.shape[0]
    check_count(k, "k", n if loop else n - 1, "N" if loop else "N - 1")
    if loop:
        _, idx = knn(points[None], points[None], k)
        idx = idx[0]
    else:
        _, idx = knn(points[None], points[None], k + 1)
        idx = _drop_self(idx[0], k)
    target = torch.arange(n, device=points.device).repeat_interleave(k)
    return torch.stack([idx.reshape(-1), target])


def radius_graph(points: torch.Tensor, r: float, max_neighbors: int = 32, loop: bool = False) -> torch.Tensor:
    r"""Directed radius graph: an edge from every point within ``r`` of a point to it (at most ``max_neighbors``).

    .. math::  \mathcal{E} = \{(j \to i) : \lVert p_i - p_j \rVert_2 < r\}

    When more than ``max_neighbors`` points are within ``r``, the lowest indices are kept
    (the :func:`~coursekit.geometry.neighbors.ball_query` rule).

    Args:
        points: ``(N, 3)`` positions.
        r: radius (strict).
        max_neighbors: most sources per target.
        loop: include self-loops.

    Returns:
        ``(2, E)`` ``int64`` ``edge_index`` (row 0 source, row 1 target), grouped by target,
        sources in increasing index order.
    """
    _check_cloud(points)
    check_radius(r)
    check_count(max_neighbors, "max_neighbors")
    n = points.shape[0]
    idx, counts = ball_query(points[None], points[None], r, max_neighbors + (0 if loop else 1), return_counts=True)
    idx, counts = idx[0], counts[0]
    valid = torch.arange(idx.shape[1], device=idx.device) < counts.unsqueeze(1)
    if not loop:
        idx = torch.where(valid, idx, torch.full_like(idx, n))  # pads sort last
        is_self = idx == torch.arange(n, device=idx.device).unsqueeze(1)
        idx = torch.where(is_self, torch.full_like(idx, n), idx).sort(dim=1).values[:, :max_neighbors]
        valid = idx < n
    target = torch.arange(n, device=points.device).unsqueeze(1).expand_as(idx)
    return torch.stack([idx[valid], target[valid]])


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    r"""The unique undirected edges of a triangle mesh, each once with the smaller index first.

    .. math::  \mathcal{E} = \{\{a, b\}, \{b, c\}, \{c, a\} : (a, b, c) \in F\}

    Args:
        faces: ``(F, 3)`` ``int64`` triangles.

    Returns:
        ``(2, E)`` ``int64``, ``row 0 < row 1``, sorted lexicographically. For message passing
        in both directions use ``torch.cat([e, e.flip(0)], 1)``.
    """
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(getattr(faces, 'shape', ()))}")
    if faces.dtype != torch.int64:
        raise TypeError(f"faces must be int64, got {faces.dtype}")
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].sort(dim=1).values
    return torch.unique(pairs, dim=0).T.contiguous()

