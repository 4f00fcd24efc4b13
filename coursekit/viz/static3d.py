r"""Static matplotlib twins of the k3d scenes: same inputs, a ``Figure`` out.

k3d needs a live kernel and WebGL; these render anywhere (exported HTML, GitHub, CI,
the Agg backend), so every k3d figure in a notebook is followed by its twin here:

====================================  ====================================
k3d (:mod:`coursekit.viz.scene3d`)    matplotlib (this module)
====================================  ====================================
``points_plot``                       :func:`points_figure`
``voxels_plot``                       :func:`voxels_figure`
``mesh_plot``                         :func:`mesh_figure`
``boxes_plot``                        :func:`boxes_figure`
``cameras_plot``                      :func:`cameras_figure`
====================================  ====================================

Each function draws into ``ax`` (a new figure with one 3-D axes when ``None``) and returns
the ``Figure``; drawing several things into one ``ax`` frames them all. The view keeps the
world's ``+y`` up (``view_init(vertical_axis="y")``) and equal scale on every axis.
Surfaces (mesh faces, voxel faces) are flat-shaded with a fixed light,

.. math::  c = \text{albedo}\,\big(a + (1 - a)\,|n \cdot l|\big), \qquad a = 0.3,

and drawn in one ``Poly3DCollection`` (matplotlib sorts polygons, it has no z-buffer: fine
for one object, approximate where surfaces interpenetrate).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

from .points import DEFAULT_COLOR, as_array, as_cloud, as_labels, label_rgb, legend_handles
from .scene3d import box_edges, frustum_segments, voxel_values

__all__ = ["points_figure", "voxels_figure", "mesh_figure", "boxes_figure", "cameras_figure", "voxel_faces",
           "axes3d", "LIGHT"]

LIGHT = np.array([0.45, 0.85, 0.3]) / np.linalg.norm([0.45, 0.85, 0.3])
"""World direction towards the light used to shade surfaces."""

_AMBIENT = 0.3

# The 6 faces of the unit cube [0, 1]^3 (x, y, z): outward normal and its 4 corners, counter-clockwise.
_FACES = [
    ((-1, 0, 0), ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0))),
    ((1, 0, 0), ((1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1))),
    ((0, -1, 0), ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1))),
    ((0, 1, 0), ((0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0))),
    ((0, 0, -1), ((0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0))),
    ((0, 0, 1), ((0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))),
]


def axes3d(ax=None, figsize=(4.5, 4.5), elev: float = 20.0, azim: float = 35.0):
    """``(figure, ax)``: ``ax`` itself, or a new figure with one 3-D axes viewed with ``+y`` up."""
    if ax is None:
        fig = plt.figure(figsize=figsize)
        ax = fig.add_subplot(projection="3d")
        ax.view_init(elev=elev, azim=azim, vertical_axis="y")
    elif getattr(ax, "name", "") != "3d":
        raise TypeError("ax must be a 3-D axes (fig.add_subplot(projection='3d'))")
    return ax.figure, ax


def _frame(ax, xyz: np.ndarray, had_data: bool, margin: float = 0.04) -> None:
    """Fit the limits to ``xyz`` (and to what the axes already showed), equal scale on every axis."""
    lo, hi = xyz.min(0), xyz.max(0)
    if had_data:
        lo = np.minimum(lo, [ax.get_xlim3d()[0], ax.get_ylim3d()[0], ax.get_zlim3d()[0]])
        hi = np.maximum(hi, [ax.get_xlim3d()[1], ax.get_ylim3d()[1], ax.get_zlim3d()[1]])
    pad = margin * float((hi - lo).max() or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.set_xlim3d(lo[0], hi[0])
    ax.set_ylim3d(lo[1], hi[1])
    ax.set_zlim3d(lo[2], hi[2])
    ax.set_box_aspect(tuple(hi - lo))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_ticklabels([])
        axis.pane.set_alpha(0.15)


def _shade(rgb: np.ndarray, normals: np.ndarray) -> np.ndarray:
    lit = np.abs(normals @ LIGHT)[:, None]
    return np.clip(rgb * (_AMBIENT + (1 - _AMBIENT) * lit), 0, 1)


def _item_rgb(n: int, labels, colors, color: str) -> np.ndarray:
    if labels is not None and colors is not None:
        raise ValueError("give either labels or colors, not both")
    if labels is not None:
        return label_rgb(as_labels(labels, n))
    if colors is not None:
        rgb = as_array(colors, dtype=np.float64)
        if rgb.shape != (n, 3):
            raise ValueError(f"colors must have shape ({n}, 3) (RGB in [0, 1]), got {tuple(rgb.shape)}")
        return rgb
    return np.tile(to_rgb(color), (n, 1))


def _legend(ax, labels, names) -> None:
    if labels is not None and names is not None:
        ax.legend(handles=legend_handles(labels, names), loc="upper left", fontsize="small", frameon=False)


def points_figure(points, labels=None, colors=None, point_size: float = 4.0, color: str = DEFAULT_COLOR,
                  names=None, ax=None, title: str | None = None):
    """Scatter a point cloud, one colour per label (twin of :func:`~coursekit.viz.scene3d.points_plot`).

    Args:
        points: ``(N, 3)`` or ``(1, N, 3)``.
        labels: optional ``(N,)`` integer labels (palette colours).
        colors: optional ``(N, 3)`` RGB in ``[0, 1]``.
        point_size: marker area in points^2.
        color: the colour without labels or colours.
        names: optional label names: adds a legend of the labels present.
        ax: 3-D axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; the points are one ``Path3DCollection`` with one face colour per point.
    """
    xyz = as_cloud(points)
    rgb = _item_rgb(len(xyz), labels, colors, color)
    fig, ax = axes3d(ax)
    had = ax.has_data()
    ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=rgb, s=point_size, depthshade=False, linewidths=0)
    _frame(ax, xyz, had)
    _legend(ax, labels, names)
    if title:
        ax.set_title(title)
    return fig


def voxel_faces(occupancy, bounds=(-1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces of filled cells that touch an empty cell (or the border): what one sees of a voxel grid.

    Args:
        occupancy: ``(D, H, W)`` or ``(1, 1, D, H, W)`` grid, axes ``(z, y, x)``; filled where ``> 0.5``.
        bounds: ``(lo, hi)`` of the cube the grid covers.

    Returns:
        ``quads (M, 4, 3)`` world corners ``(x, y, z)``, ``normals (M, 3)`` and ``cells (M, 3)`` the
        ``(d, h, w)`` cell each face belongs to.
    """
    filled = voxel_values(occupancy) > 0
    lo, hi = (float(b) for b in bounds)
    side = (hi - lo) / np.array(filled.shape[::-1], dtype=np.float64)  # (x, y, z) cell size
    padded = np.pad(filled, 1)
    quads, normals, cells = [], [], []
    for normal, corners in _FACES:
        dz, dy, dx = normal[2], normal[1], normal[0]
        neighbour = padded[1 + dz: padded.shape[0] - 1 + dz, 1 + dy: padded.shape[1] - 1 + dy,
                           1 + dx: padded.shape[2] - 1 + dx]
        dhw = np.argwhere(filled & ~neighbour)  # (m, 3) (d, h, w)
        origin = lo + dhw[:, ::-1] * side  # (m, 3) (x, y, z) of the cell's low corner
        quads.append(origin[:, None, :] + np.array(corners, dtype=np.float64)[None] * side)
        normals.append(np.tile(np.array(normal, dtype=np.float64), (len(dhw), 1)))
        cells.append(dhw)
    return np.concatenate(quads), np.concatenate(normals), np.concatenate(cells)


def voxels_figure(occupancy, bounds=(-1.0, 1.0), labels=None, color: str = DEFAULT_COLOR, outlines: bool = True,
                  names=None, ax=None, title: str | None = None):
    """Draw the visible faces of the filled cells (twin of :func:`~coursekit.viz.scene3d.voxels_plot`).

    Args:
        occupancy: ``(D, H, W)`` or ``(1, 1, D, H, W)`` grid.
        bounds: ``(lo, hi)``.
        labels: optional ``(D, H, W)`` integer label per cell.
        color: colour without labels.
        outlines: draw thin face edges.
        names: label names for a legend.
        ax: 3-D axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; the faces are one ``Poly3DCollection`` (one polygon per visible face).
    """
    quads, normals, cells = voxel_faces(occupancy, bounds)
    if labels is not None:
        lab = as_array(labels, dtype=np.int64)
        grid_shape = voxel_values(occupancy).shape
        if lab.shape != grid_shape:
            raise ValueError(f"labels must have the grid's shape {grid_shape}, got {lab.shape}")
        cell_labels = lab[cells[:, 0], cells[:, 1], cells[:, 2]]
        rgb = label_rgb(cell_labels)
    else:
        cell_labels = None
        rgb = np.tile(to_rgb(color), (len(quads), 1))
    fig, ax = axes3d(ax)
    had = ax.has_data()
    lo, hi = (float(b) for b in bounds)
    collection = Poly3DCollection(quads, facecolors=_shade(rgb, normals),
                                  edgecolors=(0.15, 0.15, 0.15, 0.35) if outlines else "none",
                                  linewidths=0.2 if outlines else 0.0)
    ax.add_collection3d(collection)
    _frame(ax, quads.reshape(-1, 3) if len(quads) else np.array([[lo] * 3, [hi] * 3]), had)
    _legend(ax, cell_labels, names)
    if title:
        ax.set_title(title)
    return fig


def mesh_figure(vertices, faces, face_labels=None, face_colors=None, color: str = "#bbbbbb", names=None, ax=None,
                title: str | None = None):
    """Draw a flat-shaded triangle mesh (twin of :func:`~coursekit.viz.scene3d.mesh_plot`).

    Args:
        vertices: ``(V, 3)``.
        faces: ``(F, 3)`` integer indices.
        face_labels: optional ``(F,)`` integer labels.
        face_colors: optional ``(F, 3)`` RGB in ``[0, 1]``.
        color: colour without labels or colours.
        names: label names for a legend.
        ax: 3-D axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; the faces are one ``Poly3DCollection`` of ``F`` triangles.
    """
    v = as_cloud(vertices, "vertices").astype(np.float64)
    f = as_array(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise ValueError(f"faces must be an (F, 3) array of indices into the {len(v)} vertices")
    tri = v[f]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    rgb = _item_rgb(len(f), face_labels, face_colors, color)
    fig, ax = axes3d(ax)
    had = ax.has_data()
    ax.add_collection3d(Poly3DCollection(tri, facecolors=_shade(rgb, normals), edgecolors="none", linewidths=0))
    _frame(ax, v, had)
    _legend(ax, face_labels, names)
    if title:
        ax.set_title(title)
    return fig


def _segments_figure(vertices, segments, rgb_per_segment, width, ax, title):
    fig, ax = axes3d(ax)
    had = ax.has_data()
    ax.add_collection3d(Line3DCollection(vertices[segments], colors=rgb_per_segment, linewidths=width))
    if len(vertices):
        _frame(ax, vertices, had)
    if title:
        ax.set_title(title)
    return fig, ax


def boxes_figure(boxes, labels=None, color: str = "#d62728", width: float = 1.2, names=None, ax=None,
                 title: str | None = None):
    """Draw oriented boxes as wireframes with a heading tick (twin of :func:`~coursekit.viz.scene3d.boxes_plot`).

    Args:
        boxes: ``(K, 7)`` ``(cx, cy, cz, sx, sy, sz, yaw)``.
        labels: optional ``(K,)`` integer labels.
        color: colour without labels.
        width: line width in points.
        names: label names for a legend.
        ax: 3-D axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; the edges are one ``Line3DCollection`` of ``13 K`` segments.
    """
    vertices, segments = box_edges(boxes)
    k = len(segments) // 13
    rgb = _item_rgb(k, labels, None, color)
    fig, ax = _segments_figure(vertices, segments, np.repeat(rgb, 13, axis=0), width, ax, title)
    _legend(ax, labels, names)
    return fig


def cameras_figure(K, R, t, size: tuple[int, int], depth: float = 0.3, labels=None, color: str = "#444444",
                   width: float = 1.0, ax=None, title: str | None = None):
    """Draw camera frusta (twin of :func:`~coursekit.viz.scene3d.cameras_plot`).

    Args:
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics.
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` translations.
        size: ``(H, W)``.
        depth: drawn depth of the image plane.
        labels: optional ``(B,)`` integer labels.
        color: colour without labels.
        width: line width in points.
        ax: 3-D axes to draw into.
        title: axes title.

    Returns:
        The ``Figure``; the frusta are one ``Line3DCollection`` of ``11 B`` segments.
    """
    vertices, segments = frustum_segments(K, R, t, size, depth)
    b = len(vertices) // 8
    rgb = _item_rgb(b, labels, None, color)
    return _segments_figure(vertices, segments, np.repeat(rgb, 11, axis=0), width, ax, title)[0]
