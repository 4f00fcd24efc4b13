"""Grid generators of coursekit.stn.grids: conventions, identities, PyTorch agreement, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.stn import (IDENTITY_AFFINE, IDENTITY_ATTENTION, IDENTITY_PROJECTIVE, affine_grid, attention_grid,
                           attention_theta, identity_grid, projective_grid, target_coordinates)

f64 = torch.float64
sizes = st.tuples(st.integers(1, 17), st.integers(1, 17))
dtypes = st.sampled_from([torch.float32, torch.float64])


def _generic_theta(batch, dtype=f64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.eye(2, 3, dtype=dtype) + 0.5 * torch.randn(batch, 2, 3, generator=gen, dtype=dtype)


def test_target_coordinates_are_pixel_centres_row_major():
    coords = target_coordinates((2, 4), dtype=f64)
    assert coords.shape == (8, 3)
    xs = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=f64)
    assert torch.allclose(coords[:4, 0], xs) and torch.allclose(coords[4:, 0], xs)
    assert torch.allclose(coords[:4, 1], torch.full((4,), -0.5, dtype=f64))
    assert torch.allclose(coords[4:, 1], torch.full((4,), 0.5, dtype=f64))
    assert torch.equal(coords[:, 2], torch.ones(8, dtype=f64))


def test_identity_grid_x_is_width_y_is_height():
    grid = identity_grid(2, (3, 5))
    assert grid.shape == (2, 3, 5, 2)
    assert torch.all(grid[0, :, 1:, 0] > grid[0, :, :-1, 0])      # x grows along the columns
    assert torch.all(grid[0, 1:, :, 1] > grid[0, :-1, :, 1])      # y grows along the rows
    assert torch.equal(grid[0], grid[1])


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), size=sizes, dtype=dtypes)
def test_identity_parameters_give_the_identity_grid_exactly(batch, size, dtype):
    want = identity_grid(batch, size, dtype=dtype)
    for fn, identity in ((affine_grid, torch.tensor(IDENTITY_AFFINE).view(2, 3)),
                         (attention_grid, torch.tensor(IDENTITY_ATTENTION)),
                         (projective_grid, torch.tensor(IDENTITY_PROJECTIVE))):
        params = identity.to(dtype).expand(batch, *identity.shape).contiguous()
        assert torch.equal(fn(params, size), want), fn.__name__


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), size=sizes, seed=st.integers(0, 2**16))
def test_affine_grid_equals_pytorch(batch, size, seed):
    theta = _generic_theta(batch, seed=seed)
    want = F.affine_grid(theta, (batch, 1, *size), align_corners=False)
    assert torch.allclose(affine_grid(theta, size), want, rtol=0, atol=1e-12)
    want32 = F.affine_grid(theta.float(), (batch, 1, *size), align_corners=False)
    assert torch.allclose(affine_grid(theta.float(), size), want32, rtol=0, atol=1e-6)


def test_affine_grid_is_target_to_source():
    # A shift by +0.5 in x reads the source half a width to the right: x^s = x^t + 0.5.
    theta = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]], dtype=f64)
    assert torch.allclose(affine_grid(theta, (3, 4)) - identity_grid(1, (3, 4), dtype=f64),
                          torch.tensor([0.5, 0.0], dtype=f64).expand(1, 3, 4, 2))


def test_attention_is_the_constrained_affine():
    params = torch.tensor([[0.5, 0.2, -0.3], [1.5, -0.4, 0.1]], dtype=f64)
    theta = attention_theta(params)
    assert torch.equal(theta[0], torch.tensor([[0.5, 0.0, 0.2], [0.0, 0.5, -0.3]], dtype=f64))
    grid = attention_grid(params, (5, 7))
    ident = identity_grid(2, (5, 7), dtype=f64)
    assert torch.allclose(grid, params[:, None, None, :1] * ident + params[:, None, None, 1:])


def _projective_brute_force(params, size):
    height, width = size
    out = torch.empty(params.shape[0], height, width, 2, dtype=f64)
    for b in range(params.shape[0]):
        p = params[b].tolist() + [1.0]
        for r in range(height):
            for c in range(width):
                x, y = -1 + (2 * c + 1) / width, -1 + (2 * r + 1) / height
                w = p[6] * x + p[7] * y + p[8]
                out[b, r, c, 0] = (p[0] * x + p[1] * y + p[2]) / w
                out[b, r, c, 1] = (p[3] * x + p[4] * y + p[5]) / w
    return out


def test_projective_grid_matches_the_formula():
    gen = torch.Generator().manual_seed(1)
    params = torch.tensor(IDENTITY_PROJECTIVE, dtype=f64) + 0.2 * torch.randn(3, 8, generator=gen, dtype=f64)
    assert torch.allclose(projective_grid(params, (4, 6)), _projective_brute_force(params, (4, 6)), atol=1e-12)


def test_projective_with_no_perspective_is_affine():
    theta = _generic_theta(2)
    params = torch.cat([theta.flatten(1), torch.zeros(2, 2, dtype=f64)], dim=1)
    assert torch.allclose(projective_grid(params, (5, 7)), affine_grid(theta, (5, 7)), atol=1e-14)


def test_projective_divide_is_guarded_and_keeps_the_sign():
    # w = p6 x^t + 1 on a 1x2 grid (x^t = -0.5, 0.5): p6 = 2 puts w = 0 exactly on the first pixel.
    def grid_for(p6):
        params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, p6, 0.0]], dtype=f64, requires_grad=True)
        return params, projective_grid(params, (1, 2), eps=1e-6)

    params, grid = grid_for(2.0)
    assert torch.isfinite(grid).all()
    assert grid[0, 0, 0, 0].item() == pytest.approx(-0.5 / 1e-6)       # w = 0 -> +eps: far outside
    assert torch.allclose(grid[0, 0, 1], torch.tensor([0.25, 0.0], dtype=f64))   # w = 2: untouched
    grid.sum().backward()
    assert torch.isfinite(params.grad).all()
    assert grid_for(2.0 + 1e-9)[1][0, 0, 0, 0].item() == pytest.approx(0.5 / 1e-6)    # w < 0 -> -eps
    assert grid_for(2.0 - 1e-9)[1][0, 0, 0, 0].item() == pytest.approx(-0.5 / 1e-6)   # w > 0 -> +eps


def test_gradcheck_affine_attention_projective():
    theta = _generic_theta(2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: affine_grid(t, (3, 4)), (theta,))
    params = torch.tensor([[0.6, 0.1, -0.2], [1.3, -0.3, 0.2]], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: attention_grid(p, (4, 3)), (params,))
    gen = torch.Generator().manual_seed(2)
    proj = (torch.tensor(IDENTITY_PROJECTIVE, dtype=f64) + 0.1 * torch.randn(2, 8, generator=gen, dtype=f64))
    assert torch.autograd.gradcheck(lambda p: projective_grid(p, (3, 5)), (proj.requires_grad_(),))


@pytest.mark.parametrize("fn, params, expected", [
    (affine_grid, torch.zeros(2, 3, 3), r"theta must have shape \(B, 2, 3\), got \(2, 3, 3\)"),
    (affine_grid, torch.zeros(2, 6), r"theta must have shape \(B, 2, 3\), got \(2, 6\)"),
    (attention_grid, torch.zeros(2, 2), r"params must have shape \(B, 3\).*got \(2, 2\)"),
    (projective_grid, torch.zeros(2, 9), r"params must have shape \(B, 8\), got \(2, 9\)"),
    (affine_grid, torch.zeros(2, 2, 3, dtype=torch.int64), "float tensor"),
])
def test_wrong_parameter_shapes_raise_value_errors(fn, params, expected):
    with pytest.raises(ValueError, match=expected):
        fn(params, (4, 5))


@pytest.mark.parametrize("size", [(4,), (0, 5), (2.5, 3), "ab", (1, 2, 3)])
def test_bad_sizes_raise(size):
    with pytest.raises(ValueError, match="size"):
        affine_grid(torch.zeros(1, 2, 3), size)


def test_size_accepts_torch_size_and_lists():
    theta = _generic_theta(1)
    want = affine_grid(theta, (3, 5))
    assert torch.equal(affine_grid(theta, torch.Size([3, 5])), want)
    assert torch.equal(affine_grid(theta, [3, 5]), want)


def test_rotation_moves_content_as_expected():
    # theta rotating target coordinates by +90 deg (x^s = -y^t, y^s = x^t): the output's top-left
    # pixel reads the source's top-right pixel.
    angle = math.pi / 2
    theta = torch.tensor([[[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]]],
                         dtype=f64)
    grid = affine_grid(theta, (4, 4))
    assert torch.allclose(grid[0, 0, 0], identity_grid(1, (4, 4), dtype=f64)[0, 0, -1])
