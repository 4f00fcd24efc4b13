"""Benchmark: forward + backward throughput of the view, volumetric, octree, sparse, spectral and spherical models.

Each model is built at the sizes of a runtime profile (``--profile``, default ``cpu``) with 12
classes and run on a batch of procedural shapes: ``prep`` is the time to turn the batch of
point clouds (or meshes, for the rendered views) into the model's input, outside the network;
``fwd+bwd`` is one forward and backward pass in training mode (minimum over repeats), and
``samples/s`` is the batch size over it. Models that build their structure inside ``forward``
(octrees, sparse quantisation, Laplacian eigenvectors) pay for it there.

    python benchmarks/grid_models.py [--profile cpu] [--batch 16] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from coursekit import runtime
from coursekit.data.world.datasets import make_classification_split
from coursekit.data.world.shapes import CLASSES, make_shape
from coursekit.models import mvcnn, ocnn, sparse_resnet, spectral_cnn, spherical_cnn, voxnet, xray_cnn
from coursekit.models.mvcnn import MVCNN, SingleViewCNN, render_views
from coursekit.models.ocnn import OCNN
from coursekit.models.sparse_resnet import SparseResNet
from coursekit.models.spectral_cnn import SpectralCNN, SyncSpectralCNN
from coursekit.models.spherical_cnn import SphericalCNN
from coursekit.models.voxnet import VoxNet
from coursekit.models.xray_cnn import XRayCNN

N_CLASSES = len(CLASSES)


def timed(fn, repeats: int, sync) -> float:
    """Minimum wall time (s) of ``fn()`` after one warm-up call."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=runtime.PROFILES, default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime.set_profile(args.profile)
    device = torch.device("cuda") if args.profile == "gpu" and torch.cuda.is_available() else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}, profile {args.profile}, "
          f"batch {args.batch}, min of {args.repeats} repeats\n")

    per_class = -(-args.batch // N_CLASSES)
    train, _ = make_classification_split(per_class, 0, n_points=1024, seed=0, progress=False)
    points, normals = train.points[: args.batch], train.normals[: args.batch]
    views_size = mvcnn.SIZES[args.profile]

    def render_batch():
        shapes = [make_shape(CLASSES[i % N_CLASSES], i) for i in range(args.batch)]
        return torch.stack([render_views(s.vertices, s.faces, views_size["views"], views_size["image_size"])
                            for s in shapes])

    vox, xray, sph = VoxNet(N_CLASSES), XRayCNN(N_CLASSES), SphericalCNN(N_CLASSES)
    rows = [
        ("MVCNN", "views", mvcnn, MVCNN(N_CLASSES), render_batch),
        ("CNN, V views (score average)", "views", mvcnn, SingleViewCNN(N_CLASSES), render_batch),
        ("VoxNet", "occupancy", voxnet, vox, lambda: (vox.prepare(points),)),
        ("X-ray CNN", "occupancy", xray_cnn, xray, lambda: (xray.prepare(points),)),
        ("O-CNN", "points + normals", ocnn, OCNN(N_CLASSES), lambda: (points, normals)),
        ("SparseResNet", "points", sparse_resnet, SparseResNet(N_CLASSES), lambda: (points,)),
        ("Spectral CNN", "points", spectral_cnn, SpectralCNN(N_CLASSES), lambda: (points,)),
        ("Sync spectral CNN", "points", spectral_cnn, SyncSpectralCNN(N_CLASSES), lambda: (points,)),
        ("Spherical CNN", "sphere grid", spherical_cnn, sph, lambda: (sph.prepare(points),)),
    ]
    print("| model | input | sizes | parameters | prep (ms) | fwd+bwd (ms) | samples/s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for name, representation, module, model, prepare in rows:
        start = time.perf_counter()
        inputs = prepare()
        if not isinstance(inputs, tuple):
            inputs = (inputs,)
        prep = time.perf_counter() - start
        model = model.to(device).train()
        inputs = tuple(x.to(device) for x in inputs)

        def step():
            model.zero_grad(set_to_none=True)
            model(*inputs).sum().backward()

        seconds = timed(step, args.repeats, sync)
        params = sum(p.numel() for p in model.parameters())
        described = ", ".join(f"{k}={v}" for k, v in module.SIZES[args.profile].items())
        print(f"| {name} | {representation} | {described} | {params:,} | {prep * 1e3:.0f} | {seconds * 1e3:.0f} "
              f"| {args.batch / seconds:.1f} |")


if __name__ == "__main__":
    main()
