"""Learned MVS models of lecture 06 beyond MVSNet: SurfaceNet, LSM, Point-MVSNet, BA-Net's LM layer.

Prints, for the active profile (``COURSEKIT_PROFILE``; sizes in :data:`SIZES`):

1. the **quantisation / coarse-resolution limits**: error of *perfect* SurfaceNet surface voxels
   and of the *true* occupancy at LSM's grid resolution against the voxel size (a chair of the
   procedural world, scaled to the scenes' 0.3 m);
2. **SurfaceNet** and **LSM** trained on procedural MVS scenes (:mod:`coursekit.data.mvs`) and
   scored with the DTU protocol on held-out scenes, next to the plane-sweep baseline: their rows of the
   lecture's table (:func:`coursekit.models.mvs.mvs_table.run_mvs_table`, that module's sizes and budgets);
3. **Point-MVSNet** per iteration (the slide's table: accuracy, completeness, overall, f-score,
   depth-map resolution, depth interval, memory, runtime), refining a plane-sweep coarse depth at
   1/4 resolution, per reference view of the held-out scenes (its ground truth: that view's
   ground-truth depth, unprojected), averaged;
4. **BA-Net's LM layer** against SciPy's MINPACK LM on the same two-view problem;
5. per-model forward+backward **time and peak tensor memory**.

Units: millimetres (scenes in metres); f-score at ``tau``; DTU's 20 mm outlier cut-off.

Run: ``nice -n 5 env OMP_NUM_THREADS=1 COURSEKIT_PROFILE=cpu .venv/bin/python benchmarks/mvs_learned.py [1 2 3 4 5]``
(section numbers; default all; cpu profile ~20 minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import measure  # noqa: E402

from coursekit import runtime  # noqa: E402
from coursekit.data.mvs import make_mvs_scenes  # noqa: E402
from coursekit.data.world.shapes import make_shape  # noqa: E402
from coursekit.geometry.depth_fusion import depth_to_points  # noqa: E402
from coursekit.geometry.homography import depth_planes, scale_intrinsics  # noqa: E402
from coursekit.models.mvs import banet, lsm, mvs_table, point_mvsnet, surfacenet  # noqa: E402
from coursekit.models.mvs.memory import peak_tensor_memory  # noqa: E402
from coursekit.models.mvs.plane_sweep import PlaneSweep  # noqa: E402

SIZES = {
    "fast": dict(size=(32, 48), n_views=5, n_train=2, n_test=1, sn_res=16, lsm_res=16, lsm_fusion="gru", pm_steps=10,
                 n_depths=16, tau=0.01, limits=(8, 16, 32), lm_size=(32, 32)),
    "cpu": dict(size=(48, 64), n_views=7, n_train=10, n_test=2, sn_res=32, lsm_res=32, lsm_fusion="max", pm_steps=200,
                n_depths=32, tau=0.01, limits=(8, 16, 32, 64, 128), lm_size=(64, 64)),
    "gpu": dict(size=(96, 128), n_views=7, n_train=48, n_test=3, sn_res=64, lsm_res=64, lsm_fusion="gru", pm_steps=2000,
                n_depths=48, tau=0.005, limits=(8, 16, 32, 64, 128, 256), lm_size=(64, 64)),
}
"""Sizes per profile of sections 1 and 3-5 (section 2 uses :data:`coursekit.models.mvs.mvs_table.SIZES`; in section 5
LSM uses max-pooling fusion in cpu because the GRU over 7 views at 32^3 costs ~3x more per step)."""

MM = 1000.0


def table(rows: list[dict], columns: list[str]) -> None:
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |", flush=True)


def limits(cfg) -> None:
    print("\n## 1. Quantisation (SurfaceNet) and coarse-resolution (LSM) limits: perfect outputs, chair of 0.3 m radius\n")
    shape = make_shape("chair", 0)
    surface = shape.sample(100000, 0)[0] * 0.3
    occupancy = lambda p: shape.occupancy(p / 0.3)  # noqa: E731
    center, side = surface.amin(0) / 2 + surface.amax(0) / 2, float((surface.amax(0) - surface.amin(0)).max()) * 1.1
    sn = surfacenet.quantization_error(surface, center, side, cfg["limits"])
    lm = lsm.resolution_limit(occupancy, surface, center, side, cfg["limits"])
    rows = [{"resolution": a["resolution"], "voxel (mm)": a["voxel_size"] * MM, "SurfaceNet overall (mm)": a["overall"] * MM,
             "SurfaceNet overall / voxel": a["overall"] / a["voxel_size"], "LSM overall (mm)": b["overall"] * MM,
             "LSM grid (MiB, V=5, C=16)": b["grid_MiB"] * 5} for a, b in zip(sn, lm)]
    table(rows, list(rows[0]))


def plane_sweep_depths(scene, n_depths: int, stride: int = 1):
    """WTA NCC plane-sweep depth of every view at 1/stride resolution (the baseline and Point-MVSNet's coarse depth)."""
    ps = PlaneSweep("ncc", 5 if stride == 1 else 3)
    images = torch.nn.functional.avg_pool2d(scene.images, stride) if stride > 1 else scene.images
    K = scale_intrinsics(scene.K, 1 / stride)
    planes = depth_planes(*scene.depth_range, n_depths)
    depths, conf = [], []
    for v in range(len(scene)):
        views = torch.cat([torch.tensor([v]), scene.pairs[v, :2]])
        out = ps(images[views][None], K[views][None], scene.R[views][None], scene.t[views][None], planes[None])
        depths.append(out["depth"][0])
        conf.append(out["confidence"][0])
    return torch.stack(depths), torch.stack(conf), K, planes


def voxel_methods() -> None:
    print("\n## 2. SurfaceNet and LSM in the lecture's DTU table (mvs_table.SIZES of the profile), vs the plane sweep\n")
    out = mvs_table.run_mvs_table(methods=("Plane sweep (SAD)", "SurfaceNet", "LSM"), progress=False)
    print(mvs_table.format_table(out["rows"]))
    print("\ntraining steps: " + ", ".join(f"{name} {len(losses)}" for name, losses in out["losses"].items()))


def point_mvsnet_table(cfg, train, test) -> None:
    print("\n## 3. Point-MVSNet per iteration (the slide's table), plane-sweep coarse depth at 1/4, mean over reference views\n")
    stride = 4
    torch.manual_seed(0)
    net = point_mvsnet.PointMVSNet(hypotheses=2, channels=(8, 16, 16), width=32, neighbours=8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    samples = []
    for scene in train:
        depths, _, _, planes = plane_sweep_depths(scene, cfg["n_depths"], stride)
        interval = float(planes[1] - planes[0])
        for v in range(len(scene)):
            views = torch.cat([torch.tensor([v]), scene.pairs[v, :2]])
            samples.append((depths[v:v + 1], scene.images[views][None], scene.K[views][None], scene.R[views][None],
                            scene.t[views][None], interval, scene.depth[v:v + 1], scene.depth[v:v + 1] > 0))
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    net.train()
    for step in range(cfg["pm_steps"]):
        coarse, images, K, R, t, interval, gt, valid = samples[int(torch.randint(len(samples), (), generator=gen))]
        depths = net(coarse, images, K, R, t, interval)
        loss = point_mvsnet.refinement_loss(depths, gt, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained {cfg['pm_steps']} steps in {time.perf_counter() - start:.0f} s")
    sums, count = None, 0
    for scene in test:
        start = time.perf_counter()
        depths, _, _, planes = plane_sweep_depths(scene, cfg["n_depths"], stride)
        coarse_seconds = (time.perf_counter() - start) / len(scene)
        interval = float(planes[1] - planes[0])
        for v in range(len(scene)):
            views = torch.cat([torch.tensor([v]), scene.pairs[v, :2]])
            mask = scene.mask[v:v + 1]
            gt_points = depth_to_points(scene.depth[v:v + 1], scene.K[v:v + 1], scene.R[v:v + 1],
                                        scene.t[v:v + 1])[0][mask[0].reshape(-1)]
            rows = point_mvsnet.iteration_table(net, depths[v:v + 1], scene.images[views][None], scene.K[views][None],
                                                scene.R[views][None], scene.t[views][None], interval, gt_points, mask,
                                                threshold=cfg["tau"], coarse_seconds=coarse_seconds)
            if sums is None:
                sums = [dict(r) for r in rows]
            else:
                for s, r in zip(sums, rows):
                    for k in ("accuracy", "completeness", "overall", "fscore", "memory_MiB", "runtime_s"):
                        s[k] += r[k]
            count += 1
    out = [{"Iter.": s["iteration"] or "-", "Acc. (mm)": s["accuracy"] / count * MM, "Comp. (mm)": s["completeness"] / count * MM,
            "Overall (mm)": s["overall"] / count * MM, f"{cfg['tau'] * MM:g}mm f-score": s["fscore"] / count,
            "Depth Map Res.": s["resolution"], "Depth Interval (mm)": s["interval"] * MM,
            "Mem. (MiB, tensors)": s["memory_MiB"] / count, "Runtime (s)": s["runtime_s"] / count} for s in sums]
    table(out, list(out[0]))


def lm_layer(cfg) -> None:
    print("\n## 4. BA-Net's LM layer vs scipy.optimize.least_squares(method='lm') on the same two-view residual\n")
    problem = banet.make_two_view_problem(size=cfg["lm_size"], focal=cfg["lm_size"][1] / 2, frequency=8.0 * cfg["lm_size"][1] / 64)
    start_x = problem.x_true + torch.tensor([0.01, -0.01, 0.01, 0.03, -0.02, 0.02, 0.02, 0.02], dtype=torch.float64)
    t0 = time.perf_counter()
    ours, costs = banet.levenberg_marquardt(problem.residual, start_x, iterations=60)
    t1 = time.perf_counter()
    ref = banet.solve_scipy(problem.residual, start_x)
    t2 = time.perf_counter()
    rows = [{"solver": "coursekit LM (autograd J)", "seconds": t1 - t0, "iterations": len(costs), "final cost": costs[-1],
             "|x - scipy|_max": float((ours.detach() - ref).abs().max()), "|x - x_true|_max": float((ours.detach() - problem.x_true).abs().max())},
            {"solver": "scipy least_squares lm", "seconds": t2 - t1, "final cost": 0.5 * float((problem.residual(ref) ** 2).sum()),
             "|x - x_true|_max": float((ref - problem.x_true).abs().max())}]
    table(rows, list(rows[0]))


def per_model(cfg) -> None:
    print("\n## 5. Per-model forward+backward time (min of repeats) and peak tensor memory, batch 1\n")
    H, W = cfg["size"]
    V = cfg["n_views"]
    from coursekit.geometry.camera import fov_intrinsics, look_at

    eye = torch.stack([torch.linspace(-0.5, 0.5, V), torch.full((V,), 0.3), torch.full((V,), 1.4)], -1)
    R, t = look_at(eye, torch.zeros(3))
    K = fov_intrinsics(45.0, (H, W)).expand(V, 3, 3)
    images = torch.rand(1, V, 3, H, W)
    s = cfg["sn_res"]
    sn = surfacenet.SurfaceNet()
    cubes = surfacenet.colored_voxel_cube(images[:, :2], K[None, :2], R[None, :2], t[None, :2], torch.zeros(1, 3), 0.8, s)
    lm = lsm.LSM(resolution=cfg["lsm_res"], fusion=cfg["lsm_fusion"])
    pm = point_mvsnet.PointMVSNet()
    coarse = torch.full((1, H // 4, W // 4), 1.4)
    problem = banet.make_two_view_problem()
    x0 = problem.x_true + 0.01
    cases = [
        (f"SurfaceNet {s}^3 (2 views)", lambda: sn(cubes).sum().backward()),
        (f"LSM {cfg['lsm_res']}^3 ({V} views, {cfg['lsm_fusion']})", lambda: lm(images, K[None], R[None], t[None], torch.zeros(1, 3), 0.8).sum().backward()),
        (f"Point-MVSNet 3 iterations ({W // 4}x{H // 4} -> {W}x{H}, 3 views)",
         lambda: pm(coarse, images[:, :3], K[None, :3], R[None, :3], t[None, :3], 0.02)[-1].sum().backward()),
        ("LM layer, 5 steps (8 unknowns, 144x3 residuals)",
         lambda: banet.LMLayer(5, 1e-2)(problem.residual, x0.clone().requires_grad_()).sum().backward()),
    ]
    rows = []
    for name, fn in cases:
        seconds, _ = measure(fn, 2)
        _, peak = peak_tensor_memory(fn)
        rows.append({"model": name, "fwd+bwd ms": seconds * 1e3, "peak tensor MiB": peak / 2**20})
    table(rows, list(rows[0]))


def main(sections: list[str]) -> None:
    """Run the numbered ``sections`` (default all: 1-5)."""
    cfg = runtime.pick(SIZES)
    want = set(sections or "12345")
    print(f"# Learned MVS benchmark, profile {runtime.profile()}; {runtime.describe()}")
    print(f"torch threads: {torch.get_num_threads()}")
    if "1" in want:
        limits(cfg)
    if "2" in want:
        voxel_methods()
    if "3" in want:
        kw = dict(n_views=cfg["n_views"], size=cfg["size"])
        train = make_mvs_scenes(cfg["n_train"], split="train", **kw)
        test = make_mvs_scenes(cfg["n_test"], split="test", **kw)
        point_mvsnet_table(cfg, train, test)
    if "4" in want:
        lm_layer(cfg)
    if "5" in want:
        per_model(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
