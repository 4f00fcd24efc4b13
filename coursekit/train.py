r"""One small training loop for every notebook: :func:`fit`, :func:`evaluate`, :func:`predict`.

Data is any re-iterable of batches (a ``torch.utils.data.DataLoader`` or
:func:`batches`). A batch is a tuple whose LAST element is the target and whose
other elements are the model's inputs: ``(x, y)`` calls ``model(x)``,
``(points, normals, y)`` calls ``model(points, normals)``; ``(inputs, y)`` with a
tuple ``inputs`` is unpacked the same way.

Convention:
    * Classification: logits ``(B, C)`` against integer targets ``(B,)``; dense
      prediction (segmentation, per-point labels): logits ``(B, C, *)`` against
      targets ``(B, *)``. Accuracy is the argmax over dim 1; negative targets
      (:data:`IGNORE_INDEX` ``= -1``, or PyTorch's ``-100``) are ignored by the
      accuracy and ``-1`` by the default loss.
    * A model may return a tuple (``(logits, extra)``, e.g. PointNet's feature
      transform); the loss receives the whole tuple, accuracy and :func:`predict`
      use its first element.
    * Float targets (regression) get a loss but no accuracy (``None``).

Reported numbers are averages over samples:

.. math::  \text{loss} = \frac{\sum_b B_b\,\ell_b}{\sum_b B_b}, \qquad
           \text{accuracy} = \frac{\#\{i : \arg\max_c z_{ic} = y_i,\ y_i \ge 0\}}{\#\{i : y_i \ge 0\}}

with :math:`\ell_b` the loss of batch :math:`b` of :math:`B_b` samples.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runtime

IGNORE_INDEX = -1
"""Target value that the default loss and the accuracy skip (unlabelled points or pixels)."""

COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr")
"""The fields of one :class:`History` record."""


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Mean cross-entropy that skips targets equal to :data:`IGNORE_INDEX`.

    .. math::  \ell = -\frac{1}{|V|} \sum_{i \in V} \log \frac{e^{z_{i y_i}}}{\sum_c e^{z_{ic}}},
               \qquad V = \{i : y_i \ne -1\}

    Args:
        logits: ``(B, C)`` or ``(B, C, *)`` unnormalised scores.
        targets: ``(B,)`` or ``(B, *)`` int64 class indices.

    Returns:
        A scalar tensor.
    """
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------- data

class Batches:
    """A re-iterable over aligned slices of in-memory tensors (see :func:`batches`)."""

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, shuffle: bool,
                 generator: torch.Generator | None, drop_last: bool):
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.tensors[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            if order is None:
                yield tuple(t[start:start + self.batch_size] for t in self.tensors)
            else:
                idx = order[start:start + self.batch_size]
                yield tuple(t[idx.to(t.device)] for t in self.tensors)


def batches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = False,
            generator: torch.Generator | None = None, drop_last: bool = False) -> Batches:
    """Mini-batches of aligned in-memory tensors; iterate it once per epoch.

    A lightweight ``DataLoader`` for data that already fits in memory (also on
    the GPU: slices stay on the tensors' device).

    Args:
        *tensors: tensors with the same first dimension ``N`` (e.g. ``x (N, ...)``, ``y (N,)``).
        batch_size: samples per batch.
        shuffle: draw a new order at every iteration (every epoch).
        generator: the CPU ``torch.Generator`` that draws the order; ``None`` uses
            PyTorch's global generator. :func:`fit` checkpoints its state.
        drop_last: skip the final incomplete batch.

    Returns:
        A re-iterable with ``len()`` = number of batches, yielding tuples of
        ``(batch_size, ...)`` slices in the order of ``tensors``.

    >>> x, y = torch.randn(10, 3), torch.arange(10)
    >>> [len(b[0]) for b in batches(x, y, batch_size=4)]
    [4, 4, 2]
    """
    if not tensors:
        raise ValueError("batches() needs at least one tensor")
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"batches() takes tensors, got {type(t).__name__}")
    sizes = [len(t) for t in tensors]
    if len(set(sizes)) != 1:
        raise ValueError(f"tensors must have the same first dimension, got sizes {sizes}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return Batches(tensors, batch_size, shuffle, generator, drop_last)


# ---------------------------------------------------------------- history

class History:
    """Per-epoch training records, as returned by :func:`fit`.

    Each record is a dict with the keys of :data:`COLUMNS`: ``epoch`` (1-based),
    ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` (``None``
    when not measured), ``seconds`` (wall time of the epoch) and ``lr`` (the
    learning rate used during the epoch).
    """

    def __init__(self, records: Iterable[dict] | None = None):
        self.records: list[dict] = [dict(r) for r in records or ()]

    def append(self, **record: Any) -> None:
        unknown = set(record) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown history fields {sorted(unknown)}; known: {COLUMNS}")
        self.records.append({c: record.get(c) for c in COLUMNS})

    def column(self, name: str) -> list:
        """The values of one field, one per epoch."""
        if name not in COLUMNS:
            raise KeyError(f"no history column {name!r}; known: {COLUMNS}")
        return [r[name] for r in self.records]

    def best(self, name: str) -> dict:
        """The record with the best ``name``: lowest for losses, highest otherwise."""
        values = [(v, i) for i, v in enumerate(self.column(name)) if v is not None and not math.isnan(v)]
        if not values:
            raise ValueError(f"history has no {name!r} values")
        pick = min if name.endswith("loss") or name == "seconds" else max
        return self.records[pick(values, key=lambda vi: vi[0])[1]]

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable form: ``{"records": [...]}``."""
        return {"records": [dict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        return cls(data["records"])

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.records[index]

    def __repr__(self) -> str:
        if not self.records:
            return "History(0 epochs)"
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.records[-1].items()
                         if k not in ("epoch", "seconds") and isinstance(v, float))
        return f"History({len(self.records)} epochs; last: {last})"


# ---------------------------------------------------------------- one pass

def _split(batch: Any) -> tuple[tuple, Any]:
    """``(inputs, target)`` of a batch: the last element is the target."""
    if isinstance(batch, torch.Tensor):
        return (batch,), None
    if not isinstance(batch, (tuple, list)) or len(batch) == 0:
        raise TypeError(f"a batch must be a tuple (inputs..., targets), got {type(batch).__name__}")
    if len(batch) == 1:
        return tuple(batch), None
    inputs, target = tuple(batch[:-1]), batch[-1]
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = tuple(inputs[0])
    return inputs, target


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value


def _logits(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _check_shapes(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(logits).__name__}; expected a logits tensor")
    ok = (logits.dim() == targets.dim() + 1 and logits.shape[0] == targets.shape[0]
          and logits.shape[2:] == targets.shape[1:])
    if not ok:
        want = "(B, C)" if targets.dim() == 1 else "(B, C, " + ", ".join(map(str, targets.shape[1:])) + ")"
        raise ValueError(f"model output has shape {tuple(logits.shape)} but targets have shape "
                         f"{tuple(targets.shape)}: class logits must be {want} for these targets "
                         f"(B = {targets.shape[0]}, C = number of classes)")


class _Meter:
    """Sample-weighted running loss and accuracy of one pass (kept on the device: no sync per batch)."""

    def __init__(self):
        self.loss_sum, self.n, self.hits, self.valid, self.classify = 0.0, 0, 0, 0, None

    def add(self, loss: torch.Tensor, output: Any, targets: Any) -> None:
        size = targets.shape[0] if isinstance(targets, torch.Tensor) else len(_logits(output))
        self.loss_sum = self.loss_sum + loss.detach().float() * size
        self.n += size
        classify = isinstance(targets, torch.Tensor) and not targets.dtype.is_floating_point
        self.classify = classify if self.classify is None else self.classify and classify
        if classify:
            valid = targets >= 0
            self.hits = self.hits + ((_logits(output).detach().argmax(dim=1) == targets) & valid).sum()
            self.valid = self.valid + valid.sum()

    def loss(self) -> float:
        return float(self.loss_sum) / max(self.n, 1)

    def result(self) -> dict:
        if self.n == 0:
            raise ValueError("the data yielded no batches (empty dataset, or drop_last with too few samples)")
        valid = int(self.valid)
        accuracy = int(self.hits) / valid if self.classify and valid else None
        return {"loss": self.loss(), "accuracy": accuracy, "n": self.n}


class _Amp:
    """Autocast settings: bfloat16 where supported, else float16 with a GradScaler (CUDA only)."""

    def __init__(self, device: torch.device, enabled: bool | None):
        self.enabled = device.type == "cuda" and (enabled is None or enabled)
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda") if self.enabled and not bf16 else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


def _pass(model: torch.nn.Module, data: Iterable, loss_fn: Callable, device: torch.device, amp: _Amp, *,
          optimizer: torch.optim.Optimizer | None = None, clip_grad_norm: float | None = None,
          bar: tqdm | None = None) -> dict:
    """One pass over ``data``; trains when ``optimizer`` is given, else evaluates without gradients."""
    meter = _Meter()
    training = optimizer is not None
    with torch.set_grad_enabled(training):
        for batch in data:
            inputs, targets = _split(_to(batch, device))
            if targets is None:
                raise ValueError("batches must carry targets: (inputs..., targets)")
            with amp.autocast():
                output = model(*inputs)
                if isinstance(targets, torch.Tensor) and not targets.dtype.is_floating_point:
                    _check_shapes(_logits(output), targets)
                loss = loss_fn(output, targets)
            if training:
                optimizer.zero_grad(set_to_none=True)
                if amp.scaler is not None:
                    amp.scaler.scale(loss).backward()
                    amp.scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                if amp.scaler is not None:
                    amp.scaler.step(optimizer)
                    amp.scaler.update()
                else:
                    optimizer.step()
            meter.add(loss, output, targets)
            if bar is not None and not bar.disable:
                bar.update()
                if bar.n % 10 == 1:
                    bar.set_postfix(loss=f"{meter.loss():.4f}", refresh=False)
    return meter.result()


# ---------------------------------------------------------------- checkpoints

def _rng_state(data: Iterable) -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = (kind, keys.tolist(), pos, has_gauss, cached)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    generator = getattr(data, "generator", None)
    if isinstance(generator, torch.Generator):
        state["data"] = generator.get_state()
    return state


def _set_rng_state(state: dict, data: Iterable) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(data, "generator", None)
    if "data" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["data"])


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict:
    # On the CPU: RNG states must be CPU tensors; load_state_dict moves the rest to the parameters' device.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"cannot resume from checkpoint {path}: {exc}") from exc


# ---------------------------------------------------------------- public loop

def fit(model: torch.nn.Module, train_data: Iterable, *, epochs: int, lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable = cross_entropy,
        val_data: Iterable | None = None, device: torch.device | str | None = None,
        clip_grad_norm: float | None = None, amp: bool | None = None, scheduler: Any = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
        desc: str | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the per-epoch :class:`History`.

    Args:
        model: any ``nn.Module``; moved to ``device``.
        train_data: re-iterable of batches ``(inputs..., targets)`` (a ``DataLoader``
            or :func:`batches`); iterated once per epoch.
        epochs: total number of epochs (with ``resume``, including those already done).
        lr: learning rate of the default optimizer (Adam); ignored when ``optimizer`` is given.
        optimizer: an optimizer over ``model``'s parameters.
        loss_fn: ``loss_fn(output, targets) -> scalar``; default :func:`cross_entropy`.
        val_data: batches evaluated after every epoch.
        device: where to train; default :func:`coursekit.runtime.device`.
        clip_grad_norm: clip the gradients' global L2 norm to this value.
        amp: mixed precision (bfloat16 autocast, or float16 with a GradScaler where
            bfloat16 is unsupported). ``None``: on for CUDA. Ignored off CUDA.
        scheduler: a learning-rate scheduler stepped once per epoch (``ReduceLROnPlateau``
            is stepped with the validation loss, else the training loss), or a callable
            ``optimizer -> scheduler`` (for the default optimizer).
        checkpoint: file saved atomically after every epoch with the model,
            optimizer, scheduler, epoch, history and random states.
        resume: continue from ``checkpoint`` if it exists (start afresh otherwise).
            On CPU a resumed run ends with bit-identical weights to an uninterrupted one.
        progress: show ``tqdm.auto`` bars (epochs, and batches of the current epoch).
        desc: label of the epoch bar.

    Returns:
        The :class:`History`, one record per epoch (resumed epochs included).

    Raises:
        ValueError: empty data, model output shape not matching the targets,
            ``resume`` without ``checkpoint``.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    device = torch.device(device) if device is not None else runtime.device()
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    amp_ = _Amp(device, amp)
    history = History()
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path.exists():
        state = _load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if amp_.scaler is not None and state.get("scaler") is not None:
            amp_.scaler.load_state_dict(state["scaler"])
        history = History.from_dict(state["history"])
        start = state["epoch"]
        _set_rng_state(state["rng"], train_data)

    try:
        n_batches = len(train_data)
    except TypeError:
        n_batches = None
    epoch_bar = tqdm(range(start, epochs), desc=desc or "epochs", disable=not progress,
                     initial=start, total=epochs, unit="epoch")
    batch_bar = tqdm(total=n_batches, leave=False, disable=not progress, unit="batch")
    try:
        for epoch in epoch_bar:
            tic = time.perf_counter()
            used_lr = optimizer.param_groups[0]["lr"]
            batch_bar.reset(total=n_batches)
            batch_bar.set_description(f"epoch {epoch + 1}")
            model.train()
            train = _pass(model, train_data, loss_fn, device, amp_, optimizer=optimizer,
                          clip_grad_norm=clip_grad_norm, bar=batch_bar)
            val = None
            if val_data is not None:
                with _eval_mode(model):
                    val = _pass(model, val_data, loss_fn, device, amp_)
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step((val or train)["loss"])
                else:
                    scheduler.step()
            history.append(epoch=epoch + 1, train_loss=train["loss"], train_accuracy=train["accuracy"],
                           val_loss=val and val["loss"], val_accuracy=val and val["accuracy"],
                           seconds=time.perf_counter() - tic, lr=used_lr)
            epoch_bar.set_postfix({k: f"{v:.4f}" for k, v in history[-1].items()
                                   if k in ("train_loss", "val_loss", "val_accuracy") and v is not None})
            if path is not None:
                _save_atomic({
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": amp_.scaler.state_dict() if amp_.scaler is not None else None,
                    "epoch": epoch + 1,
                    "history": history.to_dict(),
                    "rng": _rng_state(train_data),
                }, path)
    finally:
        batch_bar.close()
        epoch_bar.close()
    return history


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    """``model.eval()`` inside, the previous train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, data: Iterable, *, loss_fn: Callable = cross_entropy,
             device: torch.device | str | None = None) -> dict:
    """Loss and accuracy of ``model`` on ``data``, in eval mode, without gradients.

    Args:
        model: the model (moved to ``device``; its train/eval mode is restored after).
        data: re-iterable of batches ``(inputs..., targets)``.
        loss_fn: as in :func:`fit`.
        device: default :func:`coursekit.runtime.device`.

    Returns:
        ``{"loss": float, "accuracy": float | None, "n": int}``; accuracy is
        ``None`` for float (regression) targets.
    """
    device = torch.device(device) if device is not None else runtime.device()
    model.to(device)
    with _eval_mode(model):
        return _pass(model, data, loss_fn, device, _Amp(device, False))


@torch.no_grad()
def predict(model: torch.nn.Module, data: Iterable, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The model's outputs on every batch, concatenated along dim 0, on the CPU.

    Args:
        model: the model (eval mode during the call).
        data: re-iterable of batches: ``(inputs..., targets)`` (targets are
            ignored), a 1-tuple ``(inputs,)`` or a bare input tensor.
        device: default :func:`coursekit.runtime.device`.

    Returns:
        ``(N, C)`` (or ``(N, C, *)``) logits; the first element of a tuple output.
    """
    device = torch.device(device) if device is not None else runtime.device()
    model.to(device)
    outputs = []
    with _eval_mode(model):
        for batch in data:
            inputs, _ = _split(_to(batch, device))
            outputs.append(_logits(model(*inputs)).cpu())
    if not outputs:
        raise ValueError("the data yielded no batches")
    return torch.cat(outputs)
