"""F-score, normal consistency, voxel IoU, set metrics (MMD, COV, 1-NNA, JSD) and FPD."""

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from coursekit.metrics import (chamfer_distance, coverage, emd_exact, frechet_distance, fscore, jsd,
                               minimum_matching_distance, normal_consistency, one_nn_accuracy, pairwise_distances,
                               precision_recall, set_metrics, voxel_iou)
from coursekit.metrics.set_metrics import (coverage_from, jensen_shannon_divergence, mmd_from, occupancy_counts,
                                           occupancy_grid_centres, one_nna_from)


def cloud(b, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=gen, dtype=torch.float64) - 0.5


# ------------------------------------------------------------------ F-score

def test_fscore_hand_made_case():
    # pred: 4 points, 3 within 0.1 of the GT; GT: 2 points, 1 within 0.1 of the prediction.
    pred = torch.tensor([[[0.0, 0, 0], [0.05, 0, 0], [0, 0.09, 0], [5, 5, 5]]], dtype=torch.float64)
    gt = torch.tensor([[[0.0, 0, 0], [0, 0, 3]]], dtype=torch.float64)
    p, r = precision_recall(pred, gt, tau=0.1)
    assert p.item() == pytest.approx(0.75) and r.item() == pytest.approx(0.5)
    assert fscore(pred, gt, tau=0.1).item() == pytest.approx(2 * 0.75 * 0.5 / 1.25)


def test_fscore_threshold_is_unsquared_and_strict():
    pred = torch.tensor([[[0.0, 0, 0]]], dtype=torch.float64)
    gt = torch.tensor([[[0.3, 0, 0]]], dtype=torch.float64)
    assert fscore(pred, gt, tau=0.31).item() == 1.0  # d = 0.3 < 0.31 (d^2 = 0.09 would pass 0.1 too)
    assert fscore(pred, gt, tau=0.2).item() == 0.0   # d^2 = 0.09 < 0.2 but d = 0.3 is not
    assert fscore(pred, gt, tau=0.25).item() == 0.0  # strict: exactly-tau would not count either


def test_fscore_identical_is_one_and_far_is_zero_and_matches_scipy():
    x, y = cloud(2, 60, 1), cloud(2, 80, 2)
    assert torch.equal(fscore(x, x, 0.01), torch.ones(2, dtype=torch.float64))
    assert torch.equal(fscore(x, y + 10, 0.5), torch.zeros(2, dtype=torch.float64))
    p, r = precision_recall(x, y, 0.1)
    for b in range(2):
        assert p[b].item() == pytest.approx((cKDTree(y[b].numpy()).query(x[b].numpy())[0] < 0.1).mean())
        assert r[b].item() == pytest.approx((cKDTree(x[b].numpy()).query(y[b].numpy())[0] < 0.1).mean())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.01, 0.5))
def test_fscore_is_symmetric_and_precision_recall_swap(seed, tau):
    x, y = cloud(2, 17, seed), cloud(2, 23, seed + 1)
    torch.testing.assert_close(fscore(x, y, tau), fscore(y, x, tau))
    p, r = precision_recall(x, y, tau)
    p2, r2 = precision_recall(y, x, tau)
    assert torch.equal(p, r2) and torch.equal(r, p2)


def test_fscore_bad_input():
    x = cloud(1, 5)
    for tau in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tau"):
            fscore(x, x, tau)
    with pytest.raises(ValueError, match="empty cloud"):
        fscore(torch.zeros(1, 0, 3), x, 0.1)


# ------------------------------------------------------------------ normals, IoU

def test_normal_consistency_known_answers():
    x = cloud(2, 30, 3)
    n = torch.nn.functional.normalize(cloud(2, 30, 4), dim=-1)
    torch.testing.assert_close(normal_consistency(x, n, x, -3 * n), torch.ones(2, dtype=torch.float64))  # flips, scale ok
    perp = torch.zeros_like(n)
    perp[..., 2] = 1.0
    along = torch.zeros_like(n)
    along[..., 0] = 1.0
    torch.testing.assert_close(normal_consistency(x, along, x, perp), torch.zeros(2, dtype=torch.float64))


def test_normal_consistency_matches_brute_force():
    x, y = cloud(1, 20, 5), cloud(1, 25, 6)
    nx, ny = cloud(1, 20, 7), cloud(1, 25, 8)
    ux, uy = nx[0] / nx[0].norm(dim=-1, keepdim=True), ny[0] / ny[0].norm(dim=-1, keepdim=True)
    d = torch.cdist(x[0], y[0])
    want = 0.5 * ((ux * uy[d.argmin(1)]).sum(-1).abs().mean() + (uy * ux[d.argmin(0)]).sum(-1).abs().mean())
    torch.testing.assert_close(normal_consistency(x, nx, y, ny), want.reshape(1))
    with pytest.raises(ValueError, match="zero vectors"):
        normal_consistency(x, torch.zeros_like(x), y, ny)
    with pytest.raises(ValueError, match="shape"):
        normal_consistency(x, nx[:, :3], y, ny)


def test_voxel_iou_is_reexported():
    a = torch.zeros(1, 1, 4, 4, 4)
    b = a.clone()
    a[..., :2] = 1
    b[..., 1:3] = 1
    assert voxel_iou(a, b).item() == pytest.approx(1 / 3)


# ------------------------------------------------------------------ set metrics

def test_mmd_cov_1nna_from_a_hand_made_matrix():
    # D[g, r]: generated 0 and 1 both nearest to reference 0; reference 2 is nobody's nearest.
    d_gr = torch.tensor([[0.1, 0.5, 0.9], [0.2, 0.4, 0.8]], dtype=torch.float64)
    assert mmd_from(d_gr).item() == pytest.approx((0.1 + 0.4 + 0.8) / 3)  # mean over r of min over g
    assert coverage_from(d_gr).item() == pytest.approx(1 / 3)
    # Two clusters far apart: each sample's nearest is in its own set -> 1-NNA = 1.
    d_gg = torch.tensor([[0.0, 0.01], [0.01, 0.0]], dtype=torch.float64)
    d_rr = torch.full((3, 3), 0.01, dtype=torch.float64).fill_diagonal_(0)
    assert one_nna_from(d_gg, d_rr, d_gr).item() == 1.0
    # Interleaved: every sample's nearest is in the other set -> 0.
    far_gg = torch.tensor([[0.0, 5.0], [5.0, 0.0]], dtype=torch.float64)
    far_rr = torch.tensor([[0.0, 5.0], [5.0, 0.0]], dtype=torch.float64)
    assert one_nna_from(far_gg, far_rr, torch.eye(2, dtype=torch.float64)).item() == 0.0


def test_identical_sets_cover_everything_with_zero_mmd():
    ref = cloud(6, 32, 9)
    m = set_metrics(ref, ref, "chamfer")
    assert m["mmd"].item() == 0.0 and m["cov"].item() == 1.0
    assert m["1-nna"].item() == 0.0  # each sample's twin (distance 0) is in the other set


def test_one_nna_near_half_for_one_distribution_and_one_for_two():
    gen_a, gen_b = cloud(20, 24, 10), cloud(20, 24, 11)
    same = one_nn_accuracy(gen_a, gen_b).item()
    assert 0.25 <= same <= 0.75
    other = one_nn_accuracy(gen_a, 0.3 * cloud(20, 24, 12)).item()
    assert other == 1.0


def test_pairwise_distances_match_the_metrics_and_orientation():
    g, r = cloud(3, 16, 13), cloud(4, 16, 14)
    d = pairwise_distances(g, r)
    assert d.shape == (3, 4)
    torch.testing.assert_close(d[2, 1], chamfer_distance(g[2:3], r[1:2], "pytorch3d")[0])
    e = pairwise_distances(g, r, "emd")
    torch.testing.assert_close(e[0, 3], emd_exact(g[:1], r[3:4], point_reduction="mean")[0][0])
    assert minimum_matching_distance(g, r).item() == pytest.approx(d.amin(0).mean().item())
    assert coverage(g, r).item() == pytest.approx(len(set(d.argmin(1).tolist())) / 4)
    with pytest.raises(ValueError, match="metric"):
        pairwise_distances(g, r, "hausdorff")


def test_grid_and_jsd():
    centres = occupancy_grid_centres(28)
    assert centres.shape[1] == 3 and np.linalg.norm(centres, axis=1).max() <= 0.5
    assert len(occupancy_grid_centres(28, in_sphere=False)) == 28 ** 3
    x = cloud(4, 100, 15) * 0.5
    assert occupancy_counts(x).sum().item() == 400
    assert jsd(x, x).item() == pytest.approx(0.0, abs=1e-12)
    # Disjoint supports: JSD (base 2) is exactly 1.
    p = torch.tensor([1.0, 2.0, 0.0, 0.0])
    q = torch.tensor([0.0, 0.0, 3.0, 1.0])
    assert jensen_shannon_divergence(p, q).item() == pytest.approx(1.0)
    p2, q2 = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
    h = lambda v: -sum(t * np.log2(t) for t in v if t > 0)  # noqa: E731
    assert jensen_shannon_divergence(p2, q2).item() == pytest.approx(h([0.75, 0.25]) - 0.5 * h([0.5, 0.5]))
    assert 0 < jsd(x, cloud(4, 100, 16) * 0.5).item() < jsd(x, cloud(4, 100, 16) * 0.1).item()


# ------------------------------------------------------------------ FPD

def test_frechet_known_answers_and_scipy_sqrtm():
    f = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance(f, f).item() == pytest.approx(0.0, abs=1e-9)
    # Shifted by v: only the mean term changes.
    v = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    assert frechet_distance(f, f + v).item() == pytest.approx((v ** 2).sum().item())
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    a, b = f[:, :1] * 2 + 1, f[:, 1:2] * 0.5 - 1
    sa, sb = a.std().item(), b.std().item()
    want = (a.mean() - b.mean()).item() ** 2 + (sa - sb) ** 2
    assert frechet_distance(a, b).item() == pytest.approx(want)
    g = torch.randn(150, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) @ torch.randn(
        5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mp, mq = f.mean(0).numpy(), g.mean(0).numpy()
    sp, sq = np.cov(f.numpy(), rowvar=False), np.cov(g.numpy(), rowvar=False)
    ref = ((mp - mq) ** 2).sum() + np.trace(sp + sq - 2 * scipy.linalg.sqrtm(sp @ sq).real)
    assert frechet_distance(f, g).item() == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(f, g).item() == pytest.approx(frechet_distance(g, f).item(), rel=1e-8)


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="feature sizes"):
        frechet_distance(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((4, 3), float("nan")), torch.randn(4, 3))
