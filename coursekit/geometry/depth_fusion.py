r"""Depth-map fusion: per-view depth maps -> one filtered point cloud (MVSNet / Gipuma post-processing).

Three filters decide which reference pixels become points:

1. **Photometric consistency** (MVSNet §4.2): the network's probability (confidence)
   map must exceed ``conf_thresh``; optionally the colours must also agree: the mean
   absolute RGB difference between the reference pixel and where it reprojects in a
   source view below ``photo_thresh`` (that source then counts as consistent only if
   both agree).
2. **Geometric consistency** (forward-backward reprojection): pixel :math:`p_1` with
   depth :math:`d_1` goes to the world, into source view :math:`i` at :math:`p_i`; the
   source depth :math:`d_i(p_i)` (bilinear) brings it back to the world and into the
   reference at :math:`p'_1` with depth :math:`d'_1`. The source agrees when

   .. math::  \lVert p'_1 - p_1 \rVert_2 < \tau_{pix} \quad\text{and}\quad
              \frac{|d'_1 - d_1|}{d_1} < \tau_{depth}

   (MVSNet: :math:`\tau_{pix} = 1` px, :math:`\tau_{depth} = 0.01`, at least 3 views
   agreeing on DTU).
3. **Fusion**: a kept pixel becomes the average of its own world point and the world
   points of the agreeing sources (MVSNet's depth-map fusion step).

Projection and unprojection come from :mod:`coursekit.geometry.camera` (via
:func:`~coursekit.geometry.homography.depth_warp`). Depths are camera ``z``; a depth
``<= 0`` marks "no estimate".
"""

from __future__ import annotations

import torch

from .camera import pixel_grid, project, unproject
from .homography import depth_warp

__all__ = ["depth_to_points", "reprojection_errors", "consistency_mask", "fuse_depth_maps"]


def depth_to_points(depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""World points of every pixel of depth maps (row-major), :math:`X = R^\top(d\,K^{-1}\tilde p - t)`.

    Args:
        depth: ``(B, H, W)`` camera depths.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` cameras.

    Returns:
        ``(B, H * W, 3)`` world points (pixels with depth ``<= 0`` included; mask them yourself).
    """
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3:
        raise ValueError(f"depth must have shape (B, H, W), got {tuple(getattr(depth, 'shape', ()))}")
    B, H, W = depth.shape
    uv = pixel_grid(H, W, dtype=depth.dtype, device=depth.device).reshape(1, H * W, 2).expand(B, -1, -1)
    return unproject(uv, depth.reshape(B, H * W), K, R, t)


def reprojection_errors(depth_ref, K_ref, R_ref, t_ref, depth_src, K_src, R_src, t_src, return_points: bool = False):
    r"""Forward-backward reprojection errors of reference depths against a source depth map.

    .. math::  p_i = \pi_i(X_1),\ X_1 = \pi_1^{-1}(p_1, d_1); \quad
               X_i = \pi_i^{-1}\big(p_i, d_i(p_i)\big); \quad (p'_1, d'_1) = \pi_1(X_i)

    .. math::  e_{pix} = \lVert p'_1 - p_1 \rVert_2, \qquad e_{depth} = \frac{|d'_1 - d_1|}{d_1}

    :math:`d_i(p_i)` is read bilinearly (``grid_sample``, ``align_corners=False``) from the
    source depth map.

    Args:
        depth_ref: ``(B, H, W)`` reference depths.
        K_ref, R_ref, t_ref: reference cameras ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)``.
        depth_src: ``(B, H_s, W_s)`` source depths.
        K_src, R_src, t_src: source cameras.
        return_points: also return the source world points :math:`X_i` ``(B, H, W, 3)``.

    Returns:
        ``pix_err (B, H, W)`` and ``depth_err (B, H, W)``, both ``+inf`` where there is no
        answer (reference depth ``<= 0``, the point leaves the source image or lands on a
        source depth ``<= 0``); with ``return_points`` also ``X_src`` and the ``(B, H, W)``
        bool validity.
    """
    B, H, W = depth_ref.shape
    d_src, valid, uv_src, _ = depth_warp(depth_src.unsqueeze(1), depth_ref, K_ref, R_ref, t_ref,
                                         K_src, R_src, t_src, return_coords=True)
    d_src = d_src[:, 0]
    valid = valid & (d_src > 0)
    d_src = torch.where(valid, d_src, torch.ones_like(d_src))
    world_src = unproject(uv_src.reshape(B, H * W, 2), d_src.reshape(B, H * W), K_src, R_src, t_src)
    uv_back, d_back = project(world_src, K_ref, R_ref, t_ref)
    p = pixel_grid(H, W, dtype=depth_ref.dtype, device=depth_ref.device).reshape(1, H * W, 2)
    pix_err = (uv_back - p).norm(dim=-1).reshape(B, H, W)
    safe_ref = torch.where(depth_ref > 0, depth_ref, torch.ones_like(depth_ref))
    depth_err = (d_back.reshape(B, H, W) - depth_ref).abs() / safe_ref
    inf = torch.full_like(pix_err, float("inf"))
    pix_err, depth_err = torch.where(valid, pix_err, inf), torch.where(valid, depth_err, inf)
    if return_points:
        return pix_err, depth_err, world_src.reshape(B, H, W, 3), valid
    return pix_err, depth_err


def consistency_mask(pix_err: torch.Tensor, depth_err: torch.Tensor, pixel_thresh: float = 1.0,
                     depth_thresh: float = 0.01) -> torch.Tensor:
    r"""Where a source agrees: :math:`e_{pix} < \tau_{pix} \wedge e_{depth} < \tau_{depth}` (bool, same shape)."""
    return (pix_err < pixel_thresh) & (depth_err < depth_thresh)


def fuse_depth_maps(depths: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, *,
                    images: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                    pairs: torch.Tensor | None = None, conf_thresh: float = 0.5, pixel_thresh: float = 1.0,
                    depth_thresh: float = 0.01, min_views: int = 2, photo_thresh: float | None = None) -> dict:
    r"""Fuse the depth maps of ``V`` views of one scene into a filtered, averaged point cloud.

    A reference pixel is kept when its confidence is ``> conf_thresh`` (photometric
    filter) and at least ``min_views`` sources agree geometrically (module docstring);
    its point is the mean of its own world point and those of the agreeing sources:

    .. math::  \hat X = \frac{1}{1 + |S|}\Big(X_1 + \sum_{i \in S} X_i\Big)

    Args:
        depths: ``(V, H, W)`` depth maps (``<= 0``: no estimate).
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)`` their cameras.
        images: optional ``(V, 3, H, W)`` colours of the points (and the photometric test).
        confidence: optional ``(V, H, W)`` probability maps.
        pairs: optional ``(V, S)`` int64 source views of each reference view (default: all others).
        conf_thresh: photometric (probability) threshold.
        pixel_thresh, depth_thresh: geometric thresholds (pixels, relative depth).
        min_views: number of agreeing sources needed.
        photo_thresh: optional mean-absolute colour difference a source must also meet.

    Returns:
        dict with ``points (N, 3)``, ``colors (N, 3)`` (grey ``0.5`` without images),
        ``view (N,)`` int64 reference view of each point, ``mask (V, H, W)`` bool kept
        pixels and ``n_consistent (V, H, W)`` int64 agreeing sources per pixel.
    """
    if not isinstance(depths, torch.Tensor) or depths.dim() != 3:
        raise ValueError(f"depths must have shape (V, H, W), got {tuple(getattr(depths, 'shape', ()))}")
    V, H, W = depths.shape
    if V < 2:
        raise ValueError("fusion needs at least 2 views")
    if pairs is None:
        pairs = torch.stack([torch.cat([torch.arange(v), torch.arange(v + 1, V)]) for v in range(V)])
    points, colors, views, masks, counts = [], [], [], [], []
    for v in range(V):
        src = pairs[v].long()
        S = src.numel()
        ref = lambda x: x[v:v + 1].expand(S, *x.shape[1:])  # noqa: E731 - one reference against S sources
        pix_err, depth_err, world_src, valid = reprojection_errors(
            ref(depths), ref(K), ref(R), ref(t), depths[src], K[src], R[src], t[src], return_points=True)
        agree = consistency_mask(pix_err, depth_err, pixel_thresh, depth_thresh)  # (S, H, W)
        if photo_thresh is not None and images is not None:
            warped, _ = depth_warp(images[src], ref(depths), ref(K), ref(R), ref(t), K[src], R[src], t[src])
            agree &= (warped - images[v:v + 1]).abs().mean(1) < photo_thresh
        n = agree.sum(0)
        keep = (depths[v] > 0) & (n >= min_views)
        if confidence is not None:
            keep &= confidence[v] > conf_thresh
        own = depth_to_points(depths[v:v + 1], K[v:v + 1], R[v:v + 1], t[v:v + 1])[0].reshape(H, W, 3)
        w = agree.to(own.dtype)[..., None]
        fused = (own + (world_src * w).sum(0)) / (1 + w.sum(0))
        points.append(fused[keep])
        colors.append(images[v].permute(1, 2, 0)[keep] if images is not None else torch.full_like(fused[keep], 0.5))
        views.append(torch.full((int(keep.sum()),), v, dtype=torch.int64))
        masks.append(keep)
        counts.append(n.long())
    return {"points": torch.cat(points), "colors": torch.cat(colors), "view": torch.cat(views),
            "mask": torch.stack(masks), "n_consistent": torch.stack(counts)}
