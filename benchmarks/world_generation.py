"""How fast the procedural world makes data: objects/s, datasets, and rendering for MVCNN.

Run:  python benchmarks/world_generation.py [--quick]

Prints markdown tables. Times are minima over repeats of wall-clock time and, for
the rendering table, of process CPU time too (on a shared machine the wall clock
includes waiting for a core; the CPU time is what the work costs). Set
OMP_NUM_THREADS to pin threads. Peers measured in the same run:

* surface sampling: ``trimesh.sample.sample_surface`` vs the library's
  ``sample_mesh_surface`` and the world's union sampler (which also rejects
  buried faces, so it does more work);
* rendering: a dense brute-force rasteriser (every pixel against every triangle,
  written here as the "plain torch" reference) vs ``render_mesh``; the two must
  agree pixel for pixel, which the script checks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from coursekit.data.world import CLASSES, make_classification_split, make_multiview_split, make_scene, make_shape
from coursekit.geometry.camera import fov_intrinsics, project, ring_cameras
from coursekit.geometry.render import render_mesh
from coursekit.geometry.sampling import sample_mesh_surface


def best_of(fn, repeats: int, clock=time.perf_counter) -> float:
    """Minimum time of ``repeats`` calls (seconds) on ``clock`` (wall by default)."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def dense_reference(vertices, faces, K, R, t, size):
    """Brute force: every pixel centre against every triangle, nearest depth wins (no clipping)."""
    H, W = size
    uv, z = project(vertices.expand(len(R), -1, -1), K, R, t)  # (B, V, 2), (B, V)
    p = uv[:, faces]  # (B, F, 3, 2)
    zf = z[:, faces]
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    px, py = u.reshape(1, -1, 1), v.reshape(1, -1, 1)  # (1, HW, 1)
    a, b, c = p[:, None, :, 0], p[:, None, :, 1], p[:, None, :, 2]  # (B, 1, F, 2)
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    e0 = (c[..., 0] - b[..., 0]) * (py - b[..., 1]) - (c[..., 1] - b[..., 1]) * (px - b[..., 0])
    e1 = (a[..., 0] - c[..., 0]) * (py - c[..., 1]) - (a[..., 1] - c[..., 1]) * (px - c[..., 0])
    e2 = (b[..., 0] - a[..., 0]) * (py - a[..., 1]) - (b[..., 1] - a[..., 1]) * (px - a[..., 0])
    l0, l1, l2 = e0 / area, e1 / area, e2 / area
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (area.abs() > 1e-12)
    depth = 1.0 / (l0 / zf[:, None, :, 0] + l1 / zf[:, None, :, 1] + l2 / zf[:, None, :, 2])
    depth = torch.where(inside, depth, torch.full_like(depth, float("inf")))
    best, face = depth.min(-1)
    hit = torch.isfinite(best)
    return torch.where(hit, best, torch.zeros_like(best)).reshape(-1, H, W), torch.where(hit, face, -1).reshape(-1, H, W)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    per_class = 5 if args.quick else 20
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")

    print("## Objects per second (one object = make_shape; + sample = 1024 surface points)\n")
    print("| class | faces (mean) | parts (mean) | make_shape obj/s | + sample obj/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    totals = [0.0, 0.0, 0]
    for name in CLASSES:
        seeds = range(per_class)
        shapes = [make_shape(name, s) for s in seeds]
        t_make = best_of(lambda: [make_shape(name, s) for s in seeds], repeats)
        t_both = best_of(lambda: [make_shape(name, s).sample(1024, s) for s in seeds], repeats)
        totals[0] += t_make
        totals[1] += t_both
        totals[2] += len(seeds)
        faces = np.mean([len(s.faces) for s in shapes])
        parts = np.mean([len(s.parts) for s in shapes])
        print(f"| {name} | {faces:.0f} | {parts:.1f} | {len(seeds) / t_make:.0f} | {len(seeds) / t_both:.0f} |")
    print(f"| **all** | | | {totals[2] / totals[0]:.0f} | {totals[2] / totals[1]:.0f} |\n")

    def timed(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        return result, time.perf_counter() - wall, time.process_time() - cpu

    n_train = 25 if args.quick else 200
    print("## Datasets\n")
    print("| dataset | samples | wall s | CPU s | samples/s (wall) | samples/s (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [
        ("classification, 1024 points", lambda: sum(map(len, make_classification_split(n_train, n_train // 4, n_points=1024, seed=0, progress=False)))),
        ("partial scans, 1024 points", lambda: sum(map(len, make_classification_split(n_train // 4, 0, n_points=1024, seed=0, partial=True, progress=False)))),
        ("multi-view, 12 x 64x64", lambda: len(make_multiview_split(2 if args.quick else 10, 0, n_views=12, image_size=64, seed=0, progress=False)[0])),
        ("rooms, 20k points", lambda: len([make_scene(s).sample(20000, s) for s in range(2 if args.quick else 10)])),
    ]
    for name, fn in rows:
        n, wall, cpu = timed(fn)
        print(f"| {name} | {n} | {wall:.1f} | {cpu:.1f} | {n / wall:.1f} | {n / cpu:.1f} |")
    print()

    print("## Surface sampling, 1024 points of a chair (ms)\n")
    chair = next(s for s in (make_shape("chair", k) for k in range(50)) if len(s.faces) > 1500)
    import trimesh

    mesh = trimesh.Trimesh(chair.vertices.numpy(), chair.faces.numpy(), process=False)
    g = torch.Generator().manual_seed(0)
    t_trimesh = best_of(lambda: trimesh.sample.sample_surface(mesh, 1024), repeats * 4)
    t_plain = best_of(lambda: sample_mesh_surface(chair.vertices, chair.faces, 1024, g), repeats * 4)
    t_union = best_of(lambda: chair.sample(1024, g), repeats * 4)
    print("| sampler | ms | vs trimesh |")
    print("| --- | ---: | ---: |")
    print(f"| trimesh.sample.sample_surface | {1e3 * t_trimesh:.2f} | 1.00 |")
    print(f"| sample_mesh_surface (all faces) | {1e3 * t_plain:.2f} | {t_plain / t_trimesh:.2f} |")
    print(f"| Shape.sample (outer surface only) | {1e3 * t_union:.2f} | {t_union / t_trimesh:.2f} |\n")

    print(f"## Rendering 12 views of a {len(chair.faces)}-triangle chair\n")
    print("| size | render_mesh ms | render_mesh CPU ms | dense reference ms | ratio | pixels agreeing |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    R, t = ring_cameras(12, distance=2.5)
    for size in (32, 64, 128):
        K = fov_intrinsics(50.0, (size, size)).expand(12, 3, 3)
        t_fast = best_of(lambda: render_mesh(chair.vertices, chair.faces, K, R, t, (size, size)), repeats)
        t_cpu = best_of(lambda: render_mesh(chair.vertices, chair.faces, K, R, t, (size, size)), repeats, time.process_time)
        out = render_mesh(chair.vertices, chair.faces, K, R, t, (size, size))
        if size <= 64:
            t_dense = best_of(lambda: dense_reference(chair.vertices, chair.faces, K, R, t, (size, size)), 1)
            depth, face = dense_reference(chair.vertices, chair.faces, K, R, t, (size, size))
            same = (out["face_index"] == face) | ((out["depth"] - depth).abs() < 1e-4)
            dense = f"{1e3 * t_dense:.0f} | {t_dense / t_fast:.0f}x | {same.float().mean():.4f}"
        else:
            dense = "(skipped) | | "
        print(f"| {size}x{size} | {1e3 * t_fast:.1f} | {1e3 * t_cpu:.1f} | {dense} |")


if __name__ == "__main__":
    main()
