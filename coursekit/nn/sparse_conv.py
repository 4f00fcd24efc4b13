r"""Sparse 3-D convolution: gather, GEMM, scatter over kernel maps ("constrain the computation near the surface").

A sparse convolution computes a dense ``Conv3d`` only where it matters. For every kernel
offset :math:`\delta` the kernel map :math:`\mathcal{M}_\delta` (built once per set of sites by
:mod:`coursekit.geometry.sparse`) lists the pairs (input row ``i``, output row ``j``) whose sites
differ by :math:`\delta`; the layer then runs, offset by offset,

.. math::  y_j = b + \sum_{\delta} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta^\top x_i

as three steps: **gather** the rows ``x[in_idx]``, one **GEMM** with the ``(C_in, C_out)`` matrix
:math:`W_\delta`, **scatter-add** into ``y[out_idx]`` (Graham, Engelcke, van der Maaten,
"3D semantic segmentation with submanifold sparse convolutional networks", CVPR 2018;
Choy, Gwak, Savarese, "4D spatio-temporal ConvNets: Minkowski convolutional neural networks",
CVPR 2019). The work is proportional to the number of pairs, i.e. to the occupied sites,
not to the :math:`R^3` cells of the grid.

Three flavours, all sharing :func:`sparse_conv`:

* **submanifold** (:class:`SubmanifoldConv3d`): outputs exactly at the input sites, so the
  occupied set does not grow layer after layer (a dense convolution "dilates" a surface
  into a thick shell);
* **strided** (:class:`SparseConv3d`): outputs at the coarse sites :math:`\lfloor c / s \rfloor`;
* **transposed** (:class:`SparseConvTranspose3d`): coarse back to the fine sites, with the
  *same* kernel map as the strided convolution that produced the coarse sites, pairs swapped.

Convention
    Sites are ``(batch, z, y, x)`` integer coordinates (voxels module order); features are
    ``(N, C)``, one row per site. Weights are ``(K, C_in, C_out)`` with ``K = k**3`` offsets in
    the row-major ``(dz, dy, dx)`` order of :func:`~coursekit.geometry.sparse.kernel_offsets`;
    :func:`weight_from_conv3d` converts a dense ``Conv3d`` weight, so that the tests can prove
    "sparse conv == dense conv3d on the occupied sites".
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..geometry.validate import check_count
from ..geometry.sparse import KernelMapEntry, SparseCoords, kernel_map, sparse_quantize, strided_kernel_map
from ..geometry.voxels import Bounds

__all__ = [
    "SparseTensor",
    "sparse_conv",
    "weight_from_conv3d",
    "weight_from_conv_transpose3d",
    "SubmanifoldConv3d",
    "SparseConv3d",
    "SparseConvTranspose3d",
    "PerSite",
    "sparse_global_pool",
]


class SparseTensor:
    """Features on the occupied sites of a batch of grids, plus the kernel maps built for those sites.

    Every layer that keeps the sites (submanifold convolutions, batch norm, ReLU) returns a
    tensor sharing the same :class:`~coursekit.geometry.sparse.SparseCoords` and the same map
    ``cache``, so a kernel map is built once per resolution and reused by every layer there.
    A strided convolution stores its coarse sites and map in the fine tensor's cache, where
    the matching transposed convolution finds them again.

    Attributes:
        features: ``(N, C)`` one row per site.
        sites: the ``(N, 4)`` ``(batch, z, y, x)`` sites and their lookup table.
        stride: size of one site in cells of the finest grid (1, 2, 4, ...).
        cache: kernel maps already built for these sites.
    """

    def __init__(self, features: torch.Tensor, sites: SparseCoords, stride: int = 1, cache: dict | None = None):
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != len(sites):
            raise ValueError(f"features must have shape ({len(sites)}, C), got {tuple(getattr(features, 'shape', ()))}")
        self.features = features
        self.sites = sites
        self.stride = stride
        self.cache = {} if cache is None else cache

    @classmethod
    def from_points(cls, points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0),
                    features: torch.Tensor | None = None) -> "SparseTensor":
        """Voxelise ``(B, N, 3)`` clouds (features ``(B, N, C)`` averaged per cell, default a channel of ones)."""
        sites, _ = sparse_quantize(points, resolution, bounds, features)
        return cls(sites.features, sites)

    @classmethod
    def from_dense(cls, dense: torch.Tensor, mask: torch.Tensor | None = None) -> "SparseTensor":
        """The non-zero sites of a dense ``(B, C, D, H, W)`` grid (or those where ``mask (B, D, H, W)`` holds)."""
        sites = SparseCoords.from_dense(dense, mask)
        return cls(sites.features, sites)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def coords(self) -> torch.Tensor:
        """``(N, 4)`` ``int64`` ``(batch, z, y, x)`` sites."""
        return self.sites.coords

    def with_features(self, features: torch.Tensor) -> "SparseTensor":
        """The same sites (and map cache) carrying new ``(N, C')`` features."""
        return SparseTensor(features, self.sites, self.stride, self.cache)

    def submanifold_map(self, kernel_size: int, dilation: int = 1) -> list[KernelMapEntry]:
        """Kernel map of a submanifold convolution on these sites (built once, then cached)."""
        key = ("submanifold", kernel_size, dilation)
        if key not in self.cache:
            self.cache[key] = kernel_map(self.sites, kernel_size, dilation)
        return self.cache[key]

    def downsample_map(self, stride: int, kernel_size: int) -> tuple[SparseCoords, dict, list[KernelMapEntry]]:
        """Coarse sites, their (new) map cache and the strided kernel map from these sites (cached)."""
        key = ("strided", stride, kernel_size)
        if key not in self.cache:
            out_coords, maps = strided_kernel_map(self.sites, stride, kernel_size)
            coarse = SparseCoords(out_coords, self.features.new_zeros(len(out_coords), 0))
            self.cache[key] = (coarse, {}, maps)
        return self.cache[key]

    def to_dense(self, spatial_shape: tuple[int, int, int] | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Scatter into a dense ``(B, C, D, H, W)`` grid, zeros at empty cells (differentiable)."""
        return SparseCoords(self.coords, self.features).to_dense(spatial_shape, batch_size)

    def __repr__(self) -> str:
        return f"SparseTensor(sites={len(self)}, channels={self.features.shape[1]}, stride={self.stride})"


def sparse_conv(features: torch.Tensor, maps: list[KernelMapEntry], weight: torch.Tensor, n_out: int,
                bias: torch.Tensor | None = None, transpose: bool = False) -> torch.Tensor:
    r"""Gather-GEMM-scatter convolution over a kernel map.

    .. math::  y_j = b + \sum_{\delta} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta^\top x_i
               \qquad\text{(transposed: } y_i = b + \textstyle\sum_\delta \sum_{(i, j)} W_\delta^\top x_j \text{)}

    Args:
        features: ``(N_in, C_in)`` input rows.
        maps: one :class:`~coursekit.geometry.sparse.KernelMapEntry` per offset; ``in_idx`` rows
            of the input and ``out_idx`` rows of the output (swapped roles when ``transpose``).
        weight: ``(K, C_in, C_out)`` with ``K = len(maps)``.
        n_out: number of output rows.
        bias: optional ``(C_out,)``.
        transpose: read the map backwards (the transposed convolution of a strided map).

    Returns:
        ``(n_out, C_out)`` features, differentiable in ``features``, ``weight`` and ``bias``.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"features must have shape (N, C_in), got {tuple(getattr(features, 'shape', ()))}")
    if weight.dim() != 3 or weight.shape[0] != len(maps) or weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight must have shape ({len(maps)}, {features.shape[1]}, C_out) for {len(maps)} "
                         f"offsets and {features.shape[1]} input channels, got {tuple(weight.shape)}")
    out = features.new_zeros(n_out, weight.shape[2])
    for o, entry in enumerate(maps):
        src, dst = (entry.out_idx, entry.in_idx) if transpose else (entry.in_idx, entry.out_idx)
        if src.numel():
            out.index_add_(0, dst, features.index_select(0, src) @ weight[o])
    return out if bias is None else out + bias


def _sparse_conv_naive(features: torch.Tensor, pairs: list[tuple[tuple, list]], weight: torch.Tensor, n_out: int) -> torch.Tensor:
    """One pair at a time, from ``geometry.sparse._kernel_map_naive``'s ``[(offset, [(i, j), ...]), ...]``."""
    rows = [features.new_zeros(weight.shape[2]) for _ in range(n_out)]
    for o, (_, offset_pairs) in enumerate(pairs):
        for i, j in offset_pairs:
            rows[j] = rows[j] + features[i] @ weight[o]
    return torch.stack(rows) if rows else features.new_zeros(0, weight.shape[2])


def weight_from_conv3d(weight: torch.Tensor) -> torch.Tensor:
    r"""A dense ``Conv3d`` weight ``(C_out, C_in, k, k, k)`` as the sparse ``(k^3, C_in, C_out)`` layout: :math:`W_\delta = W[:, :, \delta]^\top`."""
    if weight.dim() != 5:
        raise ValueError(f"a Conv3d weight has shape (C_out, C_in, k, k, k), got {tuple(weight.shape)}")
    return weight.flatten(2).permute(2, 1, 0)


def weight_from_conv_transpose3d(weight: torch.Tensor) -> torch.Tensor:
    r"""A dense ``ConvTranspose3d`` weight ``(C_in, C_out, k, k, k)`` as the sparse ``(k^3, C_in, C_out)`` layout."""
    if weight.dim() != 5:
        raise ValueError(f"a ConvTranspose3d weight has shape (C_in, C_out, k, k, k), got {tuple(weight.shape)}")
    return weight.flatten(2).permute(2, 0, 1)


class _SparseConvBase(nn.Module):
    """Weight ``(k^3, C_in, C_out)`` and bias, initialised like ``nn.Conv3d`` (Kaiming uniform, fan-in ``C_in k^3``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool):
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"), (kernel_size, "kernel_size")):
            check_count(value, name)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.empty(kernel_size ** 3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        bound = 1 / math.sqrt(in_channels * kernel_size ** 3)  # nn.Conv3d's default: Kaiming uniform, a = sqrt(5)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _check(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} takes a SparseTensor, got {type(x).__name__}")
        if x.features.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channels, got {x.features.shape[1]}")

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class SubmanifoldConv3d(_SparseConvBase):
    r"""Submanifold sparse convolution: outputs exactly at the input sites.

    .. math::  y_j = b + \sum_{\delta \in \{-r..r\}^3} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta^\top x_i,
               \qquad \mathcal{M}_\delta = \{(i, j) : c_i = c_j + d\,\delta\}

    Equal to ``nn.Conv3d(C_in, C_out, k, padding=d * (k // 2), dilation=d)`` on the dense grid,
    read at the occupied sites (empty cells count as zero input).

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel_size: odd ``k``.
        dilation: ``d``.
        bias: add a learned bias.

    Shapes:
        ``SparseTensor`` with ``(N, C_in)`` features -> the same sites with ``(N, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, bias)
        if kernel_size % 2 == 0:
            raise ValueError(f"a submanifold convolution needs an odd kernel_size, got {kernel_size}")
        check_count(dilation, "dilation")
        self.dilation = dilation

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        maps = x.submanifold_map(self.kernel_size, self.dilation)
        return x.with_features(sparse_conv(x.features, maps, self.weight, len(x), self.bias))


class _StridedSparseConvBase(_SparseConvBase):
    """A sparse convolution between the sites at stride ``t`` and the coarse sites at ``t s`` (``kernel_size`` default ``s``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | None = None, stride: int = 2, bias: bool = True):
        check_count(stride, "stride")
        super().__init__(in_channels, out_channels, stride if kernel_size is None else kernel_size, bias)
        self.stride = stride

    def extra_repr(self) -> str:
        return super().extra_repr() + f", stride={self.stride}"


class SparseConv3d(_StridedSparseConvBase):
    r"""Strided sparse convolution: fine sites -> the coarse sites :math:`\lfloor c / s \rfloor`.

    .. math::  y_j = b + \sum_{\delta} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta^\top x_i,
               \qquad \mathcal{M}_\delta = \{(i, j) : c_i = s\, o_j + \delta\}

    Equal to ``nn.Conv3d(C_in, C_out, k, stride=s, padding=(k - 1) // 2)`` on the dense grid,
    read at the coarse sites. With ``k = s`` (default) every fine site feeds exactly one coarse
    site (MinkowskiEngine's and SparseConvNet's usual down-sampling).

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel_size: ``k`` (default ``stride``).
        stride: ``s``.
        bias: add a learned bias.

    Shapes:
        ``SparseTensor`` ``(N, C_in)`` at stride ``t`` -> ``(M, C_out)`` on the coarse sites, stride ``t s``.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        coarse, cache, maps = x.downsample_map(self.stride, self.kernel_size)
        features = sparse_conv(x.features, maps, self.weight, len(coarse), self.bias)
        return SparseTensor(features, coarse, x.stride * self.stride, cache)


class SparseConvTranspose3d(_StridedSparseConvBase):
    r"""Transposed strided sparse convolution: coarse sites back to the fine sites of ``like``.

    .. math::  y_i = b + \sum_{\delta} \sum_{(i, j) \in \mathcal{M}_\delta} W_\delta^\top x_j

    with the very map :math:`\mathcal{M}_\delta` of the :class:`SparseConv3d` (same ``stride`` and
    ``kernel_size``) that made the coarse sites from ``like``, so no new map is built ("sparse
    deconvolution" restores exactly the input sites). Equal to ``nn.ConvTranspose3d(C_in, C_out, k,
    stride=s, padding=p, output_padding=s + 2p - k)`` with ``p = (k - 1) // 2``, read at the fine
    sites; for ``k = s`` simply ``ConvTranspose3d(C_in, C_out, s, stride=s)``.

    Args:
        in_channels, out_channels, kernel_size, stride, bias: as :class:`SparseConv3d`
            (``C_in``, ``C_out``, ``k`` default ``stride``, ``s``, a learned bias).

    Shapes:
        ``x``: coarse ``SparseTensor`` ``(M, C_in)``; ``like``: the fine tensor it came from ->
        ``(N, C_out)`` on ``like``'s sites.
    """

    def forward(self, x: SparseTensor, like: SparseTensor) -> SparseTensor:
        self._check(x)
        coarse, _, maps = like.downsample_map(self.stride, self.kernel_size)
        if x.sites is not coarse and not torch.equal(x.coords, coarse.coords):
            raise ValueError("x is not on the coarse sites of `like`: pass the fine tensor that the matching "
                             f"SparseConv3d(stride={self.stride}, kernel_size={self.kernel_size}) down-sampled")
        features = sparse_conv(x.features, maps, self.weight, len(like), self.bias, transpose=True)
        return like.with_features(features)


class PerSite(nn.Module):
    """Apply a module to the ``(N, C)`` feature rows of a :class:`SparseTensor` (``BatchNorm1d``, ``ReLU``, ``Linear``).

    Shapes:
        ``SparseTensor`` ``(N, C)`` -> the same sites with ``module``'s output ``(N, C')``.
    """

    def __init__(self, module: nn.Module | Callable):
        super().__init__()
        self.module = module

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.with_features(self.module(x.features))


def sparse_global_pool(x: SparseTensor, mode: str = "max", batch_size: int | None = None) -> torch.Tensor:
    r"""Pool the sites of every grid of the batch into one vector.

    .. math::  g_b = \max_{i : \text{batch}(i) = b} x_i \quad\text{or}\quad
               \frac{1}{|\{i : \text{batch}(i) = b\}|} \sum_{i : \text{batch}(i) = b} x_i

    Args:
        x: ``SparseTensor`` with ``(N, C)`` features.
        mode: ``"max"`` or ``"mean"``.
        batch_size: ``B`` (default: largest batch index + 1); a grid without sites gives zeros.

    Returns:
        ``(B, C)``.
    """
    if mode not in ("max", "mean"):
        raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
    batch = x.coords[:, 0]
    B = x.sites.batch_size if batch_size is None else batch_size
    index = batch.unsqueeze(1).expand_as(x.features)
    out = x.features.new_zeros(B, x.features.shape[1])
    return out.scatter_reduce(0, index, x.features, reduce="amax" if mode == "max" else "mean", include_self=False)
