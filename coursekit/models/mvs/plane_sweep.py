r"""Classical plane-sweep stereo (Collins 1996): the baseline every learned MVS method must beat.

Every source image is warped onto the reference camera's depth planes
(:func:`coursekit.geometry.homography.homography_warp`); at each plane a window around
each pixel is compared with the reference window; costs are averaged over the sources
that see the pixel; **winner-take-all** picks the plane of least cost.

.. math::  \text{SAD}(p, d) = \frac{1}{|W_p|\,C} \sum_{q \in W_p} \lVert I_1(q) - I_i^{d}(q) \rVert_1, \qquad
           \text{NCC}(p, d) = \frac{\operatorname{cov}_{W_p}(I_1, I_i^d)}{\sigma_{W_p}(I_1)\,\sigma_{W_p}(I_i^d)}

with the NCC cost :math:`1 - \text{NCC}` (window statistics over the window's pixels and
the colour channels; invariant to gain and offset, unlike SAD), and
:math:`\hat d(p) = \arg\min_d \frac{1}{|S_p|}\sum_{i \in S_p} c_i(p, d)` over the sources
:math:`S_p` whose warp lands inside their image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...geometry.homography import homography_warp
from .cost_volume import hard_argmin

__all__ = ["window_cost", "plane_sweep_cost", "PlaneSweep"]


def _box(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window x window`` neighbourhood (edges averaged over the pixels inside)."""
    shape = x.shape
    y = F.avg_pool2d(x.reshape(-1, 1, *shape[-2:]), window, stride=1, padding=window // 2, count_include_pad=False)
    return y.reshape(shape)


def window_cost(ref: torch.Tensor, warped: torch.Tensor, kind: str = "ncc", window: int = 5, eps: float = 1e-4) -> torch.Tensor:
    r"""Per-pixel window matching cost between a reference image and warped source planes.

    Args:
        ref: ``(B, C, H, W)`` reference image.
        warped: ``(B, C, D, H, W)`` source warped onto ``D`` planes.
        kind: ``"ncc"`` (cost :math:`1 - \text{NCC}`, in ``[0, 2]``) or ``"sad"``.
        window: odd window side.
        eps: added to the variances (flat windows).

    Returns:
        ``(B, D, H, W)`` costs.
    """
    if window % 2 != 1:
        raise ValueError(f"window must be odd, got {window}")
    a = ref.unsqueeze(2).expand_as(warped)
    if kind == "sad":
        return _box((a - warped).abs().mean(1), window)
    if kind != "ncc":
        raise ValueError(f"kind must be 'ncc' or 'sad', got {kind!r}")
    mean = lambda x: _box(x.mean(1), window)  # noqa: E731 - window and channel mean
    ma, mb = mean(a), mean(warped)
    cov = mean(a * warped) - ma * mb
    var_a, var_b = (mean(a * a) - ma ** 2).clamp_min(0), (mean(warped * warped) - mb ** 2).clamp_min(0)
    return 1 - cov / torch.sqrt((var_a + eps) * (var_b + eps))


def plane_sweep_cost(images, K, R, t, depth_values, kind: str = "ncc", window: int = 5) -> torch.Tensor:
    r"""Plane-sweep cost volume of the first view against the others (module docstring).

    Args:
        images: ``(B, V, C, H, W)``, reference first.
        K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)`` cameras.
        depth_values: ``(D,)`` or ``(B, D)`` plane depths.
        kind: ``"ncc"`` or ``"sad"``; window: odd window side.

    Returns:
        ``(B, D, H, W)`` mean cost over the sources that see each pixel (the worst cost, 2 for
        NCC or 1 for SAD, where none does).
    """
    B, V = images.shape[:2]
    total, count = 0.0, 0.0
    for i in range(1, V):
        warped, inside = homography_warp(images[:, i], K[:, 0], R[:, 0], t[:, 0], K[:, i], R[:, i], t[:, i],
                                         depth_values, return_mask=True)
        c = window_cost(images[:, 0], warped, kind, window)
        total = total + c * inside
        count = count + inside.to(c.dtype)
    worst = 2.0 if kind == "ncc" else 1.0
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, worst))


class PlaneSweep(torch.nn.Module):
    """Plane sweep + winner-take-all as a (parameter-free) model with the MVS model interface.

    ``forward(images (B, V, 3, H, W), K, R, t, depth_values (B, D))`` (a batch of
    :class:`coursekit.data.mvs.MVSSamples`, view 0 the reference) returns ``depth (B, H, W)``,
    ``confidence (B, H, W)`` (:math:`1 - c_{min}/2` for NCC, :math:`1 - c_{min}` for SAD) and
    ``cost (B, D, H, W)``.
    """

    def __init__(self, kind: str = "ncc", window: int = 5):
        super().__init__()
        self.kind, self.window = kind, window

    def forward(self, images, K, R, t, depth_values) -> dict:
        cost = plane_sweep_cost(images, K, R, t, depth_values, self.kind, self.window)
        confidence = 1 - cost.amin(1) / (2.0 if self.kind == "ncc" else 1.0)
        return {"depth": hard_argmin(cost, depth_values), "confidence": confidence, "cost": cost}
