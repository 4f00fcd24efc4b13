"""Segmentation metrics (coursekit.metrics.segmentation) on hand-computed cases."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.metrics.segmentation import confusion_matrix, mean_iou, part_instance_miou, per_class_iou


def test_confusion_matrix_rows_are_ground_truth_and_ignore_is_dropped():
    target = torch.tensor([0, 0, 1, 1, 2, -1, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 0])
    want = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert torch.equal(confusion_matrix(pred, target, 3), want)
    assert confusion_matrix(pred, target, 3).dtype == torch.int64


def test_hand_computed_iou_and_miou():
    # class 0: TP 1, FN 1 (0->1), FP 1 (2->0): 1/3 ; class 1: TP 2, FP 1: 2/3 ; class 2: TP 0, FN 1: 0
    target = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    conf = confusion_matrix(pred, target, 4)
    iou = per_class_iou(conf)
    assert torch.allclose(iou[:3], torch.tensor([1 / 3, 2 / 3, 0.0], dtype=torch.float64))
    assert math.isnan(iou[3])  # class 3 absent from both: excluded
    assert mean_iou(conf).item() == pytest.approx(1 / 3)
    # the ignored point's prediction (2) counts nowhere; with ignore_index=None-like value it would
    conf_no_ignore = confusion_matrix(pred, target.clamp(min=0), 4)
    assert mean_iou(conf_no_ignore).item() != pytest.approx(1 / 3)


def test_batched_labels_and_accumulation_over_scenes():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(-1, 5, (3, 100), generator=gen)
    pred = torch.randint(0, 5, (3, 100), generator=gen)
    total = sum(confusion_matrix(p, g, 5) for p, g in zip(pred, target))
    assert torch.equal(total, confusion_matrix(pred, target, 5))
    assert total.sum() == (target != -1).sum()


def test_perfect_prediction_gives_one():
    target = torch.tensor([[0, 1, 2, 2, 255]])
    conf = confusion_matrix(target.clamp(max=2), target, 3, ignore_index=255)
    assert mean_iou(conf).item() == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_iou_is_symmetric_in_pred_and_target(pairs):
    pred, target = torch.tensor([p for p, _ in pairs]), torch.tensor([g for _, g in pairs])
    a, b = per_class_iou(confusion_matrix(pred, target, 4)), per_class_iou(confusion_matrix(target, pred, 4))
    assert torch.allclose(a, b, equal_nan=True)
    perm = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(1))
    assert torch.equal(confusion_matrix(pred[perm], target[perm], 4), confusion_matrix(pred, target, 4))


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(torch.tensor([0.5]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_shapenet_part_instance_and_class_miou_hand_computed():
    parts = {0: [0, 1], 1: [2, 3, 4]}
    # shape A (class 0): part 0: pred {0,1}, gt {0}: 1/2 ; part 1: pred {2,3}, gt {1,2,3}: 2/3 -> 7/12
    # shape B (class 0): perfect -> 1
    # shape C (class 1): part 2: 1/1 ; part 3: pred {1} gt {}: 0 ; part 4 absent in both: 1 -> 2/3
    pred = [torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0]), torch.tensor([2, 3])]
    target = [torch.tensor([0, 1, 1, 1]), torch.tensor([1, 1, 0]), torch.tensor([2, 2])]
    out = part_instance_miou(pred, target, [0, 0, 1], parts)
    shape_iou = [7 / 12, 1.0, (1 / 2 + 0 + 1) / 3]
    assert torch.allclose(out["per_shape"], torch.tensor(shape_iou, dtype=torch.float64))
    assert out["instance_miou"] == pytest.approx(sum(shape_iou) / 3)
    assert out["per_class"] == pytest.approx({0: (7 / 12 + 1) / 2, 1: 0.5})
    assert out["class_miou"] == pytest.approx(((7 / 12 + 1) / 2 + 0.5) / 2)


def test_shapenet_part_absent_part_counts_as_one_not_zero():
    out = part_instance_miou([torch.tensor([0, 0])], [torch.tensor([0, 0])], [0], {0: [0, 1, 2]})
    assert out["instance_miou"] == 1.0


def test_shapenet_part_bad_inputs():
    with pytest.raises(ValueError, match="same non-zero number"):
        part_instance_miou([torch.tensor([0])], [], [0], {0: [0]})
    with pytest.raises(ValueError, match="no entry"):
        part_instance_miou([torch.tensor([0])], [torch.tensor([0])], [5], {0: [0]})
