r"""Spectral convolution on graphs: the Laplacian eigenbasis, smooth spectral multipliers, and the basis-mismatch problem.

A signal :math:`x` on the nodes of a graph (a point cloud's k-NN graph, a mesh's edges) has a
"Fourier transform" in the eigenvectors :math:`\Phi = [\phi_1 \dots \phi_K]` of the graph
Laplacian :math:`L \phi_i = \lambda_i \phi_i` (low :math:`\lambda` = smooth). A spectral
convolution multiplies each frequency by a filter value (Bruna, Zaremba, Szlam, LeCun, "Spectral
networks and locally connected networks on graphs", ICLR 2014):

.. math::  y = \Phi\, \operatorname{diag}(g)\, \Phi^\top x

Bruna et al. learn :math:`g` *smooth* (interpolated from a few coefficients), which keeps the
filter localised in space. Here the multipliers are a function of the eigenvalue, piecewise
linear between ``n_anchors`` learned values (:func:`hat_weights`),

.. math::  g(\lambda) = \sum_a \theta_a\, h_a(\lambda / \lambda_K)

so the filter means the same thing on any graph: it is invariant to the sign of each
eigenvector and to rotations inside an eigenspace (both arbitrary in an eigensolver).

**The basis-mismatch problem** (the Synchronized Spectral CNN slide; Yi, Su, Guo, Guibas,
"SyncSpecCNN: synchronized spectral CNN for 3D shape segmentation", CVPR 2017): the "i-th
frequency" of one shape is not the i-th frequency of another, nor even of a second sampling of
the same shape. Eigenvector signs are arbitrary, near-equal eigenvalues swap order, and the
eigenvectors themselves differ. So a filter defined *per index* (or any operation mixing
spectral coefficients) gives inconsistent results across shapes; :func:`basis_mismatch`
measures it. The cure is a map between the bases: a *functional map* :math:`C` with
:math:`\Phi_b^\top f_b \approx C\, \Phi_a^\top f_a` for corresponding functions
(:func:`functional_map`, fitted from descriptors), or, in SyncSpecCNN, a learned per-shape
transform into one shared "synchronised" basis
(:class:`~coursekit.models.spectral_cnn.SyncSpectralCNN`).

Convention
    Clouds ``(B, N, 3)``, node signals ``(B, N, C)``. Eigenvectors are scaled to mean square 1
    (:math:`\Phi^\top \Phi = N I`), so coefficients :math:`\hat x = \Phi^\top x / N` do not
    depend on the number of points.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..geometry.neighbors import knn
from ..geometry.validate import check_count
from ..geometry.validate import check_points

__all__ = [
    "knn_laplacian",
    "graph_laplacian",
    "laplacian_eigenbasis",
    "canonical_signs",
    "hat_weights",
    "spectral_filter",
    "SpectralConv",
    "functional_map",
    "basis_mismatch",
]


def _normalized_laplacian(W: torch.Tensor) -> torch.Tensor:
    """:math:`I - D^{-1/2} W D^{-1/2}` of ``(..., N, N)`` symmetric weights."""
    d = W.sum(-1).clamp_min(1e-12).rsqrt()
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return eye - d.unsqueeze(-1) * W * d.unsqueeze(-2)


def knn_laplacian(points: torch.Tensor, k: int = 10) -> torch.Tensor:
    r"""Normalised Laplacian of the symmetrised k-NN graph with Gaussian weights.

    .. math::  W_{ij} = \exp\!\big(-\lVert p_i - p_j \rVert^2 / \sigma^2\big) \text{ if } j \in \mathcal{N}_k(i)
               \text{ or } i \in \mathcal{N}_k(j), \qquad L = I - D^{-1/2} W D^{-1/2}

    with :math:`\sigma^2` the mean squared k-NN distance of the cloud.

    Args:
        points: ``(B, N, 3)``.
        k: neighbours per point, ``k < N``.

    Returns:
        ``(B, N, N)`` dense symmetric Laplacians (eigenvalues in ``[0, 2]``).
    """
    check_points(points)
    check_count(k, "k", points.shape[1] - 1, "N - 1")
    d2, idx = knn(points, points, k + 1)
    d2, idx = d2[..., 1:], idx[..., 1:]  # drop each point itself
    sigma2 = d2.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    B, N, _ = points.shape
    W = points.new_zeros(B, N, N).scatter_(2, idx, torch.exp(-d2 / sigma2))
    return _normalized_laplacian(torch.maximum(W, W.transpose(1, 2)))


def graph_laplacian(edge_index: torch.Tensor, num_nodes: int, weight: torch.Tensor | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Normalised Laplacian of an undirected graph given by its edges (e.g. ``geometry.graphs.mesh_edges``).

    .. math::  L = I - D^{-1/2} W D^{-1/2}, \qquad W_{ij} = W_{ji} = w_e \text{ for } e = \{i, j\}

    Args:
        edge_index: ``(2, E)`` ``int64``; each edge counts in both directions.
        num_nodes: ``N``.
        weight: optional ``(E,)`` edge weights (default 1).

    Returns:
        ``(N, N)``.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.int64:
        raise ValueError(f"edge_index must be a (2, E) int64 tensor, got {edge_index.dtype} {tuple(edge_index.shape)}")
    check_count(num_nodes, "num_nodes")
    w = torch.ones(edge_index.shape[1], dtype=dtype) if weight is None else weight.to(dtype)
    W = torch.zeros(num_nodes, num_nodes, dtype=dtype, device=edge_index.device)
    W[edge_index[0], edge_index[1]] = w
    return _normalized_laplacian(torch.maximum(W, W.T))


def laplacian_eigenbasis(laplacian: torch.Tensor, n_eigs: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``K`` lowest eigenpairs :math:`L \phi_i = \lambda_i \phi_i`, eigenvectors scaled to mean square 1.

    .. math::  \Phi^\top \Phi = N\, I, \qquad 0 \le \lambda_1 \le \dots \le \lambda_K

    Args:
        laplacian: ``(..., N, N)`` symmetric.
        n_eigs: ``K <= N``.

    Returns:
        ``(eigenvalues (..., K), eigenvectors (..., N, K))`` (signs as the solver returns them:
        arbitrary; see :func:`canonical_signs`). Not differentiable (computed without gradients).
    """
    check_count(n_eigs, "n_eigs", laplacian.shape[-1])
    with torch.no_grad():
        values, vectors = torch.linalg.eigh(laplacian)
    n = laplacian.shape[-1]
    return values[..., :n_eigs], vectors[..., :n_eigs] * math.sqrt(n)


def canonical_signs(basis: torch.Tensor) -> torch.Tensor:
    r"""Flip each eigenvector so that its third moment is positive (a common sign convention).

    .. math::  \phi_i \leftarrow \operatorname{sign}\Big(\sum_n \phi_i(n)^3\Big)\, \phi_i

    Removes the solver's arbitrary sign for eigenvectors with a skewed distribution; it cannot
    fix near-symmetric ones, swapped orders or rotations inside an eigenspace.

    Args:
        basis: ``(..., N, K)``.

    Returns:
        ``(..., N, K)``.
    """
    skew = (basis ** 3).sum(-2, keepdim=True)
    return basis * torch.where(skew < 0, -1.0, 1.0).to(basis.dtype)


def hat_weights(x: torch.Tensor, n_anchors: int) -> torch.Tensor:
    r"""Piecewise-linear interpolation weights of ``x`` in ``[0, 1]`` between ``n_anchors`` equally spaced anchors.

    .. math::  h_a(x) = \max\big(0,\ 1 - |x (A - 1) - a|\big), \qquad \sum_a h_a(x) = 1

    so :math:`g(x) = \sum_a h_a(x)\, \theta_a` interpolates the values :math:`\theta_a` (smooth
    spectral multipliers from few coefficients; values outside ``[0, 1]`` are clamped).

    Args:
        x: any shape ``S``.
        n_anchors: ``A >= 2``.

    Returns:
        ``(*S, A)``.
    """
    check_count(n_anchors, "n_anchors")
    if n_anchors < 2:
        raise ValueError(f"n_anchors must be at least 2, got {n_anchors}")
    a = torch.arange(n_anchors, dtype=x.dtype, device=x.device)
    return (1 - (x.clamp(0, 1).unsqueeze(-1) * (n_anchors - 1) - a).abs()).clamp_min(0)


def spectral_filter(signal: torch.Tensor, basis: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    r"""Filter node signals in the spectral domain.

    .. math::  y = \Phi\, G\, \hat x, \qquad \hat x = \Phi^\top x / N

    Args:
        signal: ``(B, N, C_in)``.
        basis: ``(B, N, K)`` eigenvectors (mean square 1).
        multipliers: ``G``: ``(B, K, C_in, C_out)`` per-frequency channel mixing (a diagonal
            filter per channel pair), or ``(K, K)`` one spectral operator applied to every channel.

    Returns:
        ``(B, N, C_out)`` (``(B, N, C_in)`` for a ``(K, K)`` operator).
    """
    if signal.dim() != 3 or basis.dim() != 3 or signal.shape[:2] != basis.shape[:2]:
        raise ValueError(f"signal (B, N, C) and basis (B, N, K) must agree on B and N, got "
                         f"{tuple(signal.shape)} and {tuple(basis.shape)}")
    coeffs = basis.transpose(1, 2) @ signal / signal.shape[1]  # (B, K, C_in)
    K = basis.shape[2]
    if multipliers.dim() == 2 and multipliers.shape == (K, K):
        return basis @ (multipliers @ coeffs)
    if multipliers.dim() == 4 and multipliers.shape[1:3] == (K, signal.shape[2]):
        return basis @ torch.einsum("bkc,bkco->bko", coeffs, multipliers)
    raise ValueError(f"multipliers must have shape (B, {K}, {signal.shape[2]}, C_out) or ({K}, {K}), "
                     f"got {tuple(multipliers.shape)}")


class SpectralConv(nn.Module):
    r"""Spectral graph convolution with smooth multipliers of the (relative) eigenvalue.

    .. math::  y_o = b_o + \sum_c \Phi\, \operatorname{diag}\big(g_{co}(\lambda / \lambda_K)\big)\, \Phi^\top x_c / N,
               \qquad g_{co}(t) = \sum_a h_a(t)\, \theta_{a c o}

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        n_anchors: learned values per filter (the smoothness; Bruna et al. interpolate a few
            coefficients too).

    Shapes:
        ``x (B, N, C_in)``, ``basis (B, N, K)``, ``eigenvalues (B, K)`` -> ``(B, N, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_anchors: int = 8):
        super().__init__()
        check_count(in_channels, "in_channels")
        check_count(out_channels, "out_channels")
        self.n_anchors = n_anchors
        self.theta = nn.Parameter(torch.randn(n_anchors, in_channels, out_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, basis: torch.Tensor, eigenvalues: torch.Tensor) -> torch.Tensor:
        if eigenvalues.shape != basis.shape[::2]:
            raise ValueError(f"eigenvalues must have shape {tuple(basis.shape[::2])}, got {tuple(eigenvalues.shape)}")
        relative = eigenvalues / eigenvalues[:, -1:].clamp_min(1e-12)
        multipliers = torch.einsum("bka,aco->bkco", hat_weights(relative, self.n_anchors), self.theta)
        return spectral_filter(x, basis, multipliers) + self.bias


def functional_map(basis_a: torch.Tensor, basis_b: torch.Tensor, descriptors_a: torch.Tensor,
                   descriptors_b: torch.Tensor) -> torch.Tensor:
    r"""Least-squares functional map: the ``(K_b, K_a)`` matrix taking spectral coefficients on shape a to shape b.

    .. math::  C = \operatorname*{arg\,min}_C \big\lVert C A - B \big\rVert_F, \qquad
               A = \Phi_a^\top D_a / N_a, \quad B = \Phi_b^\top D_b / N_b

    (Ovsjanikov et al., "Functional maps", SIGGRAPH 2012), from ``Q >= K_a`` descriptor functions
    known on both shapes at corresponding places.

    Args:
        basis_a, basis_b: ``(N_a, K_a)``, ``(N_b, K_b)``.
        descriptors_a, descriptors_b: ``(N_a, Q)``, ``(N_b, Q)``.

    Returns:
        ``(K_b, K_a)``.
    """
    A = basis_a.T @ descriptors_a / basis_a.shape[0]
    B = basis_b.T @ descriptors_b / basis_b.shape[0]
    return torch.linalg.lstsq(A.T, B.T).solution.T


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm().clamp_min(1e-12))


def basis_mismatch(points_a: torch.Tensor, points_b: torch.Tensor, signal_a: torch.Tensor, signal_b: torch.Tensor,
                   n_eigs: int = 12, k: int = 10, n_descriptors: int = 64, seed: int = 0) -> dict[str, float]:
    r"""The same spectral filter on two samplings (or two shapes): index-defined filters disagree.

    Both clouds get their own Laplacian eigenbasis. Points of ``b`` correspond to their nearest
    neighbour in ``a``. Reported (relative errors, ``b`` as the reference):

    * ``coefficients``: :math:`\lVert \hat f_a - \hat f_b \rVert / \lVert \hat f_b \rVert` for the same
      function: large, the bases do not agree (``sign_flips`` counts coefficients of opposite sign);
    * ``aligned_coefficients``: after the functional map :math:`C` (:func:`functional_map`, from
      Gaussian bumps around ``n_descriptors`` random points of ``a``): :math:`C \hat f_a` vs :math:`\hat f_b`;
    * ``index_filter``: :math:`\Phi\,\operatorname{diag}(g)\,\hat f` with random multipliers
      :math:`g_i` *per eigenvector index*, compared at corresponding points: inconsistent;
    * ``smooth_filter``: multipliers :math:`g(\lambda) = e^{-3 \lambda / \lambda_K}` of the eigenvalue,
      sign-invariant: consistent up to sampling noise.

    Args:
        points_a, points_b: ``(N_a, 3)``, ``(N_b, 3)`` samples of the surfaces, in the same pose.
        signal_a, signal_b: ``(N_a,)``, ``(N_b,)`` the same function sampled on each.
        n_eigs, k: eigenvectors and k-NN graph size.
        n_descriptors: Gaussian bumps used to fit the functional map.
        seed: for the descriptor centres and the random multipliers.

    Returns:
        dict with ``coefficients``, ``aligned_coefficients``, ``sign_flips``, ``index_filter``,
        ``smooth_filter``.
    """
    for name, p, f in (("a", points_a, signal_a), ("b", points_b, signal_b)):
        check_points(p.unsqueeze(0), f"points_{name}")
        if f.shape != p.shape[:1]:
            raise ValueError(f"signal_{name} must have shape ({p.shape[0]},), got {tuple(f.shape)}")
    gen = torch.Generator().manual_seed(seed)
    pa, pb = points_a.double(), points_b.double()
    fa, fb = signal_a.double().unsqueeze(1), signal_b.double().unsqueeze(1)
    (la, va), (lb, vb) = (laplacian_eigenbasis(knn_laplacian(p.unsqueeze(0), k)[0], n_eigs) for p in (pa, pb))
    ca, cb = va.T @ fa / len(pa), vb.T @ fb / len(pb)
    centres = pa[torch.randperm(len(pa), generator=gen)[:n_descriptors]]
    width = float(((pa.amax(0) - pa.amin(0)) ** 2).sum()) / 40  # bump size ~ 1/6 of the shape
    bumps = lambda p: torch.exp(-((p.unsqueeze(1) - centres) ** 2).sum(-1) / width)  # noqa: E731
    C = functional_map(va, vb, bumps(pa), bumps(pb))
    corr = knn(pb.unsqueeze(0), pa.unsqueeze(0), 1)[1][0, :, 0]  # b's points -> nearest in a
    g = torch.randn(n_eigs, generator=gen, dtype=torch.float64)
    index_a, index_b = va @ (g.unsqueeze(1) * ca), vb @ (g.unsqueeze(1) * cb)
    smooth = lambda lam: torch.exp(-3 * lam / lam[-1]).unsqueeze(1)  # noqa: E731
    smooth_a, smooth_b = va @ (smooth(la) * ca), vb @ (smooth(lb) * cb)
    return {
        "coefficients": _relative_error(ca, cb),
        "aligned_coefficients": _relative_error(C @ ca, cb),
        "sign_flips": int(((ca * cb) < 0).sum()),
        "index_filter": _relative_error(index_a[corr], index_b),
        "smooth_filter": _relative_error(smooth_a[corr], smooth_b),
    }
