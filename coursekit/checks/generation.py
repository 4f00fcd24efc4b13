"""Exercises of lecture 05 (3D generation): Chamfer distance, F-score@tau, MMD and COV.

The cases use batches of clouds of different sizes (``N != M``) that overlap in space, so
that a minimum taken over the wrong axis or over every cloud of the batch changes the answer;
thresholds sit between ``tau^2`` and ``sqrt(tau)`` of the typical spacing, so squaring on the
wrong side shows; generated and reference sets have different sizes, so swapped roles show.
"""

from __future__ import annotations

import torch

from ..metrics.chamfer import chamfer_distance
from ..metrics.fscore import fscore
from ..metrics.set_metrics import coverage_from, mmd_from, pairwise_distances
from .core import Case, Exercise, Mistake


def _clouds(gen: torch.Generator, b: int, n: int, dtype=torch.float64) -> torch.Tensor:
    return (torch.rand(b, n, 3, generator=gen, dtype=dtype) - 0.5) * torch.tensor([1.0, 0.6, 0.4], dtype=dtype)


def _sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B, N, M)`` squared distances (what the mistakes below start from)."""
    return ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1)


# ------------------------------------------------------------------ Chamfer distance

def _chamfer_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("a batch of 2 clouds, 5 predicted and 7 ground-truth points", (_clouds(gen, 2, 5), _clouds(gen, 2, 7)), grad=(0, 1)),
        Case("a batch of 3 clouds, 40 and 25 points", (_clouds(gen, 3, 40), _clouds(gen, 3, 25)), grad=(0, 1)),
        Case("one cloud, 64 and 64 points", (_clouds(gen, 1, 64), _clouds(gen, 1, 64))),
    ]


def _chamfer_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return chamfer_distance(x, y, "slide")


def _chamfer_unsquared(x, y):
    d = _sqdist(x, y).sqrt()
    return d.amin(2).sum(1) + d.amin(1).sum(1)


def _chamfer_mean(x, y):
    d2 = _sqdist(x, y)
    return d2.amin(2).mean(1) + d2.amin(1).mean(1)


def _chamfer_one_sided(x, y):
    return _sqdist(x, y).amin(2).sum(1)


def _chamfer_same_axis(x, y):
    d2 = _sqdist(x, y)
    return d2.amin(1).sum(1) + d2.amin(1).sum(1)


def _chamfer_batch_mixed(x, y):
    B, N, _ = x.shape
    d2 = _sqdist(x.reshape(1, -1, 3), y.reshape(1, -1, 3))[0]  # every point against every cloud's points
    return d2.amin(1).reshape(B, N).sum(1) + d2.amin(0).reshape(B, -1).sum(1)


# ------------------------------------------------------------------ F-score

def _fscore_cases(gen: torch.Generator) -> list[Case]:
    def pair(b: int, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        gt = _clouds(gen, b, m, torch.float32)
        pick = torch.randint(m, (n - n // 4,), generator=gen)
        near = gt[:, pick] + torch.randn(b, n - n // 4, 3, generator=gen) * 0.05
        far = _clouds(gen, b, n // 4, torch.float32) * 2.5
        return torch.cat([near, far], 1), gt

    return [
        Case("a batch of 2: 40 predicted, 60 ground-truth points, tau = 0.05", (*pair(2, 40, 60), 0.05)),
        Case("a batch of 3: 80 predicted, 50 ground-truth points, tau = 0.1", (*pair(3, 80, 50), 0.1)),
    ]


def _fscore_reference(pred, gt, tau):
    return fscore(pred, gt, tau)


def _fractions(pred, gt, close):
    d = _sqdist(pred, gt)
    return close(d.amin(2)).float().mean(1), close(d.amin(1)).float().mean(1)


def _harmonic(p, r):
    return torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-30), torch.zeros_like(p))


def _fscore_squared(pred, gt, tau):
    return _harmonic(*_fractions(pred, gt, lambda d2: d2 < tau))


def _fscore_tau_squared(pred, gt, tau):
    return _harmonic(*_fractions(pred, gt, lambda d2: d2.sqrt() < tau ** 2))


def _fscore_arithmetic(pred, gt, tau):
    p, r = _fractions(pred, gt, lambda d2: d2.sqrt() < tau)
    return (p + r) / 2


def _fscore_precision_only(pred, gt, tau):
    p, _ = _fractions(pred, gt, lambda d2: d2.sqrt() < tau)
    return p


# ------------------------------------------------------------------ MMD and COV

def _mmd_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("5 generated and 4 reference clouds of 16 points", (_clouds(gen, 5, 16), _clouds(gen, 4, 16))),
        Case("3 generated and 7 reference clouds of 24 points", (_clouds(gen, 3, 24), _clouds(gen, 7, 24))),
    ]


def _mmd_cov_reference(generated, reference):
    d = pairwise_distances(generated, reference, "chamfer")
    return float(mmd_from(d)), float(coverage_from(d))


def _pairwise(generated, reference, reduce):
    """``D[g, r]`` with the point reduction ``reduce`` (mean: the PyTorch3D convention)."""
    def chamfer(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        d2 = _sqdist(g[None], r[None])[0]
        return reduce(d2.amin(1)) + reduce(d2.amin(0))

    return torch.stack([torch.stack([chamfer(g, r) for r in reference]) for g in generated])


def _mmd_swapped(generated, reference):
    d = _pairwise(generated, reference, torch.mean)
    return float(d.amin(1).mean()), len(torch.unique(d.argmin(1))) / d.shape[1]


def _cov_over_generated(generated, reference):
    d = _pairwise(generated, reference, torch.mean)
    return float(d.amin(0).mean()), len(torch.unique(d.argmin(0))) / d.shape[0]


def _mmd_mean(generated, reference):
    d = _pairwise(generated, reference, torch.mean)
    return float(d.mean(0).mean()), len(torch.unique(d.argmin(1))) / d.shape[1]


def _chamfer_summed(generated, reference):
    d = _pairwise(generated, reference, torch.sum)
    return float(d.amin(0).mean()), len(torch.unique(d.argmin(1))) / d.shape[1]


EXERCISES = (
    Exercise(
        name="generation.chamfer",
        points=2,
        reference=_chamfer_reference,
        make_cases=_chamfer_cases,
        what="Chamfer distance",
        forbidden=("chamfer_distance", "nearest_sq_dists", "knn"),
        mistakes=(
            Mistake("you used plain distances; the slide's Chamfer distance sums SQUARED distances ||x - y||^2", _chamfer_unsquared),
            Mistake("you averaged over the points; the slide's definition SUMS over the points of each set", _chamfer_mean),
            Mistake("you computed only x -> y; add the second term, from every y to its nearest x", _chamfer_one_sided),
            Mistake("both terms take the minimum over the same axis; x -> y is a min over y (dim=2), "
                    "y -> x a min over x (dim=1)", _chamfer_same_axis),
            Mistake("points were compared with the points of other clouds in the batch; compute the "
                    "(B, N, M) distances per cloud", _chamfer_batch_mixed),
        ),
    ),
    Exercise(
        name="generation.fscore",
        points=2,
        reference=_fscore_reference,
        make_cases=_fscore_cases,
        what="F-score",
        forbidden=("fscore", "precision_recall", "nearest_sq_dists", "knn"),
        mistakes=(
            Mistake("you compared SQUARED distances with tau; the threshold is on the distance itself "
                    "(take the square root, or compare d^2 with tau^2)", _fscore_squared),
            Mistake("you compared the distance with tau^2; compare the distance with tau (or d^2 with tau^2)", _fscore_tau_squared),
            Mistake("you took the arithmetic mean (P + R) / 2; the F-score is the harmonic mean 2PR / (P + R)", _fscore_arithmetic),
            Mistake("you returned the precision only; F combines precision (pred -> gt) and recall (gt -> pred)", _fscore_precision_only),
        ),
    ),
    Exercise(
        name="generation.mmd_cov",
        points=2,
        reference=_mmd_cov_reference,
        make_cases=_mmd_cases,
        what="(MMD, COV)",
        forbidden=("set_metrics", "pairwise_distances", "minimum_matching_distance", "chamfer_distance", "knn"),
        rtol=1e-6,
        atol=1e-9,
        mistakes=(
            Mistake("MMD goes the other way: for each REFERENCE cloud take the min over the generated "
                    "ones, then average over the references", _mmd_swapped),
            Mistake("COV counts references: the fraction of REFERENCE clouds that are the nearest "
                    "reference of at least one generated cloud", _cov_over_generated),
            Mistake("MMD takes the minimum over the generated clouds, not their mean", _mmd_mean),
            Mistake("use the PyTorch3D Chamfer (mean of squared distances each way, summed), not the sums", _chamfer_summed),
        ),
    ),
)
