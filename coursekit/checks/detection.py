"""Notebook 04's detection exercises: box encoding, oriented 3D IoU, NMS and one TSDF update."""

from __future__ import annotations

import math

import torch

from ..geometry.boxes import box_iou_3d, box_iou_bev, encode_boxes, nms_3d
from ..geometry.camera import fov_intrinsics, look_at, project
from ..geometry.tsdf import tsdf_update, tsdf_voxel_centers
from .core import Case, Exercise, Mistake

# ------------------------------------------------------------------ encode


def _boxes_and_anchors(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    anchors = torch.rand(n, 7, generator=gen, dtype=torch.float64)
    anchors[:, :3] = anchors[:, :3] * 4 - 2
    anchors[:, 3:6] = anchors[:, 3:6] * torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64) + torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64)
    anchors[:, 6] = (anchors[:, 6] - 0.5) * 3
    boxes = anchors.clone()
    boxes[:, :3] += torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.4
    boxes[:, 3:6] *= torch.exp(torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.3)
    boxes[:, 6] += torch.randn(n, generator=gen, dtype=torch.float64) * 0.5
    return boxes, anchors


def _encode_cases(gen: torch.Generator) -> list[Case]:
    return [Case(f"{n} boxes with anchors of unequal width, height and depth", _boxes_and_anchors(gen, n)) for n in (5, 1, 12)]


def _encode_no_log(boxes, anchors):
    d = encode_boxes(boxes, anchors)
    return torch.cat([d[:, :3], boxes[:, 3:6] / anchors[:, 3:6], d[:, 6:]], -1)


def _encode_per_axis(boxes, anchors):
    d = encode_boxes(boxes, anchors)
    return torch.cat([(boxes[:, :3] - anchors[:, :3]) / anchors[:, 3:6], d[:, 3:]], -1)


def _encode_flipped(boxes, anchors):
    return -encode_boxes(boxes, anchors)  # (anchor - box) / scale, ln(s_anchor / s), yaw_anchor - yaw


def _encode_yaw_kept(boxes, anchors):
    d = encode_boxes(boxes, anchors)
    return torch.cat([d[:, :6], boxes[:, 6:]], -1)


# ------------------------------------------------------------------ IoU


def _iou_cases(gen: torch.Generator) -> list[Case]:
    def pair(offset, yaw_a, yaw_b, dy):
        a = torch.tensor([0.2, 0.5, -0.1, 1.6, 1.0, 0.7, yaw_a], dtype=torch.float64)
        b = torch.tensor([0.2 + offset[0], 0.5 + dy, -0.1 + offset[1], 1.1, 1.3, 0.9, yaw_b], dtype=torch.float64)
        return a, b

    jitter = lambda: float(torch.rand((), generator=gen, dtype=torch.float64)) * 0.2
    cases = [
        Case("two rotated boxes, overlapping partly, at different heights", pair((0.3 + jitter(), 0.2), 0.4, -0.7 + jitter(), 0.4)),
        Case("a box and its copy turned by 45 degrees", pair((0.0, 0.0), 0.3, 0.3 + math.pi / 4, 0.0)),
        Case("boxes far apart", pair((5.0, 1.0), 0.0, 1.0, 0.0)),
        Case("one box above the other (no height overlap)", pair((0.1, 0.0), 0.2, 0.5, 1.2 + jitter())),
    ]
    return cases


def _iou_3d(a, b):
    return box_iou_3d(a[None], b[None])[0, 0]


def _iou_axis_aligned(a, b):
    zero = torch.tensor([1, 1, 1, 1, 1, 1, 0.0], dtype=a.dtype)
    return _iou_3d(a * zero, b * zero)


def _iou_bev(a, b):
    return box_iou_bev(a[None], b[None])[0, 0]


def _iou_over_sum(a, b):
    iou = _iou_3d(a, b)
    return iou / (1 + iou)  # I / (Va + Vb) when IoU = I / (Va + Vb - I)


# ------------------------------------------------------------------ NMS


def _nms_cases(gen: torch.Generator) -> list[Case]:
    chain = torch.tensor([[x, 0.5, 0.0, 1.0, 1.0, 1.0, 0.0] for x in (0.0, 0.6, 1.2)], dtype=torch.float64)
    many = torch.rand(30, 7, generator=gen, dtype=torch.float64)
    many[:, :3] = many[:, :3] * 1.5
    many[:, 3:6] = many[:, 3:6] + 0.5
    many[:, 6] = many[:, 6] * math.pi
    return [
        Case("a chain of 3 boxes, scores increasing with the index", (chain, torch.tensor([0.7, 0.8, 0.9], dtype=torch.float64), 0.2)),
        Case("30 rotated boxes in clusters", (many, torch.rand(30, generator=gen, dtype=torch.float64), 0.3)),
        Case("30 rotated boxes, strict threshold", (many, torch.rand(30, generator=gen, dtype=torch.float64), 0.05)),
    ]


def _nms_unsorted(boxes, scores, thr):
    return nms_3d(boxes, torch.linspace(1, 0, boxes.shape[0], dtype=scores.dtype), thr)


def _nms_not_greedy(boxes, scores, thr):
    iou = box_iou_3d(boxes, boxes)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    keep = [i for r, i in enumerate(order) if all(iou[i, j] <= thr for j in order[:r])]
    return torch.tensor(keep, dtype=torch.int64)


# ------------------------------------------------------------------ TSDF


def _tsdf_cases(gen: torch.Generator) -> list[Case]:
    bounds = torch.tensor([[-0.5, -0.4, -0.3], [0.5, 0.4, 0.3]], dtype=torch.float64)
    cases = []
    for label, shape, (H, W), eye in (
        ("a 6x5x4 volume seen obliquely, 12x16 depth map with holes", (6, 5, 4), (12, 16), (0.4, 0.6, -2.0)),
        ("a 4x7x9 volume, 10x8 depth map with holes", (4, 7, 9), (10, 8), (-1.5, 0.3, 1.2)),
    ):
        R, t = look_at(torch.tensor([eye], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
        K = fov_intrinsics(55.0, (H, W), dtype=torch.float64)
        distance = math.sqrt(sum(e * e for e in eye))
        depth = distance - 0.3 + 0.6 * torch.rand(H, W, generator=gen, dtype=torch.float64)
        depth[torch.rand(H, W, generator=gen) < 0.15] = 0.0
        weight = torch.randint(0, 4, shape, generator=gen).double()
        tsdf = torch.where(weight > 0, torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1, torch.ones(shape, dtype=torch.float64))
        cases.append(Case(label, (tsdf, weight, depth, K, R[0], t[0], bounds, 0.25)))
    return cases


def _tsdf_parts(shape, depth, K, R, t, bounds):
    """Projective distance ``eta`` of every voxel and the mask of voxels with a valid measurement."""
    centres = tsdf_voxel_centers(bounds, shape, dtype=depth.dtype).reshape(1, -1, 3)
    uv, z = project(centres, K[None], R[None], t[None])
    col, row = uv[0, :, 0].floor(), uv[0, :, 1].floor()
    ok = (z[0] > 0) & (col >= 0) & (col < depth.shape[1]) & (row >= 0) & (row < depth.shape[0])
    measured = torch.zeros_like(z[0])
    measured[ok] = depth[row[ok].long(), col[ok].long()]
    ok &= measured > 0
    return (measured - z[0]).reshape(shape), ok.reshape(shape)


def _tsdf_no_truncation(tsdf, weight, depth, K, R, t, bounds, truncation):
    eta, ok = _tsdf_parts(tuple(tsdf.shape), depth, K, R, t, bounds)
    new_weight = weight + ok.double()
    return torch.where(ok, (weight * tsdf + eta / truncation) / new_weight.clamp(min=1), tsdf), new_weight


def _tsdf_overwrite(tsdf, weight, depth, K, R, t, bounds, truncation):
    eta, ok = _tsdf_parts(tuple(tsdf.shape), depth, K, R, t, bounds)
    update = ok & (eta >= -truncation)
    return torch.where(update, torch.clamp(eta / truncation, max=1.0), tsdf), torch.where(update, torch.ones_like(weight), weight)


def _tsdf_sign_flipped(tsdf, weight, depth, K, R, t, bounds, truncation):
    eta, ok = _tsdf_parts(tuple(tsdf.shape), depth, K, R, t, bounds)
    update = ok & (eta >= -truncation)
    new_weight = weight + update.double()
    f = torch.clamp(-eta / truncation, min=-1.0)
    return torch.where(update, (weight * tsdf + f) / new_weight.clamp(min=1), tsdf), new_weight


EXERCISES = (
    Exercise(
        name="detection.box_encode_decode",
        points=2,
        reference=encode_boxes,
        make_cases=_encode_cases,
        forbidden=("encode_boxes", "decode_boxes"),
        what="box deltas",
        mistakes=(
            Mistake("the size deltas need a logarithm: Δs = ln(s / s_anchor), not the plain ratio", _encode_no_log),
            Mistake("you divided the centre offsets by the anchor's size along each axis; divide x and z by the anchor's "
                    "ground-plane diagonal sqrt(sx² + sz²) and y by its height", _encode_per_axis),
            Mistake("the sign is flipped: encode box minus anchor (μ - μ_anchor), ln(s / s_anchor) and yaw - yaw_anchor", _encode_flipped),
            Mistake("subtract the anchor's yaw: Δyaw = yaw - yaw_anchor", _encode_yaw_kept),
        ),
    ),
    Exercise(
        name="detection.iou_3d",
        points=2,
        reference=_iou_3d,
        make_cases=_iou_cases,
        forbidden=("box_iou_3d", "box_iou_bev"),
        what="3D IoU",
        mistakes=(
            Mistake("your IoU ignores the yaw (axis-aligned boxes): rotate the footprints by each box's yaw before "
                    "intersecting them", _iou_axis_aligned),
            Mistake("you computed the bird's-eye-view IoU: multiply the footprint intersection by the overlap of the "
                    "height intervals, and use volumes in the union", _iou_bev),
            Mistake("you divided by the sum of the volumes; the union is V_a + V_b - intersection", _iou_over_sum),
        ),
    ),
    Exercise(
        name="detection.nms",
        points=2,
        reference=nms_3d,
        make_cases=_nms_cases,
        forbidden=("nms_3d", "nms"),
        what="kept indices",
        mistakes=(
            Mistake("visit the boxes by decreasing score (argsort the scores, descending), not in index order", _nms_unsorted),
            Mistake("a suppressed box must not suppress others: compare each box only with the boxes you already KEPT", _nms_not_greedy),
        ),
    ),
    Exercise(
        name="detection.tsdf_update",
        points=2,
        reference=tsdf_update,
        make_cases=_tsdf_cases,
        forbidden=("tsdf_update", "tsdf_fuse"),
        what="(tsdf, weight)",
        mistakes=(
            Mistake("truncate: f = min(1, η/μ), and skip voxels more than μ behind the measured surface (η < -μ)", _tsdf_no_truncation),
            Mistake("average, do not overwrite: F ← (W F + f) / (W + 1) and W ← W + 1", _tsdf_overwrite),
            Mistake("the sign is flipped: η = measured depth - voxel depth is positive in front of the surface "
                    "(free space) and negative behind it", _tsdf_sign_flipped),
        ),
    ),
)
