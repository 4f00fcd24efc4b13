"""Thin-plate spline grids of coursekit.stn.tps: interpolation, identity, affine reproduction, SciPy agreement."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RBFInterpolator

from coursekit.stn import (affine_grid, identity_grid, target_coordinates, tps_control_points, tps_grid, tps_kernel,
                           tps_solve)

f64 = torch.float64


def _moved(control, batch=2, scale=0.15, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return control + scale * torch.randn(batch, *control.shape, generator=gen, dtype=control.dtype)


def _evaluate(coefficients, control, points):
    """T(p) = sum_k w_k U(|p - c_k|^2) + a_x x + a_y y + a_1, written out from the docstring."""
    k = control.shape[0]
    r2 = ((points[:, None] - control[None]) ** 2).sum(-1)
    w, a = coefficients[:, :k], coefficients[:, k:]
    radial = torch.einsum("nk,bkd->bnd", tps_kernel(r2), w)
    return radial + points[None, :, :1] * a[:, None, 0] + points[None, :, 1:] * a[:, None, 1] + a[:, None, 2]


def test_control_points_are_a_regular_grid_in_row_major_order():
    points = tps_control_points(4)
    assert points.shape == (16, 2)
    ticks = torch.tensor([-1, -1 / 3, 1 / 3, 1])
    assert torch.allclose(points[:4, 0], ticks) and torch.allclose(points[:4, 1], torch.full((4,), -1.0))
    assert torch.allclose(points[4::4, 1], ticks[1:]) and torch.allclose(points[::4, 0], torch.full((4,), -1.0))
    with pytest.raises(ValueError, match="grid_size"):
        tps_control_points(1)


def test_kernel_is_r2_log_r2_with_zero_at_the_origin():
    r2 = torch.tensor([0.0, 1.0, math.e, 0.25], dtype=f64, requires_grad=True)
    u = tps_kernel(r2)
    assert torch.allclose(u, torch.tensor([0.0, 0.0, math.e, 0.25 * math.log(0.25)], dtype=f64))
    (grad,) = torch.autograd.grad(u.sum(), r2)
    assert torch.isfinite(grad).all()


def test_spline_interpolates_the_control_points_exactly():
    control = tps_control_points(4, dtype=f64)
    source = _moved(control)
    coefficients = tps_solve(source, control)
    assert coefficients.shape == (2, 19, 2)
    assert torch.allclose(_evaluate(coefficients, control, control), source, atol=1e-10)
    # side conditions P^T w = 0: the radial part has no affine component
    p = torch.cat([control, torch.ones(16, 1, dtype=f64)], dim=1)
    assert torch.allclose(p.T @ coefficients[:, :16], torch.zeros(2, 3, 2, dtype=f64), atol=1e-10)


def test_grid_passes_through_control_points_placed_on_pixel_centres():
    size = (5, 7)
    centres = target_coordinates(size, dtype=f64)[:, :2].reshape(5, 7, 2)
    picks = [(0, 0), (0, 6), (4, 0), (4, 6), (2, 3), (1, 5)]
    control = torch.stack([centres[r, c] for r, c in picks])
    source = _moved(control, batch=3, scale=0.3, seed=4)
    grid = tps_grid(source, size, control=control)
    for k, (r, c) in enumerate(picks):
        assert torch.allclose(grid[:, r, c], source[:, k], atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(grid_size=st.integers(2, 5), h=st.integers(1, 16), w=st.integers(1, 16), batch=st.integers(1, 3),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_control_points_as_source_give_the_identity_grid(grid_size, h, w, batch, dtype):
    control = tps_control_points(grid_size, dtype=dtype)
    grid = tps_grid(control.expand(batch, -1, -1), (h, w))
    assert grid.dtype == dtype
    assert torch.allclose(grid, identity_grid(batch, (h, w), dtype=dtype), rtol=0, atol=1e-6)


def test_affinely_moved_control_points_give_the_affine_grid():
    control = tps_control_points(4, dtype=f64)
    theta = torch.tensor([[[0.9, -0.3, 0.1], [0.25, 1.1, -0.2]], [[1.2, 0.1, 0.0], [-0.4, 0.8, 0.3]]], dtype=f64)
    source = control @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]
    coefficients = tps_solve(source, control)
    assert torch.allclose(coefficients[:, :16], torch.zeros(2, 16, 2, dtype=f64), atol=1e-10)   # no bending
    assert torch.allclose(coefficients[:, 16:], theta.transpose(1, 2), atol=1e-10)            # a = A_theta^T
    assert torch.allclose(tps_grid(source, (6, 9)), affine_grid(theta, (6, 9)), atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_grid_equals_scipy_thin_plate_rbf(seed):
    # SciPy's kernel is r^2 log r (half of ours) with a degree-1 polynomial: the same interpolant.
    control = tps_control_points(4, dtype=f64)
    source = _moved(control, batch=1, scale=0.2, seed=seed)
    size = (7, 10)
    ours = tps_grid(source, size)[0].reshape(-1, 2)
    scipy = RBFInterpolator(control.numpy(), source[0].numpy(), kernel="thin_plate_spline", degree=1)
    want = scipy(target_coordinates(size, dtype=f64)[:, :2].numpy())
    assert np.allclose(ours.numpy(), want, atol=1e-10)


def test_scattered_control_points():
    gen = torch.Generator().manual_seed(3)
    control = torch.rand(10, 2, generator=gen, dtype=f64) * 2 - 1
    source = _moved(control, batch=2, seed=5)
    assert torch.allclose(_evaluate(tps_solve(source, control), control, control), source, atol=1e-9)
    with pytest.raises(ValueError, match="not a square grid; pass `control`"):
        tps_grid(source, (4, 4))
    assert tps_grid(source, (4, 4), control=control).shape == (2, 4, 4, 2)


def test_gradcheck_tps_grid_wrt_source_points():
    control = tps_control_points(3, dtype=f64)
    source = _moved(control, batch=2, scale=0.1, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: tps_grid(s, (4, 5)), (source,))
    assert torch.autograd.gradcheck(lambda s: tps_solve(s, control), (source,))


@pytest.mark.parametrize("source_shape, control_shape, expected", [
    ((2, 16, 3), (16, 2), r"source_points must have shape \(B, K=16, 2\).*got \(2, 16, 3\)"),
    ((2, 9, 2), (16, 2), r"source_points must have shape \(B, K=16, 2\).*got \(2, 9, 2\)"),
    ((16, 2), (16, 2), r"source_points must have shape \(B, K=16, 2\).*got \(16, 2\)"),
    ((2, 16, 2), (16, 3), r"control must have shape \(K, 2\), got \(16, 3\)"),
    ((1, 2, 2), (2, 2), "at least 3 control points"),
])
def test_wrong_shapes_raise_value_errors(source_shape, control_shape, expected):
    with pytest.raises(ValueError, match=expected):
        tps_solve(torch.zeros(source_shape), torch.rand(control_shape))
