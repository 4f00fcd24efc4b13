"""Benchmark: segmentation throughput per model, and the sparse U-Net's memory against the voxel size.

Part 1 — throughput. Every model of :data:`coursekit.models.segmentation_table.SCENE_MODELS` at the
active profile's sizes, on a batch of procedural rooms (``--scenes`` rooms of ``--points`` points,
normalised to ``[-1, 1]^3``, their RGB-D views for the fusion models): training step (forward +
backward + Adam) and inference (eval, no grad), minimum over repeats; points per second and the
ratio to PointNet measured in the same run.

Part 2 — sparse U-Net memory. One room of ``--memory-points`` points voxelised at resolutions
16 .. 128 (voxel size = room extent / R): occupied sites, kernel-map pairs of the first level,
training-step time, the bytes the first level needs (features of one layer ``4 C N`` plus its
kernel map, two ``int64`` per pair), the peak resident memory one step added (Linux ``VmHWM``, see
``_timing.py``; small steps reuse freed heap and show ~0), and the bytes a dense grid of the same
first-level width would need for one layer's activations (``4 C R^3``): a sparse network grows with
the surface (~R^2, until every point has its own voxel), a dense one with the volume (R^3).

    COURSEKIT_PROFILE=cpu python benchmarks/segmentation_models.py [--scenes 4] [--points 4096]
        [--memory-points 50000] [--repeats 3] [--part all|throughput|memory]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import fix_malloc_threshold, measure  # noqa: E402

from coursekit import runtime  # noqa: E402
from coursekit.data.world.scenes import SCENE_CLASSES  # noqa: E402
from coursekit.models.fusion import PointFusionSeg, VoxelFusionSeg  # noqa: E402
from coursekit.models.segmentation_table import SCENE_MODELS, make_scene_data  # noqa: E402
from coursekit.models.sparse_unet import SparseUNet  # noqa: E402


def _step_fns(model, inputs, labels):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        model.train()
        out = model(*inputs)
        loss = torch.nn.functional.cross_entropy(out.transpose(1, 2), labels, ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(*inputs)

    return train_step, infer


def throughput(args) -> None:
    data = make_scene_data(args.scenes, 1, args.points, 4, (48, 64), seed=0, progress=False)["train"]
    points, labels = data["complete"]
    n = points.shape[0] * points.shape[1]
    print(f"## Segmentation throughput ({runtime.profile()} sizes, {args.scenes} rooms x {args.points} points, "
          f"{torch.get_num_threads()} threads)\n")
    print("| model | params | train step ms | train pts/s | infer ms | infer pts/s | train time / PointNet | infer time / PointNet |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = None
    for name, build in SCENE_MODELS.items():
        torch.manual_seed(0)
        model = build(len(SCENE_CLASSES))
        inputs = (points, data["views"]) if isinstance(model, (VoxelFusionSeg, PointFusionSeg)) else (points,)
        train_step, infer = _step_fns(model, inputs, labels)
        t_train, _ = measure(train_step, args.repeats)
        t_infer, _ = measure(infer, args.repeats)
        ref = ref or (t_train, t_infer)
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params:,} | {1e3 * t_train:.0f} | {n / t_train:,.0f} | {1e3 * t_infer:.0f} | {n / t_infer:,.0f} | "
              f"{t_train / ref[0]:.2f}x | {t_infer / ref[1]:.2f}x |")


def memory(args) -> None:
    data = make_scene_data(1, 1, args.memory_points, 1, (24, 32), seed=0, progress=False)["train"]
    points, labels = data["complete"]
    print(f"\n## Sparse U-Net memory against voxel size (one room, {args.memory_points} points; room extent 2 normalised "
          f"units = {2 * float(data['scale'][0]):.2f} m)\n")
    print("| R | voxel cm | sites | level-0 map pairs | train step ms | sparse level-0 layer MiB | step peak MiB (measured) "
          "| dense level-0 layer MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for resolution in (16, 32, 64, 128):
        torch.manual_seed(0)
        levels = 4
        model = SparseUNet(len(SCENE_CLASSES), resolution=resolution, levels=levels)
        x, _ = model.voxelise(points)
        pairs = sum(len(e.in_idx) for e in x.submanifold_map(3))
        train_step, _ = _step_fns(model, (points,), labels)
        t, peak = measure(train_step, args.repeats)
        width = model.enc[0][0].out_channels
        dense_mib = 4 * width * resolution ** 3 / 2 ** 20
        voxel_cm = 100 * 2 * float(data["scale"][0]) / resolution
        sparse_mib = (4 * width * len(x) + 16 * pairs) / 2 ** 20
        peak_text = "n/a" if peak is None else f"{peak:.1f}"
        print(f"| {resolution} | {voxel_cm:.1f} | {len(x):,} | {pairs:,} | {1e3 * t:.0f} | {sparse_mib:.2f} | {peak_text} | "
              f"{dense_mib:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--memory-points", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part", choices=("all", "throughput", "memory"), default="all")
    args = parser.parse_args()
    fix_malloc_threshold()
    start = time.perf_counter()
    if args.part in ("all", "throughput"):
        throughput(args)
    if args.part in ("all", "memory"):
        memory(args)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
