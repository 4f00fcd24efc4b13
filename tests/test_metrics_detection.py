"""Detection metrics (coursekit.metrics.detection) on hand-computed precision-recall curves."""

import math

import numpy as np
import pytest
import torch

from coursekit.metrics.detection import (ap_from_precision_recall, average_precision, mask_average_precision, mask_iou,
                                         mean_average_precision)


def cube(x, z=0.0, size=1.0):
    return [x, 0.5, z, size, 1.0, size, 0.0]


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# 2 ground truths, 3 predictions: TP (0.9), duplicate FP (0.8), TP at IoU 2/3 (0.7)
# precision 1, 1/2, 2/3 ; recall 1/2, 1/2, 1
GT = [t([cube(0), cube(5)])]
PRED = [t([cube(0), cube(0.1), cube(5.2)])]
SCORES = [torch.tensor([0.9, 0.8, 0.7])]
ONE = [torch.zeros(3, dtype=torch.int64)]
GT_CLS = [torch.zeros(2, dtype=torch.int64)]
AREA = 0.5 * 1 + 0.5 * 2 / 3
VOC11 = (6 * 1 + 5 * 2 / 3) / 11


def test_ap_from_curve_hand_computed():
    precision, recall = np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert ap_from_precision_recall(precision, recall, "area") == pytest.approx(AREA)
    assert ap_from_precision_recall(precision, recall, "voc11") == pytest.approx(VOC11)
    # TP, FP, TP, TP of 4 gt: precision 1, 1/2, 2/3, 3/4 at recall 1/4, 1/4, 1/2, 3/4; the envelope lifts
    # the 2/3 at recall 1/2 to 3/4 (the raw curve would give 0.25 + 0.25 * 2/3 + 0.25 * 3/4)
    curve = np.array([1, 0.5, 2 / 3, 0.75]), np.array([0.25, 0.25, 0.5, 0.75])
    assert ap_from_precision_recall(*curve, "area") == pytest.approx(0.25 + 0.25 * 0.75 + 0.25 * 0.75)
    with pytest.raises(ValueError, match="interpolation"):
        ap_from_precision_recall(precision, recall, "coco")


def test_box_ap_two_gt_three_predictions():
    ap = average_precision(PRED, SCORES, ONE, GT, GT_CLS, 0.5, "area")
    assert ap.tolist() == pytest.approx([AREA])
    assert average_precision(PRED, SCORES, ONE, GT, GT_CLS, 0.5, "voc11").tolist() == pytest.approx([VOC11])
    # at 0.7 the third prediction (IoU 2/3) is a false positive: recall stops at 1/2
    assert average_precision(PRED, SCORES, ONE, GT, GT_CLS, 0.7, "area").tolist() == pytest.approx([0.5])


def test_score_order_not_input_order_decides():
    perm = [2, 0, 1]
    ap = average_precision([PRED[0][perm]], [SCORES[0][perm]], ONE, GT, GT_CLS, 0.5)
    assert ap.tolist() == pytest.approx([AREA])
    # the duplicate ranked first takes the match instead: TP, FP, TP again -> same curve shape
    worse = average_precision(PRED, [torch.tensor([0.5, 0.8, 0.9])], ONE, GT, GT_CLS, 0.5)
    assert worse.tolist() == pytest.approx([1.0])  # 0.9 -> TP (g2), 0.8 -> TP (g1), 0.5 -> duplicate FP


def test_classes_and_scenes_are_kept_apart():
    # scene 2 repeats scene 1 with classes swapped: a prediction of class 1 never matches a class-0 gt
    preds = PRED + [PRED[0]]
    scores = SCORES + SCORES
    pred_cls = ONE + [torch.ones(3, dtype=torch.int64)]
    gt = GT + GT
    gt_cls = GT_CLS + [torch.ones(2, dtype=torch.int64)]
    ap = average_precision(preds, scores, pred_cls, gt, gt_cls, 0.5, n_classes=3)
    assert ap[:2].tolist() == pytest.approx([AREA, AREA])
    assert math.isnan(ap[2])  # no ground truth of class 2: excluded from the mean
    maps = mean_average_precision(preds, scores, pred_cls, gt, gt_cls, n_classes=3)
    assert maps[0.25] == pytest.approx(AREA) and maps[0.5] == pytest.approx(AREA)
    # predictions in the wrong scene do not match: all class-0 predictions in a scene without class-0 gt
    ap = average_precision([PRED[0], PRED[0][:0]], [SCORES[0], SCORES[0][:0]], [ONE[0], ONE[0][:0]],
                           [GT[0][:0], GT[0]], [GT_CLS[0][:0], GT_CLS[0]], 0.5)
    assert ap.tolist() == [0.0]


def test_ground_truth_matched_once_and_threshold_strict():
    # one gt, two identical perfect predictions: precision 1 then 1/2, recall 1 -> AP 1
    gt, gt_cls = [t([cube(0)])], [torch.zeros(1, dtype=torch.int64)]
    two = average_precision([t([cube(0), cube(0)])], [torch.tensor([0.9, 0.8])], [torch.zeros(2, dtype=torch.int64)], gt, gt_cls, 0.5)
    assert two.tolist() == [1.0]
    # IoU exactly 1/3 at threshold 1/3 is not a match (VOC's ovmax > ovthresh)
    third = [t([cube(0.5)])]
    one_pred = [torch.tensor([1.0])], [torch.zeros(1, dtype=torch.int64)]
    assert average_precision(third, *one_pred, gt, gt_cls, 1 / 3 + 1e-9).tolist() == [0.0]
    assert average_precision(third, *one_pred, gt, gt_cls, 1 / 3 - 1e-9).tolist() == [1.0]


def test_rotated_boxes_use_the_oriented_iou():
    gt, gt_cls = [t([[0, 0.5, 0, 2.0, 1.0, 0.5, 0.0]])], [torch.zeros(1, dtype=torch.int64)]
    turned = [t([[0, 0.5, 0, 2.0, 1.0, 0.5, math.pi / 2]])]  # same axis-aligned box only if yaw ignored
    assert average_precision(turned, [torch.tensor([1.0])], [torch.zeros(1, dtype=torch.int64)], gt, gt_cls, 0.25).tolist() == [0.0]


def test_mask_iou_and_mask_ap_hand_computed():
    gt = torch.zeros(2, 10, dtype=torch.bool)
    gt[0, :4] = True
    gt[1, 6:] = True
    pred = torch.zeros(3, 10, dtype=torch.bool)
    pred[0, :4] = True  # IoU 1 with gt 0
    pred[1, :3] = True  # IoU 3/4 with gt 0: duplicate
    pred[2, 5:] = True  # IoU 4/5 with gt 1
    iou = mask_iou(pred, gt)
    assert torch.allclose(iou, torch.tensor([[1, 0], [0.75, 0], [0, 0.8]], dtype=torch.float64))
    cls = [torch.zeros(3, dtype=torch.int64)]
    ap = mask_average_precision([pred], SCORES, cls, [gt], [torch.zeros(2, dtype=torch.int64)], 0.5)
    assert ap.tolist() == pytest.approx([AREA])
    ap = mask_average_precision([pred], SCORES, cls, [gt], [torch.zeros(2, dtype=torch.int64)], 0.85)
    assert ap.tolist() == pytest.approx([0.5])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="one entry per scene"):
        average_precision(PRED, SCORES, ONE, GT + GT, GT_CLS, 0.5)
    with pytest.raises(ValueError, match="same points"):
        mask_iou(torch.zeros(2, 5, dtype=torch.bool), torch.zeros(2, 6, dtype=torch.bool))
