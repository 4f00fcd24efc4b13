r"""Learnt Stereo Machines (LSM): 2D features unprojected into a 3D grid, fused over views, 3D conv, occupancy.

Kar, Häne, Malik, "Learning a Multi-View Stereo Machine", NeurIPS 2017 (arXiv:1708.05375).
The slide "Learning-Based Stereopsis": *end-to-end learning of deep features for each image
pixel; unproject image features into 3D grids; still very coarse resolution (32x32x32) due to
the volumetric representation.* The voxel variant (V-LSM):

1. a shared 2D CNN computes a feature map :math:`F_v` per view (:class:`ImageEncoder`);
2. **unprojection**: every voxel centre :math:`x` of a grid takes the feature of the pixel it
   projects to (bilinear), in every view (:func:`unproject_features`, the same operation as
   SurfaceNet's colored voxel cube, with learnt features instead of RGB):

   .. math::  G_v[:, x] = F_v\big(\pi_v(x)\big), \qquad \lambda\,(\pi_v(x), 1)^\top = K_v (R_v x + t_v)

3. **fusion** of the per-view grids into one: the paper's recurrent 3D convolutional GRU
   (:class:`ConvGRU3d`; order-dependent, any number of views) or a symmetric pooling
   (``max``/``mean`` over views) (:func:`fuse_grids`);
4. a 3D encoder-decoder refines the fused grid into **occupancy** logits (:class:`LSM`),
   trained with binary cross-entropy against the occupancy of the voxel centres
   (:func:`occupancy_labels`).

The coarse-resolution limit is measured by :func:`resolution_limit`: even the *true* occupancy
sampled at a ``r^3`` grid, meshed by marching cubes, is off the surface by a fraction of the
voxel size, while the grids cost :math:`V \cdot C \cdot r^3` floats.

Grids and cubes follow :mod:`coursekit.models.mvs.surfacenet` (``center``, ``side``,
``resolution``; axes ``D <- z, H <- y, W <- x``); projection is :mod:`coursekit.geometry.camera`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ...geometry.camera import project
from ...geometry.sampling import sample_mesh_surface
from ...geometry.validate import check_count
from ...metrics.dtu import accuracy_completeness
from .surfacenet import _check_views, cube_centers, sample_views_at_points, scene_cube

__all__ = [
    "ImageEncoder",
    "unproject_features",
    "ConvGRU3d",
    "fuse_grids",
    "LSM",
    "occupancy_labels",
    "occupancy_surface",
    "resolution_limit",
    "carved_occupancy",
    "SceneGrids",
    "reconstruct",
]


class ImageEncoder(nn.Module):
    """The shared per-view 2D feature net: ``(B, 3, H, W) -> (B, C, H / 2, W / 2)``.

    Two conv-BN-ReLU stages, the second of stride 2 (LSM's UNet encoder, scaled down).

    Args:
        out_channels: ``C``.
        width: hidden channels.
    """

    def __init__(self, out_channels: int = 16, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def unproject_features(features: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                       center: torch.Tensor, side: float, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""LSM's unprojection: a 3D feature grid per view, each voxel sampling the pixel it projects to.

    .. math::  G_v[:, d, h, w] = F_v\big(\pi_v(x_{dhw})\big)

    Args:
        features: ``(B, V, C, h, w)`` feature maps covering the ``(H, W)`` images (any stride).
        K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)`` cameras (image pixels).
        image_size: ``(H, W)``.
        center, side, resolution: the grid (``center (B, 3)``; see
            :func:`coursekit.models.mvs.surfacenet.cube_centers`).

    Returns:
        ``grids (B, V, C, r, r, r)`` and ``valid (B, V, 1, r, r, r)`` bool (voxel seen by the view).
    """
    B, V = _check_views(features, K, R, t, "features")
    points = cube_centers(center, side, resolution).reshape(B, -1, 3)
    values, valid = sample_views_at_points(features, points, K, R, t, image_size)
    shape = (resolution,) * 3
    return values.reshape(B, V, -1, *shape), valid.reshape(B, V, 1, *shape)


class ConvGRU3d(nn.Module):
    r"""A 3D convolutional GRU cell (LSM's recurrent fusion over views).

    .. math::  z = \sigma(W_z * [G_v, h]),\quad r = \sigma(W_r * [G_v, h]),\quad
               \tilde h = \tanh(W_h * [G_v, r \odot h]),\quad h' = (1 - z) \odot h + z \odot \tilde h

    Args:
        in_channels, hidden_channels: ``C``, ``C_h``.
        kernel_size: odd.

    Shapes:
        ``x (B, C, D, H, W)``, ``h (B, C_h, D, H, W)`` or ``None`` (zeros) ``-> (B, C_h, D, H, W)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = int(hidden_channels)
        pad = kernel_size // 2
        self.gates = nn.Conv3d(in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=pad)
        self.candidate = nn.Conv3d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * candidate


def fuse_grids(grids: torch.Tensor, mode: str = "max", gru: ConvGRU3d | None = None) -> torch.Tensor:
    r"""Fuse per-view grids into one: symmetric pooling or the recurrent GRU of the paper.

    .. math::  G = \max_v G_v \quad\text{or}\quad \tfrac1V \textstyle\sum_v G_v
               \quad\text{or}\quad h_v = \mathrm{GRU}(G_v, h_{v-1}),\ G = h_V

    Args:
        grids: ``(B, V, C, D, H, W)``.
        mode: ``"max"``, ``"mean"`` or ``"gru"`` (needs ``gru``).
        gru: the :class:`ConvGRU3d` for ``mode="gru"``.

    Returns:
        ``(B, C, D, H, W)`` (``C_h`` channels for ``"gru"``).
    """
    if grids.dim() != 6:
        raise ValueError(f"grids must have shape (B, V, C, D, H, W), got {tuple(grids.shape)}")
    if mode == "max":
        return grids.amax(1)
    if mode == "mean":
        return grids.mean(1)
    if mode == "gru":
        if gru is None:
            raise ValueError("mode='gru' needs a ConvGRU3d")
        h = None
        for v in range(grids.shape[1]):
            h = gru(grids[:, v], h)
        return h
    raise ValueError(f"mode must be 'max', 'mean' or 'gru', got {mode!r}")


def _block3d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class LSM(nn.Module):
    r"""Voxel Learnt Stereo Machine: images + cameras -> occupancy logits of a grid.

    ``encoder`` (shared 2D) -> :func:`unproject_features` (plus the view's validity as a
    channel) -> :func:`fuse_grids` -> 3D UNet (one down/up level with a skip) -> ``1x1x1`` conv.

    Args:
        resolution: grid voxels per axis ``r`` (paper 32; even).
        feature_channels: ``C`` of the 2D features.
        width: channels of the 3D net.
        fusion: ``"gru"`` (paper), ``"max"`` or ``"mean"``.

    Shapes:
        ``images (B, V, 3, H, W)``, ``K, R (B, V, 3, 3)``, ``t (B, V, 3)``, ``center (B, 3)``,
        ``side`` float ``-> logits (B, 1, r, r, r)``.

    >>> from coursekit.geometry.camera import fov_intrinsics, ring_cameras
    >>> R, t = ring_cameras(3, distance=2.0); K = fov_intrinsics(50.0, (32, 32)).expand(3, 3, 3)
    >>> LSM(resolution=8)(torch.rand(1, 3, 3, 32, 32), K[None], R[None], t[None], torch.zeros(1, 3), 1.0).shape
    torch.Size([1, 1, 8, 8, 8])
    """

    def __init__(self, resolution: int = 32, feature_channels: int = 16, width: int = 16, fusion: str = "gru"):
        super().__init__()
        check_count(resolution, "resolution")
        if resolution % 2:
            raise ValueError(f"resolution must be even, got {resolution}")
        if fusion not in ("gru", "max", "mean"):
            raise ValueError(f"fusion must be 'gru', 'max' or 'mean', got {fusion!r}")
        self.resolution, self.fusion = int(resolution), fusion
        self.encoder = ImageEncoder(feature_channels)
        c = feature_channels + 1
        self.gru = ConvGRU3d(c, width) if fusion == "gru" else None
        fused = width if fusion == "gru" else c
        self.down = nn.Sequential(_block3d(fused, width), _block3d(width, 2 * width, stride=2), _block3d(2 * width, 2 * width))
        self.skip = _block3d(fused, width)
        self.up = nn.ConvTranspose3d(2 * width, width, 2, stride=2)
        self.head = nn.Sequential(_block3d(2 * width, width), nn.Conv3d(width, 1, 1))

    def grids(self, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, center: torch.Tensor,
              side: float) -> torch.Tensor:
        """The per-view unprojected grids with the validity channel: ``(B, V, C + 1, r, r, r)``."""
        B, V = _check_views(images, K, R, t)
        features = self.encoder(images.flatten(0, 1)).unflatten(0, (B, V))
        grids, valid = unproject_features(features, K, R, t, tuple(images.shape[-2:]), center, side, self.resolution)
        return torch.cat([grids, valid.to(grids.dtype)], 2)

    def forward(self, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, center: torch.Tensor,
                side) -> torch.Tensor:
        if isinstance(side, torch.Tensor):  # a (B,) batch of sides, as batches() yields it: all equal
            if not torch.all(side == side.reshape(-1)[0]):
                raise ValueError("all cubes of a batch must have the same side")
            side = float(side.reshape(-1)[0])
        fused = fuse_grids(self.grids(images, K, R, t, center, side), self.fusion, self.gru)
        x = self.up(self.down(fused))
        return self.head(torch.cat([x, self.skip(fused)], 1))


def occupancy_labels(occupancy: Callable[[torch.Tensor], torch.Tensor], center: torch.Tensor, side: float,
                     resolution: int) -> torch.Tensor:
    """Ground-truth occupancy of every voxel centre: ``occupancy(points (N, 3)) -> (N,)`` bool (e.g.
    :meth:`coursekit.data.world.shapes.Shape.occupancy`), for each cube.

    Returns:
        ``(B, 1, r, r, r)`` float.
    """
    points = cube_centers(center, side, resolution)
    labels = torch.stack([occupancy(p.reshape(-1, 3)).reshape(p.shape[:3]) for p in points])
    return labels.unsqueeze(1).to(center.dtype)


def occupancy_surface(probability: torch.Tensor, center: torch.Tensor, side: float, level: float = 0.5,
                      n_points: int = 20000, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Points on the ``level`` iso-surface of one occupancy grid (marching cubes, then uniform samples).

    The grid is padded with one empty voxel so that closed surfaces stay closed at the border.

    Args:
        probability: ``(1, r, r, r)`` or ``(r, r, r)`` occupancy in ``[0, 1]``, axes ``(z, y, x)``.
        center: ``(3,)`` cube centre; side: cube side.
        level: iso-level.
        n_points: samples on the mesh.
        generator: random source of the samples.

    Returns:
        ``(n_points, 3)`` world points, or ``(0, 3)`` when the grid has no crossing of ``level``.
    """
    from skimage.measure import marching_cubes

    grid = probability.detach().reshape(probability.shape[-3:]).double().cpu().numpy()
    if not grid.min() < level < grid.max():
        return center.new_zeros(0, 3)
    r = grid.shape[0]
    verts, faces, _, _ = marching_cubes(np.pad(grid, 1), level)
    voxel = side / r
    xyz = torch.from_numpy(verts[:, ::-1].copy()).to(center.dtype)  # (z, y, x) -> (x, y, z)
    xyz = (xyz - 1 + 0.5) * voxel - side / 2 + center.cpu()
    sample = sample_mesh_surface(xyz, torch.from_numpy(faces.astype(np.int64)), n_points, generator, return_normals=False)
    return sample.points.to(center.device)


def resolution_limit(occupancy: Callable[[torch.Tensor], torch.Tensor], surface: torch.Tensor, center: torch.Tensor,
                     side: float, resolutions, feature_channels: int = 16, views: int = 1) -> list[dict]:
    r"""The coarse-resolution limit of a volumetric output: error of the *true* occupancy at ``r^3``.

    The ground-truth occupancy at the voxel centres (what a perfect LSM outputs) is meshed by
    marching cubes (:func:`occupancy_surface`, sampled as densely as ``surface``) and compared with
    the true surface samples:
    accuracy, completeness, overall (mean distances, as DTU). The memory column is one float32
    grid of ``views * feature_channels`` channels, :math:`4 V C r^3` bytes.

    Args:
        occupancy: ``points (N, 3) -> (N,)`` bool.
        surface: ``(N, 3)`` dense samples of the true surface.
        center: ``(3,)``; side: cube side.
        resolutions: iterable of ``r``.
        feature_channels, views: for the memory column.

    Returns:
        one dict per ``r``: ``resolution, voxel_size, accuracy, completeness, overall, grid_MiB``
        (the errors are ``inf`` when the grid is too coarse to hold any occupied voxel centre).
    """
    rows = []
    for r in resolutions:
        labels = occupancy_labels(occupancy, center[None], side, int(r))[0]
        recon = occupancy_surface(labels, center, side, n_points=len(surface), generator=torch.Generator().manual_seed(0))
        if len(recon) == 0:
            acc = comp = float("inf")
        else:
            acc, comp = accuracy_completeness(recon, surface, max_dist=None).tolist()
        rows.append(dict(resolution=int(r), voxel_size=side / int(r), accuracy=acc, completeness=comp,
                         overall=(acc + comp) / 2, grid_MiB=4 * views * feature_channels * int(r) ** 3 / 2**20))
    return rows


# ---------------------------------------------------------------------------- scenes of coursekit.data.mvs

def carved_occupancy(depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, center: torch.Tensor,
                     side: float, resolution: int) -> torch.Tensor:
    r"""Occupancy ground truth carved from depth maps: a voxel is *empty* when some view sees through it.

    .. math::  o_x = \prod_v \Big(1 - \mathbb 1\big[\pi_v(x) \in \text{image},\ z_v(x) > 0,\
               \big(D_v(\pi_v(x)) = 0 \ \lor\ z_v(x) < D_v(\pi_v(x))\big)\big]\Big)

    (nearest pixel; depth 0 = nothing hit). Space no camera sees through — inside objects,
    below the ground — stays occupied.

    Args:
        depth: ``(V, H, W)`` depth maps; K, R, t: ``(V, ...)`` cameras.
        center: ``(3,)``; side, resolution: the grid.

    Returns:
        ``(1, 1, r, r, r)`` float.
    """
    V, H, W = depth.shape
    points = cube_centers(center[None], side, resolution).reshape(1, -1, 3).expand(V, -1, -1)
    uv, z = project(points, K, R, t)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    d = depth[torch.arange(V)[:, None], row.clamp(0, H - 1), col.clamp(0, W - 1)]
    free = (inside & ((d <= 0) | (z < d))).any(0)
    return (~free).to(depth.dtype).reshape(1, 1, resolution, resolution, resolution)


def _scene_inputs(scene, resolution: int):
    center, side = scene_cube(scene.points)
    return (scene.images[None], scene.K[None], scene.R[None], scene.t[None], center[None], torch.tensor([side]),
            carved_occupancy(scene.depth, scene.K, scene.R, scene.t, center, side, resolution))


class SceneGrids(torch.utils.data.Dataset):
    """LSM's training data: every scene whole (all views, the cube of
    :func:`coursekit.models.mvs.surfacenet.scene_cube`) with its :func:`carved_occupancy` as the target.

    Items: dict ``images (V, 3, H, W)``, ``K, R (V, 3, 3)``, ``t (V, 3)``, ``center (3,)``, ``side`` (0-d),
    ``occupancy (1, r, r, r)``. Cubes of one batch must have the same side (:meth:`LSM.forward`): batch size 1.
    """

    def __init__(self, scenes, resolution: int):
        keys = ("images", "K", "R", "t", "center", "side", "occupancy")
        self.items = [{k: x[0] for k, x in zip(keys, _scene_inputs(scene, resolution))} for scene in scenes]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        return self.items[k]


@torch.no_grad()
def reconstruct(model: LSM, scene, n_points: int = 20000, ground: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """LSM's reconstruction of a scene: occupancy of the scene cube, marching cubes, surface samples above the
    ground plane ``y = ground`` (default half a voxel: the ground slab's own surface is not evaluated).

    Returns:
        ``points (N, 3)`` and ``probability (1, 1, r, r, r)``.
    """
    model.eval()
    images, K, R, t, center, side, _ = _scene_inputs(scene, model.resolution)
    device = next(model.parameters()).device
    prob = torch.sigmoid(model(images.to(device), K.to(device), R.to(device), t.to(device), center.to(device), side)).cpu()
    points = occupancy_surface(prob[0], center[0], float(side), n_points=n_points, generator=torch.Generator().manual_seed(0))
    ground = 0.5 * float(side) / model.resolution if ground is None else ground
    return points[points[:, 1] > ground], prob
