r"""Multimodal 2D-3D semantic segmentation: image features back-projected into the 3D network.

The slides' two "Multimodal" variants, both on the procedural rooms seen by a few RGB-D cameras:

* **(a) voxels** (Dai & Nießner, "3DMV: Joint 3D-multi-view prediction for 3D semantic scene
  segmentation", ECCV 2018): a 2D CNN runs on every view; its features are **back-projected to
  3D voxels**, **max-pooled across the views** voxel by voxel, and **fused with the 3D features
  at an intermediate level** of the 3D network (here the sites of one encoder level of the
  :class:`~coursekit.models.sparse_unet.SparseUNet`) — :class:`VoxelFusionSeg`.
* **(b) points** (e.g. Jaritz et al., "Multi-view PointNet for 3D scene understanding",
  ICCVW 2019): the 2D features are **back-projected to the 3D points**, the views of each point
  are **aggregated by a PointNet** (shared MLP on every (point, view) pair, max over views), and
  the result is **fused as input** to the 3D network (a
  :class:`~coursekit.models.pointnet2_seg.PointNet2Seg`) — :class:`PointFusionSeg`.

Back-projection (:func:`backproject`) uses the camera module's projection: a 3D position
:math:`p` lands at pixel :math:`\lambda (u, v, 1)^\top = K (R p + t)`; its feature is read by
bilinear sampling at :math:`(u, v)` (PyTorch normalised coordinates, ``align_corners=False``, the
convention of :mod:`coursekit.stn`), and the view counts only if :math:`p` is **visible** there:
inside the image, in front of the camera, and within ``tol`` of the depth the camera measured
(occlusion test, as 3DMV's depth check).

Images: the world has no textures, so :func:`render_scene_views` paints each face with its
class's albedo (:data:`CLASS_ALBEDO`) varied per instance (up to ±30 %) and shades it. The
colour thus carries appearance information that geometry lacks, as real RGB does; how much the
networks gain from it is measured by the segmentation table's ablation (fusion vs the same 3D
network on geometry alone). With these textures the gain is an upper bound for what real
images would give.

Coordinates: the 3D networks read points normalised to ``[-1, 1]^3``; :func:`normalise_views`
moves the cameras into the same frame (a similarity :math:`p' = (p - c)/s` gives
:math:`t' = (R c + t)/s` and depths divided by :math:`s`), so pixels do not change.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..data.world.scenes import SCENE_CLASSES, Scene
from ..geometry.camera import fov_intrinsics, pixel_grid, project, unproject
from ..geometry.render import render_mesh
from ..nn.mlp import SharedMLP
from .pointnet2_seg import PointNet2Seg
from .sparse_unet import SparseUNet

__all__ = ["CLASS_ALBEDO", "SceneViews", "render_scene_views", "partial_scene_scan", "normalise_views", "backproject",
           "ImageEncoder", "VoxelFusionSeg", "PointFusionSeg"]

CLASS_ALBEDO = torch.rand(len(SCENE_CLASSES), 3, generator=torch.Generator().manual_seed(20)) * 0.7 + 0.2
"""``(20, 3)`` base colour of each of :data:`~coursekit.data.world.scenes.SCENE_CLASSES` (fixed, seeded)."""


class SceneViews(NamedTuple):
    """RGB-D views of a room from known cameras (leading batch axes allowed, e.g. ``(B, V, ...)``).

    Attributes:
        rgb: ``(V, 3, H, W)`` shaded colour in ``[0, 1]``, black background.
        depth: ``(V, H, W)`` camera depth, ``0`` where nothing is seen.
        semantic: ``(V, H, W)`` int64 class of the visible face, ``-1`` on background.
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)`` cameras (camera module conventions).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    semantic: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor


def render_scene_views(scene: Scene, n_views: int, size: tuple[int, int] = (48, 64), fov_deg: float = 75.0,
                       generator: torch.Generator | None = None) -> SceneViews:
    r"""Render ``n_views`` RGB-D images of ``scene`` from :meth:`Scene.viewpoints` cameras.

    .. math::  \text{albedo}_f = \mathrm{clip}\big(a_{c(f)}\,(1 + 0.3\,\epsilon_{i(f)}),\ 0, 1\big),
               \qquad \epsilon_i \sim U(-1, 1) \text{ per instance}

    Args:
        scene: a world :class:`~coursekit.data.world.scenes.Scene`.
        n_views: cameras on the room's viewing ellipse.
        size: ``(H, W)``.
        fov_deg: horizontal-ish field of view (:func:`~coursekit.geometry.camera.fov_intrinsics`).
        generator: draws the per-instance colour variation (default seed 0).

    Returns:
        :class:`SceneViews` in room coordinates (metres).
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    R, t = scene.viewpoints(n_views)
    K = fov_intrinsics(fov_deg, size).expand(n_views, 3, 3).contiguous()
    jitter = torch.rand(int(scene.face_instance.max()) + 1, generator=generator) * 2 - 1
    albedo = (CLASS_ALBEDO[scene.face_semantic] * (1 + 0.3 * jitter[scene.face_instance, None])).clamp(0, 1)
    r = render_mesh(scene.vertices, scene.faces, K, R, t, size, face_colors=albedo)
    semantic = torch.where(r["mask"], scene.face_semantic[r["face_index"].clamp(min=0)], torch.full_like(r["face_index"], -1))
    return SceneViews(r["rgb"], r["depth"], semantic, K, R, t)


def partial_scene_scan(views: SceneViews, n_points: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A partial scan: the points the depth cameras see, unprojected, with their labels.

    .. math::  p = R^\top\big(d(u, v)\, K^{-1}(u, v, 1)^\top - t\big) \quad\text{for pixels with } d(u, v) > 0

    ``n_points`` pixels are drawn uniformly from all views' valid pixels (with repeats only
    when fewer are valid). Surfaces no camera sees are missing, as in a real sensor's scan.

    Returns:
        ``points (n_points, 3)`` float32 and ``semantic (n_points,)`` int64.
    """
    V, H, W = views.depth.shape
    valid = (views.depth > 0).reshape(-1).nonzero().squeeze(1)
    if len(valid) == 0:
        raise ValueError("no camera sees any surface: cannot make a scan")
    pick = torch.randperm(len(valid), generator=generator)[:n_points]
    if len(pick) < n_points:
        pick = torch.cat([pick, torch.randint(0, len(valid), (n_points - len(pick),), generator=generator)])
    flat = valid[pick]
    view, pixel = flat // (H * W), flat % (H * W)
    uv = pixel_grid(H, W).reshape(-1, 2)[pixel]
    points = unproject(uv[:, None], views.depth.reshape(V, -1)[view, pixel][:, None],
                       views.K[view], views.R[view], views.t[view])[:, 0]
    return points, views.semantic.reshape(V, -1)[view, pixel]


def normalise_views(views: SceneViews, centre: torch.Tensor, scale: float) -> SceneViews:
    r"""The same views for points normalised by :math:`p' = (p - c) / s`.

    .. math::  R p + t = s\,(R p' + t'),\qquad t' = \frac{R c + t}{s},\qquad d' = \frac{d}{s}
    """
    t = ((views.R @ centre.to(views.R)) + views.t) / scale
    return views._replace(t=t, depth=views.depth / scale)


def backproject(xyz: torch.Tensor, feature_maps: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor,
                t: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Image features at 3D positions, per view, and whether each view sees the position.

    .. math::  \lambda (u, v, 1)^\top = K (R p + t),\qquad f_v(p) = F_v\big(\tfrac{2u}{W} - 1,\ \tfrac{2v}{H} - 1\big),
               \qquad \text{vis}_v(p) = [\lambda > 0]\,[(u, v) \in \text{image}]\,[\,|D_v(u, v) - \lambda| < \text{tol}\,]

    with :math:`F_v` sampled bilinearly (``align_corners=False``; feature maps of any resolution
    cover the same image) and :math:`D_v` the depth map read at the pixel containing ``(u, v)``.

    Args:
        xyz: ``(P, 3)`` positions in the cameras' world frame.
        feature_maps: ``(V, C, h, w)`` image features.
        depth: ``(V, H, W)`` depth maps of the full-resolution images (0: no measurement).
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)``.
        tol: the occlusion tolerance on depth.

    Returns:
        ``features (V, P, C)`` (zero where not visible) and ``visible (V, P)`` bool;
        differentiable in ``feature_maps``.
    """
    V, H, W = depth.shape
    if feature_maps.dim() != 4 or feature_maps.shape[0] != V:
        raise ValueError(f"feature_maps must have shape ({V}, C, h, w), got {tuple(feature_maps.shape)}")
    uv, z = project(xyz.unsqueeze(0).expand(V, -1, -1), K, R, t)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    measured = depth.reshape(V, -1).gather(1, (row.clamp(0, H - 1) * W + col.clamp(0, W - 1)))
    visible = inside & (measured > 0) & ((measured - z).abs() < tol)
    grid = torch.stack([2 * uv[..., 0] / W - 1, 2 * uv[..., 1] / H - 1], -1).unsqueeze(1)  # (V, 1, P, 2)
    grid = torch.where(inside.unsqueeze(1).unsqueeze(-1), grid, torch.zeros_like(grid)).to(feature_maps.dtype)
    sampled = nn.functional.grid_sample(feature_maps, grid, mode="bilinear", align_corners=False)[:, :, 0]  # (V, C, P)
    return sampled.transpose(1, 2) * visible.unsqueeze(-1).to(sampled.dtype), visible


class ImageEncoder(nn.Module):
    r"""A small 2D CNN: ``conv3x3-BN-ReLU`` then ``conv3x3/2-BN-ReLU`` (features at half resolution).

    .. math::  F = \phi(W_2 *_{2} \phi(W_1 * I))

    Shapes:
        ``(B, 3, H, W) -> (B, channels, ceil(H/2), ceil(W/2))``.
    """

    def __init__(self, channels: int = 16, in_channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                                 nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(channels),
                                 nn.ReLU())
        self.out_channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def _view_features(encoder: ImageEncoder, views: SceneViews) -> torch.Tensor:
    """``(B, V, C, h, w)`` CNN features of every view of every scene."""
    if views.rgb.dim() != 5:
        raise ValueError(f"views must be batched: rgb (B, V, 3, H, W), got {tuple(views.rgb.shape)}")
    return encoder(views.rgb.flatten(0, 1)).unflatten(0, views.rgb.shape[:2])


class VoxelFusionSeg(nn.Module):
    r"""Variant (a): 2D features back-projected into voxels, max over views, fused at an intermediate 3D level.

    .. math::  g(v) = \max_{k \,:\, \text{vis}_k(c_v)} F_k(\pi_k(c_v)), \qquad
               e_l \leftarrow \mathrm{Sub}\big([\,e_l,\ g\,]\big) \ \text{at the sites of level } l

    (0 where no view sees the voxel centre :math:`c_v`).

    Args:
        n_classes: ``K``.
        image_channels: width of the 2D CNN.
        fuse_level: encoder level of the :class:`SparseUNet` where the image features join
            (default 1, one down-sampling from the input).
        tol: occlusion tolerance in voxels of that level (times the site size).
        **unet: passed on to :class:`SparseUNet` (``resolution``, ``width``, ``levels``).

    Shapes:
        ``points (B, N, 3)`` in ``[-1, 1]^3``, ``views`` a batched :class:`SceneViews` ``(B, V, ...)``
        in the same frame ``-> (B, N, K)``.
    """

    def __init__(self, n_classes: int, image_channels: int = 16, fuse_level: int = 1, tol: float = 1.0, **unet):
        super().__init__()
        self.images = ImageEncoder(image_channels)
        self.net = SparseUNet(n_classes, inject_level=fuse_level, inject_channels=image_channels, **unet)
        self.tol = float(tol)

    def forward(self, points: torch.Tensor, views: SceneViews) -> torch.Tensor:
        maps = _view_features(self.images, views)
        cell = (self.net.bounds[1] - self.net.bounds[0]) / self.net.resolution

        def inject(batch: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
            stride = 1 << self.net.inject_level
            out = xyz.new_zeros(len(xyz), maps.shape[2])
            for b in range(maps.shape[0]):
                rows = (batch == b).nonzero().squeeze(1)
                feats, visible = backproject(xyz[rows], maps[b], views.depth[b], views.K[b], views.R[b], views.t[b],
                                             self.tol * stride * cell * math.sqrt(3) / 2)
                pooled = feats.masked_fill(~visible.unsqueeze(-1), float("-inf")).amax(dim=0)
                out = out.index_copy(0, rows, torch.where(visible.any(0, keepdim=True).T, pooled, torch.zeros_like(pooled)))
            return out

        return self.net(points, inject=inject)


class PointFusionSeg(nn.Module):
    r"""Variant (b): 2D features back-projected to the points, a PointNet over the views, fused as 3D input.

    .. math::  g(p) = \max_{k} h\big([\,\text{vis}_k(p)\,F_k(\pi_k(p)),\ \text{vis}_k(p)\,]\big), \qquad
               s = \mathrm{PointNet{+}{+}Seg}(p,\ g(p))

    Args:
        n_classes: ``K``.
        image_channels: width of the 2D CNN.
        view_channels: width of the view-aggregating PointNet :math:`h` (the 3D network's input features).
        tol: occlusion tolerance (normalised units).
        **net: passed on to :class:`PointNet2Seg` (``sizes``, ``grouping``).

    Shapes:
        ``points (B, N, 3)`` in ``[-1, 1]^3``, ``views`` a batched :class:`SceneViews` ``-> (B, N, K)``.
    """

    def __init__(self, n_classes: int, image_channels: int = 16, view_channels: int = 16, tol: float = 0.05, **net):
        super().__init__()
        self.images = ImageEncoder(image_channels)
        self.view_pointnet = SharedMLP([image_channels + 1, view_channels, view_channels])
        self.net = PointNet2Seg(n_classes, in_channels=view_channels, **net)  # pass xyz_features=True for rooms
        self.tol = float(tol)

    def point_image_features(self, points: torch.Tensor, views: SceneViews) -> torch.Tensor:
        """``(B, N, view_channels)``: the views of every point aggregated by the PointNet."""
        maps = _view_features(self.images, views)
        out = []
        for b in range(points.shape[0]):
            feats, visible = backproject(points[b], maps[b], views.depth[b], views.K[b], views.R[b], views.t[b], self.tol)
            out.append(self.view_pointnet(torch.cat([feats, visible.unsqueeze(-1).to(feats)], -1)).amax(dim=0))
        return torch.stack(out)

    def forward(self, points: torch.Tensor, views: SceneViews) -> torch.Tensor:
        return self.net(points, self.point_image_features(points, views))
