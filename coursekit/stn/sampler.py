r"""The differentiable sampler: read the input at the grid's source coordinates.

The slide's generic sampler, for output pixel ``i`` and channel ``c``:

.. math::
    V_i^c = \sum_n^H \sum_m^W U_{nm}^c \, k(x_i^s - m)\, k(y_i^s - n)

with :math:`(x_i^s, y_i^s)` in *pixel* units. The grid holds normalised
coordinates (``align_corners=False``, see :mod:`coursekit.stn`), converted by

.. math::
    x^s = \frac{(x + 1)\,W - 1}{2}, \qquad y^s = \frac{(y + 1)\,H - 1}{2} .

The sums run over the pixels of ``U`` only, so a location outside the image
reads zeros (``padding_mode="zeros"``), implemented as a frame of zero pixels
around ``U``. Both kernels have compact support, so only the few pixels with
:math:`k \ne 0` are gathered: one vectorised gather, no loop over pixels.
The result equals ``F.grid_sample(U, grid, mode=..., padding_mode="zeros",
align_corners=False)``; on CPU it is about 2-4x slower forward + backward
(``benchmarks/stn_sampler.py``), fast enough to train the course's models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .grids import _check_shape


def _check_inputs(image: torch.Tensor, grid: torch.Tensor) -> None:
    _check_shape(image, "U", (None, None, None, None), "(B, C, H, W)")
    _check_shape(grid, "grid", (image.shape[0], None, None, 2), f"(B={image.shape[0]}, H', W', 2)")
    if grid.dtype != image.dtype:
        raise ValueError(f"U and grid must have the same dtype, got {image.dtype} and {grid.dtype}")


def _source_pixels(grid: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates ``(x^s, y^s)``, each ``(B, H'W')``, of a normalised ``(B, H', W', 2)`` grid."""
    flat = grid.reshape(grid.shape[0], -1, 2)
    x = ((flat[..., 0] + 1) * width - 1) / 2
    y = ((flat[..., 1] + 1) * height - 1) / 2
    return x, y


_FRAME = 2  # zero pixels added on every side; see _framed_index


def _framed(image: torch.Tensor) -> torch.Tensor:
    """``U`` in a frame of ``_FRAME`` zero pixels, flattened: ``(B, C, (H + 4)(W + 4))``.

    Reading the frame gives 0, as the slide's sum, which runs over the pixels of ``U`` only.
    """
    batch, channels, height, width = image.shape
    return F.pad(image, (_FRAME,) * 4).reshape(batch, channels, (height + 2 * _FRAME) * (width + 2 * _FRAME))


def _framed_index(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flat index into :func:`_framed` of pixel ``(n, m)`` = ``(rows, cols)`` (float, integral), as int64.

    Indices are clamped to ``[-2, size]``: a pixel, or a neighbour pair ``{m, m + 1}``, that
    lies outside ``U`` lands entirely on the zero frame (pair ``{-2, -1}`` or ``{W, W + 1}``),
    so no mask is needed.
    """
    rows = rows.clamp(-_FRAME, height) + _FRAME
    cols = cols.clamp(-_FRAME, width) + _FRAME
    return rows.long() * (width + 2 * _FRAME) + cols.long()


def _gather(framed: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, C, P)`` values of a framed ``(B, C, L)`` image at ``(B, P)`` flat indices (all channels)."""
    return framed.gather(2, index.unsqueeze(1).expand(framed.shape[0], framed.shape[1], index.shape[1]))


def bilinear_sample(U: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    r"""Bilinear sampling, the slide's sampler with the kernel :math:`k(d) = \max(0, 1 - |d|)`.

    .. math::
        V_i^c = \sum_n^H \sum_m^W U_{nm}^c \max(0, 1 - |x_i^s - m|) \max(0, 1 - |y_i^s - n|)

    Only :math:`m \in \{\lfloor x^s \rfloor, \lfloor x^s \rfloor + 1\}` (and the
    same for :math:`n`) have a nonzero kernel, where it equals
    :math:`1 - (x^s - \lfloor x^s \rfloor)` and :math:`x^s - \lfloor x^s \rfloor`: four
    gathered pixels per output pixel, weighted. Autograd through these weights and
    the gather gives the paper's (sub-)gradients

    .. math::
        \frac{\partial V_i^c}{\partial U_{nm}^c} = k(x_i^s - m)\,k(y_i^s - n), \qquad
        \frac{\partial V_i^c}{\partial x_i^s} = \sum_n^H \sum_m^W U_{nm}^c\, k(y_i^s - n)
        \begin{cases} 0 & |m - x_i^s| \ge 1 \\ 1 & m \ge x_i^s \\ -1 & m < x_i^s \end{cases}

    (and :math:`\partial/\partial y` alike); at integer :math:`x^s`, a kink, the
    one-sided derivative from the right is used, as ``F.grid_sample`` does.

    Args:
        U: ``(B, C, H, W)`` input image or feature map.
        grid: ``(B, H', W', 2)`` normalised source coordinates ``(x, y)``, same dtype as ``U``.

    Returns:
        ``(B, C, H', W')`` sampled output ``V``; differentiable w.r.t. ``U`` and ``grid``.
    """
    _check_inputs(U, grid)
    batch, channels, height, width = U.shape
    x, y = _source_pixels(grid, height, width)                        # (B, P) each
    x0, y0 = x.detach().floor(), y.detach().floor()
    fx, fy = x - x0, y - y0
    kx = torch.stack([1 - fx, fx], dim=1)                             # k(x - m), m = x0, x0 + 1
    ky = torch.stack([1 - fy, fy], dim=1)                             # k(y - n), n = y0, y0 + 1
    weights = (ky.unsqueeze(2) * kx.unsqueeze(1)).flatten(1, 2)       # (B, 4, P): (n, m) row-major
    framed_width = width + 2 * _FRAME
    corner = _framed_index(y0, x0, height, width)                     # (n, m) = (y0, x0)
    offsets = torch.tensor([0, 1, framed_width, framed_width + 1], device=U.device)
    index = (corner.unsqueeze(1) + offsets.view(1, 4, 1)).flatten(1)  # (B, 4P)
    values = _gather(_framed(U), index).reshape(batch, channels, 4, -1)
    out = (values * weights.unsqueeze(1)).sum(2)
    return out.reshape(batch, channels, grid.shape[1], grid.shape[2])


def nearest_sample(U: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    r"""Nearest-neighbour sampling, the slide's sampler with the integer kernel.

    .. math::
        V_i^c = \sum_n^H \sum_m^W U_{nm}^c\, \delta(\operatorname{round}(x_i^s) - m)\,
                \delta(\operatorname{round}(y_i^s) - n)

    The paper writes :math:`\operatorname{round}(x) = \lfloor x + 0.5 \rfloor`;
    here exact half-pixel ties round to the even pixel (``torch.round``), like
    ``F.grid_sample``'s ``std::nearbyint``, so the two agree everywhere; the
    rules differ only at exact ties.

    The output is piecewise constant in the coordinates: there is **no gradient
    w.r.t. the grid** (a localisation net cannot learn through this kernel),
    only w.r.t. ``U`` (:math:`\partial V_i^c / \partial U_{nm}^c` = 1 at the chosen pixel).

    Args:
        U: ``(B, C, H, W)`` input.
        grid: ``(B, H', W', 2)`` normalised source coordinates, same dtype as ``U``.

    Returns:
        ``(B, C, H', W')`` sampled output.
    """
    _check_inputs(U, grid)
    batch, channels, height, width = U.shape
    x, y = _source_pixels(grid.detach(), height, width)
    out = _gather(_framed(U), _framed_index(torch.round(y), torch.round(x), height, width))
    return out.reshape(batch, channels, grid.shape[1], grid.shape[2])


_KERNELS = {"bilinear": bilinear_sample, "nearest": nearest_sample}


def sample(U: torch.Tensor, grid: torch.Tensor, kernel: str = "bilinear") -> torch.Tensor:
    """Sample ``U`` at ``grid`` with the named kernel (``"bilinear"`` or ``"nearest"``).

    Args:
        U: ``(B, C, H, W)`` input.
        grid: ``(B, H', W', 2)`` normalised source coordinates.
        kernel: ``"bilinear"`` (:func:`bilinear_sample`) or ``"nearest"`` (:func:`nearest_sample`).

    Returns:
        ``(B, C, H', W')``.
    """
    try:
        sampler = _KERNELS[kernel]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sampling kernel {kernel!r}; choose one of {sorted(_KERNELS)}") from None
    return sampler(U, grid)
