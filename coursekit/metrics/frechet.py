r"""Fréchet distance between Gaussians fitted to two feature sets (FPD, Shu et al., tree-GAN, ICCV 2019).

.. math::  \text{FPD}(\mathbb P, \mathbb Q) = \lVert \mathbf m_{\mathbb P} - \mathbf m_{\mathbb Q} \rVert_2^2
           + \operatorname{Tr}\big(\Sigma_{\mathbb P} + \Sigma_{\mathbb Q}
           - 2 (\Sigma_{\mathbb P} \Sigma_{\mathbb Q})^{1/2}\big)

The features are given (tree-GAN used 1808-d global features of a PointNet trained on
ModelNet40; the course uses its own encoder). The matrix square root is computed stably:
:math:`\operatorname{Tr}(\Sigma_P \Sigma_Q)^{1/2} = \sum_k \sqrt{\lambda_k}` with
:math:`\lambda_k` the eigenvalues of the symmetric PSD matrix
:math:`\Sigma_P^{1/2} \Sigma_Q \Sigma_P^{1/2}` (similar to :math:`\Sigma_P \Sigma_Q`), both from
``eigh`` with negative round-off clipped to 0, so no complex ``sqrtm`` output arises.
Covariances are unbiased (``N - 1``), as ``numpy.cov`` in the FID/FPD code.
"""

from __future__ import annotations

import torch


def _check_features(f: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.dim() != 2 or not f.dtype.is_floating_point:
        raise ValueError(f"{name} must be a (N, C) float tensor, got {getattr(f, 'shape', type(f).__name__)}")
    if f.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for a covariance, got {f.shape[0]}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return f.double()


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance_from_stats(m_p: torch.Tensor, s_p: torch.Tensor, m_q: torch.Tensor, s_q: torch.Tensor) -> torch.Tensor:
    r"""Fréchet distance of :math:`\mathcal N(m_P, \Sigma_P)` and :math:`\mathcal N(m_Q, \Sigma_Q)`.

    .. math::  \lVert m_P - m_Q \rVert^2 + \operatorname{Tr}(\Sigma_P + \Sigma_Q - 2 (\Sigma_P \Sigma_Q)^{1/2})

    Args:
        m_p, m_q: ``(C,)`` means; s_p, s_q: ``(C, C)`` covariances (symmetric PSD).

    Returns:
        float64 scalar, ``>= 0`` up to round-off.
    """
    m_p, m_q, s_p, s_q = (t.double() for t in (m_p, m_q, s_p, s_q))
    root = _psd_sqrt(s_p)
    middle = root @ s_q @ root
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return ((m_p - m_q) ** 2).sum() + torch.trace(s_p) + torch.trace(s_q) - 2 * trace_sqrt


def frechet_distance(features_p: torch.Tensor, features_q: torch.Tensor) -> torch.Tensor:
    r"""FPD of two feature sets: Gaussians fitted to ``(N, C)`` and ``(M, C)`` features.

    .. math::  \lVert m_P - m_Q \rVert_2^2 + \operatorname{Tr}(\Sigma_P + \Sigma_Q - 2 (\Sigma_P \Sigma_Q)^{1/2})

    Args:
        features_p: ``(N, C)`` features of real clouds; features_q: ``(M, C)`` of generated ones.

    Returns:
        float64 scalar.
    """
    p = _check_features(features_p, "features_p")
    q = _check_features(features_q, "features_q")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"feature sizes differ: {p.shape[1]} and {q.shape[1]}")
    return frechet_distance_from_stats(p.mean(0), torch.cov(p.T).reshape(p.shape[1], -1),
                                       q.mean(0), torch.cov(q.T).reshape(q.shape[1], -1))
