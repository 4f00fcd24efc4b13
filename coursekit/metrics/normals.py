r"""Normal consistency between two oriented point sets (Occupancy Networks, Mescheder et al. 2019).

.. math::  NC(X, Y) = \frac{1}{2} \Big( \frac{1}{|X|} \sum_{x \in X} |n_x \cdot n_{\nu_Y(x)}|
           + \frac{1}{|Y|} \sum_{y \in Y} |n_y \cdot n_{\nu_X(y)}| \Big)

:math:`\nu_Y(x)` is the nearest point of ``Y`` to ``x``; normals are normalised to unit length
first and the **absolute** dot product is taken, so flipped normals are not penalised
(autonomousvision/occupancy_networks ``im2mesh/eval.py``, ``distance_p2p``). 1 is perfect.
"""

from __future__ import annotations

import torch

from ..geometry.neighbors import group
from .chamfer import BatchReduction, nearest_sq_dists, reduce_batch


def _check_normals(normals: torch.Tensor, points: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(normals, torch.Tensor) or normals.shape != points.shape:
        raise ValueError(f"{name} must have the shape of its points {tuple(points.shape)}, "
                         f"got {tuple(getattr(normals, 'shape', ()))}")
    if not torch.isfinite(normals).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    length = normals.norm(dim=-1, keepdim=True)
    if (length == 0).any():
        raise ValueError(f"{name} contains zero vectors (no direction)")
    return normals / length


def normal_consistency(pred: torch.Tensor, pred_normals: torch.Tensor, gt: torch.Tensor, gt_normals: torch.Tensor,
                       reduction: BatchReduction = "none") -> torch.Tensor:
    r"""Mean absolute cosine between each point's normal and its nearest neighbour's, both ways.

    .. math::  NC = \tfrac{1}{2} \big( \operatorname{mean}_{x} |n_x \cdot n_{\nu_Y(x)}|
               + \operatorname{mean}_{y} |n_y \cdot n_{\nu_X(y)}| \big)

    Args:
        pred: ``(B, N, 3)`` predicted points; pred_normals: ``(B, N, 3)`` their normals.
        gt: ``(B, M, 3)`` ground-truth points; gt_normals: ``(B, M, 3)`` their normals.
        reduction: over the batch: ``"none"`` (``(B,)``), ``"mean"`` or ``"sum"``.

    Returns:
        ``(B,)`` values in ``[0, 1]`` (or a scalar), differentiable in the normals.
    """
    n_pred = _check_normals(pred_normals, pred, "pred_normals")
    n_gt = _check_normals(gt_normals, gt, "gt_normals")
    with torch.no_grad():
        _, to_gt, _ = nearest_sq_dists(pred, gt)
        _, to_pred, _ = nearest_sq_dists(gt, pred)
    forward = (n_pred * group(n_gt, to_gt)).sum(-1).abs().mean(-1)
    backward = (n_gt * group(n_pred, to_pred)).sum(-1).abs().mean(-1)
    return reduce_batch(0.5 * (forward + backward), reduction)
