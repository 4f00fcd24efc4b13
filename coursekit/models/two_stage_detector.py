r"""Two-stage 3D detector: anchors + objectness + box regression, 3D NMS, then refinement on pooled voxels.

The slide's answer to the cost of sliding windows (:mod:`coursekit.models.sliding_shapes`):

1. **Proposal (region proposal network).** A dense 3D CNN turns the voxelised room
   (:func:`~coursekit.models.sliding_shapes.voxelize_scene`) into a feature grid of stride 2.
   At *each location* of that grid sit predefined boxes, the **anchors**: one per detected
   class, at the class's mean training size (:func:`~coursekit.models.sliding_shapes.class_statistics`),
   in two yaws :math:`\{0, \pi/2\}`. A 1x1x1 convolution predicts per anchor an objectness
   logit and the 7 regression deltas, re-parameterised relative to the anchor
   (:func:`coursekit.geometry.boxes.encode_boxes`, the slide's formulas):

   .. math::  \Delta_x = \frac{\mu - \mu_{anchor}}{\phi_{anchor}},\qquad
              \Delta_w = \ln\!\Big(\frac{\phi}{\phi_{anchor}}\Big),\qquad \Delta_\theta = \theta - \theta_{anchor}

   The decoded boxes go through per-class greedy 3D NMS (:func:`coursekit.geometry.boxes.nms_3d`).
2. **Refinement.** Each proposal pools the input volume and the backbone features on a
   ``g^3`` lattice inside the proposal enlarged by a context factor
   (:func:`~coursekit.models.sliding_shapes.pool_box_grid`, 3D RoI pooling); an MLP predicts the
   class (``K`` classes + background) and a second set of deltas relative to the proposal.

Oriented boxes: a box turned by :math:`\pi` about ``+y`` is the same box, so before a target
is encoded its yaw is moved by a multiple of :math:`\pi` to within :math:`\pi/2` of the
anchor's (:func:`align_yaw`); encode and decode stay exact inverses.

Targets (VoxelNet / SECOND style): an anchor is positive when its 3D IoU with a ground-truth
box of its class is at least ``pos_iou``, and each ground-truth box's best anchor is
positive too; negative below ``neg_iou``; in between it is ignored.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coursekit.geometry.boxes import box_iou_3d, decode_boxes, encode_boxes

from .sliding_shapes import YAWS, ClassStatistics, _balanced_bce, _check_bounds, _per_class_nms, grid_shape, pool_box_grid

__all__ = ["align_yaw", "make_anchors", "assign_targets", "TwoStageDetector", "train_two_stage", "scene_batches"]


def align_yaw(boxes: torch.Tensor, reference_yaw: torch.Tensor) -> torch.Tensor:
    r"""The same boxes with yaw moved by :math:`k\pi` to lie within :math:`\pi/2` of ``reference_yaw``.

    .. math::  \theta' = \theta - \pi\,\mathrm{round}\!\Big(\frac{\theta - \theta_{ref}}{\pi}\Big)

    An upright box turned by :math:`\pi` covers the same space, so IoU is unchanged and the
    regression target :math:`\Delta_\theta = \theta' - \theta_{ref}` lies in :math:`[-\pi/2, \pi/2]`.

    Args:
        boxes: ``(N, 7)``.
        reference_yaw: ``(N,)`` (e.g. the anchors' yaw).

    Returns:
        ``(N, 7)`` boxes.
    """
    k = torch.round((boxes[:, 6] - reference_yaw) / math.pi)
    return torch.cat([boxes[:, :6], (boxes[:, 6] - k * math.pi)[:, None]], 1)


def make_anchors(bounds, feature_shape: tuple[int, int, int], sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Anchors at each cell centre of a feature grid: every class size in yaws 0 and :math:`\pi/2`.

    Cell :math:`(d, h, w)` of a grid of shape :math:`(D', H', W')` over ``bounds`` has centre
    :math:`\text{lo} + ((w, h, d) + \tfrac12)\odot(\text{hi} - \text{lo}) / (W', H', D')`.

    Args:
        bounds: ``(2, 3)`` ``[min xyz, max xyz]``.
        feature_shape: ``(D', H', W')`` (axes ``z, y, x``).
        sizes: ``(K, 3)`` anchor sizes (class means).

    Returns:
        ``anchors (D'*H'*W'*K*2, 7)`` in order (cell ``d, h, w``; class ``k``; yaw) and
        ``klass (same,)`` int64 class index ``k`` of each anchor.
    """
    bounds = _check_bounds(bounds)
    D, H, W = feature_shape
    axes = [bounds[0, a] + (torch.arange(n) + 0.5) * (bounds[1, a] - bounds[0, a]) / n for a, n in ((2, D), (1, H), (0, W))]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    centres = torch.stack([x, y, z], -1).reshape(-1, 1, 3)
    K = sizes.shape[0]
    kinds = torch.cat([sizes.float().repeat_interleave(len(YAWS), 0), torch.tensor(YAWS).repeat(K)[:, None]], 1)  # (K*2, 4)
    anchors = torch.cat([centres.expand(-1, K * len(YAWS), 3), kinds[None].expand(centres.shape[0], -1, 4)], -1)
    klass = torch.arange(K).repeat_interleave(len(YAWS)).repeat(centres.shape[0])
    return anchors.reshape(-1, 7), klass


def assign_targets(anchors: torch.Tensor, anchor_class: torch.Tensor, gt_boxes: torch.Tensor, gt_class: torch.Tensor,
                   pos_iou: float = 0.35, neg_iou: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Label anchors against the ground truth of their own class by 3D IoU.

    .. math::  y_a = \begin{cases} 1 & \max_g \mathrm{IoU}(a, g) \ge \tau_+ \text{ or } a = \arg\max_{a'} \mathrm{IoU}(a', g)\\
               0 & \max_g \mathrm{IoU}(a, g) < \tau_- \\ -1 & \text{otherwise (ignored)}\end{cases}

    Args:
        anchors: ``(A, 7)``; anchor_class: ``(A,)`` class index.
        gt_boxes: ``(G, 7)``; gt_class: ``(G,)`` class index (``-1``: not detected, skipped).
        pos_iou, neg_iou: :math:`\tau_+`, :math:`\tau_-`.

    Returns:
        ``labels (A,)`` int64 in ``{1, 0, -1}`` and ``matched (A,)`` int64 ground-truth index
        of each positive (``-1`` elsewhere).
    """
    if not 0 <= neg_iou <= pos_iou <= 1:
        raise ValueError(f"need 0 <= neg_iou <= pos_iou <= 1, got {neg_iou}, {pos_iou}")
    labels = torch.zeros(len(anchors), dtype=torch.int64)
    matched = torch.full((len(anchors),), -1, dtype=torch.int64)
    best_iou = torch.zeros(len(anchors))
    for k in torch.unique(gt_class[gt_class >= 0]).tolist():
        rows = torch.nonzero(anchor_class == k).flatten()
        cols = torch.nonzero(gt_class == k).flatten()
        iou = box_iou_3d(anchors[rows], gt_boxes[cols]).float()  # (A_k, G_k)
        value, arg = iou.max(1)
        better = value > best_iou[rows]
        best_iou[rows[better]] = value[better]
        matched[rows[better]] = cols[arg[better]]
        forced = iou.argmax(0)  # each ground truth's best anchor
        has = iou.amax(0) > 0
        best_iou[rows[forced[has]]] = 1.0
        matched[rows[forced[has]]] = cols[has]
    labels[(best_iou >= neg_iou) & (best_iou < pos_iou)] = -1
    labels[best_iou >= pos_iou] = 1
    matched[labels != 1] = -1
    return labels, matched


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU())


class TwoStageDetector(nn.Module):
    r"""Anchor-based 3D region proposal network plus a refinement head on RoI-pooled voxels.

    Args:
        stats: :class:`~coursekit.models.sliding_shapes.ClassStatistics` (classes and anchor sizes).
        bounds: ``(2, 3)`` bounds of the input volumes.
        voxel_size: voxel edge of the input volumes.
        in_channels: channels of the input volume (5 for :func:`voxelize_scene`, 3 for a TSDF).
        width: backbone channels.
        roi_grid: RoI lattice points per box axis.
        context: RoI region relative to the proposal size.

    Shapes:
        input volume ``(B, C_in, D, H, W)`` with ``D, H, W`` even; anchors ``A = D/2 * H/2 * W/2 * K * 2``.
    """

    def __init__(self, stats: ClassStatistics, bounds, voxel_size: float, in_channels: int = 5, width: int = 32,
                 roi_grid: int = 4, context: float = 1.25):
        super().__init__()
        self.stats, self.voxel_size, self.roi_grid, self.context = stats, voxel_size, roi_grid, context
        self.register_buffer("bounds", _check_bounds(bounds).clone(), persistent=False)
        shape = grid_shape(bounds, voxel_size)
        if any(n % 2 for n in shape):
            raise ValueError(f"the grid {shape} must have an even number of voxels per axis (scene_bounds(multiple=2))")
        self.feature_shape = tuple(n // 2 for n in shape)
        anchors, klass = make_anchors(bounds, self.feature_shape, stats.sizes)
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("anchor_class", klass, persistent=False)
        K, A = len(stats.classes), len(stats.classes) * len(YAWS)
        self.backbone = nn.Sequential(_block(in_channels, width // 2), _block(width // 2, width, stride=2), _block(width, width), _block(width, width))
        self.objectness = nn.Conv3d(width, A, 1)
        self.regression = nn.Conv3d(width, A * 7, 1)
        roi_in = (in_channels + width) * roi_grid ** 3
        self.refine_head = nn.Sequential(nn.Linear(roi_in, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.refine_class = nn.Linear(128, K + 1)
        self.refine_box = nn.Linear(128, 7)

    @property
    def n_classes(self) -> int:
        """Number of detected classes ``K``."""
        return len(self.stats.classes)

    def forward(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First stage.

        Args:
            volume: ``(B, C_in, D, H, W)``.

        Returns:
            ``objectness (B, A)`` logits, ``deltas (B, A, 7)`` (anchor order of :func:`make_anchors`)
            and backbone ``features (B, width, D/2, H/2, W/2)``.
        """
        if volume.dim() != 5 or tuple(volume.shape[2:]) != tuple(2 * n for n in self.feature_shape):
            raise ValueError(f"volume must be (B, C, {', '.join(str(2 * n) for n in self.feature_shape)}), got {tuple(volume.shape)}")
        features = self.backbone(volume)
        B = volume.shape[0]
        objectness = self.objectness(features).permute(0, 2, 3, 4, 1).reshape(B, -1)
        deltas = self.regression(features).permute(0, 2, 3, 4, 1).reshape(B, -1, 7)
        return objectness, deltas, features

    def decode(self, deltas: torch.Tensor) -> torch.Tensor:
        r"""``(B, A, 7)`` boxes from ``(B, A, 7)`` deltas (sizes clamped to :math:`e^{\pm 3}` times the anchor)."""
        clamped = torch.cat([deltas[..., :3], deltas[..., 3:6].clamp(-3, 3), deltas[..., 6:]], -1)
        anchors = self.anchors.expand(deltas.shape[0], -1, 7).reshape(-1, 7)
        return decode_boxes(clamped.reshape(-1, 7), anchors).reshape(deltas.shape)

    @torch.no_grad()
    def propose(self, volume: torch.Tensor, keep_per_class: int = 200, nms_iou: float = 0.3, max_proposals: int = 64
                ) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        """Decoded anchors, per-class NMS, best ``max_proposals`` per scene.

        Returns:
            per scene a dict ``boxes (P, 7)``, ``scores (P,)`` (objectness), ``labels (P,)``
            (semantic ids), ``klass (P,)`` (class index); and the backbone features.
        """
        self.eval()
        objectness, deltas, features = self(volume)
        boxes = self.decode(deltas)
        out = []
        for b in range(volume.shape[0]):
            kept = _per_class_nms(boxes[b], torch.sigmoid(objectness[b]), self.anchor_class, torch.arange(self.n_classes),
                                  keep_per_class, nms_iou, max_proposals)
            out.append({"boxes": kept["boxes"], "scores": kept["scores"], "klass": kept["labels"],
                        "labels": self.stats.classes[kept["labels"]]})
        return out, features

    def refine(self, volume: torch.Tensor, features: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Second stage on ``boxes (P, 7)`` of scenes ``batch_index (P,)``.

        Returns:
            ``class logits (P, K + 1)`` (last = background) and ``deltas (P, 7)`` relative to the boxes.
        """
        pooled = [pool_box_grid(v, self.bounds, boxes, batch_index, self.roi_grid, self.context).flatten(1) for v in (volume, features)]
        h = self.refine_head(torch.cat(pooled, 1))
        return self.refine_class(h), self.refine_box(h)

    @torch.no_grad()
    def detect(self, volume: torch.Tensor, nms_iou: float = 0.25, max_detections: int = 50, refine: bool = True
               ) -> list[dict[str, torch.Tensor]]:
        """Both stages: proposals, refined class and box, per-class NMS.

        Args:
            volume: ``(B, C_in, D, H, W)``.
            nms_iou: final per-class NMS threshold.
            max_detections: per scene.
            refine: ``False`` returns the first stage's proposals (class = anchor class).

        Returns:
            per scene ``boxes (M, 7)``, ``scores (M,)``, ``labels (M,)`` (semantic ids).
        """
        proposals, features = self.propose(volume)
        if not refine:
            return [{k: p[k] for k in ("boxes", "scores", "labels")} for p in proposals]
        boxes = torch.cat([p["boxes"] for p in proposals])
        batch_index = torch.cat([torch.full((len(p["boxes"]),), b, dtype=torch.int64) for b, p in enumerate(proposals)])
        logits, deltas = self.refine(volume, features, boxes, batch_index)
        prob = logits.softmax(-1)[:, :-1]
        score, klass = prob.max(1)
        refined = decode_boxes(torch.cat([deltas[:, :3], deltas[:, 3:6].clamp(-2, 2), deltas[:, 6:]], 1), boxes)
        out = []
        for b in range(volume.shape[0]):
            r = batch_index == b
            out.append(_per_class_nms(refined[r], score[r], klass[r], self.stats.classes, max_detections, nms_iou, max_detections))
        return out


def scene_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches over ``n`` scenes."""
    order = torch.randperm(n, generator=generator)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


def _jitter(boxes: torch.Tensor, generator: torch.Generator, shift: float = 0.15, scale: float = 0.15, turn: float = 0.2) -> torch.Tensor:
    """Boxes moved by up to ``shift`` x size, resized by up to ``scale``, turned by up to ``turn`` rad."""
    u = lambda *s: torch.rand(*s, generator=generator) * 2 - 1  # noqa: E731
    centre = boxes[:, :3] + u(len(boxes), 3) * shift * boxes[:, 3:6]
    size = boxes[:, 3:6] * (1 + scale * u(len(boxes), 3))
    return torch.cat([centre, size, boxes[:, 6:] + turn * u(len(boxes), 1)], 1)


def _refine_targets(boxes: torch.Tensor, gt: torch.Tensor, gt_class: torch.Tensor, K: int, fg_iou: float = 0.35, bg_iou: float = 0.2
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class target (``K`` = background, ``-1`` ignored) and box deltas of proposals against the scene's ground truth."""
    target = torch.full((len(boxes),), K, dtype=torch.int64)
    deltas = torch.zeros(len(boxes), 7)
    keep = gt_class >= 0
    gt, gt_class = gt[keep], gt_class[keep]
    if len(gt) == 0 or len(boxes) == 0:
        return target, deltas
    iou, arg = box_iou_3d(boxes, gt).float().max(1)
    target[(iou >= bg_iou) & (iou < fg_iou)] = -1
    fg = iou >= fg_iou
    target[fg] = gt_class[arg[fg]]
    deltas[fg] = encode_boxes(align_yaw(gt[arg[fg]], boxes[fg, 6]), boxes[fg]).float()
    return target, deltas


def train_two_stage(model: TwoStageDetector, volume: torch.Tensor, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], *,
                    epochs: int, refine_epochs: int, generator: torch.Generator, batch_size: int = 4, lr: float = 2e-3,
                    progress: bool = True) -> dict[str, list[float]]:
    r"""Train the proposal network, then the refinement head on its (detached) proposals.

    Stage 1 loss per scene: balanced objectness BCE over positive and negative anchors plus
    smooth-L1 on the encoded deltas of the positives,

    .. math::  \mathcal L_1 = \mathrm{BCE}_+ + \mathrm{BCE}_- + \frac{1}{|P|}\sum_{a \in P}
               \mathrm{SmoothL1}\big(\hat\Delta_a - \mathrm{encode}(g_a, a)\big)

    Stage 2: cross-entropy over ``K`` classes + background (proposal IoU >= 0.35 with a ground
    truth box: its class; < 0.2: background) plus smooth-L1 of the deltas relative to the
    proposal, on the RPN's proposals and jittered ground-truth boxes of the training scenes.

    Args:
        model: the detector.
        volume: ``(B, C_in, D, H, W)`` training scenes.
        boxes, labels: per scene ground-truth ``(K_s, 7)`` and semantic ids ``(K_s,)``.
        epochs, refine_epochs: passes over the scenes for each stage.
        generator: randomness (batch order, jitter).
        batch_size: scenes per step.
        lr: Adam learning rate.
        progress: ``tqdm.auto`` bars.

    Returns:
        ``{"rpn": [...], "refine": [...]}`` mean loss per epoch.
    """
    if volume.shape[0] != len(boxes) or len(boxes) != len(labels):
        raise ValueError(f"need one box set and label set per volume: {volume.shape[0]}, {len(boxes)}, {len(labels)}")
    gt_class = [model.stats.index(l) for l in labels]
    targets = [assign_targets(model.anchors, model.anchor_class, b, k) for b, k in zip(boxes, gt_class)]
    labels_t = torch.stack([t[0] for t in targets])
    matched_t = torch.stack([t[1] for t in targets])
    history = {"rpn": [], "refine": []}
    rpn_params = [p for n, p in model.named_parameters() if not n.startswith("refine")]
    opt = torch.optim.Adam(rpn_params, lr=lr)
    for _ in tqdm(range(epochs), desc="RPN", disable=not progress, leave=False):
        model.train()
        losses = []
        for idx in scene_batches(volume.shape[0], batch_size, generator):
            objectness, deltas, _ = model(volume[idx])
            lab = labels_t[idx]
            loss = _balanced_bce(objectness[lab >= 0], lab[lab >= 0].float())
            pos = torch.nonzero(lab == 1)
            if len(pos):
                gt = torch.stack([boxes[int(idx[b])][matched_t[idx[b], a]] for b, a in pos.tolist()]).float()
                anchors = model.anchors[pos[:, 1]]
                target = encode_boxes(align_yaw(gt, anchors[:, 6]), anchors)
                loss = loss + F.smooth_l1_loss(deltas[pos[:, 0], pos[:, 1]], target, beta=1 / 9)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history["rpn"].append(sum(losses) / len(losses))
    # stage 2 on fixed proposals of the trained RPN (plus jittered ground truth)
    rois, batch_index, cls_t, box_t = [], [], [], []
    features = []
    for idx in torch.arange(volume.shape[0]).split(batch_size):
        proposals, feats = model.propose(volume[idx])
        features.append(feats)
        for b, p in zip(idx.tolist(), proposals):
            extra = _jitter(boxes[b].float().repeat(2, 1), generator)
            r = torch.cat([p["boxes"], extra])
            c, d = _refine_targets(r, boxes[b].float(), gt_class[b], model.n_classes)
            rois.append(r)
            cls_t.append(c)
            box_t.append(d)
            batch_index.append(torch.full((len(r),), b, dtype=torch.int64))
    features = torch.cat(features)
    rois, batch_index, cls_t, box_t = (torch.cat(x) for x in (rois, batch_index, cls_t, box_t))
    keep = cls_t >= 0
    rois, batch_index, cls_t, box_t = rois[keep], batch_index[keep], cls_t[keep], box_t[keep]
    pooled = torch.cat([pool_box_grid(v, model.bounds, rois, batch_index, model.roi_grid, model.context).flatten(1)
                        for v in (volume, features)], 1)
    head = [p for n, p in model.named_parameters() if n.startswith("refine")]
    opt = torch.optim.Adam(head, lr=lr)
    # background dominates: weight the classes by inverse frequency (capped)
    freq = torch.bincount(cls_t, minlength=model.n_classes + 1).float()
    weight = (freq.sum() / freq.clamp(min=1)).clamp(max=20)
    weight = weight / weight.mean()
    for _ in tqdm(range(refine_epochs), desc="refine", disable=not progress, leave=False):
        model.train()
        losses = []
        for r in torch.randperm(len(rois), generator=generator).split(256):
            h = model.refine_head(pooled[r])
            loss = F.cross_entropy(model.refine_class(h), cls_t[r], weight=weight)
            fg = cls_t[r] < model.n_classes
            if fg.any():
                loss = loss + F.smooth_l1_loss(model.refine_box(h)[fg], box_t[r][fg], beta=1 / 9)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history["refine"].append(sum(losses) / max(len(losses), 1))
    return history
