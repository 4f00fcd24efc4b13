"""The sampler of coursekit.stn.sampler against F.grid_sample, the slide's formula and the paper's gradients."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.stn import bilinear_sample, identity_grid, nearest_sample, sample

f64 = torch.float64


def _inputs(seed, b=2, c=3, h=5, w=7, out=(4, 6), spread=1.5, dtype=f64):
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(b, c, h, w, generator=gen, dtype=dtype)
    grid = (torch.rand(b, *out, 2, generator=gen, dtype=dtype) * 2 - 1) * spread
    return U, grid


def _grid_sample(U, grid, mode):
    return F.grid_sample(U, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _naive_bilinear(U, grid):
    """The slide's double sum over ALL pixels with k(d) = max(0, 1 - |d|): dense, tiny inputs only."""
    b, c, h, w = U.shape
    x = ((grid[..., 0].reshape(b, -1) + 1) * w - 1) / 2
    y = ((grid[..., 1].reshape(b, -1) + 1) * h - 1) / 2
    kx = (1 - (x[..., None] - torch.arange(w, dtype=U.dtype)).abs()).clamp_min(0)    # (B, P, W)
    ky = (1 - (y[..., None] - torch.arange(h, dtype=U.dtype)).abs()).clamp_min(0)    # (B, P, H)
    return torch.einsum("bpn,bpm,bcnm->bcp", ky, kx, U).reshape(b, c, *grid.shape[1:3])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spread", [0.9, 1.5, 5.0])
@pytest.mark.parametrize("mode, fn", [("bilinear", bilinear_sample), ("nearest", nearest_sample)])
def test_equals_grid_sample_float64_including_out_of_range(seed, spread, mode, fn):
    U, grid = _inputs(seed, spread=spread)
    assert torch.allclose(fn(U, grid), _grid_sample(U, grid, mode), rtol=0, atol=1e-6)
    assert torch.allclose(sample(U, grid, kernel=mode), _grid_sample(U, grid, mode), rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       oh=st.integers(1, 9), ow=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_equals_grid_sample_for_random_shapes(b, c, h, w, oh, ow, seed):
    U, grid = _inputs(seed, b, c, h, w, (oh, ow), spread=1.5)
    for mode, fn in (("bilinear", bilinear_sample), ("nearest", nearest_sample)):
        assert torch.allclose(fn(U, grid), _grid_sample(U, grid, mode), rtol=0, atol=1e-6), mode


def test_float32_matches_grid_sample():
    U, grid = _inputs(7, dtype=torch.float32)
    assert torch.allclose(bilinear_sample(U, grid), _grid_sample(U, grid, "bilinear"), atol=1e-5)


def test_bilinear_equals_the_slide_formula_summed_over_all_pixels():
    U, grid = _inputs(3, spread=1.4)
    assert torch.allclose(bilinear_sample(U, grid), _naive_bilinear(U, grid), atol=1e-12)


def test_gradients_are_the_papers():
    """dV/dU = k(x - m) k(y - n); dV/dx^s = sum U k(y - n) * {0 if |m - x| >= 1, 1 if m >= x, -1 if m < x}."""
    U, grid = _inputs(5, b=2, c=2, h=4, w=6, out=(3, 5), spread=1.3)
    U.requires_grad_(True)
    grid.requires_grad_(True)
    weight = torch.randn(2, 2, 3, 5, generator=torch.Generator().manual_seed(9), dtype=f64)
    grad_U, grad_grid = torch.autograd.grad((bilinear_sample(U, grid) * weight).sum(), (U, grid))

    b, c, h, w = U.shape
    x = ((grid[..., 0].detach().reshape(b, -1) + 1) * w - 1) / 2
    y = ((grid[..., 1].detach().reshape(b, -1) + 1) * h - 1) / 2
    dx = torch.arange(w, dtype=f64) - x[..., None]              # m - x, (B, P, W)
    dy = torch.arange(h, dtype=f64) - y[..., None]              # n - y, (B, P, H)
    kx, ky = (1 - dx.abs()).clamp_min(0), (1 - dy.abs()).clamp_min(0)
    gx = torch.where(dx.abs() >= 1, 0.0, torch.where(dx >= 0, 1.0, -1.0)).to(f64)
    gy = torch.where(dy.abs() >= 1, 0.0, torch.where(dy >= 0, 1.0, -1.0)).to(f64)
    wt = weight.reshape(b, c, -1)
    want_U = torch.einsum("bcp,bpn,bpm->bcnm", wt, ky, kx)
    dV_dxs = torch.einsum("bcp,bcnm,bpn,bpm->bp", wt, U.detach(), ky, gx)
    dV_dys = torch.einsum("bcp,bcnm,bpn,bpm->bp", wt, U.detach(), gy, kx)
    want_grid = torch.stack([dV_dxs * w / 2, dV_dys * h / 2], dim=-1).reshape(grid.shape)   # chain rule to [-1, 1]
    assert torch.allclose(grad_U, want_U, atol=1e-12)
    assert torch.allclose(grad_grid, want_grid, atol=1e-12)


def test_gradients_equal_grid_sample():
    U, grid = _inputs(11, spread=1.5)
    weight = torch.randn(2, 3, 4, 6, generator=torch.Generator().manual_seed(1), dtype=f64)
    grads = []
    for fn in (bilinear_sample, lambda u, g: _grid_sample(u, g, "bilinear")):
        u, g = U.clone().requires_grad_(), grid.clone().requires_grad_()
        grads.append(torch.autograd.grad((fn(u, g) * weight).sum(), (u, g)))
    for ours, theirs in zip(*grads):
        assert torch.allclose(ours, theirs, atol=1e-10)


def test_gradcheck_bilinear_image_and_grid():
    U, grid = _inputs(2, b=2, c=2, h=4, w=5, out=(3, 4), spread=1.3)
    assert torch.autograd.gradcheck(bilinear_sample, (U.requires_grad_(), grid.requires_grad_()))


def test_gradcheck_nearest_image_only_and_no_gradient_to_the_grid():
    U, grid = _inputs(4, b=2, c=2, h=4, w=5, out=(3, 4), spread=1.3)
    assert torch.autograd.gradcheck(lambda u: nearest_sample(u, grid), (U.clone().requires_grad_(),))
    grid.requires_grad_(True)
    out = nearest_sample(U, grid)
    assert not out.requires_grad
    out = nearest_sample(U.requires_grad_(), grid)
    (grad_grid,) = torch.autograd.grad(out.sum(), grid, allow_unused=True)
    assert grad_grid is None


def test_bilinear_sends_a_gradient_to_the_grid():
    U, grid = _inputs(6)
    grid.requires_grad_(True)
    (grad,) = torch.autograd.grad(bilinear_sample(U, grid).pow(2).sum(), grid)
    assert grad.abs().sum() > 0


def test_nearest_half_pixel_ties_round_to_even_like_grid_sample():
    # W = 8: x = (2k + 2) / 8 - 1 lands exactly on x^s = k + 0.5, a tie between pixels k and k + 1.
    U = (torch.arange(8, dtype=f64) + 1).view(1, 1, 1, 8)
    xs = torch.tensor([(2 * k + 2) / 8 - 1 for k in range(-1, 8)], dtype=f64)
    grid = torch.stack([xs, torch.zeros_like(xs)], dim=-1).view(1, 1, -1, 2)
    ours = nearest_sample(U, grid)
    assert torch.equal(ours, _grid_sample(U, grid, "nearest"))
    # ties -0.5, 0.5, 1.5, 2.5, ..., 7.5 go to pixels 0, 0, 2, 2, 4, 4, 6, 6, 8 (outside): values below
    assert ours.flatten().tolist() == [1, 1, 3, 3, 5, 5, 7, 7, 0]
    # the paper's floor(x + 0.5) would pick pixels 0, 1, 2, ..., i.e. differ at every other tie
    assert ours.flatten().tolist() != [1, 2, 3, 4, 5, 6, 7, 8, 0]


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12))
def test_identity_grid_returns_the_input(b, c, h, w):
    U = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(h * 13 + w))
    grid = identity_grid(b, (h, w))
    assert torch.allclose(bilinear_sample(U, grid), U, atol=1e-5)  # float32 round-off of the pixel centres
    assert torch.equal(nearest_sample(U, grid), U)
    assert torch.allclose(bilinear_sample(U.double(), identity_grid(b, (h, w), dtype=f64)), U.double(), atol=1e-12)


def test_far_outside_reads_zeros_and_edges_blend_with_zero():
    U = torch.ones(1, 1, 4, 4, dtype=f64)
    grid = torch.tensor([[[[-30.0, 0.1], [30.0, 0.1], [0.1, -1.0], [0.1, 1.0], [-1.25, 0.1]]]], dtype=f64)
    out = bilinear_sample(U, grid).flatten()
    # x = -1.25 is x^s = -1: one pixel left of pixel 0's centre: weight 0 on the image; y = +-1 is a half pixel out
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0], dtype=f64))


def test_non_contiguous_inputs():
    U, grid = _inputs(8, h=6, w=6, out=(5, 5))
    U_t, grid_t = U.transpose(2, 3), grid.transpose(1, 2)
    assert torch.allclose(bilinear_sample(U_t, grid_t), _grid_sample(U_t.contiguous(), grid_t.contiguous(), "bilinear"),
                          atol=1e-12)


@pytest.mark.parametrize("U_shape, grid_shape, expected", [
    ((2, 3, 5, 7), (2, 4, 6, 3), r"grid must have shape \(B=2, H', W', 2\), got \(2, 4, 6, 3\)"),
    ((2, 3, 5, 7), (3, 4, 6, 2), r"grid must have shape \(B=2, H', W', 2\), got \(3, 4, 6, 2\)"),
    ((3, 5, 7), (3, 4, 6, 2), r"U must have shape \(B, C, H, W\), got \(3, 5, 7\)"),
])
def test_wrong_shapes_raise_value_errors(U_shape, grid_shape, expected):
    with pytest.raises(ValueError, match=expected):
        bilinear_sample(torch.zeros(U_shape), torch.zeros(grid_shape))
    with pytest.raises(ValueError, match=expected):
        nearest_sample(torch.zeros(U_shape), torch.zeros(grid_shape))


def test_dtype_mismatch_and_unknown_kernel_raise():
    U, grid = _inputs(0)
    with pytest.raises(ValueError, match="same dtype"):
        bilinear_sample(U, grid.float())
    with pytest.raises(ValueError, match="unknown sampling kernel 'bicubic'"):
        sample(U, grid, kernel="bicubic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_grid_sample():
    U, grid = _inputs(1, b=4, c=3, h=20, w=30, out=(17, 23), spread=1.5)
    U, grid = U.cuda().requires_grad_(), grid.cuda().requires_grad_()
    for mode, fn in (("bilinear", bilinear_sample), ("nearest", nearest_sample)):
        assert torch.allclose(fn(U, grid), _grid_sample(U, grid, mode), atol=1e-6)
    ours = torch.autograd.grad(bilinear_sample(U, grid).sum(), (U, grid))
    theirs = torch.autograd.grad(_grid_sample(U, grid, "bilinear").sum(), (U, grid))
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-8)
