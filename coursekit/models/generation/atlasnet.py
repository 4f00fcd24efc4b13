r"""AtlasNet: K learned parametrisations of the unit square (Groueix, Fisher, Kim, Russell, Aubry,
"AtlasNet: A Papier-Mâché Approach to Learning 3D Surface Generation", CVPR 2018).

A surface is covered by ``K`` charts. Patch ``k`` is an MLP :math:`\varphi_k` that maps a
point :math:`u` of the unit square, concatenated with the shape code :math:`z`, to 3D:

.. math::  \hat S = \bigcup_{k=1}^{K} \varphi_k\big(z, [0, 1]^2\big), \qquad
           \varphi_k(z, u) = \mathrm{MLP}_k([z, u])

Training samples fresh random :math:`u` in every patch at every step (so the whole square is
learned, not a fixed grid) and minimises the Chamfer distance (the ``"atlasnet"`` convention of
:mod:`coursekit.metrics.chamfer`: mean squared distances each way, summed). A **mesh** comes for
free: triangulate the square once (:func:`square_triangulation`), map its vertices through every
patch, keep the connectivity (:meth:`AtlasNet.mesh`). The patches may overlap or leave seams,
the known price of the papier-mâché.

Kept: K MLP patches on the unit square with the codeword concatenated, ``tanh`` output layer,
random sampling in training and a regular grid for meshing. Changed: widths from :data:`SIZES`
(paper: ResNet-18 image encoder, 4-layer MLPs of 1024/512/256/128 units, 25 patches).
"""

from __future__ import annotations

import torch
from torch import nn

from ... import runtime
from .encoders import ImageEncoder, PointEncoder

__all__ = ["SIZES", "square_triangulation", "AtlasNet"]

SIZES = {
    "fast": dict(latent=64, n_patches=4, hidden=(64, 64), image_widths=(8, 16, 32, 64), encoder_widths=(32, 64, 128)),
    "cpu": dict(latent=128, n_patches=8, hidden=(128, 128, 64), image_widths=(16, 32, 64, 128), encoder_widths=(64, 128, 256)),
    "gpu": dict(latent=512, n_patches=25, hidden=(512, 256, 128), image_widths=(32, 64, 128, 256), encoder_widths=(64, 128, 512)),
}
"""Widths per profile: code size, number of patches ``K``, each patch MLP's hidden layers, encoders."""


def square_triangulation(m: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A regular triangulation of the unit square: ``m x m`` vertices, two triangles per cell.

    Returns:
        ``uv (m * m, 2)`` in ``[0, 1]^2`` (row-major, ``u`` fastest) and ``faces (2 (m-1)^2, 3)`` int64.
    """
    if m < 2:
        raise ValueError(f"the triangulation needs m >= 2 vertices per side, got {m}")
    t = torch.linspace(0, 1, m, dtype=dtype)
    v, u = torch.meshgrid(t, t, indexing="ij")
    uv = torch.stack([u.reshape(-1), v.reshape(-1)], -1)
    i, j = torch.meshgrid(torch.arange(m - 1), torch.arange(m - 1), indexing="ij")
    a = (i * m + j).reshape(-1)
    b, c, d = a + 1, a + m, a + m + 1
    faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)])
    return uv, faces


class AtlasNet(nn.Module):
    r"""Encoder -> code -> ``K`` patch MLPs, each a map of the unit square into 3D.

    .. math::  \varphi_k(z, u) = \tanh\big(\mathrm{MLP}_k([z, u])\big), \qquad u \in [0, 1]^2

    Args:
        condition: ``"image"`` (single-view reconstruction) or ``"points"`` (completion / auto-encoding).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        in_channels: image channels.
        n_points: default number of points of :meth:`forward`.

    Shapes:
        ``forward(x, n_points, generator)``: ``(B, C, H, W)`` or ``(B, N, 3)`` ``-> (B, n_points, 3)``
        (``n_points`` split evenly over the patches, random ``u``).
    """

    def __init__(self, condition: str = "image", sizes: dict | None = None, in_channels: int = 1, n_points: int = 1024):
        super().__init__()
        s = dict(sizes or runtime.pick(SIZES))
        self.n_points = n_points
        if condition == "image":
            self.encoder = ImageEncoder(in_channels, s["latent"], s["image_widths"])
        elif condition == "points":
            self.encoder = PointEncoder(s["latent"], s["encoder_widths"])
        else:
            raise ValueError(f"condition must be 'image' or 'points', got {condition!r}")
        self.patches = nn.ModuleList()
        for _ in range(s["n_patches"]):
            layers, c = [], s["latent"] + 2
            for h in s["hidden"]:
                layers += [nn.Linear(c, h), nn.ReLU()]
                c = h
            layers += [nn.Linear(c, 3), nn.Tanh()]
            self.patches.append(nn.Sequential(*layers))
        self.n_patches = s["n_patches"]

    def decode(self, codeword: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Map ``uv (B, K, M, 2)`` (or ``(M, 2)``, shared) through the patches: ``(B, K, M, 3)``."""
        B = codeword.shape[0]
        if uv.dim() == 2:
            uv = uv.expand(B, self.n_patches, *uv.shape)
        if uv.shape[:2] != (B, self.n_patches) or uv.shape[-1] != 2:
            raise ValueError(f"uv must be (M, 2) or ({B}, {self.n_patches}, M, 2), got {tuple(uv.shape)}")
        z = codeword[:, None, :].expand(B, uv.shape[2], codeword.shape[1])
        return torch.stack([patch(torch.cat([z, uv[:, k]], -1)) for k, patch in enumerate(self.patches)], 1)

    def forward(self, x: torch.Tensor, n_points: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.encoder(x)
        per_patch = max(1, (n_points or self.n_points) // self.n_patches)
        uv = torch.rand(z.shape[0], self.n_patches, per_patch, 2, generator=generator).to(z)
        return self.decode(z, uv).reshape(z.shape[0], -1, 3)

    def mesh(self, x: torch.Tensor, m: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The predicted surface as a triangle mesh: every patch maps the square's triangulation.

        Returns:
            ``vertices (B, K m^2, 3)`` and ``faces (K \cdot 2(m-1)^2, 3)`` int64 (shared by the batch).
        """
        uv, faces = square_triangulation(m)
        v = self.decode(self.encoder(x), uv.to(x.device))
        offsets = torch.arange(self.n_patches, device=x.device)[:, None, None] * (m * m)
        return v.reshape(v.shape[0], -1, 3), (faces.to(x.device)[None] + offsets).reshape(-1, 3)
