r"""The DTU multi-view stereo protocol (Aanaes et al. 2016) and depth-map metrics.

Point-cloud metrics, per scan (``pred`` the fused reconstruction, ``gt`` the scan), with
:math:`d(p, Q) = \min_{q \in Q} \lVert p - q \rVert_2` **unsquared**:

.. math::

    \text{Acc.} = \operatorname{mean}_{p \in P,\ d(p, G) < \delta} d(p, G), \qquad
    \text{Comp.} = \operatorname{mean}_{g \in G,\ d(g, P) < \delta} d(g, P), \qquad
    \text{Overall} = \frac{\text{Acc.} + \text{Comp.}}{2}

* **Outlier cut-off** :math:`\delta`: the official MATLAB code (``BaseEvalMain_web.m``,
  ``BaseEval.MaxDist = 20``) discards distances ``>= 20 mm`` before averaging; here
  ``max_dist`` in the clouds' units (default ``0.02``: 20 mm for scenes in metres, like
  :mod:`coursekit.data.mvs`). Averages over no points are ``nan``.
* **Observability**: accuracy is computed only for predicted points inside the evaluated
  region (DTU: the observability mask; here an optional axis-aligned box ``region``);
  completeness uses all ground-truth points (DTU: those above the table plane).
* **Down-sampling**: DTU thins both clouds to a 0.2 mm minimum spacing first; here
  :func:`downsample` keeps the first point of every cell of a ``spacing`` grid (an
  approximation of that greedy thinning, deterministic).
* **F-score** at :math:`\tau` (Point-MVSNet's "0.5 mm f-score", Tatarchenko et al.):
  precision = fraction of predicted points (in the region) with :math:`d(p, G) < \tau`,
  recall = fraction of ground-truth points with :math:`d(g, P) < \tau`,
  :math:`F = 2PR/(P + R)`, reported in percent like the slide's table.

Depth-map metrics (:func:`depth_metrics`), over valid ground-truth pixels: mean absolute
error and the percentage of pixels within each threshold (MVSNet/R-MVSNet report
errors below 2 mm and 4 mm on DTU).
"""

from __future__ import annotations

import math

import torch

from ..geometry.neighbors import knn
from ..geometry.validate import check_points

__all__ = ["DTU_MAX_DIST_MM", "nearest_distances", "downsample", "accuracy_completeness", "dtu_metrics", "depth_metrics"]

DTU_MAX_DIST_MM = 20.0
"""The official outlier cut-off of the DTU evaluation (``BaseEval.MaxDist = 20``, millimetres)."""


def _cloud(points: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(points, torch.Tensor) and points.dim() == 2:
        points = points.unsqueeze(0)
    check_points(points, name)
    if points.shape[0] != 1:
        raise ValueError(f"{name} must be one cloud (N, 3) or (1, N, 3), got {tuple(points.shape)}")
    return points


def nearest_distances(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    r"""``(N,)`` unsquared distance :math:`d(q, P)` of every query point to its nearest point (k-d tree).

    Args:
        query: ``(N, 3)`` points.
        points: ``(M, 3)`` points searched.
    """
    d2, _ = knn(_cloud(query, "query"), _cloud(points, "points"), 1)
    return d2[0, :, 0].clamp_min(0).sqrt()


def downsample(points: torch.Tensor, spacing: float) -> torch.Tensor:
    """Keep the first point in every cell of a grid of side ``spacing`` (order kept). ``(N, 3) -> (N', 3)``."""
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    cells = torch.floor(_cloud(points, "points")[0] / spacing).long()
    _, inverse = torch.unique(cells, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), points.shape[-2], dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, torch.arange(inverse.numel()), reduce="amin")
    return points.reshape(-1, 3)[first.sort().values]


def _in_region(points: torch.Tensor, region) -> torch.Tensor:
    if region is None:
        return torch.ones(points.shape[0], dtype=torch.bool)
    lo, hi = (torch.as_tensor(r, dtype=points.dtype) for r in region)
    return ((points >= lo) & (points <= hi)).all(-1)


def _mean_below(d: torch.Tensor, max_dist: float | None) -> torch.Tensor:
    keep = d < max_dist if max_dist is not None else torch.ones_like(d, dtype=torch.bool)
    return d[keep].mean() if keep.any() else d.new_tensor(math.nan)


def accuracy_completeness(pred: torch.Tensor, gt: torch.Tensor, max_dist: float | None = 0.02, region=None) -> torch.Tensor:
    r"""DTU accuracy and completeness (module docstring), with the outlier cut-off.

    .. math::  \text{Acc.} = \operatorname{mean}_{p:\ d(p, G) < \delta} d(p, G), \qquad
               \text{Comp.} = \operatorname{mean}_{g:\ d(g, P) < \delta} d(g, P)

    Args:
        pred: ``(N, 3)`` reconstruction.
        gt: ``(M, 3)`` ground truth.
        max_dist: :math:`\delta`, distances ``>=`` it are discarded (``None``: keep all).
        region: optional ``(lo (3,), hi (3,))`` box; only predicted points inside count for accuracy.

    Returns:
        ``(2,)`` tensor ``[accuracy, completeness]`` in the clouds' units (dtype of ``pred``).
    """
    pred_in = pred.reshape(-1, 3)[_in_region(pred.reshape(-1, 3), region)]
    acc = _mean_below(nearest_distances(pred_in, gt), max_dist) if pred_in.shape[0] else pred.new_tensor(math.nan)
    comp = _mean_below(nearest_distances(gt, pred), max_dist)
    return torch.stack([acc, comp])


def dtu_metrics(pred: torch.Tensor, gt: torch.Tensor, tau: float = 0.0005, max_dist: float = 0.02, region=None,
                spacing: float | None = None) -> dict[str, float]:
    r"""Accuracy, completeness, overall and f-score of one reconstruction (module docstring).

    Args:
        pred: ``(N, 3)`` reconstruction (an empty cloud gives ``nan`` accuracy and the cut-off as completeness).
        gt: ``(M, 3)`` ground truth.
        tau: f-score threshold (Point-MVSNet: 0.5 mm).
        max_dist: outlier cut-off :math:`\delta` (DTU: 20 mm).
        region: optional evaluation box for the predicted points.
        spacing: optional down-sampling of both clouds first.

    Returns:
        dict ``acc``, ``comp``, ``overall``, ``precision``, ``recall``, ``fscore`` (the last three in
        percent) and ``n_points`` (predicted points evaluated).
    """
    pred, gt = pred.reshape(-1, 3), gt.reshape(-1, 3)
    if spacing is not None:
        gt = downsample(gt, spacing)
        pred = downsample(pred, spacing) if pred.shape[0] else pred
    pred_in = pred[_in_region(pred, region)]
    if pred_in.shape[0] == 0:
        return {"acc": math.nan, "comp": max_dist, "overall": math.nan, "precision": 0.0, "recall": 0.0,
                "fscore": 0.0, "n_points": 0}
    d_pred, d_gt = nearest_distances(pred_in, gt), nearest_distances(gt, pred)
    acc, comp = float(_mean_below(d_pred, max_dist)), float(_mean_below(d_gt, max_dist))
    precision, recall = float((d_pred < tau).double().mean()), float((d_gt < tau).double().mean())
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"acc": acc, "comp": comp, "overall": (acc + comp) / 2, "precision": 100 * precision,
            "recall": 100 * recall, "fscore": 100 * f, "n_points": int(pred_in.shape[0])}


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None,
                  thresholds=(0.002, 0.004)) -> dict[str, float]:
    r"""Depth-map errors over valid ground-truth pixels.

    .. math::  \text{abs} = \operatorname{mean}_p |\hat z_p - z_p|, \qquad
               \text{within}_\epsilon = 100\,\operatorname{mean}_p [\,|\hat z_p - z_p| < \epsilon\,]

    Args:
        pred, gt: ``(B, H, W)`` depth maps (same units).
        valid: optional ``(B, H, W)`` bool (default ``gt > 0``).
        thresholds: the :math:`\epsilon` (default 2 and 4 mm for metres).

    Returns:
        dict ``abs`` and ``within_<eps>`` (percent) per threshold.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt depth maps differ in shape: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    valid = gt > 0 if valid is None else valid & (gt > 0)
    if not valid.any():
        raise ValueError("no valid ground-truth depth")
    err = (pred - gt).abs()[valid]
    out = {"abs": float(err.mean())}
    for eps in thresholds:
        out[f"within_{eps:g}"] = 100 * float((err < eps).double().mean())
    return out
