r"""The free-generation table: every free generator trained on the world, scored against held-out shapes.

One call (:func:`free_generation_table`) draws one class of the procedural world (chairs by
default, as Achlioptas et al. and StructureNet), trains 3D-GAN, r-GAN, l-GAN and the StructureNet
VAE on the training shapes, samples each, and compares the samples :math:`S_g` with a held-out set
:math:`S_r` (the slide's "A: generated point clouds, B: a held-out test set"):

.. math::  \text{MMD} = \operatorname{mean}_{r \in S_r} \min_{g \in S_g} D(g, r), \qquad
           \text{COV} = \frac{|\{\operatorname{arg\,min}_{r} D(g, r) : g \in S_g\}|}{|S_r|}, \qquad
           \text{FPD} = \lVert m_r - m_g \rVert^2 + \operatorname{Tr}(\Sigma_r + \Sigma_g - 2(\Sigma_r \Sigma_g)^{1/2})

plus 1-NNA (50% ideal) and JSD of occupancy grids (:mod:`coursekit.metrics.set_metrics`), with
``D`` = Chamfer (PyTorch3D convention: sum of the two mean squared NN distances) and exact EMD
(mean over points, on one random subset of ``emd_points`` point slots, since the exact
assignment is cubic). FPD uses the shipped world PointNet (:mod:`coursekit.metrics.fpd_features`).
Units: the world's canonical pose, every shape in the unit ball (radius 1); JSD is computed on
the clouds scaled by 1/2, into latent_3d_points' grid of radius 0.5.

Reference rows: ``real (train shapes)`` scores training shapes as if generated (what a perfect
generator reaches at this sample size) and ``sphere (trivial)`` samples a sphere of the data's
mean radius (the trivial baseline). Ablation, the slide's caveat "strong discriminators are
tricky", as a 2 x 2 over the generator's objective and the discriminator's strength (a strong D
has its learning rate x ``d_lr_scale`` and is updated every step, without the paper's rule that
skips D's update when it is already >80% right; see :data:`ABLATIONS`):

=============================  ==========================================  =============
row                            G minimises                                 discriminator
=============================  ==========================================  =============
``3D-GAN``                     :math:`-\log D(G(z))` (non-saturating)      throttled
``3D-GAN, strong D``           :math:`-\log D(G(z))` (non-saturating)      strong
``3D-GAN, minimax``            :math:`\log(1 - D(G(z)))` (the slide's)     throttled
``3D-GAN, minimax, strong D``  :math:`\log(1 - D(G(z)))` (the slide's)     strong
=============================  ==========================================  =============

Each history records D's accuracy and the generator's gradient norm per step: with the minimax
term a saturated D (accuracy 100%, :math:`D(G(z)) \to 0`) leaves G almost no gradient.

Every model's points, widths and iterations come from its own ``SIZES`` table
(:mod:`.gan_voxel`, :mod:`.gan_points`, :mod:`.structurenet`); the data and evaluation sizes
from :data:`SIZES` here, all through :func:`coursekit.runtime.pick`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ... import runtime
from ...data.world.datasets import sample_seed
from ...data.world.shapes import PART_NAMES, make_shape
from ...metrics.fpd_features import frechet_point_distance
from ...metrics.set_metrics import jsd, set_metrics
from . import gan_points, gan_voxel, structurenet

SIZES = {
    "fast": dict(class_name="chair", n_train=32, n_test=16, n_generated=16, emd_points=64, d_lr_scale=5.0),
    "cpu": dict(class_name="chair", n_train=250, n_test=64, n_generated=64, emd_points=256, d_lr_scale=5.0),
    "gpu": dict(class_name="chair", n_train=2000, n_test=200, n_generated=200, emd_points=512, d_lr_scale=5.0),
}
"""Data and evaluation sizes per profile (the points per cloud are :data:`gan_points.SIZES`' ``n_points``)."""

MODELS = ("real (train shapes)", "sphere (trivial)", "3D-GAN", "3D-GAN, strong D", "3D-GAN, minimax",
          "3D-GAN, minimax, strong D", "r-GAN", "l-GAN", "StructureNet")
"""Row names, in table order."""

ABLATIONS = {
    "3D-GAN": dict(g_objective="non_saturating", strong_d=False),
    "3D-GAN, strong D": dict(g_objective="non_saturating", strong_d=True),
    "3D-GAN, minimax": dict(g_objective="minimax", strong_d=False),
    "3D-GAN, minimax, strong D": dict(g_objective="minimax", strong_d=True),
}
"""The 3D-GAN rows: generator objective (:func:`.gan_voxel.generator_loss`) and whether D is strong
(learning rate x ``SIZES[...]["d_lr_scale"]``, no 80% throttle)."""

METRICS = ("mmd_cd", "cov_cd", "1nna_cd", "mmd_emd", "cov_emd", "1nna_emd", "jsd", "fpd")
"""Metric columns of a row (besides ``model``, ``train_seconds`` and ``invalid``)."""


@dataclass
class FreeData:
    """Training and held-out data of one world class.

    Attributes:
        class_name: the class.
        train_shapes, test_shapes: the :class:`~coursekit.data.world.Shape` s.
        train_clouds, test_clouds: ``(S, N, 3)`` surface samples (unit ball).
        train_voxels: ``(S, 1, R, R, R)`` occupancies for the 3D-GAN.
        train_trees: :class:`~.structurenet.PartTree` s of the training shapes.
    """

    class_name: str
    train_shapes: list
    test_shapes: list
    train_clouds: torch.Tensor
    test_clouds: torch.Tensor
    train_voxels: torch.Tensor
    train_trees: list


@dataclass
class FreeTable:
    """Result of :func:`free_generation_table`.

    Attributes:
        rows: one dict per model: ``model``, the :data:`METRICS`, ``train_seconds``, ``invalid``
            (samples that could not be turned into a cloud, scored as the origin).
        samples: model name -> ``(G, N, 3)`` generated clouds that were scored.
        models: model name -> the trained network(s).
        histories: model name -> training history (dict of lists).
        data: the :class:`FreeData`.
        sizes: the sizes used.
    """

    rows: list[dict]
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)
    histories: dict[str, dict] = field(default_factory=dict)
    data: FreeData | None = None
    sizes: dict = field(default_factory=dict)


def make_free_data(class_name: str, n_train: int, n_test: int, n_points: int, resolution: int, seed: int = 0,
                   progress: bool = True) -> FreeData:
    """Draw ``n_train`` + ``n_test`` shapes of a class (disjoint seeds) with their clouds, grids and part trees.

    Args:
        class_name: a world class; n_train, n_test: shape counts; n_points: points per cloud;
        resolution: voxel grid size; seed: dataset seed; progress: tqdm bar.

    Returns:
        :class:`FreeData`.
    """
    def draw(split: str, n: int):
        shapes, clouds = [], []
        for i in tqdm(range(n), disable=not progress, desc=f"{class_name} {split}"):
            s = sample_seed(seed, "free", split, class_name, i)
            shape = make_shape(class_name, s)
            shapes.append(shape)
            clouds.append(shape.sample(n_points, s)[0])
        return shapes, torch.stack(clouds)

    train_shapes, train_clouds = draw("train", n_train)
    test_shapes, test_clouds = draw("test", n_test)
    return FreeData(class_name, train_shapes, test_shapes, train_clouds, test_clouds,
                    gan_voxel.shape_voxels(train_shapes, resolution), [structurenet.part_tree(s) for s in train_shapes])


def sphere_clouds(n: int, n_points: int, radius: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The trivial baseline: ``n`` clouds uniform on a sphere of ``radius`` about the origin, ``(n, n_points, 3)``.

    .. math::  x = r\, g / \lVert g \rVert, \qquad g \sim \mathcal N(0, I_3)
    """
    g = torch.randn(n, n_points, 3, generator=generator)
    return radius * g / g.norm(dim=-1, keepdim=True)


def evaluate_generated(generated: torch.Tensor, reference: torch.Tensor, emd_points: int,
                       generator: torch.Generator | None = None, progress: bool = False) -> dict[str, float]:
    r"""All free-generation metrics of ``generated`` against ``reference``.

    .. math::  \{\text{MMD}, \text{COV}, \text{1-NNA}\} \times \{D_{CD}, D_{EMD}\},\ \text{JSD},\ \text{FPD}

    Args:
        generated: ``(G, N, 3)``; reference: ``(R, N, 3)`` clouds in the unit ball (``G, R >= 2``).
        emd_points: points per cloud kept for the exact EMD (one random subset of point slots,
            the same for every cloud of a set, so identical sets score 0).
        generator: source of the EMD subsets; progress: tqdm bars of the distance matrices.

    Returns:
        dict with the :data:`METRICS` keys (floats; COV and 1-NNA as fractions).
    """
    out = {}
    cd = set_metrics(generated, reference, "chamfer", progress=progress)
    n = generated.shape[1]
    k = min(emd_points, n, reference.shape[1])

    keep_g = torch.randperm(n, generator=generator)[:k]  # one random subset of point slots per set, so
    keep_r = keep_g if reference.shape[1] == n else torch.randperm(reference.shape[1], generator=generator)[:k]
    emd = set_metrics(generated[:, keep_g], reference[:, keep_r], "emd", progress=progress)  # equal sets stay equal
    for name, res in (("cd", cd), ("emd", emd)):
        out[f"mmd_{name}"], out[f"cov_{name}"], out[f"1nna_{name}"] = (float(res[m]) for m in ("mmd", "cov", "1-nna"))
    out["jsd"] = float(jsd(generated / 2, reference / 2))
    out["fpd"] = float(frechet_point_distance(generated, reference))
    return out


def _tree_cloud(tree, class_name: str, n_points: int, seed: int) -> torch.Tensor | None:
    try:
        return structurenet.layout_shape(tree, class_name).sample(n_points, seed)[0]
    except ValueError:  # a layout without labelled leaves (the root alone)
        return None


def free_generation_table(models=MODELS, *, sizes: dict | None = None, seed: int = 0, data: FreeData | None = None,
                          progress: bool = True) -> FreeTable:
    """Train the free generators on one world class and score their samples against held-out shapes.

    Args:
        models: names from :data:`MODELS` to run (the two reference rows cost no training).
        sizes: a :data:`SIZES` entry (default: the active profile's); each model's own sizes come
            from its module's ``SIZES`` table for the active profile.
        seed: seeds the data, every model's initialisation, batches and samples.
        data: a :class:`FreeData` to reuse (e.g. ``table.data`` of an earlier call with the same
            sizes); ``None`` draws it with :func:`make_free_data`.
        progress: tqdm bars.

    Returns:
        :class:`FreeTable` (``rows`` for :func:`format_table`, plus samples, models and histories).

    >>> table = free_generation_table(["sphere (trivial)", "r-GAN"])  # doctest: +SKIP
    >>> print(format_table(table))  # doctest: +SKIP
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {MODELS}")
    sizes = dict(sizes or runtime.pick(SIZES))
    pts_sizes, vox_sizes, sn_sizes = runtime.pick(gan_points.SIZES), runtime.pick(gan_voxel.SIZES), runtime.pick(structurenet.SIZES)
    n_points = pts_sizes["n_points"]
    if data is None:
        data = make_free_data(sizes["class_name"], sizes["n_train"], sizes["n_test"], n_points, vox_sizes["resolution"],
                              seed, progress)
    elif data.train_clouds.shape[1] != n_points or data.train_voxels.shape[-1] != vox_sizes["resolution"]:
        raise ValueError(f"data has {data.train_clouds.shape[1]} points and {data.train_voxels.shape[-1]}^3 grids; "
                         f"this profile needs {n_points} and {vox_sizes['resolution']}^3")
    table = FreeTable([], data=data, sizes=dict(sizes, n_points=n_points))
    n_gen = sizes["n_generated"]
    for name in models:
        gen = torch.Generator().manual_seed(sample_seed(seed, "free-model", name))
        tic, invalid, history, model = time.perf_counter(), 0, {}, None
        if name == "real (train shapes)":
            clouds = data.train_clouds[:n_gen]
        elif name == "sphere (trivial)":
            radius = float(data.train_clouds.norm(dim=-1).mean())
            clouds = sphere_clouds(n_gen, n_points, radius, gen)
        elif name in ABLATIONS:
            strong = ABLATIONS[name]["strong_d"]
            g_net, d_net, history = gan_voxel.train_voxel_gan(
                data.train_voxels, sizes=vox_sizes, generator=gen, progress=progress,
                d_lr_scale=sizes["d_lr_scale"] if strong else 1.0, throttle=not strong,
                g_objective=ABLATIONS[name]["g_objective"])
            model = (g_net, d_net)
            grids = g_net.sample(n_gen, gen)
            invalid = int((grids.reshape(n_gen, -1) <= 0.5).all(1).sum())
            clouds = gan_voxel.voxels_to_points(grids, n_points, gen)
        elif name == "r-GAN":
            g_net, critic, history = gan_points.train_r_gan(data.train_clouds, sizes=pts_sizes, generator=gen,
                                                             progress=progress)
            model, clouds = (g_net, critic), g_net.sample(n_gen, gen)
        elif name == "l-GAN":
            model, history = gan_points.train_l_gan(data.train_clouds, sizes=pts_sizes, generator=gen, progress=progress)
            clouds = model.sample(n_gen, gen)
        else:  # StructureNet
            model, history = structurenet.train_structurenet(data.train_trees, len(PART_NAMES[data.class_name]),
                                                             sizes=sn_sizes, generator=gen, progress=progress)
            made = [_tree_cloud(t, data.class_name, n_points, sample_seed(seed, "layout", i))
                    for i, t in enumerate(model.sample(n_gen, gen))]
            invalid = sum(c is None for c in made)
            clouds = torch.stack([torch.zeros(n_points, 3) if c is None else c for c in made])
        seconds = time.perf_counter() - tic
        row = {"model": name, **evaluate_generated(clouds, data.test_clouds, sizes["emd_points"], gen),
               "train_seconds": seconds, "invalid": invalid}
        table.rows.append(row)
        table.samples[name] = clouds
        if model is not None:
            table.models[name], table.histories[name] = model, history
    return table


def format_table(table: FreeTable) -> str:
    """The rows as a fixed-width text table (MMD-CD x 10^3, MMD-EMD x 10^2, COV / 1-NNA in %, FPD, train s)."""
    head = (f"{'model':<26} {'MMD-CD':>7} {'COV-CD':>7} {'1NNA-CD':>8} {'MMD-EMD':>8} {'COV-EMD':>8} "
            f"{'1NNA-EMD':>9} {'JSD':>6} {'FPD':>8} {'train s':>8} {'invalid':>7}")
    lines = [head, "-" * len(head)]
    for r in table.rows:
        lines.append(f"{r['model']:<26} {1e3 * r['mmd_cd']:7.2f} {100 * r['cov_cd']:6.1f}% {100 * r['1nna_cd']:7.1f}% "
                     f"{1e2 * r['mmd_emd']:8.2f} {100 * r['cov_emd']:7.1f}% {100 * r['1nna_emd']:8.1f}% "
                     f"{r['jsd']:6.3f} {r['fpd']:8.3f} {r['train_seconds']:8.1f} {r['invalid']:7d}")
    lines.append(f"(class {table.data.class_name if table.data else '?'}, {table.sizes.get('n_points', '?')} points, "
                 f"{table.sizes.get('n_test', '?')} held-out vs {table.sizes.get('n_generated', '?')} generated; "
                 "CD = PyTorch3D convention x 10^3, EMD exact mean distance x 10^2 on "
                 f"{table.sizes.get('emd_points', '?')} points; unit ball)")
    return "\n".join(lines)
