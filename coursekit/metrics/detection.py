r"""Detection and instance-segmentation metrics: average precision of boxes and of point masks.

Convention (VoteNet's ``utils/eval_det.py``, itself Ross Girshick's PASCAL VOC ``voc_eval.py``;
used for ScanNet and SUN RGB-D mAP@0.25 / mAP@0.5):

* Inputs are lists with one entry per scene: predictions (boxes or masks, scores, classes) and
  ground truth (boxes or masks, classes).
* Per class, the predictions of all scenes are visited by decreasing score (a stable sort: ties
  keep scene order, then index). Each takes the ground truth of its scene and class with the
  largest IoU; it is a **true positive if that IoU exceeds the threshold** (``>``, as the VOC
  code) and that ground truth is not matched yet; otherwise a false positive (a duplicate does
  not fall back to its second-best ground truth). Each ground truth is matched at most once.
* :math:`\text{recall}_k = TP_k / n_{gt}`, :math:`\text{precision}_k = TP_k / k` after the
  :math:`k`-th prediction.
* ``interpolation="area"`` (default; VOC2010+ and VoteNet/ScanNet): the area under the monotone
  precision envelope, :math:`AP = \sum_i (r_{i+1} - r_i)\, \max_{r \ge r_{i+1}} p(r)`.
  ``interpolation="voc11"`` (VOC2007): :math:`AP = \frac{1}{11}\sum_{t \in \{0, 0.1, \dots, 1\}} \max_{r \ge t} p(r)`.
* A class with no ground truth in any scene has AP = NaN and is left out of the mean (mAP).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from coursekit.geometry.boxes import box_iou_3d

__all__ = ["ap_from_precision_recall", "average_precision", "mean_average_precision", "mask_iou", "mask_average_precision"]


def ap_from_precision_recall(precision: np.ndarray, recall: np.ndarray, interpolation: str = "area") -> float:
    r"""Average precision from a precision-recall curve (predictions in decreasing score order).

    .. math::

        AP_{area} = \sum_i (r_{i+1} - r_i)\,\hat p(r_{i+1}),\quad \hat p(r) = \max_{r' \ge r} p(r');
        \qquad AP_{11} = \frac{1}{11}\sum_{t=0,0.1,\dots,1} \hat p(t)

    Args:
        precision: ``(K,)`` precision after each prediction.
        recall: ``(K,)`` recall after each prediction (non-decreasing).
        interpolation: ``"area"`` or ``"voc11"``.

    Returns:
        AP in ``[0, 1]``.
    """
    precision, recall = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    if interpolation == "voc11":
        return float(sum(precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)) / 11)
    if interpolation != "area":
        raise ValueError(f"interpolation must be 'area' or 'voc11', got {interpolation!r}")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the monotone envelope
    step = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _average_precision(iou: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor], pred_scores: Sequence[torch.Tensor],
                       pred_classes: Sequence[torch.Tensor], gt_classes: Sequence[torch.Tensor], iou_threshold: float,
                       interpolation: str, n_classes: int | None) -> torch.Tensor:
    """Per-class AP given ``iou(scene, pred_index, gt_index) -> (P', G')`` IoU matrices."""
    if not (len(pred_scores) == len(pred_classes) == len(gt_classes)):
        raise ValueError(f"need one entry per scene in every list, got {len(pred_scores)}, {len(pred_classes)}, {len(gt_classes)}")
    if n_classes is None:
        labels = [int(c.max()) for c in list(pred_classes) + list(gt_classes) if c.numel()]
        n_classes = max(labels) + 1 if labels else 0
    ap = torch.full((n_classes,), float("nan"), dtype=torch.float64)
    for c in range(n_classes):
        n_gt = sum(int((g == c).sum()) for g in gt_classes)
        if n_gt == 0:
            continue
        scores, overlap_rows = [], []
        for s in range(len(pred_scores)):
            pred = torch.nonzero(pred_classes[s] == c).flatten()
            gt = torch.nonzero(gt_classes[s] == c).flatten()
            if pred.numel() == 0:
                continue
            overlaps = iou(s, pred, gt).double() if gt.numel() else torch.zeros(pred.numel(), 0, dtype=torch.float64)
            scores.append(pred_scores[s][pred].double())
            overlap_rows.append(overlaps)
        if not scores:
            ap[c] = 0.0
            continue
        # visit all predictions of the class by decreasing score; match greedily within each scene
        all_scores = torch.cat(scores)
        scene_of = torch.cat([torch.full((len(x),), i) for i, x in enumerate(scores)])
        row_of = torch.cat([torch.arange(len(x)) for x in scores])
        order = torch.sort(all_scores, descending=True, stable=True).indices
        matched = [torch.zeros(o.shape[1], dtype=torch.bool) for o in overlap_rows]
        hits = np.zeros(len(order))
        for k, d in enumerate(order.tolist()):
            overlaps = overlap_rows[scene_of[d]][row_of[d]]
            if overlaps.numel() == 0:
                continue
            best = int(overlaps.argmax())
            if overlaps[best] > iou_threshold and not matched[scene_of[d]][best]:
                matched[scene_of[d]][best] = True
                hits[k] = 1
        cum_tp = np.cumsum(hits)
        precision = cum_tp / np.arange(1, len(hits) + 1)
        ap[c] = ap_from_precision_recall(precision, cum_tp / n_gt, interpolation)
    return ap


def average_precision(pred_boxes: Sequence[torch.Tensor], pred_scores: Sequence[torch.Tensor], pred_classes: Sequence[torch.Tensor],
                      gt_boxes: Sequence[torch.Tensor], gt_classes: Sequence[torch.Tensor], iou_threshold: float = 0.25,
                      interpolation: str = "area", n_classes: int | None = None) -> torch.Tensor:
    r"""Per-class average precision of oriented 3D boxes at one 3D-IoU threshold.

    .. math::  AP_c = \sum_i (r_{i+1} - r_i)\,\max_{r \ge r_{i+1}} p(r)\quad (\text{"area"}),\qquad
               \text{TP} \iff \max_g \mathrm{IoU}_{3D}(d, g) > \tau \text{ and } g \text{ unmatched}

    Args:
        pred_boxes: per scene ``(P_s, 7)`` boxes (:mod:`coursekit.geometry.boxes` convention).
        pred_scores: per scene ``(P_s,)`` confidences.
        pred_classes: per scene ``(P_s,)`` int64 class ids.
        gt_boxes: per scene ``(G_s, 7)`` ground-truth boxes.
        gt_classes: per scene ``(G_s,)`` int64 class ids.
        iou_threshold: :math:`\tau` (0.25 and 0.5 in ScanNet / SUN RGB-D papers).
        interpolation: ``"area"`` (VoteNet, VOC2010+) or ``"voc11"`` (VOC2007 11-point).
        n_classes: number of classes (default: largest id seen + 1).

    Returns:
        ``(n_classes,)`` float64 AP; NaN for classes without ground truth.
    """
    if not (len(pred_boxes) == len(gt_boxes) == len(pred_scores)):
        raise ValueError(f"need one entry per scene in every list, got {len(pred_boxes)}, {len(pred_scores)}, {len(gt_boxes)}")

    def iou(s, pred, gt):
        return box_iou_3d(pred_boxes[s][pred], gt_boxes[s][gt])

    return _average_precision(iou, pred_scores, pred_classes, gt_classes, iou_threshold, interpolation, n_classes)


def mean_average_precision(pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes, thresholds: Sequence[float] = (0.25, 0.5),
                           interpolation: str = "area", n_classes: int | None = None) -> dict[float, float]:
    r"""mAP at each IoU threshold: the mean of :func:`average_precision` over classes with ground truth.

    .. math::  \mathrm{mAP}@\tau = \frac{1}{|\{c : n^{gt}_c > 0\}|}\sum_{c} AP_c(\tau)

    Returns:
        dict threshold -> mAP (ScanNet's mAP@0.25 and mAP@0.5 by default).
    """
    return {tau: float(torch.nanmean(average_precision(pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes, tau,
                                                       interpolation, n_classes))) for tau in thresholds}


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""IoU of every pair of point masks.

    .. math::  \mathrm{IoU}(m, n) = \frac{|m \wedge n|}{|m \vee n|}

    Args:
        a: ``(P, N)`` bool masks over the ``N`` points of a scene.
        b: ``(G, N)`` bool masks.

    Returns:
        ``(P, G)`` float64 (0 where both masks are empty).
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"masks must be (P, N) and (G, N) over the same points, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.bool().double(), b.bool().double()
    inter = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_average_precision(pred_masks: Sequence[torch.Tensor], pred_scores: Sequence[torch.Tensor], pred_classes: Sequence[torch.Tensor],
                           gt_masks: Sequence[torch.Tensor], gt_classes: Sequence[torch.Tensor], iou_threshold: float = 0.5,
                           interpolation: str = "area", n_classes: int | None = None) -> torch.Tensor:
    r"""Per-class average precision of instance masks (point sets), matched by mask IoU.

    The same greedy matching and interpolation as :func:`average_precision`, with
    :math:`\mathrm{IoU}(m, n) = |m \wedge n| / |m \vee n|` over the scene's points. (ScanNet's
    instance benchmark averages this over thresholds 0.5:0.05:0.95 and handles ignored points;
    this is the single-threshold core.)

    Args:
        pred_masks: per scene ``(P_s, N_s)`` bool masks.
        pred_scores, pred_classes: per scene ``(P_s,)``.
        gt_masks: per scene ``(G_s, N_s)`` bool masks.
        gt_classes: per scene ``(G_s,)``.
        iou_threshold, interpolation, n_classes: as :func:`average_precision`.

    Returns:
        ``(n_classes,)`` float64 AP; NaN for classes without ground truth.
    """
    if not (len(pred_masks) == len(gt_masks) == len(pred_scores)):
        raise ValueError(f"need one entry per scene in every list, got {len(pred_masks)}, {len(pred_scores)}, {len(gt_masks)}")

    def iou(s, pred, gt):
        return mask_iou(pred_masks[s][pred], gt_masks[s][gt])

    return _average_precision(iou, pred_scores, pred_classes, gt_classes, iou_threshold, interpolation, n_classes)
