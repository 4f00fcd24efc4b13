r"""Figures for spatial transformers: sampling grids over their input, outputs, a live explorer.

A sampling grid (``(H', W', 2)``, normalised, ``align_corners=False``, see
:mod:`coursekit.stn`) is drawn in the *input's* pixel coordinates,

.. math::
    u = \frac{(x^s + 1)\,W - 1}{2}, \qquad v = \frac{(y^s + 1)\,H - 1}{2},

as the lines through every ``step``-th row and column of output pixels plus
the outline of the output frame: the region of the input the transformer reads.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..stn.sampler import bilinear_sample
from ..stn.tps import tps_control_points, tps_grid

GRID_COLOR = "tab:orange"
FRAME_COLOR = "tab:red"


def _image(image: torch.Tensor) -> np.ndarray:
    """``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)`` tensor -> ``(H, W)`` numpy array."""
    array = image.detach().cpu().float()
    while array.dim() > 2:
        if array.shape[0] != 1:
            raise ValueError(f"expected a single one-channel image, got shape {tuple(image.shape)}")
        array = array[0]
    return array.numpy()


def grid_to_pixels(grid: torch.Tensor, height: int, width: int) -> np.ndarray:
    r"""``(H', W', 2)`` normalised grid -> ``(H', W', 2)`` input pixel coordinates ``(u, v)``.

    .. math::
        u = \frac{(x^s + 1)\,W - 1}{2}, \qquad v = \frac{(y^s + 1)\,H - 1}{2}
    """
    g = grid.detach().cpu().double()
    if g.dim() == 4:
        g = g[0]
    if g.dim() != 3 or g.shape[-1] != 2:
        raise ValueError(f"grid must have shape (H', W', 2) or (1, H', W', 2), got {tuple(grid.shape)}")
    u = ((g[..., 0] + 1) * width - 1) / 2
    v = ((g[..., 1] + 1) * height - 1) / 2
    return torch.stack([u, v], -1).numpy()


def draw_grid(ax, image: torch.Tensor, grid: torch.Tensor, step: int = 3, color: str = GRID_COLOR,
              title: str | None = None) -> None:
    """Show ``image`` with the sampling ``grid`` drawn over it, in the input's pixels.

    Args:
        ax: matplotlib ``Axes``.
        image: ``(H, W)`` (or ``(1, 1, H, W)``) input.
        grid: ``(H', W', 2)`` (or ``(1, H', W', 2)``) normalised source coordinates.
        step: draw every ``step``-th grid row and column (the frame always).
        color: colour of the inner lines; the outline is red.
        title: axes title.
    """
    img = _image(image)
    height, width = img.shape
    pts = grid_to_pixels(grid, height, width)
    ax.imshow(img, cmap="gray", vmin=0, vmax=max(1.0, float(img.max())))
    rows, cols = pts.shape[:2]
    for r in range(0, rows, step):
        ax.plot(pts[r, :, 0], pts[r, :, 1], color=color, lw=0.7, alpha=0.8)
    for c in range(0, cols, step):
        ax.plot(pts[:, c, 0], pts[:, c, 1], color=color, lw=0.7, alpha=0.8)
    frame = np.concatenate([pts[0, :], pts[:, -1], pts[-1, ::-1], pts[::-1, 0]])
    ax.plot(frame[:, 0], frame[:, 1], color=FRAME_COLOR, lw=1.5)
    ax.set_xlim(-0.5 - width * 0.25, width - 0.5 + width * 0.25)
    ax.set_ylim(height - 0.5 + height * 0.25, -0.5 - height * 0.25)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _show(ax, image: torch.Tensor, title: str | None = None) -> None:
    img = _image(image)
    ax.imshow(img, cmap="gray", vmin=0, vmax=max(1.0, float(img.max())))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def show_grids(image: torch.Tensor, grids: Mapping[str, torch.Tensor], step: int = 3):
    """One column per named grid: the input with the grid over it, and the sampled output.

    Args:
        image: ``(H, W)`` or ``(1, 1, H, W)`` input.
        grids: ``{name: (1, H', W', 2) grid}`` (e.g. from ``affine_grid``, ``tps_grid``).
        step: grid line spacing in output pixels.

    Returns:
        the matplotlib ``Figure``.
    """
    U = torch.as_tensor(_image(image))[None, None]
    fig, axes = plt.subplots(2, len(grids), figsize=(2.4 * len(grids), 5), squeeze=False)
    for col, (name, grid) in enumerate(grids.items()):
        grid = grid.detach().cpu().float()
        grid = grid if grid.dim() == 4 else grid[None]
        draw_grid(axes[0, col], U, grid, step, title=name)
        _show(axes[1, col], bilinear_sample(U, grid[:1]), "output V")
    axes[0, 0].set_ylabel("input U + grid")
    fig.tight_layout()
    return fig


def show_transformed(inputs: torch.Tensor, outputs: torch.Tensor, grids: torch.Tensor | None = None,
                     n: int = 8, labels: Sequence | None = None, step: int = 4):
    """Where a spatial transformer looks: inputs (with its grid) above, its outputs below.

    Args:
        inputs: ``(B, 1, H, W)`` transformer inputs.
        outputs: ``(B, 1, H', W')`` transformer outputs.
        grids: ``(B, H', W', 2)`` sampling grids (``transformer.last_grid``), or ``None``.
        n: how many to show (the first ``n``).
        labels: optional titles (e.g. true digits), one per image.
        step: grid line spacing.

    Returns:
        the matplotlib ``Figure``.
    """
    n = min(n, len(inputs))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i in range(n):
        title = None if labels is None else str(labels[i])
        if grids is None:
            _show(axes[0, i], inputs[i], title)
        else:
            draw_grid(axes[0, i], inputs[i], grids[i], step, title=title)
        _show(axes[1, i], outputs[i])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("ST output")
    fig.tight_layout()
    return fig


def explorer_theta(angle_deg: float, scale: float, shear: float, tx: float, ty: float) -> torch.Tensor:
    r"""The ``(2, 3)`` affine :math:`\mathbf{A}_\theta` of the explorer's sliders (target -> source).

    .. math::
        \mathbf{A}_\theta = \Big[\, s\, R(\alpha) \begin{bmatrix} 1 & h \\ 0 & 1 \end{bmatrix}
        \;\Big|\; \begin{matrix} t_x \\ t_y \end{matrix} \Big],
        \qquad R(\alpha) = \begin{bmatrix} \cos\alpha & -\sin\alpha \\ \sin\alpha & \cos\alpha \end{bmatrix}

    ``s > 1`` reads a larger part of the input (the content shrinks); ``t_x > 0``
    reads further right (the content moves left).
    """
    a = math.radians(angle_deg)
    rotation = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    linear = scale * rotation @ torch.tensor([[1.0, shear], [0.0, 1.0]], dtype=torch.float64)
    return torch.cat([linear, torch.tensor([[tx], [ty]], dtype=torch.float64)], dim=1)


def explorer_grid(theta: torch.Tensor, displacement: torch.Tensor, size: Sequence[int],
                  tps_grid_size: int = 4) -> torch.Tensor:
    r"""The explorer's grid: a TPS whose control points :math:`c_k + d_k` are then moved by :math:`\mathbf{A}_\theta`.

    .. math::
        v_k = \mathbf{A}_\theta \begin{pmatrix} c_k + d_k \\ 1 \end{pmatrix}

    With all displacements :math:`d_k = 0` this is exactly the affine grid of
    :math:`\mathbf{A}_\theta` (a TPS reproduces affine maps).

    Args:
        theta: ``(2, 3)`` affine matrix.
        displacement: ``(K, 2)`` control point displacements, normalised units.
        size: output ``(H', W')``.
        tps_grid_size: control points per side.

    Returns:
        ``(1, H', W', 2)`` grid.
    """
    control = tps_control_points(tps_grid_size, torch.float64)
    moved = torch.cat([control + displacement.double(), torch.ones(len(control), 1, dtype=torch.float64)], 1)
    return tps_grid((moved @ theta.double().T)[None], size).float()


def transform_explorer(image: torch.Tensor, out_size: Sequence[int] | None = None, tps_grid_size: int = 4):
    """An ipywidgets explorer: sliders for the affine parameters and TPS control points, live output.

    Sliders: rotation (degrees), scale, shear, translation ``t_x``, ``t_y`` (normalised
    units) of :func:`explorer_theta`; a control point selector with its displacement
    ``dx``, ``dy`` (each point keeps its own), and a reset button. The figure shows the
    input with the sampling grid and control points, and the bilinear-sampled output.

    Args:
        image: ``(H, W)`` or ``(1, 1, H, W)`` input.
        out_size: output ``(H', W')``; default the input's size.
        tps_grid_size: control points per side (4: the paper's 16 points).

    Returns:
        an ``ipywidgets.VBox`` (make it the cell's last expression).
    """
    import ipywidgets as widgets
    from IPython.display import clear_output

    U = torch.as_tensor(_image(image))[None, None]
    size = tuple(out_size) if out_size is not None else tuple(U.shape[-2:])
    k = tps_grid_size**2
    displacement = torch.zeros(k, 2)

    def slider(description, low, high, value, step):
        return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                                   continuous_update=False, readout_format=".2f")

    angle = slider("rotation °", -180.0, 180.0, 0.0, 5.0)
    scale = slider("scale s", 0.3, 2.0, 1.0, 0.05)
    shear = slider("shear h", -1.0, 1.0, 0.0, 0.05)
    tx = slider("t_x", -1.0, 1.0, 0.0, 0.05)
    ty = slider("t_y", -1.0, 1.0, 0.0, 0.05)
    point = widgets.IntSlider(value=tps_grid_size + 1, min=0, max=k - 1, description="TPS point k",
                              continuous_update=False)
    dx = slider("dx", -0.6, 0.6, 0.0, 0.02)
    dy = slider("dy", -0.6, 0.6, 0.0, 0.02)
    reset = widgets.Button(description="reset")
    out = widgets.Output()
    syncing = {"point": False}

    def render(*_):
        theta = explorer_theta(angle.value, scale.value, shear.value, tx.value, ty.value)
        grid = explorer_grid(theta, displacement, size, tps_grid_size)
        control = tps_control_points(tps_grid_size, torch.float64) + displacement.double()
        sources = torch.cat([control, torch.ones(k, 1, dtype=torch.float64)], 1) @ theta.T
        with out:
            clear_output(wait=True)
            fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(7, 3.4))
            draw_grid(ax_in, U, grid, step=max(1, size[0] // 9), title="input U and sampling grid")
            px = grid_to_pixels(sources.reshape(1, k, 2), *U.shape[-2:])[0]
            ax_in.scatter(px[:, 0], px[:, 1], s=12, c="tab:cyan", zorder=3)
            ax_in.scatter(px[point.value, 0], px[point.value, 1], s=40, c="tab:red", zorder=4)
            _show(ax_out, bilinear_sample(U, grid), "output V")
            rows = [" ".join(f"{v:+.2f}" for v in row) for row in theta.tolist()]
            fig.suptitle(r"$A_\theta$ = [" + " ; ".join(rows) + "]", fontsize=9)
            fig.tight_layout()
            plt.show()

    def on_point(_):
        syncing["point"] = True
        dx.value, dy.value = (float(v) for v in displacement[point.value])
        syncing["point"] = False
        render()

    def on_displacement(_):
        if syncing["point"]:
            return
        displacement[point.value] = torch.tensor([dx.value, dy.value])
        render()

    def on_reset(_):
        displacement.zero_()
        for widget, value in ((angle, 0.0), (scale, 1.0), (shear, 0.0), (tx, 0.0), (ty, 0.0)):
            widget.value = value
        on_point(None)

    for widget in (angle, scale, shear, tx, ty):
        widget.observe(render, names="value")
    point.observe(on_point, names="value")
    dx.observe(on_displacement, names="value")
    dy.observe(on_displacement, names="value")
    reset.on_click(on_reset)
    render()
    affine_box = widgets.VBox([angle, scale, shear, tx, ty])
    tps_box = widgets.VBox([point, dx, dy, reset])
    return widgets.VBox([widgets.HBox([affine_box, tps_box]), out])
