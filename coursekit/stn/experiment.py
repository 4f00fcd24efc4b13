r"""The distorted-MNIST experiment of the STN paper (Table 1, left): train and test all eight rows.

For every distortion (R, RTS, P, E; :mod:`~coursekit.stn.distortions`) and every
network (:data:`~coursekit.models.stn_mnist.MODEL_NAMES`) a fresh model is
trained on digits distorted afresh every epoch and tested on a fixed distorted
test set; the result is the test error in percent,

.. math::
    \text{error} = 100\,\frac{\#\{i : \arg\max_c z_{ic} \ne y_i\}}{N_{test}} .

Sizes come from :data:`SIZES` through :func:`coursekit.runtime.pick`:

=======  ==============================================================================
profile  run
=======  ==============================================================================
fast     a few hundred digits, 1 epoch: seconds per cell, numbers are noise (CI, notebooks)
cpu      8,000 training / 2,000 test digits, Adam, batch 32, 15 epochs, lr / 10 after
         epoch 8 (``benchmarks/distorted_mnist.py``; ~1 min per cell on one core)
gpu      the paper's schedule (REFERENCES A.4, unverified): SGD lr 0.01, batch 256,
         150k iterations, lr / 10 every 50k; on full MNIST when the user has it
=======  ==============================================================================

The cpu profile replaces plain SGD by Adam because 15 epochs of 8,000 digits are
3,750 iterations, 2.5% of the paper's budget; SGD at lr 0.01 barely leaves the start there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import runtime
from ..data.digits import to_image_batch
from ..models.stn_mnist import MODEL_NAMES, DigitClassifier, build_model, count_parameters
from ..train import batches, evaluate, fit
from .distortions import KINDS, DistortedBatches, make_distorted_dataset, output_size

#: Published test errors (%), Table 1 (left) of Jaderberg et al. 2015, from REFERENCES A.2.
#: (The lecture slide's ST-FCN rows are shifted by one column; these are the paper's.)
PAPER_TABLE: dict[str, dict[str, float]] = {
    "FCN":         {"R": 2.1, "RTS": 5.2, "P": 3.1, "E": 3.2},
    "CNN":         {"R": 1.2, "RTS": 0.8, "P": 1.5, "E": 1.4},
    "ST-FCN Aff":  {"R": 1.2, "RTS": 0.8, "P": 1.5, "E": 2.7},
    "ST-FCN Proj": {"R": 1.3, "RTS": 0.9, "P": 1.4, "E": 2.6},
    "ST-FCN TPS":  {"R": 1.1, "RTS": 0.8, "P": 1.4, "E": 2.4},
    "ST-CNN Aff":  {"R": 0.7, "RTS": 0.5, "P": 0.8, "E": 1.2},
    "ST-CNN Proj": {"R": 0.8, "RTS": 0.6, "P": 0.8, "E": 1.3},
    "ST-CNN TPS":  {"R": 0.7, "RTS": 0.5, "P": 0.8, "E": 1.1},
}

#: Training sizes per profile. ``n_train``/``n_test`` ``None``: all digits (after the split);
#: ``iterations`` (if set) overrides ``epochs``; the lr is divided by 10 ``lr_drops`` times,
#: at equal intervals of the run.
SIZES = {
    "fast": {"n_train": 384, "n_test": 256, "epochs": 1, "iterations": None, "batch_size": 32,
             "optimizer": "adam", "lr": 1e-3, "lr_drops": 0},
    "cpu": {"n_train": 8000, "n_test": 2000, "epochs": 15, "iterations": None, "batch_size": 32,
            "optimizer": "adam", "lr": 1e-3, "lr_drops": 1},
    "gpu": {"n_train": None, "n_test": None, "epochs": None, "iterations": 150_000, "batch_size": 256,
            "optimizer": "sgd", "lr": 0.01, "lr_drops": 2},
}


@dataclass
class TableResult:
    """What :func:`distorted_mnist_table` measured.

    Attributes:
        error: ``error[model][distortion]`` test error in percent.
        seconds: ``seconds[model][distortion]`` training time.
        parameters: ``parameters[model][distortion]`` trainable parameters (RTS nets differ).
        sizes: the sizes entry used; ``n_train``/``n_test`` as actually used.
        device: where it ran.
        models: the trained models, ``models[model][distortion]`` (on the CPU), if kept.
    """

    error: dict[str, dict[str, float]]
    seconds: dict[str, dict[str, float]]
    parameters: dict[str, dict[str, int]]
    sizes: dict
    device: str
    models: dict[str, dict[str, DigitClassifier]] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(s for row in self.seconds.values() for s in row.values())


def _split(n: int, n_train: int | None, n_test: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint seeded index sets of the requested sizes (``None``: the rest; both: 80/20)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if n_test is None and n_train is None:
        n_test = n // 5
    n_test = n_test if n_test is not None else n - n_train
    n_train = n_train if n_train is not None else n - n_test
    if n_train + n_test > n or n_train < 1 or n_test < 1:
        raise ValueError(f"cannot split {n} digits into {n_train} training and {n_test} test digits")
    return order[:n_train], order[n_train:n_train + n_test]


def _optimizer(model: torch.nn.Module, sizes: dict) -> torch.optim.Optimizer:
    if sizes["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=sizes["lr"])
    if sizes["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=sizes["lr"])
    raise ValueError(f"unknown optimizer {sizes['optimizer']!r}; use 'sgd' or 'adam'")


def train_cell(name: str, kind: str, train_images: torch.Tensor, train_labels: torch.Tensor, *,
               sizes: dict, seed: int = 0, device: torch.device | str | None = None,
               progress: bool = False) -> tuple[DigitClassifier, float]:
    """Train one network on one distortion; returns the model and the training seconds.

    Args:
        name: a row of :data:`~coursekit.models.stn_mnist.MODEL_NAMES`.
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"``.
        train_images: ``(N, 28, 28)`` uint8 or ``(N, 1, 28, 28)`` float clean digits.
        train_labels: ``(N,)`` int64.
        sizes: a :data:`SIZES` entry (``epochs``/``iterations``, ``batch_size``, optimizer, lr).
        seed: seeds the initial weights, the shuffles and the distortions.
        device: default :func:`coursekit.runtime.device`.
        progress: show ``tqdm`` bars.
    """
    device = torch.device(device) if device is not None else runtime.device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, input_size=output_size(kind))
    data = DistortedBatches(train_images, train_labels, kind, batch_size=sizes["batch_size"],
                            seed=seed, device=device)
    epochs = sizes["epochs"]
    if sizes.get("iterations"):
        epochs = math.ceil(sizes["iterations"] / len(data))
    optimizer = _optimizer(model.to(device), sizes)
    scheduler = None
    if sizes.get("lr_drops"):
        step = max(1, round(epochs / (sizes["lr_drops"] + 1)))
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=0.1)
    tic = time.perf_counter()
    # amp=False: in bfloat16 a sampling grid is off by up to ~0.1 pixel, and a TPS much more.
    fit(model, data, epochs=epochs, optimizer=optimizer, scheduler=scheduler, device=device, amp=False,
        progress=progress, desc=f"{name} on {kind}")
    return model, time.perf_counter() - tic


def distorted_mnist_table(images: torch.Tensor, labels: torch.Tensor, *,
                          distortions: Sequence[str] = KINDS, models: Sequence[str] = MODEL_NAMES,
                          seed: int = 0, sizes: dict | None = None,
                          test: tuple[torch.Tensor, torch.Tensor] | None = None,
                          device: torch.device | str | None = None, progress: bool = True,
                          keep_models: bool = False) -> TableResult:
    """Train and test every network on every distortion: the paper's Table 1 (left).

    Args:
        images: ``(N, 28, 28)`` uint8 digits (as loaded) or ``(N, 1, 28, 28)`` float.
        labels: ``(N,)`` int64.
        distortions: columns, a subset of ``("R", "RTS", "P", "E")``.
        models: rows, a subset of :data:`~coursekit.models.stn_mnist.MODEL_NAMES`.
        seed: seeds the split, the test distortions, the weights and the training distortions.
        sizes: a :data:`SIZES`-like entry; default ``runtime.pick(SIZES)``.
        test: a separate ``(images, labels)`` test set (e.g. MNIST's ``t10k`` when training on
            ``train``); default: split ``images`` into ``n_train`` / ``n_test`` digits.
        device: default :func:`coursekit.runtime.device`; data are distorted there, batched.
        progress: one ``tqdm`` bar over the cells (the cell in training is its postfix).
        keep_models: keep the trained models in the result (moved to the CPU).

    Returns:
        a :class:`TableResult`; print it with :func:`format_table`.

    The paper's setting, on a GPU with the full MNIST::

        train = load_mnist(folder, "train")
        result = distorted_mnist_table(*train, test=load_mnist(folder, "test"), sizes=SIZES["gpu"])
    """
    from tqdm.auto import tqdm

    for kind in distortions:
        if kind not in KINDS:
            raise ValueError(f"unknown distortion {kind!r}; choose from {KINDS}")
    for name in models:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    sizes = dict(sizes if sizes is not None else runtime.pick(SIZES))
    device = torch.device(device) if device is not None else runtime.device()
    images = to_image_batch(images)
    if test is None:
        train_index, test_index = _split(len(images), sizes["n_train"], sizes["n_test"], seed)
        train_x, train_y = images[train_index], labels[train_index]
        test_x, test_y = images[test_index], labels[test_index]
    else:
        train_x, train_y = images[:sizes["n_train"]], labels[:sizes["n_train"]]
        test_x, test_y = to_image_batch(test[0])[:sizes["n_test"]], test[1][:sizes["n_test"]]
    sizes.update(n_train=len(train_x), n_test=len(test_x))
    train_x, train_y = train_x.to(device), train_y.to(device)

    error: dict = {name: {} for name in models}
    seconds: dict = {name: {} for name in models}
    parameters: dict = {name: {} for name in models}
    kept: dict = {name: {} for name in models} if keep_models else {}
    cells = tqdm(total=len(models) * len(distortions), desc="distorted MNIST", unit="model",
                 disable=not progress)
    for kind in distortions:
        x, y = make_distorted_dataset(test_x, test_y, kind, seed + 1, device=device)
        test_data = batches(x, y, batch_size=1024)
        for name in models:
            cells.set_postfix_str(f"{name} on {kind}")
            model, secs = train_cell(name, kind, train_x, train_y, sizes=sizes, seed=seed, device=device)
            result = evaluate(model, test_data, loss_fn=F.cross_entropy, device=device)
            error[name][kind] = 100.0 * (1.0 - result["accuracy"])
            seconds[name][kind] = secs
            parameters[name][kind] = count_parameters(model)
            if keep_models:
                kept[name][kind] = model.cpu().eval()
            cells.update()
    cells.close()
    return TableResult(error, seconds, parameters, sizes, str(device), kept)


def format_table(result: TableResult, paper: dict[str, dict[str, float]] | None = PAPER_TABLE) -> str:
    """The error table as text: ours, and the paper's in parentheses.

    Args:
        result: from :func:`distorted_mnist_table`.
        paper: published errors to show beside ours (``None``: ours only).

    Returns:
        a multi-line string, one row per model, one column per distortion, plus a header
        with the sizes and the total training time.
    """
    kinds = list(next(iter(result.error.values())).keys())
    width = 14 if paper else 7
    lines = [f"test error % on distorted MNIST, ours{' (paper)' if paper else ''}; "
             f"{result.sizes['n_train']} train / {result.sizes['n_test']} test digits, "
             f"device {result.device}, training {result.total_seconds:.0f} s",
             f"{'model':<12}" + "".join(f"{k:>{width}}" for k in kinds) + f"{'params':>9}"]
    for name, row in result.error.items():
        cells = []
        for kind in kinds:
            cell = f"{row[kind]:.1f}"
            if paper and name in paper:
                cell += f" ({paper[name][kind]:.1f})"
            cells.append(f"{cell:>{width}}")
        params = max(result.parameters[name].values())
        lines.append(f"{name:<12}" + "".join(cells) + f"{params / 1000:>8.0f}k")
    return "\n".join(lines)


def _moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Centre of mass ``(B, 2)`` and radius of gyration ``(B,)`` of ``(B, 1, H, W)`` images.

    In normalised coordinates (pixel centres :math:`-1 + (2i+1)/W`), ink :math:`I \ge 0`:

    .. math::
        \bar p = \frac{\sum_i I_i\, p_i}{\sum_i I_i}, \qquad
        r = \sqrt{\frac{\sum_i I_i \lVert p_i - \bar p\rVert^2}{\sum_i I_i}}
    """
    ink = images.clamp(min=0).sum(1)                                        # (B, H, W)
    height, width = ink.shape[-2:]
    ys = (torch.arange(height, dtype=ink.dtype, device=ink.device) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=ink.dtype, device=ink.device) * 2 + 1) / width - 1
    mass = ink.sum((1, 2)).clamp(min=1e-12)
    cx = (ink.sum(1) * xs).sum(1) / mass
    cy = (ink.sum(2) * ys).sum(1) / mass
    spread = ((ink.sum(1) * (xs - cx[:, None]) ** 2).sum(1) + (ink.sum(2) * (ys - cy[:, None]) ** 2).sum(1)) / mass
    return torch.stack([cx, cy], 1), spread.sqrt()


def digit_spread(images: torch.Tensor) -> dict[str, float]:
    r"""How much digit position and size vary over a batch, relative to the digits' size.

    .. math::
        \text{position} = \frac{\operatorname{Var}(\bar x) + \operatorname{Var}(\bar y)}{\operatorname{mean}(r)^2},
        \qquad \text{scale} = \operatorname{Var}(\log r)

    (:math:`\bar p` centre of mass, :math:`r` radius of gyration, see :func:`_moments`).
    Both are unchanged when every image is zoomed by the same factor, so a
    transformer that only magnifies does not count as canonicalising.

    Args:
        images: ``(B, 1, H, W)`` images, ink positive.

    Returns:
        ``{"position": float, "scale": float}``.
    """
    centre, radius = _moments(images.detach().double())
    return {"position": float(centre.var(0).sum() / radius.mean() ** 2),
            "scale": float(radius.log().var())}


@torch.no_grad()
def canonicalisation_spread(model: DigitClassifier, images: torch.Tensor) -> dict[str, dict[str, float]]:
    """Digit position and scale spread before and after a model's spatial transformer.

    A transformer that learned to undo the distortion puts every digit in the same
    place at the same size: its outputs spread less than its inputs.

    Args:
        model: a :class:`~coursekit.models.stn_mnist.DigitClassifier` with a transformer.
        images: ``(B, 1, H, W)`` distorted digits.

    Returns:
        ``{"input": {...}, "output": {...}, "ratio": {...}}`` with the :func:`digit_spread`
        measures of the inputs, of the transformer outputs, and output / input.
    """
    if getattr(model, "transformer", None) is None:
        raise ValueError("the model has no spatial transformer to measure")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        outputs = model.canonicalise(images.to(device))
    finally:
        model.train(was_training)
    before, after = digit_spread(images), digit_spread(outputs)
    return {"input": before, "output": after, "ratio": {k: after[k] / before[k] for k in before}}
