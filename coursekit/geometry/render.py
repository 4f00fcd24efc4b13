r"""A z-buffer triangle rasteriser in plain PyTorch: depth, mask, normals, face ids, shaded images.

The algorithm, one pass per chunk of triangles (all views at once):

1. Vertices go to camera coordinates (:func:`coursekit.geometry.camera.world_to_camera`).
2. **Near-plane clipping**: triangles are clipped against :math:`z = z_{near}`; a
   triangle with one vertex behind becomes two, with two behind becomes one, so
   cameras inside a room see walls that pass behind them.
3. Clipped vertices are projected to pixels (:func:`~coursekit.geometry.camera.perspective`).
4. Every triangle lists the pixels of its screen bounding box; each pixel is
   sampled at its **centre** ``(j + 0.5, i + 0.5)`` (the camera module's pixel
   convention) with the **edge functions**

   .. math::  E_{ab}(p) = (b_x - a_x)(p_y - a_y) - (b_y - a_y)(p_x - a_x), \qquad
              \lambda_0 = \frac{E_{12}(p)}{E_{12}(v_0)},\ \lambda_1 = \frac{E_{20}(p)}{E_{20}(v_1)},\
              \lambda_2 = \frac{E_{01}(p)}{E_{01}(v_2)}

   A pixel is covered when all :math:`\lambda_k \ge 0` (either winding: both sides of
   a face are drawn). Edges are inclusive, so a pixel centre exactly on a shared
   edge is claimed by both triangles and the depth test picks one; there are no
   cracks.
5. **Perspective-correct depth**: :math:`1/z` is affine in screen space, so
   :math:`z = 1 / \sum_k \lambda_k / z_k` is the exact depth of the triangle's
   plane along the pixel's ray.
6. **Depth test**: the nearest triangle per pixel wins through one
   ``scatter_reduce(amin)`` on an int64 key ``(float32 bits of z) << 32 | face``
   (positive floats order like their bit patterns); ties go to the lower face index.

Triangles are processed in chunks whose pixel lists stay below ``max_pairs``, so
memory stays bounded for large images.
"""

from __future__ import annotations

import torch

from .camera import (_check_extrinsics, _check_matrices, dodecahedron_cameras, fov_intrinsics, perspective, ring_cameras,
                     world_to_camera)
from .validate import check_mesh

__all__ = ["render_mesh", "view_rig", "grey_on_white", "render_views"]

_NO_HIT = torch.iinfo(torch.int64).max


def _clip_near(tri: torch.Tensor, near: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip camera-frame triangles ``(T, 3, 3)`` against ``z >= near``.

    Returns:
        the clipped triangles ``(T', 3, 3)`` and the index ``(T',)`` of the input triangle each came from.
    """
    behind = tri[..., 2] < near
    count = behind.sum(-1)
    keep = count == 0
    index = torch.arange(tri.shape[0], device=tri.device)
    out, src = [tri[keep]], [index[keep]]
    for n_behind in (1, 2):
        sel = count == n_behind
        if not sel.any():
            continue
        t, odd_mask = tri[sel], behind[sel] if n_behind == 1 else ~behind[sel]
        first = odd_mask.float().argmax(-1)  # the lone vertex: behind (one behind) or in front (two behind)
        order = (first[:, None] + torch.arange(3, device=tri.device)) % 3  # rotate, keeping the winding
        a, b, c = (t.gather(1, order[:, k, None, None].expand(-1, 1, 3)).squeeze(1) for k in range(3))
        ab = a + (near - a[:, 2:3]) / (b[:, 2:3] - a[:, 2:3]) * (b - a)
        ac = a + (near - a[:, 2:3]) / (c[:, 2:3] - a[:, 2:3]) * (c - a)
        if n_behind == 1:  # the quad ab, b, c, ac -> two triangles
            out += [torch.stack([ab, b, c], 1), torch.stack([ab, c, ac], 1)]
            src += [index[sel], index[sel]]
        else:
            out.append(torch.stack([a, ab, ac], 1))
            src.append(index[sel])
    return torch.cat(out), torch.cat(src)


def render_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    size: tuple[int, int],
    face_colors: torch.Tensor | None = None,
    light_dir: torch.Tensor | None = None,
    ambient: float = 0.3,
    near: float = 1e-3,
    max_pairs: int = 1 << 22,
) -> dict[str, torch.Tensor]:
    r"""Rasterise one triangle mesh into ``B`` cameras.

    Shading is Lambertian with two-sided faces and a flat face normal:

    .. math::  \text{rgb} = \text{albedo}\,\big(a + (1 - a)\,|n \cdot l|\big)

    with :math:`l` the unit direction towards the light (default: a headlight along
    each camera's optical axis) and :math:`a` the ambient term.

    Args:
        vertices: ``(V, 3)`` float world coordinates.
        faces: ``(F, 3)`` int64 vertex indices.
        K: ``(B, 3, 3)`` intrinsics (camera module conventions).
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` world-to-camera translations.
        size: ``(H, W)`` of the images.
        face_colors: optional ``(F, 3)`` albedo in ``[0, 1]`` (default grey ``0.8``).
        light_dir: optional ``(3,)`` world direction *towards* the light.
        ambient: :math:`a` in ``[0, 1]``.
        near: near-plane depth; geometry closer than this is clipped.
        max_pairs: most (triangle, pixel) candidates held in memory at once.

    Returns:
        A dict of

        * ``depth`` ``(B, H, W)``: camera ``z`` of the visible surface, ``0`` on background;
        * ``mask`` ``(B, H, W)`` bool: a surface is visible;
        * ``normal`` ``(B, 3, H, W)``: world-space unit face normal, turned to face the
          camera (so meshes with inconsistent winding still give usable maps); 0 on background;
        * ``face_index`` ``(B, H, W)`` int64: the visible face, ``-1`` on background;
        * ``rgb`` ``(B, 3, H, W)``: the shaded image, ``0`` (black) on background.

    >>> from coursekit.geometry.camera import fov_intrinsics, ring_cameras
    >>> R, t = ring_cameras(12, distance=3.0)
    >>> K = fov_intrinsics(40.0, (64, 64)).expand(12, 3, 3)
    >>> v = torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]]); f = torch.tensor([[0, 1, 2]])
    >>> render_mesh(v, f, K, R, t, (64, 64))["mask"].shape
    torch.Size([12, 64, 64])
    """
    check_mesh(vertices, faces)
    _check_matrices("K", K, (3, 3))
    _check_extrinsics(R, t)
    H, W = size
    B, F = R.shape[0], faces.shape[0]
    if K.shape[0] != B:
        raise ValueError(f"K and R disagree on the batch size: {K.shape[0]} vs {B}")
    if face_colors is not None and tuple(face_colors.shape) != (F, 3):
        raise ValueError(f"face_colors must have shape ({F}, 3), got {tuple(face_colors.shape)}")
    dtype, device = vertices.dtype, vertices.device
    K, R, t = K.to(dtype), R.to(dtype), t.to(dtype)

    cam = world_to_camera(vertices.expand(B, -1, -1), R, t)  # (B, V, 3)
    tri, src = _clip_near(cam[:, faces].reshape(B * F, 3, 3), near)
    view = src // F
    face = src % F
    pix = perspective(tri, K[view])  # (T, 3, 2)
    z = tri[..., 2]

    # screen bounding boxes, in pixel indices whose centres may be covered
    lo = torch.ceil(pix.amin(1) - 0.5).clamp_min(0)
    hi = torch.floor(pix.amax(1) - 0.5)
    hi = torch.minimum(hi, torch.tensor([W - 1, H - 1], dtype=dtype, device=device))
    extent = (hi - lo + 1).clamp_min(0)
    # edge functions of the whole triangle: twice its signed area
    area = (pix[:, 1, 0] - pix[:, 0, 0]) * (pix[:, 2, 1] - pix[:, 0, 1]) - (pix[:, 1, 1] - pix[:, 0, 1]) * (pix[:, 2, 0] - pix[:, 0, 0])
    count = (extent[:, 0] * extent[:, 1]).long() * (area.abs() > 1e-12)
    live = count > 0
    tri_ids = live.nonzero().squeeze(1)
    count = count[tri_ids]

    best = torch.full((B * H * W,), _NO_HIT, dtype=torch.int64, device=device)
    depth = torch.zeros(B * H * W, dtype=dtype, device=device)
    ends = count.cumsum(0)
    start = 0
    while start < len(tri_ids):
        # the largest chunk of triangles whose pixel candidates fit in max_pairs (at least one triangle)
        base = ends[start - 1] if start > 0 else 0
        stop = max(start + 1, int(torch.searchsorted(ends, base + max_pairs, right=True)))
        ids = tri_ids[start:stop]
        n = count[start:stop]
        which = torch.repeat_interleave(torch.arange(len(ids), device=device), n)
        offset = torch.arange(int(n.sum()), device=device) - torch.repeat_interleave(n.cumsum(0) - n, n)
        T = ids[which]
        nx = extent[T, 0].long()
        px = lo[T, 0] + (offset % nx) + 0.5
        py = lo[T, 1] + torch.div(offset, nx, rounding_mode="floor") + 0.5
        p = pix[T]
        e0 = (p[:, 2, 0] - p[:, 1, 0]) * (py - p[:, 1, 1]) - (p[:, 2, 1] - p[:, 1, 1]) * (px - p[:, 1, 0])
        e1 = (p[:, 0, 0] - p[:, 2, 0]) * (py - p[:, 2, 1]) - (p[:, 0, 1] - p[:, 2, 1]) * (px - p[:, 2, 0])
        e2 = (p[:, 1, 0] - p[:, 0, 0]) * (py - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (px - p[:, 0, 0])
        bary = torch.stack([e0, e1, e2], -1) / area[T, None]
        inside = (bary >= 0).all(-1)
        bary, T, px, py = bary[inside], T[inside], px[inside], py[inside]
        zz = 1.0 / (bary / z[T]).sum(-1)
        pixel = view[T] * (H * W) + (py - 0.5).long() * W + (px - 0.5).long()
        key = (zz.float().view(torch.int32).long() << 32) | face[T]
        best.scatter_reduce_(0, pixel, key, reduce="amin")
        won = key == best[pixel]  # final for this pixel unless a later chunk beats it
        depth[pixel[won]] = zz[won]
        start = stop

    mask = best != _NO_HIT
    face_index = torch.where(mask, best & 0xFFFFFFFF, torch.full_like(best, -1))
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normal = torch.nn.functional.normalize(torch.linalg.cross(v1 - v0, v2 - v0), dim=-1)  # (F, 3)
    hit = face_index.clamp_min(0)
    normal = face_normal[hit].reshape(B, H * W, 3)
    axis = R[:, 2, :]  # each camera's viewing direction in world coordinates
    facing = (normal * axis[:, None, :]).sum(-1, keepdim=True)
    normal = torch.where(facing > 0, -normal, normal)  # towards the camera
    mask_b = mask.reshape(B, H * W, 1)
    normal = normal * mask_b
    light = -axis[:, None, :] if light_dir is None else torch.nn.functional.normalize(torch.as_tensor(light_dir, dtype=dtype), dim=-1).expand(B, 1, 3)
    albedo = torch.full((F, 3), 0.8, dtype=dtype, device=device) if face_colors is None else face_colors.to(dtype)
    shade = ambient + (1 - ambient) * (normal * light).sum(-1, keepdim=True).abs()
    rgb = albedo[hit].reshape(B, H * W, 3) * shade * mask_b
    return {
        "depth": depth.reshape(B, H, W),
        "mask": mask.reshape(B, H, W),
        "normal": normal.reshape(B, H, W, 3).permute(0, 3, 1, 2),
        "face_index": face_index.reshape(B, H, W),
        "rgb": rgb.reshape(B, H, W, 3).permute(0, 3, 1, 2),
    }


def view_rig(n_views: int = 12, size: int = 64, layout: str = "ring", elevation_deg: float = 30.0,
             distance: float = 2.5, fov_deg: float = 50.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""MVCNN's virtual cameras around an object in the unit ball: ``(K, R, t)``.

    Args:
        n_views: cameras (``"ring"``: any number, MVCNN uses 12; ``"dodecahedron"``: 20).
        size: image side in pixels.
        layout: ``"ring"`` (azimuth steps of ``360 / n_views`` at ``elevation_deg``) or
            ``"dodecahedron"`` (the 20 vertices of a regular dodecahedron).
        elevation_deg, distance, fov_deg: camera placement and field of view.

    Returns:
        ``K (V, 3, 3)``, ``R (V, 3, 3)``, ``t (V, 3)``.
    """
    if layout == "ring":
        R, t = ring_cameras(n_views, elevation_deg, distance)
    elif layout == "dodecahedron":
        if n_views != 20:
            raise ValueError(f"the dodecahedron layout has 20 cameras, got n_views={n_views}")
        R, t = dodecahedron_cameras(distance)
    else:
        raise ValueError(f"layout must be 'ring' or 'dodecahedron', got {layout!r}")
    K = fov_intrinsics(fov_deg, (size, size)).expand(n_views, 3, 3).contiguous()
    return K, R, t


def grey_on_white(rendered: dict[str, torch.Tensor]) -> torch.Tensor:
    r"""The grey shaded image of a :func:`render_mesh` result on a white background.

    .. math::  I = \text{rgb}_0 \ \text{on the mesh}, \quad 1 \ \text{elsewhere}

    Returns:
        ``(V, 1, H, W)`` in ``[0, 1]``.
    """
    return rendered["rgb"][:, :1] + (~rendered["mask"][:, None]).to(rendered["rgb"].dtype)


def render_views(vertices: torch.Tensor, faces: torch.Tensor, n_views: int = 12, size: int = 64,
                 layout: str = "ring", elevation_deg: float = 30.0, distance: float = 2.5,
                 fov_deg: float = 50.0) -> torch.Tensor:
    r"""Grey shaded renders of a mesh from MVCNN's cameras, white background.

    .. math::  I_v = \text{albedo}\,\big(a + (1 - a)\,|n \cdot l_v|\big)\ \text{on the mesh}, \quad 1 \text{ elsewhere}

    Same images as :func:`~coursekit.data.world.datasets.make_multiview_split` (ring layout):
    :func:`render_mesh` with a headlight per camera, on :func:`view_rig`'s cameras.

    Args:
        vertices: ``(V, 3)`` mesh in the unit ball (``+y`` up).
        faces: ``(F, 3)`` ``int64``.
        n_views, size, layout, elevation_deg, distance, fov_deg: the cameras, as in :func:`view_rig`.

    Returns:
        ``(n_views, 1, size, size)`` in ``[0, 1]``.
    """
    K, R, t = view_rig(n_views, size, layout, elevation_deg, distance, fov_deg)
    return grey_on_white(render_mesh(vertices, faces, K, R, t, (size, size)))
