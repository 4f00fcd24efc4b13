"""Notebook 06's exercises: plane-sweep warping, soft argmin, the variance cost volume, the
fusion consistency check and DTU's accuracy/completeness."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.mvs import make_mvs_scene
from ..geometry.camera import intrinsics, look_at, pixel_grid, project, unproject
from ..geometry.depth_fusion import reprojection_errors
from ..geometry.homography import homography_warp, pixels_to_grid
from ..metrics.dtu import accuracy_completeness, nearest_distances
from ..models.mvs.cost_volume import soft_argmin, variance_cost_volume
from .core import Case, Exercise, Mistake

D64 = torch.float64


# ----------------------------------------------------------------------------- homography warp

def _cameras(gen: torch.Generator, B: int):
    """Reference/source pairs with off-centre principal points and fx != fy (so K^T != K^-1 shows)."""
    fx = 6 + 2 * torch.rand(B, generator=gen, dtype=D64)
    K1 = intrinsics(fx, fx * 0.9, 3.1 + torch.rand(B, generator=gen, dtype=D64), 2.2 + 0.5 * torch.rand(B, generator=gen, dtype=D64), D64)
    K2 = intrinsics(fx * 1.1, fx, 3.6 + torch.zeros(B, dtype=D64), 2.4 + torch.zeros(B, dtype=D64), D64)
    target = torch.tensor([0.1, -0.1, 3.0], dtype=D64)
    eye1 = 0.1 * torch.randn(B, 3, generator=gen, dtype=D64)
    eye2 = eye1 + torch.tensor([0.5, 0.2, -0.1], dtype=D64)
    R1, t1 = look_at(eye1, target)
    R2, t2 = look_at(eye2, target)
    return K1, R1, t1, K2, R2, t2


def _warp_cases(gen):
    cases = []
    for B, C, H, W, depths in ((2, 3, 5, 7, [2.4, 3.0, 3.9]), (1, 1, 6, 4, [2.0, 2.9, 3.3, 4.5])):
        src = torch.rand(B, C, H, W, generator=gen, dtype=D64)
        cases.append(Case(f"batch of {B}, {C}-channel {H}x{W} source, {len(depths)} planes",
                          (src, *_cameras(gen, B), torch.tensor(depths, dtype=D64)), grad=(0,)))
    return cases


def _warp_variant(src, K1, R1, t1, K2, R2, t2, depths, *, inv=torch.linalg.inv, flip=False, swap=False,
                  align=False, centre=0.5):
    """One student-style implementation with switches for each mistake."""
    B, C, H, W = src.shape
    R_rel = R2 @ R1.transpose(-1, -2)
    t_rel = t2 - (R_rel @ t1[..., None])[..., 0]
    d = depths.flip(0) if flip else depths
    e3 = torch.tensor([0.0, 0.0, 1.0], dtype=src.dtype)
    Hm = K2[:, None] @ (R_rel[:, None] + t_rel[:, None, :, None] * e3 / d[None, :, None, None]) @ inv(K1)[:, None]
    v, u = torch.meshgrid(torch.arange(H, dtype=src.dtype), torch.arange(W, dtype=src.dtype), indexing="ij")
    p = torch.stack([u + centre, v + centre, torch.ones_like(u)], -1).reshape(-1, 3)
    q = p @ Hm.transpose(-1, -2)
    uv = q[..., :2] / q[..., 2:]
    if align:
        grid = torch.stack([2 * uv[..., 0] / (W - 1) - 1, 2 * uv[..., 1] / (H - 1) - 1], -1)
    else:
        grid = pixels_to_grid(uv, (H, W))
    if swap:
        grid = grid.flip(-1)
    out = F.grid_sample(src, grid.reshape(B, -1, W, 2), align_corners=align)
    return out.reshape(B, C, len(depths), H, W)


def _warp_reference(src, K1, R1, t1, K2, R2, t2, depths):
    return homography_warp(src, K1, R1, t1, K2, R2, t2, depths)


# ------------------------------------------------------------------------------- soft argmin

def _argmin_cases(gen):
    def cost(B, D, H, W):
        return 3 * torch.randn(B, D, H, W, generator=gen, dtype=D64)

    uneven = torch.tensor([1.0, 1.3, 1.9, 2.2, 3.5], dtype=D64)
    return [
        Case("batch of 2, 5 depth hypotheses (uneven spacing), 3x4 pixels", (cost(2, 5, 3, 4), uneven), grad=(0,)),
        Case("batch of 3, 6 disparities 0..5, 2x7 pixels", (cost(3, 6, 2, 7), torch.arange(6, dtype=D64)), grad=(0,)),
        Case("batch of 2 with per-sample depth values (B, D)",
             (cost(2, 4, 5, 3), torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.7, 0.9, 1.1]], dtype=D64)), grad=(0,)),
    ]


def _vals(values, cost):
    return (values if values.dim() == 2 else values[None].expand(cost.shape[0], -1))[..., None, None]


def _softmax_plus(cost, values):
    return (F.softmax(cost, 1) * _vals(values, cost)).sum(1)


def _logistic(cost, values):
    return (torch.sigmoid(-cost) * _vals(values, cost)).sum(1)


def _index_not_value(cost, values):
    idx = torch.arange(cost.shape[1], dtype=cost.dtype)[None, :, None, None]
    return (F.softmax(-cost, 1) * idx).sum(1)


def _hard(cost, values):
    return _vals(values, cost).expand_as(cost).gather(1, cost.argmin(1, keepdim=True))[:, 0]


def _softmax_last_dim(cost, values):
    return (F.softmax(-cost, -1) * _vals(values, cost)).sum(1)


# ------------------------------------------------------------------------- variance volume

def _variance_cases(gen):
    def vol(*shape):
        return torch.randn(*shape, generator=gen, dtype=D64) + 2.0  # non-zero mean, so E[V^2] != Var

    return [
        Case("batch of 2, 3 views, 4 channels, 5 planes, 3x6 pixels", (vol(2, 3, 4, 5, 3, 6),), grad=(0,)),
        Case("batch of 1, 5 views, 2 channels, 3 planes, 4x2 pixels", (vol(1, 5, 2, 3, 4, 2),), grad=(0,)),
    ]


def _no_mean_subtracted(v):
    return v.pow(2).mean(1)


def _sum_over_views(v):
    return (v - v.mean(1, keepdim=True)).pow(2).sum(1)


def _unbiased(v):
    return v.var(1)


def _std(v):
    return v.std(1, unbiased=False)


def _over_channels(v):
    return (v - v.mean(2, keepdim=True)).pow(2).mean(2)


# ----------------------------------------------------------------------- fusion consistency

def _fusion_cases(gen):
    scene = make_mvs_scene(int(torch.randint(1 << 30, (), generator=gen)), n_views=3, size=(12, 16))
    d = scene.depth.double()
    noise = 1 + 0.02 * torch.randn(d.shape, generator=gen, dtype=D64)
    K, R, t = scene.K.double(), scene.R.double(), scene.t.double()
    ref, src = torch.tensor([0, 1]), torch.tensor([1, 2])
    return [Case("2 reference views (12x16, noisy depths) against their sources",
                 ((d * noise)[ref], K[ref], R[ref], t[ref], d[src], K[src], R[src], t[src]))]


def _fusion_variant(depth_ref, K1, R1, t1, depth_src, K2, R2, t2, *, absolute=False, by_src=False, squared=False,
                    swap=False):
    B, H, W = depth_ref.shape
    uv = pixel_grid(H, W, dtype=depth_ref.dtype).reshape(1, -1, 2).expand(B, -1, -1)
    X = unproject(uv, depth_ref.reshape(B, -1), K1, R1, t1)
    uv2, z2 = project(X, K2, R2, t2)
    front = z2 > 1e-6
    uv2 = torch.where(front[..., None], uv2, torch.full_like(uv2, -1e6))
    grid = pixels_to_grid(uv2, depth_src.shape[-2:])
    if swap:
        grid = grid.flip(-1)
    ds = F.grid_sample(depth_src[:, None], grid.reshape(B, H, W, 2), align_corners=False)[:, 0].reshape(B, -1)
    valid = (depth_ref.reshape(B, -1) > 0) & front & (grid.abs() <= 1).all(-1) & (ds > 0)
    ds = torch.where(valid, ds, torch.ones_like(ds))
    uv_back, d_back = project(unproject(uv2, ds, K2, R2, t2), K1, R1, t1)
    pix = ((uv_back - uv) ** 2).sum(-1) if squared else (uv_back - uv).norm(dim=-1)
    diff = (d_back - depth_ref.reshape(B, -1)).abs()
    rel = diff if absolute else diff / (ds if by_src else depth_ref.reshape(B, -1).clamp_min(1e-12))
    inf = torch.full_like(pix, float("inf"))
    return torch.where(valid, pix, inf).reshape(B, H, W), torch.where(valid, rel, inf).reshape(B, H, W)


def _fusion_reference(depth_ref, K1, R1, t1, depth_src, K2, R2, t2):
    return reprojection_errors(depth_ref, K1, R1, t1, depth_src, K2, R2, t2)


# ------------------------------------------------------------------- accuracy / completeness

def _acc_cases(gen):
    def clouds(n, m, spread):
        gt = torch.rand(m, 3, generator=gen, dtype=D64) * torch.tensor([0.3, 0.2, 0.1], dtype=D64)
        pred = gt[:n] + 0.004 * torch.randn(n, 3, generator=gen, dtype=D64)
        outliers = 0.05 + spread * torch.rand(6, 3, generator=gen, dtype=D64)  # beyond the 20 mm cut-off
        near = gt[:4] + 0.012  # 20 mm > error > 0, counted
        return torch.cat([pred, outliers, near]), gt

    p1, g1 = clouds(40, 90, 0.2)  # reconstruction covers part of the scan: acc != comp
    p2, g2 = clouds(70, 75, 0.1)
    return [Case("reconstruction of 50 points vs a scan of 90 (max_dist 0.02)", (p1, g1, 0.02)),
            Case("reconstruction of 80 points vs a scan of 75 (max_dist 0.02)", (p2, g2, 0.02))]


def _swapped(pred, gt, max_dist):
    return accuracy_completeness(pred, gt, max_dist).flip(0)


def _squared(pred, gt, max_dist):
    def mean_below(d):
        return d[d < max_dist].pow(2).mean()
    return torch.stack([mean_below(nearest_distances(pred, gt)), mean_below(nearest_distances(gt, pred))])


def _no_cutoff(pred, gt, max_dist):
    return accuracy_completeness(pred, gt, None)


def _clamped(pred, gt, max_dist):
    return torch.stack([nearest_distances(pred, gt).clamp_max(max_dist).mean(),
                        nearest_distances(gt, pred).clamp_max(max_dist).mean()])


def _acc_reference(pred, gt, max_dist):
    return accuracy_completeness(pred, gt, max_dist)


EXERCISES = (
    Exercise(
        name="mvs.homography_warp",
        points=2,
        reference=_warp_reference,
        make_cases=_warp_cases,
        what="warped volume",
        rtol=1e-6, atol=1e-8,
        mistakes=(
            Mistake("you multiplied by K_ref^T: MVSNet's printed K_1^T is a typo, back-project pixels with K_ref^-1",
                    lambda *a: _warp_variant(*a, inv=lambda K: K.transpose(-1, -2))),
            Mistake("your planes come out in reverse order: slice k must be the plane at depths[k]",
                    lambda *a: _warp_variant(*a, flip=True)),
            Mistake("x and y are swapped in the sampling grid: grid[..., 0] is x (the column, along W)",
                    lambda *a: _warp_variant(*a, swap=True)),
            Mistake("you normalised with align_corners=True; coursekit samples with align_corners=False (x = 2u/W - 1)",
                    lambda *a: _warp_variant(*a, align=True)),
            Mistake("you warped pixel corners (j, i), not pixel centres (j + 0.5, i + 0.5)",
                    lambda *a: _warp_variant(*a, centre=0.0)),
        ),
    ),
    Exercise(
        name="mvs.soft_argmin",
        points=1,
        reference=soft_argmin,
        make_cases=_argmin_cases,
        what="soft argmin",
        mistakes=(
            Mistake("you took the softmax of +c: low cost must mean high probability, use softmax(-c)", _softmax_plus),
            Mistake("the slide's sigma is the softmax over the hypotheses (dim=1), not the logistic sigmoid", _logistic),
            Mistake("you weighted the hypothesis index 0..D-1, not the hypothesis values (depths/disparities)", _index_not_value),
            Mistake("you took the hard argmin: it has no gradient and no sub-pixel accuracy; weight by the softmax", _hard),
            Mistake("you normalised over the wrong axis: the softmax runs over the hypotheses, dim=1", _softmax_last_dim),
        ),
    ),
    Exercise(
        name="mvs.variance_cost_volume",
        points=1,
        reference=variance_cost_volume,
        make_cases=_variance_cases,
        what="cost volume",
        mistakes=(
            Mistake("you returned the mean of squares: subtract the squared mean (variance = E[V^2] - E[V]^2)", _no_mean_subtracted),
            Mistake("you summed over the views; MVSNet divides by N (a mean), so the cost does not grow with N", _sum_over_views),
            Mistake("torch.var divides by N - 1 by default; MVSNet's variance divides by N (unbiased=False)", _unbiased),
            Mistake("you returned the standard deviation; the cost volume is the variance (no square root)", _std),
            Mistake("you took the variance over channels (dim=2); it is over the views (dim=1)", _over_channels),
        ),
    ),
    Exercise(
        name="mvs.fusion_consistency",
        points=2,
        reference=_fusion_reference,
        make_cases=_fusion_cases,
        what="(pixel error, relative depth error)",
        rtol=1e-5, atol=1e-7,
        mistakes=(
            Mistake("your depth error is absolute; divide |d' - d| by the reference depth d (relative error)",
                    lambda *a: _fusion_variant(*a, absolute=True)),
            Mistake("you divided by the sampled source depth; the relative error is w.r.t. the reference depth d",
                    lambda *a: _fusion_variant(*a, by_src=True)),
            Mistake("your pixel error is squared; the threshold (1 px) is on the Euclidean distance ||p' - p||",
                    lambda *a: _fusion_variant(*a, squared=True)),
            Mistake("x and y are swapped when you sample the source depth map (grid[..., 0] is x, the column)",
                    lambda *a: _fusion_variant(*a, swap=True)),
        ),
    ),
    Exercise(
        name="mvs.accuracy_completeness",
        points=1,
        reference=_acc_reference,
        make_cases=_acc_cases,
        what="[accuracy, completeness]",
        mistakes=(
            Mistake("accuracy and completeness are swapped: accuracy goes from the reconstruction to the ground truth",
                    _swapped),
            Mistake("you averaged squared distances; DTU averages the distances themselves (mm)", _squared),
            Mistake("you kept the outliers: distances >= max_dist (DTU: 20 mm) are discarded before averaging", _no_cutoff),
            Mistake("you clamped the outliers to max_dist; DTU discards them instead", _clamped),
        ),
    ),
)
