"""Distorted MNIST (the STN paper's Table 1, left) at CPU scale, and the sampler's speed.

Trains all eight networks on R, RTS, P and E distortions of the real MNIST test
digits, split (seeded) into 8,000 training and 2,000 test digits, with the
``cpu`` entry of :data:`coursekit.stn.experiment.SIZES`; prints our test errors
beside the paper's, checks the paper's ordering (every ST-CNN below the CNN,
the CNN below the FCN, on every distortion), and times coursekit's
``bilinear_sample`` against ``F.grid_sample`` on the same batch.

    OMP_NUM_THREADS=2 python benchmarks/distorted_mnist.py [--mnist DIR] [--profile cpu]

Takes ~30-45 minutes on 2 CPU cores (``--profile fast``: a minute, meaningless numbers).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from coursekit import runtime
from coursekit.data.mnist import load_mnist
from coursekit.models.stn_mnist import MODEL_NAMES
from coursekit.stn import affine_grid, bilinear_sample
from coursekit.stn.distortions import KINDS
from coursekit.stn.experiment import SIZES, distorted_mnist_table, format_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = Path(os.environ.get("COURSEKIT_MNIST", REPO / ".." / "shared" / "data" / "mnist"))


def paper_ordering(error: dict[str, dict[str, float]], kind: str) -> tuple[bool, str]:
    """Whether every ST-CNN < CNN < FCN on ``kind``, and the numbers in words."""
    st_cnn = {name: error[name][kind] for name in error if name.startswith("ST-CNN")}
    ok = max(st_cnn.values()) < error["CNN"][kind] < error["FCN"][kind]
    words = (f"{kind:>4}: ST-CNN {max(st_cnn.values()):.2f} (worst of {len(st_cnn)}) < CNN "
             f"{error['CNN'][kind]:.2f} < FCN {error['FCN'][kind]:.2f}")
    return ok, words


def time_sampler(batch: int = 256, size: int = 42, repeats: int = 20) -> tuple[float, float]:
    """Best-of-``repeats`` forward+backward seconds of coursekit's bilinear sampler and F.grid_sample."""
    gen = torch.Generator().manual_seed(0)
    U = torch.rand(batch, 1, size, size, generator=gen, requires_grad=True)
    theta = (torch.eye(2, 3) + 0.2 * torch.randn(batch, 2, 3, generator=gen)).requires_grad_()

    def run(sampler) -> float:
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            sampler(U, affine_grid(theta, (size, size))).sum().backward()
            best = min(best, time.perf_counter() - tic)
        return best

    ours = run(bilinear_sample)
    peer = run(lambda u, g: F.grid_sample(u, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    torch.testing.assert_close(bilinear_sample(U, affine_grid(theta, (size, size))),
                               F.grid_sample(U, affine_grid(theta, (size, size)), align_corners=False),
                               atol=1e-5, rtol=1e-5)
    return ours, peer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="folder with the MNIST t10k IDX files")
    parser.add_argument("--profile", default="cpu", choices=runtime.PROFILES)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="MODEL")
    parser.add_argument("--distortions", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    runtime.set_profile(args.profile)
    print(runtime.describe(), f"| threads {torch.get_num_threads()}")
    images, labels = load_mnist(args.mnist, "test")
    sizes = runtime.pick(SIZES)
    print(f"MNIST test set from {args.mnist.resolve()}: {len(images)} digits; sizes {sizes}")

    tic = time.perf_counter()
    result = distorted_mnist_table(images, labels, distortions=args.distortions, models=args.models,
                                   seed=args.seed, sizes=sizes, progress=not args.no_progress)
    wall = time.perf_counter() - tic
    print()
    print(format_table(result))
    print(f"run time {wall / 60:.1f} min (training {result.total_seconds / 60:.1f} min)")
    print("\ntraining seconds per cell:")
    print(f"{'model':<12}" + "".join(f"{k:>8}" for k in args.distortions))
    for name, row in result.seconds.items():
        print(f"{name:<12}" + "".join(f"{row[k]:>8.0f}" for k in args.distortions))

    failures = 0
    if {"FCN", "CNN"} <= set(args.models) and any(m.startswith("ST-CNN") for m in args.models):
        print("\npaper's ordering (every ST-CNN < CNN < FCN):")
        for kind in args.distortions:
            ok, words = paper_ordering(result.error, kind)
            failures += not ok
            print(f"  {'ok  ' if ok else 'FAIL'} {words}")

    ours, peer = time_sampler()
    print("\nsampler, forward + backward, 256 x 1 x 42 x 42, best of 20:")
    print(f"{'op':<34}{'ms':>8}{'ratio':>8}")
    print(f"{'F.grid_sample (peer)':<34}{peer * 1e3:>8.2f}{1.0:>8.2f}")
    print(f"{'coursekit.stn.bilinear_sample':<34}{ours * 1e3:>8.2f}{ours / peer:>8.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
