r"""Choosing points: farthest point sampling of clouds, uniform sampling of mesh surfaces.

Farthest point sampling (FPS) picks PointNet++'s anchor points ("sample anchor points");
surface sampling turns the procedural meshes into point clouds with normals and part labels.
Each op has a plain ``_naive`` version that the tests compare against.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .validate import check_count, check_mesh, check_points


# ---------------------------------------------------------------------------- FPS

def farthest_point_sample(points: torch.Tensor, n_samples: int, start_idx: int | torch.Tensor | None = 0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Exact iterative farthest point sampling, all clouds of the batch at once.

    .. math::  s_0 = \text{start}, \qquad
               s_{t} = \operatorname*{arg\,max}_{j} \ \min_{t' < t} \lVert p_j - p_{s_{t'}} \rVert_2^2

    A running minimum distance :math:`\delta_j = \min_{t'<t} \lVert p_j - p_{s_{t'}}\rVert^2`
    is kept for every point and updated with the newest sample only, so each step costs
    :math:`O(N)` and the whole run :math:`O(NS)`, as in PointNet++'s CUDA kernel
    ``farthestpointsamplingKernel`` (charlesq34/pointnet2, ``tf_ops/sampling/tf_sampling_g.cu``),
    which also starts at index 0. Ties go to the lowest index (``torch.argmax``). A cloud with
    fewer than ``S`` distinct points repeats indices once every distinct point is taken.

    Args:
        points: ``(B, N, 3)`` clouds.
        n_samples: ``S``, with ``1 <= S <= N``.
        start_idx: first index: an int for every cloud, a ``(B,)`` int64 tensor, or ``None``
            for a random start drawn from ``generator``.
        generator: the random source when ``start_idx`` is ``None``.

    Returns:
        ``(B, S)`` ``int64`` indices into ``points``, in the order chosen.

    Example:
        >>> pts = torch.tensor([[[0., 0, 0], [1, 0, 0], [10, 0, 0], [9, 0, 0]]])
        >>> farthest_point_sample(pts, 3)
        tensor([[0, 2, 1]])
    """
    check_points(points)
    B, N, _ = points.shape
    check_count(n_samples, "n_samples", N)
    start = _start_indices(start_idx, generator, B, N).to(points.device)
    xyz = points.detach().transpose(1, 2).contiguous()  # (B, 3, N): one contiguous row per axis
    idx = torch.empty(B, n_samples, dtype=torch.int64, device=points.device)
    min_d = torch.full((B, N), float("inf"), dtype=points.dtype, device=points.device)
    d = torch.empty_like(min_d)
    diff = torch.empty_like(min_d)
    last = start.unsqueeze(1)
    idx[:, 0] = start
    for s in range(1, n_samples):
        centre = xyz.gather(2, last.unsqueeze(1).expand(B, 3, 1))  # (B, 3, 1)
        torch.sub(xyz[:, 0], centre[:, 0], out=d)
        d.mul_(d)
        for axis in (1, 2):
            torch.sub(xyz[:, axis], centre[:, axis], out=diff)
            d.addcmul_(diff, diff)
        torch.minimum(min_d, d, out=min_d)
        last = min_d.argmax(dim=1, keepdim=True)
        idx[:, s] = last[:, 0]
    return idx


def _start_indices(start_idx, generator, batch: int, n: int) -> torch.Tensor:
    if start_idx is None:
        if generator is None:
            raise ValueError("start_idx=None draws a random start: pass a torch.Generator")
        return torch.randint(n, (batch,), generator=generator, device=generator.device)
    if isinstance(start_idx, torch.Tensor):
        if start_idx.dtype != torch.int64 or start_idx.shape != (batch,):
            raise ValueError(f"start_idx must be an int64 tensor of shape ({batch},), "
                             f"got {start_idx.dtype} {tuple(start_idx.shape)}")
        start = start_idx
    elif isinstance(start_idx, int) and not isinstance(start_idx, bool):
        start = torch.full((batch,), start_idx, dtype=torch.int64)
    else:
        raise TypeError(f"start_idx must be an int, a tensor or None, got {type(start_idx).__name__}")
    if int(start.min()) < 0 or int(start.max()) >= n:
        raise ValueError(f"start_idx must lie in [0, {n}), got {start.tolist()}")
    return start


def _farthest_point_sample_naive(points: torch.Tensor, n_samples: int, start_idx: int = 0) -> torch.Tensor:
    """Recompute every point's distance to the whole selected set at every step."""
    out = []
    for cloud in points:
        chosen = [start_idx]
        while len(chosen) < n_samples:
            d = ((cloud[:, None, :] - cloud[chosen][None, :, :]) ** 2).sum(-1).min(dim=1).values
            chosen.append(int(d.argmax()))
        out.append(chosen)
    return torch.tensor(out, dtype=torch.int64)


# ---------------------------------------------------------------------------- mesh surfaces

class SurfaceSample(NamedTuple):
    """Points sampled on a mesh surface.

    Attributes:
        points: ``(n, 3)`` positions.
        normals: ``(n, 3)`` unit normals of the faces they lie on (``None`` if not asked for).
        face_index: ``(n,)`` ``int64`` face of each point.
        labels: ``(n,)`` the face label of each point (``None`` without ``face_labels``).
    """

    points: torch.Tensor
    normals: torch.Tensor | None
    face_index: torch.Tensor
    labels: torch.Tensor | None


def sample_mesh_surface(vertices: torch.Tensor, faces: torch.Tensor, n: int,
                        generator: torch.Generator | None = None, return_normals: bool = True,
                        face_labels: torch.Tensor | None = None) -> SurfaceSample:
    r"""Uniform random points on a triangle mesh's surface (area-weighted faces, uniform inside each).

    .. math::  P(f) = \frac{A_f}{\sum_g A_g}, \qquad
               x = (1 - \sqrt{u})\, a + \sqrt{u}\,(1 - v)\, b + \sqrt{u}\, v\, c, \quad u, v \sim U[0, 1]

    Faces are drawn by inverse-transform sampling of the cumulative areas; the
    :math:`\sqrt{u}` makes the point uniform over the triangle :math:`(a, b, c)` (without the
    square root points crowd towards vertex :math:`a`; Osada et al., "Shape distributions",
    TOG 2002, eq. 1). The normal of a point is its face's unit normal
    :math:`(b - a) \times (c - a) / \lVert\cdot\rVert`, oriented by the face's winding.

    Args:
        vertices: ``(V, 3)`` float positions.
        faces: ``(F, 3)`` ``int64`` vertex indices.
        n: number of points.
        generator: the random source (``None``: PyTorch's global one).
        return_normals: compute ``normals``.
        face_labels: optional ``(F,)`` per-face labels (e.g. part ids) copied to the points.

    Returns:
        :class:`SurfaceSample` ``(points, normals, face_index, labels)``.
    """
    check_mesh(vertices, faces)
    check_count(n, "n")
    if face_labels is not None and (not isinstance(face_labels, torch.Tensor) or face_labels.shape != faces.shape[:1]):
        raise ValueError(f"face_labels must have shape ({faces.shape[0]},), got {tuple(getattr(face_labels, 'shape', ()))}")
    a, b, c = vertices[faces].unbind(1)
    cross = torch.linalg.cross(b - a, c - a)
    areas = cross.norm(dim=-1).double()
    if not areas.sum() > 0:
        raise ValueError("the mesh has zero surface area")
    device = generator.device if generator is not None else vertices.device
    draws = torch.rand(3, n, generator=generator, dtype=torch.float64, device=device).to(vertices.device)
    cdf = areas.cumsum(0)
    face_index = torch.searchsorted(cdf, draws[0] * cdf[-1], right=True).clamp_max(len(faces) - 1)
    su, v = draws[1].sqrt().to(vertices.dtype).unsqueeze(-1), draws[2].to(vertices.dtype).unsqueeze(-1)
    points = (1 - su) * a[face_index] + su * (1 - v) * b[face_index] + su * v * c[face_index]
    normals = None
    if return_normals:
        normals = torch.nn.functional.normalize(cross, dim=-1)[face_index]
    labels = face_labels[face_index] if face_labels is not None else None
    return SurfaceSample(points, normals, face_index, labels)
