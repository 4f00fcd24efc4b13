r"""Interactive 3-D scenes with k3d: labelled points, voxels, meshes, oriented boxes, camera frusta.

Every function draws into ``plot`` (a new :func:`k3d.plot` when ``None``) and returns
the ``k3d.Plot``, so calls chain into one scene::

    plot = points_plot(points, labels)
    plot = boxes_plot(boxes, box_labels, plot=plot)
    plot        # the cell's last expression (never plot.display())

Colours come from the shared label palette (:mod:`coursekit.viz.points`); each function
has a matplotlib twin with the same inputs in :mod:`coursekit.viz.static3d` for exports.

Conventions: world coordinates are right-handed with ``+y`` up (the procedural world's);
voxel grids are ``(D, H, W) = (z, y, x)`` over the cube ``[lo, hi]^3``
(:mod:`coursekit.geometry.voxels`), which is also k3d's voxel layout; oriented boxes are
``(K, 7) = (cx, cy, cz, sx, sy, sz, yaw)`` (:mod:`coursekit.data.world.scenes`); cameras
are world-to-camera ``[R | t]`` with pinhole ``K`` (:mod:`coursekit.geometry.camera`).
"""

from __future__ import annotations

import k3d
import numpy as np
import torch

from ..data.world.scenes import box_corners
from ..geometry.camera import camera_centers, unproject
from .points import DEFAULT_COLOR, PALETTE, UNLABELLED, as_array, as_cloud, as_labels, hex_int, label_hex, rgb_to_hex

__all__ = [
    "new_plot",
    "points_plot",
    "voxels_plot",
    "mesh_plot",
    "boxes_plot",
    "cameras_plot",
    "box_edges",
    "frustum_segments",
    "voxel_values",
]

_BOX_EDGES = np.array([(i, i ^ bit) for i in range(8) for bit in (4, 2, 1) if i < i ^ bit], dtype=np.int64)
"""The 12 edges of a box whose corner ``4 ix + 2 iy + iz`` sits at sign ``(ix, iy, iz)`` (``box_corners`` order)."""


def new_plot(height: int = 420) -> k3d.Plot:
    """An empty k3d plot without the grid, framing whatever is added to it."""
    return k3d.plot(height=height, grid_visible=False, camera_auto_fit=True, axes_helper=0, menu_visibility=True)


def _plot(plot) -> k3d.Plot:
    return new_plot() if plot is None else plot


def _colors(n: int, labels, colors, color: str, what: str) -> np.ndarray | None:
    """Per-item k3d colours: from ``labels`` (palette), from ``colors`` ``(n, 3)`` RGB, or ``None`` (one colour)."""
    if labels is not None and colors is not None:
        raise ValueError(f"give {what} either labels or colors, not both")
    if labels is not None:
        return label_hex(as_labels(labels, n))
    if colors is not None:
        rgb = as_array(colors)
        if rgb.shape != (n, 3):
            raise ValueError(f"colors must have shape ({n}, 3) (RGB in [0, 1]), got {tuple(rgb.shape)}")
        return rgb_to_hex(rgb)
    return None


def points_plot(points, labels=None, colors=None, point_size: float = 0.02, color: str = DEFAULT_COLOR,
                plot=None) -> k3d.Plot:
    """Draw a point cloud, one colour per label (or given RGB colours, or one colour).

    Args:
        points: ``(N, 3)`` or ``(1, N, 3)`` positions.
        labels: optional ``(N,)`` integer labels (parts, classes, instances; ``-1`` grey).
        colors: optional ``(N, 3)`` RGB in ``[0, 1]`` instead of labels (e.g. normals).
        point_size: point diameter in world units.
        color: the colour when neither labels nor colors are given.
        plot: the plot to draw into (default: a new one).

    Returns:
        The ``k3d.Plot``.
    """
    xyz = as_cloud(points)
    hexes = _colors(len(xyz), labels, colors, color, "points")
    kwargs = {"colors": hexes} if hexes is not None else {"color": hex_int(color)}
    plot = _plot(plot)
    plot += k3d.points(xyz, point_size=point_size, shader="3d", **kwargs)
    return plot


def voxel_values(occupancy, labels=None) -> np.ndarray:
    """``(D, H, W)`` uint8 k3d voxel values: ``0`` empty, ``1 + (label mod 20)`` filled, ``21`` filled and unlabelled.

    Args:
        occupancy: ``(D, H, W)`` or ``(1, 1, D, H, W)`` grid; a cell is filled where it is ``> 0.5``.
        labels: optional ``(D, H, W)`` integer label of each cell (read where filled; ``< 0`` grey).
    """
    grid = as_array(occupancy)
    while grid.ndim > 3 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim != 3:
        raise ValueError(f"occupancy must have shape (D, H, W) or (1, 1, D, H, W), got {tuple(np.shape(occupancy))}")
    filled = grid > 0.5
    values = np.zeros(grid.shape, dtype=np.uint8)
    if labels is None:
        values[filled] = 1
        return values
    lab = as_array(labels, dtype=np.int64)
    if lab.shape != grid.shape:
        raise ValueError(f"labels must have the grid's shape {grid.shape}, got {lab.shape}")
    values[filled] = np.where(lab[filled] < 0, len(PALETTE) + 1, np.mod(lab[filled], len(PALETTE)) + 1)
    return values


def voxels_plot(occupancy, bounds=(-1.0, 1.0), labels=None, color: str = DEFAULT_COLOR, outlines: bool = True,
                opacity: float = 1.0, plot=None) -> k3d.Plot:
    """Draw the filled cells of an occupancy grid as cubes.

    Args:
        occupancy: ``(D, H, W)`` or ``(1, 1, D, H, W)`` grid, axes ``(z, y, x)``; filled where ``> 0.5``.
        bounds: ``(lo, hi)``: the grid covers the cube ``[lo, hi]^3``.
        labels: optional ``(D, H, W)`` integer label per cell (palette colours).
        color: colour of filled cells without labels.
        outlines: draw cube edges.
        opacity: in ``[0, 1]``.
        plot: the plot to draw into.

    Returns:
        The ``k3d.Plot``.
    """
    values = voxel_values(occupancy, labels)
    lo, hi = (float(b) for b in bounds)
    if labels is None:
        color_map = [hex_int(color)]
    else:
        color_map = [hex_int(c) for c in PALETTE] + [hex_int(UNLABELLED)]
    plot = _plot(plot)
    plot += k3d.voxels(values, color_map=color_map, bounds=[lo, hi, lo, hi, lo, hi], outlines=outlines,
                       outlines_color=0x333333, opacity=opacity)
    return plot


def mesh_plot(vertices, faces, face_labels=None, face_colors=None, color: str = "#bbbbbb", wireframe: bool = False,
              opacity: float = 1.0, plot=None) -> k3d.Plot:
    """Draw a triangle mesh, each face coloured by its label (or given RGB, or one colour).

    Per-face colours need unshared corners: every face gets its own three vertices.

    Args:
        vertices: ``(V, 3)`` positions.
        faces: ``(F, 3)`` integer vertex indices.
        face_labels: optional ``(F,)`` integer labels (e.g. ``shape.face_labels``).
        face_colors: optional ``(F, 3)`` RGB in ``[0, 1]``.
        color: the colour without labels or colours.
        wireframe: draw edges only.
        opacity: in ``[0, 1]``.
        plot: the plot to draw into.

    Returns:
        The ``k3d.Plot``.
    """
    v = as_cloud(vertices, "vertices")
    f = as_array(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise ValueError(f"faces must be an (F, 3) array of indices into the {len(v)} vertices")
    hexes = _colors(len(f), face_labels, face_colors, color, "faces")
    plot = _plot(plot)
    if hexes is None:
        plot += k3d.mesh(v, f.astype(np.uint32), color=hex_int(color), wireframe=wireframe, opacity=opacity,
                         side="double", flat_shading=True)
    else:
        corners = v[f].reshape(-1, 3)
        plot += k3d.mesh(corners, np.arange(len(corners), dtype=np.uint32).reshape(-1, 3),
                         colors=np.repeat(hexes, 3), wireframe=wireframe, opacity=opacity, side="double",
                         flat_shading=True)
    return plot


def box_edges(boxes) -> tuple[np.ndarray, np.ndarray]:
    """Line segments of oriented boxes: the 12 edges plus a heading tick from the centre to the front face.

    Args:
        boxes: ``(K, 7)`` oriented boxes ``(cx, cy, cz, sx, sy, sz, yaw)``; the front is the box's ``+z`` face.

    Returns:
        ``(vertices (9K + K, 3), segments (13K, 2))``: per box its 8 corners, its centre and its
        front-face centre; 12 edge segments then one heading segment.
    """
    b = torch.as_tensor(as_array(boxes), dtype=torch.float64)
    if b.dim() != 2 or b.shape[-1] != 7:
        raise ValueError(f"boxes must have shape (K, 7), got {tuple(b.shape)}")
    corners = box_corners(b).numpy()  # (K, 8, 3)
    centre = corners.mean(1, keepdims=True)
    front = corners[:, 1::2].mean(1, keepdims=True)  # corners with iz = 1
    vertices = np.concatenate([corners, centre, front], 1)  # (K, 10, 3)
    base = 10 * np.arange(len(b))[:, None, None]
    segments = np.concatenate([_BOX_EDGES[None] + base, np.array([[[8, 9]]]) + base], 1)
    return vertices.reshape(-1, 3).astype(np.float32), segments.reshape(-1, 2)


def boxes_plot(boxes, labels=None, color: str = "#d62728", width: float = 0.01, plot=None) -> k3d.Plot:
    """Draw oriented 3-D boxes as wireframes (12 edges and a heading tick towards the front).

    Args:
        boxes: ``(K, 7)`` ``(cx, cy, cz, sx, sy, sz, yaw)`` (see :func:`coursekit.data.world.box_corners`).
        labels: optional ``(K,)`` integer labels (palette colours).
        color: the colour without labels.
        width: line width in world units.
        plot: the plot to draw into.

    Returns:
        The ``k3d.Plot``.
    """
    vertices, segments = box_edges(boxes)
    k = len(segments) // 13
    hexes = label_hex(as_labels(labels, k)) if labels is not None else np.full(k, hex_int(color), dtype=np.uint32)
    plot = _plot(plot)
    if k:
        plot += k3d.lines(vertices, segments.astype(np.uint32), indices_type="segment", shader="simple",
                          colors=np.repeat(hexes, 10), width=width)
    return plot


def frustum_segments(K, R, t, size: tuple[int, int], depth: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    r"""Line segments of camera frusta: centre to the four image corners at ``depth``, and the image rectangle.

    .. math::  C = -R^\top t, \qquad X_c = R^\top\!\left(d\,K^{-1}(u_c, v_c, 1)^\top - t\right)

    for the corners :math:`(u_c, v_c) \in \{(0, 0), (W, 0), (W, H), (0, H)\}` (unprojected by
    :func:`coursekit.geometry.camera.unproject`), plus a small triangle on the top edge
    (``v = 0``) that shows which way is up in the image.

    Args:
        K: ``(B, 3, 3)`` intrinsics (or one ``(3, 3)`` for every camera).
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` translations.
        size: ``(H, W)`` image size in pixels.
        depth: distance of the drawn image plane from the centre, in world units.

    Returns:
        ``(vertices (8B, 3), segments (11B, 2))``.
    """
    R = torch.as_tensor(as_array(R), dtype=torch.float64)
    t = torch.as_tensor(as_array(t), dtype=torch.float64)
    K = torch.as_tensor(as_array(K), dtype=torch.float64)
    if K.dim() == 2:
        K = K.expand(R.shape[0], 3, 3)
    H, W = size
    uv = torch.tensor([[0.0, 0.0], [W, 0.0], [W, H], [0.0, H], [0.4 * W, 0.0], [0.6 * W, 0.0], [0.5 * W, -0.15 * H]],
                      dtype=torch.float64)
    corners = unproject(uv.expand(R.shape[0], -1, -1), torch.full((R.shape[0], 7), float(depth), dtype=torch.float64),
                        K, R, t)
    vertices = torch.cat([camera_centers(R, t).unsqueeze(1), corners], 1)  # (B, 8, 3)
    one = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1], [5, 7], [7, 6], [6, 5]])
    segments = one[None] + 8 * np.arange(R.shape[0])[:, None, None]
    return vertices.reshape(-1, 3).numpy().astype(np.float32), segments.reshape(-1, 2)


def cameras_plot(K, R, t, size: tuple[int, int], depth: float = 0.3, labels=None, color: str = "#444444",
                 width: float = 0.01, plot=None) -> k3d.Plot:
    """Draw pinhole cameras as frusta (see :func:`frustum_segments`).

    Args:
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics.
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` translations.
        size: ``(H, W)`` image size.
        depth: drawn depth of the image plane.
        labels: optional ``(B,)`` integer labels (palette colours), e.g. ``arange(B)``.
        color: the colour without labels.
        width: line width.
        plot: the plot to draw into.

    Returns:
        The ``k3d.Plot``.
    """
    vertices, segments = frustum_segments(K, R, t, size, depth)
    b = len(vertices) // 8
    hexes = label_hex(as_labels(labels, b)) if labels is not None else np.full(b, hex_int(color), dtype=np.uint32)
    plot = _plot(plot)
    plot += k3d.lines(vertices, segments.astype(np.uint32), indices_type="segment", shader="simple",
                      colors=np.repeat(hexes, 8), width=width)
    return plot
