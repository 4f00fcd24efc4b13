r"""Conditional generation on the procedural world: single image -> shape, partial points -> completion.

:func:`make_reconstruction_set` draws world shapes (canonical pose, unit ball) with what the
explicit generators need: a grey render from the one fixed camera of
:func:`~coursekit.models.generation.implicit_table.implicit_camera` (the same view the implicit
models read), ``P`` surface points with normals, a **partial scan** of ``P`` points (what one
depth camera sees from a random direction, :func:`coursekit.data.world.partial_scan`) and an
occupancy grid (solid ∪ surface, :func:`~coursekit.models.generation.gan_voxel.shape_voxels`).

:func:`conditional_table` trains each generator on the training shapes and scores its
predictions on the test shapes against the ``P`` true surface points, with

* **CD**: the ``"pytorch3d"`` Chamfer (mean squared NN distance each way, summed; shapes in the
  unit ball; reported x 10^3 as AtlasNet's tables do),
* **F@tau**: F-score at ``tau`` (Tatarchenko et al.; ``tau`` = 0.05 of the unit ball's radius by default),
* **EMD**: the exact EMD (``linear_sum_assignment``), mean distance per point, ``P`` predicted
  points resampled when a model outputs another count,

next to two trivial baselines, as in the implicit models' table:

* **class mean shape** — the mean training occupancy grid of the test shape's class (the class
  is given: an oracle), thresholded at 0.5, surface points sampled from it;
* **sphere** — points uniform on the sphere whose radius is the mean distance of training
  surface points from the centre.

Rows: for single-image reconstruction, PSGN trained with CD and with (Sinkhorn) EMD, AtlasNet,
Pixel2Mesh (one ico-sphere, and the part-level variant with two) and OGN; for completion, FoldingNet and AtlasNet on the partial cloud, and the
partial cloud itself as a third baseline. Meshes (Pixel2Mesh) and octrees (OGN) are turned
into ``P`` points by surface sampling, so every row is scored the same way.

Sizes (:data:`SIZES`, read through :func:`coursekit.runtime.pick`): ``fast`` trains every model
for seconds on a few shapes (tests, CI); ``cpu`` is sized so that each model trains within 10
minutes on 2 cores; ``gpu`` is larger. Numbers from the ``fast`` profile show that the pipeline
works, not which model is best.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ... import runtime
from ...data.world.datasets import partial_scan, sample_seed
from ...data.world.shapes import make_shape
from ...geometry.render import render_mesh
from ...geometry.sampling import sample_mesh_surface
from ...metrics.chamfer import chamfer_distance
from ...metrics.emd import emd_exact
from ...metrics.fscore import fscore
from ...train import batches, fit
from .atlasnet import AtlasNet
from .folding import FoldingNet
from .gan_voxel import shape_voxels, voxels_to_points
from .implicit_table import implicit_camera
from .ogn import OGN, octree_labels, ogn_loss
from .pixel2mesh import Pixel2Mesh, mesh_losses
from .psgn import PSGN, psgn_loss

__all__ = ["SIZES", "IMAGE_MODELS", "COMPLETION_MODELS", "ReconstructionSet", "make_reconstruction_set", "Scores",
           "score_points", "predict_points", "mean_shape_points", "sphere_points", "train_model", "conditional_table", "format_table"]

SIZES = {
    "fast": dict(classes=("chair", "mug", "airplane"), n_train=6, n_test=2, n_points=256, image_size=32, resolution=16,
                 epochs=15, batch_size=4, lr=2e-3, tau=0.05, models=None),
    "cpu": dict(classes=("airplane", "car", "chair", "lamp", "mug", "table"), n_train=40, n_test=5, n_points=1024,
                image_size=64, resolution=32, epochs=40, batch_size=16, lr=1e-3, tau=0.05, models=None,
                row_epochs={"FoldingNet": 120, "Pixel2Mesh (2 templates)": 28}),
    "gpu": dict(classes=("airplane", "bed", "bookshelf", "bottle", "cabinet", "car", "chair", "lamp", "mug", "sofa",
                         "table", "vase"), n_train=200, n_test=20, n_points=2048, image_size=64, resolution=32,
                epochs=150, batch_size=32, lr=5e-4, tau=0.05, models=None),
}
"""Sizes per profile: classes, shapes per class (train / test), points per cloud ``P``, image size,
voxel resolution (OGN, the mean shape), epochs, batch size, Adam's learning rate, the F-score
threshold, ``models`` (``None``: every row of :data:`IMAGE_MODELS` and :data:`COMPLETION_MODELS`) and
``row_epochs`` (optional: epochs of the rows whose cost per epoch is far from the others', so that each
row fits the profile's time: FoldingNet's epoch is cheap, the two-template Pixel2Mesh's dear)."""

IMAGE_MODELS = ("PSGN (CD)", "PSGN (EMD)", "AtlasNet", "Pixel2Mesh", "Pixel2Mesh (2 templates)", "OGN")
"""Single-image reconstruction rows (``Pixel2Mesh (2 templates)``: the part-level variant, two ico-spheres)."""

COMPLETION_MODELS = ("FoldingNet", "AtlasNet (points)")
"""Shape completion rows (input: the partial scan)."""


@dataclass
class ReconstructionSet:
    """World shapes with one render, surface points, a partial scan and an occupancy grid (aligned by index).

    Attributes:
        shapes: the :class:`~coursekit.data.world.Shape` objects.
        labels: ``(S,)`` int64 into ``class_names``; class_names: the classes drawn.
        images: ``(S, 1, H, W)`` grey render from the fixed camera, white background.
        points, normals: ``(S, P, 3)`` uniform surface samples and their outward normals.
        partial: ``(S, P, 3)`` a single-view depth scan (random direction per shape).
        voxels: ``(S, R, R, R)`` bool occupancy (solid ∪ surface), axis order z, y, x.
        K, R, t: the camera of ``images`` (``(3, 3)``, ``(3, 3)``, ``(3,)``).
    """

    shapes: list
    labels: torch.Tensor
    class_names: tuple
    images: torch.Tensor
    points: torch.Tensor
    normals: torch.Tensor
    partial: torch.Tensor
    voxels: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor

    def __len__(self) -> int:
        return len(self.shapes)


def make_reconstruction_set(classes: Sequence[str], per_class: int, split: str = "train", *, seed: int = 0,
                            n_points: int = 1024, image_size: int = 64, resolution: int = 32,
                            progress: bool = True) -> ReconstructionSet:
    """Draw ``per_class`` shapes of each class with a render, surface points, a partial scan and voxels.

    Each shape has its own seed ``sample_seed(seed, "reconstruction-" + split, class, i)``: train and
    test never share a shape.

    Returns:
        :class:`ReconstructionSet`.
    """
    K, R, t = implicit_camera(image_size)
    shapes, labels, images, points, normals, partial = ([] for _ in range(6))
    jobs = [(c, i) for c in classes for i in range(per_class)]
    for name, i in tqdm(jobs, desc=f"shapes {split}", disable=not progress, leave=False):
        g = torch.Generator().manual_seed(sample_seed(seed, f"reconstruction-{split}", name, i))
        shape = make_shape(name, g)
        r = render_mesh(shape.vertices, shape.faces, K, R, t, (image_size, image_size))
        images.append(r["rgb"][:, :1] + (~r["mask"][:, None]).float())
        p, n, _ = shape.sample(n_points, g)
        points.append(p)
        normals.append(n)
        partial.append(partial_scan(shape, n_points, g)[0])
        shapes.append(shape)
        labels.append(list(classes).index(name))
    voxels = shape_voxels(shapes, resolution)[:, 0].bool()
    return ReconstructionSet(shapes, torch.tensor(labels, dtype=torch.int64), tuple(classes), torch.cat(images),
                             torch.stack(points), torch.stack(normals), torch.stack(partial), voxels, K[0], R[0], t[0])


# ------------------------------------------------------------------ scoring


@dataclass
class Scores:
    """Per-shape scores of predictions: ``cd`` (x 10^3), ``fscore``, ``emd`` — each ``(S,)`` float64."""

    cd: torch.Tensor
    fscore: torch.Tensor
    emd: torch.Tensor

    def mean(self) -> dict[str, float]:
        return {"CD x1e3": float(self.cd.mean()), "F@tau": float(self.fscore.mean()), "EMD": float(self.emd.mean())}


def _resample(points: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, N, 3) -> (B, n, 3)``: a random subset (``N >= n``) or random repeats (``N < n``)."""
    B, N, _ = points.shape
    if N == n:
        return points
    if N > n:
        idx = torch.stack([torch.randperm(N, generator=generator)[:n] for _ in range(B)])
    else:
        idx = torch.randint(N, (B, n), generator=generator)
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))


def score_points(pred: torch.Tensor, gt: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> Scores:
    r"""CD (``"pytorch3d"``, x 10^3), F-score@``tau`` and exact EMD (mean per point) of predicted clouds.

    .. math::  \mathrm{CD} = \tfrac1N \textstyle\sum_x d^2(x, Y) + \tfrac1M \sum_y d^2(y, X), \quad
               \mathrm{EMD} = \tfrac1M \min_\phi \textstyle\sum_x \lVert x - \phi(x) \rVert_2

    Args:
        pred: ``(B, N, 3)``; gt: ``(B, M, 3)``; tau: F-score threshold.
        generator: draws the resampling of ``pred`` to ``M`` points for the EMD (when ``N != M``).

    Returns:
        :class:`Scores`.
    """
    pred, gt = pred.detach().float().cpu(), gt.detach().float().cpu()
    generator = generator or torch.Generator().manual_seed(0)
    cd = chamfer_distance(pred, gt, "pytorch3d").double() * 1e3
    f = fscore(pred, gt, tau).double()
    emd = emd_exact(_resample(pred, gt.shape[1], generator), gt, point_reduction="mean")[0].double()
    return Scores(cd, f, emd)


def mean_shape_points(train: ReconstructionSet, labels: torch.Tensor, n_points: int,
                      generator: torch.Generator) -> torch.Tensor:
    """The class-mean-shape baseline: surface points of the mean training occupancy of each label's class.

    .. math::  \\bar O_c = \\mathbb 1\\Big[\\frac{1}{|S_c|} \\sum_{s \\in S_c} O_s \\ge 0.5\\Big]

    Returns:
        ``(len(labels), n_points, 3)``.
    """
    means = torch.stack([train.voxels[train.labels == c].float().mean(0) for c in range(len(train.class_names))])
    return voxels_to_points(means[labels][:, None], n_points, generator, threshold=0.5 - 1e-6)


def sphere_points(train: ReconstructionSet, count: int, n_points: int, generator: torch.Generator) -> torch.Tensor:
    """The sphere baseline: ``n_points`` uniform on the sphere of the mean training point radius.

    Returns:
        ``(count, n_points, 3)``.
    """
    radius = float(train.points.norm(dim=-1).mean())
    d = torch.randn(count, n_points, 3, generator=generator)
    return radius * d / d.norm(dim=-1, keepdim=True)


# ------------------------------------------------------------------ training


class _WithStages(nn.Module):
    """Pixel2Mesh for :func:`coursekit.train.fit`: returns every stage's ``(before, after)``."""

    def __init__(self, model: Pixel2Mesh):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.stages(images)


class _Teacher(nn.Module):
    """OGN for :func:`coursekit.train.fit`: expands the true mixed cells (prop known)."""

    def __init__(self, model: OGN):
        super().__init__()
        self.model = model

    def forward(self, images, voxels):
        labels = octree_labels(voxels, self.model.base)
        return self.model(images, labels), labels


def _build(name: str, data: ReconstructionSet) -> tuple[nn.Module, nn.Module, Callable, Callable, Callable]:
    """``(model, trained wrapper, inputs(data), targets(data), loss)`` of one row."""
    P = data.points.shape[1]
    size = tuple(data.images.shape[-2:])
    cat_normals = lambda d: torch.cat([d.points, d.normals], -1)  # noqa: E731
    if name in ("PSGN (CD)", "PSGN (EMD)"):
        model = PSGN(P)
        kind = "chamfer" if name == "PSGN (CD)" else "emd"
        return model, model, lambda d: (d.images,), lambda d: d.points, lambda out, y: psgn_loss(out, y, kind)
    if name in ("AtlasNet", "AtlasNet (points)"):
        model = AtlasNet("image" if name == "AtlasNet" else "points", n_points=P)
        inputs = (lambda d: (d.images,)) if name == "AtlasNet" else (lambda d: (d.partial,))
        return model, model, inputs, lambda d: d.points, lambda out, y: chamfer_distance(out, y, "atlasnet", reduction="mean")
    if name == "FoldingNet":
        model = FoldingNet("points")
        return model, model, lambda d: (d.partial,), lambda d: d.points, lambda out, y: chamfer_distance(out, y, "pytorch3d", reduction="mean")
    if name in ("Pixel2Mesh", "Pixel2Mesh (2 templates)"):
        model = Pixel2Mesh(data.K, data.R, data.t, size, n_templates=1 if name == "Pixel2Mesh" else 2)

        def loss(stages, y):
            return sum(mesh_losses(after, model.edges[k].to(y.device), y[..., :3], y[..., 3:], before)["total"]
                       for k, (before, after) in enumerate(stages))
        return model, _WithStages(model), lambda d: (d.images,), cat_normals, loss
    if name == "OGN":
        model = OGN()
        return model, _Teacher(model), lambda d: (d.images, d.voxels), lambda d: d.voxels.float(), lambda out, y: ogn_loss(*out)
    raise ValueError(f"unknown model {name!r}; known: {IMAGE_MODELS + COMPLETION_MODELS}")


def train_model(name: str, train: ReconstructionSet, sizes: dict | None = None, progress: bool = True,
                seed: int = 0) -> tuple[nn.Module, dict]:
    """Build and train one row's model on ``train`` (Adam, cosine-annealed learning rate).

    Returns:
        ``(model, {"seconds", "epochs", "parameters", "final_loss"})`` (``epochs``: ``sizes["row_epochs"]``'s
        entry for ``name`` when it has one, else ``sizes["epochs"]``).
    """
    s = dict(sizes or runtime.pick(SIZES))
    torch.manual_seed(seed)
    model, wrapper, inputs, targets, loss = _build(name, train)
    data = batches(*inputs(train), targets(train), batch_size=s["batch_size"], shuffle=True,
                   generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(wrapper.parameters(), lr=s["lr"])
    epochs = s.get("row_epochs", {}).get(name, s["epochs"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs))
    start = time.perf_counter()
    history = fit(wrapper, data, epochs=epochs, optimizer=optimizer, scheduler=scheduler, loss_fn=loss,
                  progress=progress, desc=name)
    info = {"seconds": time.perf_counter() - start, "epochs": len(history),
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": history.records[-1]["train_loss"] if len(history) else float("nan")}
    return model.eval(), info


def predict_points(name: str, model: nn.Module, data: ReconstructionSet, generator: torch.Generator) -> torch.Tensor:
    """``(S, P, 3)`` predicted surface points of a trained row's model on ``data``."""
    P = data.points.shape[1]
    device = next(model.parameters()).device
    with torch.no_grad():
        if name in ("PSGN (CD)", "PSGN (EMD)"):
            return model(data.images.to(device)).cpu()
        if name == "AtlasNet":
            return model(data.images.to(device), P).cpu()
        if name == "AtlasNet (points)":
            return model(data.partial.to(device), P).cpu()
        if name == "FoldingNet":
            return model(data.partial.to(device)).cpu()
        if name in ("Pixel2Mesh", "Pixel2Mesh (2 templates)"):
            vertices = model(data.images.to(device)).cpu()
            faces = model.faces[-1]
            return torch.stack([sample_mesh_surface(v, faces, P, generator).points for v in vertices])
        if name == "OGN":
            occ = model.occupancy(model(data.images.to(device)), len(data)).cpu()
            return voxels_to_points(occ[:, None].float(), P, generator)
    raise ValueError(f"unknown model {name!r}")


def conditional_table(sizes: dict | None = None, seed: int = 0, progress: bool = True,
                      data: tuple[ReconstructionSet, ReconstructionSet] | None = None,
                      trained: dict[str, nn.Module] | None = None, infos: dict[str, dict] | None = None) -> dict:
    """Train every conditional generator on the world and score it against the baselines.

    Args:
        sizes: a :data:`SIZES` entry (default: the active profile's).
        seed: data, initialisation and sampling seed.
        progress: ``tqdm.auto`` bars.
        data: ``(train, test)`` from :func:`make_reconstruction_set` (default: drawn with ``sizes``).
        trained: models already trained by :func:`train_model` on ``train``, by row name; they are
            scored as they are, the others are trained.
        infos: the :func:`train_model` infos of ``trained`` (their training seconds go in the table).

    Returns:
        ``{"rows": [{"task", "model", "CD x1e3", "F@tau", "EMD", "parameters", "seconds"}], "models":
        {name: trained model}, "predictions": {"task/name": (S, P, 3)}, "train", "test", "sizes"}``.
    """
    s = dict(sizes or runtime.pick(SIZES))
    if data is None:
        common = dict(seed=seed, n_points=s["n_points"], image_size=s["image_size"], resolution=s["resolution"],
                      progress=progress)
        data = (make_reconstruction_set(s["classes"], s["n_train"], "train", **common),
                make_reconstruction_set(s["classes"], s["n_test"], "test", **common))
    train, test = data
    gen = torch.Generator().manual_seed(seed)
    P, tau = test.points.shape[1], s["tau"]
    rows, models, predictions = [], dict(trained or {}), {}

    def add(task, name, pred, info=None):
        predictions[f"{task}/{name}"] = pred
        rows.append({"task": task, "model": name, **score_points(pred, test.points, tau, gen).mean(),
                     "parameters": (info or {}).get("parameters", 0), "seconds": (info or {}).get("seconds")})

    wanted = s.get("models")
    for task, names in (("image", IMAGE_MODELS), ("completion", COMPLETION_MODELS)):
        add(task, "class mean shape", mean_shape_points(train, test.labels, P, gen))
        add(task, "sphere", sphere_points(train, len(test), P, gen))
        if task == "completion":
            add(task, "partial input", test.partial)
        for name in names:
            if wanted is not None and name not in wanted and name not in models:
                continue
            if name in models:
                info = {"parameters": sum(p.numel() for p in models[name].parameters()),
                        "seconds": (infos or {}).get(name, {}).get("seconds")}
            else:
                models[name], info = train_model(name, train, s, progress, seed)
            add(task, name, predict_points(name, models[name], test, gen), info)
    return {"rows": rows, "models": models, "predictions": predictions, "train": train, "test": test, "sizes": s}


def format_table(result: dict) -> str:
    """The rows of :func:`conditional_table` as a markdown table."""
    lines = ["| task | model | CD x1e3 | F@tau | EMD | parameters | train s |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"| {r['task']} | {r['model']} | {r['CD x1e3']:.2f} | {r['F@tau']:.3f} | {r['EMD']:.4f} | "
                     f"{r['parameters']:,} | {seconds} |")
    return "\n".join(lines)
