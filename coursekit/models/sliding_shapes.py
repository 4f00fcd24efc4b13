r"""Sliding Shapes: score every 3D window of a voxelised room with a small classifier.

The slide's first top-down detector (Song & Xiao, "Sliding Shapes for 3D Object Detection in
Depth Images", ECCV 2014): walk a box of each class's size over the *entire* space, ask a
classifier "does this window contain an object?", keep the best-scoring windows. It needs no
proposals, and that is its cost: the number of windows grows with the room's volume,

.. math::

    N_{win} = \sum_{c}\sum_{\theta \in \Theta} \prod_{a \in \{x, y, z\}}
    \Big(\Big\lfloor \frac{L_a - w_a(c, \theta)}{s} \Big\rfloor + 1\Big)

for room extent :math:`L_a`, window extent :math:`w_a` (class mean size, footprint turned by
:math:`\theta \in \{0, \pi/2\}`) and stride :math:`s` (a factor 0 when the window does not
fit). :class:`SlidingShapes` counts the windows it evaluates and the time it takes
(:class:`SlidingStats`), which is the slide's "expensive!" made measurable and the reason for
the proposals of :mod:`coursekit.models.two_stage_detector`.

This module also holds what every detector of the lecture shares:

* :func:`scene_bounds` and :func:`voxelize_scene`: rooms of different sizes on one fixed
  grid ``(B, C, D, H, W)``, axes ``(z, y, x)`` as :mod:`coursekit.geometry.voxels`, with
  ``bounds = [[x, y, z]_min, [x, y, z]_max]`` as :mod:`coursekit.geometry.tsdf`;
* :func:`pool_box_grid`: a ``g x g x g`` trilinear sample of any such volume inside oriented
  boxes (RoI pooling in 3D), the classifier's input here and the second stage's in the
  two-stage detector;
* :func:`class_statistics`: the mean box of each class over a training set (window sizes,
  anchor sizes, and the trivial baseline's boxes).

Boxes are ``(7,)`` = ``(cx, cy, cz, sx, sy, sz, yaw)`` as :mod:`coursekit.geometry.boxes`
(``+y`` up, yaw about ``+y``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.geometry.boxes import box_iou_3d, nms_3d
from coursekit.geometry.validate import check_points

__all__ = [
    "CHANNELS",
    "scene_bounds",
    "grid_shape",
    "voxelize_scene",
    "pool_box_grid",
    "ClassStatistics",
    "class_statistics",
    "window_counts",
    "enumerate_windows",
    "SlidingStats",
    "SlidingShapes",
    "training_windows",
    "train_sliding_shapes",
]

CHANNELS = ("occupancy", "log density", "normal x", "normal y", "normal z")
"""Channels of :func:`voxelize_scene`."""

YAWS = (0.0, math.pi / 2)
"""Window / anchor orientations: a box turned by :math:`\\pi` is the same box."""


# ----------------------------------------------------------------------------- the voxelised scene

def _check_bounds(bounds) -> torch.Tensor:
    bounds = torch.as_tensor(bounds, dtype=torch.float32)
    if bounds.shape != (2, 3) or not (bounds[1] > bounds[0]).all():
        raise ValueError(f"bounds must be (2, 3) = [min xyz, max xyz] with max > min, got {bounds.tolist()}")
    return bounds


def scene_bounds(sizes: Sequence[Sequence[float]], voxel_size: float, multiple: int = 4, margin: float = 0.2) -> torch.Tensor:
    r"""One grid box that holds every room: the union of the interiors plus ``margin``.

    Rooms are centred on the origin with the floor at ``y = 0`` (:mod:`coursekit.data.world.scenes`).
    Each extent is rounded up so that it holds a multiple of ``multiple`` voxels (strided
    backbones then tile it exactly).

    Args:
        sizes: per room ``(Lx, height, Lz)`` (``Scene.size``).
        voxel_size: edge of a voxel in metres.
        multiple: the voxel count per axis is a multiple of this.
        margin: metres added on every side.

    Returns:
        ``(2, 3)`` float32 ``[min xyz, max xyz]``.
    """
    if not len(sizes):
        raise ValueError("need at least one room size")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    extent = torch.tensor(sizes, dtype=torch.float64).amax(0)
    cells = torch.ceil((extent + 2 * margin) / (voxel_size * multiple)) * multiple
    span = cells * voxel_size
    lo = torch.tensor([-span[0] / 2, -margin, -span[2] / 2], dtype=torch.float64)
    return torch.stack([lo, lo + span]).float()


def grid_shape(bounds, voxel_size: float) -> tuple[int, int, int]:
    """``(D, H, W)`` voxels (axes ``z, y, x``) of a grid over ``bounds`` with edge ``voxel_size``."""
    bounds = _check_bounds(bounds)
    x, y, z = (int(round(float(e) / voxel_size)) for e in bounds[1] - bounds[0])
    return z, y, x


def voxelize_scene(points: torch.Tensor, normals: torch.Tensor, bounds, voxel_size: float) -> torch.Tensor:
    r"""Point clouds to a feature volume: occupancy, log point density and mean normal per voxel.

    .. math::  V_{occ} = [n > 0],\quad V_{dens} = \ln(1 + n),\quad V_{\mathbf n} = \frac{1}{n}\sum_{p \in v} \mathbf n_p

    with :math:`n` the number of points in the voxel; points outside ``bounds`` are dropped.

    Args:
        points: ``(B, N, 3)`` float.
        normals: ``(B, N, 3)`` unit normals (zeros if unknown).
        bounds: ``(2, 3)`` ``[min xyz, max xyz]`` (:func:`scene_bounds`).
        voxel_size: voxel edge.

    Returns:
        ``(B, 5, D, H, W)`` volume, channels :data:`CHANNELS`, axes ``(z, y, x)``.
    """
    check_points(points)
    if normals.shape != points.shape:
        raise ValueError(f"normals must have the points' shape {tuple(points.shape)}, got {tuple(normals.shape)}")
    bounds = _check_bounds(bounds).to(points)
    D, H, W = grid_shape(bounds, voxel_size)
    B = points.shape[0]
    cell = torch.floor((points - bounds[0]) / voxel_size).long()  # (x, y, z) indices
    inside = ((cell >= 0) & (cell < torch.tensor([W, H, D], device=points.device))).all(-1)
    flat = ((torch.arange(B, device=points.device)[:, None] * D + cell[..., 2]) * H + cell[..., 1]) * W + cell[..., 0]
    flat, normals = flat[inside], normals[inside]
    count = torch.zeros(B * D * H * W, dtype=points.dtype, device=points.device).index_add_(0, flat, torch.ones_like(flat, dtype=points.dtype))
    normal_sum = torch.zeros(B * D * H * W, 3, dtype=points.dtype, device=points.device).index_add_(0, flat, normals)
    mean_normal = normal_sum / count.clamp(min=1)[:, None]
    volume = torch.cat([(count > 0).to(points.dtype)[:, None], torch.log1p(count)[:, None], mean_normal], 1)
    return volume.reshape(B, D, H, W, 5).permute(0, 4, 1, 2, 3).contiguous()


def pool_box_grid(volume: torch.Tensor, bounds, boxes: torch.Tensor, batch_index: torch.Tensor, grid: int = 4,
                  context: float = 1.0, chunk: int = 16384) -> torch.Tensor:
    r"""Sample a volume on a ``grid^3`` lattice inside oriented boxes (3D RoI pooling, trilinear).

    Lattice point :math:`(i, j, k)` of box :math:`b` sits at
    :math:`c_b + R_y(\theta_b)\,\big(\kappa\, s_b \odot (\tfrac{(i, j, k) + 1/2}{g} - \tfrac12)\big)`
    (:math:`\kappa` = ``context``) and reads the volume with ``grid_sample(align_corners=False)``
    (voxel centres at ``lo + (index + 1/2) * voxel``); outside the grid reads 0.

    Args:
        volume: ``(B, C, D, H, W)`` on ``bounds`` (axes ``z, y, x``).
        bounds: ``(2, 3)`` ``[min xyz, max xyz]``.
        boxes: ``(N, 7)`` boxes.
        batch_index: ``(N,)`` int64 scene of each box in ``volume``.
        grid: lattice points per box axis ``g``.
        context: scale of the sampled region relative to the box (``> 1`` adds surroundings).
        chunk: boxes sampled per ``grid_sample`` call (bounds the working memory).

    Returns:
        ``(N, C, g, g, g)`` samples, lattice axes ``(z, y, x)`` of the *box's* frame.
    """
    if volume.dim() != 5:
        raise ValueError(f"volume must be (B, C, D, H, W), got {tuple(volume.shape)}")
    if boxes.dim() != 2 or boxes.shape[-1] != 7:
        raise ValueError(f"boxes must be (N, 7), got {tuple(boxes.shape)}")
    if batch_index.shape != boxes.shape[:1]:
        raise ValueError(f"batch_index must be ({boxes.shape[0]},), got {tuple(batch_index.shape)}")
    bounds = _check_bounds(bounds).to(volume)
    g = grid
    ticks = (torch.arange(g, dtype=volume.dtype, device=volume.device) + 0.5) / g - 0.5
    kz, ky, kx = torch.meshgrid(ticks, ticks, ticks, indexing="ij")
    local = torch.stack([kx, ky, kz], -1).reshape(1, -1, 3)  # (1, g^3, 3) in units of the box size
    out = volume.new_zeros(boxes.shape[0], volume.shape[1], g, g, g)
    for b in torch.unique(batch_index).tolist():
        rows = torch.nonzero(batch_index == b).flatten()
        for start in range(0, rows.numel(), chunk):
            r = rows[start: start + chunk]
            box = boxes[r].to(volume)
            p = local * box[:, None, 3:6] * context
            c, s = box[:, 6].cos()[:, None], box[:, 6].sin()[:, None]
            world = torch.stack([c * p[..., 0] + s * p[..., 2], p[..., 1], -s * p[..., 0] + c * p[..., 2]], -1) + box[:, None, :3]
            norm = 2 * (world - bounds[0]) / (bounds[1] - bounds[0]) - 1  # (x, y, z) -> grid_sample's (W, H, D) order
            sampled = F.grid_sample(volume[b: b + 1], norm.reshape(1, r.numel(), g ** 3, 1, 3), mode="bilinear",
                                    padding_mode="zeros", align_corners=False)
            out[r] = sampled[0, :, :, :, 0].permute(1, 0, 2).reshape(r.numel(), -1, g, g, g)
    return out


@dataclass(frozen=True)
class ClassStatistics:
    """Mean box of each detected class over a training set.

    Attributes:
        classes: ``(K,)`` int64 semantic ids (into ``SCENE_CLASSES``) of the detected classes.
        sizes: ``(K, 3)`` mean ``(sx, sy, sz)``.
        heights: ``(K,)`` mean centre height ``cy``.
        counts: ``(K,)`` number of training boxes.
    """

    classes: torch.Tensor
    sizes: torch.Tensor
    heights: torch.Tensor
    counts: torch.Tensor

    def index(self, semantic: torch.Tensor) -> torch.Tensor:
        """Position in :attr:`classes` of each semantic id (``-1`` for classes not detected)."""
        top = max(int(self.classes.max()), int(semantic.max()) if semantic.numel() else 0)
        lookup = torch.full((top + 1,), -1, dtype=torch.int64)
        lookup[self.classes] = torch.arange(len(self.classes))
        return lookup[semantic] if semantic.numel() else semantic.clone()


def class_statistics(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> ClassStatistics:
    r"""Per-class mean box size and centre height over training scenes.

    .. math::  \bar s_c = \frac{1}{n_c}\sum_{i: l_i = c} s_i,\qquad \bar y_c = \frac{1}{n_c}\sum_{i: l_i = c} c_{y,i}

    Args:
        boxes: per scene ``(K_s, 7)``.
        labels: per scene ``(K_s,)`` int64 semantic ids.

    Returns:
        :class:`ClassStatistics` over the classes that occur, in increasing id order.
    """
    all_boxes = torch.cat([b.reshape(-1, 7) for b in boxes]).float() if len(boxes) else torch.zeros(0, 7)
    all_labels = torch.cat([l.reshape(-1) for l in labels]) if len(labels) else torch.zeros(0, dtype=torch.int64)
    if all_boxes.shape[0] == 0 or all_boxes.shape[0] != all_labels.shape[0]:
        raise ValueError(f"need at least one box and one label per box, got {all_boxes.shape[0]} boxes and {all_labels.shape[0]} labels")
    classes = torch.unique(all_labels)
    sizes = torch.stack([all_boxes[all_labels == c, 3:6].mean(0) for c in classes])
    heights = torch.stack([all_boxes[all_labels == c, 1].mean() for c in classes])
    counts = torch.stack([(all_labels == c).sum() for c in classes])
    return ClassStatistics(classes, sizes, heights, counts)


# ----------------------------------------------------------------------------- windows

def _axis_count(extent: float, window: float, stride: float) -> int:
    """Windows of width ``window`` at ``stride`` that fit in ``extent`` (0 if none)."""
    if window > extent + 1e-9:
        return 0
    return int(math.floor((extent - window) / stride + 1e-9)) + 1


def _window_extents(size: torch.Tensor, yaw: float) -> tuple[float, float, float]:
    """World-axis extents ``(x, y, z)`` of a window of ``size`` turned by ``yaw`` in {0, pi/2}."""
    sx, sy, sz = (float(v) for v in size)
    return (sx, sy, sz) if abs(math.sin(yaw)) < 0.5 else (sz, sy, sx)


def window_counts(region, sizes: torch.Tensor, stride: float) -> torch.Tensor:
    r"""Closed-form number of windows per class (both yaws) in a region.

    .. math::  N_c = \sum_{\theta \in \{0, \pi/2\}} \prod_{a} \Big(\Big\lfloor \frac{L_a - w_a}{s} \Big\rfloor + 1\Big)

    Args:
        region: ``(2, 3)`` ``[min xyz, max xyz]`` to search (a room's interior).
        sizes: ``(K, 3)`` window sizes.
        stride: :math:`s`, metres, on every axis.

    Returns:
        ``(K,)`` int64 counts.
    """
    region = _check_bounds(region)
    extent = (region[1] - region[0]).tolist()
    counts = []
    for size in sizes:
        n = 0
        for yaw in YAWS:
            w = _window_extents(size, yaw)
            n += math.prod(_axis_count(extent[a], w[a], stride) for a in range(3))
        counts.append(n)
    return torch.tensor(counts, dtype=torch.int64)


def enumerate_windows(region, sizes: torch.Tensor, stride: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of every class: centres on a lattice of ``stride``, first window flush with the region's corner.

    Args:
        region: ``(2, 3)`` ``[min xyz, max xyz]``.
        sizes: ``(K, 3)`` window sizes.
        stride: lattice spacing in metres.

    Returns:
        ``boxes (N, 7)`` and ``klass (N,)`` int64 (index into ``sizes``); ``N`` = ``window_counts(...).sum()``.
    """
    if not stride > 0:
        raise ValueError(f"stride must be positive, got {stride}")
    region = _check_bounds(region)
    extent = (region[1] - region[0]).tolist()
    boxes, klass = [], []
    for k, size in enumerate(sizes):
        for yaw in YAWS:
            w = _window_extents(size, yaw)
            axes = [region[0, a] + w[a] / 2 + stride * torch.arange(_axis_count(extent[a], w[a], stride)) for a in range(3)]
            x, y, z = torch.meshgrid(*axes, indexing="ij")
            centres = torch.stack([x, y, z], -1).reshape(-1, 3)
            boxes.append(torch.cat([centres, size.expand(len(centres), 3), torch.full((len(centres), 1), yaw)], 1))
            klass.append(torch.full((len(centres),), k, dtype=torch.int64))
    return torch.cat(boxes).float(), torch.cat(klass)


# ----------------------------------------------------------------------------- the detector

@dataclass
class SlidingStats:
    """Cost of one :meth:`SlidingShapes.detect` call: ``windows`` evaluated, ``seconds`` taken."""

    windows: int = 0
    seconds: float = 0.0


class SlidingShapes(nn.Module):
    r"""Exhaustive sliding-window 3D detector: a window per class size and yaw at every lattice point.

    Each window's content is :func:`pool_box_grid` of the scene volume (``grid^3`` samples of
    the :data:`CHANNELS`, no context); a small MLP shared by the classes gives one logit per
    class, and a window of class :math:`c` is scored by output :math:`c` only:

    .. math::  \text{score}(w) = \sigma\big(f_{c(w)}(\text{pool}(V, w))\big)

    Args:
        stats: :class:`ClassStatistics` (window sizes = class mean sizes).
        grid: samples per window axis.
        hidden: width of the MLP.
        stride: window lattice spacing in metres.
    """

    def __init__(self, stats: ClassStatistics, grid: int = 4, hidden: int = 64, stride: float = 0.2):
        super().__init__()
        self.stats, self.grid, self.stride = stats, grid, stride
        n_in = len(CHANNELS) * grid ** 3
        self.classifier = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, len(stats.classes)))
        self.last = SlidingStats()

    def forward(self, volume: torch.Tensor, bounds, windows: torch.Tensor, klass: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """``(N,)`` logits of ``windows (N, 7)`` of class ``klass (N,)`` in scenes ``batch_index (N,)`` of ``volume (B, 5, D, H, W)``."""
        feats = pool_box_grid(volume, bounds, windows, batch_index, self.grid).flatten(1)
        return self.classifier(feats).gather(1, klass[:, None])[:, 0]

    @torch.no_grad()
    def detect(self, volume: torch.Tensor, bounds, regions: Sequence, chunk: int = 8192, keep_per_class: int = 100,
               nms_iou: float = 0.25, max_detections: int = 50) -> list[dict[str, torch.Tensor]]:
        """Score every window of every room, then per-class NMS; updates :attr:`last` (windows, seconds).

        Args:
            volume: ``(B, 5, D, H, W)`` from :func:`voxelize_scene`.
            bounds: the volume's ``(2, 3)`` bounds.
            regions: per room ``(2, 3)`` interior to slide over (``Scene.interior``).
            chunk: windows classified per call.
            keep_per_class: best windows per class kept for NMS.
            nms_iou: NMS threshold.
            max_detections: detections kept per room.

        Returns:
            per room a dict ``boxes (M, 7)``, ``scores (M,)``, ``labels (M,)`` (semantic ids).
        """
        if len(regions) != volume.shape[0]:
            raise ValueError(f"need one region per scene: {volume.shape[0]} volumes, {len(regions)} regions")
        self.eval()
        start, count, out = time.perf_counter(), 0, []
        for b, region in enumerate(regions):
            windows, klass = enumerate_windows(region, self.stats.sizes, self.stride)
            count += len(windows)
            scores = torch.cat([torch.sigmoid(self(volume, bounds, windows[i: i + chunk], klass[i: i + chunk],
                                                   torch.full((len(windows[i: i + chunk]),), b, dtype=torch.int64)))
                                for i in range(0, len(windows), chunk)])
            out.append(_per_class_nms(windows, scores, klass, self.stats.classes, keep_per_class, nms_iou, max_detections))
        self.last = SlidingStats(count, time.perf_counter() - start)
        return out


def _per_class_nms(boxes, scores, klass, classes, keep_per_class, nms_iou, max_detections) -> dict[str, torch.Tensor]:
    """Top ``keep_per_class`` of each class, NMS within the class, then the best ``max_detections`` overall."""
    kept = []
    for k in torch.unique(klass).tolist():
        rows = torch.nonzero(klass == k).flatten()
        rows = rows[torch.topk(scores[rows], min(keep_per_class, rows.numel())).indices]
        kept.append(rows[nms_3d(boxes[rows], scores[rows], nms_iou)])
    rows = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64)
    rows = rows[torch.sort(scores[rows], descending=True, stable=True).indices[:max_detections]]
    return {"boxes": boxes[rows], "scores": scores[rows], "labels": classes[klass[rows]]}


def _snap_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """The window yaw in {0, pi/2} nearest to ``yaw`` modulo pi."""
    r = torch.remainder(yaw, math.pi)
    return torch.where((r > math.pi / 4) & (r < 3 * math.pi / 4), torch.full_like(r, math.pi / 2), torch.zeros_like(r))


def training_windows(stats: ClassStatistics, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], regions: Sequence,
                     n_negative: int, jitter: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positive windows (class mean size at each ground-truth centre, yaw snapped, jittered by up to
    ``jitter`` metres, 4 per object) and random negatives (IoU < 0.1 with every object of their class).

    Returns:
        ``windows (N, 7)``, ``klass (N,)``, ``batch_index (N,)``, ``target (N,)`` float 0/1.
    """
    win, kl, bi, tg = [], [], [], []
    K = len(stats.classes)
    for b, (gt, lab, region) in enumerate(zip(boxes, labels, regions)):
        k = stats.index(lab)
        keep = k >= 0
        gt, k = gt[keep], k[keep]
        pos = torch.cat([gt[:, :3].repeat(4, 1), stats.sizes[k].repeat(4, 1), _snap_yaw(gt[:, 6]).repeat(4)[:, None]], 1)
        pos[:, :3] += (torch.rand(pos.shape[0], 3, generator=generator) * 2 - 1) * jitter
        region = _check_bounds(region)
        nk = torch.randint(0, K, (n_negative,), generator=generator)
        centre = region[0] + torch.rand(n_negative, 3, generator=generator) * (region[1] - region[0])
        yaw = torch.tensor(YAWS)[torch.randint(0, 2, (n_negative,), generator=generator)]
        neg = torch.cat([centre, stats.sizes[nk], yaw[:, None]], 1)
        if gt.shape[0]:
            iou = box_iou_3d(neg, gt)
            iou = torch.where(nk[:, None] == k[None], iou, torch.zeros_like(iou))
            keep_neg = iou.amax(1) < 0.1
            neg, nk = neg[keep_neg], nk[keep_neg]
        win += [pos, neg]
        kl += [k.repeat(4), nk]
        bi.append(torch.full((pos.shape[0] + neg.shape[0],), b, dtype=torch.int64))
        tg += [torch.ones(pos.shape[0]), torch.zeros(neg.shape[0])]
    return torch.cat(win), torch.cat(kl), torch.cat(bi), torch.cat(tg)


def train_sliding_shapes(model: SlidingShapes, volume: torch.Tensor, bounds, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
                         regions: Sequence, epochs: int, generator: torch.Generator, n_negative: int = 400, lr: float = 3e-3,
                         batch_size: int = 512, progress: bool = True) -> list[float]:
    r"""Train the window classifier with balanced binary cross-entropy on fresh windows each epoch.

    .. math::  \mathcal L = -\tfrac{1}{|P|}\sum_{w \in P}\ln\sigma(f(w)) - \tfrac{1}{|N|}\sum_{w \in N}\ln(1 - \sigma(f(w)))

    Args:
        model: the detector.
        volume: ``(B, 5, D, H, W)`` training scenes on ``bounds``.
        boxes, labels: per scene ground truth ``(K_s, 7)``, ``(K_s,)`` semantic ids.
        regions: per scene ``(2, 3)`` interior.
        epochs: passes; every epoch draws new jittered positives and random negatives.
        generator: randomness.
        n_negative: random negative windows per scene and epoch.
        lr, batch_size: Adam step and windows per step.
        progress: ``tqdm.auto`` bar.

    Returns:
        mean loss per epoch.
    """
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in tqdm(range(epochs), desc="sliding shapes", disable=not progress, leave=False):
        model.train()
        win, kl, bi, tg = training_windows(model.stats, boxes, labels, regions, n_negative, model.stride / 2, generator)
        feats = pool_box_grid(volume, bounds, win, bi, model.grid).flatten(1)
        order = torch.randperm(len(win), generator=generator)
        losses = []
        for i in range(0, len(order), batch_size):
            r = order[i: i + batch_size]
            logit = model.classifier(feats[r]).gather(1, kl[r][:, None])[:, 0]
            loss = _balanced_bce(logit, tg[r])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


def _balanced_bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE over positives plus mean BCE over negatives (each term 0 if the set is empty)."""
    loss = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    pos, neg = target > 0.5, target <= 0.5
    return (loss[pos].mean() if pos.any() else loss.sum() * 0) + (loss[neg].mean() if neg.any() else loss.sum() * 0)
