r"""GC-Net (Kendall et al., ICCV 2017): stereo on a rectified pair with a concatenation cost volume and soft argmin.

1. Shared 2D features of the left and right images (:class:`~coursekit.models.mvs.mvsnet.FeatureNet`,
   down-sampled by ``stride``; the paper: a 5x5 stride-2 conv and residual blocks).
2. **Concatenation cost volume** over disparities (view-aligned: the left image's pixel grid),
   :func:`~coursekit.models.mvs.cost_volume.concat_cost_volume`: unlike a distance it keeps the
   features, so the 3D network can learn the matching metric.
3. **3D convolutional regularisation** (the 3D U-Net :class:`~coursekit.models.mvs.mvsnet.CostRegularization`),
   then up-sampling of the cost to the full disparity range and image size (the paper: a
   transposed 3D convolution; here trilinear).
4. **Differentiable soft argmin** over the disparities, exactly as the slide writes it:

   .. math::  \text{soft argmin} := \sum_{d=0}^{D_{max}} d \times \sigma(-c_d)

   giving **sub-pixel** disparities (a hard argmin is stuck on the integer grid);
   :func:`~coursekit.models.mvs.cost_volume.soft_argmin` is this formula, computed here from the
   softmax volume that the confidence map reads too.
5. Optionally (``refine``, not in the paper) the residual refinement with the left image that
   :class:`~coursekit.models.mvs.mvsnet.MVSNet` and :class:`~coursekit.models.mvs.rmvsnet.RMVSNet`
   use in the lecture's table (:class:`~coursekit.models.mvs.mvsnet.DepthRefinement`, on the
   disparity normalised by ``D - 1``): the cost volume is built at half resolution, so the image
   restores the disparity's edges and slopes.

Loss: mean absolute disparity error over valid pixels (the paper's supervised L1; with
``refine``, of the soft argmin and of the refined disparity, like MVSNet's loss).
Depth from disparity on a rectified pair: :math:`z = f_x b / (\text{disparity} + \text{doffs})`
(``doffs``: how far right the right camera's principal point sits, Middlebury's convention;
0 for two identical cameras).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cost_volume import concat_cost_volume, expectation, hard_argmin, probability_confidence
from .mvsnet import CostRegularization, DepthRefinement, FeatureNet

__all__ = ["GCNet", "disparity_l1_loss", "disparity_to_depth"]


class GCNet(nn.Module):
    r"""GC-Net on rectified pairs (module docstring).

    Args:
        max_disparity: disparities ``0 .. D - 1`` at full resolution (``D`` divisible by ``4 * stride``).
        channels: feature channels; stride: feature down-sampling; base: 3D U-Net width.
        refine: add the image-guided residual refinement (module docstring, step 5).

    ``forward(left (B, 3, H, W), right (B, 3, H, W))`` -> dict ``disparity`` ``(B, H, W)`` (soft
    argmin; with ``refine`` the refined one, and ``initial`` the soft argmin), ``hard`` ``(B, H, W)``
    (hard argmin of the same costs), ``cost`` ``(B, D, H, W)`` and ``confidence`` ``(B, H, W)``
    (MVSNet's probability map of :math:`\sigma(-c)` around the soft argmin,
    :func:`~coursekit.models.mvs.cost_volume.probability_confidence`).
    """

    def __init__(self, max_disparity: int = 32, channels: int = 16, stride: int = 2, base: int = 8,
                 refine: bool = False):
        super().__init__()
        if max_disparity % (4 * stride):
            raise ValueError(f"max_disparity must be divisible by 4 * stride = {4 * stride}, got {max_disparity}")
        self.features = FeatureNet(channels, stride)
        self.regularization = CostRegularization(2 * channels, base)
        self.refinement = DepthRefinement() if refine else None
        self.max_disparity, self.stride = max_disparity, stride

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        B, _, H, W = left.shape
        f = self.features(torch.cat([left, right]))
        volume = concat_cost_volume(f[:B], f[B:], self.max_disparity // self.stride)
        cost = self.regularization(volume)
        cost = F.interpolate(cost.unsqueeze(1), size=(self.max_disparity, H, W), mode="trilinear", align_corners=False)[:, 0]
        values = torch.arange(self.max_disparity, dtype=cost.dtype, device=cost.device)
        prob = F.softmax(-cost, dim=1)
        disparity = expectation(prob, values)  # soft argmin (step 4)
        out = {"disparity": disparity, "hard": hard_argmin(cost, values), "cost": cost,
               "confidence": probability_confidence(prob, values, disparity.detach())}
        if self.refinement is not None:
            out["initial"] = out["disparity"]
            lo = cost.new_zeros(B)
            out["disparity"] = self.refinement(left, out["initial"], lo, lo + (self.max_disparity - 1))
        return out


def disparity_l1_loss(output: dict, disparity_gt: torch.Tensor) -> torch.Tensor:
    r"""GC-Net's loss :math:`\frac{1}{|P|}\sum_{p \in P} |\hat d_p - d_p|` over pixels with ground truth (``> 0``),
    summed over ``initial`` and ``disparity`` when the output has both (``refine``)."""
    valid = disparity_gt > 0
    maps = [output["initial"], output["disparity"]] if "initial" in output else [output["disparity"]]
    return sum(((d - disparity_gt).abs() * valid).sum() / valid.sum().clamp_min(1) for d in maps)


def disparity_to_depth(disparity: torch.Tensor, fx: torch.Tensor, baseline: float, doffs: float = 0.0,
                       min_disparity: float = 0.5) -> torch.Tensor:
    r"""Depth of a rectified pair, :math:`z = f_x b / (d + \text{doffs})`; ``0`` (no depth) where ``d + doffs < min_disparity``.

    Args:
        disparity: ``(B, H, W)``; fx: ``(B,)`` focal lengths in pixels; baseline: in world units;
        doffs: the right principal point's offset (pixels, :func:`coursekit.data.mvs.make_stereo_pairs`).
    """
    fx = torch.as_tensor(fx, dtype=disparity.dtype)[:, None, None]
    d = disparity + doffs
    return torch.where(d >= min_disparity, fx * baseline / d.clamp_min(min_disparity), torch.zeros_like(d))
