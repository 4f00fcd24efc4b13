"""Benchmark: submanifold sparse convolution against dense ``conv3d``, time and memory against resolution.

A shape's surface occupies O(R^2) of the R^3 cells of a grid ("store only the occupied grids").
For R = 16 .. 128 this script voxelises the surface of one procedural chair (surface-like
occupancy), then runs a 3x3x3 convolution with ``--channels`` input and output channels,
forward + backward:

* dense: ``F.conv3d`` on the full ``(1, C, R, R, R)`` grid;
* sparse: :class:`coursekit.nn.sparse_conv.SubmanifoldConv3d` on the occupied sites only
  (kernel map built once, timed separately, as a network reuses it for every layer).

Times are the minimum over repeats (at most ``--budget`` seconds of repeats per entry).
Memory is the bytes of the tensors each method must hold: input, output and their gradients
(dense: ``4 * 4 C R^3``; sparse: ``4 * 4 C N``), plus the sparse kernel map (two ``int64`` per
pair) and the site table; on CUDA, the measured peak allocation is printed as well.

    python benchmarks/sparse_vs_dense.py [--channels 16] [--repeats 5] [--threads N] [--max-resolution 128]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from coursekit.data.world.shapes import make_shape
from coursekit.geometry.voxels import voxelize_mesh_surface
from coursekit.nn.sparse_conv import SparseTensor, SubmanifoldConv3d, weight_from_conv3d


def timed(fn, repeats: int, budget: float, sync) -> float:
    """Minimum wall time (ms) of ``fn()`` after one warm-up, stopping once ``budget`` seconds are spent."""
    fn()
    sync()
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best * 1e3


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per entry")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-resolution", type=int, default=128)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"3x3x3 conv, {args.channels} -> {args.channels} channels, float32, batch 1, forward + backward, "
          f"surface of a chair; min of up to {args.repeats} repeats\n")
    print("| device | R | occupied | occupancy | dense (ms) | sparse (ms) | dense / sparse | map build (ms) "
          "| dense MiB | sparse MiB | dense / sparse mem | peak MiB dense / sparse |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    shape = make_shape("chair", 0)
    C = args.channels
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(C, C, 3, 3, 3, generator=gen) / (C * 27) ** 0.5
    resolutions = [r for r in (16, 32, 64, 128) if r <= args.max_resolution]
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for R in resolutions:
            occupancy = voxelize_mesh_surface(shape.vertices, shape.faces, R).to(device)
            mask = occupancy[:, 0] > 0
            features = torch.randn(1, C, R, R, R, generator=gen).to(device) * occupancy
            n = int(mask.sum())

            dense_in = features.clone().requires_grad_()
            w = weight.to(device).requires_grad_()

            def dense_step():
                dense_in.grad = w.grad = None
                F.conv3d(dense_in, w, padding=1).sum().backward()

            x = SparseTensor.from_dense(features, mask)
            start = time.perf_counter()
            maps = x.submanifold_map(3)
            sync()
            build_ms = (time.perf_counter() - start) * 1e3
            layer = SubmanifoldConv3d(C, C, 3, bias=False).to(device)
            layer.weight.data = weight_from_conv3d(weight).to(device)
            sparse_in = x.features.detach().clone().requires_grad_()

            def sparse_step():
                sparse_in.grad = layer.weight.grad = None
                layer(x.with_features(sparse_in)).features.sum().backward()

            peaks = []
            for step in (dense_step, sparse_step):
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                    step()
                    peaks.append(torch.cuda.max_memory_allocated())
            dense_ms = timed(dense_step, args.repeats, args.budget, sync)
            sparse_ms = timed(sparse_step, args.repeats, args.budget, sync)
            dense_bytes = 4 * 4 * C * R ** 3
            pairs = sum(len(e.in_idx) for e in maps)
            sparse_bytes = 4 * 4 * C * n + 2 * 8 * pairs + 6 * 8 * n  # features + grads, map pairs, coords + keys + order
            peak = f"{mib(peaks[0])} / {mib(peaks[1])}" if peaks else "-"
            print(f"| {device} | {R} | {n} | {n / R ** 3:.2%} | {dense_ms:.1f} | {sparse_ms:.1f} | {dense_ms / sparse_ms:.1f}x "
                  f"| {build_ms:.1f} | {mib(dense_bytes)} | {mib(sparse_bytes)} | {dense_bytes / sparse_bytes:.1f}x | {peak} |")


if __name__ == "__main__":
    main()
