r"""Cost volumes and depth regression: the building blocks shared by GC-Net, MVSNet and R-MVSNet.

* :func:`variance_cost_volume` (MVSNet eq. 2): ``N`` feature volumes warped onto the
  reference depth planes become one by their variance, which treats every view alike
  and accepts any ``N``:

  .. math::  C = \frac{1}{N} \sum_{i=1}^{N} (V_i - \bar V)^2
             = \frac{1}{N}\sum_i V_i^2 - \bar V^2

* :func:`concat_cost_volume` (GC-Net): on a rectified pair, left features next to the
  right features shifted by each disparity :math:`d` (zeros where :math:`x - d < 0`).
* :func:`soft_argmin` (GC-Net, the slide): a differentiable depth/disparity from costs,

  .. math::  \text{soft argmin} := \sum_{d=0}^{D_{max}} d \times \sigma(-c_d), \qquad
             \sigma(-c)_d = \frac{e^{-c_d}}{\sum_{d'} e^{-c_{d'}}}

  (:math:`\sigma` is the **softmax** over the disparity axis, not the logistic sigmoid).
  It returns values *between* the sampled ``d`` (sub-pixel accuracy), unlike
  :func:`hard_argmin`.
* :func:`probability_confidence` (MVSNet §3.4): the probability mass of the four
  hypotheses nearest to the estimate, a per-pixel quality measure.

Volumes are ``(B, C, D, H, W)`` (features) or ``(B, D, H, W)`` (one cost per hypothesis);
``values`` are the hypotheses' depths or disparities, ``(D,)`` or ``(B, D)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["variance_cost_volume", "concat_cost_volume", "soft_argmin", "hard_argmin", "probability_confidence",
           "expectation"]


def variance_cost_volume(volumes: torch.Tensor) -> torch.Tensor:
    r"""Variance over views of warped feature volumes (MVSNet eq. 2, population variance).

    .. math::  C = \frac{1}{N} \sum_{i=1}^{N} (V_i - \bar V)^2

    Args:
        volumes: ``(B, N, C, D, H, W)``: the reference features repeated over the planes and
            the ``N - 1`` warped source volumes.

    Returns:
        ``(B, C, D, H, W)``.
    """
    if not isinstance(volumes, torch.Tensor) or volumes.dim() != 6:
        raise ValueError(f"volumes must have shape (B, N, C, D, H, W), got {tuple(getattr(volumes, 'shape', ()))}")
    if volumes.shape[1] < 2:
        raise ValueError(f"a variance needs at least 2 views, got N = {volumes.shape[1]}")
    return (volumes - volumes.mean(1, keepdim=True)).pow(2).mean(1)


def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, max_disparity: int) -> torch.Tensor:
    r"""GC-Net's concatenation volume over integer disparities ``0 .. max_disparity - 1``.

    .. math::  V(:, d, y, x) = \big[F_l(y, x)\ ;\ F_r(y, x - d)\big], \quad 0 \text{ where } x < d

    Args:
        left, right: ``(B, C, H, W)`` features of a rectified pair.
        max_disparity: number of disparities ``D``.

    Returns:
        ``(B, 2C, D, H, W)``.
    """
    if left.shape != right.shape or left.dim() != 4:
        raise ValueError(f"left and right must be (B, C, H, W) of one shape, got {tuple(left.shape)}, {tuple(right.shape)}")
    B, C, H, W = left.shape
    volume = left.new_zeros(B, 2 * C, max_disparity, H, W)
    for d in range(max_disparity):
        if d >= W:
            break
        volume[:, :C, d, :, d:] = left[..., d:]
        volume[:, C:, d, :, d:] = right[..., :W - d]
    return volume


def _values(values: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=cost.dtype, device=cost.device)
    if values.dim() == 1:
        values = values.unsqueeze(0).expand(cost.shape[0], -1)
    if values.shape != cost.shape[:2]:
        raise ValueError(f"values must have shape (D,) or (B, D) = {tuple(cost.shape[:2])}, got {tuple(values.shape)}")
    return values[..., None, None]


def expectation(prob: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""``(B, H, W)`` expected hypothesis :math:`\sum_d d\, p_d` of a probability volume ``(B, D, H, W)``."""
    return (prob * _values(values, prob)).sum(1)


def soft_argmin(cost: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""The slide's soft argmin: :math:`\sum_d d \times \sigma(-c_d)` with :math:`\sigma` the softmax over ``D``.

    Args:
        cost: ``(B, D, H, W)`` matching costs (lower is better).
        values: ``(D,)`` or ``(B, D)`` the hypotheses ``d`` (depths or disparities, any spacing).

    Returns:
        ``(B, H, W)`` differentiable estimate.

    >>> soft_argmin(torch.tensor([[0.0, 0.0, 9.0]])[..., None, None], torch.tensor([1.0, 2.0, 3.0])).flatten()
    tensor([1.5001])
    """
    if cost.dim() != 4:
        raise ValueError(f"cost must have shape (B, D, H, W), got {tuple(cost.shape)}")
    return expectation(F.softmax(-cost, dim=1), values)


def hard_argmin(cost: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` winner-take-all: the hypothesis of least cost (piecewise constant, no gradient)."""
    if cost.dim() != 4:
        raise ValueError(f"cost must have shape (B, D, H, W), got {tuple(cost.shape)}")
    return _values(values, cost).expand_as(cost).gather(1, cost.argmin(1, keepdim=True))[:, 0]


def probability_confidence(prob: torch.Tensor, values: torch.Tensor, estimate: torch.Tensor, window: int = 4) -> torch.Tensor:
    r"""MVSNet's probability map: the mass of the ``window`` hypotheses around the estimate.

    .. math::  P(p) = \sum_{k = \lfloor \hat k \rfloor - 1}^{\lfloor \hat k \rfloor + 2} p_k(p),
               \qquad \hat k = \text{index of the estimate (interpolated)}

    Args:
        prob: ``(B, D, H, W)`` probability volume (sums to 1 over ``D``).
        values: ``(D,)`` or ``(B, D)`` increasing hypotheses.
        estimate: ``(B, H, W)`` the regressed value.
        window: number of hypotheses summed (MVSNet: 4).

    Returns:
        ``(B, H, W)`` in ``[0, 1]``.
    """
    vals = _values(values, prob)[..., 0, 0]  # (B, D)
    D = prob.shape[1]
    index = torch.searchsorted(vals.contiguous(), estimate.reshape(estimate.shape[0], -1).contiguous()).reshape(estimate.shape)
    start = (index - window // 2).clamp(0, max(D - window, 0))
    summed = F.avg_pool3d(prob.unsqueeze(1), (window, 1, 1), stride=1).squeeze(1) * window  # (B, D - w + 1, H, W)
    return summed.gather(1, start.clamp(max=summed.shape[1] - 1).unsqueeze(1))[:, 0]
