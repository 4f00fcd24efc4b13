r"""Exercises of notebook 03 on point networks: PointNet's symmetric function, PointNet++ grouping,
EdgeConv, and the Monte-Carlo convolution with density weights.

The cases are float64, batched, non-square (``N != C``, ``C != C'``), with clustered clouds so
that sampling density matters, balls both under- and over-full, features whose first three
channels are not their nearest-neighbour structure, and biases that push some channels below
zero for every point — each listed mistake changes the answer on them. The references call the
library (:mod:`coursekit.nn`, :mod:`coursekit.geometry`), so the notebook and the models agree.
"""

from __future__ import annotations

import torch

from ..geometry.neighbors import ball_query, group, knn
from ..geometry.sampling import farthest_point_sample
from ..nn.edgeconv import edge_messages, feature_knn
from ..nn.pointconv import inverse_density_weights, kernel_density
from .core import Case, Exercise, Mistake


def _clustered(gen: torch.Generator, b: int, n: int) -> torch.Tensor:
    """Clouds in [-1, 1]^3 with a third of the points packed in a small cluster (non-uniform density)."""
    spread = torch.rand(b, n - n // 3, 3, generator=gen, dtype=torch.float64) * 2 - 1
    centre = torch.rand(b, 1, 3, generator=gen, dtype=torch.float64) - 0.5
    cluster = centre + 0.08 * torch.randn(b, n // 3, 3, generator=gen, dtype=torch.float64)
    cloud = torch.cat([spread, cluster], dim=1)
    return cloud[:, torch.randperm(n, generator=gen)]


# ------------------------------------------------------------------ PointNet's symmetric function

def pointnet_symmetric(points, W1, b1, W2, b2):
    r"""PointNet's :math:`f = \gamma \circ \max \circ h` with one-layer :math:`h` and :math:`\gamma`.

    .. math::  \text{logits}_b = \Big(\max_{i} \operatorname{ReLU}(x_{bi} W_1 + b_1)\Big) W_2 + b_2

    Args: points ``(B, N, 3)``, W1 ``(3, C)``, b1 ``(C,)``, W2 ``(C, K)``, b2 ``(K,)``.
    Returns: ``(B, K)``.
    """
    return torch.relu(points @ W1 + b1).amax(dim=1) @ W2 + b2


def _symmetric_cases(gen: torch.Generator) -> list[Case]:
    def case(label, b, n, c, k, grad=()):
        pts = torch.randn(b, n, 3, generator=gen, dtype=torch.float64)
        w1 = torch.randn(3, c, generator=gen, dtype=torch.float64)
        b1 = torch.randn(c, generator=gen, dtype=torch.float64)
        b1[: c // 3] -= 20.0  # these channels are negative for every point: ReLU matters
        w2 = torch.randn(c, k, generator=gen, dtype=torch.float64)
        b2 = torch.randn(k, generator=gen, dtype=torch.float64) - 1.0
        return Case(label, (pts, w1, b1, w2, b2), grad=grad)

    return [
        case("a batch of 2 clouds of 9 points, C = 9 hidden channels, K = 5 classes", 2, 9, 9, 5),
        case("a batch of 3 clouds of 20 points, C = 6, K = 4", 3, 20, 6, 4, grad=(0, 1, 3)),
        case("one cloud of 7 points, C = 12, K = 3", 1, 7, 12, 3),
    ]


# ------------------------------------------------------------------ PointNet++ sample and group

def set_abstraction_group(points, n_centres, radius, n_samples):
    r"""PointNet++ sampling and grouping: FPS centres (start index 0), ball query, relative coordinates.

    .. math::  c = \operatorname{FPS}(x, M), \qquad g_{mj} = x_{\text{idx}[m, j]} - c_m

    with ``idx`` the first ``S`` points (in index order) strictly within ``radius`` of
    :math:`c_m`, short rows padded with the first index found.

    Returns: ``(centres (B, M, 3), grouped (B, M, S, 3))``.
    """
    centres = group(points, farthest_point_sample(points, n_centres, start_idx=0))
    idx = ball_query(centres, points, radius, n_samples)
    return centres, group(points, idx) - centres.unsqueeze(2)


def _group_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("a batch of 2 clustered clouds of 64 points, 8 centres, r = 0.3, S = 8",
             (_clustered(gen, 2, 64), 8, 0.3, 8)),
        Case("one clustered cloud of 45 points, 6 centres, r = 0.5, S = 5", (_clustered(gen, 1, 45), 6, 0.5, 5)),
        Case("a batch of 3 clouds of 30 points, 4 centres, r = 0.35, S = 12", (_clustered(gen, 3, 30), 4, 0.35, 12)),
    ]


def _sa_centres(points, n_centres):
    return group(points, farthest_point_sample(points, n_centres, start_idx=0))


def _sa_absolute(points, n_centres, radius, n_samples):
    centres = _sa_centres(points, n_centres)
    return centres, group(points, ball_query(centres, points, radius, n_samples))


def _sa_flipped(points, n_centres, radius, n_samples):
    centres, grouped = set_abstraction_group(points, n_centres, radius, n_samples)
    return centres, -grouped


def _sa_knn(points, n_centres, radius, n_samples):
    centres = _sa_centres(points, n_centres)
    return centres, group(points, knn(centres, points, n_samples)[1]) - centres.unsqueeze(2)


def _sa_first_points(points, n_centres, radius, n_samples):
    centres = points[:, :n_centres]
    return centres, group(points, ball_query(centres, points, radius, n_samples)) - centres.unsqueeze(2)


def _sa_zero_padding(points, n_centres, radius, n_samples):
    centres = _sa_centres(points, n_centres)
    idx, counts = ball_query(centres, points, radius, n_samples, return_counts=True)
    valid = torch.arange(n_samples) < counts.unsqueeze(-1)
    return centres, (group(points, idx) - centres.unsqueeze(2)) * valid.unsqueeze(-1)


def _sa_nearest_in_ball(points, n_centres, radius, n_samples):
    centres = _sa_centres(points, n_centres)
    d2, idx = knn(centres, points, points.shape[1])
    inside = d2 < radius ** 2
    first = idx[..., :1].expand_as(idx)
    idx = torch.where(inside, idx, first)[..., :n_samples]
    return centres, group(points, idx) - centres.unsqueeze(2)


# ------------------------------------------------------------------ EdgeConv

def edgeconv(x, k, W):
    r"""One EdgeConv layer without normalisation, on the kNN graph of ``x`` itself (point included).

    .. math::  x'_i = \max_{j \in \mathcal{N}_k(i)} \operatorname{ReLU}\big([x_i,\ x_j - x_i]\, W\big)

    with :math:`\mathcal{N}_k(i)` the ``k`` nearest points to :math:`x_i` in **feature space**
    (all ``C`` channels), the point itself included (it is its own nearest neighbour).

    Args: x ``(B, N, C)``, k, W ``(2C, C')``.  Returns: ``(B, N, C')``.
    """
    return torch.relu(edge_messages(x, feature_knn(x, k), W)).amax(dim=2)


def _edge_cases(gen: torch.Generator) -> list[Case]:
    def features(b, n, c):
        x = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
        x[..., 3:] *= 3.0  # the last channels dominate distances: xyz-only neighbours differ
        return x

    return [
        Case("a batch of 2 clouds of 16 points, C = 5, k = 4, C' = 7",
             (features(2, 16, 5), 4, torch.randn(10, 7, generator=gen, dtype=torch.float64))),
        Case("one cloud of 12 points, C = 6, k = 3, C' = 4",
             (features(1, 12, 6), 3, torch.randn(12, 4, generator=gen, dtype=torch.float64)), grad=(0, 2)),
        Case("a batch of 3 clouds of 10 points, C = 4, k = 5, C' = 3",
             (features(3, 10, 4), 5, torch.randn(8, 3, generator=gen, dtype=torch.float64))),
    ]


def _edge_pairs(x, k):
    idx = feature_knn(x, k)
    return x.unsqueeze(2).expand(-1, -1, k, -1), group(x, idx)


def _edge_xj(x, k, W):
    xi, xj = _edge_pairs(x, k)
    return torch.relu(torch.cat([xi, xj], -1) @ W).amax(dim=2)


def _edge_swapped(x, k, W):
    xi, xj = _edge_pairs(x, k)
    return torch.relu(torch.cat([xj - xi, xi], -1) @ W).amax(dim=2)


def _edge_mean(x, k, W):
    return torch.relu(edge_messages(x, feature_knn(x, k), W)).mean(dim=2)


def _edge_sum(x, k, W):
    return torch.relu(edge_messages(x, feature_knn(x, k), W)).sum(dim=2)


def _edge_xyz(x, k, W):
    return torch.relu(edge_messages(x, knn(x[..., :3].contiguous(), x[..., :3].contiguous(), k)[1], W)).amax(dim=2)


def _edge_no_self(x, k, W):
    return torch.relu(edge_messages(x, feature_knn(x, k + 1)[..., 1:], W)).amax(dim=2)


def _edge_no_relu(x, k, W):
    return edge_messages(x, feature_knn(x, k), W).amax(dim=2)


# ------------------------------------------------------------------ Monte-Carlo convolution

def _unnormalised_density(points, bandwidth, two=2.0):
    d2 = (points.unsqueeze(2) - points.unsqueeze(1)).pow(2).sum(-1)
    return torch.exp(-d2 / (two * bandwidth ** 2)).mean(-1)


def _ball(points, centres, radius):
    idx, counts = ball_query(centres, points, radius, points.shape[1], return_counts=True)
    return idx, torch.arange(points.shape[1]) < counts.unsqueeze(-1)


def _mc_apply(points, features, centres, radius, W, weights_fn, sign=1.0):
    idx, valid = _ball(points, centres, radius)
    delta = sign * (group(points, idx) - centres.unsqueeze(2))
    w = weights_fn(idx, valid).to(features.dtype)
    return torch.einsum("bms,bmsc,bmsd,dce->bme", w, group(features, idx), delta, W)


def mc_conv(points, features, centres, radius, bandwidth, W):
    r"""Monte-Carlo convolution with a linear kernel and self-normalised inverse-density weights.

    .. math::  \hat p_j = \frac{1}{N}\sum_{k=1}^{N} \exp\Big(-\frac{\lVert x_j - x_k\rVert^2}{2h^2}\Big), \qquad
               w_{mj} = \frac{1/\hat p_j}{\sum_{k \in \mathcal{N}(m)} 1/\hat p_k}, \qquad
               \text{out}_m = \sum_{j \in \mathcal{N}(m)} w_{mj}\ f_j\, g(x_j - c_m)

    with :math:`\mathcal{N}(m) = \{ j : \lVert x_j - c_m \rVert < r \}` (every point in the ball,
    no cap) and the linear kernel :math:`g(\delta) = \sum_d \delta_d W_d \in \mathbb{R}^{C \times C'}`.

    Args: points ``(B, N, 3)``, features ``(B, N, C)``, centres ``(B, M, 3)``, radius, bandwidth,
    W ``(3, C, C')``.  Returns: ``(B, M, C')``.
    """
    density = kernel_density(points, bandwidth)
    return _mc_apply(points, features, centres, radius, W, lambda idx, valid: inverse_density_weights(density, idx, valid))


def _mc_cases(gen: torch.Generator) -> list[Case]:
    def case(label, b, n, m, radius, bandwidth, c, c_out, grad=()):
        pts = _clustered(gen, b, n)
        centres = pts[:, torch.randperm(n, generator=gen)[:m]].clone()
        feats = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
        w = torch.randn(3, c, c_out, generator=gen, dtype=torch.float64)
        return Case(label, (pts, feats, centres, radius, bandwidth, w), grad=grad)

    return [
        case("a batch of 2 clustered clouds of 60 points, 6 centres, r = 0.6, h = 0.15, C = 3, C' = 4",
             2, 60, 6, 0.6, 0.15, 3, 4),
        case("one clustered cloud of 45 points, 5 centres, r = 0.8, h = 0.2, C = 2, C' = 5",
             1, 45, 5, 0.8, 0.2, 2, 5, grad=(1, 5)),
        case("a batch of 3 clustered clouds of 30 points, 3 centres, r = 1.0, h = 0.1, C = 4, C' = 2",
             3, 30, 3, 1.0, 0.1, 4, 2),
    ]


def _mc_weights(points, bandwidth, rule, two=2.0):
    density = _unnormalised_density(points, bandwidth, two)

    def weights(idx, valid):
        p = group(density.unsqueeze(-1), idx).squeeze(-1)
        n = valid.sum(-1, keepdim=True)
        if rule == "uniform":
            return valid / n
        if rule == "density":
            return p * valid / (p * valid).sum(-1, keepdim=True)
        if rule == "sum":
            return valid / p
        if rule == "count":
            return valid / p / n
        return (valid / p) / (valid / p).sum(-1, keepdim=True)
    return weights


def _mc_mistake(rule, sign=1.0, two=2.0):
    def answer(points, features, centres, radius, bandwidth, W):
        return _mc_apply(points, features, centres, radius, W, _mc_weights(points, bandwidth, rule, two), sign)
    return answer


EXERCISES = (
    Exercise(
        name="classification.pointnet_symmetric",
        points=2,
        reference=pointnet_symmetric,
        make_cases=_symmetric_cases,
        what="logits",
        mistakes=(
            Mistake("you averaged over the points (mean pooling); PointNet's symmetric function g is the max over the points",
                    lambda p, W1, b1, W2, b2: torch.relu(p @ W1 + b1).mean(dim=1) @ W2 + b2),
            Mistake("you summed over the points; PointNet pools with the max over the points (dim=1)",
                    lambda p, W1, b1, W2, b2: torch.relu(p @ W1 + b1).sum(dim=1) @ W2 + b2),
            Mistake("you took the max over the channels (the last axis); pool over the points, dim=1 of (B, N, C)",
                    lambda p, W1, b1, W2, b2: torch.relu(p @ W1 + b1).amax(dim=2) @ W2 + b2),
            Mistake("you took the max over the batch (dim=0); each cloud is pooled over its own points, dim=1",
                    lambda p, W1, b1, W2, b2: torch.relu(p @ W1 + b1).amax(dim=0) @ W2 + b2),
            Mistake("you left out the ReLU in h: apply it to x W1 + b1 before pooling",
                    lambda p, W1, b1, W2, b2: (p @ W1 + b1).amax(dim=1) @ W2 + b2),
            Mistake("you applied a ReLU to the logits; gamma here is a single linear layer (no activation on the output)",
                    lambda p, W1, b1, W2, b2: torch.relu(torch.relu(p @ W1 + b1).amax(dim=1) @ W2 + b2)),
            Mistake("you left out the bias b1 of h",
                    lambda p, W1, b1, W2, b2: torch.relu(p @ W1).amax(dim=1) @ W2 + b2),
        ),
    ),
    Exercise(
        name="classification.set_abstraction_group",
        points=2,
        reference=set_abstraction_group,
        make_cases=_group_cases,
        what="(centres, grouped coordinates)",
        forbidden=("SetAbstraction", "relative_coordinates", "neighbourhoods"),
        mistakes=(
            Mistake("the grouped coordinates are absolute: subtract each region's centre (x_j - c_m) so the "
                    "mini-PointNet sees local shape, not position", _sa_absolute),
            Mistake("the relative coordinates have the wrong sign: use neighbour minus centre, x_j - c_m", _sa_flipped),
            Mistake("you grouped the k nearest neighbours; PointNet++ uses a ball query (only points closer than "
                    "the radius, padded with the first one found) so regions have a fixed scale", _sa_knn),
            Mistake("your centres are the first M points; sample them with farthest point sampling starting at index 0",
                    _sa_first_points),
            Mistake("you padded short balls with zeros; PointNet++ repeats the first neighbour found in the empty slots",
                    _sa_zero_padding),
            Mistake("you kept the S nearest points of each ball; PointNet++'s ball query keeps the first S in index "
                    "order (scan the points 0, 1, 2, ... and keep those inside)", _sa_nearest_in_ball),
        ),
    ),
    Exercise(
        name="classification.edgeconv",
        points=2,
        reference=edgeconv,
        make_cases=_edge_cases,
        what="EdgeConv output",
        forbidden=("edge_messages", "EdgeConv"),
        mistakes=(
            Mistake("the edge feature uses x_j; DGCNN's edge function is h(x_i, x_j - x_i): concatenate [x_i, x_j - x_i]",
                    _edge_xj),
            Mistake("the concatenation is in the wrong order: [x_i, x_j - x_i] (W's first C rows act on x_i)",
                    _edge_swapped),
            Mistake("you averaged over the neighbours; EdgeConv aggregates with the max", _edge_mean),
            Mistake("you summed over the neighbours; EdgeConv aggregates with the max", _edge_sum),
            Mistake("you found neighbours with the first three channels only; the dynamic graph uses distances in "
                    "the full feature space (all C channels)", _edge_xyz),
            Mistake("you left the point itself out of its neighbours; here (as in DGCNN's code) the k nearest "
                    "include the point itself", _edge_no_self),
            Mistake("you left out the ReLU before the max", _edge_no_relu),
        ),
    ),
    Exercise(
        name="classification.mc_conv",
        points=2,
        reference=mc_conv,
        make_cases=_mc_cases,
        what="convolution output",
        forbidden=("kernel_density", "inverse_density_weights", "PointConv"),
        mistakes=(
            Mistake("you did not weight by the inverse density: every sample counts the same, so densely sampled "
                    "parts dominate; weight each neighbour by 1 / p_j", _mc_mistake("uniform")),
            Mistake("you weighted by the density instead of its inverse: Monte-Carlo integration divides each "
                    "sample by the density it was drawn with", _mc_mistake("density")),
            Mistake("you summed f_j g / p_j without normalising; divide by the sum of the inverse densities over "
                    "the ball so the weights sum to one", _mc_mistake("sum")),
            Mistake("you divided by the number of neighbours; normalise by the sum of the inverse densities "
                    "(sum_k 1 / p_k) over the ball instead", _mc_mistake("count")),
            Mistake("the kernel is evaluated at c_m - x_j; use the neighbour relative to the centre, x_j - c_m",
                    _mc_mistake("inverse", sign=-1.0)),
            Mistake("the Gaussian is exp(-d^2 / h^2); the kernel density uses exp(-d^2 / (2 h^2))",
                    _mc_mistake("inverse", two=1.0)),
        ),
    ),
)
