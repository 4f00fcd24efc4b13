"""Benchmark: coursekit's formula-based bilinear sampler against ``F.grid_sample``.

Forward + backward (gradients w.r.t. both the image and the grid) on a batch of
256 one-channel images at the distorted-MNIST sizes (28, 42 and 60 pixels), the
output grid the size of the input, coordinates partly outside the image. Each
time is the minimum over repeats; the ratio is coursekit / grid_sample in the
same run. CUDA rows appear when a GPU is present.

    python benchmarks/stn_sampler.py [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from coursekit.stn import bilinear_sample


def _grid_sample(U: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(U, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def time_fwd_bwd(fn, U: torch.Tensor, grid: torch.Tensor, repeats: int) -> float:
    """Minimum wall time in ms of ``fn(U, grid)`` plus its backward pass."""
    sync = torch.cuda.synchronize if U.is_cuda else (lambda: None)
    best = float("inf")
    for i in range(repeats + 2):                       # two warm-up runs
        U.grad = grid.grad = None
        sync()
        start = time.perf_counter()
        out = fn(U, grid)
        out.backward(torch.ones_like(out))
        sync()
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"fwd+bwd, float32, batch {args.batch}, 1 channel, min of {args.repeats} repeats\n")
    print("| device | size | coursekit bilinear_sample (ms) | F.grid_sample (ms) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for device in devices:
        for side in (28, 42, 60):
            U = torch.rand(args.batch, 1, side, side, generator=gen).to(device).requires_grad_()
            grid = (torch.rand(args.batch, side, side, 2, generator=gen) * 2.4 - 1.2).to(device).requires_grad_()
            ours = time_fwd_bwd(bilinear_sample, U, grid, args.repeats)
            peer = time_fwd_bwd(_grid_sample, U, grid, args.repeats)
            print(f"| {device} | {args.batch}x1x{side}x{side} | {ours:.3f} | {peer:.3f} | {ours / peer:.2f}x |")


if __name__ == "__main__":
    main()
