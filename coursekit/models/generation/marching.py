r"""Iso-surface extraction from implicit fields, and the metrics of a reconstructed mesh.

The slide "Implicit Surface Reconstruction": an implicit field :math:`F(x)` (signed
distance, occupancy probability, a network's output) is evaluated on a grid and the
iso-surface :math:`F(x) = \ell` is extracted with marching cubes (Lorensen & Cline 1987;
scikit-image's ``marching_cubes``, Lewiner's variant).

Grid convention (the one of :func:`coursekit.geometry.voxels.voxel_centers`):
    ``values`` is ``(D, H, W)``; axis 0 runs along world **z**, axis 1 along **y**,
    axis 2 along **x**: ``values[d, h, w] = F(origin + (w dx, h dy, d dz))``.
    ``origin`` and ``spacing`` are given in world ``(x, y, z)`` order. scikit-image
    returns vertices in *array-axis* order ``(d, h, w)``, so :func:`march` reverses the
    columns (and the face winding, since swapping two axes is a reflection).

Sign convention: **inside is below the level** (an SDF is negative inside; pass
``inside="above"`` for an occupancy probability, where inside is ``p > 0.5``). Faces are
wound counter-clockwise seen from outside, so the normals :math:`(b - a) \times (c - a)`
point out and :func:`mesh_volume` is positive.

>>> import torch
>>> values, spacing, origin = sample_grid(lambda p: p.norm(dim=-1) - 0.5, 24)
>>> v, f = march(values, spacing=spacing, origin=origin)
>>> abs(float(v.norm(dim=-1).mean()) - 0.5) < 0.01, float(mesh_volume(v, f)) > 0
(True, True)
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from ...geometry.sampling import sample_mesh_surface
from ...geometry.voxels import voxel_centers, voxel_iou, voxelize_mesh_solid
from ...metrics.chamfer import chamfer_distance
from ...metrics.fscore import fscore
from ...metrics.normals import normal_consistency

__all__ = ["grid_points", "sample_grid", "march", "march_field", "march_voxels", "mesh_volume", "offset_mesh",
           "MeshScore", "score_mesh", "mean_scores", "EMPTY_MESH_NOTE"]

Bounds = tuple[float, float]

EMPTY_MESH_NOTE = ("an empty mesh (the level is never crossed) is scored as the single point at the centre of "
                   "the bounds with normal +y: finite, bad, and no crash in a table")


def _shape3(resolution: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(resolution, int):
        resolution = (resolution,) * 3
    resolution = tuple(int(r) for r in resolution)
    if len(resolution) != 3 or min(resolution) < 2:
        raise ValueError(f"resolution must be an int >= 2 or a (D, H, W) triple of them, got {resolution}")
    return resolution


def grid_points(resolution: int | Sequence[int], bounds: Bounds = (-1.0, 1.0),
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Grid *nodes* spanning the cube ``bounds`` (corners included), in the module's grid convention.

    .. math::  p[d, h, w] = o + (w\,\Delta x,\ h\,\Delta y,\ d\,\Delta z), \qquad
               \Delta = \frac{hi - lo}{R - 1}, \quad o = (lo, lo, lo)

    Args:
        resolution: ``R`` or ``(D, H, W)`` nodes per axis (each at least 2).
        bounds: ``(lo, hi)`` of the cube, the same for every axis.

    Returns:
        ``points (D, H, W, 3)`` in ``(x, y, z)``, ``spacing (3,)`` and ``origin (3,)`` (``x, y, z`` order).
    """
    D, H, W = _shape3(resolution)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise ValueError(f"bounds must satisfy lo < hi, got {bounds}")
    axes = [torch.linspace(lo, hi, n, dtype=dtype) for n in (D, H, W)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    spacing = torch.tensor([(hi - lo) / (n - 1) for n in (W, H, D)], dtype=dtype)
    return torch.stack([x, y, z], -1), spacing, torch.full((3,), lo, dtype=dtype)


@torch.no_grad()
def sample_grid(field: Callable[[torch.Tensor], torch.Tensor], resolution: int | Sequence[int],
                bounds: Bounds = (-1.0, 1.0), chunk: int = 65536,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Evaluate a field (any callable or network) at the grid nodes, ``chunk`` points at a time.

    .. math::  V[d, h, w] = F\big(p[d, h, w]\big)

    Args:
        field: ``(N, 3) -> (N,)`` or ``(N, 1)`` (e.g. ``shape.sdf``, or
            ``lambda p: net(p[None], code)[0]``); run under ``torch.no_grad``.
        resolution: ``R`` or ``(D, H, W)``.
        bounds: ``(lo, hi)`` of the cube.
        chunk: most points per call (memory stays ``O(chunk)`` whatever ``R``).
        device: where the points are sent (default: CPU).

    Returns:
        ``values (D, H, W)`` float32 on the CPU, ``spacing (3,)``, ``origin (3,)`` (:func:`grid_points`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    points, spacing, origin = grid_points(resolution, bounds)
    flat = points.reshape(-1, 3)
    out = []
    for start in range(0, len(flat), chunk):
        v = field(flat[start:start + chunk].to(device or "cpu"))
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"the field must return a tensor, got {type(v).__name__}")
        v = v.reshape(-1)
        if v.numel() != min(chunk, len(flat) - start):
            raise ValueError(f"the field returned {v.numel()} values for {min(chunk, len(flat) - start)} points")
        out.append(v.float().cpu())
    return torch.cat(out).reshape(points.shape[:3]), spacing, origin


def march(values: torch.Tensor | np.ndarray, level: float = 0.0, spacing: Sequence[float] | torch.Tensor = (1.0, 1.0, 1.0),
          origin: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0), inside: str = "below") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Marching cubes of the iso-surface ``values = level`` in world coordinates.

    .. math::  \{x : F(x) = \ell\}, \qquad x = o + (w\,\Delta x,\ h\,\Delta y,\ d\,\Delta z)

    for a vertex found at fractional array position ``(d, h, w)``.

    Args:
        values: ``(D, H, W)`` field samples, axis 0 = z, axis 1 = y, axis 2 = x.
        level: the iso-value :math:`\ell` (0 for an SDF, 0.5 for an occupancy probability,
            0 for occupancy logits).
        spacing: ``(dx, dy, dz)`` node spacing in world units (``x, y, z`` order).
        origin: ``(x, y, z)`` of node ``values[0, 0, 0]``.
        inside: ``"below"`` (SDF: negative inside) or ``"above"`` (occupancy: inside where
            ``values > level``); decides the face winding only.

    Returns:
        ``vertices (V, 3)`` float32 ``(x, y, z)`` and ``faces (F, 3)`` int64, wound outwards.
        Both are empty when the level is not crossed (see :data:`EMPTY_MESH_NOTE`).
    """
    from skimage.measure import marching_cubes

    v = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, np.float64)
    if v.ndim != 3 or min(v.shape) < 2:
        raise ValueError(f"values must be a (D, H, W) grid with every size >= 2, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinity")
    if inside not in ("below", "above"):
        raise ValueError(f"inside must be 'below' or 'above', got {inside!r}")
    spacing = np.asarray(torch.as_tensor(spacing, dtype=torch.float64), np.float64).reshape(-1)
    origin = np.asarray(torch.as_tensor(origin, dtype=torch.float64), np.float64).reshape(-1)
    if spacing.shape != (3,) or origin.shape != (3,) or not (spacing > 0).all():
        raise ValueError(f"spacing must be 3 positive numbers and origin 3 numbers, got {spacing} and {origin}")
    if not v.min() < level < v.max():
        return torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64)
    # scikit-image's winding is defined in array-axis order (d, h, w); reversing the columns to
    # (x, y, z) mirrors the mesh, which flips the winding, so each face's order is reversed too.
    verts, faces, _, _ = marching_cubes(v, level=level, spacing=tuple(spacing[::-1]),
                                        gradient_direction="descent" if inside == "below" else "ascent")
    vertices = torch.from_numpy(verts[:, ::-1] + origin).float()
    return vertices, torch.from_numpy(faces[:, ::-1].astype(np.int64)).contiguous()


def march_field(field: Callable[[torch.Tensor], torch.Tensor], resolution: int | Sequence[int] = 64,
                bounds: Bounds = (-1.0, 1.0), level: float = 0.0, inside: str = "below", chunk: int = 65536,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_grid` then :func:`march`: the mesh of ``field = level`` inside ``bounds``.

    Returns:
        ``vertices (V, 3)``, ``faces (F, 3)``.
    """
    values, spacing, origin = sample_grid(field, resolution, bounds, chunk, device)
    return march(values, level, spacing, origin, inside)


def march_voxels(grid: torch.Tensor, level: float = 0.5, bounds: Bounds = (-1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Marching cubes of a voxel grid of *cell* values (occupancy probabilities), closed at the border.

    Cell ``(d, h, w)`` of an ``R``-cell cube over ``bounds`` has its centre at
    :math:`lo + (i + \tfrac12) \frac{hi - lo}{R}` (:func:`coursekit.geometry.voxels.voxel_centers`); the grid is
    padded with one layer of zeros (outside) so that the mesh is closed, then marched with
    ``inside="above"``.

    Args:
        grid: ``(D, H, W)`` cell values (or ``(1, 1, D, H, W)``), inside above ``level``.
        level: iso-value (0.5 for probabilities).
        bounds: ``(lo, hi)`` of the cube the grid covers.

    Returns:
        ``vertices (V, 3)``, ``faces (F, 3)`` (empty when nothing is above the level).
    """
    grid = grid.detach().cpu().double()
    while grid.dim() > 3 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.dim() != 3:
        raise ValueError(f"grid must be (D, H, W) or (1, 1, D, H, W), got {tuple(grid.shape)}")
    cell = torch.tensor([(bounds[1] - bounds[0]) / n for n in grid.shape[::-1]], dtype=torch.float64)
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1, 1, 1), value=min(0.0, level - 1.0))
    return march(padded, level, cell, bounds[0] - 0.5 * cell, inside="above")


def mesh_volume(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    r"""Signed volume enclosed by a closed triangle mesh (divergence theorem).

    .. math::  V = \frac{1}{6} \sum_{(a, b, c) \in F} a \cdot (b \times c)

    Positive when the faces are wound outwards; negative when inwards.

    Args:
        vertices: ``(V, 3)``; faces: ``(F, 3)`` int64.

    Returns:
        A scalar tensor in ``vertices``' dtype.
    """
    if faces.numel() == 0:
        return vertices.new_zeros(())
    a, b, c = vertices[faces].unbind(1)
    return (a * torch.linalg.cross(b, c)).sum() / 6


def offset_mesh(vertices: torch.Tensor, faces: torch.Tensor, distance: float) -> torch.Tensor:
    r"""Move every vertex by ``distance`` along its normal (outwards for ``distance > 0``, inwards below 0).

    .. math::  v' = v + d\, \frac{n_v}{\lVert n_v \rVert}, \qquad
               n_v = \sum_{f \ni v} (b_f - a_f) \times (c_f - a_f)

    (the area-weighted normals of the faces around ``v``; outward for outward-wound faces). With
    ``distance = -δ`` it undoes a dilation by δ where the surface is smooth on the scale of δ: the
    surface of a thin rod or wall dilated by δ comes back to the rod or wall.

    Args:
        vertices: ``(V, 3)``; faces: ``(F, 3)`` int64. distance: :math:`d`.

    Returns:
        ``(V, 3)`` moved vertices (the faces are unchanged; a vertex used by no face stays put).
    """
    if faces.numel() == 0:
        return vertices.clone()
    a, b, c = vertices[faces].unbind(1)
    face_normals = torch.linalg.cross(b - a, c - a)
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, 0))
    length = normals.norm(dim=1, keepdim=True).clamp_min(torch.finfo(vertices.dtype).tiny)  # unused vertex: 0
    return vertices + distance * (normals / length)


class MeshScore(NamedTuple):
    """Metrics of one reconstructed mesh against a ground-truth shape.

    Attributes:
        chamfer: slide convention (sums of squared NN distances, both ways) on ``n_points``
            surface samples each; grows with ``n_points``.
        chamfer_mean: "pytorch3d"/AtlasNet convention (means of squared distances, summed).
        chamfer_l1: Occupancy Networks' Chamfer-L1 (``0.5 * (accuracy + completeness)``, unsquared).
        fscore: F-score at ``tau`` (Tatarchenko et al.).
        normal_consistency: Occupancy Networks' mean ``|n . n_NN|`` both ways.
        iou: volumetric IoU of the occupancies of the cell centres of an ``iou_resolution``
            grid over ``bounds`` (prediction: the mesh's solid by ray parity; truth: ``shape.occupancy``).
        empty: the mesh had no face (scored as described by :data:`EMPTY_MESH_NOTE`).
    """

    chamfer: float
    chamfer_mean: float
    chamfer_l1: float
    fscore: float
    normal_consistency: float
    iou: float
    empty: bool


@torch.no_grad()
def score_mesh(vertices: torch.Tensor, faces: torch.Tensor, shape, *, n_points: int = 10000, tau: float = 0.05,
               iou_resolution: int = 32, bounds: Bounds = (-1.0, 1.0),
               generator: torch.Generator | int = 0) -> MeshScore:
    r"""Score a mesh against a world shape: Chamfer (3 conventions), F-score, normal consistency, IoU.

    .. math::  d_{CD} = \sum_{x \in S_1} \min_{y \in S_2} \lVert x - y\rVert_2^2
               + \sum_{y \in S_2} \min_{x \in S_1} \lVert x - y\rVert_2^2, \qquad
               F(\tau) = \frac{2PR}{P + R}, \qquad
               \text{IoU} = \frac{|O_{pred} \cap O_{gt}|}{|O_{pred} \cup O_{gt}|}

    ``S_1`` are ``n_points`` area-uniform samples of the mesh, ``S_2`` as many of the true
    outer surface (``shape.sample``), both with face normals.

    Args:
        vertices: ``(V, 3)`` mesh vertices (world ``x, y, z``); faces: ``(F, 3)`` int64.
        shape: the ground truth: anything with ``sample(n, generator) -> (points, normals, _)``
            and ``occupancy(points (N, 3)) -> (N,) bool`` (a world :class:`~coursekit.data.world.Shape`).
        n_points: samples per surface; keep their spacing well below ``tau`` (10k samples of a
            world object are ~0.02 apart), or the F-score measures the sampling, not the mesh.
        tau: F-score threshold (world units; the world's shapes fit the unit ball, so 0.05 is
            2.5% of the diameter).
        iou_resolution: cells per axis of the IoU grid.
        bounds: ``(lo, hi)`` of the IoU grid (and of the empty-mesh stand-in).
        generator: seed or generator of the surface samples.

    Returns:
        :class:`MeshScore` of Python floats.
    """
    gen = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
    gt, gt_normals, _ = shape.sample(n_points, gen)
    gt, gt_normals = gt.float(), gt_normals.float()
    centres = voxel_centers(iou_resolution, bounds).reshape(-1, 3)
    truth = shape.occupancy(centres).float().reshape(1, 1, *(iou_resolution,) * 3)
    empty = faces.numel() == 0
    if empty:
        pred = torch.full((1, 3), 0.5 * (bounds[0] + bounds[1]))
        pred_normals = torch.tensor([[0.0, 1.0, 0.0]])
        occupied = torch.zeros_like(truth)
    else:
        s = sample_mesh_surface(vertices.float(), faces, n_points, gen)
        pred, pred_normals = s.points, s.normals
        occupied = voxelize_mesh_solid(vertices.double(), faces, iou_resolution, bounds).float()
    x, y = pred[None], gt[None]
    return MeshScore(
        chamfer=float(chamfer_distance(x, y, "slide")),
        chamfer_mean=float(chamfer_distance(x, y, "pytorch3d")),
        chamfer_l1=float(chamfer_distance(x, y, "occnet")),
        fscore=float(fscore(x, y, tau)),
        normal_consistency=0.0 if empty else float(normal_consistency(x, pred_normals[None], y, gt_normals[None])),
        iou=float(voxel_iou(occupied, truth)),
        empty=empty,
    )


def mean_scores(scores: Sequence[MeshScore]) -> dict[str, float]:
    """Average :class:`MeshScore` fields over shapes; ``empty`` becomes the count of empty meshes."""
    if not scores:
        raise ValueError("no scores to average")
    out = {f: float(np.mean([getattr(s, f) for s in scores])) for f in MeshScore._fields if f != "empty"}
    out["empty"] = sum(s.empty for s in scores)
    return out

