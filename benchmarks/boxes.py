"""Oriented-box IoU, 3D NMS and TSDF fusion speed, with the plain per-pair peer measured in the same run.

    python benchmarks/boxes.py            # 10k boxes, TSDF at 128^3 (about a minute on 2 cores)
    python benchmarks/boxes.py --quick    # 2k boxes, TSDF at 64^3

Prints one markdown table. IoU: 10k proposals against the 200 objects they surround (the
evaluation pattern; NMS does the 10k x 10k all-pairs part, sparsely). Peers: ``_box_iou_3d_naive``
(per-pair Python Sutherland-Hodgman, what a student writes; it runs on a subset and the ratio
compares time per pair) and brute-force NMS (naive IoU matrix + greedy loop, on a subset). No TSDF peer is
installed here (Open3D is not), so fusion reports depth maps per second only. Times are the
minimum of a few repeats, float64 boxes, float32 depth maps.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from coursekit.geometry.boxes import _box_iou_3d_naive, box_iou_3d, nms_3d
from coursekit.geometry.camera import fov_intrinsics, look_at
from coursekit.geometry.tsdf import tsdf_fuse


def best_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def proposals(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` boxes as a detector emits them: clusters of 50 jittered proposals around n/50 objects in a
    40 m hall. Returns ``(proposals (n, 7), objects (n/50, 7))``."""
    gen = torch.Generator().manual_seed(seed)
    objects = n // 50
    centre = torch.rand(objects, 3, generator=gen, dtype=torch.float64) * torch.tensor([40.0, 1.0, 40.0], dtype=torch.float64)
    size = torch.rand(objects, 3, generator=gen, dtype=torch.float64) * 1.5 + 0.4
    yaw = torch.rand(objects, 1, generator=gen, dtype=torch.float64) * math.pi
    base = torch.cat([centre, size, yaw], -1).repeat_interleave(50, 0)
    jitter = torch.randn(n, 7, generator=gen, dtype=torch.float64) * torch.tensor([0.2, 0.1, 0.2, 0.1, 0.1, 0.1, 0.2], dtype=torch.float64)
    boxes = base + jitter
    boxes[:, 3:6] = boxes[:, 3:6].clamp(min=0.1)
    return boxes, base[::50]


def brute_force_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    iou = _box_iou_3d_naive(boxes, boxes)
    keep = []
    for i in torch.sort(scores, descending=True, stable=True).indices.tolist():
        if all(iou[i, k] <= thr for k in keep):
            keep.append(i)
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, res, views = (2000, 64, 8) if args.quick else (10_000, 128, 8)
    rows = []

    boxes, objects = proposals(n)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t_iou = best_time(lambda: box_iou_3d(boxes, objects))
    overlapping = int((box_iou_3d(boxes, objects) > 0).sum())
    sub = boxes[:500]
    t_naive = best_time(lambda: _box_iou_3d_naive(sub, objects), 1)
    per_pair = t_naive / (sub.shape[0] * len(objects))
    rows.append((f"3D IoU proposals x objects ({overlapping} overlapping)", f"{n} x {len(objects)}", t_iou, "naive per-pair Python",
                 f"500 x {len(objects)}: {t_naive * 1e3:.0f} ms", per_pair * n * len(objects) / t_iou))

    t_nms = best_time(lambda: nms_3d(boxes, scores, 0.25))
    kept = len(nms_3d(boxes, scores, 0.25))
    m = 300
    t_brute = best_time(lambda: brute_force_nms(boxes[:m], scores[:m], 0.25), 1)
    t_nms_m = best_time(lambda: nms_3d(boxes[:m], scores[:m], 0.25))
    assert nms_3d(boxes[:m], scores[:m], 0.25).tolist() == brute_force_nms(boxes[:m], scores[:m], 0.25)
    rows.append((f"NMS 3D, IoU > 0.25 (kept {kept})", f"{n} boxes", t_nms, "naive IoU matrix + greedy",
                 f"{m} boxes: {t_brute * 1e3:.0f} ms (coursekit {t_nms_m * 1e3:.1f} ms)", t_brute / t_nms_m))

    H, W = 240, 320
    K = fov_intrinsics(60.0, (H, W)).expand(views, 3, 3)
    a = 2 * math.pi * torch.arange(views, dtype=torch.float64) / views
    R, t = look_at(torch.stack([2 * a.sin(), torch.full_like(a, 0.8), 2 * a.cos()], -1), torch.zeros(3, dtype=torch.float64))
    depths = 2.0 + 0.3 * torch.rand(views, H, W, generator=torch.Generator().manual_seed(2))
    bounds = torch.tensor([[-1.0] * 3, [1.0] * 3])
    t_fuse = best_time(lambda: tsdf_fuse(depths, K, R.float(), t.float(), bounds, res, truncation=4 * 2 / res), 2)
    rows.append((f"TSDF fusion {H}x{W} depth maps", f"{res}^3, {views} maps", t_fuse, "none installed (Open3D absent)",
                 f"{views / t_fuse:.1f} depth maps/s", float("nan")))

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print("| op | size | coursekit | peer | peer measurement | speed-up vs peer |")
    print("| --- | --- | --- | --- | --- | --- |")
    for op, size, t_ours, peer, peer_text, ratio in rows:
        print(f"| {op} | {size} | {t_ours * 1e3:.0f} ms | {peer} | {peer_text} | {'-' if math.isnan(ratio) else f'{ratio:.0f}x'} |")


if __name__ == "__main__":
    main()
