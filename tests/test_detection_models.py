"""Detection and instance segmentation models (lecture 04): voxelised scenes, RoI pooling, sliding windows,
anchors and targets, the two-stage detector, box masks, the TSDF detector and the table's baseline."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit.data.world.datasets import make_scene_split
from coursekit.geometry.boxes import box_corners, box_iou_3d, decode_boxes, encode_boxes
from coursekit.metrics.detection import average_precision, mask_iou
from coursekit.models.detection_table import floor_baseline
from coursekit.models.instance_segmentation import (BoxMaskNet, box_frame, gt_instance_masks, instances_from_boxes,
                                                    points_in_boxes, train_box_masks)
from coursekit.models.sliding_shapes import (ClassStatistics, SlidingShapes, class_statistics, enumerate_windows, grid_shape,
                                             pool_box_grid, scene_bounds, train_sliding_shapes, training_windows, voxelize_scene, window_counts)
from coursekit.models.two_stage_detector import TwoStageDetector, align_yaw, assign_targets, make_anchors, train_two_stage
from coursekit.models.volumetric_rcnn import VolumetricRCNN, render_scan, tsdf_features


@pytest.fixture(scope="module")
def scenes():
    return make_scene_split(3, 1, n_points=4000, seed=3, progress=False)


def _stats(sizes, classes=None):
    sizes = torch.as_tensor(sizes, dtype=torch.float32)
    classes = torch.arange(len(sizes)) if classes is None else torch.as_tensor(classes)
    return ClassStatistics(classes, sizes, sizes[:, 1] / 2, torch.ones(len(sizes), dtype=torch.int64))


# ------------------------------------------------------------------------------ voxelised scene

def test_voxelize_scene_hand_case():
    bounds = torch.tensor([[0.0, 0.0, 0.0], [2.0, 1.0, 3.0]])  # 2 x 1 x 3 voxels of 1 m -> (D, H, W) = (3, 1, 2)
    points = torch.tensor([[[0.2, 0.5, 0.5], [0.7, 0.5, 0.1], [1.5, 0.5, 2.5], [5.0, 0.5, 0.5]]])
    normals = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]]])
    v = voxelize_scene(points, normals, bounds, 1.0)
    assert v.shape == (1, 5, 3, 1, 2)
    assert v[0, 0].sum() == 2 and v[0, 0, 0, 0, 0] == 1 and v[0, 0, 2, 0, 1] == 1  # (z, y, x) order; the far point dropped
    assert torch.isclose(v[0, 1, 0, 0, 0], torch.log(torch.tensor(3.0)))
    assert torch.allclose(v[0, 2:, 0, 0, 0], torch.tensor([0.5, 0.5, 0.0]))  # mean normal
    assert torch.allclose(v[0, 2:, 2, 0, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_scene_bounds_tiles_and_holds_rooms():
    b = scene_bounds([(4.0, 2.5, 6.0), (5.0, 2.0, 3.0)], 0.2, multiple=4)
    D, H, W = grid_shape(b, 0.2)
    assert D % 4 == H % 4 == W % 4 == 0
    assert b[0, 0] <= -2.5 and b[1, 0] >= 2.5 and b[0, 2] <= -3 and b[1, 2] >= 3 and b[0, 1] < 0 and b[1, 1] >= 2.5


def test_pool_box_grid_samples_at_the_box_lattice():
    """A linear volume read at the lattice equals the function at lattice points computed from box_corners
    (g = 2: the lattice is the corners of the box of half size)."""
    bounds = torch.tensor([[-2.0, -1.0, -2.0], [2.0, 3.0, 2.0]])
    D, H, W = grid_shape(bounds, 0.25)
    z, y, x = torch.meshgrid(*[bounds[0, a] + 0.125 + 0.25 * torch.arange(n) for a, n in ((2, D), (1, H), (0, W))], indexing="ij")
    volume = torch.stack([x + 2 * y + 3 * z, -x])[None]
    boxes = torch.tensor([[0.3, 1.1, -0.4, 1.2, 0.8, 0.6, 0.7], [-0.5, 0.9, 0.2, 0.5, 1.0, 1.5, math.pi / 2]])
    pooled = pool_box_grid(volume, bounds, boxes, torch.zeros(2, dtype=torch.int64), grid=2)
    assert pooled.shape == (2, 2, 2, 2, 2)
    half = boxes.clone()
    half[:, 3:6] /= 2
    corners = box_corners(half)  # corner k = 4 ix + 2 iy + iz
    for k in range(8):
        ix, iy, iz = k >> 2, (k >> 1) & 1, k & 1
        p = corners[:, k]
        assert torch.allclose(pooled[:, 0, iz, iy, ix], p[:, 0] + 2 * p[:, 1] + 3 * p[:, 2], atol=1e-4)
        assert torch.allclose(pooled[:, 1, iz, iy, ix], -p[:, 0], atol=1e-4)


def test_class_statistics_hand_case():
    boxes = [torch.tensor([[0, 0.5, 0, 1, 1, 1, 0], [0, 1.0, 0, 2, 2, 2, 0]]), torch.tensor([[0, 0.2, 0, 3, 0.4, 1, 0]])]
    labels = [torch.tensor([4, 4]), torch.tensor([2])]
    s = class_statistics(boxes, labels)
    assert s.classes.tolist() == [2, 4] and s.counts.tolist() == [1, 2]
    assert torch.allclose(s.sizes, torch.tensor([[3, 0.4, 1], [1.5, 1.5, 1.5]]))
    assert torch.allclose(s.heights, torch.tensor([0.2, 0.75]))
    assert s.index(torch.tensor([4, 2, 7])).tolist() == [1, 0, -1]


# ------------------------------------------------------------------------------ sliding windows

def _brute_force_count(region, size, stride):
    """Count window positions by walking the lattice (independent of the closed form)."""
    n = 0
    for yaw in (0.0, math.pi / 2):
        w = size if yaw == 0 else (size[2], size[1], size[0])
        per_axis = []
        for a in range(3):
            lo, hi, k = region[0][a], region[1][a], 0
            while lo + w[a] / 2 + k * stride + w[a] / 2 <= hi + 1e-9:
                k += 1
            per_axis.append(k)
        n += per_axis[0] * per_axis[1] * per_axis[2]
    return n


def test_window_count_equals_closed_form_and_brute_force():
    region = [[-2.1, 0.0, -1.7], [2.1, 2.6, 1.7]]
    sizes = torch.tensor([[0.5, 0.9, 0.6], [2.0, 0.7, 1.0], [5.0, 1.0, 1.0]])  # the last fits in no orientation
    closed = window_counts(region, sizes, 0.3)
    assert closed.tolist() == [_brute_force_count(region, s.tolist(), 0.3) for s in sizes]
    assert closed[2] == 0
    windows, klass = enumerate_windows(region, sizes, 0.3)
    assert torch.bincount(klass, minlength=3).tolist() == closed.tolist()
    # every window lies inside the region
    corners = box_corners(windows)
    assert (corners >= torch.tensor(region[0]) - 1e-5).all() and (corners <= torch.tensor(region[1]) + 1e-5).all()


def test_sliding_shapes_counts_the_windows_it_evaluates(scenes):
    train, _ = scenes
    stats = class_statistics(train.boxes, train.box_labels)
    bounds = scene_bounds([s.size for s in train.scenes], 0.25)
    volume = voxelize_scene(train.points[:2], train.normals[:2], bounds, 0.25)
    model = SlidingShapes(stats, stride=0.5)
    regions = [s.interior for s in train.scenes[:2]]
    out = model.detect(volume, bounds, regions, max_detections=7)
    assert model.last.windows == sum(int(window_counts(r, stats.sizes, 0.5).sum()) for r in regions)
    assert model.last.seconds > 0
    assert len(out) == 2 and all(len(d["boxes"]) <= 7 and d["boxes"].shape[1:] == (7,) for d in out)
    assert set(torch.cat([d["labels"] for d in out]).tolist()) <= set(stats.classes.tolist())
    with pytest.raises(ValueError, match="one region per scene"):
        model.detect(volume, bounds, regions[:1])


def test_sliding_shapes_classifier_separates_windows(scenes):
    """After training, fresh positive windows (class size at an object) outscore fresh random negatives (AUC)."""
    train, _ = scenes
    stats = class_statistics(train.boxes, train.box_labels)
    bounds = scene_bounds([s.size for s in train.scenes], 0.2)
    volume = voxelize_scene(train.points, train.normals, bounds, 0.2)
    regions = [s.interior for s in train.scenes]
    torch.manual_seed(0)
    model = SlidingShapes(stats)
    gen = torch.Generator().manual_seed(0)
    history = train_sliding_shapes(model, volume, bounds, train.boxes, train.box_labels, regions, 15, gen, n_negative=100, progress=False)
    assert history[-1] < history[0]
    win, kl, bi, target = training_windows(stats, train.boxes, train.box_labels, regions, 200, 0.1, gen)
    with torch.no_grad():
        score = model(volume, bounds, win, kl, bi)
    pos, neg = score[target > 0.5], score[target < 0.5]
    auc = (pos[:, None] > neg[None]).float().mean()
    assert auc > 0.85, auc


# ------------------------------------------------------------------------------ anchors and targets

def test_make_anchors_layout():
    bounds = torch.tensor([[0.0, 0.0, 0.0], [4.0, 2.0, 6.0]])
    sizes = torch.tensor([[1.0, 1.0, 2.0], [0.5, 0.8, 0.5]])
    anchors, klass = make_anchors(bounds, (3, 1, 2), sizes)  # (D', H', W') = z, y, x
    assert anchors.shape == (3 * 1 * 2 * 2 * 2, 7) and klass.shape == (24,)
    # cell (d=2, h=0, w=1), class 1, yaw pi/2 is the last anchor
    assert torch.allclose(anchors[-1], torch.tensor([3.0, 1.0, 5.0, 0.5, 0.8, 0.5, math.pi / 2]))
    assert torch.allclose(anchors[0], torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0]))
    assert klass[:4].tolist() == [0, 0, 1, 1]


def test_encode_decode_round_trip_with_aligned_yaw():
    g = torch.Generator().manual_seed(0)
    n = 200
    gt = torch.cat([torch.randn(n, 3, generator=g), torch.rand(n, 3, generator=g) + 0.2, torch.rand(n, 1, generator=g) * 20 - 10], 1).double()
    anchors = torch.cat([torch.randn(n, 3, generator=g), torch.rand(n, 3, generator=g) + 0.2,
                         torch.tensor([0.0, math.pi / 2]).double()[torch.randint(0, 2, (n,), generator=g)][:, None]], 1).double()
    aligned = align_yaw(gt, anchors[:, 6])
    deltas = encode_boxes(aligned, anchors)
    assert (deltas[:, 6].abs() <= math.pi / 2 + 1e-9).all()  # the yaw target is wrapped
    assert torch.allclose(decode_boxes(deltas, anchors), aligned, atol=1e-12)
    assert torch.allclose(box_iou_3d(aligned, gt).diagonal(), torch.ones(n, dtype=torch.float64), atol=1e-9)  # the same boxes
    # without alignment the raw yaw difference can exceed pi/2
    assert (encode_boxes(gt, anchors)[:, 6].abs() > math.pi / 2).any()


def test_assign_targets_hand_case():
    anchors = torch.tensor([[0, 0.5, 0, 1, 1, 1, 0], [0.1, 0.5, 0, 1, 1, 1, 0], [5, 0.5, 5, 1, 1, 1, 0],
                            [0, 0.5, 0, 1, 1, 1, 0], [9, 0.5, 9, 1, 1, 1, 0], [9.4, 0.5, 9, 1, 1, 1, 0]], dtype=torch.float32)
    klass = torch.tensor([0, 0, 0, 1, 0, 0])
    gt = torch.tensor([[0, 0.5, 0, 1, 1, 1, math.pi], [9.8, 0.5, 9, 1, 1, 1, 0], [0, 0.5, 0, 1, 1, 1, 0]])
    labels, matched = assign_targets(anchors, klass, gt, torch.tensor([0, 0, -1]), pos_iou=0.5, neg_iou=0.1)
    # anchor 0: identical (yaw pi is the same box); 1: IoU 0.82; 2: far; 3: other class; 4: IoU 0.11 ignored
    # 5: IoU 0.43 < 0.5 but the best anchor of gt 1 -> positive; gt 2 is not detected (-1) and matches nothing
    assert labels.tolist() == [1, 1, 0, 0, -1, 1]
    assert matched.tolist() == [0, 0, -1, -1, -1, 1]
    with pytest.raises(ValueError, match="neg_iou"):
        assign_targets(anchors, klass, gt, torch.tensor([0, 0, 0]), pos_iou=0.2, neg_iou=0.4)


# ------------------------------------------------------------------------------ two-stage detector

def test_two_stage_shapes_and_bad_input(scenes):
    train, _ = scenes
    stats = class_statistics(train.boxes, train.box_labels)
    bounds = scene_bounds([s.size for s in train.scenes], 0.25)
    model = TwoStageDetector(stats, bounds, 0.25, width=8)
    volume = voxelize_scene(train.points[:2], train.normals[:2], bounds, 0.25)
    objectness, deltas, features = model(volume)
    A = math.prod(model.feature_shape) * len(stats.classes) * 2
    assert objectness.shape == (2, A) and deltas.shape == (2, A, 7) and features.shape == (2, 8, *model.feature_shape)
    dets = model.detect(volume, max_detections=5)
    assert len(dets) == 2 and all(d["boxes"].shape[1:] == (7,) and len(d["boxes"]) <= 5 for d in dets)
    with pytest.raises(ValueError, match="volume must be"):
        model(volume[:, :, :-2])
    with pytest.raises(ValueError, match="even number"):
        TwoStageDetector(stats, torch.tensor([[0.0, 0.0, 0.0], [0.75, 0.5, 0.5]]), 0.25)


def test_two_stage_overfits_a_tiny_scene_set_far_above_the_trivial_baseline(scenes):
    """One room's furniture (thin wall fixtures left out): after training, the refined detections reach a
    training mAP@0.25 far above the trivial floor-tiling baseline of :mod:`coursekit.models.detection_table`."""
    train, _ = scenes
    furniture = ~torch.isin(train.box_labels[0], torch.tensor([7, 8, 10]))  # door, window, picture
    boxes, labels = [train.boxes[0][furniture]], [train.box_labels[0][furniture]]
    stats = class_statistics(boxes, labels)
    bounds = scene_bounds([train.scenes[0].size], 0.2)
    volume = voxelize_scene(train.points[:1], train.normals[:1], bounds, 0.2)
    torch.manual_seed(0)
    model = TwoStageDetector(stats, bounds, 0.2, width=16)
    history = train_two_stage(model, volume, boxes, labels, epochs=60, refine_epochs=60, generator=torch.Generator().manual_seed(0),
                              progress=False)
    assert history["rpn"][-1] < 0.5 * history["rpn"][0] and history["refine"][-1] < 0.5 * history["refine"][0]
    trivial = floor_baseline(stats, [train.scenes[0].interior], torch.Generator().manual_seed(0))

    def m_ap(d):
        ap = average_precision([x["boxes"] for x in d], [x["scores"] for x in d], [x["labels"] for x in d], boxes, labels, 0.25)
        return float(torch.nanmean(ap))

    ours, base = m_ap(model.detect(volume)), m_ap(trivial)
    assert ours > 0.5 and ours > base + 0.4, (ours, base)


# ------------------------------------------------------------------------------ instance segmentation

def test_box_frame_and_points_in_boxes_rotated_hand_case():
    box = torch.tensor([[1.0, 0.5, 2.0, 2.0, 1.0, 0.5, math.pi / 2]])  # local x (width 2) along world -z
    points = torch.tensor([[1.0, 0.5, 1.1], [1.0, 0.5, 2.9], [1.8, 0.5, 2.0], [1.2, 0.5, 2.0], [1.0, 1.1, 2.0]])
    local = box_frame(points, box)
    assert torch.allclose(local[0, 0], torch.tensor([0.45, 0.0, 0.0]), atol=1e-6)  # world -z = local +x
    assert points_in_boxes(points, box).tolist() == [[True, True, False, True, False]]
    assert points_in_boxes(points, box, context=2.0)[0, 4]  # inside the doubled box
    with pytest.raises(ValueError, match="points must be"):
        box_frame(points[None], box)


def test_gt_masks_and_boxes_as_masks(scenes):
    train, _ = scenes
    scene = train.scenes[0]
    gt = gt_instance_masks(train.instance[0], scene.box_instances)
    assert gt.shape == (len(scene.boxes), train.points.shape[1]) and (gt.sum(0) <= 1).all()
    inst = instances_from_boxes(train.points[0], train.normals[0], {"boxes": scene.boxes, "scores": torch.ones(len(scene.boxes)),
                                                                    "labels": scene.box_labels})
    assert torch.equal(inst["masks"], points_in_boxes(train.points[0], scene.boxes))
    # every ground-truth instance lies inside its box, up to the 1 mm offset of the sampled points off the surface
    inside = (points_in_boxes(train.points[0], scene.boxes, context=1.1) & gt).sum(1).float() / gt.sum(1).clamp(min=1)
    assert (inside[gt.sum(1) > 0] > 0.95).all()


def test_box_mask_head_beats_box_as_mask(scenes):
    """On the training rooms, the learned fg/bg masks of the ground-truth boxes are closer to the instances
    (mean mask IoU) than "box = instance", with the exact box or the box enlarged by the head's context."""
    train, _ = scenes
    torch.manual_seed(0)
    net = BoxMaskNet(32)
    instances = [s.box_instances for s in train.scenes]
    history = train_box_masks(net, train.points, train.normals, train.instance, train.boxes, instances, epochs=30, copies=1,
                              max_points=256, lr=1e-2, generator=torch.Generator().manual_seed(0), progress=False)
    assert history[-1] < history[0]
    learned, boxed = [], []
    for i, s in enumerate(train.scenes):
        det = {"boxes": s.boxes, "scores": torch.ones(len(s.boxes)), "labels": s.box_labels}
        gt = gt_instance_masks(train.instance[i], s.box_instances)
        keep = gt.sum(1) > 0
        learned.append(mask_iou(instances_from_boxes(train.points[i], train.normals[i], det, net)["masks"], gt).diagonal()[keep])
        for context in (1.0, 1.2):
            boxed.append(mask_iou(points_in_boxes(train.points[i], s.boxes, context=context), gt).diagonal()[keep])
    assert torch.cat(learned).mean() > torch.cat(boxed).mean() + 0.08


# ------------------------------------------------------------------------------ volumetric R-CNN

def test_render_scan_points_lie_on_the_scene(scenes):
    train, _ = scenes
    scene = train.scenes[0]
    scan = render_scan(scene, n_views=3, image_size=(24, 32))
    assert scan["depth"].shape == (3, 24, 32) and scan["points"].shape[0] == scan["semantic"].shape[0] > 100
    assert scan["points"].shape[0] <= 3 * 24 * 32
    distance = scene.sdf(scan["points"]).abs()  # the mesh's chords of round parts sit mm off the analytic SDF
    assert distance.max() < 1e-2 and distance.median() < 1e-4
    # labels come from the rendered faces: the floor's points are at y = 0
    floor = scan["semantic"] == 1
    assert floor.any() and scan["points"][floor, 1].abs().max() < 1e-3


def test_tsdf_features_hand_case_and_detector_shapes(scenes):
    tsdf = torch.tensor([[[1.0, 0.5, -0.5, 1.0]]])
    weight = torch.tensor([[[0.0, 2.0, 1.0, 1.0]]])
    f = tsdf_features(tsdf, weight)
    assert torch.allclose(f, torch.tensor([[[[0.0, 0.5, -0.5, 1.0]]], [[[0.0, 1, 1, 1]]], [[[0.0, 0.5, 0.5, 0.0]]]]))
    with pytest.raises(ValueError, match="tsdf and weight"):
        tsdf_features(tsdf, weight[..., :2])
    train, _ = scenes
    stats = class_statistics(train.boxes, train.box_labels)
    bounds = scene_bounds([s.size for s in train.scenes], 0.25)
    model = VolumetricRCNN(stats, bounds, 0.25, width=8)
    objectness, _, _ = model(torch.zeros(1, 3, *grid_shape(bounds, 0.25)))
    assert objectness.shape == (1, len(model.anchors))


# ------------------------------------------------------------------------------ baseline and bad inputs

def test_floor_baseline_tiles_the_floor_at_class_mean_size():
    stats = _stats([[1.0, 0.8, 0.5]], classes=[4])
    region = torch.tensor([[-2.0, 0.0, -1.0], [2.0, 2.5, 1.0]])
    out = floor_baseline(stats, [region], torch.Generator().manual_seed(0))[0]
    assert len(out["boxes"]) == 4 * 4 and (out["labels"] == 4).all()
    assert torch.allclose(out["boxes"][:, 3:6], torch.tensor([1.0, 0.8, 0.5]).expand(16, 3))
    assert torch.allclose(out["boxes"][:, 1], torch.full((16,), 0.4))  # the class's mean centre height


def test_bad_inputs_raise_clearly():
    with pytest.raises(ValueError, match="at least one room"):
        scene_bounds([], 0.2)
    with pytest.raises(ValueError, match="stride"):
        enumerate_windows([[0, 0, 0], [1, 1, 1]], torch.ones(1, 3), 0.0)
    with pytest.raises(ValueError, match="bounds"):
        window_counts([[0, 0, 0], [-1, 1, 1]], torch.ones(1, 3), 0.1)
    with pytest.raises(ValueError, match="normals"):
        voxelize_scene(torch.zeros(1, 5, 3), torch.zeros(1, 4, 3), [[0, 0, 0], [1, 1, 1]], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        voxelize_scene(torch.full((1, 5, 3), float("nan")), torch.zeros(1, 5, 3), [[0, 0, 0], [1, 1, 1]], 0.5)
    with pytest.raises(ValueError, match="boxes must be"):
        pool_box_grid(torch.zeros(1, 1, 2, 2, 2), [[0, 0, 0], [1, 1, 1]], torch.zeros(3, 6), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one box"):
        class_statistics([], [])


@pytest.mark.slow
def test_detection_table_fast_profile(monkeypatch):
    """The whole table in the fast profile: every model and threshold present, the two-stage detector above the trivial baseline."""
    from coursekit import runtime
    from coursekit.models.detection_table import THRESHOLDS, detection_table

    monkeypatch.setattr(runtime, "_override", "fast")
    result = detection_table(progress=False)
    assert set(result.box_ap) == {"trivial: class mean size on the floor", "sliding shapes", "two-stage: proposals only",
                                  "two-stage: refined", "volumetric R-CNN (TSDF)"}
    for table in (result.box_ap, result.mask_ap):
        for per in table.values():
            assert set(per) == set(THRESHOLDS) and all(len(v) == len(result.class_names) for v in per.values())
    assert result.sliding.windows > 0 and "| **mean** |" in result.markdown()
    assert result.mean("box", "sliding shapes", 0.25) > result.mean("box", "trivial: class mean size on the floor", 0.25)
