"""MVS methods and metrics: cost volumes, soft argmin, plane sweep, MVSNet, R-MVSNet, GC-Net, DTU metrics, the table."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.geometry.camera import fov_intrinsics, look_at
from coursekit.geometry.homography import homography_warp
from coursekit.metrics.dtu import accuracy_completeness, depth_metrics, downsample, dtu_metrics, nearest_distances
from coursekit.models.mvs.cost_volume import (concat_cost_volume, hard_argmin, probability_confidence, soft_argmin,
                                              variance_cost_volume)
from coursekit.models.mvs.gcnet import GCNet, disparity_l1_loss, disparity_to_depth
from coursekit.models.mvs.memory import peak_tensor_memory
from coursekit.models.mvs.mvsnet import MVSNet, depth_l1_loss, variance_volume_from_views
from coursekit.models.mvs.plane_sweep import PlaneSweep, window_cost
from coursekit.models.mvs.rmvsnet import ConvGRUCell, RMVSNet, depth_cross_entropy, memory_vs_depth, subplane_argmax

D64 = torch.float64


# ------------------------------------------------------------------------------ soft argmin

def test_soft_argmin_is_the_slide_formula_and_differentiable():
    g = torch.Generator().manual_seed(0)
    cost = torch.randn(2, 5, 3, 4, generator=g, dtype=D64, requires_grad=True)
    values = torch.tensor([1.0, 1.4, 2.0, 2.1, 3.0], dtype=D64)
    out = soft_argmin(cost, values)
    manual = torch.zeros(2, 3, 4, dtype=D64)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                e = torch.exp(-cost[b, :, i, j])
                manual[b, i, j] = (values * e / e.sum()).sum()
    torch.testing.assert_close(out, manual)
    assert torch.autograd.gradcheck(lambda c: soft_argmin(c, values), (cost,))


def test_soft_argmin_is_subpixel_where_hard_argmin_is_not():
    """A cost parabola with its minimum at 3.3, between integer disparities."""
    d = torch.arange(8, dtype=D64)
    cost = (0.5 * (d - 3.3) ** 2)[None, :, None, None]
    assert abs(float(soft_argmin(cost, d)) - 3.3) < 0.02
    assert float(hard_argmin(cost, d)) == 3.0
    assert abs(float((F.softmax(cost, 1) * d[None, :, None, None]).sum(1)) - 3.3) > 1  # softmax(+c): wrong


@settings(max_examples=25, deadline=None)
@given(st.floats(-50, 50), st.integers(2, 6))
def test_soft_argmin_ignores_a_constant_cost_offset(offset, D):
    cost = torch.randn(1, D, 2, 2, generator=torch.Generator().manual_seed(D), dtype=D64)
    values = torch.linspace(1, 2, D, dtype=D64)
    torch.testing.assert_close(soft_argmin(cost + offset, values), soft_argmin(cost, values))


def test_probability_confidence_sums_four_planes_around_the_estimate():
    prob = F.softmax(torch.randn(1, 10, 2, 3, generator=torch.Generator().manual_seed(1)), 1)
    values = torch.linspace(1.0, 2.0, 10)
    est = torch.tensor([[[1.05, 1.5, 1.99], [1.33, 1.0, 1.7]]])
    conf = probability_confidence(prob, values, est)
    for i in range(2):
        for j in range(3):
            k = int(torch.searchsorted(values, est[0, i, j])) - 1  # floor index of the estimate
            lo = min(max(k - 1, 0), 6)
            assert abs(float(conf[0, i, j]) - float(prob[0, lo:lo + 4, i, j].sum())) < 1e-6


# ------------------------------------------------------------------------------ cost volumes

def test_variance_cost_volume_is_population_variance():
    v = torch.randn(2, 3, 4, 5, 3, 6, dtype=D64, requires_grad=True) + 2
    torch.testing.assert_close(variance_cost_volume(v), v.var(1, unbiased=False))
    assert torch.autograd.gradcheck(variance_cost_volume, (v[:1, :, :2, :2, :2, :2].detach().requires_grad_(),))
    with pytest.raises(ValueError, match="at least 2 views"):
        variance_cost_volume(v[:, :1])


@settings(max_examples=15, deadline=None)
@given(st.permutations(range(4)))
def test_variance_cost_volume_is_view_permutation_invariant(order):
    v = torch.randn(1, 4, 2, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=D64)
    torch.testing.assert_close(variance_cost_volume(v[:, list(order)]), variance_cost_volume(v))


def _rig(B=1, V=3, size=(8, 12)):
    eye = torch.stack([torch.tensor([0.15 * i - 0.1, 0.05 * i, -2.0]) for i in range(V)])
    R, t = look_at(eye, torch.zeros(3))
    K = fov_intrinsics(45.0, size).expand(V, 3, 3)
    return K[None].expand(B, -1, -1, -1), R[None].expand(B, -1, -1, -1), t[None].expand(B, -1, -1)


def test_running_sum_variance_equals_stacked_warped_volumes():
    K, R, t = _rig(B=2, size=(16, 24))
    feats = torch.randn(2, 3, 4, 8, 12)
    depths = torch.linspace(1.5, 2.5, 6).expand(2, -1)
    got = variance_volume_from_views(feats, K, R, t, depths, stride=2)
    from coursekit.geometry.homography import scale_intrinsics
    Ks = scale_intrinsics(K.reshape(-1, 3, 3), 0.5).reshape(2, 3, 3, 3)
    vols = [feats[:, 0, :, None].expand(-1, -1, 6, -1, -1)]
    vols += [homography_warp(feats[:, i], Ks[:, 0], R[:, 0], t[:, 0], Ks[:, i], R[:, i], t[:, i], depths) for i in (1, 2)]
    torch.testing.assert_close(got, variance_cost_volume(torch.stack(vols, 1)), atol=1e-5, rtol=1e-4)


def test_concat_cost_volume_matches_a_loop():
    left, right = torch.randn(2, 3, 4, 7), torch.randn(2, 3, 4, 7)
    vol = concat_cost_volume(left, right, 5)
    assert vol.shape == (2, 6, 5, 4, 7)
    for d in range(5):
        for x in range(7):
            if x < d:
                assert (vol[:, :, d, :, x] == 0).all()
            else:
                torch.testing.assert_close(vol[:, :3, d, :, x], left[..., x])
                torch.testing.assert_close(vol[:, 3:, d, :, x], right[..., x - d])


# ------------------------------------------------------------------------------ plane sweep

def _textured_plane_views(depth=2.0, gain=1.0, size=(16, 24)):
    """Views of a textured fronto-parallel plane at ``depth`` in the reference camera: the warp of
    the reference image through the true plane gives each source image exactly."""
    K, R, t = _rig(size=size)
    g = torch.Generator().manual_seed(0)
    ref = F.interpolate(torch.rand(1, 3, size[0] // 2, size[1] // 2, generator=g), size=size, mode="bilinear")
    views = [ref]
    for i in (1, 2):  # source i seen through the plane: warp the reference into it
        views.append(gain * homography_warp(ref, K[:, i], R[:, i], t[:, i], K[:, 0], R[:, 0], t[:, 0],
                                            torch.tensor([depth]))[:, :, 0])
    return torch.stack(views, 1), K, R, t


def test_plane_sweep_finds_the_plane_and_ncc_survives_a_gain_change():
    """The fronto-parallel plane is at reference depth 2 only approximately seen from the sources
    (the plane is fronto-parallel to the *reference* camera), so compare the central pixels."""
    values = torch.linspace(1.5, 2.5, 11)[None]
    images, K, R, t = _textured_plane_views(2.0)
    for kind in ("ncc", "sad"):
        depth = PlaneSweep(kind, 3)(images, K, R, t, values)["depth"]
        assert (depth[0, 4:-4, 6:-6] - 2.0).abs().median() < 0.06, kind
    dark, K, R, t = _textured_plane_views(2.0, gain=0.5)
    dark[:, 0] = images[:, 0]
    ncc = PlaneSweep("ncc", 3)(dark, K, R, t, values)["depth"][0, 4:-4, 6:-6]
    sad = PlaneSweep("sad", 3)(dark, K, R, t, values)["depth"][0, 4:-4, 6:-6]
    assert ((ncc - 2.0).abs() < 0.06).float().mean() > ((sad - 2.0).abs() < 0.06).float().mean()


def test_window_cost_ncc_of_identical_windows_is_zero():
    a = torch.rand(1, 3, 6, 8)
    c = window_cost(a, a[:, :, None].expand(-1, -1, 2, -1, -1), "ncc", 3)
    assert c.abs().max() < 1e-2
    with pytest.raises(ValueError, match="odd"):
        window_cost(a, a[:, :, None], "sad", 4)


# ------------------------------------------------------------------------------ networks

def _batch(B=2, size=(16, 24), D=8):
    K, R, t = _rig(B=B, size=size)
    images = torch.rand(B, 3, 3, *size, generator=torch.Generator().manual_seed(0))
    values = torch.linspace(1.5, 2.5, D).expand(B, -1)
    gt = torch.full((B, *size), 2.0)
    gt[:, :2] = 0
    return images, K, R, t, values, gt


@pytest.mark.parametrize("cls, loss_fn", [(MVSNet, depth_l1_loss), (RMVSNet, depth_cross_entropy)])
def test_mvs_networks_shapes_losses_and_gradients(cls, loss_fn):
    torch.manual_seed(0)
    images, K, R, t, values, gt = _batch()
    model = cls()
    out = model(images, K, R, t, values)
    assert out["depth"].shape == (2, 8, 12) and out["prob"].shape == (2, 8, 8, 12)
    torch.testing.assert_close(out["prob"].sum(1), torch.ones(2, 8, 12))
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1 + 1e-6)).all()
    loss = loss_fn(out, gt)
    loss.backward()
    assert all(p.grad is not None for p in model.features.parameters())
    model.eval()
    with torch.no_grad():
        d = model(images, K, R, t, values)["depth"]
    assert ((d >= 1.5 - 1e-4) | (cls is MVSNet)).all()


def test_full_resolution_refinement_outputs_image_size_and_trains_every_part():
    torch.manual_seed(0)
    images, K, R, t, values, gt = _batch()
    model = MVSNet(full_resolution=True)
    out = model(images, K, R, t, values)
    assert out["depth"].shape == (2, 16, 24) and out["confidence"].shape == (2, 16, 24)
    assert out["initial"].shape == (2, 8, 12) and out["prob"].shape == (2, 8, 8, 12)
    depth_l1_loss(out, gt).backward()
    assert all(p.grad is not None for p in model.refinement.parameters())
    assert all(p.grad is not None for p in model.features.parameters())
    with pytest.raises(ValueError, match="refine"):
        MVSNet(refine=False, full_resolution=True)


def test_depth_l1_loss_resizes_the_gt_to_each_map():
    gt = torch.tensor([[[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 0.0]]])
    out = {"initial": torch.tensor([[[1.5, 3.0]]]), "depth": gt + 0.25}
    # initial: GT nearest-resized to (1, 2) = [1, 3] -> |0.5| and |0| ; refined: 0.25 on the 7 valid pixels
    torch.testing.assert_close(depth_l1_loss(out, gt), torch.tensor(0.25 + 0.25))


def test_train_steps_budget_is_cpu_time_not_wall_time():
    import time as _time

    from coursekit.models.mvs.mvs_table import train_steps

    class Sleepy(torch.nn.Module):  # waits (like a process on a busy machine) without using the CPU
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            _time.sleep(0.05)
            return self.w * x

    loader = [{"x": torch.ones(1), "y": torch.zeros(1)}] * 4
    losses = train_steps(Sleepy(), loader, lambda out, y: (out - y).abs().sum(), steps=4, seconds=0.04, lr=0.1,
                         inputs=lambda b: (b["x"],), target="y", progress=False)
    assert len(losses) == 4  # a wall-clock budget of 0.04 s would stop after the first step


def test_train_steps_decays_the_rate_on_a_cosine_over_the_budget():
    from coursekit.models.mvs.mvs_table import cosine_lr, train_steps

    assert cosine_lr(0.1, 0.0) == pytest.approx(0.1) and cosine_lr(0.1, 0.5) == pytest.approx(0.05)
    assert cosine_lr(0.1, 1.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="fraction"):
        cosine_lr(0.1, 1.5)

    seen = []

    class Linear(torch.nn.Module):  # loss = w: a constant gradient, so each Adam step moves w by exactly the rate
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append(float(self.w.detach()))
            return self.w * x

    loader = [{"x": torch.ones(1), "y": torch.zeros(1)}] * 5
    train_steps(Linear(), loader, lambda out, y: out.sum(), steps=5, seconds=1e6, lr=0.1,
                inputs=lambda b: (b["x"],), target="y", progress=False)
    moves = -torch.diff(torch.tensor(seen))  # the rates of steps 0..3 (step k at spent = k / 5)
    expected = torch.tensor([0.1 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(4)])
    torch.testing.assert_close(moves, expected, rtol=1e-4, atol=1e-6)  # a constant rate moves 0.1 every step


def test_mvsnet_learns_one_batch():
    torch.manual_seed(0)
    images, K, R, t, values, gt = _batch(B=1)
    model = MVSNet(channels=8, refine=False)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(25):
        loss = depth_l1_loss(model(images, K, R, t, values), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_conv_gru_keeps_the_state_when_the_update_gate_is_closed():
    cell = ConvGRUCell(2, 3)
    torch.nn.init.zeros_(cell.gates.weight)
    torch.nn.init.constant_(cell.gates.bias, -30.0)  # z = sigmoid(-30) ~ 0
    h = torch.randn(1, 3, 4, 5)
    torch.testing.assert_close(cell(torch.randn(1, 2, 4, 5), h), h, atol=1e-6, rtol=0)


def test_gcnet_shapes_subpixel_output_and_depth():
    torch.manual_seed(0)
    left, right = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24)
    model = GCNet(max_disparity=8)
    out = model(left, right)
    assert out["disparity"].shape == (2, 16, 24) and out["cost"].shape == (2, 8, 16, 24)
    assert not torch.equal(out["disparity"], out["disparity"].round())  # soft argmin: off the integer grid
    assert torch.allclose(out["disparity"], soft_argmin(out["cost"], torch.arange(8.0)), atol=1e-6)  # the slide's formula
    assert torch.equal(out["hard"], out["hard"].round())
    assert out["confidence"].shape == (2, 16, 24) and ((out["confidence"] >= 0) & (out["confidence"] <= 1 + 1e-6)).all()
    disparity_l1_loss(out, torch.full((2, 16, 24), 3.0)).backward()
    # refine: the left image refines the soft argmin; the loss is the L1 of both maps and trains the refinement
    refined = GCNet(max_disparity=8, refine=True)
    out = refined(left, right)
    assert out["initial"].shape == out["disparity"].shape == (2, 16, 24)
    assert not torch.allclose(out["initial"], out["disparity"])
    gt = torch.full((2, 16, 24), 3.0)
    gt[:, :3] = 0  # no ground truth there
    l1 = lambda d: ((d - gt).abs() * (gt > 0)).sum() / (gt > 0).sum()  # noqa: E731
    torch.testing.assert_close(disparity_l1_loss(out, gt), l1(out["initial"]) + l1(out["disparity"]))
    disparity_l1_loss(out, gt).backward()
    assert all(p.grad is not None for p in refined.refinement.parameters())
    z = disparity_to_depth(torch.tensor([[[4.0, 0.1]]]), torch.tensor([100.0]), 0.2)
    torch.testing.assert_close(z, torch.tensor([[[5.0, 0.0]]]))
    # with the right principal point 6 px further right, z = f b / (d + doffs)
    z = disparity_to_depth(torch.tensor([[[4.0, -5.9]]]), torch.tensor([100.0]), 0.2, doffs=6.0)
    torch.testing.assert_close(z, torch.tensor([[[2.0, 0.0]]]))
    with pytest.raises(ValueError, match="divisible"):
        GCNet(max_disparity=10)


def test_subplane_argmax_finds_the_vertex_of_a_sampled_parabola():
    values = torch.linspace(1.0, 2.0, 11, dtype=D64).expand(2, -1)
    truth = torch.tensor([1.234, 1.51, 1.0, 1.97, 1.36, 1.13], dtype=D64)
    log_prob = torch.log_softmax(-((values[0, :, None] - truth) / 0.1) ** 2, 0)  # (D, N): a Gaussian peak per pixel
    log_prob = log_prob.reshape(1, 11, 2, 3).expand(2, -1, -1, -1)
    got = subplane_argmax(log_prob, values)
    # the interior peaks exactly; a peak at the last plane stays there (no neighbour beyond it)
    want = torch.tensor([1.234, 1.51, 1.0, 2.0, 1.36, 1.13], dtype=D64).reshape(2, 3)
    torch.testing.assert_close(got, want.expand(2, -1, -1))
    wta = values[0][log_prob.argmax(1)]
    assert ((got - wta).abs() <= 0.05 + 1e-12).all() and not torch.allclose(got, wta)
    # a lopsided peak is not moved by more than half a plane
    lopsided = torch.log(torch.tensor([0.0001, 0.5, 0.4999], dtype=D64)).reshape(1, 3, 1, 1)
    assert subplane_argmax(lopsided, torch.tensor([[0.0, 1.0, 2.0]], dtype=D64)).item() == pytest.approx(1.5, abs=0.05)


def test_rmvsnet_subplane_readout_stays_within_half_a_plane_of_the_winner():
    torch.manual_seed(0)
    images, K, R, t, values, _ = _batch()
    plain = RMVSNet().eval()
    sub = RMVSNet(subplane=True).eval()
    sub.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, b = plain(images, K, R, t, values), sub(images, K, R, t, values)
    step = float(values[0, 1] - values[0, 0])
    assert torch.isin(a["depth"], values.contiguous()).all() and not torch.isin(b["depth"], values.contiguous()).all()
    assert ((b["depth"] - a["depth"]).abs() <= step / 2 + 1e-6).all()


def test_peak_tensor_memory_counts_live_storages():
    def f():
        a = torch.zeros(250_000)  # 1 MB, freed before b
        del a
        b = torch.zeros(500_000)
        return b[10:].sum()

    _, peak = peak_tensor_memory(f)
    assert 2_000_000 <= peak < 2_100_000


def test_rmvsnet_memory_is_flat_in_depth_planes_unlike_mvsnet():
    torch.manual_seed(0)
    rows = memory_vs_depth({"MVSNet": MVSNet(channels=8), "R-MVSNet": RMVSNet(channels=8)}, (8, 32), size=(16, 24))
    assert rows[1]["MVSNet_MiB"] > 3 * rows[0]["MVSNet_MiB"]
    assert rows[1]["R-MVSNet_MiB"] < 1.5 * rows[0]["R-MVSNet_MiB"]
    assert rows[1]["R-MVSNet_MiB"] < rows[1]["MVSNet_MiB"]


# ------------------------------------------------------------------------------ DTU metrics

def test_accuracy_completeness_against_brute_force():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(200, 3, generator=g, dtype=D64) * 0.3
    pred = torch.cat([gt[:80] + 0.003 * torch.randn(80, 3, generator=g, dtype=D64), gt[:5] + 0.5])
    dist = torch.cdist(pred, gt)
    acc_d, comp_d = dist.amin(1), dist.amin(0)
    want = torch.stack([acc_d[acc_d < 0.02].mean(), comp_d[comp_d < 0.02].mean()])
    torch.testing.assert_close(accuracy_completeness(pred, gt, 0.02), want)
    swapped = accuracy_completeness(gt, pred, 0.02)
    assert not torch.allclose(swapped, want)
    torch.testing.assert_close(nearest_distances(pred, gt), acc_d)
    m = dtu_metrics(pred, gt, tau=0.005, max_dist=0.02)
    assert abs(m["overall"] - float(want.mean())) < 1e-9
    p, r = float((acc_d < 0.005).double().mean()), float((comp_d < 0.005).double().mean())
    assert abs(m["fscore"] - 100 * 2 * p * r / (p + r)) < 1e-9
    region = (torch.zeros(3), torch.full((3,), 0.4))  # excludes the 5 far points from accuracy
    assert dtu_metrics(pred, gt, tau=0.005, region=region)["n_points"] == 80


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 40), st.integers(5, 40))
def test_accuracy_of_a_b_is_completeness_of_b_a(seed, n, m):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(n, 3, generator=g, dtype=D64) * 0.05, torch.rand(m, 3, generator=g, dtype=D64) * 0.05
    ab, ba = accuracy_completeness(a, b, 0.02), accuracy_completeness(b, a, 0.02)
    torch.testing.assert_close(ab, ba.flip(0), equal_nan=True)


def test_dtu_metrics_edge_cases_and_depth_metrics():
    gt = torch.rand(50, 3, dtype=D64)
    empty = dtu_metrics(torch.zeros(0, 3, dtype=D64), gt)
    assert math.isnan(empty["acc"]) and empty["fscore"] == 0
    pts = torch.tensor([[0.0, 0, 0], [0.001, 0, 0], [0.5, 0, 0], [0.52, 0.0, 0.0]])
    assert downsample(pts, 0.01).shape[0] == 3
    pred, gtd = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]]), torch.tensor([[[1.001, 2.5], [3.0, 0.0]]])
    m = depth_metrics(pred, gtd, thresholds=(0.002,))
    assert abs(m["abs"] - 0.501 / 3) < 1e-6 and abs(m["within_0.002"] - 200 / 3) < 1e-6
    with pytest.raises(ValueError, match="differ in shape"):
        depth_metrics(pred, gtd[..., :1])


# ------------------------------------------------------------------------------ the table

def test_table_probability_filter_and_method_subset():
    from coursekit.data.mvs import make_mvs_scenes
    from coursekit.models.mvs.mvs_table import evaluate_depth_method, run_mvs_table

    scenes = make_mvs_scenes(1, 0, "test", n_views=3, size=(24, 32))

    def oracle(images, K, R, t, depth_values, confidence=0.4):
        view = next(v for v in range(3) if torch.equal(images[0, 0], scenes[0].images[v]))
        depth = scenes[0].depth[view:view + 1]
        return {"depth": depth, "confidence": torch.full_like(depth, confidence)}

    kept = evaluate_depth_method("oracle", oracle, scenes, 2, 8, 0.01, progress=False)
    low = evaluate_depth_method("oracle", oracle, scenes, 2, 8, 0.01, progress=False, conf_thresh=0.3)
    high = evaluate_depth_method("oracle", oracle, scenes, 2, 8, 0.01, progress=False, conf_thresh=0.5)
    assert kept.fused[0].shape[0] > 50 and low.fused[0].shape == kept.fused[0].shape
    assert high.fused[0].shape[0] == 0
    out = run_mvs_table(progress=False, sizes=dict(size=(16, 24), n_views=3, n_train=1, n_test=1, n_depths=8, n_src=2,
                                                   batch=2, steps=1, train_seconds=30.0, max_disparity=8, baseline=0.2,
                                                   lr=1e-3, tau=0.01), methods=("Plane sweep (NCC)",))
    assert [r["Method"] for r in out["rows"]] == ["Plane sweep (NCC)"] and out["models"] == {}
    with pytest.raises(ValueError, match="unknown methods"):
        run_mvs_table(methods=("MVSNet", "COLMAP"))


def test_voxel_row_scores_the_reconstructed_cloud_itself():
    from coursekit.data.mvs import make_mvs_scenes
    from coursekit.models.mvs.mvs_table import evaluate_voxel_method
    from coursekit.models.mvs.surfacenet import scene_cube

    scenes = make_mvs_scenes(2, 0, "test", n_views=3, size=(24, 32))
    perfect = evaluate_voxel_method("oracle", lambda scene: (scene.points, None), scenes, 8, 0.01, progress=False)
    assert perfect.row["Overall (mm)"] == pytest.approx(0.0, abs=1e-6) and perfect.row["f-score (%)"] == pytest.approx(100.0)
    assert perfect.fused[1].shape == scenes[1].points.shape and not perfect.depths
    assert perfect.row["Depth Interval (mm)"] == pytest.approx(1000 * sum(scene_cube(s.points)[1] for s in scenes) / 2 / 8)
    shifted = evaluate_voxel_method("shifted", lambda scene: (scene.points + torch.tensor([0.005, 0.0, 0.0]), None), scenes, 8,
                                    0.01, progress=False)
    assert 3.0 < shifted.row["Acc. (mm)"] <= 5.0 + 1e-6  # every point 5 mm off (nearest GT points can be closer)


def test_table_runs_end_to_end_on_tiny_sizes():
    from coursekit.models.mvs.mvs_table import COLUMNS, PUBLISHED, format_table, run_mvs_table

    sizes = dict(size=(16, 24), n_views=3, n_train=1, n_test=1, n_depths=8, n_src=2, batch=2, steps=2,
                 train_seconds=30.0, max_disparity=8, baseline=0.2, lr=1e-3, tau=0.01, sn_grid=8, sn_cube=8,
                 sn_threshold=0.5, lsm_grid=8)
    out = run_mvs_table(seed=0, progress=False, sizes=sizes)
    names = [r["Method"] for r in out["rows"]]
    assert names == ["Plane sweep (SAD)", "Plane sweep (NCC)", "Plane sweep (SAD) + variational", "SurfaceNet", "LSM",
                     "MVSNet", "R-MVSNet", "Point-MVSNet", "GC-Net"]
    for r in out["rows"]:
        assert set(COLUMNS) <= set(r) and r["Mem. (MB)"] > 0 and r["Runtime (s)"] > 0
    text = format_table(out["rows"] + list(PUBLISHED))
    assert text.splitlines()[0].startswith("| Method | Acc. (mm)") and "0.551" in text
    assert len(out["losses"]["MVSNet"]) == 2 and len(out["losses"]["SurfaceNet"]) == 2
    voxel = {r["Method"]: r for r in out["rows"]}["SurfaceNet"]
    assert voxel["Depth Map Res."] == "8^3 voxels" and math.isnan(voxel["abs depth (mm)"])
