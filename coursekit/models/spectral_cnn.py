r"""Spectral CNN and synchronised spectral CNN on the k-NN graph of a point cloud.

**Spectral CNN** (Bruna, Zaremba, Szlam, LeCun, "Spectral networks and locally connected
networks on graphs", ICLR 2014). *Kept*: each layer filters every channel pair in the Laplacian
eigenbasis with smooth multipliers interpolated from a few learned values
(:class:`~coursekit.nn.spectral.SpectralConv`), then a point-wise ReLU. *Ours*: the multipliers
are functions of the relative eigenvalue :math:`\lambda / \lambda_K` (not of the eigenvector
index), which makes the filters meaningful on every shape despite the basis mismatch; no
graph coarsening (the paper pools with a multiscale clustering), a global max + mean pool and an
MLP head instead; the graph is the cloud's k-NN graph. *Scaled down*: points per cloud (the
dense eigensolver costs :math:`O(N^3)` per shape), eigenvectors, widths (:data:`SIZES`).

**Synchronised spectral CNN** (Yi, Su, Guo, Guibas, "SyncSpecCNN: synchronized spectral CNN for
3D shape segmentation", CVPR 2017), as a small documented model. *Kept*: a *spectral
transformer network* predicts, per shape, a linear map :math:`C` from the shape's own spectral
domain to one shared, learned ("synchronised") spectral domain; in that domain filters can be
defined per frequency index, because index ``i`` now means the same thing on every shape:

.. math::  \hat x = \Phi^\top x / N, \qquad \hat z = C\,\hat x, \qquad
           \hat y_{io} = \textstyle\sum_c W_{ico}\, \hat z_{ic}, \qquad y = \Phi\, C^\top \hat y

*Ours*: :math:`C = I + \Delta` with :math:`\Delta` regressed by an MLP from the spectral
coefficients of the point coordinates and the eigenvalues (zero at initialisation, so training
starts from the unsynchronised bases); :math:`C^\top` stands in for :math:`C^{-1}` going back
(exact when :math:`C` is orthogonal); eigenvector signs are first fixed by
:func:`~coursekit.nn.spectral.canonical_signs`. The paper's dilated spectral kernels and its
segmentation head are left out; the classification head is as for the spectral CNN.

Input: ``(B, N, 3)`` point clouds (only the first ``n_points`` are used: samples of a shape
are i.i.d., so this is a uniform subsample). From a world
:class:`~coursekit.data.world.shapes.Shape`: ``points, _, _ = shape.sample(n_points)``; for a
mesh graph instead of k-NN see :func:`~coursekit.nn.spectral.graph_laplacian` with
``geometry.graphs.mesh_edges(shape.faces)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.validate import check_points
from ..nn.spectral import SpectralConv, canonical_signs, knn_laplacian, laplacian_eigenbasis

#: Sizes per runtime profile: points used, eigenvectors ``K``, k-NN graph, channel widths, anchors.
SIZES = {
    "fast": dict(n_points=128, n_eigs=16, k=8, widths=(16, 32), n_anchors=6),
    "cpu": dict(n_points=256, n_eigs=32, k=10, widths=(32, 64, 128), n_anchors=8),
    "gpu": dict(n_points=1024, n_eigs=64, k=16, widths=(64, 128, 256), n_anchors=12),
}


def _spectral_input(points: torch.Tensor, n_points: int, n_eigs: int, k: int) -> tuple[torch.Tensor, ...]:
    """Centred coordinates ``(B, n, 3)``, eigenvalues ``(B, K)`` and eigenvectors ``(B, n, K)`` of the k-NN graph."""
    check_points(points)
    if points.shape[1] < n_points:
        raise ValueError(f"the model uses {n_points} points per cloud, got clouds of {points.shape[1]}")
    x = points[:, :n_points]
    x = x - x.mean(1, keepdim=True)
    eigenvalues, basis = laplacian_eigenbasis(knn_laplacian(x.detach(), k), n_eigs)
    return x, eigenvalues, basis


def _head(width: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2 * width, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, n_classes))


class _SpectralSizes(nn.Module):
    """The spectral classifiers' sizes: each argument, or the active profile's :data:`SIZES` entry when ``None``."""

    def __init__(self, n_points: int | None, n_eigs: int | None, k: int | None, widths: tuple[int, ...] | None):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.n_points = n_points or sizes["n_points"]
        self.n_eigs = n_eigs or sizes["n_eigs"]
        self.k = k or sizes["k"]
        self.widths = tuple(widths or sizes["widths"])


class SpectralCNN(_SpectralSizes):
    r"""Spectral CNN: smooth spectral filters on the k-NN graph Laplacian, global pooling, MLP.

    .. math::  h^{(t+1)} = \mathrm{ReLU}\Big(\sum_c \Phi\,\operatorname{diag}\big(g^{(t)}_{co}(\lambda/\lambda_K)\big)\,\Phi^\top h^{(t)}_c / N\Big),
               \qquad \text{logits} = \mathrm{MLP}\big([\max_n h_n;\ \operatorname{mean}_n h_n]\big)

    Args:
        n_classes: number of classes.
        n_points, n_eigs, k, widths, n_anchors: default from :data:`SIZES` for the active profile.
        dropout: in the head.

    Shapes:
        ``points (B, N, 3)`` with ``N >= n_points`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, n_points: int | None = None, n_eigs: int | None = None, k: int | None = None,
                 widths: tuple[int, ...] | None = None, n_anchors: int | None = None, dropout: float = 0.5):
        super().__init__(n_points, n_eigs, k, widths)
        n_anchors = n_anchors or runtime.pick(SIZES)["n_anchors"]
        self.convs = nn.ModuleList(SpectralConv(c_in, c_out, n_anchors)
                                   for c_in, c_out in zip((3,) + self.widths, self.widths))
        self.head = _head(self.widths[-1], n_classes, dropout)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        h, eigenvalues, basis = _spectral_input(points, self.n_points, self.n_eigs, self.k)
        for conv in self.convs:
            h = torch.relu(conv(h, basis, eigenvalues))
        return self.head(torch.cat([h.amax(1), h.mean(1)], -1))


class SpectralTransformer(nn.Module):
    r"""Predicts the per-shape synchronising map :math:`C = I + \Delta` (SyncSpecCNN's spectral transformer network).

    .. math::  \Delta = \mathrm{MLP}\big([\operatorname{vec}(\Phi^\top p / N);\ \lambda / \lambda_K]\big)

    Shapes:
        ``coeffs (B, K, 3)`` of the coordinates, ``eigenvalues (B, K)`` -> ``C (B, K, K)``.
    """

    def __init__(self, n_eigs: int, hidden: int = 128):
        super().__init__()
        self.n_eigs = n_eigs
        self.mlp = nn.Sequential(nn.Linear(4 * n_eigs, hidden), nn.ReLU(), nn.Linear(hidden, n_eigs * n_eigs))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, coeffs: torch.Tensor, eigenvalues: torch.Tensor) -> torch.Tensor:
        relative = eigenvalues / eigenvalues[:, -1:].clamp_min(1e-12)
        delta = self.mlp(torch.cat([coeffs.flatten(1), relative], 1)).view(-1, self.n_eigs, self.n_eigs)
        return torch.eye(self.n_eigs, dtype=coeffs.dtype, device=coeffs.device) + delta


class SyncSpectralCNN(_SpectralSizes):
    r"""Synchronised spectral CNN: per-index spectral filters in a learned, shape-independent basis.

    .. math::  h^{(t+1)} = \mathrm{ReLU}\Big(\Phi\, C^\top \big[\textstyle\sum_c W^{(t)}_{ico}\, (C\,\Phi^\top h^{(t)} / N)_{ic}\big] + b^{(t)}\Big)

    Args:
        n_classes: number of classes.
        n_points, n_eigs, k, widths: default from :data:`SIZES` for the active profile.
        dropout: in the head.

    Shapes:
        ``points (B, N, 3)`` with ``N >= n_points`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, n_points: int | None = None, n_eigs: int | None = None, k: int | None = None,
                 widths: tuple[int, ...] | None = None, dropout: float = 0.5):
        super().__init__(n_points, n_eigs, k, widths)
        self.transformer = SpectralTransformer(self.n_eigs)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(self.n_eigs, c_in, c_out) / c_in ** 0.5)
            for c_in, c_out in zip((3,) + self.widths, self.widths))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in self.widths)
        self.head = _head(self.widths[-1], n_classes, dropout)

    def synchronizer(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centred coordinates ``(B, n, 3)``, sign-fixed eigenvectors ``(B, n, K)`` and the map ``C (B, K, K)``."""
        x, eigenvalues, basis = _spectral_input(points, self.n_points, self.n_eigs, self.k)
        basis = canonical_signs(basis)
        C = self.transformer(basis.transpose(1, 2) @ x / x.shape[1], eigenvalues)
        return x, basis, C

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        h, basis, C = self.synchronizer(points)
        synced = basis @ C.transpose(1, 2)  # (B, n, K): the synchronised basis functions
        for weight, bias in zip(self.weights, self.biases):
            z = synced.transpose(1, 2) @ h / h.shape[1]  # (B, K, C_in) coefficients in the shared domain
            h = torch.relu(synced @ torch.einsum("bkc,kco->bko", z, weight) + bias)
        return self.head(torch.cat([h.amax(1), h.mean(1)], -1))
