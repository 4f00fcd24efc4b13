r"""F-score at a distance threshold (Tatarchenko et al., "What do single-view 3D reconstruction
networks learn?", CVPR 2019).

.. math::  P(\tau) = \frac{1}{|X|} \sum_{x \in X} [\, d(x, Y) < \tau \,], \qquad
           R(\tau) = \frac{1}{|Y|} \sum_{y \in Y} [\, d(y, X) < \tau \,], \qquad
           F(\tau) = \frac{2 P R}{P + R}

``X`` is the prediction, ``Y`` the ground truth, :math:`d(p, Q) = \min_q \lVert p - q \rVert_2`
**unsquared**, the comparison strict (``<``) as in lmb-freiburg/what3d ``util.py``; ``F = 0``
when ``P = R = 0``. The paper reports F@1% (``tau = 0.01`` on objects normalised to unit size).
NB what3d's code names the two fractions the other way round (its ``precision`` is computed
from ground-truth-to-prediction distances): harmless for ``F``, which is symmetric, but not for
precision/recall plots. Here precision is about the predicted points, as the paper defines it.
"""

from __future__ import annotations

import torch

from .chamfer import BatchReduction, nearest_sq_dists, reduce_batch, safe_sqrt


def _check_tau(tau: float) -> None:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0 or tau != tau or tau == float("inf"):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")


def precision_recall(pred: torch.Tensor, gt: torch.Tensor, tau: float = 0.01,
                     pred_lengths: torch.Tensor | None = None,
                     gt_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fractions of predicted points near the ground truth (precision) and vice versa (recall).

    .. math::  P = \frac{1}{|X|} \sum_{x} [d(x, Y) < \tau], \qquad R = \frac{1}{|Y|} \sum_{y} [d(y, X) < \tau]

    Args:
        pred: ``(B, N, 3)`` predicted clouds.
        gt: ``(B, M, 3)`` ground-truth clouds.
        tau: distance threshold (unsquared, in the clouds' units).
        pred_lengths, gt_lengths: optional ``(B,)`` valid point counts.

    Returns:
        ``(precision, recall)``, each ``(B,)`` in ``[0, 1]``.
    """
    _check_tau(tau)
    with torch.no_grad():
        fractions = []
        for query, points, q_len, p_len in ((pred, gt, pred_lengths, gt_lengths), (gt, pred, gt_lengths, pred_lengths)):
            d2, _, valid = nearest_sq_dists(query, points, q_len, p_len)
            close = (safe_sqrt(d2) < tau) & valid
            fractions.append(close.sum(-1).to(query.dtype) / valid.sum(-1))
    return fractions[0], fractions[1]


def fscore(pred: torch.Tensor, gt: torch.Tensor, tau: float = 0.01, pred_lengths: torch.Tensor | None = None,
           gt_lengths: torch.Tensor | None = None, reduction: BatchReduction = "none") -> torch.Tensor:
    r"""F-score@tau: the harmonic mean of precision and recall (0 when both are 0).

    .. math::  F(\tau) = \frac{2 P(\tau) R(\tau)}{P(\tau) + R(\tau)}

    Args:
        pred: ``(B, N, 3)`` predicted clouds.
        gt: ``(B, M, 3)`` ground-truth clouds.
        tau: distance threshold (unsquared).
        pred_lengths, gt_lengths: optional ``(B,)`` valid point counts.
        reduction: over the batch: ``"none"`` (``(B,)``), ``"mean"`` or ``"sum"``.

    Returns:
        ``(B,)`` F-scores in ``[0, 1]`` (or a scalar); not differentiable (a count).
    """
    p, r = precision_recall(pred, gt, tau, pred_lengths, gt_lengths)
    total = p + r
    return reduce_batch(torch.where(total > 0, 2 * p * r / total.clamp_min(1e-30), torch.zeros_like(total)), reduction)
