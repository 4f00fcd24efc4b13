"""Benchmark: forward + backward throughput of the point and graph classifiers at profile sizes.

For each model of issue #7 (PointNet, PointNet++ SSG/MSG, DGCNN, RS-CNN, PointConv, KPConv rigid
and deformable, PCNN) and each requested profile's sizes (points per cloud, widths, centres), one
training step without the optimiser: forward, cross-entropy + the model's regulariser, backward.
Each time is the minimum over repeats after one warm-up. On the CPU two times are printed: wall
time, and the process's CPU time (``time.process_time``), which a machine shared with other jobs
inflates far less — with ``--threads 1`` it is the wall time an idle core would show; the
throughput (clouds per second) and the ratio against PointNet at the same profile, measured in the
same run, use it. CUDA rows (wall time) appear when a GPU is present.

When PyTorch Geometric is importable, EdgeConv and the PointNet++ set abstraction's local
operator are also timed against PyG's ``EdgeConv`` and ``PointNetConv`` on the same input and
the same neighbour indices (PyG's own ``knn``/``fps``/``radius`` need torch-cluster, which has no
installable build here, so the graphs come from coursekit for both).

    python benchmarks/point_models.py [--profiles fast cpu] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from coursekit.geometry.neighbors import group
from coursekit.models import dgcnn, kpconv, pcnn, pointconv, pointnet, pointnet2, rscnn
from coursekit.nn.edgeconv import EdgeConv, feature_knn
from coursekit.nn.set_abstraction import MiniPointNet, neighbourhoods, sample_centres

BATCH = {"fast": 8, "cpu": 16, "gpu": 32}
N_CLASSES = 10

MODELS = {
    "PointNet": (pointnet, lambda s: pointnet.PointNet(N_CLASSES, sizes=s)),
    "PointNet++ SSG": (pointnet2, lambda s: pointnet2.PointNet2(N_CLASSES, variant="ssg", sizes=s)),
    "PointNet++ MSG": (pointnet2, lambda s: pointnet2.PointNet2(N_CLASSES, variant="msg", sizes=s)),
    "DGCNN": (dgcnn, lambda s: dgcnn.DGCNN(N_CLASSES, sizes=s)),
    "RS-CNN": (rscnn, lambda s: rscnn.RSCNN(N_CLASSES, sizes=s)),
    "PointConv": (pointconv, lambda s: pointconv.PointConvNet(N_CLASSES, sizes=s)),
    "KPConv rigid": (kpconv, lambda s: kpconv.KPConvNet(N_CLASSES, sizes=s)),
    "KPConv deformable": (kpconv, lambda s: kpconv.KPConvNet(N_CLASSES, sizes=s, deformable=True)),
    "PCNN": (pcnn, lambda s: pcnn.PCNN(N_CLASSES, sizes=s)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(step, params, device: torch.device, repeats: int) -> tuple[float, float]:
    """Minimum wall and process-CPU times in seconds of ``step()`` (forward and backward) after one warm-up."""
    wall = cpu = float("inf")
    for i in range(repeats + 1):
        for p in params:
            p.grad = None
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        if i:
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def _cost(times: tuple[float, float], device: torch.device) -> float:
    """The time the comparisons use: process CPU time on the CPU, wall time on a GPU."""
    return times[1] if device.type == "cpu" else times[0]


def unit_sphere(b: int, n: int, device: torch.device) -> torch.Tensor:
    pts = torch.randn(b, n, 3, generator=torch.Generator().manual_seed(0))
    pts = pts * torch.tensor([1.0, 0.6, 0.3])
    return (pts / pts.norm(dim=-1).amax(1, keepdim=True)[..., None]).to(device)


def model_rows(profiles: list[str], devices: list[torch.device], repeats: int) -> None:
    print("| device | profile | model | points | batch | parameters | wall (ms/batch) | CPU (ms/batch) | clouds/s "
          "| vs PointNet |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for device in devices:
        for profile in profiles:
            base = None
            for name, (module, build) in MODELS.items():
                sizes = module.SIZES[profile]
                torch.manual_seed(0)
                model = build(sizes).to(device).train()
                points = unit_sphere(BATCH[profile], sizes["n_points"], device)
                target = torch.arange(BATCH[profile], device=device) % N_CLASSES

                def step():
                    loss = F.cross_entropy(model(points), target) + model.regularizer()
                    loss.backward()

                times = time_step(step, list(model.parameters()), device, repeats)
                seconds = _cost(times, device)
                base = base or seconds
                n_params = sum(p.numel() for p in model.parameters())
                cpu = f"{times[1] * 1e3:.1f}" if device.type == "cpu" else "-"
                print(f"| {device.type} | {profile} | {name} | {sizes['n_points']} | {BATCH[profile]} | {n_params:,} | "
                      f"{times[0] * 1e3:.1f} | {cpu} | {BATCH[profile] / seconds:.1f} | {base / seconds:.2f}x |", flush=True)


def pyg_rows(profiles: list[str], devices: list[torch.device], repeats: int) -> None:
    try:
        from torch_geometric.nn import EdgeConv as PygEdgeConv
        from torch_geometric.nn import PointNetConv
    except ImportError:
        print("\nPyTorch Geometric is not installed: no PyG rows (pip install torch-geometric to add them).")
        return
    print("\n| device | profile | layer | coursekit (ms) | PyG (ms) | coursekit / PyG |  (CPU: process time)")
    print("| --- | --- | --- | --- | --- | --- |")
    for device in devices:
        for profile in profiles:
            b, n = BATCH[profile], pointnet2.SIZES[profile]["n_points"]
            points = unit_sphere(b, n, device)

            # EdgeConv, first DGCNN layer: xyz -> edge[0] channels on the kNN graph (point included)
            k, c_out = dgcnn.SIZES[profile]["k"], dgcnn.SIZES[profile]["edge"][0]
            ours = EdgeConv(3, c_out, k).to(device)
            idx = feature_knn(points, k)
            theirs = PygEdgeConv(torch.nn.Sequential(torch.nn.Linear(6, c_out, bias=False), torch.nn.BatchNorm1d(c_out),
                                                     torch.nn.LeakyReLU(0.2)), aggr="max").to(device)
            offset = (torch.arange(b, device=device) * n).view(b, 1, 1)
            edge_index = torch.stack([(idx + offset).reshape(-1),
                                      torch.arange(b * n, device=device).repeat_interleave(k)])
            flat = points.reshape(-1, 3)
            t_ours = _cost(time_step(lambda: ours(points, idx).sum().backward(), list(ours.parameters()), device,
                                     repeats), device)
            t_pyg = _cost(time_step(lambda: theirs(flat, edge_index).sum().backward(), list(theirs.parameters()), device,
                                    repeats), device)
            print(f"| {device.type} | {profile} | EdgeConv 3->{c_out}, k={k}, {b}x{n} | {t_ours * 1e3:.2f} | "
                  f"{t_pyg * 1e3:.2f} | {t_ours / t_pyg:.2f} |", flush=True)

            # PointNet++ SSG first level's local operator on the same FPS centres and ball-query groups
            spec = pointnet2.SIZES[profile]["ssg"][0]
            centres = group(points, sample_centres(points, spec["n_centres"]))
            idx, valid = neighbourhoods(points, centres, spec["n_samples"], spec["radius"])
            ours = MiniPointNet(0, spec["mlp"]).to(device)
            widths = [3, *spec["mlp"]]
            layers = []
            for a, c in zip(widths[:-1], widths[1:]):
                layers += [torch.nn.Linear(a, c, bias=False), torch.nn.BatchNorm1d(c), torch.nn.ReLU()]
            theirs = PointNetConv(local_nn=torch.nn.Sequential(*layers), add_self_loops=False).to(device)
            m = spec["n_centres"]
            src = (idx + offset)[valid]                                     # PyG takes only the real neighbours
            dst = (torch.arange(m, device=device).view(1, m, 1) + torch.arange(b, device=device).view(b, 1, 1) * m)
            edge_index = torch.stack([src, dst.expand_as(idx)[valid]])
            pos = (flat, centres.reshape(-1, 3))
            t_ours = _cost(time_step(lambda: ours(points, None, centres, idx, valid).sum().backward(),
                                     list(ours.parameters()), device, repeats), device)
            t_pyg = _cost(time_step(lambda: theirs((None, None), pos, edge_index).sum().backward(),
                                    list(theirs.parameters()), device, repeats), device)
            print(f"| {device.type} | {profile} | SA local PointNet {spec['mlp']}, {b}x{m} centres x {spec['n_samples']} "
                  f"| {t_ours * 1e3:.2f} | {t_pyg * 1e3:.2f} | {t_ours / t_pyg:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["fast", "cpu"], choices=["fast", "cpu", "gpu"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"one training step (forward, cross-entropy + regulariser, backward), float32, min of {args.repeats} "
          "repeats after a warm-up\n")
    model_rows(args.profiles, devices, args.repeats)
    pyg_rows(args.profiles, devices, args.repeats)


if __name__ == "__main__":
    main()
