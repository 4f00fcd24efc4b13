"""Multi-view stereo benchmarks (lecture 06): warping + cost volume throughput, MVSNet vs R-MVSNet memory, fusion speed.

    python benchmarks/mvs.py            # the three tables at the sizes below
    python benchmarks/mvs.py --quick    # smaller sizes (seconds)
    python benchmarks/mvs.py --table    # also the DTU-layout table in the active profile (COURSEKIT_PROFILE)

1. **Homography warping + variance cost volume**: coursekit's ``homography_warp`` (one 3x3
   matrix per plane, one ``grid_sample``) against the peer a student writes first, warping
   through explicit 3D points per plane (``unproject`` + ``project`` + ``grid_sample``,
   i.e. ``depth_warp`` with a constant depth map), both followed by the variance volume;
   min of repeats, ``ratio = peer / coursekit`` (above 1: coursekit faster).
2. **Peak memory against depth planes** (the slide's motivation for R-MVSNet): peak tensor
   memory of MVSNet (whole volume + 3D U-Net) and R-MVSNet (one slice at a time + GRU
   states) at the same ``D``, inference and one training step
   (:func:`coursekit.models.mvs.rmvsnet.memory_vs_depth`, exact tensor accounting).
3. **Depth-map fusion**: ``fuse_depth_maps`` on ``V`` views, points per second.
"""

from __future__ import annotations

import argparse
import time

import torch

from coursekit.data.mvs import make_mvs_scene
from coursekit.geometry.camera import fov_intrinsics, look_at
from coursekit.geometry.depth_fusion import fuse_depth_maps
from coursekit.geometry.homography import depth_warp, homography_warp
from coursekit.models.mvs.cost_volume import variance_cost_volume
from coursekit.models.mvs.mvsnet import MVSNet
from coursekit.models.mvs.rmvsnet import RMVSNet, memory_vs_depth


def best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rig(V: int, size):
    eye = torch.stack([torch.tensor([0.15 * i - 0.1, 0.05 * i, -2.0]) for i in range(V)])
    R, t = look_at(eye, torch.zeros(3))
    return fov_intrinsics(45.0, size).expand(V, 3, 3), R, t


def warp_table(configs, repeats: int) -> None:
    print("| B x V x C x H x W, D | homography_warp + variance ms | Mvox/s | peer: via 3D points ms | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for B, V, C, H, W, D in configs:
        K, R, t = rig(V, (H, W))
        feats = torch.randn(B, V, C, H, W)
        depths = torch.linspace(1.5, 2.5, D)

        def ours():
            vols = [feats[:, 0, :, None].expand(-1, -1, D, -1, -1)]
            vols += [homography_warp(feats[:, i], K[None, 0].expand(B, -1, -1), R[None, 0].expand(B, -1, -1),
                                     t[None, 0].expand(B, -1), K[None, i].expand(B, -1, -1), R[None, i].expand(B, -1, -1),
                                     t[None, i].expand(B, -1), depths) for i in range(1, V)]
            return variance_cost_volume(torch.stack(vols, 1))

        def peer():
            vols = [feats[:, 0, :, None].expand(-1, -1, D, -1, -1)]
            for i in range(1, V):
                planes = [depth_warp(feats[:, i], torch.full((B, H, W), float(d)), K[None, 0].expand(B, -1, -1),
                                     R[None, 0].expand(B, -1, -1), t[None, 0].expand(B, -1), K[None, i].expand(B, -1, -1),
                                     R[None, i].expand(B, -1, -1), t[None, i].expand(B, -1))[0] for d in depths]
                vols.append(torch.stack(planes, 2))
            return variance_cost_volume(torch.stack(vols, 1))

        a, b = best_of(ours, repeats), best_of(peer, repeats)
        vox = B * C * D * H * W * (V - 1) / 1e6
        print(f"| {B}x{V}x{C}x{H}x{W}, D={D} | {a * 1e3:.1f} | {vox / a:.0f} | {b * 1e3:.1f} | {b / a:.2f} |", flush=True)


def memory_table(depth_counts, size, train: bool) -> None:
    torch.manual_seed(0)
    rows = memory_vs_depth({"MVSNet": MVSNet(), "R-MVSNet": RMVSNet()}, depth_counts, size=size, train=train)
    what = "training step" if train else "inference"
    print(f"\n| D ({what}, {size[1]}x{size[0]} images, 3 views) | MVSNet MiB | R-MVSNet MiB | MVSNet / R-MVSNet |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['D']} | {r['MVSNet_MiB']:.1f} | {r['R-MVSNet_MiB']:.1f} | {r['MVSNet_MiB'] / r['R-MVSNet_MiB']:.1f} |",
              flush=True)


def fusion_table(configs, repeats: int) -> None:
    print("\n| views x H x W | fuse_depth_maps ms | input pixels / s | points kept |")
    print("| --- | ---: | ---: | ---: |")
    for V, H, W in configs:
        s = make_mvs_scene(0, n_views=V, size=(H, W))
        run = lambda: fuse_depth_maps(s.depth, s.K, s.R, s.t, images=s.images, pairs=s.pairs, photo_thresh=0.15)  # noqa: E731
        sec = best_of(run, repeats)
        print(f"| {V}x{H}x{W} | {sec * 1e3:.1f} | {V * H * W / sec / 1e6:.2f} M | {run()['points'].shape[0]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; min of repeats; machine may be loaded\n")
    if args.quick:
        warp_table([(1, 3, 8, 32, 40, 16)], 3)
        memory_table((8, 16, 32), (32, 40), train=False)
        fusion_table([(5, 48, 64)], 2)
    else:
        warp_table([(1, 3, 16, 64, 80, 32), (1, 5, 16, 64, 80, 64), (2, 3, 32, 128, 160, 48)], 3)
        memory_table((16, 32, 64, 128, 256), (64, 80), train=False)
        memory_table((16, 32, 64, 128), (64, 80), train=True)
        fusion_table([(7, 64, 80), (7, 128, 160), (20, 128, 160)], 3)
    if args.table:
        from coursekit import runtime
        from coursekit.models.mvs.mvs_table import PUBLISHED, format_table, run_mvs_table

        print(f"\nDTU-layout table, profile {runtime.profile()}:")
        out = run_mvs_table(progress=False)
        extra = ("abs depth (mm)", "% < 2 interv.")
        from coursekit.models.mvs.mvs_table import COLUMNS
        print(format_table(out["rows"], COLUMNS + extra))
        print("\nPublished (DTU, 1600x1200 input):")
        print(format_table(list(PUBLISHED)))


if __name__ == "__main__":
    main()
