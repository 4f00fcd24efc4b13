"""SpatialTransformer, the localisation nets, and the stn exercise checks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checks import REGISTRY, compare, evaluate, make_cases, run_answer
from coursekit.stn import (IDENTITY_AFFINE, TRANSFORMS, ConvLocalisation, FCLocalisation, SpatialTransformer,
                           identity_params, n_params, tps_control_points)

STN_EXERCISES = ("stn.affine_grid", "stn.bilinear_sample", "stn.attention_grid", "stn.tps_solve")


def _images(b=3, c=1, h=28, w=28, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _stn(transform, c=1, size=(28, 28), conv=False, **kwargs):
    k = n_params(transform)
    identity = identity_params(transform)
    if conv:
        loc = ConvLocalisation(c, k, identity)
    else:
        loc = FCLocalisation(c * size[0] * size[1], n_params=k, identity=identity)
    return SpatialTransformer(loc, transform, **kwargs)


def test_n_params_and_identity_params():
    assert [n_params(t) for t in TRANSFORMS] == [6, 3, 8, 32]
    assert n_params("tps", tps_grid_size=3) == 18
    assert identity_params("affine").tolist() == list(IDENTITY_AFFINE)
    assert torch.equal(identity_params("tps"), tps_control_points(4).flatten())
    with pytest.raises(ValueError, match="unknown transform 'rotation'"):
        n_params("rotation")


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("conv", [False, True])
def test_a_fresh_transformer_is_the_identity(transform, conv):
    U = _images()
    stn = _stn(transform, conv=conv)
    assert torch.allclose(stn(U), U, atol=1e-5)
    assert stn.last_grid.shape == (3, 28, 28, 2) and not stn.last_grid.requires_grad
    want_theta = {"affine": (3, 2, 3), "attention": (3, 3), "projective": (3, 8), "tps": (3, 16, 2)}[transform]
    assert stn.last_theta.shape == want_theta and not stn.last_theta.requires_grad


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("conv", [False, True])
def test_gradients_reach_every_localisation_parameter(transform, conv):
    torch.manual_seed(0)
    stn = _stn(transform, conv=conv)
    U = _images(seed=1)
    stn(U)                                    # materialise lazy layers
    with torch.no_grad():                     # leave the zero init, so gradients reach the earlier layers
        stn.localisation.regression.weight.normal_(0, 0.05)
    target = _images(seed=2)
    F.mse_loss(stn(U), target).backward()
    for name, param in stn.localisation.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_at_zero_init_only_the_regression_layer_learns():
    stn = _stn("affine")
    F.mse_loss(stn(_images()), _images(seed=2)).backward()
    assert stn.localisation.regression.bias.grad.abs().sum() > 0
    assert stn.localisation.features[1].weight.grad.abs().sum() == 0


def test_nearest_kernel_gives_no_gradient_to_the_localisation_net():
    stn = _stn("affine", kernel="nearest")
    out = stn(_images())
    assert not out.requires_grad


def test_out_size_differs_from_the_input_attention_zoom():
    U = _images(b=2, c=3, h=40, w=50).double()
    loc = FCLocalisation(None, n_params=3, identity=(0.5, 0.25, -0.25)).double()    # 2x zoom, up and right
    stn = SpatialTransformer(loc, "attention", out_size=(20, 25))
    V = stn(U)
    assert V.shape == (2, 3, 20, 25)
    # Output pixel (r, j) reads source pixel coordinates x^s = j + 18.75, y^s = r + 5 (worked out from
    # x^s = 0.5 x^t + 0.25, y^s = 0.5 y^t - 0.25 and the pixel-centre convention).
    want = 0.25 * U[:, :, 5:25, 18:43] + 0.75 * U[:, :, 5:25, 19:44]
    assert torch.allclose(V, want, atol=1e-12)


def test_on_a_feature_map_with_many_channels():
    features = torch.randn(2, 16, 9, 11)
    stn = SpatialTransformer(FCLocalisation(16 * 9 * 11, n_params=6), "affine", out_size=(5, 6))
    assert stn(features).shape == (2, 16, 5, 6)


def test_double_precision_and_tps_buffer_follow_the_module():
    stn = _stn("tps").double()
    U = _images().double()
    assert torch.allclose(stn(U), U, atol=1e-10)
    assert stn.control.dtype == torch.float64 and "control" not in stn.state_dict()


def test_conv_localisation_sizes_lazy_and_given_agree():
    for side in (28, 42, 60):
        given = ConvLocalisation(1, 6, in_size=(side, side))
        lazy = ConvLocalisation(1, 6)
        U = _images(b=2, h=side, w=side)
        assert given(U).shape == lazy(U).shape == (2, 6)
        assert torch.allclose(given(U), torch.tensor(IDENTITY_AFFINE).expand(2, 6))
    with pytest.raises(ValueError, match="too small"):
        ConvLocalisation(1, 6)(_images(h=20, w=20))
    with pytest.raises(ValueError, match="too small"):
        ConvLocalisation(1, 6, in_size=(20, 20))


def test_localisation_identity_length_must_match():
    with pytest.raises(ValueError, match="identity has 6 parameters but n_params is 8"):
        FCLocalisation(10, n_params=8)
    with pytest.raises(ValueError, match="in_features"):
        FCLocalisation(None, hidden=())


class _Fixed(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, U):
        return torch.zeros(U.shape[0], self.n)


def test_clear_errors():
    with pytest.raises(ValueError, match=r"must return \(B, 6\) parameters for a 'affine' transform, got \(3, 8\)"):
        SpatialTransformer(_Fixed(8), "affine")(_images())
    with pytest.raises(ValueError, match=r"expects U of shape \(B, C, H, W\), got \(28, 28\)"):
        SpatialTransformer(_Fixed(6))(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="unknown transform"):
        SpatialTransformer(_Fixed(6), "similarity")
    with pytest.raises(ValueError, match="unknown sampling kernel"):
        SpatialTransformer(_Fixed(6), kernel="bicubic")
    with pytest.raises(ValueError, match="out_size"):
        SpatialTransformer(_Fixed(6), out_size=(0, 3))


def test_trains_to_undo_a_shift():
    """A few Adam steps teach an affine ST to undo a known translation of the input."""
    torch.manual_seed(0)
    clean = F.avg_pool2d(_images(b=8, h=32, w=32, seed=5), 3, 1, 1)
    shifted = torch.roll(clean, shifts=4, dims=-1)
    stn = SpatialTransformer(FCLocalisation(32 * 32, hidden=(16,), n_params=6), "affine")
    opt = torch.optim.Adam(stn.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = F.mse_loss(stn(shifted)[..., 6:-6, 6:-6], clean[..., 6:-6, 6:-6])
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    assert stn.last_theta[:, 0, 2].mean() > 0.1          # x^s = x^t + t with t > 0: read to the right


# ------------------------------------------------------------------------------- exercise checks

@pytest.mark.parametrize("name", STN_EXERCISES)
@pytest.mark.parametrize("seed", range(3))
def test_exercise_reference_passes_and_each_mistake_gets_its_own_message(name, seed):
    exercise = REGISTRY[name]
    assert exercise.points == 2
    cases = make_cases(exercise, seed)
    assert compare(exercise, cases, run_answer(exercise.reference, cases)).passed
    for mistake in exercise.mistakes:
        result = compare(exercise, cases, run_answer(mistake.answer, cases))
        assert not result.passed and mistake.message in result.message, (mistake.message, result.message)


@pytest.mark.parametrize("name", STN_EXERCISES)
def test_exercise_stub_fails(name):
    def stub(*args):
        raise NotImplementedError
    assert "not implemented yet" in evaluate(name, stub).message


def _calls_grid_sample(U, grid):
    return F.grid_sample(U, grid, align_corners=False)


def test_sampler_exercise_forbids_grid_sample():
    result = evaluate("stn.bilinear_sample", _calls_grid_sample)
    assert not result.passed and "grid_sample" in result.message
