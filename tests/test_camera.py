"""Pinhole cameras: conventions, projection round trips, look-at, camera rigs."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.geometry.camera import (
    Camera,
    camera_centers,
    camera_to_world,
    dodecahedron_cameras,
    fov_intrinsics,
    intrinsics,
    look_at,
    perspective,
    pixel_grid,
    project,
    ring_cameras,
    unproject,
    world_to_camera,
)


def random_cameras(b, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(b, 3, generator=g, dtype=dtype) * 3
    eye = eye + 0.5 * eye.sign()  # keep away from the target
    target = torch.randn(b, 3, generator=g, dtype=dtype) * 0.2
    R, t = look_at(eye, target)
    fx = 50 + 100 * torch.rand(b, generator=g, dtype=dtype)
    K = intrinsics(fx, fx * 1.3, 40 + 10 * torch.rand(b, generator=g, dtype=dtype), 25.0, dtype)
    return K, R, t, eye, target


def test_intrinsics_layout_and_batching():
    K = intrinsics(100.0, 80.0, 32.0, 24.0)
    assert torch.equal(K, torch.tensor([[100.0, 0, 32], [0, 80, 24], [0, 0, 1]]))
    Kb = intrinsics(torch.tensor([1.0, 2.0]), 3.0, 4.0, 5.0)
    assert Kb.shape == (2, 3, 3) and Kb[1, 0, 0] == 2 and Kb[0, 1, 1] == 3
    K = fov_intrinsics(90.0, (48, 64))
    assert K[0, 0] == pytest.approx(32.0) and K[1, 1] == pytest.approx(32.0) and K[0, 2] == 32 and K[1, 2] == 24


def test_perspective_by_hand_with_unequal_focals_and_offset_centre():
    K = intrinsics(100.0, 50.0, 10.0, 20.0)[None]
    pts = torch.tensor([[[1.0, 2.0, 4.0], [-3.0, 0.5, 2.0]]])
    uv = perspective(pts, K)
    assert torch.allclose(uv, torch.tensor([[[100 * 0.25 + 10, 50 * 0.5 + 20], [100 * -1.5 + 10, 50 * 0.25 + 20]]]))
    # a mistaken (transposed) K gives different pixels: the check can fail
    assert not torch.allclose(perspective(pts, K.transpose(1, 2) + torch.eye(3)), uv)


def test_look_at_is_a_proper_rotation_and_centres_the_target():
    K, R, t, eye, target = random_cameras(16)
    eye3 = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R @ R.transpose(1, 2), eye3, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(16, dtype=R.dtype))
    uv, depth = project(target[:, None], K, R, t)
    assert torch.allclose(uv[:, 0], K[:, :2, 2], atol=1e-9)  # on the optical axis
    assert torch.allclose(depth[:, 0], (target - eye).norm(dim=-1))
    assert torch.allclose(camera_centers(R, t), eye)
    # a reflected camera (x axis flipped) is caught by the determinant check
    flipped = R * torch.tensor([-1.0, 1, 1], dtype=R.dtype)[:, None]
    assert (torch.linalg.det(flipped) < 0).all()


def test_image_axes_right_and_down():
    # camera on +z looking at the origin, world up +y: world +x is image right, world +y image up
    R, t = look_at(torch.tensor([[0.0, 0.0, 5.0]]), torch.zeros(3))
    K = intrinsics(100.0, 100.0, 32.0, 32.0)[None]
    uv, depth = project(torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]]]), K, R, t)
    assert uv[0, 0, 0] > 32 and uv[0, 0, 1] == pytest.approx(32)  # +x -> right
    assert uv[0, 1, 1] < 32 and uv[0, 1, 0] == pytest.approx(32)  # +y -> up, i.e. smaller v
    assert torch.allclose(depth, torch.full((1, 3), 5.0))


def test_look_at_straight_down_falls_back_to_another_up():
    R, t = look_at(torch.tensor([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0]]), torch.zeros(3))
    assert torch.isfinite(R).all()
    assert torch.allclose(torch.linalg.det(R), torch.ones(2))
    assert torch.allclose(R[:, 2], torch.tensor([[0.0, -1, 0], [0, 1, 0]]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 4), n=st.integers(1, 30))
def test_project_unproject_round_trip(seed, b, n):
    K, R, t, eye, target = random_cameras(b, seed)
    g = torch.Generator().manual_seed(seed + 1)
    pts = target[:, None] + torch.randn(b, n, 3, generator=g, dtype=torch.float64) * 0.3
    uv, depth = project(pts, K, R, t)
    assert (depth > 0).all()
    assert torch.allclose(unproject(uv, depth, K, R, t), pts, atol=1e-9)
    # and the other way round, from pixels
    uv2 = torch.rand(b, n, 2, generator=g, dtype=torch.float64) * 64
    d2 = 1 + torch.rand(b, n, generator=g, dtype=torch.float64)
    back_uv, back_d = project(unproject(uv2, d2, K, R, t), K, R, t)
    assert torch.allclose(back_uv, uv2, atol=1e-8) and torch.allclose(back_d, d2)
    # unprojecting with a wrong intrinsic (fx, fy swapped) misses
    Kw = K.clone()
    Kw[:, 0, 0], Kw[:, 1, 1] = K[:, 1, 1], K[:, 0, 0]
    assert not torch.allclose(unproject(uv, depth, Kw, R, t), pts, atol=1e-6)


def test_world_camera_frames_are_inverse():
    K, R, t, *_ = random_cameras(3, seed=4)
    pts = torch.randn(3, 7, 3, dtype=torch.float64)
    assert torch.allclose(camera_to_world(world_to_camera(pts, R, t), R, t), pts)


def test_pixel_grid_centres_and_depth_map_unprojection():
    grid = pixel_grid(2, 3)
    assert grid.shape == (2, 3, 2)
    assert grid[0, 0].tolist() == [0.5, 0.5] and grid[1, 2].tolist() == [2.5, 1.5]
    # a fronto-parallel plane at z = 4 seen by a camera at the origin: all points land on z = 4
    H, W = 6, 8
    K = intrinsics(10.0, 10.0, W / 2, H / 2)[None]
    R, t = torch.eye(3)[None], torch.zeros(1, 3)
    pts = unproject(grid := pixel_grid(H, W).reshape(1, -1, 2), torch.full((1, H * W), 4.0), K, R, t)
    assert torch.allclose(pts[..., 2], torch.tensor(4.0))
    assert torch.allclose(pts[0, 0, :2], (grid[0, 0] - torch.tensor([W / 2, H / 2])) * 4 / 10)


def test_ring_cameras_mvcnn_layout():
    R, t = ring_cameras(12, elevation_deg=30, distance=2.0, target=(0.0, 0.5, 0.0))
    c = camera_centers(R, t) - torch.tensor([0.0, 0.5, 0.0])
    assert R.shape == (12, 3, 3) and t.shape == (12, 3)
    assert torch.allclose(c.norm(dim=-1), torch.full((12,), 2.0), atol=1e-5)
    assert torch.allclose(torch.asin(c[:, 1] / 2.0), torch.full((12,), math.radians(30)), atol=1e-5)
    azimuth = torch.atan2(c[:, 0], c[:, 2])
    step = torch.remainder(azimuth.roll(-1) - azimuth, 2 * math.pi)
    assert torch.allclose(step, torch.full((12,), math.radians(30)), atol=1e-5)
    # every optical axis points at the target
    assert torch.allclose(R[:, 2], -c / c.norm(dim=-1, keepdim=True), atol=1e-6)


def test_dodecahedron_cameras_are_a_regular_dodecahedron():
    R, t = dodecahedron_cameras(distance=3.0, dtype=torch.float64)
    c = camera_centers(R, t)
    assert c.shape == (20, 3)
    assert torch.allclose(c.norm(dim=-1), torch.full((20,), 3.0, dtype=torch.float64))
    d = torch.cdist(c, c) + torch.eye(20, dtype=torch.float64) * 100
    nearest = d.min(dim=1).values
    edge = nearest[0]
    assert torch.allclose(nearest, edge.expand(20))
    assert ((d - edge).abs() < 1e-9).sum(dim=1).eq(3).all()  # each vertex has 3 neighbours
    assert torch.allclose(torch.linalg.det(R), torch.ones(20, dtype=torch.float64))


def test_camera_dataclass_selection_and_centres():
    R, t = ring_cameras(4)
    K = fov_intrinsics(60, (32, 32)).expand(4, 3, 3)
    cams = Camera(K, R, t, (32, 32))
    assert len(cams) == 4 and len(cams[1]) == 1 and len(cams[1:3]) == 2 and len(cams[-1]) == 1
    assert torch.allclose(cams[2].centers, cams.centers[2:3])
    with pytest.raises(ValueError, match="batch size"):
        Camera(K[:2], R, t, (32, 32))


def test_clear_errors():
    K, R, t, *_ = random_cameras(2)
    with pytest.raises(ValueError, match=r"points must have shape \(B, N, 3\)"):
        project(torch.zeros(2, 3), K, R, t)
    with pytest.raises(ValueError, match=r"K must have shape \(B, 3, 3\)"):
        project(torch.zeros(2, 4, 3, dtype=torch.float64), K[0], R, t)
    with pytest.raises(ValueError, match="batch size"):
        project(torch.zeros(2, 4, 3, dtype=torch.float64), K, R, t[:1])
    with pytest.raises(ValueError, match="depth must have shape"):
        unproject(torch.zeros(2, 4, 2, dtype=torch.float64), torch.ones(2, 5, dtype=torch.float64), K, R, t)
    with pytest.raises(ValueError, match="coincide"):
        look_at(torch.zeros(1, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="fov"):
        fov_intrinsics(180, (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        project(torch.full((2, 1, 3), float("nan"), dtype=torch.float64), K, R, t)
