r"""MarrNet: image -> 2.5D sketches -> voxels, with reprojection consistency (Wu et al., NeurIPS 2017).

The slide "Visually Grounded Prediction: 2.5D to Bridge": instead of mapping an image straight
to a shape embedding, first predict what the image *shows* — the visible surface's depth,
its normals and the silhouette (the "2.5D sketches", which the world renders give as ground
truth, :func:`coursekit.geometry.render.render_mesh`) — then lift the sketches to a voxel
grid. Sketches are class-agnostic, which is the argument of Zhang et al. (GenRe,
NeurIPS 2018) for generalising to **unseen classes** (measured in
:func:`coursekit.models.generation.implicit_table.unseen_classes_table`).

Reprojection consistency (MarrNet §3.3), written for a perspective camera: every voxel
centre :math:`x` is projected (:func:`coursekit.geometry.camera.project`) to the pixel
:math:`\pi(x)` that contains it, at camera depth :math:`z(x)`; with :math:`v(x)` the predicted
occupancy, :math:`s` the silhouette and :math:`d` the depth sketch,

.. math::  \mathcal{L}_{sil} = \frac{1}{|V|} \sum_x \big(1 - s(\pi(x))\big)\, v(x)^2

.. math::  \mathcal{L}_{depth} = \frac{1}{|V_s|} \sum_{x \in V_s,\ z(x) < d(\pi(x)) - \epsilon} v(x)^2
           \;+\; \frac{1}{|P|} \sum_{p \in P} \Big(1 - \max_{x:\ \pi(x) = p,\ |z(x) - d(p)| \le \epsilon} v(x)\Big)^2

with :math:`V_s` the voxels that project inside the silhouette. The first depth term empties
the space in front of the seen surface, the second asks the ray
of every silhouette pixel :math:`p \in P` (those with a voxel in the band) to stop at the
seen depth. MarrNet's orthographic version reads "(1 - v)^2 where z = d"; with perspective
rays and voxels of another size than pixels, the max over the band :math:`\epsilon` is what
keeps the loss **exactly zero** for a grid and the sketches it projects to
(:func:`voxel_sketches`), which the tests check.

Kept: the two stages, the three sketches, the two reprojection losses, voxels as output.
Changed: small CNNs (paper: ResNet-18 encoder, 128^3 output), a fixed known camera shared by
all samples (the paper's voxels live in the viewer frame), a 32^3 grid.

Shapes: images ``(B, C, H, W)``, depth/silhouette ``(B, H, W)``, normals ``(B, 3, H, W)``,
voxels ``(B, 1, D, H, W)`` with axis D along world z, H along y, W along x
(:func:`coursekit.geometry.voxels.voxel_centers`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.camera import project
from ...geometry.voxels import voxel_centers
from .encoders import ImageEncoder
from .ogn import DenseVoxelDecoder

__all__ = ["Sketches", "SketchNet", "ImageToVoxels", "MarrNet", "sketch_loss", "sketch_channels",
           "reprojection_losses", "voxel_sketches", "voxel_loss"]

Bounds = tuple[float, float]


class Sketches(NamedTuple):
    """2.5D sketches of a batch of images.

    Attributes:
        depth: ``(B, H, W)`` camera depth (meaningful inside the silhouette).
        normals: ``(B, 3, H, W)`` unit world normals.
        silhouette: ``(B, H, W)`` logits (predicted) or ``{0, 1}`` (ground truth).
    """

    depth: torch.Tensor
    normals: torch.Tensor
    silhouette: torch.Tensor


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SketchNet(nn.Module):
    r"""Image -> 2.5D sketches: a small U-Net (strided encoder, upsampling decoder with skips), 5 output maps.

    .. math::  (\hat d, \hat n, \hat s) = \big(d_0 + y_0,\ y_{1:4} / \lVert y_{1:4}\rVert,\ y_4\big), \qquad y = \mathrm{UNet}(x)

    Args:
        in_channels: image channels.
        widths: encoder widths (each level halves the resolution; ``H, W`` must divide by ``2^len``).
        depth_offset: :math:`d_0`, added to the depth head (the camera's distance to the object).

    Shapes:
        ``(B, in_channels, H, W) ->`` :class:`Sketches` with silhouette **logits**.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32, 64), depth_offset: float = 2.5):
        super().__init__()
        self.depth_offset = float(depth_offset)
        self.stem = _conv(in_channels, widths[0])
        self.down = nn.ModuleList([_conv(a, b, 2) for a, b in zip(widths[:-1], widths[1:])])
        self.up = nn.ModuleList([_conv(b + a, a) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nn.Conv2d(widths[0], 5, 1)

    def forward(self, images: torch.Tensor) -> Sketches:
        h = self.stem(images)
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up, skip in zip(reversed(self.up), reversed(skips)):
            h = up(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
        y = self.head(h)
        return Sketches(self.depth_offset + y[:, 0], F.normalize(y[:, 1:4], dim=1), y[:, 4])


def sketch_loss(pred: Sketches, depth: torch.Tensor, normals: torch.Tensor, silhouette: torch.Tensor) -> torch.Tensor:
    r"""Stage-1 loss: silhouette BCE plus depth and normal errors inside the true silhouette.

    .. math::  \mathrm{BCE}(\hat s, s) + \frac{\sum s\,(\hat d - d)^2}{\sum s} + \frac{\sum s\,\lVert \hat n - n\rVert^2}{\sum s}

    Args:
        pred: :class:`Sketches` with silhouette logits.
        depth: ``(B, H, W)``; normals: ``(B, 3, H, W)``; silhouette: ``(B, H, W)`` in ``{0, 1}``.
    """
    s = silhouette.to(pred.depth.dtype)
    n = s.sum().clamp_min(1)
    return (F.binary_cross_entropy_with_logits(pred.silhouette, s)
            + (s * (pred.depth - depth) ** 2).sum() / n
            + (s[:, None] * (pred.normals - normals) ** 2).sum() / n)


def sketch_channels(sketches: Sketches, depth_offset: float = 2.5, logits: bool = True) -> torch.Tensor:
    r"""The 5-channel input of the second stage: ``[s (d - d_0), s n, s]`` with ``s`` the silhouette.

    Args:
        sketches: predicted (``logits=True``: silhouette through a sigmoid) or true sketches.
        depth_offset: :math:`d_0` subtracted from the depth so the input is centred.

    Returns:
        ``(B, 5, H, W)``.
    """
    s = torch.sigmoid(sketches.silhouette) if logits else sketches.silhouette.to(sketches.depth.dtype)
    return torch.cat([(s * (sketches.depth - depth_offset))[:, None], s[:, None] * sketches.normals, s[:, None]], 1)


class ImageToVoxels(nn.Module):
    """A 2D encoder (:class:`~coursekit.models.generation.encoders.ImageEncoder`) and a dense 3D decoder
    (:class:`~coursekit.models.generation.ogn.DenseVoxelDecoder`).

    With ``in_channels=1`` it is the **direct** image -> voxel baseline; with ``in_channels=5``
    MarrNet's second stage (sketches -> voxels).

    Args:
        in_channels: input maps. c_dim: code size. resolution: ``R`` (4 times a power of two).
        encoder_widths: conv stages of the encoder. channels: decoder width at the ``4^3`` grid.

    Shapes:
        ``(B, in_channels, H, W) -> (B, 1, R, R, R)`` logits (axis order z, y, x).
    """

    def __init__(self, in_channels: int = 1, c_dim: int = 128, resolution: int = 32,
                 encoder_widths: Sequence[int] = (16, 32, 64, 128), channels: int = 64):
        super().__init__()
        self.encoder = ImageEncoder(in_channels, c_dim, tuple(encoder_widths))
        self.decoder = DenseVoxelDecoder(c_dim, resolution, channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))[:, None]


class MarrNet(nn.Module):
    """The two stages chained: ``images -> (sketches, voxel logits)``.

    Args:
        sketch_net: :class:`SketchNet`.
        shape_net: :class:`ImageToVoxels` with ``in_channels=5``.

    Shapes:
        ``(B, C, H, W) -> (`` :class:`Sketches` ``, (B, 1, R, R, R))``.
    """

    def __init__(self, sketch_net: SketchNet, shape_net: ImageToVoxels):
        super().__init__()
        self.sketch_net, self.shape_net = sketch_net, shape_net

    def forward(self, images: torch.Tensor) -> tuple[Sketches, torch.Tensor]:
        sketches = self.sketch_net(images)
        return sketches, self.shape_net(sketch_channels(sketches, self.sketch_net.depth_offset))


def voxel_loss(logits: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of voxel logits ``(B, 1, D, H, W)`` against occupancy in ``{0, 1}``."""
    if logits.shape != voxels.shape:
        raise ValueError(f"logits and voxels must have the same shape, got {tuple(logits.shape)} and {tuple(voxels.shape)}")
    return F.binary_cross_entropy_with_logits(logits, voxels.to(logits.dtype))


def _pixels(grid_shape: Sequence[int], K, R, t, size, bounds: Bounds):
    """Pixel index (``-1`` off the image) and camera depth of every voxel centre: ``(B, N)`` each."""
    centres = voxel_centers(tuple(grid_shape), bounds, dtype=R.dtype, device=R.device).reshape(1, -1, 3)
    uv, z = project(centres, K, R, t)
    H, W = size
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    return torch.where(ok, row * W + col, torch.full_like(col, -1)), z


def voxel_sketches(voxels: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, size: tuple[int, int],
                   bounds: Bounds = (-1.0, 1.0), threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The depth and silhouette a voxel grid projects to: the nearest occupied centre per pixel (a z-buffer).

    .. math::  d(p) = \min_{x:\ \pi(x) = p,\ v(x) > \tau} z(x), \qquad s(p) = [\exists x:\ \pi(x) = p,\ v(x) > \tau]

    Args:
        voxels: ``(B, 1, D, H, W)`` occupancy; K, R, t: cameras (``(B or 1, 3, 3)``, ``(B or 1, 3)``).
        size: ``(H, W)`` of the image.
        bounds: the grid's cube. threshold: occupancy threshold :math:`\tau`.

    Returns:
        ``depth (B, H, W)`` (``0`` on background) and ``silhouette (B, H, W)`` bool.
    """
    B = voxels.shape[0]
    pixel, z = _pixels(voxels.shape[2:], K, R, t, size, bounds)
    pixel, z = pixel.expand(B, -1), z.expand(B, -1)
    hit = (voxels.reshape(B, -1) > threshold) & (pixel >= 0)
    n_pix = size[0] * size[1]
    depth = torch.full((B, n_pix + 1), float("inf"), dtype=z.dtype, device=z.device)
    index = torch.where(hit, pixel, torch.full_like(pixel, n_pix))
    depth = depth.scatter_reduce(1, index, torch.where(hit, z, torch.full_like(z, float("inf"))), "amin")[:, :n_pix]
    silhouette = torch.isfinite(depth)
    return torch.where(silhouette, depth, torch.zeros_like(depth)).reshape(B, *size), silhouette.reshape(B, *size)


def reprojection_losses(voxels: torch.Tensor, depth: torch.Tensor, silhouette: torch.Tensor, K: torch.Tensor,
                        R: torch.Tensor, t: torch.Tensor, bounds: Bounds = (-1.0, 1.0),
                        band: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""MarrNet's silhouette and depth reprojection losses of predicted voxels against 2.5D sketches.

    .. math::  \mathcal{L}_{sil} = \tfrac{1}{|V|} \sum_x (1 - s(\pi(x)))\, v(x)^2, \qquad
               \mathcal{L}_{depth} = \tfrac{1}{|V_s|} \sum_{x \in V_s,\ z < d - \epsilon} v^2
               + \tfrac{1}{|P|} \sum_p \big(1 - \max_{\pi(x) = p,\ |z - d| \le \epsilon} v(x)\big)^2

    Args:
        voxels: ``(B, 1, D, H, W)`` occupancy **probabilities** (``sigmoid`` of logits).
        depth: ``(B, H_i, W_i)`` depth sketch; silhouette: ``(B, H_i, W_i)`` in ``[0, 1]``.
        K, R, t: the cameras of the sketches.
        bounds: the grid's cube.
        band: :math:`\epsilon` (default: half a cell's diagonal, the largest depth gap between a
            surface and the centre of the cell it cuts).

    Returns:
        ``(silhouette_loss, depth_loss)`` scalars, differentiable in ``voxels``. Voxels projecting
        outside the image count as background; :math:`V_s` are the voxels projecting inside the
        silhouette. Ground-truth grids should include the cells the surface cuts (solid ∪
        surface, :func:`coursekit.geometry.voxels.voxelize_mesh_surface`): thin parts miss every
        cell centre otherwise and the band term cannot be satisfied.
    """
    if voxels.dim() != 5 or voxels.shape[1] != 1:
        raise ValueError(f"voxels must be (B, 1, D, H, W), got {tuple(voxels.shape)}")
    if depth.shape != silhouette.shape or depth.dim() != 3 or depth.shape[0] != voxels.shape[0]:
        raise ValueError(f"depth and silhouette must both be (B, H, W) with B = {voxels.shape[0]}, "
                         f"got {tuple(depth.shape)} and {tuple(silhouette.shape)}")
    B = voxels.shape[0]
    size = tuple(depth.shape[1:])
    if band is None:
        cell = (bounds[1] - bounds[0]) / torch.tensor(voxels.shape[2:], dtype=torch.float64)
        band = 0.5 * float(cell.norm())
    pixel, z = _pixels(voxels.shape[2:], K, R, t, size, bounds)
    pixel, z = pixel.expand(B, -1), z.expand(B, -1).to(voxels.dtype)
    v = voxels.reshape(B, -1)
    on = pixel >= 0
    safe = pixel.clamp_min(0)
    s = torch.where(on, silhouette.reshape(B, -1).to(v.dtype).gather(1, safe), torch.zeros_like(v))
    d = depth.reshape(B, -1).to(v.dtype).gather(1, safe)
    sil_loss = ((1 - s) * v ** 2).mean()
    seen = on & (s > 0.5)
    free = seen & (z < d - band)
    free_loss = (free * v ** 2).sum() / seen.sum().clamp_min(1)
    in_band = seen & ((z - d).abs() <= band)
    n_pix = size[0] * size[1]
    index = torch.where(in_band, pixel, torch.full_like(pixel, n_pix))
    best = v.new_full((B, n_pix + 1), -1.0).scatter_reduce(1, index, torch.where(in_band, v, torch.full_like(v, -1.0)),
                                                            "amax", include_self=True)[:, :n_pix]
    has = best >= 0
    surface_loss = ((1 - best) ** 2 * has).sum() / has.sum().clamp_min(1)
    return sil_loss, free_loss + surface_loss
