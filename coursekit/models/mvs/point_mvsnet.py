r"""Point-MVSNet: a coarse depth map refined as a point cloud, iteratively, by PointFlow.

Chen, Han, Xu, Su, "Point-Based Multi-View Stereo Network", ICCV 2019 (arXiv:1908.04422).
The slides "Idea 2: Point-based MVS" and "Results on DTU benchmark":

1. a **coarse depth** map :math:`d` of the reference view (iteration 0; the paper takes it from
   a small MVSNet — here any coarse depth is an input, e.g. the plane-sweep baseline or MVSNet
   of :mod:`coursekit.models.mvs`) is unprojected to points :math:`p`
   (:func:`coursekit.geometry.depth_fusion.depth_to_points`);
2. **hypothesised points along the camera direction** (:func:`hypothesis_points`): for every
   pixel, :math:`2m + 1` points at depths :math:`d + k s`, :math:`k = -m..m`, all on the pixel's
   viewing ray (interval :math:`s`):

   .. math::  \tilde p_k = \mathrm{unproject}\big(u, v,\ d(u, v) + k\,s\big), \qquad k = -m, \dots, m

3. **PointFlow** (:class:`PointFlow`): every hypothesis gets the *variance* over views of
   the multi-scale image features it projects to (:func:`point_features`, MVSNet's variance
   metric on points), EdgeConv over the k-NN graph of the points (shared by the hypotheses)
   mixes neighbours, an MLP scores each hypothesis and a softmax over the :math:`2m + 1` gives
   the predicted displacement

   .. math::  \Delta d = \sum_{k=-m}^{m} \operatorname{softmax}_k(\text{score})\; k\,s, \qquad d \leftarrow d + \Delta d

4. **iterative refinement with up-sampling** (:meth:`PointMVSNet.forward`): each iteration may
   up-sample the depth map (denser points: "spawn more points") and shrink the interval,
   following the slide's table — iteration 1 at the coarse resolution and interval, iteration 2
   at twice the resolution and 0.75 of the interval, iteration 3 at twice again and 0.15
   (5.30 -> 5.30 -> 4.00 -> 0.80 mm): :data:`PAPER_SCHEDULE`.

:func:`iteration_table` measures, per iteration, the slide's columns: accuracy, completeness,
overall, f-score, depth-map resolution, depth interval, memory, runtime.

Conventions: depth maps ``(B, h, w)`` (camera ``z``, 0 = no depth); a depth map of size
``(h, w)`` covers the whole ``(H, W)`` image, so its intrinsics are
:func:`coursekit.geometry.homography.scale_intrinsics` of the image's. Views ``(B, V, ...)``
with view 0 the reference. Features are sampled with
:func:`coursekit.models.mvs.surfacenet.sample_views_at_points`.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.depth_fusion import depth_to_points
from ...geometry.homography import scale_intrinsics
from ...geometry.neighbors import knn
from ...geometry.validate import check_count
from ...metrics.dtu import dtu_metrics
from ...nn.edgeconv import EdgeConv
from .memory import peak_tensor_memory
from .surfacenet import _check_views, sample_views_at_points

__all__ = [
    "PAPER_SCHEDULE",
    "depth_hypotheses",
    "hypothesis_points",
    "FeaturePyramid",
    "point_features",
    "PointFlow",
    "PointMVSNet",
    "upsample_depth",
    "refinement_loss",
    "iteration_table",
]

#: ``(up-sampling factor, interval as a fraction of the coarse interval)`` of iterations 1..3
#: on the slide's table (160x120 -> 160x120 -> 320x240 -> 640x480; 5.30 -> 5.30 -> 4.00 -> 0.80 mm).
PAPER_SCHEDULE: tuple[tuple[int, float], ...] = ((1, 1.0), (2, 4.0 / 5.3), (2, 0.8 / 5.3))


def _check_depth(depth: torch.Tensor) -> None:
    if not isinstance(depth, torch.Tensor) or depth.dim() != 3 or not depth.dtype.is_floating_point:
        raise ValueError(f"depth must be a float (B, h, w) tensor, got {tuple(getattr(depth, 'shape', ()))}")


def _map_intrinsics(K: torch.Tensor, image_size: tuple[int, int], map_size: tuple[int, int]) -> torch.Tensor:
    return scale_intrinsics(K, map_size[1] / image_size[1], map_size[0] / image_size[0])


def _map_points(depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """World points ``(B, h * w, 3)`` of depth maps ``(B, h, w)`` covering ``image_size`` images."""
    _check_depth(depth)
    return depth_to_points(depth, _map_intrinsics(K, image_size, tuple(depth.shape[-2:])), R, t)


def depth_hypotheses(depth: torch.Tensor, interval, m: int) -> torch.Tensor:
    r"""The ``2m + 1`` hypothesised depths of every pixel, :math:`d + k s`, :math:`k = -m..m`.

    Args:
        depth: ``(B, h, w)``.
        interval: :math:`s`, a float or ``(B,)``.
        m: hypotheses on each side.

    Returns:
        ``(B, 2m + 1, h, w)``, ordered by ``k``.
    """
    _check_depth(depth)
    check_count(m + 1, "m + 1")
    k = torch.arange(-m, m + 1, dtype=depth.dtype, device=depth.device)
    s = torch.as_tensor(interval, dtype=depth.dtype, device=depth.device).reshape(-1, 1, 1, 1)
    return depth.unsqueeze(1) + k.reshape(1, -1, 1, 1) * s


def hypothesis_points(depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                      interval, m: int) -> torch.Tensor:
    r"""Point-MVSNet's hypothesised points along the camera direction.

    .. math::  \tilde p_k(u, v) = \mathrm{unproject}\big(u, v,\ d(u, v) + k\,s\big), \qquad k = -m..m

    All :math:`2m+1` points of a pixel lie on its viewing ray, one interval apart in depth.

    Args:
        depth: ``(B, h, w)`` current depth.
        K, R, t: reference camera (image pixels), ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)``.
        image_size: ``(H, W)``.
        interval: :math:`s`; m: hypotheses on each side.

    Returns:
        ``(B, 2m + 1, h * w, 3)`` world points.
    """
    hyp = depth_hypotheses(depth, interval, m)
    B, n, h, w = hyp.shape
    flat = _map_points(hyp.reshape(B * n, h, w), K.repeat_interleave(n, 0), R.repeat_interleave(n, 0),
                           t.repeat_interleave(n, 0), image_size)
    return flat.reshape(B, n, h * w, 3)


class FeaturePyramid(nn.Module):
    """Shared 2D feature pyramid: ``(B, 3, H, W)`` -> features at strides 1, 2, 4.

    Args:
        channels: channels at the three levels.

    Returns (forward):
        list of ``(B, C_l, H / 2^l, W / 2^l)``.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 32)):
        super().__init__()
        c0, c1, c2 = channels
        block = lambda ci, co, s: nn.Sequential(nn.Conv2d(ci, co, 3, stride=s, padding=1, bias=False),  # noqa: E731
                                                nn.BatchNorm2d(co), nn.ReLU(inplace=True))
        self.l0 = nn.Sequential(block(3, c0, 1), block(c0, c0, 1))
        self.l1 = nn.Sequential(block(c0, c1, 2), block(c1, c1, 1))
        self.l2 = nn.Sequential(block(c1, c2, 2), block(c2, c2, 1))
        self.channels = tuple(channels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.l0(images)
        f1 = self.l1(f0)
        return [f0, f1, self.l2(f1)]


def point_features(pyramid: Sequence[torch.Tensor], points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                   image_size: tuple[int, int]) -> torch.Tensor:
    r"""Multi-scale variance features of points: how much the views disagree about each point.

    .. math::  c(p) = \big\Vert_{l} \frac{1}{V} \sum_{v=1}^{V} \big(F^l_v(\pi_v(p)) - \bar F^l(p)\big)^2

    Args:
        pyramid: list of ``(B, V, C_l, h_l, w_l)`` feature maps of all views (view 0 the reference).
        points: ``(B, N, 3)`` world points.
        K, R, t: ``(B, V, ...)`` cameras (image pixels); image_size: ``(H, W)``.

    Returns:
        ``(B, N, sum_l C_l)``.
    """
    out = []
    for level in pyramid:
        values, _ = sample_views_at_points(level, points, K, R, t, image_size)  # (B, V, C, N)
        out.append(values.var(dim=1, unbiased=False).transpose(1, 2))
    return torch.cat(out, -1)


class PointFlow(nn.Module):
    r"""PointFlow: per-point displacement along the ray from features of its hypothesised points.

    For hypothesis :math:`k` of point :math:`i` the input is :math:`[c(\tilde p_{k,i}),\ k]`;
    two EdgeConvs on the k-NN graph of the current points (the same graph for every
    :math:`k`: neighbour :math:`j`'s hypothesis :math:`k` lies at the same offset along its ray)
    and an MLP score each hypothesis; then

    .. math::  \Delta d_i = \sum_k \operatorname{softmax}_k(\text{score}_{k,i})\; k\,s

    Args:
        in_channels: variance feature channels (sum of the pyramid's).
        width: EdgeConv channels.
        neighbours: k of the k-NN graph (point itself included).

    Shapes:
        ``features (B, 2m+1, N, C)``, ``idx (B, N, k)`` -> ``probability (B, 2m+1, N)``.
    """

    def __init__(self, in_channels: int, width: int = 32, neighbours: int = 8):
        super().__init__()
        self.neighbours = int(neighbours)
        self.edge1 = EdgeConv(in_channels + 1, width, self.neighbours)
        self.edge2 = EdgeConv(width, width, self.neighbours)
        self.score = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(inplace=True), nn.Linear(width, 1))

    def forward(self, features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        B, n, N, _ = features.shape
        m = (n - 1) // 2
        k = torch.arange(-m, m + 1, dtype=features.dtype, device=features.device)
        x = torch.cat([features, k.reshape(1, n, 1, 1).expand(B, n, N, 1)], -1).reshape(B * n, N, -1)
        idx = idx.repeat_interleave(n, 0)
        x1 = self.edge1(x, idx)
        x2 = self.edge2(x1, idx)
        score = self.score(torch.cat([x1, x2], -1)).reshape(B, n, N)
        return score.softmax(dim=1)


def upsample_depth(depth: torch.Tensor, factor: int) -> torch.Tensor:
    """Up-sample depth maps ``(B, h, w) -> (B, factor h, factor w)`` (nearest: no depth mixed across edges)."""
    _check_depth(depth)
    if factor == 1:
        return depth
    return F.interpolate(depth.unsqueeze(1), scale_factor=factor, mode="nearest").squeeze(1)


class PointMVSNet(nn.Module):
    r"""Point-MVSNet's refinement network: feature pyramid + PointFlow, applied iteratively.

    Args:
        hypotheses: :math:`m` (the paper uses ``2m + 1 = 5``).
        channels: :class:`FeaturePyramid` channels.
        width: PointFlow channels.
        neighbours: k-NN graph size (paper 16).

    Shapes:
        ``coarse_depth (B, h, w)``, ``images (B, V, 3, H, W)``, ``K, R (B, V, 3, 3)``,
        ``t (B, V, 3)``, ``interval`` float (coarse depth interval) ->
        list of depth maps, iteration 0 (the input) first, then one per schedule step.

    >>> from coursekit.geometry.camera import fov_intrinsics, ring_cameras
    >>> R, t = ring_cameras(3, distance=2.0); K = fov_intrinsics(50.0, (16, 16)).expand(3, 3, 3)
    >>> net = PointMVSNet(channels=(4, 4, 4), width=8)
    >>> depths = net(torch.full((1, 4, 4), 2.0), torch.rand(1, 3, 3, 16, 16), K[None], R[None], t[None], 0.1)
    >>> [tuple(d.shape) for d in depths]
    [(1, 4, 4), (1, 4, 4), (1, 8, 8), (1, 16, 16)]
    """

    def __init__(self, hypotheses: int = 2, channels: Sequence[int] = (8, 16, 32), width: int = 32, neighbours: int = 8):
        super().__init__()
        self.m = int(hypotheses)
        self.pyramid = FeaturePyramid(channels)
        self.flow = PointFlow(sum(channels), width, neighbours)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid of every view, ``[(B, V, C_l, H_l, W_l)]`` (compute once, reuse per iteration)."""
        B, V = images.shape[:2]
        return [f.unflatten(0, (B, V)) for f in self.pyramid(images.flatten(0, 1))]

    def step(self, depth: torch.Tensor, pyramid: Sequence[torch.Tensor], K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
             image_size: tuple[int, int], interval: float) -> tuple[torch.Tensor, torch.Tensor]:
        r"""One PointFlow iteration: :math:`d \leftarrow d + \sum_k p_k\, k\, s`.

        Returns:
            refined depth ``(B, h, w)`` and hypothesis probabilities ``(B, 2m+1, h, w)``.
        """
        B, h, w = depth.shape
        hyp = hypothesis_points(depth, K[:, 0], R[:, 0], t[:, 0], image_size, interval, self.m)  # (B, n, N, 3)
        n = hyp.shape[1]
        feats = point_features(pyramid, hyp.reshape(B, n * h * w, 3), K, R, t, image_size).reshape(B, n, h * w, -1)
        with torch.no_grad():
            idx = knn(hyp[:, self.m], hyp[:, self.m], min(self.flow.neighbours, h * w))[1]
        if idx.shape[-1] < self.flow.neighbours:  # tiny maps: repeat the nearest to fill the graph
            idx = torch.cat([idx, idx[..., :1].expand(-1, -1, self.flow.neighbours - idx.shape[-1])], -1)
        prob = self.flow(feats, idx)
        k = torch.arange(-self.m, self.m + 1, dtype=depth.dtype, device=depth.device)
        delta = (prob * (k * interval).reshape(1, n, 1)).sum(1).reshape(B, h, w)
        return depth + delta * (depth > 0), prob.reshape(B, n, h, w)

    def forward(self, coarse_depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                interval: float, schedule: Sequence[tuple[int, float]] = PAPER_SCHEDULE) -> list[torch.Tensor]:
        _check_depth(coarse_depth)
        _check_views(images, K, R, t)
        image_size = tuple(images.shape[-2:])
        pyramid = self.features(images)
        depths, depth = [coarse_depth], coarse_depth
        for factor, fraction in schedule:
            depth, _ = self.step(upsample_depth(depth, factor), pyramid, K, R, t, image_size, interval * fraction)
            depths.append(depth)
        return depths


def refinement_loss(depths: Sequence[torch.Tensor], gt_depth: torch.Tensor, gt_mask: torch.Tensor,
                    weights: Sequence[float] | None = None) -> torch.Tensor:
    r"""Point-MVSNet's training loss: masked mean absolute depth error of every refined iteration.

    .. math::  L = \sum_{i \ge 1} \lambda_i \frac{1}{|M_i|} \sum_{p \in M_i} |d_i(p) - d^{gt}_i(p)|

    with the ground truth resized (nearest) to each iteration's resolution.

    Args:
        depths: the list returned by :class:`PointMVSNet` (iteration 0 is skipped).
        gt_depth: ``(B, H, W)``; gt_mask: ``(B, H, W)`` bool.
        weights: :math:`\lambda_i` (default all 1).

    Returns:
        scalar.
    """
    weights = weights or [1.0] * (len(depths) - 1)
    total = 0.0
    for lam, d in zip(weights, depths[1:]):
        gt = F.interpolate(gt_depth.unsqueeze(1), size=d.shape[-2:], mode="nearest").squeeze(1)
        mask = F.interpolate(gt_mask.unsqueeze(1).float(), size=d.shape[-2:], mode="nearest").squeeze(1) > 0.5
        total = total + lam * (d - gt)[mask].abs().mean()
    return total


@torch.no_grad()
def iteration_table(model: PointMVSNet, coarse_depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor,
                    t: torch.Tensor, interval: float, gt_points: torch.Tensor, mask: torch.Tensor, threshold: float = 0.0005,
                    max_dist: float = 0.02, schedule: Sequence[tuple[int, float]] = PAPER_SCHEDULE,
                    coarse_seconds: float = 0.0) -> list[dict]:
    r"""The slide's per-iteration table for one reference view: metrics, resolution, interval, memory, runtime.

    Iteration 0 is the coarse depth; iteration :math:`i` runs the first :math:`i` schedule steps.
    Runtime and memory are cumulative from the images (plus ``coarse_seconds`` for the coarse
    stage, measured by the caller), like the paper's. Clouds are the reference view's pixels
    inside ``mask`` (resized nearest to each resolution), unprojected.

    Args:
        model: a (trained) :class:`PointMVSNet` (put in eval mode here).
        coarse_depth: ``(1, h, w)``; images: ``(1, V, 3, H, W)``; K, R, t: ``(1, V, ...)``.
        interval: coarse depth interval :math:`s_0`.
        gt_points: ``(M, 3)`` ground-truth surface points seen by the reference view.
        mask: ``(1, H, W)`` bool, where the reference view should have depth.
        threshold, max_dist: f-score threshold and DTU outlier cut-off
            (:func:`coursekit.metrics.dtu.dtu_metrics`; scenes in metres: ``0.0005, 0.02``).
        schedule: ``(factor, fraction)`` per iteration.
        coarse_seconds: time of the coarse stage, added to every row's runtime.

    Returns:
        one dict per iteration: ``iteration, accuracy, completeness, overall, fscore`` (percent), ``resolution``
        (``"w x h"``), ``interval``, ``memory_MiB`` (peak tensor memory,
        :func:`coursekit.models.mvs.memory.peak_tensor_memory`), ``runtime_s``.
    """
    model.eval()
    image_size = tuple(images.shape[-2:])
    rows = []
    for i in range(len(schedule) + 1):
        def run():
            return model(coarse_depth, images, K, R, t, interval, schedule[:i])[-1]

        start = time.perf_counter()
        depth = run()
        seconds = time.perf_counter() - start + coarse_seconds
        _, peak = peak_tensor_memory(run)  # a second run: the tracker slows the operators down
        h, w = depth.shape[-2:]
        m = F.interpolate(mask[:, None].float(), size=(h, w), mode="nearest")[:, 0] > 0.5
        points = _map_points(depth, K[:, 0], R[:, 0], t[:, 0], image_size)[0][(m & (depth > 0))[0].reshape(-1)]
        metrics = dtu_metrics(points, gt_points, tau=threshold, max_dist=max_dist)
        fraction = 1.0 if i == 0 else schedule[i - 1][1]
        rows.append(dict(iteration=i, accuracy=metrics["acc"], completeness=metrics["comp"], overall=metrics["overall"],
                         fscore=metrics["fscore"], resolution=f"{w}x{h}", interval=interval * fraction, memory_MiB=peak / 2**20,
                         runtime_s=seconds))
    return rows
