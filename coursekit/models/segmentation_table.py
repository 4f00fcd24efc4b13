r"""The lecture's segmentation results, live: every segmentation model trained and tested in one call.

:func:`segmentation_table` draws rooms from the procedural world (:func:`~coursekit.data.world.make_scene_split`),
renders each from a few RGB-D cameras (:func:`~coursekit.models.fusion.render_scene_views`) and
evaluates every model under two conditions:

* **complete**: points sampled uniformly on every surface seen from inside the room;
* **partial**: a scan — only the points the cameras see (:func:`~coursekit.models.fusion.partial_scene_scan`),
  as a real RGB-D sensor gives (ScanNet's reconstructions are made this way).

Scenes are normalised into ``[-1, 1]^3`` (centre of the room, divided by its largest half
extent) and the cameras moved with them (:func:`~coursekit.models.fusion.normalise_views`).
Metrics (:mod:`coursekit.metrics.segmentation`): per-class IoU from one confusion matrix over all
test points, **mIoU** over the classes present in prediction or ground truth (ScanNet
convention; ignore label ``-1`` respected), overall accuracy. The **baseline** predicts the
training set's majority class everywhere.

The **fusion ablation** (what image features add over geometry alone) compares each fusion model
with the same 3D network without images: variant (a) against the Sparse U-Net, variant (b)
against PointNet++ (:meth:`SegmentationTable.ablation`).

**Part segmentation** (the ShapeNetPart role): PointNet and PointNet++ segmentation heads with the
object category as input, on :func:`~coursekit.data.world.make_part_segmentation_split`; the
ShapeNetPart **instance mIoU** and class mIoU (:func:`~coursekit.metrics.segmentation.part_instance_miou`)
against the baseline "most frequent training part of the shape's category at every point".

Sizes come from :data:`SIZES` (``fast``: seconds per model; ``cpu``: minutes; ``gpu``: larger).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import runtime, train
from ..data.world import make_part_segmentation_split, make_scene_split
from ..data.world.scenes import SCENE_CLASSES
from ..metrics.segmentation import confusion_matrix, mean_iou, part_instance_miou, per_class_iou
from .fusion import PointFusionSeg, SceneViews, VoxelFusionSeg, normalise_views, partial_scene_scan, render_scene_views
from .pointnet2_seg import PointNet2Seg
from .pointnet_seg import PointNetSeg
from .sparse_unet import SparseUNet

__all__ = ["SIZES", "CONDITIONS", "SCENE_MODELS", "PART_MODELS", "SegmentationTable", "segmentation_table",
           "make_scene_data", "majority_miou"]

SIZES = {
    "fast": dict(conditions=("complete", "partial"), n_train=8, n_test=2, n_points=512, n_views=4, image_size=(36, 48),
                 epochs=10, batch_size=2, lr=5e-3, part_classes=("chair", "table", "mug"), part_train=10, part_test=4,
                 part_points=256, part_epochs=15, part_batch_size=10),
    "cpu": dict(conditions=("complete", "partial"), n_train=24, n_test=8, n_points=2048, n_views=6, image_size=(48, 64),
                epochs=25, batch_size=4, lr=3e-3, part_classes=None, part_train=20, part_test=6, part_points=1024,
                part_epochs=20, part_batch_size=16),
    "gpu": dict(conditions=("complete", "partial"), n_train=200, n_test=40, n_points=8192, n_views=8, image_size=(96, 128),
                epochs=100, batch_size=8, lr=1e-3, part_classes=None, part_train=150, part_test=40, part_points=2048,
                part_epochs=100, part_batch_size=32),
}
"""Sizes per profile: rooms, points per room, cameras, image size, epochs, batch size, Adam's learning rate
(cosine-annealed); the part split's classes (``None``: all), shapes per class, points and epochs."""

CONDITIONS = ("complete", "partial")
"""Scene conditions: uniform samples of the visible-from-inside surfaces, or the cameras' scan."""

SCENE_MODELS: dict[str, Callable[[int], nn.Module]] = {
    "PointNet": lambda k: PointNetSeg(k),
    "PointNet++": lambda k: PointNet2Seg(k, xyz_features=True),
    "Sparse U-Net": lambda k: SparseUNet(k),
    "Fusion (a) voxels": lambda k: VoxelFusionSeg(k),
    "Fusion (b) points": lambda k: PointFusionSeg(k, xyz_features=True),
}
"""Scene segmentation models by row name; the fusion rows read the RGB-D views too."""

FUSION_BASELINES = {"Fusion (a) voxels": "Sparse U-Net", "Fusion (b) points": "PointNet++"}
"""Each fusion model and the same 3D network on geometry alone (the ablation's pairs)."""

PART_MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "PointNet": lambda k, c: PointNetSeg(k, n_categories=c),
    "PointNet++": lambda k, c: PointNet2Seg(k, n_categories=c, xyz_features=True),
}
"""Part segmentation models by row name: ``(n_parts, n_categories) -> model``."""


def make_scene_data(n_train: int, n_test: int, n_points: int, n_views: int, image_size: tuple[int, int], seed: int = 0,
                    progress: bool = True) -> dict:
    """Normalised rooms, their RGB-D views and both conditions' points and labels.

    Returns:
        ``{"train"|"test": {"complete": (points (S, N, 3), semantic (S, N)), "partial": (...),
        "views": SceneViews with (S, V, ...) tensors, "scenes": [...], "centre": (S, 3), "scale": (S,)}}``.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least one train and one test room, got n_train={n_train}, n_test={n_test}")
    train_set, test_set = make_scene_split(n_train, n_test, n_points=n_points, seed=seed, progress=progress)
    out = {}
    for split, data in (("train", train_set), ("test", test_set)):
        g = torch.Generator().manual_seed(seed + (split == "test"))
        views, partial, partial_labels, centres, scales = [], [], [], [], []
        for scene in tqdm(data.scenes, desc=f"render {split}", disable=not progress, leave=False):
            v = render_scene_views(scene, n_views, image_size, generator=g)
            points, labels = partial_scene_scan(v, n_points, g)
            centre = scene.interior.mean(0)
            scale = float((scene.interior[1] - scene.interior[0]).max() / 2)
            views.append(normalise_views(v, centre, scale))
            partial.append((points - centre) / scale)
            partial_labels.append(labels)
            centres.append(centre)
            scales.append(scale)
        centre, scale = torch.stack(centres), torch.tensor(scales)
        out[split] = {
            "complete": ((data.points - centre[:, None]) / scale[:, None, None], data.semantic),
            "partial": (torch.stack(partial), torch.stack(partial_labels)),
            "views": SceneViews(*[torch.stack(x) for x in zip(*views)]),
            "scenes": data.scenes, "centre": centre, "scale": scale,
        }
    return out


def majority_miou(train_labels: torch.Tensor, test_labels: torch.Tensor, n_classes: int) -> dict:
    """The baseline: the training set's most frequent class predicted at every test point.

    Returns:
        ``{"class": c, "miou": float, "oa": float, "per_class": (C,) IoU}``.
    """
    counts = torch.bincount(train_labels[train_labels >= 0], minlength=n_classes)
    c = int(counts.argmax())
    conf = confusion_matrix(torch.full_like(test_labels, c), test_labels, n_classes)
    return {"class": c, "miou": float(mean_iou(conf)), "oa": float(conf.diagonal().sum() / conf.sum()),
            "per_class": per_class_iou(conf)}


class _PerPointLogits(nn.Module):
    """Adapter for :func:`coursekit.train.fit`: ``(B, N, K)`` logits to ``(B, K, N)``; flat view tensors to :class:`SceneViews`."""

    def __init__(self, model: nn.Module, mode: str):
        super().__init__()
        self.model, self.mode = model, mode

    def forward(self, points: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        if self.mode == "views":
            out = self.model(points, SceneViews(*extra))
        elif self.mode == "category":
            out = self.model(points, category=extra[0])
        else:
            out = self.model(points)
        return out.transpose(1, 2)

    def regularizer(self) -> torch.Tensor:
        reg = getattr(self.model, "regularizer", None)
        return reg() if reg is not None else torch.zeros(())


def _fit_predict(model: nn.Module, mode: str, train_inputs: tuple, train_labels: torch.Tensor, test_inputs: tuple,
                 sizes: dict, epochs: int, batch_size: int, seed: int, progress: bool, desc: str) -> tuple[torch.Tensor, float]:
    """Train with Adam + cosine schedule on cross-entropy (+ regulariser); test predictions ``(S, N)`` and seconds."""
    wrapped = _PerPointLogits(model, mode)

    def loss_fn(output, target):
        return train.cross_entropy(output, target) + wrapped.regularizer()

    data = train.batches(*train_inputs, train_labels, batch_size=batch_size, shuffle=True,
                         generator=torch.Generator().manual_seed(seed), drop_last=len(train_labels) > batch_size)
    start = time.perf_counter()
    train.fit(wrapped, data, epochs=epochs, lr=sizes["lr"], loss_fn=loss_fn, progress=progress, desc=desc,
              scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs)))
    seconds = time.perf_counter() - start
    unused_targets = torch.zeros(len(test_inputs[0]))  # predict() drops a batch's last element
    logits = train.predict(wrapped, train.batches(*test_inputs, unused_targets, batch_size=batch_size))
    return logits.argmax(1), seconds


@dataclass(eq=False)
class SegmentationTable:
    """Results of :func:`segmentation_table`.

    Attributes:
        rows: one dict per (model, condition): ``model, condition, miou, oa, per_class ((C,) IoU,
            NaN for absent classes), parameters, train_seconds``.
        baseline: per condition, :func:`majority_miou`'s dict.
        part_rows: one dict per part model: ``model, instance_miou, class_miou, train_seconds``;
            ``part_baseline`` the majority-part result.
        class_names: the scene classes (:data:`~coursekit.data.world.scenes.SCENE_CLASSES`).
        predictions: ``(model, condition) -> (S, N)`` test predictions.
        data: :func:`make_scene_data`'s output (test points, labels, views for figures).
        models: the trained models by ``(model, condition)``.
        sizes: the sizes used; seconds: total wall time.
    """

    rows: list[dict]
    baseline: dict[str, dict]
    part_rows: list[dict]
    part_baseline: dict
    class_names: tuple[str, ...]
    predictions: dict = field(repr=False)
    data: dict = field(repr=False)
    models: dict = field(repr=False)
    sizes: dict = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, model: str, condition: str = "complete") -> dict:
        """The row of ``model`` under ``condition``."""
        for r in self.rows:
            if r["model"] == model and r["condition"] == condition:
                return r
        raise KeyError(f"no row for {model!r} / {condition!r}")

    def ablation(self) -> list[dict]:
        """Per condition and fusion model: its mIoU, the geometry-only network's, and the gain."""
        out = []
        for fused, geometry in FUSION_BASELINES.items():
            for condition in self.sizes.get("conditions", CONDITIONS):
                try:
                    a, b = self.row(fused, condition), self.row(geometry, condition)
                except KeyError:
                    continue
                out.append({"fusion": fused, "geometry only": geometry, "condition": condition,
                            "miou fusion": a["miou"], "miou geometry": b["miou"], "gain": a["miou"] - b["miou"]})
        return out

    def present_classes(self) -> list[int]:
        """Scene classes with a defined IoU for some model (present in some test labels or predictions)."""
        return [c for c in range(len(self.class_names)) if any(not torch.isnan(r["per_class"][c]) for r in self.rows)]

    def format(self) -> str:
        """Markdown tables: mIoU / OA per model and condition with the baseline, per-class IoU, the ablation, parts."""
        lines = ["| model | condition | mIoU | OA | train s |", "| --- | --- | --- | --- | --- |"]
        for cond, b in self.baseline.items():
            lines.append(f"| majority ({self.class_names[b['class']]}) | {cond} | {b['miou']:.3f} | {b['oa']:.3f} | - |")
        for r in self.rows:
            lines.append(f"| {r['model']} | {r['condition']} | {r['miou']:.3f} | {r['oa']:.3f} | {r['train_seconds']:.1f} |")
        present = self.present_classes()
        lines += ["", "| model | condition | " + " | ".join(self.class_names[c] for c in present) + " |",
                  "| --- | --- |" + " --- |" * len(present)]
        for r in self.rows:
            cells = ["-" if torch.isnan(r["per_class"][c]) else f"{float(r['per_class'][c]):.2f}" for c in present]
            lines.append(f"| {r['model']} | {r['condition']} | " + " | ".join(cells) + " |")
        if self.ablation():
            lines += ["", "| fusion | vs geometry only | condition | mIoU fusion | mIoU geometry | gain |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for a in self.ablation():
                lines.append(f"| {a['fusion']} | {a['geometry only']} | {a['condition']} | {a['miou fusion']:.3f} | "
                             f"{a['miou geometry']:.3f} | {a['gain']:+.3f} |")
        if self.part_rows:
            lines += ["", "| part model | instance mIoU | class mIoU | train s |", "| --- | --- | --- | --- |",
                      f"| majority part | {self.part_baseline['instance_miou']:.3f} | {self.part_baseline['class_miou']:.3f} | - |"]
            for r in self.part_rows:
                lines.append(f"| {r['model']} | {r['instance_miou']:.3f} | {r['class_miou']:.3f} | {r['train_seconds']:.1f} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _part_rows(sizes: dict, part_models: Sequence[str], seed: int, progress: bool) -> tuple[list[dict], dict]:
    options = dict(seed=seed, progress=progress)
    if sizes["part_classes"] is not None:
        options["classes"] = sizes["part_classes"]
    train_set, test_set = make_part_segmentation_split(sizes["part_train"], sizes["part_test"], sizes["part_points"], **options)
    n_parts, n_cat = len(train_set.part_names), len(train_set.class_names)
    parts_of = dict(enumerate(test_set.class_parts))
    majority = []
    for k in test_set.labels.tolist():
        labels = train_set.part_labels[train_set.labels == k]
        majority.append(int(torch.bincount(labels.flatten(), minlength=n_parts).argmax()))
    baseline = part_instance_miou([torch.full_like(p, m) for p, m in zip(test_set.part_labels, majority)],
                                  list(test_set.part_labels), test_set.labels.tolist(), parts_of)
    rows = []
    for name in part_models:
        runtime.seed_everything(seed)
        model = PART_MODELS[name](n_parts, n_cat)
        pred, seconds = _fit_predict(model, "category", (train_set.points, train_set.labels), train_set.part_labels,
                                     (test_set.points, test_set.labels), sizes, sizes["part_epochs"],
                                     sizes["part_batch_size"], seed, progress, f"parts: {name}")
        result = part_instance_miou(list(pred), list(test_set.part_labels), test_set.labels.tolist(), parts_of)
        rows.append({"model": name, "instance_miou": result["instance_miou"], "class_miou": result["class_miou"],
                     "train_seconds": seconds})
    return rows, baseline


def segmentation_table(models: Sequence[str] | None = None, *, part_models: Sequence[str] | None = None, seed: int = 0,
                       sizes: dict | None = None, progress: bool = True) -> SegmentationTable:
    r"""Train and test every segmentation model on the world's rooms (complete and partial) and on parts.

    .. math::  \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}, \qquad
               \mathrm{mIoU} = \frac{1}{|\mathcal C'|}\sum_{c \in \mathcal C'} \mathrm{IoU}_c

    Args:
        models: row names of :data:`SCENE_MODELS` (default: all).
        part_models: row names of :data:`PART_MODELS` (default: all; ``()`` skips part segmentation).
        seed: seeds the data, the initialisations and the batch order.
        sizes: entries overriding the profile's :data:`SIZES`.
        progress: progress bars.

    Returns:
        :class:`SegmentationTable` (``print(table)`` shows the markdown tables).
    """
    tic = time.perf_counter()
    sizes = dict(runtime.pick(SIZES), **(sizes or {}))
    unknown = set(sizes) - set(SIZES["fast"])
    if unknown:
        raise ValueError(f"unknown sizes {sorted(unknown)}; known: {sorted(SIZES['fast'])}")
    models = list(SCENE_MODELS) if models is None else list(models)
    part_models = list(PART_MODELS) if part_models is None else list(part_models)
    for name in models:
        if name not in SCENE_MODELS:
            raise ValueError(f"unknown model {name!r}; known: {list(SCENE_MODELS)}")
    data = make_scene_data(sizes["n_train"], sizes["n_test"], sizes["n_points"], sizes["n_views"], tuple(sizes["image_size"]),
                           seed, progress)
    n_classes = len(SCENE_CLASSES)
    rows, baseline, predictions, trained = [], {}, {}, {}
    for condition in sizes["conditions"]:
        train_points, train_labels = data["train"][condition]
        test_points, test_labels = data["test"][condition]
        baseline[condition] = majority_miou(train_labels, test_labels, n_classes)
        for name in tqdm(models, desc=f"models ({condition})", disable=not progress, leave=False):
            runtime.seed_everything(seed)
            model = SCENE_MODELS[name](n_classes)
            mode = "views" if isinstance(model, (VoxelFusionSeg, PointFusionSeg)) else "points"
            extra_train = tuple(data["train"]["views"]) if mode == "views" else ()
            extra_test = tuple(data["test"]["views"]) if mode == "views" else ()
            pred, seconds = _fit_predict(model, mode, (train_points, *extra_train), train_labels, (test_points, *extra_test),
                                         sizes, sizes["epochs"], sizes["batch_size"], seed, progress, f"{name} ({condition})")
            conf = confusion_matrix(pred, test_labels, n_classes)
            rows.append({"model": name, "condition": condition, "miou": float(mean_iou(conf)),
                         "oa": float(conf.diagonal().sum() / conf.sum()), "per_class": per_class_iou(conf),
                         "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": seconds})
            predictions[(name, condition)] = pred
            trained[(name, condition)] = model
    part_rows, part_baseline = _part_rows(sizes, part_models, seed, progress) if part_models else ([], {})
    return SegmentationTable(rows, baseline, part_rows, part_baseline, SCENE_CLASSES, predictions, data, trained,
                             dict(sizes), time.perf_counter() - tic)
