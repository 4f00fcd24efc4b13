"""EMD: the exact bijection against brute force and SciPy, its gradient, and the Sinkhorn gap."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from coursekit.metrics import emd_exact, emd_sinkhorn, optimal_assignment


def cloud(b, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=gen, dtype=torch.float64) - 0.5


def sphere(n, seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(1, n, 3, generator=gen, dtype=torch.float64)
    return 0.5 * p / p.norm(dim=-1, keepdim=True)


def brute_force_emd(x, y):
    """Minimum over all n! bijections of the summed unsquared distances."""
    d = cdist(x, y)
    return min(d[np.arange(len(x)), list(perm)].sum() for perm in itertools.permutations(range(len(y))))


# ------------------------------------------------------------------ exact

def test_identical_and_permuted_sets_give_zero():
    x = cloud(2, 30)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    value, assignment = emd_exact(x, x[:, perm])
    torch.testing.assert_close(value, torch.zeros(2, dtype=torch.float64))
    assert assignment.dtype == torch.int64
    assert torch.equal(x[:, perm].gather(1, assignment.unsqueeze(-1).expand(-1, -1, 3)), x)


def test_translation_costs_n_times_the_shift():
    # For a pure translation the identity bijection is optimal: sum |v| over points (Monge, convex cost).
    x = cloud(1, 40, 2)
    v = torch.tensor([0.3, -0.4, 1.2], dtype=torch.float64)
    value, assignment = emd_exact(x, x + v)
    assert value.item() == pytest.approx(40 * 1.3)
    assert emd_exact(x, x + v, point_reduction="mean")[0].item() == pytest.approx(1.3)


def test_two_points_cross_match():
    x = torch.tensor([[[0.0, 0, 0], [10.0, 0, 0]]], dtype=torch.float64)
    y = torch.tensor([[[10.0, 1, 0], [0.0, 1, 0]]], dtype=torch.float64)
    value, assignment = emd_exact(x, y)
    assert value.item() == pytest.approx(2.0)
    assert assignment.tolist() == [[1, 0]]


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_matches_brute_force_permutations(n):
    x, y = cloud(3, n, 10 + n), cloud(3, n, 20 + n)
    want = torch.tensor([brute_force_emd(a, b) for a, b in zip(x.numpy(), y.numpy())], dtype=torch.float64)
    torch.testing.assert_close(emd_exact(x, y)[0], want)


def test_matches_scipy_linear_sum_assignment():
    x, y = cloud(2, 200, 3), cloud(2, 200, 4)
    want = []
    for a, b in zip(x.numpy(), y.numpy()):
        d = cdist(a, b)
        want.append(d[linear_sum_assignment(d)].sum())
    torch.testing.assert_close(emd_exact(x, y)[0], torch.tensor(want, dtype=torch.float64))
    torch.testing.assert_close(emd_exact(x, y, reduction="mean")[0], torch.tensor(want, dtype=torch.float64).mean())


def test_gradcheck_through_the_fixed_assignment():
    x, y = cloud(2, 5, 5).requires_grad_(), cloud(2, 5, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: emd_exact(a, b)[0], (x, y))
    # The gradient is that of the matched distances: unit vectors from the partner.
    (grad,) = torch.autograd.grad(emd_exact(x, y)[0].sum(), (x,))
    matched = y.detach().gather(1, optimal_assignment(x, y).unsqueeze(-1).expand(-1, -1, 3))
    diff = x.detach() - matched
    torch.testing.assert_close(grad, diff / diff.norm(dim=-1, keepdim=True))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_symmetric_and_nonnegative(seed, n):
    x, y = cloud(2, n, seed), cloud(2, n, seed + 1)
    d = emd_exact(x, y)[0]
    torch.testing.assert_close(d, emd_exact(y, x)[0])
    assert (d >= 0).all()
    # at least the one-sided Chamfer-like bound: every point travels at least to its nearest
    nearest = torch.cdist(x, y).amin(2).sum(1)
    assert (d >= nearest - 1e-12).all()


# ------------------------------------------------------------------ Sinkhorn approximation

@pytest.mark.parametrize("make", [sphere, lambda n, s: cloud(1, n, s)], ids=["sphere", "cube"])
def test_sinkhorn_gap_to_exact(make):
    """Observed on 128 points (radius-0.5 sphere / unit cube): default eps=3e-3: +0.37..0.49%;
    eps=1e-3: +0.03..0.06%; eps=1e-2: +2.0..2.3%. The bounds below leave room for round-off only."""
    x, y = make(128, 1), make(128, 2)
    exact = emd_exact(x, y)[0]
    gap = lambda v: ((v - exact) / exact).item()  # noqa: E731
    assert -0.001 < gap(emd_sinkhorn(x, y)) < 0.01
    assert -0.001 < gap(emd_sinkhorn(x, y, eps=1e-3)) < 0.002
    assert 0.01 < gap(emd_sinkhorn(x, y, eps=1e-2)) < 0.04  # a larger eps is visibly worse


def test_sinkhorn_gradient_points_along_the_transport():
    # The plan is held fixed (envelope theorem of the regularised problem), so this is not the
    # exact derivative of the returned cost; it must agree with the exact EMD's gradient.
    x, y = sphere(48, 3).requires_grad_(), sphere(48, 4)
    (g_approx,) = torch.autograd.grad(emd_sinkhorn(x, y, eps=1e-3).sum(), (x,))
    (g_exact,) = torch.autograd.grad(emd_exact(x, y)[0].sum(), (x,))
    cos = torch.nn.functional.cosine_similarity(g_approx.flatten(), g_exact.flatten(), dim=0)
    assert cos > 0.9


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("fn", [lambda a, b: emd_exact(a, b), emd_sinkhorn])
@pytest.mark.parametrize("x, y, message", [
    (torch.zeros(1, 3, 3), torch.zeros(1, 4, 3), "equal-size"),
    (torch.zeros(1, 0, 3), torch.zeros(1, 0, 3), "empty cloud"),
    (torch.full((1, 3, 3), float("nan")), torch.zeros(1, 3, 3), "NaN"),
    (torch.zeros(2, 3, 3), torch.zeros(1, 3, 3), "same batch size"),
])
def test_bad_input_raises_a_named_error(fn, x, y, message):
    with pytest.raises(ValueError, match=message):
        fn(x, y)


def test_bad_options():
    x = cloud(1, 3)
    with pytest.raises(ValueError, match="point_reduction"):
        emd_exact(x, x, point_reduction="max")
    with pytest.raises(ValueError, match="eps"):
        emd_sinkhorn(x, x, eps=0)
