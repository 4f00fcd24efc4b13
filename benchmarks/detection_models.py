"""Detector throughput, and the cost of exhaustive sliding windows against room size (the slide's "expensive!").

    python benchmarks/detection_models.py           # rooms of 3..9 m, 8 scenes for throughput
    python benchmarks/detection_models.py --quick   # rooms of 3..5 m, 2 scenes

Prints two markdown tables.

1. **Sliding windows vs room size.** Square rooms of side ``L`` (height 2.6 m) on a 0.2 m grid,
   the lecture's 10 detected classes at their mean sizes from a training split, stride 0.2 m:
   the closed-form window count (:func:`window_counts`), Sliding Shapes' detection time, and the
   two-stage detector's (anchors on the stride-2 feature grid, RPN + refinement) on the same
   volume, with their ratio. The cost does not depend on the weights, so the networks are untrained.
2. **Throughput** per model on generated rooms (scenes per second, inference, batch 1), with TSDF
   fusion timed separately for the Volumetric R-CNN and the mask head timed per detected box set.

Times are the minimum of a few repeats (:func:`benchmarks._timing.measure`); the peak-memory
column is the resident memory one call added.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import fix_malloc_threshold, measure  # noqa: E402

from coursekit.data.world.datasets import make_scene_split  # noqa: E402
from coursekit.models.instance_segmentation import BoxMaskNet, instances_from_boxes  # noqa: E402
from coursekit.models.sliding_shapes import (SlidingShapes, class_statistics, scene_bounds, voxelize_scene,  # noqa: E402
                                             window_counts)
from coursekit.models.two_stage_detector import TwoStageDetector  # noqa: E402
from coursekit.models.volumetric_rcnn import VolumetricRCNN, tsdf_volumes  # noqa: E402

VOXEL = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small rooms, few scenes")
    args = parser.parse_args()
    fix_malloc_threshold()
    torch.manual_seed(0)
    sides = (3.0, 4.0, 5.0) if args.quick else (3.0, 5.0, 7.0, 9.0)
    n_scenes = 2 if args.quick else 8
    repeats = 1 if args.quick else 3
    train, test = make_scene_split(8, n_scenes, n_points=12000, progress=False)
    stats = class_statistics(train.boxes, train.box_labels)

    print(f"## Sliding windows against room size (voxel {VOXEL} m, stride {VOXEL} m, {len(stats.classes)} classes x 2 yaws)\n")
    print("| room | grid (D, H, W) | windows | sliding shapes s | windows/s | two-stage anchors | two-stage s | sliding / two-stage |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side in sides:
        bounds = scene_bounds([(side, 2.6, side)], VOXEL)
        region = torch.tensor([[-side / 2, 0.0, -side / 2], [side / 2, 2.6, side / 2]])
        g = torch.Generator().manual_seed(0)
        points = region[0] + torch.rand(1, 20000, 3, generator=g) * (region[1] - region[0])
        volume = voxelize_scene(points, torch.nn.functional.normalize(torch.randn(1, 20000, 3, generator=g), dim=-1), bounds, VOXEL)
        sliding = SlidingShapes(stats, stride=VOXEL)
        two_stage = TwoStageDetector(stats, bounds, VOXEL).eval()
        t_slide, _ = measure(lambda: sliding.detect(volume, bounds, [region]), repeats)
        t_two, _ = measure(lambda: two_stage.detect(volume), repeats)
        n = int(window_counts(region, stats.sizes, VOXEL).sum())
        print(f"| {side:.0f} x 2.6 x {side:.0f} m | {tuple(volume.shape[2:])} | {n} | {t_slide:.2f} | {n / t_slide:.0f} | "
              f"{len(two_stage.anchors)} | {t_two:.3f} | {t_slide / t_two:.1f} |", flush=True)

    print(f"\n## Inference throughput ({n_scenes} generated rooms, batch 1, untrained weights)\n")
    print("| model | s / scene | scenes / s | peak MiB |")
    print("| --- | ---: | ---: | ---: |")
    bounds = scene_bounds([s.size for s in train.scenes + test.scenes], VOXEL)
    volume = voxelize_scene(test.points, test.normals, bounds, VOXEL)
    regions = [s.interior for s in test.scenes]
    sliding = SlidingShapes(stats, stride=VOXEL)
    two_stage = TwoStageDetector(stats, bounds, VOXEL).eval()
    volumetric = VolumetricRCNN(stats, bounds, VOXEL).eval()
    masks = BoxMaskNet().eval()
    detections = two_stage.detect(volume)

    def fuse():
        return tsdf_volumes(test.scenes, bounds, VOXEL, progress=False)

    tsdf = fuse()
    rows = [
        ("voxelize_scene (12k points)", lambda: voxelize_scene(test.points, test.normals, bounds, VOXEL)),
        ("sliding shapes (all windows)", lambda: [sliding.detect(volume[i: i + 1], bounds, regions[i: i + 1]) for i in range(n_scenes)]),
        ("two-stage: proposals", lambda: [two_stage.detect(volume[i: i + 1], refine=False) for i in range(n_scenes)]),
        ("two-stage: proposals + refinement", lambda: [two_stage.detect(volume[i: i + 1]) for i in range(n_scenes)]),
        ("TSDF fusion (8 views 96x128)", fuse),
        ("volumetric R-CNN on the TSDF", lambda: [volumetric.detect(tsdf[i: i + 1]) for i in range(n_scenes)]),
        ("box mask head (per scene's detections)",
         lambda: [instances_from_boxes(test.points[i], test.normals[i], detections[i], masks) for i in range(n_scenes)]),
    ]
    with torch.no_grad():
        for name, fn in rows:
            t, peak = measure(fn, repeats)
            per = t / n_scenes
            print(f"| {name} | {per:.3f} | {1 / per:.1f} | {'n/a' if peak is None else f'{peak:.0f}'} |", flush=True)


if __name__ == "__main__":
    main()
