r"""Several representations of one object side by side: one k3d scene, or one matplotlib row.

"The representation challenge of 3D deep learning": the same chair as a mesh, a point
cloud, voxels at several resolutions, octree levels ... A :class:`Panel` names one of
them (a title, a kind, and the keyword arguments of that kind's drawing function); the
same list of panels gives

* :func:`compare_plot`: one interactive k3d scene, the panels placed next to each other
  along ``x`` (each panel's objects moved by their ``model_matrix``);
* :func:`compare_figure`: its static twin, one 3-D axes per panel in a row (or grid).

:func:`multiview_figure` shows the images a renderer made of the object (the
"multi-view" representation): one row per image kind, one column per camera.

>>> from coursekit.data.world import make_shape
>>> chair = make_shape("chair", seed=4)
>>> panels = [Panel("mesh", "mesh", dict(vertices=chair.vertices, faces=chair.faces)),
...           Panel("points", "points", dict(points=chair.sample(512)[0]))]
>>> len(compare_figure(panels).axes)
2
"""

from __future__ import annotations

import html
import math
import re
from typing import NamedTuple, Sequence

import k3d
import matplotlib.pyplot as plt
import numpy as np

from . import scene3d, static3d
from .points import as_array, as_cloud
from .scene3d import box_edges, frustum_segments, voxel_values

__all__ = ["Panel", "KINDS", "compare_plot", "compare_figure", "multiview_figure", "panel_extent"]


class Panel(NamedTuple):
    """One representation to show.

    Attributes:
        title: caption (``"voxels 32^3"``).
        kind: ``"points"``, ``"voxels"``, ``"mesh"``, ``"boxes"`` or ``"cameras"``.
        data: keyword arguments of the kind's functions: ``points_plot``/``points_figure`` for
            ``"points"``, ``voxels_plot``/``voxels_figure`` for ``"voxels"``, and so on (the two
            twins take the same inputs).
    """

    title: str
    kind: str
    data: dict


KINDS = {
    "points": (scene3d.points_plot, static3d.points_figure),
    "voxels": (scene3d.voxels_plot, static3d.voxels_figure),
    "mesh": (scene3d.mesh_plot, static3d.mesh_figure),
    "boxes": (scene3d.boxes_plot, static3d.boxes_figure),
    "cameras": (scene3d.cameras_plot, static3d.cameras_figure),
}
"""``kind -> (k3d function, matplotlib function)``."""

_STATIC_ONLY = {"names", "title", "ax"}  # arguments only the matplotlib twins take
_K3D_ONLY = {"point_size", "opacity", "wireframe"}  # arguments only the k3d functions take (or mean differently)


def _check(panels: Sequence[Panel]) -> list[Panel]:
    panels = [Panel(*p) for p in panels]
    if not panels:
        raise ValueError("nothing to compare: give at least one Panel")
    for p in panels:
        if p.kind not in KINDS:
            raise ValueError(f"panel {p.title!r}: unknown kind {p.kind!r}; choose one of {sorted(KINDS)}")
    return panels


def panel_extent(panel: Panel) -> np.ndarray:
    """``(2, 3)`` axis-aligned ``[min, max]`` of what a panel draws (for voxels: of the filled cells)."""
    d = panel.data
    if panel.kind == "points":
        xyz = as_cloud(d["points"])
    elif panel.kind == "mesh":
        xyz = as_cloud(d["vertices"], "vertices")
    elif panel.kind == "voxels":
        lo, hi = (float(b) for b in d.get("bounds", (-1.0, 1.0)))
        values = voxel_values(d["occupancy"])
        filled = np.argwhere(values > 0)  # (n, 3) (d, h, w)
        if len(filled) == 0:
            return np.array([[lo] * 3, [hi] * 3])
        side = (hi - lo) / np.array(values.shape[::-1])  # (x, y, z)
        xyz = lo + np.stack([filled.min(0)[::-1], filled.max(0)[::-1] + 1]) * side
    elif panel.kind == "boxes":
        xyz = box_edges(d["boxes"])[0]
    else:
        xyz = frustum_segments(d["K"], d["R"], d["t"], d["size"], d.get("depth", 0.3))[0]
    return np.stack([xyz.min(0), xyz.max(0)])


def _html(title: str) -> str:
    """A caption as HTML (k3d would typeset plain text as LaTeX): ``"16^3"`` -> ``"16<sup>3</sup>"``."""
    return re.sub(r"\^(\w+)", r"<sup>\1</sup>", html.escape(title))


def compare_plot(panels: Sequence[Panel], gap: float = 0.3, height: int = 360) -> k3d.Plot:
    r"""One k3d scene with the panels side by side along ``x``, each captioned.

    Panel :math:`i` is moved by :math:`\Delta x_i` so that its extent starts ``gap`` times the
    widest panel after the previous one ends (``y`` and ``z`` are kept).

    Args:
        panels: the :class:`Panel` list.
        gap: space between panels, as a fraction of the widest panel.
        height: plot height in pixels.

    Returns:
        The ``k3d.Plot``.
    """
    panels = _check(panels)
    extents = [panel_extent(p) for p in panels]
    widest = max(float((e[1] - e[0]).max()) for e in extents)
    top = max(float(e[1, 1]) for e in extents)
    plot = scene3d.new_plot(height=height)
    x = 0.0
    for panel, extent in zip(panels, extents):
        shift = x - float(extent[0, 0])
        before = len(plot.objects)
        KINDS[panel.kind][0](**{k: v for k, v in panel.data.items() if k not in _STATIC_ONLY}, plot=plot)
        move = np.eye(4, dtype=np.float32)
        move[0, 3] = shift
        for obj in plot.objects[before:]:
            obj.model_matrix = move @ np.asarray(obj.model_matrix, dtype=np.float32)
        centre = extent.mean(0)
        plot += k3d.text(_html(panel.title), position=[float(centre[0] + shift), top + 0.08 * widest, float(centre[2])],
                         reference_point="cb", color=0x222222, size=0.9, label_box=False, is_html=True)
        x += float(extent[1, 0] - extent[0, 0]) + gap * widest
    return plot


def compare_figure(panels: Sequence[Panel], ncols: int | None = None, panel_size: float = 3.0,
                   elev: float = 20.0, azim: float = 35.0):
    """The static twin of :func:`compare_plot`: one 3-D axes per panel, same view for all.

    Args:
        panels: the :class:`Panel` list.
        ncols: panels per row (default: all in one row).
        panel_size: inches per panel.
        elev, azim: the shared view (``+y`` up).

    Returns:
        The ``Figure`` (``len(panels)`` axes, titled).
    """
    panels = _check(panels)
    ncols = len(panels) if ncols is None else ncols
    nrows = math.ceil(len(panels) / ncols)
    fig = plt.figure(figsize=(panel_size * ncols, panel_size * nrows), layout="constrained")
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d")
        ax.view_init(elev=elev, azim=azim, vertical_axis="y")
        data = {k: v for k, v in panel.data.items() if k not in _K3D_ONLY}
        data.setdefault("title", panel.title)
        KINDS[panel.kind][1](**data, ax=ax)
    return fig


def multiview_figure(renders: dict, views: Sequence[int] | None = None,
                     kinds: Sequence[str] = ("rgb", "depth", "normal", "mask"), titles: Sequence[str] | None = None,
                     size: float = 1.6):
    """Rendered images of one object: one row per image kind, one column per camera.

    Args:
        renders: the dict of :func:`coursekit.geometry.render.render_mesh` (``rgb (B, 3, H, W)``,
            ``depth (B, H, W)``, ``normal (B, 3, H, W)``, ``mask (B, H, W)``).
        views: which cameras (default all).
        kinds: rows, any of ``"rgb"``, ``"depth"`` (camera ``z``; near is bright), ``"normal"``
            (world normal :math:`(n + 1) / 2` as RGB) and ``"mask"`` (the silhouette).
        titles: optional column titles.
        size: inches per image.

    Returns:
        The ``Figure``; background pixels are white in every row.
    """
    known = {"rgb", "depth", "normal", "mask"}
    if not kinds or set(kinds) - known:
        raise ValueError(f"kinds must be a non-empty subset of {sorted(known)}, got {tuple(kinds)}")
    mask = as_array(renders["mask"], dtype=bool)
    views = list(range(mask.shape[0])) if views is None else list(views)
    if titles is not None and len(titles) != len(views):
        raise ValueError(f"need one title per view ({len(views)}), got {len(titles)}")
    fig, axes = plt.subplots(len(kinds), len(views), figsize=(size * len(views), size * len(kinds)),
                             squeeze=False, layout="constrained")
    depth = as_array(renders["depth"]) if "depth" in kinds else None
    near, far = (depth[mask].min(), depth[mask].max()) if depth is not None and mask.any() else (0.0, 1.0)
    for col, v in enumerate(views):
        m = mask[v]
        for row, kind in enumerate(kinds):
            ax = axes[row, col]
            if kind == "rgb":
                image = np.where(m[..., None], as_array(renders["rgb"][v]).transpose(1, 2, 0), 1.0)
                ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            elif kind == "normal":
                image = np.where(m[..., None], (as_array(renders["normal"][v]).transpose(1, 2, 0) + 1) / 2, 1.0)
                ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            elif kind == "depth":
                cmap = plt.get_cmap("magma_r").with_extremes(bad="white")
                ax.imshow(np.ma.masked_where(~m, depth[v]), cmap=cmap, vmin=near, vmax=far, interpolation="nearest")
            else:
                ax.imshow(m, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(kind)
            if row == 0 and titles is not None:
                ax.set_title(titles[col], fontsize="small")
    return fig
