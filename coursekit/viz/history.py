"""Training curves: loss and accuracy per epoch from a :class:`coursekit.train.History`."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ..train import History


def _as_history(history: Any) -> History:
    if isinstance(history, History):
        return history
    if isinstance(history, dict):
        return History.from_dict(history)
    return History(history)


def _plot(ax, history: History, names: tuple[str, str], label: str) -> None:
    epochs = history.column("epoch")
    for name, style in zip(names, ("-o", "--s")):
        values = history.column(name)
        if any(v is not None for v in values):
            ys = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(epochs, ys, style, markersize=3, label=name.split("_")[0])
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def plot_history(history: History | dict | list, ax=None):
    """Plot training (and validation) loss and accuracy against the epoch.

    Args:
        history: a :class:`~coursekit.train.History`, its ``to_dict()`` or a list of records.
        ax: ``None`` (a new figure with a loss panel, plus an accuracy panel when
            accuracy was measured), one ``Axes`` (loss only) or a pair of ``Axes``
            ``(loss_ax, accuracy_ax)``.

    Returns:
        The array of ``Axes`` drawn into: ``[loss_ax]`` or ``[loss_ax, accuracy_ax]``.
    """
    history = _as_history(history)
    if len(history) == 0:
        raise ValueError("the history is empty: nothing to plot")
    has_accuracy = any(v is not None for v in history.column("train_accuracy") + history.column("val_accuracy"))
    if ax is None:
        panels = 2 if has_accuracy else 1
        _, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.2), squeeze=False, layout="constrained")
        axes = axes[0]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
    _plot(axes[0], history, ("train_loss", "val_loss"), "loss")
    if len(axes) > 1:
        _plot(axes[1], history, ("train_accuracy", "val_accuracy"), "accuracy")
    return axes
