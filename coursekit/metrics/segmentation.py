r"""Semantic and part segmentation metrics: confusion matrix, per-class IoU, mIoU, ShapeNetPart mIoU.

Conventions:

* Labels are int64 tensors of any shape (``(N,)`` points of a scene, ``(B, N)`` batches);
  ``pred`` and ``target`` have the same shape.
* The confusion matrix has **rows = ground truth, columns = prediction** (scikit-learn's
  convention); points whose target equals ``ignore_index`` are dropped (the slide's "ignore"
  class), whatever was predicted there.
* **mIoU, ScanNet style**: accumulate one confusion matrix over the whole evaluation set, then
  :math:`\mathrm{IoU}_c = TP_c / (TP_c + FP_c + FN_c)`; a class absent from both prediction and
  ground truth has an undefined IoU (NaN) and is left out of the mean (ScanNet's
  ``evaluate_semantic_label.py`` returns NaN for an empty denominator).
* **ShapeNetPart** (PointNet / PointNet++ evaluation code, ``part_seg/test.py`` /
  ``evaluate.py``): per shape, the mean over the parts of its class of the part IoU, a part
  absent from both prediction and ground truth counting as 1; *instance mIoU* = mean over
  shapes, *class mIoU* = mean over classes of the mean over that class's shapes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

__all__ = ["confusion_matrix", "per_class_iou", "mean_iou", "part_instance_miou"]


def _check_labels(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer labels, got {x.dtype} (take argmax of the scores first)")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int, ignore_index: int = -1) -> torch.Tensor:
    r"""Counts of (true class, predicted class) pairs.

    .. math::  C_{ij} = \#\{p : y_p = i,\ \hat y_p = j,\ y_p \ne \text{ignore}\}

    Args:
        pred: integer labels in ``[0, n_classes)``, any shape.
        target: integer labels of the same shape, in ``[0, n_classes)`` or ``ignore_index``.
        n_classes: number of classes :math:`C`.
        ignore_index: target label to leave out.

    Returns:
        ``(C, C)`` int64, rows = ground truth, columns = prediction.
    """
    _check_labels(pred, target)
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    for name, x in (("pred", pred), ("target", target)):
        if x.numel() and (x.min() < 0 or x.max() >= n_classes):
            raise ValueError(f"{name} has labels outside [0, {n_classes}) (min {int(x.min())}, max {int(x.max())})")
    return torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_iou(confusion: torch.Tensor) -> torch.Tensor:
    r"""IoU of every class from a confusion matrix.

    .. math::  \mathrm{IoU}_c = \frac{C_{cc}}{\sum_j C_{cj} + \sum_i C_{ic} - C_{cc}}
               = \frac{TP_c}{TP_c + FN_c + FP_c}

    Args:
        confusion: ``(C, C)`` counts (rows ground truth).

    Returns:
        ``(C,)`` float64; NaN for a class absent from both prediction and ground truth.
    """
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square (C, C) matrix, got {tuple(confusion.shape)}")
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(confusion: torch.Tensor) -> torch.Tensor:
    r"""Mean IoU over the classes present in prediction or ground truth (ScanNet convention).

    .. math::  \mathrm{mIoU} = \frac{1}{|\mathcal C'|}\sum_{c \in \mathcal C'} \mathrm{IoU}_c,\qquad
               \mathcal C' = \{c : TP_c + FP_c + FN_c > 0\}

    Args:
        confusion: ``(C, C)`` counts accumulated over the evaluation set.

    Returns:
        A float64 scalar tensor (NaN if the matrix is all zeros).
    """
    return torch.nanmean(per_class_iou(confusion))


def part_instance_miou(pred_parts: Sequence[torch.Tensor], target_parts: Sequence[torch.Tensor],
                       class_of_shape: Sequence[int], parts_of_class: Mapping[int, Sequence[int]]) -> dict:
    r"""ShapeNetPart part-averaged IoU: instance mIoU and class mIoU.

    .. math::

        \mathrm{IoU}_{s} = \frac{1}{|P_{k(s)}|}\sum_{p \in P_{k(s)}}
        \begin{cases} 1 & \text{if } p \notin \hat y_s \text{ and } p \notin y_s \\
        \frac{|\hat y_s = p\ \wedge\ y_s = p|}{|\hat y_s = p\ \vee\ y_s = p|} & \text{otherwise}\end{cases}

        \text{instance mIoU} = \frac{1}{S}\sum_s \mathrm{IoU}_s,\qquad
        \text{class mIoU} = \frac{1}{K}\sum_k \operatorname{mean}_{s : k(s) = k} \mathrm{IoU}_s

    following PointNet's ``part_seg/test.py`` (Qi et al., CVPR 2017) and PointNet++'s
    ``part_seg/evaluate.py``. Predicted labels outside the shape's class's parts count as
    wrong (they enlarge no part's intersection); PointNet restricts the argmax to the class's
    parts before this step, which a caller may do too.

    Args:
        pred_parts: ``S`` integer tensors ``(N_s,)`` (or a ``(S, N)`` tensor) of predicted part labels.
        target_parts: same shapes, ground-truth part labels.
        class_of_shape: ``S`` object-class ids.
        parts_of_class: class id -> the part labels of that class.

    Returns:
        dict with ``"instance_miou"`` and ``"class_miou"`` (floats), ``"per_shape"`` ``(S,)``
        float64 and ``"per_class"`` (dict class id -> mean IoU of its shapes).
    """
    class_of_shape = [int(k) for k in class_of_shape]
    if not (len(pred_parts) == len(target_parts) == len(class_of_shape)) or not class_of_shape:
        raise ValueError(f"need the same non-zero number of predictions, targets and classes, got "
                         f"{len(pred_parts)}, {len(target_parts)}, {len(class_of_shape)}")
    per_shape = []
    for pred, target, k in zip(pred_parts, target_parts, class_of_shape):
        _check_labels(pred, target)
        if k not in parts_of_class:
            raise ValueError(f"class {k} has no entry in parts_of_class")
        ious = []
        for part in parts_of_class[k]:
            p, g = pred == part, target == part
            union = int((p | g).sum())
            ious.append(1.0 if union == 0 else int((p & g).sum()) / union)
        per_shape.append(sum(ious) / len(ious))
    per_shape = torch.tensor(per_shape, dtype=torch.float64)
    classes = torch.tensor(class_of_shape)
    per_class = {k: float(per_shape[classes == k].mean()) for k in sorted(set(class_of_shape))}
    return {
        "instance_miou": float(per_shape.mean()),
        "class_miou": sum(per_class.values()) / len(per_class),
        "per_shape": per_shape,
        "per_class": per_class,
    }
