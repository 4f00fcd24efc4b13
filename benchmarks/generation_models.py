"""Benchmark: octree generation (OGN) against a dense 3D decoder, memory against resolution; generator throughput.

Part 1 — the slide's "avoid O(n^3) reconstruction". For each output resolution ``R``, one world
chair's occupancy (solid ∪ surface) gives the octree labels; the OGN decoder runs with the true
structure (prop known: exactly the cells a perfect prediction expands) and the dense decoder
(:class:`~coursekit.models.generation.ogn.DenseVoxelDecoder`, linear -> 4^3 grid -> stride-2
transposed 3D convolutions up to ``R^3``) from a code of the same size. Printed per ``R``: cells the
octree holds over all levels, activation memory of one forward pass (bytes of every layer's
output, what back-propagation keeps; :func:`~coursekit.models.generation.ogn.activation_bytes`),
the wall time of forward + backward (min of repeats), and the dense / octree ratios. Expected:
dense memory grows ~8x per doubling of ``R``, the octree's ~4x (it follows the surface).

Part 2 — one training step (forward, loss, backward; no optimiser) of each conditional generator at
the active profile's sizes, batch ``B``: seconds per step and shapes per second, with the ratio
against PSGN (CD) measured in the same run. On a shared machine the process CPU time is printed
too (``time.process_time``; with one thread it is what an idle core would show).

Part 3 (``--table``) — the conditional-generation table of
:func:`coursekit.models.generation.conditional_table.conditional_table` at the active profile's sizes
(``COURSEKIT_PROFILE=cpu``: each model within 10 minutes on 2 cores), every model against the class
mean shape and the sphere.

    python benchmarks/generation_models.py [--resolutions 16 32 64 128] [--repeats 3] [--threads 1] [--table]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from coursekit import runtime
from coursekit.data.world import make_shape
from coursekit.metrics.chamfer import chamfer_distance
from coursekit.models.generation import atlasnet, folding, ogn, pixel2mesh, psgn
from coursekit.models.generation.gan_voxel import shape_voxels
from coursekit.models.generation.implicit_table import implicit_camera


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def memory_table(resolutions, repeats: int, channels: int = 32, latent: int = 64) -> None:
    chair = make_shape("chair", 0)
    image = torch.rand(1, 1, 64, 64)
    print(f"## OGN vs dense 3D decoder (one chair, code {latent}, {channels} channels at the base grid)\n")
    print("| R | occupied | octree cells | octree MiB | dense MiB | dense/octree memory | octree s | dense s | dense/octree time |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for res in resolutions:
        occ = shape_voxels([chair], res)[:, 0].bool()
        levels = int(math.log2(res // 4)) + 1
        model = ogn.OGN({"latent": latent, "base": 4, "levels": levels, "channels": channels,
                         "image_widths": (8, 16, 32, 64)})
        labels = ogn.octree_labels(occ, 4)
        dense = ogn.DenseVoxelDecoder(latent, res, channels)
        code = torch.rand(1, latent)
        with torch.no_grad():
            cells = sum(len(lv.cells) for lv in model(image, labels))
        # the image encoder is shared by both designs: count the decoders only
        enc = ogn.activation_bytes(model.encoder, image)
        mem_o = ogn.activation_bytes(model, image, labels) - enc
        mem_d = ogn.activation_bytes(dense, code)

        def step_o():
            ogn.ogn_loss(model(image, labels), labels).backward()

        def step_d():
            torch.nn.functional.binary_cross_entropy_with_logits(dense(code), occ.float()).backward()

        t_o, _ = _time(step_o, repeats)
        t_d, _ = _time(step_d, repeats)
        print(f"| {res} | {int(occ.sum())} | {cells} | {mem_o / 2**20:.2f} | {mem_d / 2**20:.2f} | {mem_d / mem_o:.1f} | "
              f"{t_o:.3f} | {t_d:.3f} | {t_d / t_o:.1f} |")


def throughput_table(repeats: int, batch: int) -> None:
    size, P = 64, 1024 if runtime.profile() != "fast" else 256
    K, R, t = implicit_camera(size)
    images, gt = torch.rand(batch, 1, size, size), torch.rand(batch, P, 3) - 0.5
    normals = torch.nn.functional.normalize(torch.randn(batch, P, 3), dim=-1)
    occ = shape_voxels([make_shape("chair", i) for i in range(batch)], 4 * 2 ** (runtime.pick(ogn.SIZES)["levels"] - 1))[:, 0].bool()
    m_psgn, m_fold = psgn.PSGN(P), folding.FoldingNet("points")
    m_atlas, m_p2m, m_ogn = atlasnet.AtlasNet("image", n_points=P), pixel2mesh.Pixel2Mesh(K[0], R[0], t[0], (size, size)), ogn.OGN()
    labels = ogn.octree_labels(occ, m_ogn.base)
    steps = {
        "PSGN (CD)": lambda: psgn.psgn_loss(m_psgn(images), gt, "chamfer").backward(),
        "PSGN (EMD, Sinkhorn)": lambda: psgn.psgn_loss(m_psgn(images), gt, "emd").backward(),
        "FoldingNet": lambda: chamfer_distance(m_fold(gt), gt, "pytorch3d", reduction="mean").backward(),
        "AtlasNet": lambda: chamfer_distance(m_atlas(images), gt, "atlasnet", reduction="mean").backward(),
        "Pixel2Mesh": lambda: m_p2m.loss(images, gt, normals)["total"].backward(),
        "OGN": lambda: ogn.ogn_loss(m_ogn(images, labels), labels).backward(),
    }
    print(f"\n## Training step (forward + loss + backward), profile {runtime.profile()}, batch {batch}, {P} points, "
          f"{size}x{size} images\n")
    print("| model | s / step | CPU s / step | shapes / s (CPU) | vs PSGN (CD) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    ref = None
    for name, fn in steps.items():
        wall, cpu = _time(fn, repeats)
        ref = ref or cpu
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {batch / cpu:.1f} | {cpu / ref:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--table", action="store_true", help="also train and score every model (slow)")
    parser.add_argument("--skip-ops", action="store_true", help="only the table")
    parser.add_argument("--models", nargs="*", default=None, help="table rows to train (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(runtime.describe(), f"| threads {torch.get_num_threads()}\n")
    if not args.skip_ops:
        memory_table(args.resolutions, args.repeats)
        throughput_table(args.repeats, args.batch)
    if args.table:
        table(args.models)


def table(models) -> None:
    """The conditional-generation table, one row printed as soon as its model is trained and scored."""
    from coursekit.models.generation import conditional_table as ct

    s = runtime.pick(ct.SIZES)
    common = dict(seed=0, n_points=s["n_points"], image_size=s["image_size"], resolution=s["resolution"], progress=False)
    start = time.perf_counter()
    train = ct.make_reconstruction_set(s["classes"], s["n_train"], "train", **common)
    test = ct.make_reconstruction_set(s["classes"], s["n_test"], "test", **common)
    print(f"\n## Conditional generation, profile {runtime.profile()}: {len(train)} training / {len(test)} test shapes of "
          f"{', '.join(s['classes'])}, {s['n_points']} points, {s['epochs']} epochs {s.get('row_epochs', {})} (data {time.perf_counter() - start:.0f} s)\n")
    print("| task | model | CD x1e3 | F@tau | EMD | parameters | train s (wall) | train s (CPU) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    gen = torch.Generator().manual_seed(0)

    def row(task, name, pred, params=0, wall=None, cpu=None):
        m = ct.score_points(pred, test.points, s["tau"], gen).mean()
        wall = "-" if wall is None else f"{wall:.0f}"
        cpu = "-" if cpu is None else f"{cpu:.0f}"
        print(f"| {task} | {name} | {m['CD x1e3']:.2f} | {m['F@tau']:.3f} | {m['EMD']:.4f} | {params:,} | {wall} | {cpu} |",
              flush=True)

    row("image/completion", "class mean shape", ct.mean_shape_points(train, test.labels, s["n_points"], gen))
    row("image/completion", "sphere", ct.sphere_points(train, len(test), s["n_points"], gen))
    row("completion", "partial input", test.partial)
    for name in models or ct.IMAGE_MODELS + ct.COMPLETION_MODELS:
        cpu0 = time.process_time()
        model, info = ct.train_model(name, train, s, progress=False)
        cpu = time.process_time() - cpu0
        task = "completion" if name in ct.COMPLETION_MODELS else "image"
        row(task, name, ct.predict_points(name, model, test, gen), info["parameters"], info["seconds"], cpu)


if __name__ == "__main__":
    main()
