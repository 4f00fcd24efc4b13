r"""Grid generators: where each output pixel reads the input (identity, affine, attention, projective).

Every generator evaluates a transformation :math:`\mathcal{T}_\theta` at the
target coordinates :math:`G_i = (x_i^t, y_i^t)` of the ``H' x W'`` output
pixels and returns the source coordinates as a sampling grid ``(B, H', W', 2)``
in the convention of :mod:`coursekit.stn` (normalised, ``align_corners=False``,
last axis ``(x, y)``).
"""

from __future__ import annotations

import operator
from typing import Sequence

import torch

#: Identity parameters of :func:`affine_grid`, row-major ``theta``: ``[[1, 0, 0], [0, 1, 0]]``.
IDENTITY_AFFINE: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Identity parameters of :func:`attention_grid`: ``(s, t_x, t_y) = (1, 0, 0)``.
IDENTITY_ATTENTION: tuple[float, ...] = (1.0, 0.0, 0.0)
#: Identity parameters of :func:`projective_grid`: the first 8 entries of the 3x3 identity.
IDENTITY_PROJECTIVE: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


# ------------------------------------------------------------------ validation (shared by stn/)

def _as_size(size: Sequence[int], name: str = "size") -> tuple[int, int]:
    """``(H', W')`` as two positive Python ints, or a ``ValueError`` naming what was given."""
    try:
        height, width = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (H', W'), two positive integers; got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name} must be positive, got ({height}, {width})")
    return height, width


def _check_shape(tensor: torch.Tensor, name: str, shape: tuple[int | None, ...], spelled: str) -> None:
    """Raise unless ``tensor`` is a float tensor whose shape matches ``shape`` (``None`` = any size)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f"{name} must have shape {spelled}, got {tuple(tensor.shape)}")
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got {tensor.dtype}")


# ------------------------------------------------------------------------------- coordinates

def _pixel_centres(n: int, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    r"""Normalised centres of ``n`` pixels: :math:`-1 + (2i + 1)/n` (``align_corners=False``)."""
    return (torch.arange(n, dtype=dtype, device=device) * 2 + 1) / n - 1


def target_coordinates(size: Sequence[int], dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> torch.Tensor:
    r"""Homogeneous target coordinates :math:`(x_i^t, y_i^t, 1)` of every output pixel.

    .. math::
        x_i^t = -1 + \frac{2j + 1}{W'}, \quad y_i^t = -1 + \frac{2r + 1}{H'}
        \qquad \text{for pixel } i = r W' + j

    Args:
        size: output size ``(H', W')``.
        dtype, device: of the result.

    Returns:
        ``(H' W', 3)`` tensor, rows in row-major pixel order, columns ``(x^t, y^t, 1)``.

    >>> target_coordinates((1, 2))
    tensor([[-0.5000,  0.0000,  1.0000],
            [ 0.5000,  0.0000,  1.0000]])
    """
    height, width = _as_size(size)
    ys, xs = torch.meshgrid(_pixel_centres(height, dtype, device), _pixel_centres(width, dtype, device),
                            indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(height * width, 3)


def identity_grid(batch: int, size: Sequence[int], dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> torch.Tensor:
    r"""The grid of the identity transformation: :math:`(x_i^s, y_i^s) = (x_i^t, y_i^t)`.

    Sampling an ``H' x W'`` image with it returns the image unchanged.

    Args:
        batch: ``B``.
        size: ``(H', W')``.
        dtype, device: of the result.

    Returns:
        ``(B, H', W', 2)`` grid.
    """
    height, width = _as_size(size)
    if operator.index(batch) < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    grid = target_coordinates(size, dtype, device)[:, :2].reshape(1, height, width, 2)
    return grid.expand(batch, height, width, 2).contiguous()


def affine_grid(theta: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    r"""Affine grid generator (the slide's :math:`\mathbf{A}_\theta`).

    .. math::
        \begin{pmatrix} x_i^s \\ y_i^s \end{pmatrix} = \mathbf{A}_\theta
        \begin{pmatrix} x_i^t \\ y_i^t \\ 1 \end{pmatrix}
        = \begin{bmatrix} \theta_{11} & \theta_{12} & \theta_{13} \\
                          \theta_{21} & \theta_{22} & \theta_{23} \end{bmatrix}
        \begin{pmatrix} x_i^t \\ y_i^t \\ 1 \end{pmatrix}

    Equal to ``F.affine_grid(theta, (B, C, H', W'), align_corners=False)``.

    Args:
        theta: ``(B, 2, 3)`` affine matrices (target -> source).
        size: output size ``(H', W')``.

    Returns:
        ``(B, H', W', 2)`` grid of source coordinates.

    >>> theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    >>> torch.equal(affine_grid(theta, (3, 4)), identity_grid(1, (3, 4)))
    True
    """
    _check_shape(theta, "theta", (None, 2, 3), "(B, 2, 3)")
    height, width = _as_size(size)
    target = target_coordinates(size, theta.dtype, theta.device)           # (H'W', 3)
    source = target @ theta.transpose(1, 2)                                # (B, H'W', 2)
    return source.reshape(theta.shape[0], height, width, 2)


def attention_theta(params: torch.Tensor) -> torch.Tensor:
    r"""The attention model's matrix from ``(s, t_x, t_y)``: isotropic scale plus translation.

    .. math::
        \mathbf{A}_\theta = \begin{bmatrix} s & 0 & t_x \\ 0 & s & t_y \end{bmatrix}

    Args:
        params: ``(B, 3)`` rows ``(s, t_x, t_y)``; ``s < 1`` zooms in.

    Returns:
        ``(B, 2, 3)`` affine matrices for :func:`affine_grid`.
    """
    _check_shape(params, "params", (None, 3), "(B, 3) = (s, t_x, t_y)")
    scale, tx, ty = params.unbind(-1)
    zero = torch.zeros_like(scale)
    return torch.stack([torch.stack([scale, zero, tx], -1), torch.stack([zero, scale, ty], -1)], -2)


def attention_grid(params: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    r"""Attention grid generator: crop/zoom with scale ``s`` at offset ``(t_x, t_y)``.

    .. math::
        \begin{pmatrix} x_i^s \\ y_i^s \end{pmatrix}
        = \begin{bmatrix} s & 0 & t_x \\ 0 & s & t_y \end{bmatrix}
        \begin{pmatrix} x_i^t \\ y_i^t \\ 1 \end{pmatrix}
        = \begin{pmatrix} s\,x_i^t + t_x \\ s\,y_i^t + t_y \end{pmatrix}

    Args:
        params: ``(B, 3)`` rows ``(s, t_x, t_y)``.
        size: output size ``(H', W')`` (often smaller than the input: a zoomed crop).

    Returns:
        ``(B, H', W', 2)`` grid.
    """
    return affine_grid(attention_theta(params), size)


def projective_grid(params: torch.Tensor, size: Sequence[int], eps: float = 1e-6) -> torch.Tensor:
    r"""Projective (homography) grid generator, 8 parameters.

    .. math::
        \begin{pmatrix} u_i \\ v_i \\ w_i \end{pmatrix} =
        \begin{bmatrix} p_0 & p_1 & p_2 \\ p_3 & p_4 & p_5 \\ p_6 & p_7 & 1 \end{bmatrix}
        \begin{pmatrix} x_i^t \\ y_i^t \\ 1 \end{pmatrix}, \qquad
        x_i^s = \frac{u_i}{w_i}, \quad y_i^s = \frac{v_i}{w_i}

    The divide is guarded: where :math:`|w_i| < \varepsilon`, :math:`w_i` is
    replaced by :math:`\pm\varepsilon` with the sign of :math:`w_i` (``+`` at 0),
    so points near the horizon land far outside the image (and sample zeros)
    instead of producing ``inf``/``NaN``; the gradient w.r.t. ``w`` is zero there.

    Args:
        params: ``(B, 8)`` homography entries ``p_0 .. p_7`` (the last entry is fixed to 1).
        size: output size ``(H', W')``.
        eps: smallest allowed :math:`|w_i|`.

    Returns:
        ``(B, H', W', 2)`` grid.
    """
    _check_shape(params, "params", (None, 8), "(B, 8)")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    height, width = _as_size(size)
    batch = params.shape[0]
    homography = torch.cat([params, params.new_ones(batch, 1)], dim=1).reshape(batch, 3, 3)
    target = target_coordinates(size, params.dtype, params.device)        # (H'W', 3)
    uvw = target @ homography.transpose(1, 2)                              # (B, H'W', 3)
    w = uvw[..., 2:]
    w = torch.where(w.abs() < eps, torch.where(w < 0, -eps, eps).to(w.dtype), w)
    return (uvw[..., :2] / w).reshape(batch, height, width, 2)
