r"""Oriented 3D boxes: corners, anchor encoding, exact 3D IoU and non-maximum suppression.

Convention (the procedural world's, :mod:`coursekit.data.world.scenes`):

* A box is ``(7,)`` = ``(cx, cy, cz, sx, sy, sz, yaw)``: centre, the sizes along the box's
  own ``x`` (width), ``y`` (height, the world's up axis) and ``z`` (depth), and the yaw
  :math:`\theta` about ``+y``. The box's axes in the world are the columns of
  :math:`R_y(\theta) = \begin{pmatrix}\cos\theta&0&\sin\theta\\0&1&0\\-\sin\theta&0&\cos\theta\end{pmatrix}`,
  so boxes are *upright* (SUN RGB-D style): only the ground-plane footprint rotates.
* Batches of boxes are ``(N, 7)``; every function returns the input's dtype.
* The 3D IoU is exact: the footprints are intersected in the ground plane ``(x, z)`` by
  Sutherland-Hodgman clipping (both rectangles are convex) and the area is multiplied by the
  overlap of the height intervals.

.. math::

    \mathrm{IoU}(a, b) = \frac{|a \cap b|}{|a| + |b| - |a \cap b|}, \qquad
    |a \cap b| = \mathrm{area}(F_a \cap F_b)\cdot
    \max\!\big(0, \min(y^{top}_a, y^{top}_b) - \max(y^{bot}_a, y^{bot}_b)\big)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

__all__ = ["box_corners", "footprints", "encode_boxes", "decode_boxes", "box_iou_3d", "box_iou_bev", "nms_3d"]


def _check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[-1] != 7:
        raise ValueError(f"{name} must have shape (N, 7) = (cx, cy, cz, sx, sy, sz, yaw), got {tuple(boxes.shape)}")
    if not boxes.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got {boxes.dtype}")
    if torch.isnan(boxes).any():
        raise ValueError(f"{name} contains NaN")
    if (boxes[:, 3:6] < 0).any():
        raise ValueError(f"{name} has negative sizes (columns 3:6)")


def footprints(boxes: torch.Tensor) -> torch.Tensor:
    r"""Ground-plane rectangles of upright boxes, counter-clockwise in ``(x, z)``.

    .. math::  F = (c_x, c_z) + \begin{pmatrix}\cos\theta & \sin\theta\\ -\sin\theta & \cos\theta\end{pmatrix}
               \begin{pmatrix}\pm s_x/2\\ \pm s_z/2\end{pmatrix}

    Args:
        boxes: ``(N, 7)`` boxes.

    Returns:
        ``(N, 4, 2)`` corners ``(x, z)`` in counter-clockwise order (positive shoelace area).
    """
    _check_boxes(boxes)
    signs = boxes.new_tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    local = signs * boxes[:, None, [3, 5]]
    c, s = boxes[:, 6].cos()[:, None], boxes[:, 6].sin()[:, None]
    x = c * local[..., 0] + s * local[..., 1]
    z = -s * local[..., 0] + c * local[..., 1]
    return torch.stack([x, z], -1) + boxes[:, None, [0, 2]]


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    r"""The 8 corners of oriented boxes.

    .. math::  c + R_y(\theta)\,(\pm s_x, \pm s_y, \pm s_z)/2

    Args:
        boxes: ``(N, 7)`` boxes.

    Returns:
        ``(N, 8, 3)`` corners; corner ``k`` has signs ``(x, y, z)`` from the binary digits of
        ``k`` (``-`` for 0), the order of :func:`coursekit.data.world.scenes.box_corners`.
    """
    _check_boxes(boxes)
    signs = boxes.new_tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    local = signs * boxes[:, None, 3:6]
    c, s = boxes[:, 6].cos()[:, None], boxes[:, 6].sin()[:, None]
    x = c * local[..., 0] + s * local[..., 2]
    z = -s * local[..., 0] + c * local[..., 2]
    return torch.stack([x, local[..., 1], z], -1) + boxes[:, None, :3]


# ------------------------------------------------------------------------------- encoding

def _anchor_scales(anchors: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` divisors of the centre offsets: ground diagonal for x and z, height for y."""
    diagonal = torch.sqrt(anchors[:, 3] ** 2 + anchors[:, 5] ** 2)
    return torch.stack([diagonal, anchors[:, 4], diagonal], -1)


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    r"""Regression targets of ``boxes`` relative to their ``anchors`` (the slide's parameterisation).

    .. math::

        \Delta_x = \frac{\mu_x - \mu_x^{a}}{d^{a}},\quad
        \Delta_y = \frac{\mu_y - \mu_y^{a}}{s_y^{a}},\quad
        \Delta_z = \frac{\mu_z - \mu_z^{a}}{d^{a}},\qquad d^{a} = \sqrt{(s_x^{a})^2 + (s_z^{a})^2}

        \Delta_{s} = \ln\frac{s}{s^{a}}\ \ (s \in \{s_x, s_y, s_z\}),\qquad
        \Delta_\theta = \theta - \theta^{a}

    The centre offset is normalised by the anchor's ground-plane diagonal :math:`\phi^a = d^a`
    horizontally and by its height vertically: VoxelNet (Zhou & Tuzel, CVPR 2018, eq. 1) and
    SECOND (Yan et al., Sensors 2018), with their up axis ``z`` renamed to our ``y``. The yaw
    difference is not wrapped, so :func:`decode_boxes` inverts this exactly.

    Args:
        boxes: ``(N, 7)`` target boxes.
        anchors: ``(N, 7)`` anchors, one per box; sizes must be positive.

    Returns:
        ``(N, 7)`` deltas ``(Δx, Δy, Δz, Δsx, Δsy, Δsz, Δyaw)``.
    """
    _check_boxes(boxes)
    _check_boxes(anchors, "anchors")
    if boxes.shape != anchors.shape:
        raise ValueError(f"boxes and anchors must have the same shape, got {tuple(boxes.shape)} and {tuple(anchors.shape)}")
    if (anchors[:, 3:6] <= 0).any() or (boxes[:, 3:6] <= 0).any():
        raise ValueError("box and anchor sizes must be positive to take their logarithm")
    centre = (boxes[:, :3] - anchors[:, :3]) / _anchor_scales(anchors)
    size = torch.log(boxes[:, 3:6] / anchors[:, 3:6])
    return torch.cat([centre, size, (boxes[:, 6] - anchors[:, 6])[:, None]], -1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    r"""Boxes from regression ``deltas`` and their ``anchors``: the inverse of :func:`encode_boxes`.

    .. math::  \mu = \mu^{a} + \Delta_\mu\,\phi^{a},\qquad s = s^{a} e^{\Delta_s},\qquad \theta = \theta^{a} + \Delta_\theta

    Args:
        deltas: ``(N, 7)`` as returned by :func:`encode_boxes`.
        anchors: ``(N, 7)`` anchors.

    Returns:
        ``(N, 7)`` boxes.
    """
    _check_boxes(anchors, "anchors")
    if not isinstance(deltas, torch.Tensor) or deltas.shape != anchors.shape:
        raise ValueError(f"deltas must be a tensor of the anchors' shape {tuple(anchors.shape)}")
    centre = anchors[:, :3] + deltas[:, :3] * _anchor_scales(anchors)
    size = anchors[:, 3:6] * torch.exp(deltas[:, 3:6])
    return torch.cat([centre, size, (anchors[:, 6] + deltas[:, 6])[:, None]], -1)


# ------------------------------------------------------------------------------- IoU

def _take(poly: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``poly[p, index[p, k]]`` for padded polygons ``(P, V, 2)`` and indices ``(P, V)``."""
    return torch.gather(poly, 1, index.expand(poly.shape[0], -1)[..., None].expand(-1, -1, 2))


def _clip_convex(subject: torch.Tensor, count: torch.Tensor, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sutherland-Hodgman, vectorised over pairs: clip polygons by counter-clockwise convex ``clip``.

    ``subject (P, V, 2)`` holds ``count (P,)`` valid vertices each (the rest is padding);
    ``clip (P, E, 2)``. Each edge S->E of the polygon emits the crossing point if it crosses the
    clip line, then E if E is inside; the kept points are compacted to the front of each row.
    """
    P = subject.shape[0]
    for e in range(clip.shape[1]):
        a, b = clip[:, e], clip[:, (e + 1) % clip.shape[1]]
        edge = (b - a)[:, None]
        V = subject.shape[1]
        slot = torch.arange(V, device=subject.device)[None]
        valid = slot < count[:, None]
        nxt = _take(subject, (slot + 1) % count.clamp(min=1)[:, None])
        # signed distance (times |edge|) of each vertex: >= 0 is inside (left of the edge)
        ds = edge[..., 0] * (subject[..., 1] - a[:, None, 1]) - edge[..., 1] * (subject[..., 0] - a[:, None, 0])
        de = edge[..., 0] * (nxt[..., 1] - a[:, None, 1]) - edge[..., 1] * (nxt[..., 0] - a[:, None, 0])
        s_in, e_in = ds >= 0, de >= 0
        frac = ds / torch.where(s_in != e_in, ds - de, torch.ones_like(ds))
        crossing = subject + frac[..., None] * (nxt - subject)
        # per edge S->E: emit the crossing if the edge crosses, then E if E is inside
        points = torch.stack([crossing, nxt], 2).reshape(P, 2 * V, 2)
        keep = torch.stack([valid & (s_in != e_in), valid & e_in], 2).reshape(P, 2 * V)
        count = keep.sum(1)
        width = int(count.max()) if P else 0
        target = torch.where(keep, keep.cumsum(1) - 1, width)  # compact the kept vertices; the rest -> a spare slot
        subject = points.new_zeros(P, width + 1, 2).scatter_(1, target[..., None].expand(-1, -1, 2), points)[:, :width]
    return subject, count


def _polygon_area(poly: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    r"""Shoelace area :math:`\tfrac12\sum_i (x_i z_{i+1} - x_{i+1} z_i)` of padded polygons ``(P, V, 2)``."""
    V = poly.shape[1]
    slot = torch.arange(V, device=poly.device)[None]
    nxt = _take(poly, (slot + 1) % count.clamp(min=1)[:, None])
    cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    return 0.5 * torch.where(slot < count[:, None], cross, torch.zeros_like(cross)).sum(1)


def _footprint_intersection(a: torch.Tensor, b: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``(P,)`` area of the intersection of the footprints of paired boxes ``a, b (P, 7)``,
    ``chunk`` pairs at a time (small working set)."""
    fa, fb = footprints(a), footprints(b)
    areas = []
    for start in range(0, a.shape[0], chunk):
        sub, clip = fa[start: start + chunk], fb[start: start + chunk]
        count = torch.full((sub.shape[0],), 4, dtype=torch.int64, device=a.device)
        poly, count = _clip_convex(sub, count, clip)
        areas.append(_polygon_area(poly, count).clamp(min=0))
    return torch.cat(areas) if areas else a.new_zeros(0)


def _height_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top = torch.minimum(a[:, 1] + a[:, 4] / 2, b[:, 1] + b[:, 4] / 2)
    bottom = torch.maximum(a[:, 1] - a[:, 4] / 2, b[:, 1] - b[:, 4] / 2)
    return (top - bottom).clamp(min=0)


def _candidate_pairs(a: torch.Tensor, b: torch.Tensor, use_height: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs whose ground-plane bounding circles (and height intervals) overlap.

    A k-d tree over the centres ``(x, z)`` (``scipy.spatial.cKDTree``) finds the pairs closer than
    the two largest radii; the exact circle test then filters them, so memory stays O(pairs)."""
    a, b = a.detach(), b.detach()  # selecting pairs is not differentiable
    radius_a = 0.5 * torch.sqrt(a[:, 3] ** 2 + a[:, 5] ** 2)
    radius_b = 0.5 * torch.sqrt(b[:, 3] ** 2 + b[:, 5] ** 2)
    if a.shape[0] == 0 or b.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=a.device)
        return empty, empty
    reach = float(radius_a.max() + radius_b.max()) * (1 + 1e-9)
    tree_a = cKDTree(a[:, [0, 2]].detach().cpu().numpy())
    tree_b = cKDTree(b[:, [0, 2]].detach().cpu().numpy())
    pairs = tree_a.sparse_distance_matrix(tree_b, reach, output_type="ndarray")
    i = torch.from_numpy(pairs["i"].astype(np.int64)).to(a.device)
    j = torch.from_numpy(pairs["j"].astype(np.int64)).to(a.device)
    dist = torch.from_numpy(pairs["v"]).to(a.device, a.dtype)
    near = dist < (radius_a[i] + radius_b[j]) * (1 + 1e-9)
    if use_height:
        near &= _height_overlap(a[i], b[j]) > 0
    return i[near], j[near]


def _aligned_iou(pa: torch.Tensor, pb: torch.Tensor, use_height: bool) -> torch.Tensor:
    """``(P,)`` IoU of paired float64 boxes ``pa[k]``, ``pb[k]``."""
    inter = _footprint_intersection(pa, pb)
    if use_height:
        inter = inter * _height_overlap(pa, pb)
        size_a, size_b = pa[:, 3:6].prod(1), pb[:, 3:6].prod(1)
    else:
        size_a, size_b = pa[:, 3] * pa[:, 5], pb[:, 3] * pb[:, 5]
    union = size_a + size_b - inter
    iou = torch.where(union > 0, inter / union.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(union))
    return iou.clamp(0, 1)


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor, use_height: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rows, cols, iou)`` for the pairs that can overlap (all others have IoU 0), in float64."""
    a64, b64 = a.double(), b.double()
    i, j = _candidate_pairs(a64, b64, use_height)
    return i, j, _aligned_iou(a64[i], b64[j], use_height)


def _dense(a: torch.Tensor, b: torch.Tensor, use_height: bool) -> torch.Tensor:
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.zeros(a.shape[0], b.shape[0], dtype=dtype, device=a.device)
    i, j, iou = _pairwise_iou(a, b, use_height)
    out[i, j] = iou.to(dtype)
    return out


def box_iou_3d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Exact 3D IoU of every pair of upright oriented boxes.

    .. math::  \mathrm{IoU}(a, b) = \frac{\mathrm{area}(F_a \cap F_b)\, h_{ab}}
               {s^a_x s^a_y s^a_z + s^b_x s^b_y s^b_z - \mathrm{area}(F_a \cap F_b)\, h_{ab}}

    with :math:`F` the ground-plane footprints (intersected by Sutherland-Hodgman clipping)
    and :math:`h_{ab}` the overlap of the height intervals. Pairs whose bounding circles or
    height intervals do not overlap are skipped, so sparse scenes of many boxes are cheap;
    computed in float64. Boxes of zero volume have IoU 0 with everything.

    Args:
        a: ``(N, 7)`` boxes.
        b: ``(M, 7)`` boxes.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``.

    >>> box = torch.tensor([[0.0, 0.5, 0.0, 1.0, 1.0, 1.0, 0.0]])
    >>> round(box_iou_3d(box, box + torch.tensor([0.5, 0, 0, 0, 0, 0, 0])).item(), 4)
    0.3333
    """
    return _dense(a, b, use_height=True)


def box_iou_bev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Bird's-eye-view IoU: the IoU of the ground-plane footprints only (height ignored).

    .. math::  \mathrm{IoU}_{BEV}(a, b) = \frac{\mathrm{area}(F_a \cap F_b)}{s^a_x s^a_z + s^b_x s^b_z - \mathrm{area}(F_a \cap F_b)}

    Args:
        a: ``(N, 7)`` boxes.
        b: ``(M, 7)`` boxes.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``.
    """
    return _dense(a, b, use_height=False)


def _box_iou_3d_naive(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain per-pair Python version of :func:`box_iou_3d` (what a student writes; tests and benchmarks)."""
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64)
    fa, fb = footprints(a.double()).tolist(), footprints(b.double()).tolist()
    for i, box_a in enumerate(a.double().tolist()):
        for j, box_b in enumerate(b.double().tolist()):
            poly = fa[i]
            for e in range(4):
                (ax, az), (bx, bz) = fb[j][e], fb[j][(e + 1) % 4]
                side = [(bx - ax) * (pz - az) - (bz - az) * (px - ax) for px, pz in poly]
                clipped = []
                for k in range(len(poly)):
                    k1 = (k + 1) % len(poly)
                    if (side[k] >= 0) != (side[k1] >= 0):
                        f = side[k] / (side[k] - side[k1])
                        clipped.append((poly[k][0] + f * (poly[k1][0] - poly[k][0]), poly[k][1] + f * (poly[k1][1] - poly[k][1])))
                    if side[k1] >= 0:
                        clipped.append(poly[k1])
                poly = clipped
            area = 0.5 * sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1]))
            top = min(box_a[1] + box_a[4] / 2, box_b[1] + box_b[4] / 2)
            bottom = max(box_a[1] - box_a[4] / 2, box_b[1] - box_b[4] / 2)
            inter = max(area, 0.0) * max(top - bottom, 0.0)
            union = math.prod(box_a[3:6]) + math.prod(box_b[3:6]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


# ------------------------------------------------------------------------------- NMS

def nms_3d(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    r"""Greedy non-maximum suppression of oriented boxes by 3D IoU.

    Visit the boxes by decreasing score (ties: lower index first); keep a box unless a box
    *kept* before it overlaps it with :math:`\mathrm{IoU} > \tau` (strictly, as
    ``torchvision.ops.nms``). Suppressed boxes suppress nothing.

    Args:
        boxes: ``(N, 7)`` boxes.
        scores: ``(N,)`` confidences.
        iou_threshold: :math:`\tau`.

    Returns:
        ``(K,)`` int64 indices of the kept boxes, by decreasing score.
    """
    _check_boxes(boxes)
    if not isinstance(scores, torch.Tensor) or scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must be a tensor of shape ({boxes.shape[0]},), got {getattr(scores, 'shape', type(scores))}")
    order = torch.sort(scores, descending=True, stable=True).indices
    b64 = boxes.double()
    i, j = _candidate_pairs(b64, b64, use_height=True)
    i, j = i[i < j], j[i < j]  # IoU is symmetric: compute each pair once
    overlap = _aligned_iou(b64[i], b64[j], use_height=True) > iou_threshold
    i, j = i[overlap].cpu().numpy(), j[overlap].cpu().numpy()
    i, j = np.concatenate([i, j]), np.concatenate([j, i])
    sort = np.argsort(i, kind="stable")
    i, j = i[sort], j[sort]
    starts = np.searchsorted(i, np.arange(boxes.shape[0] + 1))
    suppressed = np.zeros(boxes.shape[0], dtype=bool)
    keep = []
    for k in order.cpu().tolist():
        if not suppressed[k]:
            keep.append(k)
            suppressed[j[starts[k]: starts[k + 1]]] = True
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)
