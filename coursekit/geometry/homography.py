r"""Plane-sweep warping: source images or features seen on a reference camera's depth planes.

MVSNet (Yao et al., ECCV 2018, eq. 1) warps every source view ``i`` onto ``D``
fronto-parallel planes of the reference camera ``1`` at depths :math:`d`. A pixel
:math:`p` of the reference image lies on plane :math:`d` at the world point
:math:`X = C_1 + d\,R_1^\top K_1^{-1} p`; seen from camera ``i`` it lands on
:math:`p_i \sim H_i(d)\,p` with

.. math::

    H_i(d) = K_i\, R_i \Big(I + \frac{(C_1 - C_i)\, n_1^\top}{d}\Big) R_1^\top K_1^{-1}
           = K_i \Big(R_{i1} + \frac{t_{i1}\, e_3^\top}{d}\Big) K_1^{-1},

    R_{i1} = R_i R_1^\top, \qquad t_{i1} = t_i - R_{i1} t_1 ,

where :math:`C = -R^\top t` are camera centres and :math:`n_1 = R_1^\top e_3` the
reference principal axis (pointing into the scene). The paper prints
:math:`H_i(d) = K_i R_i (I - (t_1 - t_i) n_1^\top / d) R_1^\top K_1^\top`: its
:math:`t` are camera *centres*, its :math:`n_1` points towards the camera (hence the
minus sign), and its final :math:`K_1^\top` is a typo for :math:`K_1^{-1}` (the
official code inverts ``K``).

Convention (stated once here, used by every MVS module):

* cameras follow :mod:`coursekit.geometry.camera`: world-to-camera ``[R | t]``, pixel
  ``(u, v)`` with the image's top-left *corner* at ``(0, 0)``, pixel centres at
  ``(j + 0.5, i + 0.5)``, depth = camera ``z``;
* sampling uses :func:`torch.nn.functional.grid_sample` with ``align_corners=False``
  (see :mod:`coursekit.stn`): pixel ``u`` maps to :math:`x = 2u/W - 1`, so the pixel
  centres line up exactly; outside the source image reads zeros;
* features at a lower resolution than the cameras' images take scaled intrinsics
  (:func:`scale_intrinsics`); ``K`` must describe the grid actually sampled.
* depth planes are given in the order the cost volume stores them (``depths[..., 0]``
  is slice 0); nothing is sorted.

Two implementations, compared in the tests: :func:`homography_warp` (one 3x3 matrix per
plane, MVSNet) and :func:`depth_warp` (per-pixel depth through explicit 3D points with
:func:`~coursekit.geometry.camera.unproject`/:func:`~coursekit.geometry.camera.project`),
which also serves fusion and photometric checks with arbitrary depth maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .camera import _check_extrinsics, _check_matrices, pixel_grid, project, unproject

__all__ = [
    "scale_intrinsics",
    "relative_pose",
    "plane_sweep_homographies",
    "pixels_to_grid",
    "homography_warp",
    "depth_warp",
    "depth_planes",
]


def scale_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float | None = None) -> torch.Tensor:
    r"""Intrinsics of an image resized by ``scale`` (e.g. ``0.25`` for MVSNet's 1/4 features).

    With the corner-origin pixel convention a resize is exactly :math:`u' = s_x u,\ v' = s_y v`:

    .. math::  K' = \mathrm{diag}(s_x, s_y, 1)\, K

    Args:
        K: ``(B, 3, 3)`` intrinsics.
        scale_x: new width / old width.
        scale_y: new height / old height (default ``scale_x``).

    Returns:
        ``(B, 3, 3)``.
    """
    _check_matrices("K", K, (3, 3))
    scale_y = scale_x if scale_y is None else scale_y
    s = torch.tensor([scale_x, scale_y, 1.0], dtype=K.dtype, device=K.device)
    return K * s[:, None]


def relative_pose(R_ref: torch.Tensor, t_ref: torch.Tensor, R_src: torch.Tensor, t_src: torch.Tensor):
    r"""Pose of the source camera relative to the reference camera.

    .. math::  x_{src} = R_{i1}\, x_{ref} + t_{i1}, \qquad R_{i1} = R_i R_1^\top,\quad t_{i1} = t_i - R_{i1} t_1

    Args:
        R_ref, R_src: ``(B, 3, 3)`` world-to-camera rotations.
        t_ref, t_src: ``(B, 3)`` world-to-camera translations.

    Returns:
        ``R_rel (B, 3, 3)``, ``t_rel (B, 3)``.
    """
    _check_extrinsics(R_ref, t_ref)
    _check_extrinsics(R_src, t_src)
    R_rel = R_src @ R_ref.transpose(-1, -2)
    t_rel = t_src - (R_rel @ t_ref.unsqueeze(-1)).squeeze(-1)
    return R_rel, t_rel


def _check_depths(depths: torch.Tensor, batch: int) -> torch.Tensor:
    if not isinstance(depths, torch.Tensor) or not depths.dtype.is_floating_point:
        raise TypeError(f"depths must be a float tensor of shape (D,) or (B, D), got {type(depths).__name__}")
    if depths.dim() == 1:
        depths = depths.unsqueeze(0).expand(batch, -1)
    if depths.dim() != 2 or depths.shape[0] != batch or depths.shape[1] == 0:
        raise ValueError(f"depths must have shape (D,) or ({batch}, D) with D >= 1, got {tuple(depths.shape)}")
    if not (depths > 0).all():
        raise ValueError("depths must be positive (planes in front of the reference camera)")
    return depths


def plane_sweep_homographies(K_ref, R_ref, t_ref, K_src, R_src, t_src, depths) -> torch.Tensor:
    r"""The homographies :math:`H_i(d)` mapping reference pixels to source pixels via depth planes.

    .. math::  p_i \sim H_i(d)\, p_1, \qquad
               H_i(d) = K_i \Big(R_{i1} + \frac{t_{i1}\, e_3^\top}{d}\Big) K_1^{-1}

    (module docstring: equal to MVSNet's eq. 1 with its :math:`K_1^\top` read as :math:`K_1^{-1}`).

    Args:
        K_ref, R_ref, t_ref: reference camera, ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)``.
        K_src, R_src, t_src: source camera, same shapes.
        depths: ``(D,)`` or ``(B, D)`` positive plane depths (reference camera ``z``).

    Returns:
        ``(B, D, 3, 3)`` homographies acting on homogeneous pixels ``(u, v, 1)``.
    """
    _check_matrices("K_ref", K_ref, (3, 3))
    _check_matrices("K_src", K_src, (3, 3))
    R_rel, t_rel = relative_pose(R_ref, t_ref, R_src, t_src)
    B = R_rel.shape[0]
    depths = _check_depths(depths, B).to(R_rel.dtype)
    e3 = torch.zeros(3, dtype=R_rel.dtype, device=R_rel.device)
    e3[2] = 1
    plane = t_rel[:, None, :, None] * e3 / depths[:, :, None, None]  # (B, D, 3, 3): t e3^T / d
    middle = R_rel[:, None] + plane
    return K_src[:, None] @ middle @ torch.linalg.inv(K_ref)[:, None]


def pixels_to_grid(uv: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Pixel coordinates ``(u, v)`` to ``grid_sample`` coordinates (``align_corners=False``).

    .. math::  x = \frac{2u}{W} - 1, \qquad y = \frac{2v}{H} - 1

    Args:
        uv: ``(..., 2)`` pixels in the camera module's convention.
        size: ``(H, W)`` of the image that will be sampled.

    Returns:
        ``(..., 2)`` normalised ``(x, y)`` (x along the width first, as ``grid_sample`` wants).
    """
    H, W = size
    scale = torch.tensor([2.0 / W, 2.0 / H], dtype=uv.dtype, device=uv.device)
    return uv * scale - 1


def homography_warp(src: torch.Tensor, K_ref, R_ref, t_ref, K_src, R_src, t_src, depths,
                    size: tuple[int, int] | None = None, return_mask: bool = False):
    r"""Warp source features onto the reference camera's fronto-parallel depth planes (MVSNet).

    For every plane :math:`d` and reference pixel centre :math:`p`, read the source at
    :math:`H_i(d)\,p` (:func:`plane_sweep_homographies`) with bilinear ``grid_sample``:

    .. math::  V_i(d, p) = F_i\big(\pi(H_i(d)\, \tilde p)\big), \qquad
               \pi(x, y, w) = (x / w,\ y / w)

    Differentiable in ``src`` and in the cameras.

    Args:
        src: ``(B, C, H_s, W_s)`` source image or features (``K_src`` describes this grid).
        K_ref, R_ref, t_ref: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` reference camera.
        K_src, R_src, t_src: source camera, same shapes.
        depths: ``(D,)`` or ``(B, D)`` plane depths, in cost-volume order.
        size: ``(H, W)`` of the reference grid (``K_ref`` describes it); default the source size.
        return_mask: also return where the sample fell inside the source image.

    Returns:
        ``(B, C, D, H, W)`` warped features (zeros outside the source image); with
        ``return_mask`` also the ``(B, D, H, W)`` bool in-image mask.

    >>> from coursekit.geometry.camera import fov_intrinsics
    >>> K = fov_intrinsics(50.0, (6, 8))[None]; R = torch.eye(3)[None]; t = torch.zeros(1, 3)
    >>> img = torch.rand(1, 3, 6, 8)
    >>> torch.allclose(homography_warp(img, K, R, t, K, R, t, torch.tensor([1.0, 2.0]))[:, :, 1], img, atol=1e-5)
    True
    """
    if not isinstance(src, torch.Tensor) or src.dim() != 4:
        raise ValueError(f"src must have shape (B, C, H, W), got {tuple(getattr(src, 'shape', ()))}")
    H, W = size if size is not None else src.shape[-2:]
    Hm = plane_sweep_homographies(K_ref, R_ref, t_ref, K_src, R_src, t_src, depths).to(src.dtype)
    B, D = Hm.shape[:2]
    if src.shape[0] != B:
        raise ValueError(f"src has batch {src.shape[0]} but the cameras have {B}")
    p = pixel_grid(H, W, dtype=src.dtype, device=src.device).reshape(-1, 2)
    p = torch.cat([p, torch.ones_like(p[:, :1])], -1)  # (HW, 3)
    q = p @ Hm.transpose(-1, -2)  # (B, D, HW, 3)
    w = q[..., 2:3]
    front = w > 1e-6
    uv = q[..., :2] / torch.where(front, w, torch.ones_like(w))
    grid = pixels_to_grid(uv, src.shape[-2:])
    grid = torch.where(front, grid, torch.full_like(grid, -2.0))  # behind the source camera: outside
    out = F.grid_sample(src, grid.reshape(B, D * H, W, 2), mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(B, src.shape[1], D, H, W)
    if not return_mask:
        return out
    inside = front[..., 0] & (grid.abs() <= 1).all(-1)
    return out, inside.reshape(B, D, H, W)


def depth_planes(d_min: float, d_max: float, n: int, inverse: bool = False, dtype=torch.float32) -> torch.Tensor:
    r"""``(n,)`` plane depths from ``d_min`` to ``d_max``, uniform in depth (MVSNet) or in inverse depth.

    .. math::  d_k = d_{min} + k\,\frac{d_{max} - d_{min}}{n - 1} \quad\text{or}\quad
               \frac{1}{d_k} = \frac{1}{d_{min}} + k\,\frac{1/d_{max} - 1/d_{min}}{n - 1}
    """
    if not 0 < d_min < d_max or n < 2:
        raise ValueError(f"need 0 < d_min < d_max and n >= 2, got {d_min}, {d_max}, {n}")
    k = torch.linspace(0, 1, n, dtype=torch.float64)
    d = 1 / (1 / d_min + k * (1 / d_max - 1 / d_min)) if inverse else d_min + k * (d_max - d_min)
    return d.to(dtype)


def depth_warp(src: torch.Tensor, depth: torch.Tensor, K_ref, R_ref, t_ref, K_src, R_src, t_src,
               return_coords: bool = False):
    r"""Warp a source image into the reference view through a per-pixel reference depth map.

    Each reference pixel centre :math:`p` is lifted to the world point
    :math:`X = \mathrm{unproject}(p, z(p))` and read in the source at
    :math:`\mathrm{project}_i(X)` (both from :mod:`coursekit.geometry.camera`):

    .. math::  W_i(p) = F_i\big(\pi(K_i (R_i X + t_i))\big), \qquad
               X = R_1^\top\big(z(p)\, K_1^{-1} \tilde p - t_1\big)

    With a constant depth map this equals one slice of :func:`homography_warp`.

    Args:
        src: ``(B, C, H_s, W_s)`` source image (``K_src`` describes this grid).
        depth: ``(B, H, W)`` reference depths (``K_ref`` describes this grid; non-positive
            depths are treated as invalid).
        K_ref, R_ref, t_ref, K_src, R_src, t_src: cameras as in :func:`homography_warp`.
        return_coords: also return the source pixels and source depths.

    Returns:
        ``(B, C, H, W)`` warped image and ``(B, H, W)`` bool validity (valid reference depth,
        in front of the source camera, inside the source image); with ``return_coords`` also
        ``uv_src (B, H, W, 2)`` and ``depth_src (B, H, W)`` (the point's depth in the source camera).
    """
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3:
        raise ValueError(f"depth must have shape (B, H, W), got {tuple(getattr(depth, 'shape', ()))}")
    if not isinstance(src, torch.Tensor) or src.dim() != 4 or src.shape[0] != depth.shape[0]:
        raise ValueError(f"src must have shape (B, C, H, W) with B = {depth.shape[0]}, got {tuple(getattr(src, 'shape', ()))}")
    B, H, W = depth.shape
    uv = pixel_grid(H, W, dtype=depth.dtype, device=depth.device).reshape(1, H * W, 2).expand(B, -1, -1)
    world = unproject(uv, depth.reshape(B, H * W), K_ref, R_ref, t_ref)
    uv_src, z_src = project(world, K_src, R_src, t_src)
    front = z_src > 1e-6
    uv_src = torch.where(front[..., None], uv_src, torch.full_like(uv_src, -1e6))
    grid = pixels_to_grid(uv_src, src.shape[-2:]).reshape(B, H, W, 2).to(src.dtype)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    valid = (depth > 0) & front.reshape(B, H, W) & (grid.abs() <= 1).all(-1)
    if return_coords:
        return out, valid, uv_src.reshape(B, H, W, 2), z_src.reshape(B, H, W)
    return out, valid
