r"""The feature extractor of FPD: a small PointNet trained on the procedural world's 12 classes.

Fréchet Point Cloud Distance (Shu et al., tree-GAN, ICCV 2019; the slide's "perceptually
correct" metric) compares Gaussians fitted to the **global features of a PointNet classifier**
of real and generated clouds:

.. math::  \text{FPD}(\mathbb{P}, \mathbb{Q}) = \lVert \mathbf{m}_{\mathbb{P}} - \mathbf{m}_{\mathbb{Q}} \rVert_2^2
           + \operatorname{Tr}\big(\Sigma_{\mathbb{P}} + \Sigma_{\mathbb{Q}} - 2 (\Sigma_{\mathbb{P}} \Sigma_{\mathbb{Q}})^{1/2}\big)

tree-GAN used a PointNet trained on ModelNet40 (1808-d features). coursekit ships its own,
trained on the world's classes, as a small state file next to this module
(:data:`WEIGHTS_FILE`, ``fpd_pointnet.pt``). It is **never downloaded**: ``coursekit
fpd-weights`` (:func:`build_weights`) rebuilds it deterministically from :data:`CONFIG`
(fixed seeds, one thread, CPU), and ``tests/test_fpd_features.py`` proves that the rebuilt
weights give the shipped features.

The network is :class:`coursekit.models.pointnet.PointNet` without T-Nets (the clouds are in
canonical pose) and the widths of :data:`CONFIG`; the feature is the max-pooled global
feature (``C = CONFIG["mlp2"][-1]``) taken in ``eval`` mode. FPD numbers from this
extractor are comparable with each other, never with tree-GAN's (other network, other data).
Inputs must be canonical clouds of the world: centred, in the unit ball, ``+y`` up, any
number of points (the max pool does not care; the training clouds had ``CONFIG["n_points"]``).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

from ..geometry.validate import check_points
from .frechet import frechet_distance

__all__ = ["CONFIG", "WEIGHTS_FILE", "build_model", "build_weights", "load_extractor", "fpd_features",
           "frechet_point_distance"]

WEIGHTS_FILE = Path(__file__).with_name("fpd_pointnet.pt")
"""The shipped state file (a ``state_dict`` plus the config it was built from)."""

CONFIG = dict(seed=0, n_train_per_class=20, n_points=512, epochs=10, batch_size=32, lr=2e-3,
              mlp1=(32, 64), mlp2=(64, 128, 256), head=(128, 64), dropout=0.3)
"""Everything the build depends on: data (world seed, shapes per class, points), training
(epochs, batch size, Adam's learning rate with cosine annealing) and widths."""


def build_model(config: dict = CONFIG) -> torch.nn.Module:
    """The untrained classifier of ``config`` (a T-Net-free :class:`~coursekit.models.pointnet.PointNet`)."""
    from ..data.world import CLASSES
    from ..models.pointnet import PointNet

    sizes = dict(mlp1=tuple(config["mlp1"]), mlp2=tuple(config["mlp2"]), tnet_mlp=(8,), tnet_fc=(8,),
                 head=tuple(config["head"]), dropout=config["dropout"])
    return PointNet(len(CLASSES), input_transform=False, feature_transform=False, sizes=sizes)


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_weights(path: str | Path = WEIGHTS_FILE, config: dict = CONFIG, progress: bool = False) -> dict:
    r"""Train the FPD PointNet from scratch and save it to ``path`` (what ``coursekit fpd-weights`` runs).

    Deterministic: the world's data comes from ``config["seed"]``, the initialisation and
    batch order from ``torch.Generator``\ s seeded with it, and training runs on the CPU in
    one thread (so the reduction order is fixed).

    Args:
        path: where the state file goes.
        config: :data:`CONFIG` or a smaller variant (tests).
        progress: show progress bars.

    Returns:
        ``{"path", "train_accuracy", "parameters"}``.
    """
    from .. import train
    from ..data.world import make_classification_split

    with _one_thread():
        data, _ = make_classification_split(config["n_train_per_class"], 0, config["n_points"], seed=config["seed"],
                                            progress=progress)
        torch.manual_seed(config["seed"])  # the layers' default initialisation draws from the global stream
        model = build_model(config)
        loader = train.batches(data.points, data.labels, batch_size=config["batch_size"], shuffle=True,
                               generator=torch.Generator().manual_seed(config["seed"]))
        optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["epochs"])
        history = train.fit(model, loader, epochs=config["epochs"], optimizer=optimizer, scheduler=scheduler,
                            device="cpu", progress=progress, desc="FPD PointNet")
    state = {"config": dict(config), "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    load_extractor.cache_clear()
    return {"path": str(path), "train_accuracy": history.records[-1]["train_accuracy"],
            "parameters": sum(p.numel() for p in model.parameters())}


@lru_cache(maxsize=4)
def load_extractor(path: str | Path = WEIGHTS_FILE) -> torch.nn.Module:
    """The trained classifier from a state file, in ``eval`` mode (cached per path)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `coursekit fpd-weights`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["config"])
    model.load_state_dict(state["state_dict"])
    return model.eval()


def fpd_features(points: torch.Tensor, path: str | Path = WEIGHTS_FILE, batch_size: int = 256) -> torch.Tensor:
    r"""Global PointNet features :math:`\max_i h(x_i)` of canonical clouds, for FPD.

    Args:
        points: ``(B, N, 3)`` clouds (centred, unit ball, ``+y`` up).
        path: the state file (default: the shipped one).
        batch_size: clouds per forward pass.

    Returns:
        ``(B, C)`` float32 features (``C = 256`` for the shipped file).
    """
    check_points(points)
    model = load_extractor(str(path))
    with torch.no_grad():
        return torch.cat([model.global_feature(points[i:i + batch_size].float().cpu())
                          for i in range(0, len(points), batch_size)])


def frechet_point_distance(generated: torch.Tensor, reference: torch.Tensor, path: str | Path = WEIGHTS_FILE) -> torch.Tensor:
    r"""FPD of two sets of clouds: :func:`~coursekit.metrics.frechet.frechet_distance` of their features.

    .. math::  \lVert m_P - m_Q \rVert_2^2 + \operatorname{Tr}(\Sigma_P + \Sigma_Q - 2 (\Sigma_P \Sigma_Q)^{1/2})

    Args:
        generated: ``(G, N, 3)``; reference: ``(R, M, 3)`` (``G, R >= 2``).

    Returns:
        float64 scalar.
    """
    return frechet_distance(fpd_features(reference, path), fpd_features(generated, path))
