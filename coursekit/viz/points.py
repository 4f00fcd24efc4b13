"""Colours for labelled 3-D data: the one label palette every 3-D figure shares.

A label ``k >= 0`` (a part, a semantic class, an instance id) is drawn in
``PALETTE[k % len(PALETTE)]`` in k3d scenes (:mod:`coursekit.viz.scene3d`) and in their
matplotlib fallbacks (:mod:`coursekit.viz.static3d`) alike, so the same chair leg is the
same orange in both. Negative labels (``-1``: unlabelled, ignored) are grey.

Inputs may be torch tensors or NumPy arrays; a point cloud is ``(N, 3)`` or a batch
of one ``(1, N, 3)`` (the library's ``(B, N, 3)`` convention with ``B = 1``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#7b4173", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79",
)  # fmt: skip
"""Colour of label ``k`` is ``PALETTE[k % 20]``: matplotlib's tab10 (its grey swapped for plum, since
grey means unlabelled) then the light tab20 shades."""

UNLABELLED = "#b0b0b0"
"""Colour of negative labels (unlabelled or ignored points)."""

DEFAULT_COLOR = "#1f77b4"
"""Colour of unlabelled data when no label is given at all."""

_RGB = np.array([to_rgb(c) for c in PALETTE])
_GREY = np.array(to_rgb(UNLABELLED))


def as_array(x, dtype=np.float32) -> np.ndarray:
    """A NumPy copy of a tensor or array (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def as_cloud(points, name: str = "points") -> np.ndarray:
    """``(N, 3)`` float32 array from an ``(N, 3)`` or ``(1, N, 3)`` tensor/array; clear errors otherwise."""
    array = as_array(points)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (1, N, 3), got {tuple(np.shape(array))}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def as_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    """``(n,)`` int64 array from ``(n,)`` or ``(1, n)`` integer labels; clear errors otherwise."""
    array = as_array(labels, dtype=np.float64)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the data, got {tuple(array.shape)}")
    if not np.all(array == np.round(array)):
        raise ValueError(f"{name} must be integers")
    return array.astype(np.int64)


def label_rgb(labels) -> np.ndarray:
    r"""``(N, 3)`` float RGB in ``[0, 1]`` of integer labels: ``PALETTE[k mod 20]``, grey for ``k < 0``."""
    labels = as_array(labels, dtype=np.int64).reshape(-1)
    rgb = _RGB[np.mod(labels, len(PALETTE))]
    rgb[labels < 0] = _GREY
    return rgb


def rgb_to_hex(rgb) -> np.ndarray:
    """``(N,)`` uint32 ``0xRRGGBB`` colours (what k3d takes) from ``(N, 3)`` RGB in ``[0, 1]``."""
    rgb = np.clip(np.round(as_array(rgb, dtype=np.float64).reshape(-1, 3) * 255), 0, 255).astype(np.uint32)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def label_hex(labels) -> np.ndarray:
    """``(N,)`` uint32 k3d colours of integer labels (same palette as :func:`label_rgb`)."""
    return rgb_to_hex(label_rgb(labels))


def hex_int(color: str) -> int:
    """A matplotlib colour (``"#1f77b4"``, ``"tab:red"``) as the ``0xRRGGBB`` int k3d takes."""
    return int(rgb_to_hex(np.array([to_rgb(color)]))[0])


def legend_handles(labels, names: Sequence[str] | None = None) -> list[Patch]:
    """One legend patch per distinct label present (sorted), named ``names[k]`` when given."""
    present = np.unique(as_array(labels, dtype=np.int64).reshape(-1))
    handles = []
    for k in present:
        name = "unlabelled" if k < 0 else (names[k] if names is not None and k < len(names) else str(k))
        handles.append(Patch(facecolor=label_rgb([k])[0], edgecolor="none", label=name))
    return handles
