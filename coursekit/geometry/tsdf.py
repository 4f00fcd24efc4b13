r"""Truncated signed distance fusion of depth maps (Curless & Levoy, SIGGRAPH 1996).

Convention:

* The volume is ``(D, H, W)`` with axes ``(z, y, x)``, as :mod:`coursekit.geometry.voxels`;
  ``bounds = [[x_min, y_min, z_min], [x_max, y_max, z_max]]`` (world units, may differ per
  axis) and voxel ``(d, h, w)`` has centre
  :math:`\text{lo} + (\text{index} + \tfrac12)\,(\text{hi} - \text{lo}) / \text{resolution}`.
* The signed distance is *projective*, along the optical axis: the measured depth at the
  voxel's pixel minus the voxel's camera depth (KinectFusion, Newcombe et al. 2011; Open3D).
  **Positive in front of the surface (free space), negative behind it (inside)**; it is
  divided by the truncation distance :math:`\mu` and clamped to :math:`[-1, 1]`.
* A voxel is updated by a depth map when it projects inside the image onto a valid depth
  (``> 0``; ``0`` means "no measurement"), lies in front of the camera, and is not more than
  :math:`\mu` behind the measured surface (farther behind is occluded: unknown).
* Unobserved voxels keep ``tsdf = 1`` and ``weight = 0``; use ``weight > 0`` as the mask.
* Pixels are looked up by nearest neighbour: voxel ``(u, v)`` reads pixel
  ``(row floor(v), col floor(u))`` (the pixel convention of :mod:`coursekit.geometry.camera`,
  which does the projection).

.. math::

    \eta = D(\pi(x)) - z_{cam}(x),\qquad f = \min\!\left(1, \frac{\eta}{\mu}\right)
    \ \text{ if } \eta \ge -\mu,

    F \leftarrow \frac{W F + w f}{W + w},\qquad W \leftarrow W + w \qquad (w = 1)
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .camera import project

__all__ = ["tsdf_volume", "tsdf_voxel_centers", "tsdf_update", "tsdf_fuse"]


def _check_bounds(bounds) -> torch.Tensor:
    bounds = torch.as_tensor(bounds, dtype=torch.float64)
    if bounds.shape != (2, 3):
        raise ValueError(f"bounds must have shape (2, 3) = [min xyz, max xyz], got {tuple(bounds.shape)}")
    if not (bounds[1] > bounds[0]).all():
        raise ValueError(f"bounds must have max > min on every axis, got {bounds.tolist()}")
    return bounds


def _resolution3(resolution) -> tuple[int, int, int]:
    dims = (resolution,) * 3 if isinstance(resolution, int) else tuple(int(r) for r in resolution)
    if len(dims) != 3 or min(dims) <= 0:
        raise ValueError(f"resolution must be a positive int or a (D, H, W) triple, got {resolution!r}")
    return dims


def tsdf_volume(resolution, dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """An empty volume: ``tsdf (D, H, W)`` filled with 1 and ``weight (D, H, W)`` with 0."""
    D, H, W = _resolution3(resolution)
    return torch.ones(D, H, W, dtype=dtype, device=device), torch.zeros(D, H, W, dtype=dtype, device=device)


def tsdf_voxel_centers(bounds, shape: tuple[int, int, int], dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    r"""``(D, H, W, 3)`` world ``(x, y, z)`` centres of the voxels of a volume of ``shape`` in ``bounds``.

    .. math::  c_{dhw} = \text{lo} + \big((w, h, d) + \tfrac12\big) \odot \frac{\text{hi} - \text{lo}}{(W, H, D)}
    """
    bounds = _check_bounds(bounds)
    D, H, W = _resolution3(shape)
    axes = [bounds[0, a] + (torch.arange(n, dtype=torch.float64) + 0.5) * (bounds[1, a] - bounds[0, a]) / n
            for a, n in ((2, D), (1, H), (0, W))]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([x, y, z], -1).to(dtype=dtype, device=device)


def tsdf_update(tsdf: torch.Tensor, weight: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor,
                t: torch.Tensor, bounds, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fuse one depth map into a TSDF volume (weighted running average).

    .. math::

        \eta = D(\pi(x)) - z_{cam}(x),\quad f = \min(1, \eta/\mu)\ \ (\eta \ge -\mu),\quad
        F' = \frac{W F + f}{W + 1},\quad W' = W + 1

    Args:
        tsdf: ``(D, H, W)`` current values (1 where unobserved).
        weight: ``(D, H, W)`` current weights (0 where unobserved).
        depth: ``(H_img, W_img)`` depth map (camera ``z``; ``0`` = invalid).
        K: ``(3, 3)`` intrinsics; R: ``(3, 3)``, t: ``(3,)`` world-to-camera extrinsics.
        bounds: ``(2, 3)`` ``[min xyz, max xyz]`` of the volume.
        truncation: :math:`\mu > 0`, in world units.

    Returns:
        ``(tsdf, weight)``: new ``(D, H, W)`` tensors (the inputs are not modified).
    """
    if tsdf.dim() != 3 or weight.shape != tsdf.shape:
        raise ValueError(f"tsdf and weight must both be (D, H, W), got {tuple(tsdf.shape)} and {tuple(weight.shape)}")
    if depth.dim() != 2:
        raise ValueError(f"depth must be (H_img, W_img), got {tuple(depth.shape)}")
    if not truncation > 0:
        raise ValueError(f"truncation must be positive, got {truncation}")
    centres = tsdf_voxel_centers(bounds, tuple(tsdf.shape), dtype=depth.dtype, device=depth.device).reshape(1, -1, 3)
    return _fuse_view(tsdf, weight, centres, depth, K, R, t, truncation)


def _fuse_view(tsdf, weight, centres, depth, K, R, t, truncation):
    """:func:`tsdf_update` given the voxel centres ``(1, D*H*W, 3)`` (computed once by :func:`tsdf_fuse`)."""
    uv, z = project(centres, K.to(depth.dtype)[None], R.to(depth.dtype)[None], t.to(depth.dtype)[None])
    uv, z = uv[0], z[0]
    Hi, Wi = depth.shape
    col, row = torch.floor(uv[:, 0]), torch.floor(uv[:, 1])
    inside = (z > 0) & (col >= 0) & (col < Wi) & (row >= 0) & (row < Hi)
    measured = torch.zeros_like(z)
    measured[inside] = depth[row[inside].long(), col[inside].long()]
    eta = measured - z
    update = inside & (measured > 0) & (eta >= -truncation)
    f = torch.clamp(eta / truncation, max=1.0).to(tsdf.dtype).reshape(tsdf.shape)
    update = update.reshape(tsdf.shape)
    new_weight = weight + update.to(weight.dtype)
    fused = (weight * tsdf + f) / new_weight.clamp(min=1e-12)
    return torch.where(update, fused, tsdf), new_weight


def tsdf_fuse(depths: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, bounds, resolution,
              truncation: float, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fuse ``V`` depth maps into a new TSDF volume, one :func:`tsdf_update` per view.

    .. math::  F(x) = \frac{\sum_v w_v(x)\, f_v(x)}{\sum_v w_v(x)},\qquad W(x) = \sum_v w_v(x)

    Args:
        depths: ``(V, H_img, W_img)`` depth maps (camera ``z``; ``0`` = invalid).
        K: ``(V, 3, 3)`` (or ``(3, 3)`` shared) intrinsics.
        R: ``(V, 3, 3)``, t: ``(V, 3)`` world-to-camera extrinsics.
        bounds: ``(2, 3)`` ``[min xyz, max xyz]`` of the volume.
        resolution: ``R`` or ``(D, H, W)`` voxels.
        truncation: :math:`\mu > 0`, world units (a few voxels is usual).
        progress: show a ``tqdm`` bar over the views.

    Returns:
        ``tsdf (D, H, W)`` in ``[-1, 1]`` (1 where unobserved) and ``weight (D, H, W)`` (views
        that observed each voxel), in ``depths``' dtype.
    """
    if depths.dim() != 3:
        raise ValueError(f"depths must be (V, H_img, W_img), got {tuple(depths.shape)}")
    V = depths.shape[0]
    K = K.expand(V, 3, 3) if K.dim() == 2 else K
    if K.shape != (V, 3, 3) or R.shape != (V, 3, 3) or t.shape != (V, 3):
        raise ValueError(f"need K, R (V, 3, 3) and t (V, 3) for V={V} views, got {tuple(K.shape)}, {tuple(R.shape)}, {tuple(t.shape)}")
    if not truncation > 0:
        raise ValueError(f"truncation must be positive, got {truncation}")
    tsdf, weight = tsdf_volume(resolution, dtype=depths.dtype, device=depths.device)
    centres = tsdf_voxel_centers(bounds, tuple(tsdf.shape), dtype=depths.dtype, device=depths.device).reshape(1, -1, 3)
    for v in tqdm(range(V), desc="TSDF fusion", disable=not progress):
        tsdf, weight = _fuse_view(tsdf, weight, centres, depths[v], K[v], R[v], t[v], truncation)
    return tsdf, weight
