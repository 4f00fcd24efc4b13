r"""Octree generation (OGN-style): a coarse grid refined level by level, only where the surface is.

Tatarchenko, Dosovitskiy, Brox, "Octree Generating Networks: Efficient Convolutional
Architectures for High-resolution 3D Outputs", ICCV 2017 — the slide's "avoid
:math:`\mathcal O(n^3)` reconstruction: generate the octree layer by layer".

Every cell of level :math:`\ell` (side :math:`2^{-\ell}` of the cube) is classified

.. math::  y_c = \begin{cases} \text{empty} & \text{no finest voxel of } c \text{ is occupied} \\
                              \text{filled} & \text{every finest voxel of } c \text{ is occupied} \\
                              \text{mixed} & \text{otherwise} \end{cases}

(:func:`octree_labels`). The network predicts a dense ``base^3`` grid of cells from the image
code, then repeatedly takes the **mixed** cells only, gives each of them 8 children (a 2x2x2
transposed convolution applied at those cells: one linear map from the parent's feature to 8
child features) and classifies the children. Empty and filled cells stop: their whole block
is known. At the finest level a mixed cell counts as filled. The loss is the cross-entropy of
the three-way labels at every level, over the cells that exist there:

.. math::  \mathcal L = \sum_{\ell} \frac{1}{|C_\ell|} \sum_{c \in C_\ell} -\log p_c(y_c)

In training the tree's structure is the ground truth's (OGN's "prop known": children of the
*true* mixed cells); at inference the predicted mixed cells are expanded.

**Memory against resolution**: a dense decoder's activations grow as :math:`R^3`; the octree's
cells grow as the surface, about :math:`R^2` (:func:`activation_bytes` measures both on one
forward pass; ``benchmarks/generation_models.py`` prints the table).

Kept: three-way cell labels, level-by-level refinement of mixed cells only, per-level losses,
prop-known training. Changed: children are computed from their parent alone (OGN's
convolutions also mix neighbouring cells of a level, through a hash table of the octree), and
the sizes are small (:data:`SIZES`; the paper reaches 512^3 cells).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ... import runtime
from .encoders import ImageEncoder

__all__ = ["SIZES", "EMPTY", "FILLED", "MIXED", "octree_labels", "OctreeLevel", "OGN", "ogn_loss",
           "DenseVoxelDecoder", "activation_bytes"]

EMPTY, FILLED, MIXED = 0, 1, 2
"""Cell classes of an octree level."""

SIZES = {
    "fast": dict(latent=64, base=4, levels=3, channels=32, image_widths=(8, 16, 32, 64)),
    "cpu": dict(latent=128, base=4, levels=4, channels=64, image_widths=(16, 32, 64, 128)),
    "gpu": dict(latent=256, base=8, levels=4, channels=128, image_widths=(32, 64, 128, 256)),
}
"""Per profile: code size, base grid side, number of levels (finest resolution ``base * 2**(levels-1)``),
cell feature channels, image encoder widths."""


def octree_labels(occupancy: torch.Tensor, base: int) -> list[torch.Tensor]:
    r"""Empty / filled / mixed labels of every level from a dense occupancy grid.

    .. math::  y_c = \text{empty if } \max_{v \in c} o_v = 0,\quad \text{filled if } \min_{v \in c} o_v = 1,
               \quad \text{mixed otherwise}

    Args:
        occupancy: ``(B, R, R, R)`` bool or {0, 1} grid, ``R = base * 2**k``.
        base: side of the coarsest level.

    Returns:
        ``[(B, base, base, base), (B, 2 base, ...), ..., (B, R, R, R)]`` int64 labels (the finest
        level has no mixed cells).
    """
    if occupancy.dim() != 4 or len(set(occupancy.shape[1:])) != 1:
        raise ValueError(f"occupancy must have shape (B, R, R, R), got {tuple(occupancy.shape)}")
    R = occupancy.shape[1]
    if R % base or (R // base) & (R // base - 1):
        raise ValueError(f"the resolution {R} must be base ({base}) times a power of two")
    occ = occupancy.float()[:, None]
    labels, r = [], base
    while r <= R:
        k = R // r
        hi = F.max_pool3d(occ, k)[:, 0]
        lo = -F.max_pool3d(-occ, k)[:, 0]
        labels.append(torch.where(hi == 0, EMPTY, torch.where(lo == 1, FILLED, MIXED)).long())
        r *= 2
    return labels


class OctreeLevel(NamedTuple):
    """The cells that exist at one level: ``cells (n, 4)`` int64 ``(batch, z, y, x)`` and ``logits (n, 3)``."""

    cells: torch.Tensor
    logits: torch.Tensor


_OCTANTS = torch.tensor([[z, y, x] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=torch.int64)


class OGN(nn.Module):
    r"""Image -> octree of empty / filled / mixed cells, refined only at mixed cells.

    .. math::  h_{\text{child}(c, o)} = \mathrm{ReLU}(W_o h_c + b_o), \quad o \in \{0..7\}, \qquad
               p_c = \mathrm{softmax}(U h_c)

    Args:
        sizes: a :data:`SIZES` entry (default: the active profile's).
        in_channels: image channels.

    Shapes:
        ``forward(images (B, C, H, W), labels=None) -> list of OctreeLevel`` (coarse to fine);
        with ``labels`` (from :func:`octree_labels`) the true mixed cells are expanded (training).
    """

    def __init__(self, sizes: dict | None = None, in_channels: int = 1):
        super().__init__()
        s = dict(sizes or runtime.pick(SIZES))
        self.base, self.levels, self.channels = s["base"], s["levels"], s["channels"]
        self.encoder = ImageEncoder(in_channels, s["latent"], s["image_widths"])
        self.seed = nn.Linear(s["latent"], self.channels * self.base ** 3)
        self.base_conv = nn.Conv3d(self.channels, self.channels, 3, padding=1)
        self.children_of = nn.ModuleList([nn.Linear(self.channels, 8 * self.channels) for _ in range(self.levels - 1)])
        self.classify = nn.ModuleList([nn.Linear(self.channels, 3) for _ in range(self.levels)])

    @property
    def resolution(self) -> int:
        """Cells per axis at the finest level."""
        return self.base * 2 ** (self.levels - 1)

    def forward(self, images: torch.Tensor, labels: list[torch.Tensor] | None = None) -> list[OctreeLevel]:
        B, b, C = images.shape[0], self.base, self.channels
        grid = F.relu(self.base_conv(F.relu(self.seed(self.encoder(images))).reshape(B, C, b, b, b)))
        h = grid.permute(0, 2, 3, 4, 1).reshape(-1, C)
        idx = torch.arange(b, device=images.device)
        bz, z, y, x = torch.meshgrid(torch.arange(B, device=images.device), idx, idx, idx, indexing="ij")
        cells = torch.stack([bz, z, y, x], -1).reshape(-1, 4)
        out = [OctreeLevel(cells, self.classify[0](h))]
        for level in range(1, self.levels):
            prev = out[-1]
            if labels is not None:
                lab = labels[level - 1]
                expand = lab[prev.cells[:, 0], prev.cells[:, 1], prev.cells[:, 2], prev.cells[:, 3]] == MIXED
            else:
                expand = prev.logits.argmax(1) == MIXED
            parent_h, parent_cells = h[expand], prev.cells[expand]
            h = F.relu(self.children_of[level - 1](parent_h)).reshape(-1, C)
            octants = _OCTANTS.to(images.device)
            cells = torch.cat([parent_cells[:, None, :1].expand(-1, 8, 1),
                               2 * parent_cells[:, None, 1:] + octants[None]], -1).reshape(-1, 4)
            out.append(OctreeLevel(cells, self.classify[level](h)))
        return out

    def occupancy(self, levels: list[OctreeLevel], batch: int) -> torch.Tensor:
        """Dense ``(B, R, R, R)`` bool occupancy of a predicted octree (filled cells fill their block;
        mixed cells of the finest level count as filled)."""
        R = self.resolution
        occ = torch.zeros(batch, R, R, R, dtype=torch.bool, device=levels[0].cells.device)
        for level, (cells, logits) in enumerate(levels):
            cls = logits.argmax(1)
            keep = (cls == FILLED) | ((cls == MIXED) & (level == self.levels - 1))
            r = self.base * 2 ** level
            coarse = torch.zeros(batch, r, r, r, device=occ.device)
            c = cells[keep]
            coarse[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = 1
            occ |= F.interpolate(coarse[:, None], size=(R, R, R), mode="nearest")[:, 0] > 0
        return occ


def ogn_loss(levels: list[OctreeLevel], labels: list[torch.Tensor]) -> torch.Tensor:
    r"""Sum over levels of the mean three-way cross-entropy of the cells present there.

    .. math::  \mathcal L = \sum_\ell \frac{1}{|C_\ell|} \sum_{c \in C_\ell} -\log p_c(y_c)
    """
    total = levels[0].logits.new_zeros(())
    for (cells, logits), lab in zip(levels, labels):
        if len(cells):
            total = total + F.cross_entropy(logits, lab[cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3]])
    return total


class DenseVoxelDecoder(nn.Module):
    r"""The dense 3D decoder OGN is compared with: linear to a ``base^3`` grid, then stride-2
    transposed convolutions up to ``R^3`` (3D-R2N2 / 3D-GAN style), one occupancy logit per voxel.

    .. math::  G_{k+1} = \mathrm{ReLU}(\mathrm{ConvT}_{4, s=2}(G_k)), \qquad o = \mathrm{Conv}_{1}(G_K)

    Args:
        latent: code size; resolution: ``R = base * 2**k``; channels: width at the base grid
            (halved at every upsampling, at least 8); base: side of the first grid.

    Shapes:
        ``(B, latent) -> (B, R, R, R)`` logits.
    """

    def __init__(self, latent: int, resolution: int, channels: int = 64, base: int = 4):
        super().__init__()
        if resolution % base or (resolution // base) & (resolution // base - 1):
            raise ValueError(f"resolution {resolution} must be base ({base}) times a power of two")
        self.seed = nn.Linear(latent, channels * base ** 3)
        ups, c, r = [], channels, base
        while r < resolution:
            ups += [nn.ConvTranspose3d(c, max(8, c // 2), 4, stride=2, padding=1), nn.ReLU()]
            c, r = max(8, c // 2), r * 2
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv3d(c, 1, 1)
        self.base, self.channels = base, channels

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.seed(code)).reshape(code.shape[0], self.channels, self.base, self.base, self.base)
        return self.out(self.up(g))[:, 0]


def activation_bytes(module: nn.Module, *inputs, **kwargs) -> int:
    """Bytes of every leaf layer's output in one forward pass (what back-propagation keeps alive).

    Args:
        module: any model; inputs, kwargs: its forward arguments.

    Returns:
        the summed ``numel * element_size`` of the tensors the leaf modules return.
    """
    total = [0]

    def hook(_, __, output):
        for o in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(o, torch.Tensor):
                total[0] += o.numel() * o.element_size()

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return total[0]
