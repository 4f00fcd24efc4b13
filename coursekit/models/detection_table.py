r"""The lecture's detection and instance-segmentation table, computed: every detector trained and scored on one scene split.

:func:`detection_table` draws a train/test split of furnished rooms
(:func:`coursekit.data.world.datasets.make_scene_split`), trains

* **Sliding Shapes** (:mod:`~coursekit.models.sliding_shapes`): exhaustive windows + classifier;
* the **two-stage detector** (:mod:`~coursekit.models.two_stage_detector`) on the voxelised
  complete point cloud, scored after the first stage (RPN proposals, class = anchor class) and
  after refinement;
* the **Volumetric R-CNN** (:mod:`~coursekit.models.volumetric_rcnn`) on TSDF volumes fused
  from rendered depth maps (a partial scan);
* the **box mask head** (:mod:`~coursekit.models.instance_segmentation`) on the two-stage
  detector's boxes,

and scores them next to the trivial baseline **"boxes at class mean size on the floor"**
(:func:`floor_baseline`). Box AP at 3D IoU 0.25 and 0.5 and instance-mask AP at mask IoU 0.25
and 0.5 use :mod:`coursekit.metrics.detection` with ``interpolation="area"``: the area under
the monotone precision envelope (VOC2010+, the ScanNet / SUN RGB-D convention of VoteNet's
``eval_det.py``), a detection being a true positive when its IoU *exceeds* the threshold.
Means are over the classes with ground truth in the test split.

Sizes come from one ``runtime.pick`` table (:data:`SIZES`); everything runs on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from coursekit import runtime
from coursekit.data.world.datasets import SceneSet, make_scene_split
from coursekit.data.world.scenes import SCENE_CLASSES
from coursekit.metrics.detection import average_precision, mask_average_precision

from .instance_segmentation import BoxMaskNet, gt_instance_masks, instances_from_boxes, train_box_masks
from .sliding_shapes import ClassStatistics, SlidingShapes, SlidingStats, class_statistics, scene_bounds, train_sliding_shapes, voxelize_scene
from .two_stage_detector import TwoStageDetector, train_two_stage
from .volumetric_rcnn import VolumetricRCNN, tsdf_volumes

__all__ = ["SIZES", "THRESHOLDS", "floor_baseline", "DetectionResults", "detection_table"]

SIZES = {
    "fast": {"n_train": 6, "n_test": 3, "n_points": 4000, "voxel_size": 0.2, "sliding_epochs": 10, "rpn_epochs": 6,
             "refine_epochs": 10, "mask_epochs": 2, "n_views": 6, "image_size": (48, 64)},
    "cpu": {"n_train": 64, "n_test": 16, "n_points": 12000, "voxel_size": 0.2, "sliding_epochs": 40, "rpn_epochs": 40,
            "refine_epochs": 60, "mask_epochs": 12, "n_views": 8, "image_size": (96, 128)},
    "gpu": {"n_train": 300, "n_test": 60, "n_points": 20000, "voxel_size": 0.2, "sliding_epochs": 60, "rpn_epochs": 60,
            "refine_epochs": 80, "mask_epochs": 20, "n_views": 12, "image_size": (120, 160)},
}
"""Split and training sizes per runtime profile (read through ``runtime.pick``)."""

THRESHOLDS = (0.25, 0.5)
"""IoU thresholds of the table (ScanNet's mAP@0.25 and mAP@0.5)."""


def floor_baseline(stats: ClassStatistics, regions, generator: torch.Generator) -> list[dict[str, torch.Tensor]]:
    r"""The trivial detector: boxes of each class's mean size tiling each room's floor, scored at random.

    For class :math:`c` the boxes have size :math:`\bar s_c`, centre height :math:`\bar y_c` (the
    training mean: on the floor for furniture, on the wall for pictures), yaw 0, and centres on a
    lattice of spacing :math:`(\bar s_{c,x}, \bar s_{c,z})` over the room's floor; scores are
    uniform random numbers (no information), so its AP is the chance level of guessing sizes.

    Args:
        stats: training class statistics.
        regions: per room ``(2, 3)`` interior.
        generator: draws the scores.

    Returns:
        per room ``boxes (M, 7)``, ``scores (M,)``, ``labels (M,)`` (semantic ids).
    """
    out = []
    for region in regions:
        region = torch.as_tensor(region, dtype=torch.float32)
        boxes, labels = [], []
        for c, size, height in zip(stats.classes.tolist(), stats.sizes, stats.heights):
            axes = []
            for a in (0, 2):
                n = max(1, math.floor(float(region[1, a] - region[0, a]) / float(size[a])))
                axes.append(region[0, a] + size[a] / 2 + size[a] * torch.arange(n))
            x, z = torch.meshgrid(*axes, indexing="ij")
            centres = torch.stack([x.flatten(), torch.full((x.numel(),), float(height)), z.flatten()], 1)
            boxes.append(torch.cat([centres, size.expand(len(centres), 3), torch.zeros(len(centres), 1)], 1))
            labels.append(torch.full((len(centres),), c, dtype=torch.int64))
        boxes = torch.cat(boxes)
        out.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=generator), "labels": torch.cat(labels)})
    return out


@dataclass
class DetectionResults:
    """What :func:`detection_table` computed.

    Attributes:
        class_names: names of the detected classes (``SCENE_CLASSES`` order).
        box_ap: model -> threshold -> ``(K,)`` float64 per-class box AP (NaN: no test ground truth).
        mask_ap: model -> threshold -> ``(K,)`` per-class instance-mask AP.
        train_seconds: model -> wall-clock training time.
        train_cpu_seconds: model -> CPU time of this process while training (wall time on a loaded machine overstates the cost).
        sliding: cost of Sliding Shapes on the test split (windows, seconds).
        detections: model -> per test room ``boxes, scores, labels``.
        models: the trained networks.
        stats: class statistics of the training split.
        train, test: the :class:`SceneSet` splits; bounds: the common voxel grid's bounds.
    """

    class_names: tuple[str, ...]
    box_ap: dict[str, dict[float, torch.Tensor]]
    mask_ap: dict[str, dict[float, torch.Tensor]]
    train_seconds: dict[str, float]
    train_cpu_seconds: dict[str, float]
    sliding: SlidingStats
    detections: dict[str, list[dict[str, torch.Tensor]]]
    models: dict[str, nn.Module]
    stats: ClassStatistics
    train: SceneSet
    test: SceneSet
    bounds: torch.Tensor
    sizes: dict = field(default_factory=dict)

    def mean(self, table: str, model: str, threshold: float) -> float:
        """Mean AP over the classes with test ground truth (``table`` is ``"box"`` or ``"mask"``)."""
        return float(torch.nanmean((self.box_ap if table == "box" else self.mask_ap)[model][threshold]))

    def markdown(self) -> str:
        """Two markdown tables (box AP, then instance-mask AP): a row per class and the mean, a column per model, cells ``AP@0.25 / AP@0.5``."""
        lines = []
        for title, table in (("Box AP (3D IoU of oriented boxes)", self.box_ap), ("Instance mask AP (mask IoU)", self.mask_ap)):
            models = list(table)
            lines += [f"**{title}**, AP@0.25 / AP@0.5, area under the precision envelope (VOC2010+/ScanNet):", "",
                      "| class | " + " | ".join(models) + " |", "| --- |" + " ---: |" * len(models)]
            fmt = lambda v: "n/a" if math.isnan(v) else f"{v:.2f}"  # noqa: E731
            for k, name in enumerate(self.class_names):
                lines.append(f"| {name} | " + " | ".join(" / ".join(fmt(float(table[m][t][k])) for t in THRESHOLDS) for m in models) + " |")
            lines.append("| **mean** | " + " | ".join(" / ".join(f"{float(torch.nanmean(table[m][t])):.3f}" for t in THRESHOLDS)
                                                  for m in models) + " |")
            lines.append("")
        lines.append(f"Sliding Shapes on {len(self.test)} test rooms: {self.sliding.windows} windows in {self.sliding.seconds:.1f} s "
                     f"({self.sliding.windows / max(self.sliding.seconds, 1e-9):.0f} windows/s).")
        lines.append("Training seconds, wall (CPU): " + ", ".join(f"{k} {v:.0f} ({self.train_cpu_seconds[k]:.0f})"
                                                               for k, v in self.train_seconds.items()) + ".")
        return "\n".join(lines)


def _stopwatch():
    """A function returning the wall and process CPU seconds since this call."""
    wall, cpu = time.perf_counter(), time.process_time()
    return lambda: (time.perf_counter() - wall, time.process_time() - cpu)


def _box_ap(detections, test: SceneSet, stats: ClassStatistics) -> dict[float, torch.Tensor]:
    n = len(SCENE_CLASSES)
    return {t: average_precision([d["boxes"] for d in detections], [d["scores"] for d in detections], [d["labels"] for d in detections],
                                 test.boxes, test.box_labels, t, n_classes=n)[stats.classes] for t in THRESHOLDS}


def _mask_ap(instances, gt_masks, test: SceneSet, stats: ClassStatistics) -> dict[float, torch.Tensor]:
    n = len(SCENE_CLASSES)
    return {t: mask_average_precision([i["masks"] for i in instances], [i["scores"] for i in instances], [i["labels"] for i in instances],
                                      gt_masks, test.box_labels, t, n_classes=n)[stats.classes] for t in THRESHOLDS}


def detection_table(seed: int = 0, sizes: dict | None = None, progress: bool = True) -> DetectionResults:
    """Train every detector of the lecture on one scene split and score them against the trivial baseline.

    Args:
        seed: dataset and training seed.
        sizes: overrides of the active profile's entry of :data:`SIZES`.
        progress: ``tqdm.auto`` bars.

    Returns:
        :class:`DetectionResults` (``.markdown()`` prints the tables).
    """
    cfg = {**runtime.pick(SIZES), **(sizes or {})}
    generator = runtime.seed_everything(seed)
    train, test = make_scene_split(cfg["n_train"], cfg["n_test"], n_points=cfg["n_points"], seed=seed, progress=progress)
    stats = class_statistics(train.boxes, train.box_labels)
    voxel = cfg["voxel_size"]
    bounds = scene_bounds([s.size for s in train.scenes + test.scenes], voxel)
    volume, volume_test = (voxelize_scene(s.points, s.normals, bounds, voxel) for s in (train, test))
    regions = [s.interior for s in train.scenes]
    test_regions = [s.interior for s in test.scenes]
    detections, seconds, cpu_seconds, models = {}, {}, {}, {}

    detections["trivial: class mean size on the floor"] = floor_baseline(stats, test_regions, generator)

    steps = tqdm(total=4, desc="detection table", disable=not progress, leave=False)
    stop = _stopwatch()
    sliding = SlidingShapes(stats, stride=voxel)
    train_sliding_shapes(sliding, volume, bounds, train.boxes, train.box_labels, regions, cfg["sliding_epochs"], generator, progress=progress)
    seconds["sliding shapes"], cpu_seconds["sliding shapes"] = stop()
    detections["sliding shapes"] = sliding.detect(volume_test, bounds, test_regions)
    models["sliding shapes"] = sliding
    steps.update()

    stop = _stopwatch()
    two_stage = TwoStageDetector(stats, bounds, voxel)
    train_two_stage(two_stage, volume, train.boxes, train.box_labels, epochs=cfg["rpn_epochs"], refine_epochs=cfg["refine_epochs"],
                    generator=generator, progress=progress)
    seconds["two-stage"], cpu_seconds["two-stage"] = stop()
    detections["two-stage: proposals only"] = two_stage.detect(volume_test, refine=False)
    detections["two-stage: refined"] = two_stage.detect(volume_test)
    models["two-stage"] = two_stage
    steps.update()

    stop = _stopwatch()
    views = {"n_views": cfg["n_views"], "image_size": tuple(cfg["image_size"]), "progress": progress}
    tsdf_train = tsdf_volumes(train.scenes, bounds, voxel, **views)
    volumetric = VolumetricRCNN(stats, bounds, voxel)
    train_two_stage(volumetric, tsdf_train, train.boxes, train.box_labels, epochs=cfg["rpn_epochs"], refine_epochs=cfg["refine_epochs"],
                    generator=generator, progress=progress)
    seconds["volumetric R-CNN (incl. fusion)"], cpu_seconds["volumetric R-CNN (incl. fusion)"] = stop()
    detections["volumetric R-CNN (TSDF)"] = volumetric.detect(tsdf_volumes(test.scenes, bounds, voxel, **views))
    models["volumetric R-CNN"] = volumetric
    steps.update()

    stop = _stopwatch()
    masks = BoxMaskNet()
    train_box_masks(masks, train.points, train.normals, train.instance, train.boxes, [s.box_instances for s in train.scenes],
                    epochs=cfg["mask_epochs"], generator=generator, progress=progress)
    seconds["box mask head"], cpu_seconds["box mask head"] = stop()
    models["box mask head"] = masks
    steps.update()
    steps.close()

    box_ap = {name: _box_ap(d, test, stats) for name, d in detections.items()}
    gt_masks = [gt_instance_masks(test.instance[i], s.box_instances) for i, s in enumerate(test.scenes)]
    refined = detections["two-stage: refined"]
    instance_sets = {
        "trivial boxes as masks": [instances_from_boxes(test.points[i], test.normals[i], d)
                                   for i, d in enumerate(detections["trivial: class mean size on the floor"])],
        "two-stage boxes as masks": [instances_from_boxes(test.points[i], test.normals[i], d) for i, d in enumerate(refined)],
        "two-stage + fg/bg mask (3D-BoNet)": [instances_from_boxes(test.points[i], test.normals[i], d, masks) for i, d in enumerate(refined)],
    }
    mask_ap = {name: _mask_ap(inst, gt_masks, test, stats) for name, inst in instance_sets.items()}
    names = tuple(SCENE_CLASSES[c] for c in stats.classes.tolist())
    return DetectionResults(names, box_ap, mask_ap, seconds, cpu_seconds, sliding.last, detections, models, stats, train, test, bounds, cfg)


if __name__ == "__main__":  # python -m coursekit.models.detection_table (COURSEKIT_PROFILE picks the sizes)
    print(runtime.describe())
    print(detection_table().markdown())
