r"""Sparse voxel sets and the kernel maps of sparse convolution ("store only the occupied grids").

A :class:`SparseCoords` holds the occupied sites of a batch of grids as integer coordinates
``(batch, z, y, x)`` (``voxels`` module convention) with one feature row per site. A sparse
convolution never touches empty cells: for each kernel offset :math:`\delta` it needs the
pairs (input row, output row) whose sites differ by :math:`\delta`, its **kernel map**,

.. math::  y_j = \sum_{\delta} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta\, x_i

(Graham et al., "3D semantic segmentation with submanifold sparse convolutional networks",
CVPR 2018; Choy et al., MinkowskiEngine, CVPR 2019). Submanifold convolution keeps the input
sites as outputs (:func:`kernel_map`); strided convolution outputs the coarser sites
``floor(c / stride)`` and its transpose goes back with the same pairs swapped
(:func:`strided_kernel_map`).

The hash table from coordinates to rows is a sorted tensor of packed ``int64`` keys searched
with :func:`torch.searchsorted` (vectorised, any device; see :mod:`coursekit.geometry.octree`
for why not a ``dict``). Packing: 15 bits of batch, then 16 bits each for ``z + 2**15``,
``y + 2**15``, ``x + 2**15``, so coordinates may range over ``[-32768, 32767]``.

Offsets are ``(dz, dy, dx)`` in the row-major order of a ``(k, k, k)`` kernel, so offset
number ``o`` pairs with ``weight.flatten(2)[:, :, o]`` of a ``Conv3d`` weight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .validate import check_count
from .octree import sorted_lookup
from .validate import check_points
from .voxels import Bounds, _check_grid, cell_indices

_COORD_BITS = 16
_COORD_SHIFT = 1 << (_COORD_BITS - 1)
_MAX_BATCH = 1 << 15


def pack_coords(coords: torch.Tensor) -> torch.Tensor:
    r"""Pack ``(..., 4)`` ``int64`` ``(batch, z, y, x)`` coordinates into ``(...)`` ``int64`` keys.

    .. math::  \text{key} = b \cdot 2^{48} + (z + 2^{15}) \cdot 2^{32} + (y + 2^{15}) \cdot 2^{16} + (x + 2^{15})

    The packing is monotone in ``(b, z, y, x)`` lexicographic order.
    """
    shifted = coords[..., 1:] + _COORD_SHIFT
    return (coords[..., 0] << 3 * _COORD_BITS) | (shifted[..., 0] << 2 * _COORD_BITS) \
        | (shifted[..., 1] << _COORD_BITS) | shifted[..., 2]


def _check_coords(coords: torch.Tensor) -> None:
    if not isinstance(coords, torch.Tensor) or coords.dim() != 2 or coords.shape[-1] != 4:
        raise ValueError(f"coords must have shape (N, 4) = (batch, z, y, x), got {tuple(getattr(coords, 'shape', ()))}")
    if coords.dtype != torch.int64:
        raise TypeError(f"coords must be int64, got {coords.dtype}")
    if coords.numel():
        if int(coords[:, 0].min()) < 0 or int(coords[:, 0].max()) >= _MAX_BATCH:
            raise ValueError(f"batch indices must lie in [0, {_MAX_BATCH})")
        if int(coords[:, 1:].min()) < -_COORD_SHIFT or int(coords[:, 1:].max()) >= _COORD_SHIFT:
            raise ValueError(f"spatial coordinates must lie in [{-_COORD_SHIFT}, {_COORD_SHIFT})")


@dataclass
class SparseCoords:
    """Occupied sites ``(N, 4)`` ``(batch, z, y, x)`` with features ``(N, C)``, and a coordinate -> row table.

    Attributes:
        coords: ``(N, 4)`` ``int64`` unique sites.
        features: ``(N, C)`` one feature row per site.
        keys: ``(N,)`` sorted packed keys (the hash table), computed on construction.
        order: ``(N,)`` row of each sorted key.
    """

    coords: torch.Tensor
    features: torch.Tensor
    keys: torch.Tensor = field(init=False, repr=False)
    order: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_coords(self.coords)
        if not isinstance(self.features, torch.Tensor) or self.features.dim() != 2 \
                or self.features.shape[0] != self.coords.shape[0]:
            raise ValueError(f"features must have shape (N, C) with N = {self.coords.shape[0]}, "
                             f"got {tuple(getattr(self.features, 'shape', ()))}")
        self.keys, self.order = pack_coords(self.coords).sort()
        if self.keys.numel() > 1 and (self.keys[1:] == self.keys[:-1]).any():
            raise ValueError("coords contain duplicate sites")

    def __len__(self) -> int:
        return self.coords.shape[0]

    @property
    def batch_size(self) -> int:
        """``1 + `` the largest batch index (0 for an empty set)."""
        return int(self.coords[:, 0].max()) + 1 if len(self) else 0

    def lookup(self, coords: torch.Tensor) -> torch.Tensor:
        """Rows of ``(..., 4)`` sites (``-1`` where not occupied)."""
        inside = ((coords[..., 1:] >= -_COORD_SHIFT) & (coords[..., 1:] < _COORD_SHIFT)).all(-1)
        pos = sorted_lookup(self.keys, pack_coords(coords.clamp(-_COORD_SHIFT, _COORD_SHIFT - 1)))
        rows = torch.where(pos >= 0, self.order[pos.clamp_min(0)], pos) if len(self) else pos
        return torch.where(inside, rows, torch.full_like(rows, -1))

    @classmethod
    def from_dense(cls, dense: torch.Tensor, mask: torch.Tensor | None = None) -> "SparseCoords":
        """The sites of a dense ``(B, C, D, H, W)`` grid where any channel is non-zero (or where ``mask`` ``(B, D, H, W)`` is true)."""
        _check_grid(dense, "dense")
        if mask is None:
            mask = (dense != 0).any(1)
        elif mask.shape != (dense.shape[0], *dense.shape[2:]):
            raise ValueError(f"mask must have shape {(dense.shape[0], *dense.shape[2:])}, got {tuple(mask.shape)}")
        coords = torch.nonzero(mask)
        return cls(coords, dense.permute(0, 2, 3, 4, 1)[mask])

    def to_dense(self, spatial_shape: tuple[int, int, int] | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Scatter into a dense ``(B, C, D, H, W)`` grid (zeros elsewhere); sites must be non-negative.

        Args:
            spatial_shape: ``(D, H, W)``; default: just large enough for every site.
            batch_size: ``B``; default :attr:`batch_size`.
        """
        if len(self) and int(self.coords[:, 1:].min()) < 0:
            raise ValueError("to_dense needs non-negative coordinates")
        if spatial_shape is None:
            spatial_shape = tuple((self.coords[:, 1:].amax(0) + 1).tolist()) if len(self) else (0, 0, 0)
        batch_size = self.batch_size if batch_size is None else batch_size
        if len(self) and ((self.coords[:, 1:] >= torch.tensor(spatial_shape, device=self.coords.device)).any()
                          or self.batch_size > batch_size):
            raise ValueError(f"sites exceed batch_size {batch_size} or spatial_shape {tuple(spatial_shape)}")
        dense = self.features.new_zeros(batch_size, *spatial_shape, self.features.shape[1])
        b, z, y, x = self.coords.unbind(-1)
        dense[b, z, y, x] = self.features
        return dense.permute(0, 4, 1, 2, 3)


class KernelMapEntry(NamedTuple):
    """The pairs of one kernel offset: ``out[out_idx] += W[offset] @ in[in_idx]``."""

    offset: torch.Tensor  # (3,) int64 (dz, dy, dx), in kernel-index units
    in_idx: torch.Tensor  # (P,) int64 rows of the input
    out_idx: torch.Tensor  # (P,) int64 rows of the output


def kernel_offsets(kernel_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    r"""``(k^3, 3)`` ``int64`` offsets :math:`\{0..k-1\}^3 - \lfloor (k-1)/2 \rfloor` in row-major ``(dz, dy, dx)`` order."""
    check_count(kernel_size, "kernel_size")
    r = torch.arange(kernel_size, device=device) - (kernel_size - 1) // 2
    return torch.cartesian_prod(r, r, r)


def _maps(inputs: SparseCoords, out_coords: torch.Tensor, offsets: torch.Tensor, scale: int, step: int) -> list[KernelMapEntry]:
    """Pairs with ``input site = scale * output site + step * offset`` (same batch)."""
    base = out_coords.clone()
    base[:, 1:] *= scale
    shift = torch.cat([torch.zeros(len(offsets), 1, dtype=torch.int64, device=offsets.device), offsets * step], 1)
    rows = inputs.lookup(base.unsqueeze(0) + shift.unsqueeze(1))  # (O, M)
    out = []
    for o, offset in enumerate(offsets):
        found = torch.nonzero(rows[o] >= 0).flatten()
        out.append(KernelMapEntry(offset, rows[o, found], found))
    return out


def kernel_map(sites: SparseCoords, kernel_size: int = 3, dilation: int = 1) -> list[KernelMapEntry]:
    r"""Kernel map of a submanifold sparse convolution: outputs exactly at the input sites.

    .. math::  \mathcal{M}_\delta = \{(i, j) : c_i = c_j + \text{dilation} \cdot \delta\}

    Equals a dense ``Conv3d(kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)``
    read at the occupied sites (the tests check this), without the "dilation" of the occupied
    set that a dense convolution causes.

    Args:
        sites: the input (and output) sites.
        kernel_size: odd kernel size ``k``.
        dilation: spacing of the kernel taps.

    Returns:
        ``k**3`` :class:`KernelMapEntry` ``(offset, in_idx, out_idx)``, offsets in row-major
        ``(dz, dy, dx)`` order; the centre offset pairs every site with itself.
    """
    check_count(kernel_size, "kernel_size")
    check_count(dilation, "dilation")
    if kernel_size % 2 == 0:
        raise ValueError(f"a submanifold kernel must have odd size, got {kernel_size}")
    return _maps(sites, sites.coords, kernel_offsets(kernel_size, sites.coords.device), scale=1, step=dilation)


def strided_kernel_map(sites: SparseCoords, stride: int = 2,
                       kernel_size: int | None = None) -> tuple[torch.Tensor, list[KernelMapEntry]]:
    r"""Output sites and kernel map of a strided sparse convolution (and, swapped, of its transpose).

    .. math::  \text{out} = \operatorname{unique}\{(b, \lfloor c / s \rfloor)\}, \qquad
               \mathcal{M}_\delta = \{(i, j) : c_i = s\, o_j + \delta\}

    Equals a dense ``Conv3d(kernel_size, stride=s, padding=(kernel_size - 1) // 2)`` read at the
    output sites. The transposed convolution (coarse -> fine, ``ConvTranspose3d`` with the same
    arguments, read at the original sites) uses the same entries with ``in_idx`` and
    ``out_idx`` exchanged: ``fine[in_idx] += W[offset]^T coarse[out_idx]``.

    Args:
        sites: the fine input sites.
        stride: ``s``.
        kernel_size: default ``s`` (non-overlapping blocks, each fine site in exactly one pair).

    Returns:
        ``(out_coords, maps)``: the ``(M, 4)`` coarse sites in sorted order and ``k**3``
        :class:`KernelMapEntry` with ``in_idx`` rows of ``sites`` and ``out_idx`` rows of ``out_coords``.
    """
    check_count(stride, "stride")
    kernel_size = stride if kernel_size is None else kernel_size
    check_count(kernel_size, "kernel_size")
    coarse = sites.coords.clone()
    coarse[:, 1:] = torch.div(coarse[:, 1:], stride, rounding_mode="floor")
    out_coords = torch.unique(coarse, dim=0)
    return out_coords, _maps(sites, out_coords, kernel_offsets(kernel_size, sites.coords.device), scale=stride, step=1)


def _kernel_map_naive(coords: torch.Tensor, kernel_size: int = 3, dilation: int = 1) -> list[tuple[tuple, list]]:
    """Every (input, output) pair by a double loop over sites: ``[(offset, [(i, j), ...]), ...]``."""
    table = {tuple(c): i for i, c in enumerate(coords.tolist())}
    r = range(-(kernel_size // 2), kernel_size // 2 + 1)
    out = []
    for dz, dy, dx in itertools.product(r, r, r):
        pairs = []
        for j, (b, z, y, x) in enumerate(coords.tolist()):
            i = table.get((b, z + dz * dilation, y + dy * dilation, x + dx * dilation))
            if i is not None:
                pairs.append((i, j))
        out.append(((dz, dy, dx), pairs))
    return out


def neighbour_table_conv(features: torch.Tensor, neighbours: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, *, name: str = "features", rows: str = "n") -> torch.Tensor:
    r"""Convolution over a neighbour table (``-1`` = empty neighbour, read as zero): gather + one GEMM.

    .. math::  y_j = b + \sum_{t} W_t^\top x_{\mathcal{N}_t(j)}, \qquad x_{-1} := 0

    The table layout of a kernel map (row ``j``, column ``t``: the input row at offset ``t``),
    shared by the octree (O-CNN's "octree2col") and the permutohedral lattice convolutions.

    Args:
        features: ``(n, C_in)``.
        neighbours: ``(n, K)`` ``int64`` (``-1`` = empty).
        weight: ``(K, C_in, C_out)``.
        bias: optional ``(C_out,)``.
        name, rows: how the caller calls ``features`` and ``n`` (for the error message).

    Returns:
        ``(n, C_out)``.
    """
    n, c_in = features.shape
    if neighbours.shape != (n, weight.shape[0]) or weight.shape[1] != c_in:
        raise ValueError(f"{name} {tuple(features.shape)}, neighbours {tuple(neighbours.shape)} and weight "
                         f"{tuple(weight.shape)} disagree: need ({rows}, C_in), ({rows}, K) and (K, C_in, C_out)")
    padded = torch.cat([features, features.new_zeros(1, c_in)])
    columns = padded[torch.where(neighbours >= 0, neighbours, n)]  # (n, K, C_in)
    out = columns.reshape(n, -1) @ weight.reshape(-1, weight.shape[2])
    return out if bias is None else out + bias


def sparse_quantize(points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0),
                    features: torch.Tensor | None = None) -> tuple[SparseCoords, torch.Tensor]:
    r"""Voxelise point clouds into a sparse set: one site per occupied cell, features averaged.

    .. math::  f_v = \frac{1}{|P_v|} \sum_{p \in P_v} f_p, \qquad P_v = \{p : \text{cell}(p) = v\}

    Args:
        points: ``(B, N, 3)`` clouds (points outside ``bounds`` are dropped).
        resolution: cells per axis ``R``.
        bounds: ``(lo, hi)`` of the cube.
        features: ``(B, N, C)`` point features; default a single channel of ones (occupancy).

    Returns:
        ``(sites, point_rows)``: the :class:`SparseCoords` (sorted by ``(batch, z, y, x)``) and
        the ``(B, N)`` ``int64`` site row of every point (``-1`` if dropped), to carry site
        features back to the points.
    """
    check_points(points)
    B, N, _ = points.shape
    if features is None:
        features = points.new_ones(B, N, 1)
    elif not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[:2] != (B, N):
        raise ValueError(f"features must have shape ({B}, {N}, C), got {tuple(getattr(features, 'shape', ()))}")
    cells, inside = cell_indices(points, resolution, bounds)
    batch = torch.arange(B, device=points.device).view(B, 1, 1).expand(B, N, 1)
    coords = torch.cat([batch, cells], -1)[inside]
    unique, inverse = torch.unique(coords, dim=0, return_inverse=True)
    sums = features.new_zeros(len(unique), features.shape[-1]).index_add_(0, inverse, features[inside])
    counts = torch.bincount(inverse, minlength=len(unique)).to(features.dtype).unsqueeze(1)
    point_rows = torch.full((B, N), -1, dtype=torch.int64, device=points.device)
    point_rows[inside] = inverse
    return SparseCoords(unique, sums / counts), point_rows
