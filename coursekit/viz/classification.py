r"""Figures for the classification lecture: confusion matrices, PointNet's critical points, PointNet++
grouping, DGCNN's dynamic graph, and the continuous convolution kernels.

Each 3-D figure is a matplotlib figure (static, shows in exported HTML); :func:`critical_points_plot`
is the interactive k3d twin of :func:`critical_points_figure`. Colours follow
:mod:`coursekit.viz.points` (one palette for every 3-D figure). Inputs may be tensors or arrays.
"""

from __future__ import annotations

from typing import Sequence

import k3d
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from .points import PALETTE, UNLABELLED, as_array, as_cloud, hex_int
from .scene3d import new_plot, points_plot
from .static3d import axes3d, points_figure

CRITICAL = "#d62728"
"""Colour of critical points and of centres."""


def confusion_figure(confusion, class_names: Sequence[str], normalize: bool = True, ax=None,
                     title: str | None = None):
    r"""Draw a confusion matrix, rows = true class, columns = predicted class.

    .. math::  \tilde C_{ij} = \frac{C_{ij}}{\sum_k C_{ik}} \quad (\text{normalize: each row sums to 1})

    Args:
        confusion: ``(K, K)`` counts (e.g. :meth:`coursekit.models.classification_table.Table.confusion`).
        class_names: the ``K`` names.
        normalize: show row fractions (per-class recall on the diagonal) instead of counts.
        ax: axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; every cell is annotated with its count.
    """
    counts = as_array(confusion, dtype=np.float64)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"confusion must have shape ({k}, {k}) for {k} class names, got {counts.shape}")
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
    else:
        fig = ax.figure
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if normalize else "count")
    if title:
        ax.set_title(title)
    return fig


def _critical_mask(n: int, critical) -> np.ndarray:
    index = as_array(critical, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ValueError(f"critical indices must lie in [0, {n}), got min {index.min()}, max {index.max()}")
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def critical_points_plot(points, critical, upper_bound=None, point_size: float = 0.03, plot=None) -> k3d.plot:
    """The critical point set drawn over the cloud in k3d (PointNet's "visualize what is learned").

    Args:
        points: ``(N, 3)`` the cloud.
        critical: indices of the critical points (e.g. :func:`coursekit.models.pointnet.critical_points`).
        upper_bound: optional ``(G, 3)`` probe points inside the upper-bound shape, drawn faintly.
        point_size: diameter of the cloud's points (critical points are drawn 1.6x larger).
        plot: the plot to draw into.

    Returns:
        The ``k3d.Plot``: the other points grey, the critical ones red.
    """
    xyz = as_cloud(points)
    mask = _critical_mask(len(xyz), critical)
    plot = new_plot() if plot is None else plot
    if upper_bound is not None:
        plot += k3d.points(as_cloud(upper_bound, "upper_bound"), point_size=0.5 * point_size, shader="flat",
                           color=hex_int(PALETTE[0]), opacity=0.25, name="upper-bound shape")
    points_plot(xyz[~mask], point_size=point_size, color=UNLABELLED, plot=plot)
    points_plot(xyz[mask], point_size=1.6 * point_size, color=CRITICAL, plot=plot)
    return plot


def critical_points_figure(points, critical, upper_bound=None, title: str | None = None):
    """Static twin of :func:`critical_points_plot`: the cloud, its critical points, and the upper-bound shape.

    Args:
        points: ``(N, 3)``.
        critical: indices of the critical points.
        upper_bound: optional ``(G, 3)`` probes inside the upper-bound shape (a third panel).
        title: figure title.

    Returns:
        The ``Figure`` (two or three 3-D panels).
    """
    xyz = as_cloud(points)
    mask = _critical_mask(len(xyz), critical)
    panels = 3 if upper_bound is not None else 2
    fig = plt.figure(figsize=(4 * panels, 4))
    ax = fig.add_subplot(1, panels, 1, projection="3d")
    ax.view_init(elev=20, azim=35, vertical_axis="y")
    points_figure(xyz, color="#1f77b4", point_size=3, ax=ax, title=f"original shape ({len(xyz)} points)")
    ax = fig.add_subplot(1, panels, 2, projection="3d")
    ax.view_init(elev=20, azim=35, vertical_axis="y")
    points_figure(xyz[~mask], color=UNLABELLED, point_size=2, ax=ax)
    points_figure(xyz[mask], color=CRITICAL, point_size=8, ax=ax, title=f"critical point set ({int(mask.sum())} points)")
    if upper_bound is not None:
        ax = fig.add_subplot(1, panels, 3, projection="3d")
        ax.view_init(elev=20, azim=35, vertical_axis="y")
        ub = as_cloud(upper_bound, "upper_bound")
        points_figure(ub, color=PALETTE[0], point_size=2, ax=ax, title=f"upper-bound shape ({len(ub)} probes)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _fit(ax, xyz: np.ndarray, margin: float = 0.08) -> None:
    """Frame a 3-D axes on ``xyz`` with equal scales (lines drawn before may have widened the limits)."""
    lo, hi = xyz.min(0), xyz.max(0)
    centre, half = (lo + hi) / 2, (1 + margin) * float((hi - lo).max() or 1.0) / 2
    ax.set_xlim3d(centre[0] - half, centre[0] + half)
    ax.set_ylim3d(centre[1] - half, centre[1] + half)
    ax.set_zlim3d(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))


def _sphere_wire(ax, centre: np.ndarray, radius: float, color: str, n: int = 16) -> None:
    """Three great circles of a sphere (a light ball outline that does not hide the points)."""
    t = np.linspace(0, 2 * np.pi, 4 * n)
    c, s = radius * np.cos(t), radius * np.sin(t)
    z = np.zeros_like(t)
    for x, y, w in ((c, s, z), (c, z, s), (z, c, s)):
        ax.plot(centre[0] + x, centre[1] + y, centre[2] + w, color=color, lw=0.6, alpha=0.6)


def grouping_figure(points, centres, neighbours, radius: float | None = None, show: int = 8, ax=None,
                    title: str | None = None):
    """PointNet++ grouping: the cloud, the sampled centres, and the points each region gathers.

    Args:
        points: ``(N, 3)``.
        centres: ``(M, 3)`` farthest-point-sampled centres.
        neighbours: ``(M, S)`` indices into ``points`` (ball query or kNN; padded rows allowed).
        radius: the ball radius, to draw the balls (``None``: kNN, no balls).
        show: how many regions to colour (the first ``show`` centres); all centres are drawn.
        ax: 3-D axes.
        title: axes title.

    Returns:
        The ``Figure``.
    """
    xyz, c = as_cloud(points), as_cloud(centres, "centres")
    idx = as_array(neighbours, dtype=np.int64)
    if idx.ndim != 2 or idx.shape[0] != len(c):
        raise ValueError(f"neighbours must have shape ({len(c)}, S), got {idx.shape}")
    fig, ax = axes3d(ax, figsize=(5.5, 5.5))
    points_figure(xyz, color=UNLABELLED, point_size=1.5, ax=ax)
    for m in range(min(show, len(c))):
        color = PALETTE[m % len(PALETTE)]
        group = xyz[np.unique(idx[m])]
        points_figure(group, color=color, point_size=8, ax=ax)
        if radius is not None:
            _sphere_wire(ax, c[m], radius, color)
    points_figure(c, color="black", point_size=18, ax=ax,
                  title=title or f"{len(c)} centres, {min(show, len(c))} regions coloured")
    _fit(ax, xyz)
    return fig


def dynamic_graph_figure(points, neighbours_by_layer: Sequence, queries: Sequence[int], titles: Sequence[str] | None = None):
    """DGCNN's graph at several layers: the neighbours of a few query points, drawn in xyz space.

    In the first layer the kNN graph is built on coordinates, so a point's neighbours are around
    it; in later layers it is built on learned features, and neighbours can lie far apart on
    parts that look alike (the "dynamic" graph).

    Args:
        points: ``(N, 3)``.
        neighbours_by_layer: one ``(N, k)`` index array per layer.
        queries: point indices whose neighbourhoods are drawn (one colour each).
        titles: one title per layer.

    Returns:
        The ``Figure``: one 3-D panel per layer, edges from each query to its neighbours.
    """
    xyz = as_cloud(points)
    layers = [as_array(n, dtype=np.int64) for n in neighbours_by_layer]
    fig = plt.figure(figsize=(4.5 * len(layers), 4.5))
    for li, idx in enumerate(layers):
        if idx.ndim != 2 or idx.shape[0] != len(xyz):
            raise ValueError(f"layer {li}: neighbours must have shape ({len(xyz)}, k), got {idx.shape}")
        ax = fig.add_subplot(1, len(layers), li + 1, projection="3d")
        ax.view_init(elev=20, azim=35, vertical_axis="y")
        points_figure(xyz, color=UNLABELLED, point_size=1.5, ax=ax)
        for qi, q in enumerate(queries):
            color = PALETTE[qi % len(PALETTE)]
            for j in idx[q]:
                ax.plot(*np.stack([xyz[q], xyz[j]], 1), color=color, lw=0.7, alpha=0.8)
            points_figure(xyz[idx[q]], color=color, point_size=10, ax=ax)
            points_figure(xyz[[q]], color="black", point_size=30, ax=ax)
        _fit(ax, xyz)
        ax.set_title(titles[li] if titles else f"layer {li + 1}")
    fig.tight_layout()
    return fig


def values_on_points_figure(points, values, ax=None, title: str | None = None, cmap: str = "viridis",
                            label: str | None = None, point_size: float = 6.0):
    """Scatter a cloud coloured by one value per point (e.g. PointConv's inverse-density weights).

    Args:
        points: ``(N, 3)``.
        values: ``(N,)``.
        ax: 3-D axes.
        title: axes title.
        cmap: matplotlib colour map.
        label: colour bar label.
        point_size: marker area.

    Returns:
        The ``Figure``.
    """
    xyz = as_cloud(points)
    v = as_array(values, dtype=np.float64).reshape(-1)
    if v.shape != (len(xyz),):
        raise ValueError(f"values must have shape ({len(xyz)},), got {v.shape}")
    norm = Normalize(float(v.min()), float(v.max()) if v.max() > v.min() else float(v.min()) + 1.0)
    colors = plt.get_cmap(cmap)(norm(v))[:, :3]
    fig, ax = axes3d(ax)
    points_figure(xyz, colors=colors, point_size=point_size, ax=ax, title=title)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.6, label=label)
    return fig


def kernel_points_figure(kernel_points, sigma: float, neighbours=None, deformed=None, radius: float | None = None,
                         ax=None, title: str | None = None):
    """KPConv's kernel: kernel points, the influence distance :math:`\\sigma`, neighbours, deformed positions.

    Args:
        kernel_points: ``(K, 3)`` rigid kernel points.
        sigma: influence distance (drawn as a sphere around the kernel point nearest the centre).
        neighbours: optional ``(S, 3)`` neighbour positions relative to the centre.
        deformed: optional ``(K, 3)`` deformed kernel points (segments from the rigid ones).
        radius: optional convolution radius (the ball drawn around the centre).
        ax: 3-D axes.
        title: axes title.

    Returns:
        The ``Figure``: rigid kernel points red, deformed ones green, neighbours grey.
    """
    kp = as_cloud(kernel_points, "kernel_points")
    fig, ax = axes3d(ax)
    shown = [kp]
    if radius is not None:
        _sphere_wire(ax, np.zeros(3), radius, "#7f7f7f")
        shown.append(np.array([[-radius] * 3, [radius] * 3]))
    if neighbours is not None:
        nb = as_cloud(neighbours, "neighbours")
        points_figure(nb, color=UNLABELLED, point_size=6, ax=ax)
        shown.append(nb)
    _sphere_wire(ax, kp[np.argmin(np.linalg.norm(kp, axis=1))], sigma, PALETTE[1], n=8)
    points_figure(kp, color=CRITICAL, point_size=30, ax=ax, title=title)
    if deformed is not None:
        d = as_cloud(deformed, "deformed")
        if d.shape != kp.shape:
            raise ValueError(f"deformed must have the kernel points' shape {kp.shape}, got {d.shape}")
        for a, b in zip(kp, d):
            ax.plot(*np.stack([a, b], 1), color=PALETTE[2], lw=1.2)
        points_figure(d, color=PALETTE[2], point_size=30, ax=ax, title=title)
        shown.append(d)
    _fit(ax, np.concatenate(shown))
    return fig


def kernel_slice_figure(values, extent: float, anchors=None, ax=None, title: str | None = None,
                        label: str | None = None):
    """A continuous kernel on the plane :math:`z = 0`: an image of :math:`\\kappa(x, y, 0)` with its anchors.

    Args:
        values: ``(G, G)`` kernel values on a grid over ``[-extent, extent]^2`` (rows = y, columns = x).
        extent: half side of the plane shown.
        anchors: optional ``(L, 2)`` (x, y) anchor positions :math:`y_l` to mark.
        ax: axes.
        title: axes title.
        label: colour bar label.

    Returns:
        The ``Figure``.
    """
    img = as_array(values, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"values must be a square (G, G) grid, got {img.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    else:
        fig = ax.figure
    lim = float(np.abs(img).max() or 1.0)
    im = ax.imshow(img, origin="lower", extent=(-extent, extent, -extent, extent), cmap="RdBu_r", vmin=-lim, vmax=lim)
    if anchors is not None:
        a = as_array(anchors, dtype=np.float64)
        ax.scatter(a[:, 0], a[:, 1], c="black", s=12, marker="x", label="anchors $y_l$")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.colorbar(im, ax=ax, label=label)
    if title:
        ax.set_title(title)
    return fig
