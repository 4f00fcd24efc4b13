"""Notebook 04's segmentation exercise: PointNet++ three-nearest-neighbour feature propagation.

The student writes ``three_nn_interpolate(query, points, features)``: features of the sparse
``points`` interpolated at the dense ``query`` positions with weights :math:`1/d^2` of the three
nearest sparse points, normalised to sum to one. Convention checked against the original code
(charlesq34/pointnet2): ``threenn_cpu`` in ``tf_ops/3d_interpolation/tf_interpolate.cpp`` returns
**squared** distances (the ``sqrtf`` line is commented out) and ``pointnet_fp_module`` in
``utils/pointnet_util.py`` computes ``weight = (1.0/dist) / norm`` with ``dist = max(dist, 1e-10)``:
the weight is the inverse *squared* distance.
"""

from __future__ import annotations

import torch

from ..geometry.neighbors import group, knn, three_nn_interpolate
from .core import Case, Exercise, Mistake


def _cases(gen: torch.Generator) -> list[Case]:
    def cloud(b, n):
        return torch.rand(b, n, 3, generator=gen, dtype=torch.float64) * 2 - 1

    def case(label, b, m, n, c):
        return Case(label, (cloud(b, m), cloud(b, n), torch.randn(b, n, c, generator=gen, dtype=torch.float64)), grad=(0, 2))

    return [
        case("batch of 2, 40 dense and 40 sparse points (same count, different positions), 5 channels", 2, 40, 40, 5),
        case("batch of 3, 64 dense points from 16 sparse points, 4 channels", 3, 64, 16, 4),
        case("one cloud, 100 dense points from 7 sparse points, 1 channel", 1, 100, 7, 1),
    ]


def _weighted(query, points, features, k=3, power=2.0, normalise=True):
    d2, idx = knn(query, points, k)
    w = 1.0 / d2.clamp_min(1e-10) ** (power / 2)
    if normalise:
        w = w / w.sum(-1, keepdim=True)
    return (group(features, idx) * w.unsqueeze(-1)).sum(-2)


def _not_normalised(query, points, features):
    return _weighted(query, points, features, normalise=False)


def _inverse_distance(query, points, features):
    return _weighted(query, points, features, power=1.0)


def _two_neighbours(query, points, features):
    return _weighted(query, points, features, k=2)


def _four_neighbours(query, points, features):
    return _weighted(query, points, features, k=4)


def _roles_swapped(query, points, features):
    d2, idx = knn(points, query, 3)  # the 3 nearest *dense* points of every sparse point
    w = 1.0 / d2.clamp_min(1e-10)
    w = w / w.sum(-1, keepdim=True)
    return (group(features, idx) * w.unsqueeze(-1)).sum(-2)


def _plain_mean(query, points, features):
    _, idx = knn(query, points, 3)
    return group(features, idx).mean(-2)


EXERCISES = (
    Exercise(
        name="segmentation.feature_propagation",
        points=2,
        reference=three_nn_interpolate,
        make_cases=_cases,
        forbidden=("three_nn_interpolate",),
        what="interpolated features",
        mistakes=(
            Mistake("normalise the weights: divide by their sum over the 3 neighbours, so that the weights add up to 1",
                    _not_normalised),
            Mistake("PointNet++ weights by the inverse SQUARED distance: its three_nn returns squared distances and "
                    "pointnet_fp_module uses 1/dist on them (w = 1/d², not 1/d)", _inverse_distance),
            Mistake("use exactly 3 nearest sparse points (you used 2)", _two_neighbours),
            Mistake("use exactly 3 nearest sparse points (you used 4)", _four_neighbours),
            Mistake("the roles are swapped: for every DENSE query point find its 3 nearest SPARSE points "
                    "(knn(query, points)), not the other way round", _roles_swapped),
            Mistake("weight the neighbours by inverse squared distance, not a plain mean of the 3", _plain_mean),
        ),
    ),
)
