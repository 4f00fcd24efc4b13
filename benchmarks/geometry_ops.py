"""Geometry ops against the peers a user would otherwise pick, measured in the same run.

    python benchmarks/geometry_ops.py            # 1k, 10k and 100k points (a few minutes on 2 cores)
    python benchmarks/geometry_ops.py --quick    # 1k and 10k only

Prints one markdown table: for each op and size, coursekit's time and the peers' times as
``ratio = peer / coursekit`` (above 1: coursekit is faster), with the peak resident memory a
call added (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; tracemalloc
cannot see PyTorch's allocator). The script re-executes itself with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB so that freed blocks go back to the system and one
call's peak is not hidden or inflated by what an earlier call left in the heap. Times are the
minimum of a few repeats, float32 inputs.
Peers too slow at a size (plain torch brute force at 100k points: tens of seconds) are
skipped and say so.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.spatial import cKDTree

from coursekit.geometry.neighbors import ball_query, knn
from coursekit.geometry.sampling import farthest_point_sample
from coursekit.geometry.voxels import voxelize_points
from _timing import fix_malloc_threshold, print_peer_table  # the scripts' shared timer (min of repeats + peak RSS)

try:
    import fpsample
except ImportError:
    fpsample = None
try:
    from pykdtree.kdtree import KDTree as PyKDTree
except ImportError:
    PyKDTree = None


# ------------------------------------------------------------------ peers

def knn_scipy(points: np.ndarray, k: int):
    return cKDTree(points).query(points, k=k, workers=-1)


def knn_pykdtree(points: np.ndarray, k: int):
    return PyKDTree(points).query(points, k=k)


def knn_torch_cdist(points: torch.Tensor, k: int):
    return torch.cdist(points, points).topk(k, dim=-1, largest=False)


def ball_scipy_nearest(points: np.ndarray, centres: np.ndarray, radius: float, s: int):
    """SciPy's closest ``s`` within ``radius`` (nearest, not PointNet++'s first-in-index-order)."""
    return cKDTree(points).query(centres, k=s, distance_upper_bound=radius, workers=-1)


def ball_torch_cdist(points: torch.Tensor, centres: torch.Tensor, radius: float, s: int):
    n = points.shape[1]
    d = torch.cdist(centres, points)
    key = torch.where(d < radius, torch.arange(n), n)
    return key.topk(s, dim=-1, largest=False).values


def fps_torch_plain(points: torch.Tensor, s: int):
    """The textbook loop: distances as (p - c)^2 summed over the last axis of (B, N, 3)."""
    b, n, _ = points.shape
    idx = torch.zeros(b, s, dtype=torch.int64)
    min_d = torch.full((b, n), float("inf"))
    last = torch.zeros(b, dtype=torch.int64)
    for i in range(1, s):
        centre = points[torch.arange(b), last].unsqueeze(1)
        min_d = torch.minimum(min_d, ((points - centre) ** 2).sum(-1))
        last = min_d.argmax(1)
        idx[:, i] = last
    return idx


def voxel_numpy(points: np.ndarray, r: int):
    cells = np.floor((points + 1) * (r / 2)).astype(np.int64)
    keep = ((points >= -1) & (points <= 1)).all(-1)
    cells = np.clip(cells[keep], 0, r - 1)
    grid = np.zeros((r, r, r), dtype=np.float32)
    grid[cells[:, 2], cells[:, 1], cells[:, 0]] = 1
    return grid


# ------------------------------------------------------------------ table

def rows(sizes: list[int]):
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        pts = torch.rand(1, n, 3, generator=gen)  # the unit cube, as in DESIGN.md's measurements
        pts_np = pts[0].numpy()
        reps = 5 if n <= 10_000 else 2
        brute_ok = n <= 10_000

        yield ("kNN k=16", f"{n // 1000}k self", lambda: knn(pts, pts, 16), [
            ("scipy cKDTree", lambda: knn_scipy(pts_np, 16)),
            ("pykdtree", (lambda: knn_pykdtree(pts_np, 16)) if PyKDTree else "not installed"),
            ("torch cdist+topk", (lambda: knn_torch_cdist(pts, 16)) if brute_ok else None),
            ("coursekit torch path", (lambda: knn(pts, pts, 16, backend="torch")) if brute_ok else None),
        ], reps)

        centres = pts[:, : n // 10]
        yield ("ball r=0.05 S=32", f"{n // 1000}k pts, {n // 10} centres", lambda: ball_query(centres, pts, 0.05, 32), [
                   ("scipy query k=32 upper=r (nearest)", lambda: ball_scipy_nearest(pts_np, centres[0].numpy(), 0.05, 32)),
                   ("torch cdist+topk", (lambda: ball_torch_cdist(pts, centres, 0.05, 32)) if brute_ok else None),
               ], reps)

        s = 4096 if n >= 100_000 else n // 10
        yield ("exact FPS", f"{n // 1000}k -> {s}", lambda: farthest_point_sample(pts, s), [
            ("fpsample fps_sampling", (lambda: fpsample.fps_sampling(pts_np, s, start_idx=0)) if fpsample else "not installed"),
            ("fpsample bucket_fps_kdline", (lambda: fpsample.bucket_fps_kdline_sampling(pts_np, s, h=7)) if fpsample else "not installed"),
            ("torch plain loop", (lambda: fps_torch_plain(pts, s)) if brute_ok else None),
        ], 3 if n <= 10_000 else 1)

        cloud = pts * 2 - 1
        cloud_np = cloud[0].numpy()
        yield ("voxel occupancy 64^3", f"{n // 1000}k pts", lambda: voxelize_points(cloud, 64), [
            ("numpy fancy indexing", lambda: voxel_numpy(cloud_np, 64)),
        ], 20)


def main() -> None:
    fix_malloc_threshold()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k points only")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fpsample "
          f"{'installed' if fpsample else 'not installed'}, pykdtree {'installed' if PyKDTree else 'not installed'}\n")
    print_peer_table(rows(sizes), "skipped (too slow)")


if __name__ == "__main__":
    main()
