"""Oriented 3D boxes: corners, anchor encoding, exact 3D IoU and NMS (coursekit.geometry.boxes)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.data.world.scenes import box_corners as world_box_corners
from coursekit.geometry.boxes import (_box_iou_3d_naive, box_corners, box_iou_3d, box_iou_bev, decode_boxes, encode_boxes,
                                      footprints, nms_3d)


def random_boxes(n, seed=0, spread=3.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    b = torch.rand(n, 7, generator=gen, dtype=dtype)
    b[:, :3] = b[:, :3] * spread
    b[:, 3:6] = b[:, 3:6] * 1.5 + 0.2
    b[:, 6] = (b[:, 6] - 0.5) * 2 * math.pi
    return b


def box(cx=0.0, cy=0.0, cz=0.0, sx=1.0, sy=1.0, sz=1.0, yaw=0.0):
    return torch.tensor([[cx, cy, cz, sx, sy, sz, yaw]], dtype=torch.float64)


def monte_carlo_iou(a, b, n=400_000, seed=0):
    """Fraction estimate of |a ∩ b| / |a ∪ b| by sampling points uniformly in ``a``'s and ``b``'s bounding cube."""
    gen = torch.Generator().manual_seed(seed)
    corners = torch.cat([box_corners(a), box_corners(b)], 1)[0]
    lo, hi = corners.min(0).values, corners.max(0).values
    p = lo + (hi - lo) * torch.rand(n, 3, generator=gen, dtype=torch.float64)

    def inside(bx):
        c, s = math.cos(bx[0, 6]), math.sin(bx[0, 6])
        d = p - bx[0, :3]
        local = torch.stack([c * d[:, 0] - s * d[:, 2], d[:, 1], s * d[:, 0] + c * d[:, 2]], -1)  # R_y(yaw)^T d
        return (local.abs() <= bx[0, 3:6] / 2).all(-1)

    ia, ib = inside(a), inside(b)
    return float((ia & ib).sum() / (ia | ib).sum())


# ----------------------------------------------------------------------------- corners

def test_corners_match_the_world_scenes_convention():
    b = random_boxes(20)
    assert torch.allclose(box_corners(b), world_box_corners(b))


def test_footprint_is_counter_clockwise_with_the_box_area():
    b = random_boxes(30)
    f = footprints(b)
    nxt = f.roll(-1, 1)
    area = 0.5 * (f[..., 0] * nxt[..., 1] - nxt[..., 0] * f[..., 1]).sum(1)
    assert torch.allclose(area, b[:, 3] * b[:, 5])


def test_yaw_quarter_turn_sends_local_z_to_world_x():
    c = box_corners(box(sx=2.0, sy=1.0, sz=4.0, yaw=math.pi / 2))[0]
    # depth (local z, 4) now lies along world x, width (local x, 2) along world z
    assert torch.allclose(c[:, 0].max() - c[:, 0].min(), torch.tensor(4.0, dtype=torch.float64))
    assert torch.allclose(c[:, 2].max() - c[:, 2].min(), torch.tensor(2.0, dtype=torch.float64))


def test_bad_boxes_raise():
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        box_corners(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="NaN"):
        box_iou_3d(torch.full((1, 7), float("nan")), box())
    with pytest.raises(ValueError, match="negative sizes"):
        box_iou_3d(box(sx=-1.0), box())


# ----------------------------------------------------------------------------- encoding

finite = st.floats(-5, 5, allow_nan=False)
positive = st.floats(0.05, 5, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite, positive, positive, positive, finite), min_size=2, max_size=2))
def test_decode_inverts_encode(pair):
    boxes, anchors = torch.tensor([pair[0]], dtype=torch.float64), torch.tensor([pair[1]], dtype=torch.float64)
    assert torch.allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, rtol=1e-9, atol=1e-9)
    deltas = encode_boxes(boxes, anchors)
    assert torch.allclose(encode_boxes(decode_boxes(deltas, anchors), anchors), deltas, rtol=1e-9, atol=1e-9)


def test_encoding_hand_computed():
    anchor = box(1.0, 0.5, 2.0, sx=3.0, sy=2.0, sz=4.0, yaw=0.25)  # ground diagonal 5
    target = box(2.0, 1.5, 0.0, sx=6.0, sy=1.0, sz=4.0, yaw=1.0)
    want = torch.tensor([[1 / 5, 1 / 2, -2 / 5, math.log(2), math.log(0.5), 0.0, 0.75]], dtype=torch.float64)
    assert torch.allclose(encode_boxes(target, anchor), want)
    assert torch.allclose(encode_boxes(anchor, anchor), torch.zeros(1, 7, dtype=torch.float64))


def test_encoding_rejects_zero_sizes():
    with pytest.raises(ValueError, match="positive"):
        encode_boxes(box(sx=0.0), box())


# ----------------------------------------------------------------------------- IoU

def test_identical_boxes_have_iou_one_and_disjoint_zero():
    b = random_boxes(15)
    assert torch.allclose(box_iou_3d(b, b).diagonal(), torch.ones(15, dtype=torch.float64))
    far = b.clone()
    far[:, 0] += 100
    assert (box_iou_3d(b, far) == 0).all()
    above = b.clone()
    above[:, 1] += b[:, 4] + 0.01  # same footprint, stacked on top: no height overlap
    assert (box_iou_3d(b, above).diagonal() == 0).all()
    assert torch.allclose(box_iou_bev(b, above).diagonal(), torch.ones(15, dtype=torch.float64))


def test_axis_aligned_closed_form():
    a = box(0, 0, 0, 2, 2, 2)
    b = box(1, 0.5, 0.5, 2, 3, 1)
    # overlap x [0,1] (1), y [-1,1] (2), z [0,1] (1) -> 2; volumes 8 and 6
    assert box_iou_3d(a, b).item() == pytest.approx(2 / (8 + 6 - 2), rel=1e-12)
    # a yaw of pi/2 swaps the footprint's axes: the same as sizes (sz, sy, sx)
    b_rot = box(1, 0.5, 0.5, 1, 3, 2, yaw=math.pi / 2)
    assert box_iou_3d(a, b_rot).item() == pytest.approx(2 / 12, rel=1e-9)


def test_rotated_square_octagon():
    """Unit cube vs itself turned 45 degrees: the footprints meet in a regular octagon of area 2(sqrt2 - 1)."""
    inter = 2 * (math.sqrt(2) - 1)
    assert box_iou_3d(box(), box(yaw=math.pi / 4)).item() == pytest.approx(inter / (2 - inter), rel=1e-12)
    # the axis-aligned answer (ignoring yaw) would be 1: the test can fail
    assert box_iou_3d(box(), box(yaw=math.pi / 4)).item() < 0.75


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_monte_carlo(seed):
    a, b = random_boxes(1, seed, spread=0.5), random_boxes(1, seed + 100, spread=0.5)
    exact = box_iou_3d(a, b).item()
    assert exact > 0.02
    assert exact == pytest.approx(monte_carlo_iou(a, b, seed=seed), abs=0.01)


def test_matches_naive_per_pair_version_and_is_symmetric():
    a, b = random_boxes(40, 4), random_boxes(30, 5)
    fast = box_iou_3d(a, b)
    assert (fast > 0).sum() > 50
    assert torch.allclose(fast, _box_iou_3d_naive(a, b), atol=1e-12)
    assert torch.allclose(fast, box_iou_3d(b, a).T, atol=1e-12)
    assert ((fast >= 0) & (fast <= 1)).all()


def test_dtype_and_empty_inputs():
    a = random_boxes(5).float()
    assert box_iou_3d(a, a).dtype == torch.float32
    assert box_iou_3d(a, torch.zeros(0, 7)).shape == (5, 0)


def test_translation_and_joint_rotation_invariance():
    a, b = random_boxes(8, 6, spread=1.0), random_boxes(8, 7, spread=1.0)
    shift = torch.tensor([3.0, -1.0, 2.0, 0, 0, 0, 0.7], dtype=torch.float64)

    def turn(x, angle):  # rotate the whole scene about +y by angle
        c, s = math.cos(angle), math.sin(angle)
        out = x.clone()
        out[:, 0], out[:, 2] = c * x[:, 0] + s * x[:, 2], -s * x[:, 0] + c * x[:, 2]
        out[:, 6] = x[:, 6] + angle
        return out

    moved = box_iou_3d(turn(a, 0.7) + shift * torch.tensor([1, 1, 1, 0, 0, 0, 0]), turn(b, 0.7) + shift * torch.tensor([1, 1, 1, 0, 0, 0, 0]))
    assert torch.allclose(moved, box_iou_3d(a, b), atol=1e-10)


# ----------------------------------------------------------------------------- NMS

def brute_force_nms(boxes, scores, thr):
    iou = _box_iou_3d_naive(boxes, boxes)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        if all(iou[i, k] <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("thr", [0.05, 0.2, 0.4])
def test_nms_matches_brute_force(thr):
    b = random_boxes(60, 8, spread=1.0)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    keep = nms_3d(b, scores, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == brute_force_nms(b, scores, thr)
    assert 1 < len(keep) < 60


def test_nms_suppressed_boxes_do_not_suppress():
    """A chain a-b-c where b overlaps both but a and c do not overlap: greedy keeps a and c."""
    boxes = torch.cat([box(0.0), box(0.6), box(1.2)])
    keep = nms_3d(boxes, torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64), 0.2)
    assert keep.tolist() == [0, 2]
    keep = nms_3d(boxes, torch.tensor([0.7, 0.8, 0.9], dtype=torch.float64), 0.2)
    assert keep.tolist() == [2, 0]


def test_nms_threshold_is_strict():
    boxes = torch.cat([box(0.0), box(0.5)])  # IoU exactly 1/3
    scores = torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert nms_3d(boxes, scores, 1 / 3 + 1e-9).tolist() == [0, 1]
    assert nms_3d(boxes, scores, 1 / 3 - 1e-9).tolist() == [0]


def test_world_scene_boxes_do_not_overlap():
    """The procedural rooms place furniture without overlap: IoU 1 with itself, 0 with every other box."""
    from coursekit.data.world.scenes import make_scene

    boxes = make_scene(0).boxes
    iou = box_iou_3d(boxes, boxes)
    assert len(boxes) >= 4
    assert torch.allclose(iou, torch.eye(len(boxes)), atol=1e-6)


def test_gradcheck_encode_decode_and_iou():
    boxes, anchors = random_boxes(4, 10).requires_grad_(), random_boxes(4, 11).requires_grad_()
    assert torch.autograd.gradcheck(encode_boxes, (boxes, anchors))
    assert torch.autograd.gradcheck(decode_boxes, (torch.randn(4, 7, dtype=torch.float64, requires_grad=True) * 0.3, anchors))
    a = box(0.1, 0.2, -0.1, 1.3, 1.0, 0.8, 0.3).requires_grad_()
    b = box(0.5, 0.4, 0.2, 1.0, 1.2, 1.1, -0.5).requires_grad_()
    assert 0 < box_iou_3d(a, b).item() < 1
    assert torch.autograd.gradcheck(box_iou_3d, (a, b))
