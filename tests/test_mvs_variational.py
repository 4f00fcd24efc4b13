"""R-MVSNet's variational depth-map refinement: the energy by hand and by gradcheck, the staircase removed."""

import pytest
import torch

from coursekit.data.mvs import MVSSamples, make_mvs_scene
from coursekit.models.mvs.plane_sweep import PlaneSweep
from coursekit.models.mvs.rmvsnet import RMVSNet
from coursekit.models.mvs.variational import VariationalRefinement, photometric_energy, variational_refinement

D64 = torch.float64


def _sample(size=(32, 48), n_planes=32, dtype=torch.float32):
    """A reference view of a procedural scene with its two best sources, GT depth, planes."""
    scene = make_mvs_scene(3, n_views=5, size=size)
    s = MVSSamples([scene], n_src=2, n_depths=n_planes)[0]
    b = {k: v[None].to(dtype) if v.is_floating_point() else v[None] for k, v in s.items()}
    return b


def _staircase(depth, values):
    """Every depth moved to its nearest plane (a winner-take-all map of a perfect matcher)."""
    k = (depth.unsqueeze(1) - values[..., None, None]).abs().argmin(1)
    return values[0][k]


def test_smoothness_term_is_the_bilateral_sum_of_squared_neighbour_differences():
    b = _sample(size=(8, 12), dtype=D64)
    g = torch.Generator().manual_seed(0)
    depth = b["depth"].clamp_min(1.0) + 0.01 * torch.rand(b["depth"].shape, generator=g, dtype=D64)
    args = (b["images"], b["K"], b["R"], b["t"])
    lam, sigma = 7.0, 0.2
    extra = photometric_energy(depth, *args, smoothness=lam, sigma=sigma) - photometric_energy(depth, *args)
    ref, z = b["images"][0, 0], depth[0]
    want = 0.0
    for i in range(8):
        for j in range(12):
            for di, dj in ((0, 1), (1, 0)):  # right and lower neighbour
                if i + di < 8 and j + dj < 12:
                    w = torch.exp(-(ref[:, i, j] - ref[:, i + di, j + dj]).abs().mean() / sigma)
                    want = want + w * (z[i, j] - z[i + di, j + dj]) ** 2
    torch.testing.assert_close(extra[0], lam * want)


def test_photometric_energy_gradcheck_float64():
    b = _sample(size=(8, 12), dtype=D64)
    g = torch.Generator().manual_seed(1)
    depth = (b["depth"].clamp_min(1.0) + 0.013 * torch.rand(b["depth"].shape, generator=g, dtype=D64)).requires_grad_()
    args = (b["images"], b["K"], b["R"], b["t"])
    assert torch.autograd.gradcheck(lambda d: photometric_energy(d, *args, smoothness=3.0), (depth,))


def test_energy_is_lowest_near_the_true_depth():
    """Against the GT depth moved off it by a constant (either way), the photometric term is lower at the GT."""
    b = _sample()
    args = (b["images"], b["K"], b["R"], b["t"])
    gt = torch.where(b["depth"] > 0, b["depth"], torch.full_like(b["depth"], 2.0))
    at_gt = photometric_energy(gt, *args)
    for shift in (-0.03, 0.03):
        assert photometric_energy(gt + shift, *args) > at_gt


def test_refinement_removes_the_staircase_within_its_bound():
    b = _sample()
    values = b["depth_values"]
    interval = float(values[0, 1] - values[0, 0])
    start = _staircase(b["depth"], values)
    refined = variational_refinement(start, b["images"], b["K"], b["R"], b["t"], step=interval / 10,
                                     max_change=interval)
    m = b["mask"]
    before = (start - b["depth"])[m].abs().median()
    after = (refined - b["depth"])[m].abs().median()
    assert after < 0.7 * before, f"median error on the objects {1000 * after:.1f} mm, staircase {1000 * before:.1f} mm"
    assert (refined - start).abs().max() <= interval + 1e-6
    assert torch.equal(start, _staircase(b["depth"], values))  # the input is untouched
    unchanged = variational_refinement(start, b["images"], b["K"], b["R"], b["t"], step=interval / 10, iterations=0)
    assert torch.equal(unchanged, start)


def test_refinement_works_under_no_grad_and_at_a_lower_depth_resolution():
    """Images at 64x96, depths at 32x48: the same scene rendered at the depth map's size is the ground truth
    (the images are blurred by the down-sampling, so the gain is smaller than at the images' own size)."""
    b, low = _sample(size=(64, 96)), _sample(size=(32, 48))
    values = b["depth_values"]
    interval = float(values[0, 1] - values[0, 0])
    start = _staircase(low["depth"], values)
    with torch.no_grad():
        refined = variational_refinement(start, b["images"], b["K"], b["R"], b["t"], step=interval / 10,
                                         max_change=interval)
    assert refined.shape == start.shape and not refined.requires_grad
    m = low["mask"]
    after, before = (refined - low["depth"])[m].abs().median(), (start - low["depth"])[m].abs().median()
    assert after < 0.85 * before, f"median error on the objects {1000 * after:.1f} mm, staircase {1000 * before:.1f} mm"


def test_refinement_rejects_bad_input():
    b = _sample(size=(8, 12))
    args = (b["images"], b["K"], b["R"], b["t"])
    depth = torch.ones(1, 8, 12)
    with pytest.raises(ValueError, match="NaN"):
        variational_refinement(torch.full_like(depth, float("nan")), *args, step=0.01)
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        variational_refinement(depth[0], *args, step=0.01)
    with pytest.raises(ValueError, match="V >= 2"):
        variational_refinement(depth, b["images"][:, :1], *args[1:], step=0.01)
    with pytest.raises(ValueError, match="step > 0"):
        variational_refinement(depth, *args, step=0.0)


def test_wrapper_refines_in_eval_at_image_size_and_passes_through_in_training():
    b = _sample()
    args = (b["images"], b["K"], b["R"], b["t"], b["depth_values"])
    interval = float(b["depth_values"][0, 1] - b["depth_values"][0, 0])
    torch.manual_seed(0)
    model = VariationalRefinement(RMVSNet(subplane=True), max_change=0.5)
    with torch.no_grad():
        train_out = model.train()(*args)
        out = model.eval()(*args)
    assert train_out["depth"].shape == (1, 16, 24) and "initial" not in train_out  # the model's own soft argmin
    assert out["initial"].shape == (1, 16, 24) and out["depth"].shape == out["confidence"].shape == (1, 32, 48)
    up = torch.nn.functional.interpolate(out["initial"][:, None], size=(32, 48), mode="bilinear", align_corners=False)[:, 0]
    moved = (out["depth"] - up).abs()
    assert moved.max() <= 0.5 * interval + 1e-5 and moved.mean() > 0.05 * interval
    # the plane sweep's staircase, refined: closer to the ground truth on the objects (median)
    sweep = VariationalRefinement(PlaneSweep("sad", 3)).eval()
    with torch.no_grad():
        ps = sweep(*args)
    m = b["mask"]
    before, after = (ps["initial"] - b["depth"])[m].abs().median(), (ps["depth"] - b["depth"])[m].abs().median()
    assert after < 0.8 * before, f"median error on the objects {1000 * after:.1f} mm, plane sweep {1000 * before:.1f} mm"
