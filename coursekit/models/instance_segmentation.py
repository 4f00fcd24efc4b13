r"""From box to instance segmentation: a foreground/background point mask inside each detected box.

The slide's point (3D-BoNet: Yang et al., "Learning Object Bounding Boxes for 3D Instance
Segmentation on Point Clouds", NeurIPS 2019): a box also holds background points and parts of
other instances, so *box = instance* is wrong near contacts (a chair pushed under a table, a
picture on a wall). 3D-BoNet predicts a box per instance, then a **point mask** per box: a
binary foreground/background segmentation of the points the box holds. An instance is then a
set of points (a mask), scored and evaluated by mask AP
(:func:`coursekit.metrics.detection.mask_average_precision`).

Here the boxes come from any detector (:mod:`coursekit.models.two_stage_detector`); a small
PointNet (:class:`BoxMaskNet`) sees the points of each box *in the box's own frame*
(centred, turned by :math:`-\theta`, divided by the box size), so one network serves every
class, size and orientation:

.. math::  \tilde p = \big(R_y(\theta)^\top (p - c)\big) \oslash s,\qquad
           m(p) = \sigma\big(h([\,g(\tilde p, \tilde n),\ \max_{q \in b} g(\tilde q, \tilde n_q)\,])\big)

Only points inside the box enlarged by ``context`` can be foreground.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coursekit.geometry.validate import check_points

from .two_stage_detector import _jitter

__all__ = ["box_frame", "points_in_boxes", "gt_instance_masks", "BoxMaskNet", "train_box_masks", "instances_from_boxes"]


def _rotate_to_box(vectors: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    r""":math:`R_y(\theta)^\top v` for vectors ``(M, N, 3)`` and yaws ``(M,)``."""
    c, s = yaw.cos()[:, None], yaw.sin()[:, None]
    x, y, z = vectors.unbind(-1)
    return torch.stack([c * x - s * z, y, s * x + c * z], -1)


def box_frame(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    r"""Points in each box's frame, in units of the box size: inside the box is :math:`[-\tfrac12, \tfrac12]^3`.

    .. math::  \tilde p = \big(R_y(\theta)^\top (p - c)\big) \oslash s

    Args:
        points: ``(N, 3)``.
        boxes: ``(M, 7)``.

    Returns:
        ``(M, N, 3)``.
    """
    if points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    if boxes.dim() != 2 or boxes.shape[-1] != 7:
        raise ValueError(f"boxes must be (M, 7), got {tuple(boxes.shape)}")
    local = _rotate_to_box(points[None] - boxes[:, None, :3], boxes[:, 6])
    return local / boxes[:, None, 3:6].clamp(min=1e-6)


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor, context: float = 1.0) -> torch.Tensor:
    r"""Which points each (enlarged) box contains: the "box = instance" mask.

    .. math::  p \in b \iff \|\tilde p\|_\infty \le \kappa / 2

    Args:
        points: ``(N, 3)``.
        boxes: ``(M, 7)``.
        context: :math:`\kappa`, the box scale (1 = the box itself).

    Returns:
        ``(M, N)`` bool.
    """
    return (box_frame(points, boxes).abs() <= context / 2).all(-1)


def gt_instance_masks(instance: torch.Tensor, box_instances: torch.Tensor) -> torch.Tensor:
    """``(K, N)`` bool ground-truth masks: point ``n`` belongs to box ``k`` when its instance id is the box's.

    Args:
        instance: ``(N,)`` int64 per-point instance ids.
        box_instances: ``(K,)`` int64 instance id of each ground-truth box.
    """
    return instance[None] == box_instances[:, None]


class BoxMaskNet(nn.Module):
    """PointNet segmentation head on the points of one box (box frame): per-point foreground logit.

    Input per point: the box-frame position :math:`\\tilde p` (3) and the normal turned into the
    box frame (3). Per-point features are max-pooled over the box's valid points and
    concatenated back (the PointNet segmentation head).

    Args:
        width: feature channels.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        self.local = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.globl = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(3 * width, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, inputs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``inputs (M, P, 6)``, ``valid (M, P)`` bool -> ``(M, P)`` logits (padding gets -inf pooled out)."""
        h = self.local(inputs)
        g = self.globl(h).masked_fill(~valid[..., None], float("-inf")).amax(1)
        g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
        return self.head(torch.cat([h, g[:, None].expand(-1, h.shape[1], -1)], -1))[..., 0]


def _gather_box_points(points, normals, boxes, context, max_points, generator=None):
    """Padded box-frame inputs ``(M, P, 6)``, point indices ``(M, P)`` and validity ``(M, P)`` of the points in each enlarged box.

    Boxes holding more than ``max_points`` points keep a random subset (``generator``) or, without
    one, all of them (``P`` grows to the largest count)."""
    local = box_frame(points, boxes)
    inside = (local.abs() <= context / 2).all(-1)  # (M, N)
    counts = inside.sum(1)
    if generator is not None:
        key = torch.rand(inside.shape, generator=generator) + inside.float()
        P = int(min(max_points, int(counts.max()) if len(counts) else 0))
    else:
        key = inside.float() + torch.linspace(1e-3, 0, inside.shape[1])[None]  # stable order: first points first
        P = int(counts.max()) if len(counts) else 0
    P = max(P, 1)
    idx = torch.topk(key, P, dim=1).indices  # inside points first
    valid = torch.gather(inside, 1, idx)
    p = torch.gather(local, 1, idx[..., None].expand(-1, -1, 3))
    n = _rotate_to_box(normals[idx], boxes[:, 6])
    return torch.cat([p, n], -1), idx, valid


def train_box_masks(model: BoxMaskNet, points: torch.Tensor, normals: torch.Tensor, instance: torch.Tensor,
                    boxes: Sequence[torch.Tensor], box_instances: Sequence[torch.Tensor], *, epochs: int,
                    generator: torch.Generator, context: float = 1.2, max_points: int = 512, copies: int = 2,
                    lr: float = 3e-3, progress: bool = True) -> list[float]:
    r"""Train the mask head on jittered ground-truth boxes (as a detector would deliver them).

    .. math::  \mathcal L = \frac{1}{|V|}\sum_{p \in V} \mathrm{BCE}\big(m(p), [\,\mathrm{inst}(p) = \mathrm{inst}(b)\,]\big)

    over the valid points :math:`V` of every box :math:`b`.

    Args:
        model: the head.
        points, normals: ``(B, N, 3)`` training scenes.
        instance: ``(B, N)`` int64 per-point instance ids.
        boxes: per scene ``(K_s, 7)`` ground-truth boxes; box_instances: per scene ``(K_s,)``.
        epochs: passes (fresh jitter every pass).
        generator: randomness.
        context: enlargement of the box whose points are segmented.
        max_points: points sampled per box.
        copies: jittered copies of each box per pass.
        lr: Adam step.
        progress: ``tqdm.auto`` bar.

    Returns:
        mean loss per epoch.
    """
    check_points(points)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in tqdm(range(epochs), desc="box masks", disable=not progress, leave=False):
        model.train()
        losses = []
        for b in torch.randperm(points.shape[0], generator=generator).tolist():
            if len(boxes[b]) == 0:
                continue
            jittered = _jitter(boxes[b].float().repeat(copies, 1), generator)
            inputs, idx, valid = _gather_box_points(points[b], normals[b], jittered, context, max_points, generator)
            target = (instance[b][idx] == box_instances[b].repeat(copies)[:, None]).float()
            logits = model(inputs, valid)
            loss = F.binary_cross_entropy_with_logits(logits[valid], target[valid])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(sum(losses) / max(len(losses), 1))
    return history


@torch.no_grad()
def instances_from_boxes(points: torch.Tensor, normals: torch.Tensor, detections: dict[str, torch.Tensor],
                         model: BoxMaskNet | None = None, context: float = 1.2, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    r"""Instance masks of one scene from its detected boxes.

    With ``model``: the points of each box (enlarged by ``context``) with foreground probability
    above ``threshold``; the score is the box score times the mean foreground probability of the
    mask (3D-BoNet's mask score). Without: every point inside the box itself (the baseline
    "box = instance").

    Args:
        points, normals: ``(N, 3)`` one scene.
        detections: ``boxes (M, 7)``, ``scores (M,)``, ``labels (M,)``.
        model: trained :class:`BoxMaskNet` or ``None``.
        context, threshold: as above.

    Returns:
        ``masks (M, N)`` bool, ``scores (M,)``, ``labels (M,)``.
    """
    boxes = detections["boxes"].float()
    if model is None or len(boxes) == 0:
        return {"masks": points_in_boxes(points, boxes), "scores": detections["scores"], "labels": detections["labels"]}
    model.eval()
    inputs, idx, valid = _gather_box_points(points, normals, boxes, context, max_points=0)
    prob = torch.sigmoid(model(inputs, valid)) * valid
    masks = torch.zeros(len(boxes), points.shape[0], dtype=torch.bool)
    masks.scatter_(1, idx, (prob > threshold) & valid)
    fg = (prob > threshold) & valid
    mask_score = (prob * fg).sum(1) / fg.sum(1).clamp(min=1)
    return {"masks": masks, "scores": detections["scores"] * mask_score, "labels": detections["labels"]}
