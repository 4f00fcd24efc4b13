"""Point-set metrics against the peers a user would otherwise pick, measured in the same run.

    python benchmarks/metrics.py            # Chamfer 8x2048 and 1x100k, exact EMD n=512 and 2048
    python benchmarks/metrics.py --quick    # Chamfer 8x2048, EMD n=512

Prints markdown tables: coursekit's time and each peer's as ``ratio = peer / coursekit``
(above 1: coursekit is faster; the issue's target is ratio >= 1/1.5 against the best CPU
peer), with the peak resident memory one call added (same method as
``benchmarks/geometry_ops.py``, both through ``benchmarks/_timing.py``; the script re-executes itself
with ``MALLOC_MMAP_THRESHOLD_`` fixed so that peaks are per call). float32 inputs, min of repeats.
At 100k points the ``N x M`` matrix would be 40 GB in float32: the peak column shows that
coursekit's Chamfer never allocates it. A second table gives the Sinkhorn approximation's
time and gap to the exact EMD.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from coursekit.metrics import chamfer_distance, emd_exact, emd_sinkhorn
from _timing import fix_malloc_threshold, print_peer_table  # the scripts' shared timer (min of repeats + peak RSS)

try:
    import pykdtree.kdtree as pykdtree
except ImportError:
    pykdtree = None

try:
    import ot
except ImportError:
    ot = None


# ------------------------------------------------------------------ peers (the slide's convention)

def chamfer_scipy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([np.square(cKDTree(b).query(a, workers=-1)[0]).sum() + np.square(cKDTree(a).query(b, workers=-1)[0]).sum()
                     for a, b in zip(x, y)])


def chamfer_pykdtree(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([np.square(pykdtree.KDTree(b).query(a, k=1)[0]).sum() + np.square(pykdtree.KDTree(a).query(b, k=1)[0]).sum()
                     for a, b in zip(x, y)])


def chamfer_torch_cdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d2 = torch.cdist(x, y) ** 2
    return d2.amin(2).sum(1) + d2.amin(1).sum(1)


def emd_scipy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = []
    for a, b in zip(x, y):
        d = cdist(a, b)
        out.append(d[linear_sum_assignment(d)].sum())
    return np.array(out)


def emd_pot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """POT's network simplex on uniform weights 1/n: the optimal plan is a permutation / n, so n x its cost is the sum."""
    return np.array([len(a) * ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cdist(a, b))
                     for a, b in zip(x, y)])


def rows(quick: bool):
    gen = torch.Generator().manual_seed(0)
    chamfer_sizes = [(8, 2048)] if quick else [(8, 2048), (1, 100_000)]
    for b, n in chamfer_sizes:
        x, y = torch.rand(b, n, 3, generator=gen), torch.rand(b, n, 3, generator=gen)
        xn, yn = x.numpy(), y.numpy()
        brute_ok = b * n * n * 4 < 2 ** 30  # the (B, N, M) matrix under 1 GiB
        reps = 5 if n <= 10_000 else 2
        yield ("Chamfer (slide)", f"{b}x{n}", lambda: chamfer_distance(x, y), [
            ("scipy cKDTree", lambda: chamfer_scipy(xn, yn)),
            ("pykdtree", (lambda: chamfer_pykdtree(xn, yn)) if pykdtree else "not installed"),
            ("torch cdist + amin", (lambda: chamfer_torch_cdist(x, y)) if brute_ok else None),
        ], reps)
        if brute_ok:
            xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
            yield ("Chamfer fwd+bwd", f"{b}x{n}", lambda: chamfer_distance(xg, yg).sum().backward(), [
                ("torch cdist + amin fwd+bwd", lambda: chamfer_torch_cdist(xg, yg).sum().backward()),
            ], reps)
    for n in ([512] if quick else [512, 2048]):
        x, y = torch.rand(1, n, 3, generator=gen), torch.rand(1, n, 3, generator=gen)
        xn, yn = x.numpy(), y.numpy()
        yield ("exact EMD", f"1x{n}", lambda: emd_exact(x, y), [
            ("scipy cdist + linear_sum_assignment", lambda: emd_scipy(xn, yn)),
            ("POT ot.emd", (lambda: emd_pot(xn, yn)) if ot else "not installed"),
        ], 3 if n <= 512 else 1)


def sinkhorn_rows(quick: bool):
    print("\n| approximate EMD | n | ms | value | exact value | gap |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    gen = torch.Generator().manual_seed(1)
    for n in ([256] if quick else [256, 512]):
        x, y = torch.rand(1, n, 3, generator=gen), torch.rand(1, n, 3, generator=gen)
        exact = emd_exact(x, y)[0].item()
        for eps in (1e-2, 3e-3):  # one call each: these are seconds, not milliseconds
            start = time.perf_counter()
            v = emd_sinkhorn(x, y, eps=eps).item()
            t = time.perf_counter() - start
            print(f"| Sinkhorn eps={eps:g} (unit cube) | {n} | {t * 1e3:.0f} | {v:.3f} | {exact:.3f} | "
                  f"{100 * (v - exact) / exact:+.2f}% |", flush=True)


def main() -> None:
    fix_malloc_threshold()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f}" if load else "", f"pykdtree {'installed' if pykdtree else 'not installed'}\n")
    print_peer_table(rows(args.quick), "skipped (N x M over 1 GiB)")
    sinkhorn_rows(args.quick)


if __name__ == "__main__":
    main()
