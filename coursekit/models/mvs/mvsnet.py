r"""MVSNet (Yao, Luo, Li, Fang, Quan; ECCV 2018): learned features, a variance cost volume, 3D U-Net, soft argmin.

The pipeline of the slides, one reference view and ``N - 1`` sources:

1. **Shared 2D features** (:class:`FeatureNet`): the same CNN on every image, down-sampling
   by ``stride`` (the paper: 8 layers, 32 channels, stride 4).
2. **Differentiable homography warping** of every source feature map onto the
   reference's fronto-parallel depth planes
   (:func:`coursekit.geometry.homography.homography_warp`, intrinsics scaled to the
   feature grid by :func:`~coursekit.geometry.homography.scale_intrinsics`).
3. **Variance cost volume** over the ``N`` views (MVSNet eq. 2; accumulated as running
   sums so that the ``N`` warped volumes never coexist, like the official code):

   .. math::  C = \frac{1}{N} \sum_i V_i^2 - \Big(\frac{1}{N}\sum_i V_i\Big)^2

4. **3D U-Net regularisation** (:class:`CostRegularization`) to one cost per plane,
   **probability volume** :math:`P = \operatorname{softmax}_d(-C_{reg})`.
5. **Soft-argmin depth** (:func:`~coursekit.models.mvs.cost_volume.soft_argmin`):
   :math:`\hat d = \sum_d d\, P_d`.
6. **Refinement** (:class:`DepthRefinement`): the reference image and the depth map give a
   residual, :math:`\hat d_{ref} = \hat d + r(I, \hat d)`; with ``full_resolution`` the
   depth is first up-sampled to the image size, so the output has the input's resolution.
7. **Probability-map confidence**: the mass of the 4 planes around :math:`\hat d`
   (:func:`~coursekit.models.mvs.cost_volume.probability_confidence`), thresholded in fusion.

Loss (:func:`depth_l1_loss`): mean absolute depth error of the initial and refined maps
over valid ground-truth pixels, :math:`L = L_{init} + \lambda L_{ref}` (the paper: λ = 1).

Model interface shared with :mod:`coursekit.models.mvs.rmvsnet`:
``forward(images (B, V, 3, H, W), K (B, V, 3, 3), R (B, V, 3, 3), t (B, V, 3), depth_values (B, D))``
with view 0 the reference, returning a dict with ``depth`` ``(B, H/s, W/s)`` (the final
estimate; ``(B, H, W)`` with ``full_resolution``), ``confidence`` (at ``depth``'s resolution) and
``prob`` ``(B, D, H/s, W/s)``. The depth map covers the whole image, so its cameras are
``scale_intrinsics(K, w / W)`` for a ``w``-pixel-wide map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.homography import homography_warp, scale_intrinsics
from .cost_volume import expectation, probability_confidence

__all__ = ["FeatureNet", "CostRegularization", "DepthRefinement", "MVSNet", "variance_volume_from_views",
           "depth_l1_loss", "resize_depth"]


def _conv2d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv3d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class FeatureNet(nn.Module):
    """Shared 2D feature extractor: conv-BN-ReLU blocks, a stride-2 block per halving, a linear last conv.

    Args:
        channels: output channels ``C`` (the paper: 32).
        stride: total down-sampling, a power of two (the paper: 4).

    Shapes: ``(B, 3, H, W) -> (B, C, H / stride, W / stride)``.
    """

    def __init__(self, channels: int = 16, stride: int = 2):
        super().__init__()
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"stride must be a power of two, got {stride}")
        width = max(channels // 2, 4)
        layers = [_conv2d(3, width), _conv2d(width, width)]
        c = width
        for _ in range(int(math.log2(stride))):
            layers += [_conv2d(c, 2 * c, 2), _conv2d(2 * c, 2 * c)]
            c *= 2
        layers.append(nn.Conv2d(c, channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def per_view(self, images: torch.Tensor) -> torch.Tensor:
        """The same network on every view: ``(B, V, 3, H, W) -> (B, V, C, H / stride, W / stride)``."""
        feats = self.net(images.flatten(0, 1))
        return feats.reshape(*images.shape[:2], *feats.shape[1:])


class CostRegularization(nn.Module):
    """A 3D U-Net (two down-sampling levels with skip connections) from ``C`` channels to one cost per voxel.

    Shapes: ``(B, C, D, H, W) -> (B, D, H, W)``; ``D, H, W`` divisible by 4.
    """

    def __init__(self, in_channels: int = 16, base: int = 8):
        super().__init__()
        self.c0 = _conv3d(in_channels, base)
        self.c1 = nn.Sequential(_conv3d(base, 2 * base, 2), _conv3d(2 * base, 2 * base))
        self.c2 = nn.Sequential(_conv3d(2 * base, 4 * base, 2), _conv3d(4 * base, 4 * base))
        self.u1 = nn.Sequential(nn.ConvTranspose3d(4 * base, 2 * base, 3, 2, 1, output_padding=1, bias=False),
                                nn.BatchNorm3d(2 * base), nn.ReLU(inplace=True))
        self.u0 = nn.Sequential(nn.ConvTranspose3d(2 * base, base, 3, 2, 1, output_padding=1, bias=False),
                                nn.BatchNorm3d(base), nn.ReLU(inplace=True))
        self.out = nn.Conv3d(base, 1, 3, 1, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        if any(s % 4 for s in volume.shape[2:]):
            raise ValueError(f"D, H, W must be divisible by 4 for the 3D U-Net, got {tuple(volume.shape[2:])}")
        x0 = self.c0(volume)
        x1 = self.c1(x0)
        x = self.u1(self.c2(x1)) + x1
        x = self.u0(x) + x0
        return self.out(x)[:, 0]


class DepthRefinement(nn.Module):
    r"""MVSNet's refinement: a residual from the reference image and the normalised depth.

    .. math::  \hat d_{ref} = \hat d + (d_{max} - d_{min})\; r\Big(I,\ \frac{\hat d - d_{min}}{d_{max} - d_{min}}\Big)

    With ``size`` the depth is first up-sampled (bilinear) to ``size`` and the image resized
    (anti-aliased) to it, so the residual can restore the edges the coarse cost volume blurs
    (``size = (H, W)``: a full-resolution depth map).

    Shapes: image ``(B, 3, H, W)``, depth ``(B, h, w)``, range ``(B,)`` each -> ``(B, *size)``
    (default ``size``: the depth's ``(h, w)``).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(_conv2d(4, width), _conv2d(width, width), _conv2d(width, width), nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor, depth: torch.Tensor, d_min: torch.Tensor, d_max: torch.Tensor,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        size = tuple(depth.shape[-2:]) if size is None else tuple(size)
        if tuple(image.shape[-2:]) != size:
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        if tuple(depth.shape[-2:]) != size:
            depth = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
        span = (d_max - d_min)[:, None, None]
        normalised = (depth - d_min[:, None, None]) / span
        residual = self.net(torch.cat([image, normalised.unsqueeze(1)], 1))[:, 0]
        return depth + residual * span


def variance_volume_from_views(features: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                               depth_values: torch.Tensor, stride: int = 1) -> torch.Tensor:
    r"""MVSNet's variance cost volume of ``(B, V, C, h, w)`` features, view 0 the reference.

    .. math::  C = \frac{1}{V} \sum_i V_i^2 - \Big(\frac{1}{V}\sum_i V_i\Big)^2

    with :math:`V_0` the reference features repeated over the planes and :math:`V_i` the
    source features warped by :func:`~coursekit.geometry.homography.homography_warp`
    (running sums: one warped volume at a time).

    Args:
        features: ``(B, V, C, h, w)``.
        K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)`` cameras of the *images*.
        depth_values: ``(B, D)`` or ``(D,)``.
        stride: image size / feature size (the intrinsics are scaled by ``1 / stride``).

    Returns:
        ``(B, C, D, h, w)``.
    """
    B, V = features.shape[:2]
    D = depth_values.shape[-1]
    Ks = scale_intrinsics(K.reshape(-1, 3, 3), 1.0 / stride).reshape(B, V, 3, 3)
    ref = features[:, 0].unsqueeze(2).expand(-1, -1, D, -1, -1)
    total, squares = ref, ref ** 2
    for i in range(1, V):
        warped = homography_warp(features[:, i], Ks[:, 0], R[:, 0], t[:, 0], Ks[:, i], R[:, i], t[:, i], depth_values)
        total = total + warped
        squares = squares + warped ** 2
    return squares / V - (total / V) ** 2


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of ``(B, H, W)`` depth maps to ``size`` (keeps 0 = invalid; no mixing across edges)."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth.unsqueeze(1), size=size, mode="nearest")[:, 0]


def depth_l1_loss(output: dict, depth_gt: torch.Tensor, refined_weight: float = 1.0) -> torch.Tensor:
    r"""Mean absolute depth error over valid ground-truth pixels (GT resized to each map's resolution).

    .. math::  L = \frac{1}{|P|}\sum_{p \in P} |\hat d_{init}(p) - d(p)| + \lambda\, \frac{1}{|P'|}\sum_{p \in P'} |\hat d_{ref}(p) - d(p)|

    (:math:`P`, :math:`P'`: valid pixels at the initial and the refined map's resolution; they
    differ when the refinement up-samples).

    Args:
        output: the model's dict (``depth``, and ``initial`` when refinement is on).
        depth_gt: ``(B, H, W)`` ground truth, ``0`` = invalid.
        refined_weight: :math:`\lambda`.
    """
    def l1(depth):
        gt = resize_depth(depth_gt, depth.shape[-2:])
        valid = gt > 0
        return ((depth - gt).abs() * valid).sum() / valid.sum().clamp_min(1)

    if "initial" not in output:
        return l1(output["depth"])
    return l1(output["initial"]) + refined_weight * l1(output["depth"])


class MVSNet(nn.Module):
    """MVSNet (module docstring): features, warping, variance volume, 3D U-Net, soft argmin, refinement.

    Args:
        channels: feature channels ``C``.
        stride: feature down-sampling (depth maps come out at ``H / stride, W / stride``).
        base: 3D U-Net width.
        refine: add the refinement network.
        full_resolution: with ``refine``, up-sample the depth to the image size before refining
            (``depth`` and ``confidence`` then come out at ``(H, W)``; ``initial`` and ``prob`` stay
            at the cost volume's resolution).

    ``forward(images, K, R, t, depth_values)`` -> dict ``depth`` (refined if ``refine``),
    ``initial`` (before refinement, only with ``refine``), ``confidence``, ``prob``
    (shapes in the module docstring).
    """

    def __init__(self, channels: int = 16, stride: int = 2, base: int = 8, refine: bool = True,
                 full_resolution: bool = False):
        super().__init__()
        if full_resolution and not refine:
            raise ValueError("full_resolution needs the refinement network (refine=True)")
        self.features = FeatureNet(channels, stride)
        self.regularization = CostRegularization(channels, base)
        self.refinement = DepthRefinement() if refine else None
        self.stride, self.full_resolution = stride, full_resolution

    def forward(self, images, K, R, t, depth_values) -> dict:
        B, V, _, H, W = images.shape
        if depth_values.dim() == 1:
            depth_values = depth_values.unsqueeze(0).expand(B, -1)
        feats = self.features.per_view(images)
        volume = variance_volume_from_views(feats, K, R, t, depth_values, self.stride)
        cost = self.regularization(volume)
        prob = F.softmax(-cost, dim=1)
        depth = expectation(prob, depth_values)
        out = {"prob": prob, "confidence": probability_confidence(prob, depth_values, depth.detach())}
        if self.refinement is not None:
            out["initial"] = depth
            size = (H, W) if self.full_resolution else depth.shape[-2:]
            depth = self.refinement(images[:, 0], depth, depth_values[:, 0], depth_values[:, -1], size)
            out["confidence"] = resize_depth(out["confidence"], size)  # nearest: each pixel keeps its cell's mass
        out["depth"] = depth
        return out

