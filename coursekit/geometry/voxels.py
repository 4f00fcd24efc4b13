r"""Occupancy grids: voxelising points and meshes, voxel centres, devoxelising, IoU.

"Represent the occupancy of regular 3D grids" (the Volumetric CNN slides).

Convention (stated once here, used by ``octree``, ``sparse``, ``xray`` and ``memory``)
    A grid of resolution ``R`` covers the cube ``[lo, hi]^3`` (``bounds=(lo, hi)``, default
    ``(-1, 1)``) with cells of side :math:`s = (hi - lo) / R`. Grids are ``(B, C, D, H, W)``
    tensors whose axes follow PyTorch's ``grid_sample``: **D <- z, H <- y, W <- x**. A point
    :math:`(x, y, z)` lies in cell

    .. math::  (d, h, w) = \left(\left\lfloor \tfrac{z - lo}{s} \right\rfloor,
               \left\lfloor \tfrac{y - lo}{s} \right\rfloor,
               \left\lfloor \tfrac{x - lo}{s} \right\rfloor\right)

    whose centre is :math:`lo + (i + \tfrac12) s` along each axis. Integer cell coordinates are
    always written in ``(z, y, x)`` order (a point's float coordinates stay ``(x, y, z)``).
    A point with any coordinate outside the closed interval ``[lo, hi]`` is **dropped**; a
    coordinate equal to ``hi`` falls in the last cell. With ``align_corners=False`` the
    normalised coordinate :math:`2 (p - lo) / (hi - lo) - 1` puts ``grid_sample``'s sample
    positions exactly on these cell centres.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .validate import check_count, check_mesh
from .validate import check_points

Bounds = tuple[float, float]

_CANDIDATES = 1 << 21  # (triangle, voxel) pairs tested at once by the mesh voxelisers
_TOUCH = 1e-9  # cells grow by this fraction of their side in the triangle-box test


def _check_bounds(bounds: Bounds) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (lo, hi), got {bounds!r}") from None
    if not lo < hi:
        raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}")
    return lo, hi


def _shape3(resolution: int | tuple[int, int, int]) -> tuple[int, int, int]:
    shape = (resolution,) * 3 if not isinstance(resolution, (tuple, list)) else tuple(resolution)
    if len(shape) != 3:
        raise ValueError(f"resolution must be an int or a (D, H, W) triple, got {resolution!r}")
    for r in shape:
        check_count(r, "resolution")
    return shape


def cell_indices(points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``(z, y, x)`` cell of every point and whether the point lies inside the bounds.

    .. math::  i = \min\!\left(\left\lfloor \tfrac{p - lo}{s} \right\rfloor,\ R - 1\right),
               \qquad s = \tfrac{hi - lo}{R}

    Args:
        points: ``(..., 3)`` float ``(x, y, z)`` positions.
        resolution: cells per axis ``R``.
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        ``(cells, inside)``: ``(..., 3)`` ``int64`` ``(z, y, x)`` cell indices (meaningful
        where ``inside``) and the ``(...)`` bool mask of points within ``[lo, hi]^3``.
    """
    lo, hi = _check_bounds(bounds)
    check_count(resolution, "resolution")
    inside = ((points >= lo) & (points <= hi)).all(-1)
    cells = torch.floor((points - lo) * (resolution / (hi - lo))).long().clamp(0, resolution - 1)
    return cells.flip(-1), inside


def voxelize_points(points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Binary occupancy grid of point clouds: a cell is 1 when at least one point falls in it.

    .. math::  O[b, 0, d, h, w] = \mathbb{1}\left[\exists j:\ \text{cell}(p_{bj}) = (d, h, w)\right]

    Args:
        points: ``(B, N, 3)`` clouds; points outside ``bounds`` are dropped (module docstring).
        resolution: cells per axis ``R``.
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        ``(B, 1, R, R, R)`` occupancy in ``points``' dtype, axes ``(D, H, W) = (z, y, x)``.

    Example:
        >>> occ = voxelize_points(torch.tensor([[[0.9, -0.9, -0.9]]]), 2)
        >>> torch.nonzero(occ[0, 0]).tolist()   # x = 0.9 is the last W cell
        [[0, 0, 1]]
    """
    check_points(points)
    B, N, _ = points.shape
    cells, inside = cell_indices(points, resolution, bounds)
    batch = torch.arange(B, device=points.device).unsqueeze(1).expand(B, N)
    flat = ((batch * resolution + cells[..., 0]) * resolution + cells[..., 1]) * resolution + cells[..., 2]
    occupancy = torch.zeros(B * resolution ** 3, dtype=points.dtype, device=points.device)
    occupancy[flat[inside]] = 1
    return occupancy.view(B, 1, resolution, resolution, resolution)


def _voxelize_points_naive(points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    lo, hi = bounds
    s = (hi - lo) / resolution
    out = torch.zeros(points.shape[0], 1, resolution, resolution, resolution, dtype=points.dtype)
    for b, cloud in enumerate(points):
        for x, y, z in cloud.tolist():
            if all(lo <= c <= hi for c in (x, y, z)):
                i, j, k = (min(int((c - lo) // s), resolution - 1) for c in (z, y, x))
                out[b, 0, i, j, k] = 1
    return out


def voxel_centers(resolution: int | tuple[int, int, int], bounds: Bounds = (-1.0, 1.0),
                  dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Centres of all cells, ``centers[d, h, w] = (x_w, y_h, z_d)``.

    .. math::  c_i = lo + \left(i + \tfrac12\right) \frac{hi - lo}{R}

    Args:
        resolution: ``R`` or a ``(D, H, W)`` triple.
        bounds: ``(lo, hi)`` of the cube (each axis spans it whatever its resolution).
        dtype, device: of the result.

    Returns:
        ``(D, H, W, 3)`` ``(x, y, z)`` positions.
    """
    lo, hi = _check_bounds(bounds)
    axes = [lo + (torch.arange(r, dtype=dtype, device=device) + 0.5) * ((hi - lo) / r) for r in _shape3(resolution)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def devoxelize(occupancy: torch.Tensor, bounds: Bounds = (-1.0, 1.0), threshold: float = 0.5) -> list[torch.Tensor]:
    """Centres of the occupied cells of each grid (a point cloud per batch element).

    Args:
        occupancy: ``(B, 1, D, H, W)`` grids; a cell is occupied when its value exceeds ``threshold``.
        bounds: ``(lo, hi)`` of the cube.
        threshold: occupancy threshold.

    Returns:
        A list of ``B`` tensors ``(N_b, 3)`` of ``(x, y, z)`` centres, in ``(d, h, w)`` row-major order.
    """
    _check_grid(occupancy, "occupancy", channels=1)
    dtype = occupancy.dtype if occupancy.dtype.is_floating_point else torch.float32
    centers = voxel_centers(tuple(occupancy.shape[2:]), bounds, dtype=dtype, device=occupancy.device)
    return [centers[grid[0] > threshold] for grid in occupancy]


def _check_grid(grid: torch.Tensor, name: str, channels: int | None = None) -> None:
    if not isinstance(grid, torch.Tensor) or grid.dim() != 5 or (channels is not None and grid.shape[1] != channels):
        want = f"(B, {channels if channels is not None else 'C'}, D, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(getattr(grid, 'shape', ()))}")


def trilinear_devoxelize(features: torch.Tensor, points: torch.Tensor, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Trilinearly interpolate voxel features at points (PVCNN's devoxelisation).

    .. math::  f(p) = \sum_{c \in \{0,1\}^3} \prod_{a \in \{x,y,z\}}
               \left(1 - |u_a - i_a - c_a|\right) F[i + c],
               \qquad u = \tfrac{p - lo}{s} - \tfrac12, \quad i = \lfloor u \rfloor

    One call of :func:`torch.nn.functional.grid_sample` (5-D, ``align_corners=False``, so
    ``u`` is measured from cell centres) with ``padding_mode="border"``: a point in the outer
    half cell takes the border value instead of fading to zero.

    Args:
        features: ``(B, C, D, H, W)`` voxel features.
        points: ``(B, N, 3)`` positions.
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        ``(B, N, C)`` features, differentiable in ``features`` and ``points``.
    """
    _check_grid(features, "features")
    check_points(points)
    if points.shape[0] != features.shape[0]:
        raise ValueError(f"points and features must have the same batch size, got {points.shape[0]} and {features.shape[0]}")
    lo, hi = _check_bounds(bounds)
    grid = (2 * (points - lo) / (hi - lo) - 1).to(features.dtype)
    sampled = F.grid_sample(features, grid[:, :, None, None, :], mode="bilinear", padding_mode="border",
                            align_corners=False)  # (B, C, N, 1, 1)
    return sampled[..., 0, 0].transpose(1, 2)


def _trilinear_devoxelize_naive(features: torch.Tensor, points: torch.Tensor, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    lo, hi = bounds
    B, C = features.shape[:2]
    sizes = features.shape[2:]  # (D, H, W) <- (z, y, x)
    out = torch.zeros(B, points.shape[1], C, dtype=features.dtype)
    for b in range(B):
        for n, p in enumerate(points[b]):
            zyx = p.flip(0)
            u = [((zyx[a] - lo) / ((hi - lo) / sizes[a]) - 0.5).clamp(0, sizes[a] - 1) for a in range(3)]
            i0 = [int(torch.floor(v)) for v in u]
            t = [u[a] - i0[a] for a in range(3)]
            for corner in range(8):
                c = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1]
                idx = [min(i0[a] + c[a], sizes[a] - 1) for a in range(3)]
                w = 1.0
                for a in range(3):
                    w = w * (t[a] if c[a] else 1 - t[a])
                out[b, n] += w * features[b, :, idx[0], idx[1], idx[2]]
    return out


def voxel_iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    r"""Intersection over union of two batches of occupancy grids.

    .. math::  \text{IoU} = \frac{|A \cap B|}{|A \cup B|}, \qquad A = \{v : a_v > \tau\}

    Two empty grids are identical and score 1.

    Args:
        a, b: ``(B, C, D, H, W)`` grids of the same shape.
        threshold: occupancy threshold ``tau``.

    Returns:
        ``(B,)`` IoU per grid, in ``[0, 1]``.
    """
    _check_grid(a, "a")
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(getattr(b, 'shape', ()))}")
    A, Bo = (a > threshold).flatten(1), (b > threshold).flatten(1)
    inter = (A & Bo).sum(1).double()
    union = (A | Bo).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


# ---------------------------------------------------------------------------- meshes

def _triangle_candidates(tri: torch.Tensor, lo: float, s: float, r: int, axes: tuple[int, ...], pad: float = 0.0):
    """Yield ``(triangle ids, cells)`` pairs of every triangle with the cells (over ``axes``) its bounding box
    touches, the box grown by ``pad`` cells."""
    first = torch.floor((tri.amin(1) - lo) / s - pad).long().clamp(0, r - 1)[:, axes]
    last = torch.floor((tri.amax(1) - lo) / s + pad).long().clamp(0, r - 1)[:, axes]
    extent = last - first + 1
    count = extent.prod(1)
    keep = ((tri.amax(1) >= lo) & (tri.amin(1) <= lo + r * s))[:, axes].all(1)
    count = torch.where(keep, count, torch.zeros_like(count))
    ends = count.cumsum(0)
    start = 0
    while start < len(tri):  # split the triangles into batches of at most _CANDIDATES pairs
        base = int(ends[start - 1]) if start else 0
        stop = max(int(torch.searchsorted(ends, base + _CANDIDATES, right=True)), start + 1)
        ids = torch.repeat_interleave(torch.arange(start, stop), count[start:stop])
        local = torch.arange(len(ids)) - (ends[ids] - count[ids] - base)
        cells = torch.empty(len(ids), len(axes), dtype=torch.int64)
        for a in reversed(range(len(axes))):  # decode the row-major position inside the box
            cells[:, a] = first[ids, a] + local % extent[ids, a]
            local = local // extent[ids, a]
        yield ids, cells
        start = stop


def _split_large(tri: torch.Tensor, lo: float, s: float, r: int, max_cells: int = 4096) -> torch.Tensor:
    """Split triangles whose bounding box spans more than ``max_cells`` cells into four (at edge midpoints) until none does.

    The union of the pieces is the triangle, so the surface occupancy is unchanged while the
    number of (triangle, cell) pairs stays close to the number of cells actually crossed.
    """
    while True:
        first = torch.floor((tri.amin(1) - lo) / s).clamp(0, r - 1)
        last = torch.floor((tri.amax(1) - lo) / s).clamp(0, r - 1)
        big = (last - first + 1).prod(1) > max_cells
        if not big.any():
            return tri
        a, b, c = tri[big].unbind(1)
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        pieces = torch.stack([torch.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
        tri = torch.cat([tri[~big], pieces.flatten(0, 1)])


def _triangle_box_overlap(tri: torch.Tensor, centre: torch.Tensor, half: float) -> torch.Tensor:
    """Separating-axis test of triangles ``(P, 3, 3)`` against cubes (centre ``(P, 3)``, half side ``half``), boundaries included.

    Akenine-Moeller, "Fast 3D triangle-box overlap testing" (JGT 2001): the 3 box normals
    (guaranteed here by the candidate boxes), the triangle normal, and the 9 cross products
    of box axes with triangle edges.
    """
    v = tri - centre.unsqueeze(1)
    edges = v.roll(-1, dims=1) - v
    normal = torch.linalg.cross(edges[:, 0], edges[:, 1])
    hit = (normal * v[:, 0]).sum(-1).abs() <= half * normal.abs().sum(-1)
    eye = torch.eye(3, dtype=tri.dtype)
    for axis in eye:
        for e in range(3):
            a = torch.linalg.cross(axis.expand_as(edges[:, e]), edges[:, e])
            proj = (v * a.unsqueeze(1)).sum(-1)
            radius = half * a.abs().sum(-1)
            hit &= (proj.amin(1) <= radius) & (proj.amax(1) >= -radius)
    return hit


def voxelize_mesh_surface(vertices: torch.Tensor, faces: torch.Tensor, resolution: int,
                          bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Occupancy of the cells a triangle mesh's surface passes through (exact triangle-box test).

    .. math::  O[d, h, w] = \mathbb{1}\left[\exists f:\ T_f \cap \text{cell}(d, h, w) \neq \emptyset\right]

    Every triangle is tested against the cells of its bounding box with the separating-axis
    theorem (no sampling, so thin parts never fall through). Cells are closed boxes, grown by
    ``1e-9`` of their side so that rounding cannot decide: a surface lying exactly on a cell
    boundary marks the cells on both sides. Computed in float64.

    Args:
        vertices: ``(V, 3)`` float positions.
        faces: ``(F, 3)`` ``int64`` triangles.
        resolution: cells per axis ``R``.
        bounds: ``(lo, hi)`` of the cube; parts outside are clipped away.

    Returns:
        ``(1, 1, R, R, R)`` occupancy in ``vertices``' dtype (concatenate along dim 0 for a batch).
    """
    check_mesh(vertices, faces)
    lo, hi = _check_bounds(bounds)
    check_count(resolution, "resolution")
    s = (hi - lo) / resolution
    tri = _split_large(vertices.detach().cpu().double()[faces.cpu()], lo, s, resolution)
    occupancy = torch.zeros(resolution ** 3, dtype=torch.bool)
    for ids, cells in _triangle_candidates(tri, lo, s, resolution, axes=(2, 1, 0), pad=_TOUCH):
        centre = lo + (cells.flip(-1).double() + 0.5) * s  # (x, y, z)
        hit = _triangle_box_overlap(tri[ids], centre, s / 2 * (1 + 2 * _TOUCH))
        flat = (cells[:, 0] * resolution + cells[:, 1]) * resolution + cells[:, 2]
        occupancy[flat[hit]] = True
    return occupancy.view(1, 1, resolution, resolution, resolution).to(vertices.dtype).to(vertices.device)


def _voxelize_mesh_surface_naive(vertices: torch.Tensor, faces: torch.Tensor, resolution: int,
                                 bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    """Clip every triangle against every cell (Sutherland-Hodgman); a non-empty remainder marks the cell."""
    lo, hi = bounds
    s = (hi - lo) / resolution
    out = torch.zeros(1, 1, resolution, resolution, resolution, dtype=vertices.dtype)
    tris = vertices.double()[faces].tolist()
    for d in range(resolution):
        for h in range(resolution):
            for w in range(resolution):
                box = [(lo + w * s, lo + (w + 1) * s), (lo + h * s, lo + (h + 1) * s), (lo + d * s, lo + (d + 1) * s)]
                for t in tris:
                    poly = t
                    for axis in range(3):
                        for bound, sign in ((box[axis][0], 1), (box[axis][1], -1)):
                            poly = _clip(poly, axis, bound, sign)
                    if poly:
                        out[0, 0, d, h, w] = 1
                        break
    return out


def _clip(poly: list, axis: int, bound: float, sign: int) -> list:
    """Keep the part of a polygon with ``sign * (p[axis] - bound) >= 0``."""
    out = []
    for i, p in enumerate(poly):
        q = poly[(i + 1) % len(poly)]
        fp, fq = sign * (p[axis] - bound), sign * (q[axis] - bound)
        if fp >= 0:
            out.append(p)
        if (fp >= 0) != (fq >= 0):
            t = fp / (fp - fq)
            out.append([p[j] + t * (q[j] - p[j]) for j in range(3)])
    return out


def voxelize_mesh_solid(vertices: torch.Tensor, faces: torch.Tensor, resolution: int,
                        bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Occupancy of the cells whose centre lies inside a closed mesh, by the winding number along rays.

    .. math::  w[d, h, w] = \sum_{f:\ \text{the ray from } (x_w, y_h, -\infty)
               \text{ crosses } T_f \text{ below } z_d} -\operatorname{sign}(n_{f,z}),
               \qquad O[d, h, w] = [\, w[d, h, w] \neq 0 \,]

    One ray along +z per ``(h, w)`` column of cell centres; a crossing is found with 2-D
    edge functions in the xy-plane and its height by barycentric interpolation. Entering a
    face (normal pointing down, towards the ray's origin) counts +1, leaving it -1, and a
    cumulative sum along z gives the winding number of every centre at once. The non-zero
    rule makes a union of overlapping closed parts (the world's objects are such unions)
    solid where plain crossing parity would leave holes in the overlaps. A ray through a
    shared edge or vertex is counted once: each edge's edge function is computed from a
    canonical endpoint order (so both triangles see the same number) and ties go to
    "top-left" edges, the rasterisation fill rule (Pineda, SIGGRAPH 1988). Float64.

    Args:
        vertices: ``(V, 3)`` float positions of a closed mesh (for an open mesh the winding
            number is meaningless).
        faces: ``(F, 3)`` ``int64`` triangles, every part oriented the same way (all outward,
            as trimesh builds them, or all inward: a global flip gives the same occupancy).
        resolution: cells per axis ``R``.
        bounds: ``(lo, hi)`` of the cube.

    Returns:
        ``(1, 1, R, R, R)`` occupancy in ``vertices``' dtype. Combine with
        :func:`voxelize_mesh_surface` (``torch.maximum``) for a solid that also covers the
        cells the surface merely grazes.
    """
    check_mesh(vertices, faces)
    lo, hi = _check_bounds(bounds)
    check_count(resolution, "resolution")
    s = (hi - lo) / resolution
    tri = vertices.detach().cpu().double()[faces.cpu()]
    area2 = _edge(tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2])
    entering = torch.where(area2 < 0, 1, -1)[area2 != 0]  # normal z < 0: the +z ray enters the solid
    tri = torch.where((area2 < 0)[:, None, None], tri[:, [0, 2, 1]], tri)[area2 != 0]  # CCW in xy; drop vertical
    # crossings[column, k] sums the signed crossings just below centre k (k = R: above every centre)
    crossings = torch.zeros(resolution * resolution, resolution + 1, dtype=torch.int64)
    for ids, cells in _triangle_candidates(tri, lo, s, resolution, axes=(1, 0)):  # (h, w) columns
        t = tri[ids]
        p = lo + (cells.flip(-1).double() + 0.5) * s  # (x, y) of the column's ray
        weights, inside = [], torch.ones(len(ids), dtype=torch.bool)
        for i in range(3):
            a, b = t[:, (i + 1) % 3, :2], t[:, (i + 2) % 3, :2]  # edge opposite vertex i
            e = _canonical_edge(a, b, p)
            inside &= (e > 0) | ((e == 0) & _top_left(a, b))
            weights.append(e)
        z = sum(w * t[:, i, 2] for i, w in enumerate(weights)) / sum(weights)
        above = torch.floor((z - lo) / s - 0.5).long().add(1).clamp(0, resolution)  # first centre above the hit
        column = cells[:, 0] * resolution + cells[:, 1]
        crossings.index_put_((column[inside], above[inside]), entering[ids][inside], accumulate=True)
    winding = crossings.cumsum(1)[:, :resolution]
    occupancy = (winding != 0).view(resolution, resolution, resolution).permute(2, 0, 1)  # (h, w, d) -> (d, h, w)
    return occupancy.reshape(1, 1, resolution, resolution, resolution).to(vertices.dtype).to(vertices.device)


def _edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """2-D edge function: twice the signed area of ``(a, b, p)``, positive when ``p`` is left of ``a -> b``."""
    return (b[:, 0] - a[:, 0]) * (p[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p[:, 0] - a[:, 0])


def _canonical_edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The edge function computed from the lexicographically smaller endpoint, so both triangles of an edge agree bit for bit."""
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    first = torch.where(swap[:, None], b, a)
    second = torch.where(swap[:, None], a, b)
    e = _edge(first, second, p)
    return torch.where(swap, -e, e)


def _top_left(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Top or left edge of a counter-clockwise triangle (y up): going down, or horizontal going left."""
    dy, dx = b[:, 1] - a[:, 1], b[:, 0] - a[:, 0]
    return (dy < 0) | ((dy == 0) & (dx < 0))


def _voxelize_mesh_solid_naive(vertices: torch.Tensor, faces: torch.Tensor, resolution: int,
                               bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Generalised winding number at every cell centre (van Oosterom-Strackee solid angles), > 1/2 inside."""
    centers = voxel_centers(resolution, bounds, dtype=torch.float64).reshape(-1, 3)
    tri = vertices.double()[faces]
    winding = torch.zeros(len(centers), dtype=torch.float64)
    for a, b, c in tri:
        ra, rb, rc = a - centers, b - centers, c - centers
        la, lb, lc = ra.norm(dim=1), rb.norm(dim=1), rc.norm(dim=1)
        num = (ra * torch.linalg.cross(rb, rc)).sum(1)
        den = la * lb * lc + (ra * rb).sum(1) * lc + (rb * rc).sum(1) * la + (rc * ra).sum(1) * lb
        winding += 2 * torch.atan2(num, den)
    inside = (winding.abs() / (4 * torch.pi)) > 0.5
    return inside.view(1, 1, resolution, resolution, resolution).to(vertices.dtype)
