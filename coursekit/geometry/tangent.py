r"""Tangent convolution, a worked example: project local points onto the tangent plane, interpolate, convolve.

Tatarchenko, Park, Koltun, Zhou, "Tangent convolutions for dense prediction in 3D", CVPR 2018
("project & interpolate local points to the tangent plane (PCA for orientation)"). For every
centre point :math:`p`:

1. **Tangent frame** from the covariance of its :math:`k` nearest neighbours: the normal
   :math:`n` is the eigenvector of the smallest eigenvalue, the first tangent axis :math:`u` that
   of the largest, :math:`v = n \times u`. PCA leaves the signs open; here :math:`n` points away
   from the origin (the object's centre) and :math:`u` towards the neighbours' skew
   (:math:`\sum_q (u \cdot (q - p))^3 \ge 0`), so the frame turns with the cloud.
2. **Projection**: every neighbour :math:`q` lands at :math:`(s, t) = (u \cdot (q - p),\ v \cdot (q - p))`
   with height :math:`z = n \cdot (q - p)`, the paper's "distance to the tangent plane" signal.
3. **Interpolation** onto a ``G x G`` tangent image covering :math:`[-r, r]^2`: a Gaussian-weighted
   mean of the projected signals at every pixel centre (our simplification; the paper compares
   nearest-neighbour and Gaussian-mixture interpolation), zero where no point is near.
4. **Convolution**: a ``G x G`` filter over the tangent image gives the output at :math:`p`,

   .. math::  y_o(p) = b_o + \sum_{c, i, j} W_{o c i j}\, I_{c i j}(p)

   i.e. a 2-D ``conv2d`` without padding, one image per point.

This is a worked cell, not a full model: the paper precomputes the tangent images of a whole
scene at several scales and builds an encoder-decoder of such layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .neighbors import group, knn
from .validate import check_count
from .validate import check_points

__all__ = ["tangent_frames", "tangent_images", "tangent_convolution"]


def tangent_frames(points: torch.Tensor, k: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    r"""PCA tangent frame of every point from its ``k`` nearest neighbours.

    .. math::  \Sigma_p = \frac{1}{k} \sum_{q \in \mathcal{N}_k(p)} (q - \bar q)(q - \bar q)^\top, \qquad
               n = e_{\min}(\Sigma_p), \quad u = e_{\max}(\Sigma_p), \quad v = n \times u

    Args:
        points: ``(B, N, 3)`` clouds around the origin.
        k: neighbours, ``3 <= k <= N``.

    Returns:
        ``(frames, idx)``: ``(B, N, 3, 3)`` rows ``(u, v, n)`` (a rotation; ``frames @ (q - p)`` gives
        ``(s, t, z)``) and the ``(B, N, k)`` ``int64`` neighbour indices.
    """
    check_points(points)
    check_count(k, "k", points.shape[1])
    if k < 3:
        raise ValueError(f"a tangent plane needs k >= 3 neighbours, got {k}")
    _, idx = knn(points, points, k)
    local = group(points, idx) - points.unsqueeze(2)  # (B, N, k, 3), q - p
    centred = local - local.mean(2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / k
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues, columns
    n, u = vectors[..., 0], vectors[..., 2]
    n = n * torch.where((n * points).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(n.dtype)
    skew = (((local * u.unsqueeze(2)).sum(-1)) ** 3).sum(-1, keepdim=True)
    u = u * torch.where(skew < 0, -1.0, 1.0).to(u.dtype)
    v = torch.linalg.cross(n, u)
    return torch.stack([u, v, n], -2), idx


def tangent_images(points: torch.Tensor, features: torch.Tensor | None = None, k: int = 16, grid_size: int = 5,
                   radius: float | None = None, sigma: float | None = None) -> torch.Tensor:
    r"""Tangent image of every point: its neighbours' signals interpolated on a ``G x G`` grid in the tangent plane.

    .. math::  I_c(a) = \frac{\sum_q \omega_q(a)\, f_c(q)}{\sum_q \omega_q(a)}, \qquad
               \omega_q(a) = \exp\!\Big(-\frac{\lVert (s_q, t_q) - a \rVert^2}{2 \sigma^2}\Big)

    for pixel centres :math:`a` on :math:`[-r, r]^2`; :math:`I = 0` where :math:`\sum_q \omega_q(a) < 10^{-6}`.

    Args:
        points: ``(B, N, 3)``.
        features: ``(B, N, C)`` signals (optional); channel 0 of the image is always the height
            :math:`z = n \cdot (q - p)`.
        k: neighbours (the image's support).
        grid_size: ``G``.
        radius: half-width :math:`r` of the image (default: the mean distance to the ``k``-th neighbour).
        sigma: interpolation width (default: one pixel, :math:`2r / G`).

    Returns:
        ``(B, N, 1 + C, G, G)``, differentiable in ``features``.
    """
    frames, idx = tangent_frames(points, k)
    local = (group(points, idx) - points.unsqueeze(2)) @ frames.transpose(-1, -2)  # (B, N, k, 3): (s, t, z)
    if radius is None:
        radius = float(local.norm(dim=-1).amax(-1).mean())
    check_count(grid_size, "grid_size")
    sigma = 2 * radius / grid_size if sigma is None else sigma
    signals = local[..., 2:]
    if features is not None:
        if features.dim() != 3 or features.shape[:2] != points.shape[:2]:
            raise ValueError(f"features must have shape {tuple(points.shape[:2])} + (C,), got {tuple(features.shape)}")
        signals = torch.cat([signals, group(features, idx)], -1)  # (B, N, k, 1 + C)
    axis = (torch.arange(grid_size, dtype=points.dtype, device=points.device) + 0.5) * (2 * radius / grid_size) - radius
    # pixel (i, j) sits at (s, t) = (axis[j], axis[i]): rows follow t, columns follow s
    t_grid, s_grid = torch.meshgrid(axis, axis, indexing="ij")
    pixels = torch.stack([s_grid, t_grid], -1).reshape(-1, 2)  # (G*G, 2)
    d2 = ((local[..., None, :2] - pixels) ** 2).sum(-1)  # (B, N, k, G*G)
    w = torch.exp(-d2 / (2 * sigma ** 2))
    total = w.sum(2)  # (B, N, G*G)
    image = torch.einsum("bnkg,bnkc->bncg", w, signals) / total.clamp_min(1e-12).unsqueeze(2)
    image = torch.where(total.unsqueeze(2) > 1e-6, image, torch.zeros_like(image))
    return image.reshape(*image.shape[:3], grid_size, grid_size)


def tangent_convolution(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    r"""Convolve every tangent image with a ``G x G`` filter: the output at its centre point.

    .. math::  y_o(p) = b_o + \sum_{c, i, j} W_{o c i j}\, I_{c i j}(p)

    Args:
        images: ``(B, N, C, G, G)`` from :func:`tangent_images`.
        weight: ``(C_out, C, G, G)``.
        bias: optional ``(C_out,)``.

    Returns:
        ``(B, N, C_out)``.
    """
    if images.dim() != 5 or weight.dim() != 4 or weight.shape[1:] != images.shape[2:]:
        raise ValueError(f"images (B, N, C, G, G) and weight (C_out, C, G, G) disagree: {tuple(images.shape)} "
                         f"and {tuple(weight.shape)}")
    B, N = images.shape[:2]
    return F.conv2d(images.flatten(0, 1), weight, bias).view(B, N, -1)
