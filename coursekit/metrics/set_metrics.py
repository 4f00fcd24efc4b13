r"""Set-to-set metrics for free generation: MMD, COV, 1-NNA (on a shape distance D) and JSD.

Compare a set of generated clouds :math:`S_g` with a held-out reference set :math:`S_r`
(Achlioptas et al., "Learning Representations and Generative Models for 3D Point Clouds",
ICML 2018, code optas/latent_3d_points ``src/evaluation_metrics.py``; 1-NNA from Yang et al.,
PointFlow, ICCV 2019):

.. math::  \text{MMD} = \frac{1}{|S_r|} \sum_{r \in S_r} \min_{g \in S_g} D(g, r), \qquad
           \text{COV} = \frac{|\{ \operatorname*{arg\,min}_{r} D(g, r) : g \in S_g \}|}{|S_r|}

.. math::  \text{1-NNA} = \frac{\sum_{g} [N_g \in S_g] + \sum_{r} [N_r \in S_r]}{|S_g| + |S_r|}

where :math:`N_s` is the nearest neighbour of ``s`` in :math:`S_g \cup S_r \setminus \{s\}`
(leave-one-out 1-NN classifier; 50% is ideal, 100% means the sets are told apart).

``D`` is ``"chamfer"`` (the PyTorch3D / latent_3d_points convention: mean squared NN distance
both ways, summed) or ``"emd"`` (exact, :func:`~coursekit.metrics.emd.emd_exact` with
``point_reduction="mean"``, latent_3d_points' ``normalize=True``; NB they used an approximate
EMD). The distance matrices are computed once by :func:`pairwise_distances`; the ``*_from``
functions take them, so MMD, COV and 1-NNA share one computation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from ..geometry.validate import check_points
from .chamfer import chamfer_distance
from .emd import emd_exact

ShapeDistance = Literal["chamfer", "emd"]


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, metric: ShapeDistance = "chamfer",
                       progress: bool = False) -> torch.Tensor:
    r"""The ``(A, B)`` matrix of shape distances :math:`D(a_i, b_j)` between two sets of clouds.

    .. math::  D_{ij} = D(a_i, b_j)

    Args:
        a: ``(A, N, 3)`` clouds; b: ``(B, M, 3)`` clouds (``M = N`` for EMD).
        metric: ``"chamfer"`` (PyTorch3D convention) or ``"emd"`` (exact, mean over points).
        progress: show a ``tqdm`` bar over the rows.

    Returns:
        ``(A, B)`` float64 distances (no gradient).
    """
    check_points(a, "a")
    check_points(b, "b")
    if metric not in ("chamfer", "emd"):
        raise ValueError(f"metric must be 'chamfer' or 'emd', got {metric!r}")
    out = torch.empty(a.shape[0], b.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for i in tqdm(range(a.shape[0]), disable=not progress, desc=f"pairwise {metric}"):
            row = a[i:i + 1].expand(b.shape[0], -1, -1)
            if metric == "chamfer":
                out[i] = chamfer_distance(row, b, "pytorch3d").double().cpu()
            else:
                out[i] = emd_exact(row, b, point_reduction="mean")[0].double().cpu()
    return out


def _check_matrix(d: torch.Tensor, name: str) -> None:
    if not isinstance(d, torch.Tensor) or d.dim() != 2 or 0 in d.shape:
        raise ValueError(f"{name} must be a non-empty 2-D distance matrix, got {tuple(getattr(d, 'shape', ()))}")
    if torch.isnan(d).any():
        raise ValueError(f"{name} contains NaN")


def mmd_from(d_gr: torch.Tensor) -> torch.Tensor:
    r"""Minimum matching distance from the ``(G, R)`` matrix ``D[g, r]``: :math:`\operatorname{mean}_r \min_g D`."""
    _check_matrix(d_gr, "d_gr")
    return d_gr.amin(0).mean()


def coverage_from(d_gr: torch.Tensor) -> torch.Tensor:
    r"""Coverage from ``D[g, r]``: the fraction of references that are some generated cloud's nearest."""
    _check_matrix(d_gr, "d_gr")
    return torch.tensor(len(torch.unique(d_gr.argmin(1))) / d_gr.shape[1], dtype=torch.float64)


def one_nna_from(d_gg: torch.Tensor, d_rr: torch.Tensor, d_gr: torch.Tensor) -> torch.Tensor:
    r"""Leave-one-out 1-NN accuracy on :math:`S_g \cup S_r` from the three distance matrices."""
    for d, name in ((d_gg, "d_gg"), (d_rr, "d_rr"), (d_gr, "d_gr")):
        _check_matrix(d, name)
    G, R = d_gr.shape
    if d_gg.shape != (G, G) or d_rr.shape != (R, R):
        raise ValueError(f"expected d_gg {(G, G)} and d_rr {(R, R)}, got {tuple(d_gg.shape)} and {tuple(d_rr.shape)}")
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0).clone()
    full.fill_diagonal_(float("inf"))
    label = torch.arange(G + R) < G
    return (label[full.argmin(1)] == label).double().mean()


def set_metrics(generated: torch.Tensor, reference: torch.Tensor, metric: ShapeDistance = "chamfer",
                one_nna: bool = True, progress: bool = False) -> dict[str, torch.Tensor]:
    r"""MMD, COV and (optionally) 1-NNA of ``generated`` against ``reference``, one shared computation.

    .. math::  \text{MMD} = \operatorname{mean}_{r} \min_{g} D(g, r), \quad
               \text{COV} = |\{\operatorname{arg\,min}_r D(g, r)\}_g| / |S_r|

    Args:
        generated: ``(G, N, 3)`` generated clouds.
        reference: ``(R, N, 3)`` reference (held-out) clouds.
        metric: shape distance ``D``: ``"chamfer"`` or ``"emd"``.
        one_nna: also compute 1-NNA (needs the ``G x G`` and ``R x R`` matrices too).
        progress: show progress bars.

    Returns:
        ``{"mmd", "cov", "1-nna"}`` float64 scalars (1-NNA only if requested).
    """
    d_gr = pairwise_distances(generated, reference, metric, progress)
    out = {"mmd": mmd_from(d_gr), "cov": coverage_from(d_gr)}
    if one_nna:
        d_gg = pairwise_distances(generated, generated, metric, progress)
        d_rr = pairwise_distances(reference, reference, metric, progress)
        out["1-nna"] = one_nna_from(d_gg, d_rr, d_gr)
    return out


def minimum_matching_distance(generated: torch.Tensor, reference: torch.Tensor,
                              metric: ShapeDistance = "chamfer") -> torch.Tensor:
    r"""MMD: :math:`\frac{1}{|S_r|} \sum_{r} \min_{g} D(g, r)`; ``(G, N, 3)``, ``(R, N, 3)`` -> scalar."""
    return mmd_from(pairwise_distances(generated, reference, metric))


def coverage(generated: torch.Tensor, reference: torch.Tensor, metric: ShapeDistance = "chamfer") -> torch.Tensor:
    r"""COV: :math:`|\{\operatorname{arg\,min}_r D(g, r) : g\}| / |S_r|`; ``(G, N, 3)``, ``(R, N, 3)`` -> scalar."""
    return coverage_from(pairwise_distances(generated, reference, metric))


def one_nn_accuracy(generated: torch.Tensor, reference: torch.Tensor, metric: ShapeDistance = "chamfer") -> torch.Tensor:
    r"""1-NNA: leave-one-out 1-NN accuracy on the union (0.5 ideal); ``(G, N, 3)``, ``(R, N, 3)`` -> scalar."""
    return set_metrics(generated, reference, metric)["1-nna"]


def occupancy_grid_centres(resolution: int = 28, in_sphere: bool = True) -> np.ndarray:
    r"""Cell centres of latent_3d_points' grid: ``resolution^3`` points from -0.5 to 0.5 (spacing
    ``1/(resolution-1)``), kept only within radius 0.5 when ``in_sphere``; ``(K, 3)`` float64."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    axis = np.arange(resolution) / (resolution - 1) - 0.5
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return grid[np.linalg.norm(grid, axis=1) <= 0.5] if in_sphere else grid


def occupancy_counts(clouds: torch.Tensor, resolution: int = 28, in_sphere: bool = True) -> torch.Tensor:
    r"""Points per grid cell (nearest cell centre), summed over all clouds: ``(B, N, 3)`` -> ``(K,)`` float64."""
    check_points(clouds, "clouds")
    centres = occupancy_grid_centres(resolution, in_sphere)
    _, idx = cKDTree(centres).query(clouds.detach().cpu().double().reshape(-1, 3).numpy(), workers=-1)
    return torch.from_numpy(np.bincount(idx, minlength=len(centres)).astype(np.float64))


def jensen_shannon_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""JSD (log base 2, in ``[0, 1]``) of two count vectors, each normalised to a distribution.

    .. math::  \text{JSD}(P \| Q) = H\big(\tfrac{P + Q}{2}\big) - \tfrac{1}{2}\big(H(P) + H(Q)\big),
               \qquad H(P) = -\sum_k P_k \log_2 P_k
    """
    if p.shape != q.shape or p.dim() != 1 or (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must be non-negative 1-D count vectors of one length with positive sums")
    p, q = p.double() / p.sum(), q.double() / q.sum()

    def entropy(v: torch.Tensor) -> torch.Tensor:
        v = v[v > 0]
        return -(v * torch.log2(v)).sum()

    return (entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2).clamp_min(0)


def jsd(generated: torch.Tensor, reference: torch.Tensor, resolution: int = 28, in_sphere: bool = True) -> torch.Tensor:
    r"""JSD between the occupancy distributions of two sets of clouds (Achlioptas et al. 2018).

    .. math::  \text{JSD}\big(P_g \| P_r\big), \qquad P_s[k] \propto \#\{\text{points of all clouds of } S_s
               \text{ whose nearest cell centre is } k\}

    The grid is latent_3d_points': ``28^3`` cell centres in ``[-0.5, 0.5]^3`` clipped to the
    ball of radius 0.5, so clouds should lie in that ball (normalise them first).

    Args:
        generated: ``(G, N, 3)``; reference: ``(R, M, 3)`` clouds.
        resolution: grid cells per axis; in_sphere: clip the grid to radius 0.5.

    Returns:
        float64 scalar in ``[0, 1]``.
    """
    return jensen_shannon_divergence(occupancy_counts(generated, resolution, in_sphere),
                                     occupancy_counts(reference, resolution, in_sphere))
