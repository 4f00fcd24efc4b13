r"""Variational depth-map refinement (R-MVSNet, Yao et al., CVPR 2019, Sec. 4.2).

A winner-take-all depth map lies on the depth planes: a staircase, whose steps are a
plane interval apart. R-MVSNet removes them by minimising, over the depth map :math:`D`
of the reference view, the photometric error of its reprojections into the source views
plus a smoothness term:

.. math::  E(D) = \sum_{i} \sum_p C\big(I_1, I_{i \to 1}^{D}\big)(p)
           + \lambda \sum_{p} \sum_{q \in \mathcal N(p)} w_{pq}\,\big(D(p) - D(q)\big)^2,
           \qquad w_{pq} = e^{-\lVert I_1(p) - I_1(q) \rVert_1 / \sigma}

where :math:`I_{i \to 1}^{D}` is source :math:`i` read through the reference depth
(:func:`coursekit.geometry.homography.depth_warp`), :math:`C` a window matching cost
(:func:`coursekit.models.mvs.plane_sweep.window_cost`, averaged over the sources that see the
pixel; the paper's is ZNCC-based, here SAD by default, which matched better on the
procedural scenes, as in the plane sweep's rows), :math:`\mathcal N(p)` the right and lower
neighbours, and :math:`w_{pq}` a bilateral weight that lets the depth jump at colour edges.

:math:`E` is minimised by Adam on the depth map (the paper: gradient descent; Adam's
per-pixel step is in depth units, independent of the energy's scale), each depth kept within
``max_change`` of where it started: the refinement removes the staircase, it does not
re-match. Nothing is learned, so it refines any method's depth map: :class:`VariationalRefinement`
wraps a depth model (the table wraps R-MVSNet, as the paper does, and the plane sweep, to show what
the refinement does on its own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.homography import depth_warp, scale_intrinsics
from .mvsnet import resize_depth
from .plane_sweep import window_cost

__all__ = ["photometric_energy", "variational_refinement", "VariationalRefinement"]


def _check(depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor) -> None:
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3:
        raise ValueError(f"depth must have shape (B, h, w), got {tuple(getattr(depth, 'shape', ()))}")
    if images.dim() != 5 or images.shape[0] != depth.shape[0] or images.shape[1] < 2:
        raise ValueError(f"images must have shape (B, V >= 2, C, H, W) with B = {depth.shape[0]}, "
                         f"got {tuple(images.shape)}")
    if K.shape[:2] != images.shape[:2]:
        raise ValueError(f"K must have shape (B, V, 3, 3) = {tuple(images.shape[:2])} + (3, 3), got {tuple(K.shape)}")
    if not torch.isfinite(depth).all():
        raise ValueError("depth contains NaN or infinite values")


def _at_depth_resolution(images: torch.Tensor, K: torch.Tensor, size: tuple[int, int]):
    """Images resized to the depth map's ``size`` and the intrinsics that describe them."""
    B, V, C, H, W = images.shape
    if (H, W) == tuple(size):
        return images, K
    small = F.interpolate(images.flatten(0, 1), size=size, mode="bilinear", align_corners=False, antialias=True)
    Ks = scale_intrinsics(K.flatten(0, 1), size[1] / W, size[0] / H)
    return small.reshape(B, V, C, *size), Ks.reshape(B, V, 3, 3)


def photometric_energy(depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                       smoothness: float = 0.0, sigma: float = 0.1, kind: str = "sad", window: int = 5) -> torch.Tensor:
    r"""The module docstring's :math:`E(D)`, one value per batch element (differentiable in ``depth``).

    Args:
        depth: ``(B, h, w)`` reference depths (the images are resized to ``(h, w)``).
        images: ``(B, V, C, H, W)``, view 0 the reference; K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``,
            ``(B, V, 3)`` cameras of the images.
        smoothness: :math:`\lambda` (per square depth unit); sigma: the bilateral weight's colour scale.
        kind, window: the matching cost of :func:`~coursekit.models.mvs.plane_sweep.window_cost`.

    Returns:
        ``(B,)`` energies: the photometric sum over pixels plus the weighted smoothness sum.
    """
    _check(depth, images, K)
    images, K = _at_depth_resolution(images, K, depth.shape[-2:])
    ref = images[:, 0]
    total, count = 0.0, 0.0
    for i in range(1, images.shape[1]):
        warped, valid = depth_warp(images[:, i], depth, K[:, 0], R[:, 0], t[:, 0], K[:, i], R[:, i], t[:, i])
        total = total + window_cost(ref, warped.unsqueeze(2), kind, window)[:, 0] * valid
        count = count + valid.to(depth.dtype)
    photo = (total / count.clamp_min(1)).flatten(1).sum(1)
    w_x = torch.exp(-(ref[..., :, 1:] - ref[..., :, :-1]).abs().mean(1) / sigma)
    w_y = torch.exp(-(ref[..., 1:, :] - ref[..., :-1, :]).abs().mean(1) / sigma)
    smooth = ((w_x * depth.diff(dim=-1) ** 2).flatten(1).sum(1) + (w_y * depth.diff(dim=-2) ** 2).flatten(1).sum(1))
    return photo + smoothness * smooth


def variational_refinement(depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                           step: float, max_change: float | None = None, iterations: int = 30, **energy) -> torch.Tensor:
    r"""Minimise :func:`photometric_energy` over the depth map, starting from ``depth`` (module docstring).

    Args:
        depth: ``(B, h, w)`` initial depths (e.g. winner-take-all); not modified.
        images, K, R, t: as in :func:`photometric_energy`.
        step: Adam's step, in depth units (the table: a tenth of the plane interval).
        max_change: keep every depth within this distance of its start (``None``: unbounded).
        iterations: Adam steps.
        **energy: ``smoothness``, ``sigma``, ``kind``, ``window`` of :func:`photometric_energy`.

    Returns:
        ``(B, h, w)`` refined depths (no gradient; works under ``torch.no_grad``).
    """
    if step <= 0 or iterations < 0 or (max_change is not None and max_change < 0):
        raise ValueError(f"need step > 0, iterations >= 0 and max_change >= 0, got {step}, {iterations}, {max_change}")
    _check(depth, images, K)
    images, K = _at_depth_resolution(images.detach(), K, depth.shape[-2:])  # once, not at every step
    start = depth.detach()
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=step)
    with torch.enable_grad():
        for _ in range(iterations):
            loss = photometric_energy(z, images, K, R, t, **energy).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if max_change is not None:
                with torch.no_grad():
                    z.clamp_(start - max_change, start + max_change)
    return z.detach()


class VariationalRefinement(nn.Module):
    r"""A depth model followed, in eval mode, by :func:`variational_refinement` at the images' resolution.

    The wrapped model's depth is up-sampled (bilinear) to the image size, then refined with
    ``step`` and ``max_change`` given in **plane intervals** (:math:`d_1 - d_0` of ``depth_values``,
    one refinement per batch element); its confidence is resized with it. In training mode the
    model's output passes through unchanged (the refinement has nothing to learn).

    Args:
        model: a depth model with the MVS interface (:mod:`coursekit.models.mvs`).
        iterations: Adam steps; step, max_change: in plane intervals.
        smoothness: :math:`\lambda` of :func:`photometric_energy` (per square depth unit).
        kind, window: the matching cost.

    ``forward(images (B, V, 3, H, W), K, R, t, depth_values (B, D))`` -> the model's dict with ``depth``
    and ``confidence`` ``(B, H, W)`` and ``initial`` (the model's depth) in eval mode.
    """

    def __init__(self, model: nn.Module, iterations: int = 30, step: float = 0.1, max_change: float = 1.0,
                 smoothness: float = 3.0, kind: str = "sad", window: int = 5):
        super().__init__()
        self.model = model
        self.iterations, self.step, self.max_change = iterations, step, max_change
        self.energy = dict(smoothness=smoothness, kind=kind, window=window)

    def forward(self, images, K, R, t, depth_values) -> dict:
        out = dict(self.model(images, K, R, t, depth_values))
        if self.training:
            return out
        size = tuple(images.shape[-2:])
        depth = out["depth"]
        if tuple(depth.shape[-2:]) != size:
            depth = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
        values = depth_values.expand(images.shape[0], -1) if depth_values.dim() == 1 else depth_values
        refined = []
        for b in range(images.shape[0]):
            interval = float(values[b, 1] - values[b, 0])
            refined.append(variational_refinement(depth[b:b + 1], images[b:b + 1], K[b:b + 1], R[b:b + 1], t[b:b + 1],
                                                  step=self.step * abs(interval), max_change=self.max_change * abs(interval),
                                                  iterations=self.iterations, **self.energy))
        out.update(initial=out["depth"], depth=torch.cat(refined), confidence=resize_depth(out["confidence"], size))
        return out
