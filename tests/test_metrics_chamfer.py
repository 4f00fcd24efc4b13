"""Chamfer distance: the slide's definition, every named convention, ragged batches, gradients."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from coursekit.metrics import CONVENTIONS, ChamferConvention, chamfer_distance, nearest_sq_dists
from coursekit.metrics.chamfer import _chamfer_naive


def cloud(b, n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=gen, dtype=dtype) * torch.tensor([2.0, 1.0, 0.5], dtype=dtype)


def sphere(n, seed, radius=1.0):
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(1, n, 3, generator=gen, dtype=torch.float64)
    return radius * p / p.norm(dim=-1, keepdim=True)


def scipy_chamfer(x, y, convention):
    """Each convention written out from its source with SciPy's k-d tree distances."""
    out = []
    for a, b in zip(x.numpy(), y.numpy()):
        dx = cKDTree(b).query(a)[0]  # pred -> gt, unsquared
        dy = cKDTree(a).query(b)[0]  # gt -> pred
        out.append({"slide": (dx ** 2).sum() + (dy ** 2).sum(),
                    "pytorch3d": (dx ** 2).mean() + (dy ** 2).mean(),
                    "atlasnet": (dx ** 2).mean() + (dy ** 2).mean(),
                    "psgn": ((dy ** 2).mean() + 0.5 * (dx ** 2).mean()) * 1e4,
                    "occnet": 0.5 * (dx.mean() + dy.mean())}[convention])
    return torch.tensor(out, dtype=torch.float64)


# ------------------------------------------------------------------ known answers

def test_identical_sets_give_zero():
    x = cloud(3, 50)
    for name in CONVENTIONS:
        assert torch.equal(chamfer_distance(x, x, name), torch.zeros(3, dtype=torch.float64))


def test_translated_grid_gives_2_n_shift_squared():
    # A unit-spaced grid shifted by less than half the spacing: every point's nearest is its twin.
    axis = torch.arange(4, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(1, -1, 3)
    v = torch.tensor([0.1, 0.2, -0.15], dtype=torch.float64)
    n = grid.shape[1]
    got = chamfer_distance(grid, grid + v)
    torch.testing.assert_close(got, torch.tensor([2 * n * v.pow(2).sum().item()], dtype=torch.float64))
    torch.testing.assert_close(chamfer_distance(grid, grid + v, "pytorch3d"), got / n)
    torch.testing.assert_close(chamfer_distance(grid, grid + v, "occnet"), v.norm().reshape(1))


def test_two_points():
    x = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=torch.float64)
    y = torch.tensor([[[3.0, 4.0, 0.0]]], dtype=torch.float64)
    expected = {"slide": 50.0, "pytorch3d": 50.0, "atlasnet": 50.0, "psgn": 37.5e4, "occnet": 5.0}
    for name, value in expected.items():
        assert chamfer_distance(x, y, name).item() == pytest.approx(value), name


def test_psgn_weights_the_ground_truth_side_fully():
    # pred = {a} lies on the GT; the GT point b = a + (1, 0, 0) is 1 away from the prediction.
    pred = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=torch.float64)
    gt = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    assert chamfer_distance(pred, gt, "psgn").item() == pytest.approx(0.5 * 1e4)  # mean_gt d^2 = 0.5
    assert chamfer_distance(gt, pred, "psgn").item() == pytest.approx(0.25 * 1e4)  # the swap is not the same


def test_one_sided_convention():
    x, y = cloud(2, 20, 1), cloud(2, 30, 2)
    one_sided = ChamferConvention(squared=True, point_reduction="sum", weight_x=1.0, weight_y=0.0)
    d2 = ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1).amin(2).sum(1)
    torch.testing.assert_close(chamfer_distance(x, y, one_sided), d2)


def test_sphere_vs_itself_resampled_is_small():
    a, b = sphere(2000, 1), sphere(2000, 2)
    near = chamfer_distance(a, b, "pytorch3d").item()
    far = chamfer_distance(a, 1.2 * b, "pytorch3d").item()
    assert 0 < near < 0.01
    assert far > 2 * 0.2 ** 2 * 0.9 > 5 * near  # every point is at least ~0.2 from the other sphere


# ------------------------------------------------------------------ references

@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_matches_scipy_ckdtree(name):
    x, y = cloud(3, 64, 1), cloud(3, 97, 2)
    torch.testing.assert_close(chamfer_distance(x, y, name), scipy_chamfer(x, y, name))


def test_slide_matches_naive_and_batch_reduction():
    x, y = cloud(4, 33, 3), cloud(4, 21, 4)
    per = chamfer_distance(x, y)
    torch.testing.assert_close(per, _chamfer_naive(x, y))
    torch.testing.assert_close(chamfer_distance(x, y, reduction="mean"), per.mean())
    torch.testing.assert_close(chamfer_distance(x, y, reduction="sum"), per.sum())


def test_float32_100k_runs_and_matches_scipy():
    x, y = cloud(1, 100_000, 5, torch.float32), cloud(1, 100_000, 6, torch.float32)
    got = chamfer_distance(x, y, "pytorch3d")
    torch.testing.assert_close(got.double(), scipy_chamfer(x.double(), y.double(), "pytorch3d"), rtol=1e-4, atol=0)


def test_ragged_batch_equals_separate_calls():
    x, y = cloud(3, 40, 7), cloud(3, 50, 8)
    x_len, y_len = torch.tensor([40, 17, 5]), torch.tensor([9, 50, 31])
    x_pad, y_pad = x.clone(), y.clone()
    for b in range(3):  # garbage in the padding must not matter
        x_pad[b, x_len[b]:] = 100.0
        y_pad[b, y_len[b]:] = -100.0
    for name in CONVENTIONS:
        got = chamfer_distance(x_pad, y_pad, name, x_lengths=x_len, y_lengths=y_len)
        want = torch.cat([chamfer_distance(x[b:b + 1, :x_len[b]], y[b:b + 1, :y_len[b]], name) for b in range(3)])
        torch.testing.assert_close(got, want)
    d2, idx, valid = nearest_sq_dists(x_pad, y_pad, x_len, y_len)
    assert valid.sum(1).tolist() == [40, 17, 5] and (d2[~valid] == 0).all() and idx.dtype == torch.int64


# ------------------------------------------------------------------ gradients and properties

@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_gradcheck(name):
    x = cloud(2, 6, 9).requires_grad_()
    y = cloud(2, 5, 10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, name), (x, y))


def test_gradient_matches_naive_autograd():
    x, y = cloud(2, 30, 11).requires_grad_(), cloud(2, 25, 12).requires_grad_()
    g = torch.autograd.grad(chamfer_distance(x, y).sum(), (x, y))
    g_ref = torch.autograd.grad(_chamfer_naive(x, y).sum(), (x, y))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_unsquared_gradient_is_finite_at_coinciding_points():
    x = cloud(1, 10, 13).requires_grad_()
    (grad,) = torch.autograd.grad(chamfer_distance(x, x.detach().clone(), "occnet").sum(), (x,))
    assert torch.isfinite(grad).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 20), m=st.integers(1, 20))
def test_symmetric_conventions_are_symmetric_and_permutation_invariant(seed, n, m):
    x, y = cloud(2, n, seed), cloud(2, m, seed + 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for name in ("slide", "pytorch3d", "atlasnet", "occnet"):
        d = chamfer_distance(x, y, name)
        torch.testing.assert_close(d, chamfer_distance(y, x, name))
        torch.testing.assert_close(d, chamfer_distance(x[:, perm], y, name))
        assert (d >= 0).all()


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("x, y, lengths, message", [
    (torch.zeros(1, 0, 3), torch.zeros(1, 4, 3), None, "empty cloud"),
    (torch.full((1, 4, 3), float("nan")), torch.zeros(1, 4, 3), None, "NaN"),
    (torch.zeros(2, 4, 3), torch.zeros(3, 4, 3), None, "same batch size"),
    (torch.zeros(4, 3), torch.zeros(4, 3), None, "shape"),
    (torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), None, "shape"),
    (torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.tensor([4, 0]), "x_lengths must lie in"),
    (torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.tensor([4]), "x_lengths must have shape"),
])
def test_bad_input_raises_a_named_error(x, y, lengths, message):
    with pytest.raises(ValueError, match=message):
        chamfer_distance(x, y, x_lengths=lengths)


def test_bad_convention_and_reduction():
    x = cloud(1, 4)
    with pytest.raises(ValueError, match="unknown Chamfer convention"):
        chamfer_distance(x, x, "psnr")
    with pytest.raises(ValueError, match="reduction"):
        chamfer_distance(x, x, reduction="max")
    with pytest.raises(TypeError, match="int64"):
        chamfer_distance(x, x, x_lengths=torch.tensor([4.0]))
