"""The four distorted-MNIST distortions: geometry against the drawn factors, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit.stn import bilinear_sample, projective_grid, tps_control_points, tps_grid
from coursekit.stn.distortions import (
    KINDS,
    DistortedBatches,
    distort,
    draw_distortion,
    homography_from_points,
    make_distorted_dataset,
    output_size,
    warp,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob(batch: int, x_px: float, y_px: float, size: int = 28, sigma: float = 1.2) -> torch.Tensor:
    """A Gaussian spot centred ``(x_px, y_px)`` pixels right/below the image centre."""
    centres = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    img = torch.exp(-((centres[None, :] - x_px) ** 2 + (centres[:, None] - y_px) ** 2) / (2 * sigma**2))
    return img.expand(batch, 1, size, size).clone()


def centre_px(images: torch.Tensor) -> torch.Tensor:
    """Centre of mass ``(B, 2)`` as ``(x, y)`` pixels from the image centre."""
    size = images.shape[-1]
    c = torch.arange(size, dtype=images.dtype) - (size - 1) / 2
    ink = images[:, 0]
    mass = ink.sum((1, 2))
    return torch.stack([(ink.sum(1) * c).sum(1) / mass, (ink.sum(2) * c).sum(1) / mass], 1)


def rotate_ccw(points: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Turn ``(B, 2)`` image-coordinate points (y down) counter-clockwise *on screen*."""
    a = torch.deg2rad(angle_deg)
    x, y = points.unbind(-1)
    return torch.stack([x * torch.cos(a) + y * torch.sin(a), -x * torch.sin(a) + y * torch.cos(a)], -1)


def test_rotation_turns_counter_clockwise_by_the_drawn_angle():
    images = blob(64, 6.0, 0.0, size=28)
    out, truth = distort(images, "R", gen(1), return_params=True)
    angle = truth.factors["angle"]
    assert out.shape == (64, 1, 28, 28)
    assert angle.abs().max() <= 90 and angle.min() < -60 and angle.max() > 60
    want = rotate_ccw(torch.tensor([[6.0, 0.0]], dtype=torch.float64).expand(64, 2), angle)
    torch.testing.assert_close(centre_px(out), want, atol=0.05, rtol=0)
    # +90 degrees sends a spot right of the centre to the top (smaller row), not the bottom.
    top = out[angle.argmax(), 0]
    assert top[:14].sum() > 10 * top[14:].sum()


def test_rts_scales_rotates_and_places_on_a_42_canvas():
    images = blob(200, 5.0, -3.0, size=28, sigma=1.5)
    out, truth = distort(images, "RTS", gen(2), return_params=True)
    assert out.shape == (200, 1, 42, 42) and output_size("RTS") == 42
    f = truth.factors
    assert f["angle"].abs().max() <= 45
    assert f["scale"].min() >= 0.7 and f["scale"].max() <= 1.2 and f["scale"].max() - f["scale"].min() > 0.4
    room = (42 - 28 * f["scale"]) / 2
    assert (f["shift"].abs() <= room[:, None]).all() and f["shift"].abs().max() > 3
    # P_t = s R P_s + t (pixels from the centres) ...
    p_s = torch.tensor([[5.0, -3.0]], dtype=torch.float64).expand(200, 2)
    want = f["scale"][:, None] * rotate_ccw(p_s, f["angle"]) + f["shift"]
    torch.testing.assert_close(centre_px(out), want, atol=0.1, rtol=0)
    # ... and ink area grows with s^2 (scale in the right direction, not 1/s).
    ratio = out.sum((1, 2, 3)) / images.sum((1, 2, 3))
    torch.testing.assert_close(ratio, f["scale"] ** 2, rtol=0.05, atol=0)


def test_projective_maps_moved_corners_to_corners():
    truth = draw_distortion("P", 50, gen(3))
    f = truth.factors
    assert f["scale"].min() >= 0.75 and f["scale"].max() <= 1.0
    assert 4.0 < f["corner_shift"].std() < 6.0          # N(0, 5 px)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    moved = f["scale"][:, None, None] * corners + f["corner_shift"] * (2 / 28)
    h = torch.cat([truth.params, torch.ones(50, 1, dtype=torch.float64)], 1).reshape(50, 3, 3)
    uvw = torch.cat([moved, torch.ones(50, 4, 1, dtype=torch.float64)], 2) @ h.transpose(1, 2)
    torch.testing.assert_close(uvw[..., :2] / uvw[..., 2:], corners.expand(50, 4, 2))


def test_projective_footprint_is_the_moved_corner_quadrilateral():
    from matplotlib.path import Path

    truth = draw_distortion("P", 30, gen(7))
    out = warp(torch.ones(30, 1, 28, 28), truth)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    ticks = torch.arange(28.0) - 13.5
    pixels = torch.stack(torch.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2).numpy()
    for i in range(30):
        quad = (truth.factors["scale"][i] * corners + truth.factors["corner_shift"][i] * (2 / 28)) * 14
        inside = torch.from_numpy(Path(quad.numpy()).contains_points(pixels)).reshape(28, 28)
        assert ((out[i, 0] > 0.5) == inside).float().mean() > 0.98


def test_homography_from_points_recovers_a_known_homography():
    h = torch.tensor([[0.9, 0.1, 0.05, -0.2, 1.1, -0.1, 0.15, -0.1]], dtype=torch.float64)
    target = torch.tensor([[[-0.8, -0.7], [0.9, -0.6], [0.7, 0.8], [-0.6, 0.9]]], dtype=torch.float64)
    full = torch.cat([h, torch.ones(1, 1, dtype=torch.float64)], 1).reshape(1, 3, 3)
    uvw = torch.cat([target, torch.ones(1, 4, 1, dtype=torch.float64)], 2) @ full.transpose(1, 2)
    source = uvw[..., :2] / uvw[..., 2:]
    torch.testing.assert_close(homography_from_points(target, source), h)
    # In projective_grid's convention: the pixel centres of a 2x2 output, taken as the
    # target points, are sent to the source points.
    centres = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]], dtype=torch.float64)
    grid = projective_grid(homography_from_points(centres, source), (2, 2))
    torch.testing.assert_close(grid.reshape(1, 4, 2), source)


def test_elastic_moves_the_4x4_control_points():
    truth = draw_distortion("E", 40, gen(4))
    f = truth.factors
    assert truth.params.shape == (40, 16, 2)
    assert 1.2 < f["control_shift"].std() < 1.8         # N(0, 1.5 px)
    control = tps_control_points(4, torch.float64)
    torch.testing.assert_close(truth.params, (control + f["control_shift"] * (2 / 28)) / f["scale"][:, None, None])
    # The grid passes through the moved control points (the TPS interpolates them).
    grid = truth.grid()
    assert grid.shape == (40, 28, 28, 2)
    torch.testing.assert_close(tps_grid(truth.params, (28, 28)), grid)


@pytest.mark.parametrize("kind", KINDS)
def test_distort_equals_coursekit_bilinear_sampler(kind):
    images = torch.rand(3, 1, 28, 28, generator=gen(5))
    out, truth = distort(images, kind, gen(6), return_params=True)
    torch.testing.assert_close(out, bilinear_sample(images, truth.grid().float()), atol=1e-5, rtol=1e-5)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind, worst, typical", [("R", 0.01, 0.01), ("RTS", 0.01, 0.01), ("E", 1.0, 0.25)])
def test_ink_scales_with_the_square_of_the_scale(kind, worst, typical):
    """R and RTS keep the ink up to the area factor s^2; E's control-point noise (1.5 px on a
    9.3 px spacing) changes local area by ~30% more. (P's perspective may shrink the centre
    5-fold; its footprint is tested above.)"""
    images = blob(100, 0.0, 0.0, sigma=3.0).float()
    out, truth = distort(images, kind, gen(7), return_params=True)
    ratio = out.sum((1, 2, 3)) / images.sum((1, 2, 3))
    scale = truth.factors.get("scale", torch.ones(100, dtype=torch.float64)).float()
    change = (ratio / scale**2 - 1).abs()
    assert change.max() < worst and change.median() < typical


@pytest.mark.parametrize("kind", KINDS)
def test_reproducible_from_the_seed_and_different_across_seeds(kind):
    images = torch.rand(4, 1, 28, 28, generator=gen(8))
    a = distort(images, kind, gen(9))
    assert torch.equal(a, distort(images, kind, gen(9)))
    assert not torch.allclose(a, distort(images, kind, gen(10)))


def test_make_distorted_dataset_is_independent_of_chunking_and_accepts_uint8():
    images = (torch.rand(10, 28, 28, generator=gen(11)) * 255).to(torch.uint8)
    labels = torch.arange(10)
    x1, y1 = make_distorted_dataset(images, labels, "E", seed=3, chunk=3)
    x2, y2 = make_distorted_dataset(images, labels, "E", seed=3)
    assert x1.shape == (10, 1, 28, 28) and x1.dtype == torch.float32
    torch.testing.assert_close(x1, x2)
    assert torch.equal(y1, labels)
    # the dataset is the batch distortion drawn from the same seed
    truth = draw_distortion("E", 10, gen(3))
    torch.testing.assert_close(x1, warp(images.unsqueeze(1).float() / 255, truth))


def test_distorted_batches_are_fresh_every_epoch_and_reproducible():
    images = torch.rand(10, 1, 28, 28, generator=gen(12))
    labels = torch.arange(10)
    data = DistortedBatches(images, labels, "RTS", batch_size=4, seed=0)
    assert len(data) == 3
    first, second = list(data), list(data)
    assert [len(y) for _, y in first] == [4, 4, 2] and first[0][0].shape == (4, 1, 42, 42)
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(10))
    assert not torch.equal(first[0][0], second[0][0])           # new poses next epoch
    again = list(DistortedBatches(images, labels, "RTS", batch_size=4, seed=0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_bad_input_is_named():
    images = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown distortion 'T'"):
        distort(images, "T", gen())
    with pytest.raises(ValueError, match="square digits"):
        distort(torch.rand(2, 1, 28, 30), "R", gen())
    with pytest.raises(ValueError, match="must be float"):
        distort((images * 255).to(torch.uint8), "R", gen())
    with pytest.raises(TypeError, match="torch.Generator"):
        distort(images, "R", 0)
    with pytest.raises(ValueError, match="2 images but 3 distortions"):
        warp(images, draw_distortion("R", 3, gen()))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        make_distorted_dataset(torch.rand(3, 1, 28, 28), torch.zeros(2, dtype=torch.long), "R", 0)


def test_rotation_range_is_uniform_over_plus_minus_90():
    angle = draw_distortion("R", 4000, gen(13)).factors["angle"]
    assert abs(angle.mean()) < 3 and math.isclose(angle.std().item(), 180 / math.sqrt(12), rel_tol=0.05)
