"""TSDF fusion of depth maps (coursekit.geometry.tsdf) on analytically rendered planes and spheres."""

import math

import pytest
import torch

from coursekit.geometry.camera import camera_centers, fov_intrinsics, look_at, pixel_grid, unproject
from coursekit.geometry.tsdf import tsdf_fuse, tsdf_update, tsdf_volume, tsdf_voxel_centers

BOUNDS = torch.tensor([[-0.5, -0.3, 1.5], [0.5, 0.3, 2.5]], dtype=torch.float64)
SHAPE = (20, 6, 10)  # (D, H, W) = (z, y, x): voxels of 0.05 x 0.1 x 0.1
MU = 0.15


def plane_view(depth_value=2.0, H=24, W=32):
    K = fov_intrinsics(70.0, (H, W), dtype=torch.float64)
    return torch.full((H, W), depth_value, dtype=torch.float64), K, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)


def test_voxel_centres_follow_the_zyx_layout():
    c = tsdf_voxel_centers(BOUNDS, SHAPE, dtype=torch.float64)
    assert c.shape == (*SHAPE, 3)
    assert torch.allclose(c[0, 0, 0], torch.tensor([-0.45, -0.25, 1.525], dtype=torch.float64))
    assert torch.allclose(c[1, 0, 0] - c[0, 0, 0], torch.tensor([0, 0, 0.05], dtype=torch.float64))
    assert torch.allclose(c[0, 0, 1] - c[0, 0, 0], torch.tensor([0.1, 0, 0], dtype=torch.float64))


def test_fronto_parallel_plane_exact_values():
    depth, K, R, t = plane_view()
    tsdf, weight = tsdf_update(*tsdf_volume(SHAPE, dtype=torch.float64), depth, K, R, t, BOUNDS, MU)
    z = tsdf_voxel_centers(BOUNDS, SHAPE, dtype=torch.float64)[..., 2]
    eta = 2.0 - z
    observed = eta >= -MU
    assert torch.equal(weight > 0, observed)  # every voxel is in the (wide) frustum
    assert torch.allclose(tsdf[observed], torch.clamp(eta / MU, max=1.0)[observed])
    # positive in front (free space), clamped to exactly +1 beyond the band
    assert (tsdf[eta > MU] == 1).all() and (eta > MU).any()
    assert (tsdf[(eta < 0) & observed] < 0).all()
    # far behind the surface: unobserved, weight 0 and the initial value
    assert (weight[~observed] == 0).all() and (tsdf[~observed] == 1).all() and (~observed).any()
    # zero crossing along z within one voxel of the plane
    column = tsdf[:, 3, 5]
    k = int(torch.nonzero((column[:-1] > 0) & (column[1:] <= 0))[0])
    zc = z[k, 3, 5] + column[k] / (column[k] - column[k + 1]) * 0.05
    assert abs(zc - 2.0) < 0.05


def test_weights_accumulate_as_a_running_average():
    depth, K, R, t = plane_view(2.0)
    vol = tsdf_volume(SHAPE, dtype=torch.float64)
    once = tsdf_update(*vol, depth, K, R, t, BOUNDS, MU)
    twice = tsdf_update(*once, depth + 0.04, K, R, t, BOUNDS, MU)
    assert twice[1].max() == 2
    both = (once[1] == 1) & (twice[1] == 2)
    z = tsdf_voxel_centers(BOUNDS, SHAPE, dtype=torch.float64)[..., 2]
    mean = 0.5 * (torch.clamp((2.0 - z) / MU, max=1) + torch.clamp((2.04 - z) / MU, max=1))
    assert torch.allclose(twice[0][both], mean[both])
    # the inputs were not modified
    assert vol[1].max() == 0 and once[1].max() == 1


def test_invalid_pixels_and_voxels_outside_the_view_stay_unobserved():
    depth, K, R, t = plane_view()
    depth[:, : depth.shape[1] // 2] = 0  # left half of the image has no measurement
    tsdf, weight = tsdf_update(*tsdf_volume(SHAPE, dtype=torch.float64), depth, K, R, t, BOUNDS, MU)
    x = tsdf_voxel_centers(BOUNDS, SHAPE, dtype=torch.float64)[..., 0]
    assert (weight[x < -0.05] == 0).all()
    assert (weight[x > 0.05] > 0).any()
    # a camera looking away sees nothing
    R_away = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    _, w = tsdf_update(*tsdf_volume(SHAPE, dtype=torch.float64), plane_view()[0], K, R_away, t, BOUNDS, MU)
    assert (w == 0).all()


def render_sphere(centre, radius, K, R, t, H, W):
    """Depth (camera z) of a sphere by ray casting; 0 where the ray misses."""
    uv = pixel_grid(H, W, dtype=torch.float64).reshape(1, -1, 2)
    far = unproject(uv, torch.ones(1, H * W, dtype=torch.float64), K[None], R[None], t[None])[0]
    origin = camera_centers(R[None], t[None])[0]
    d = far - origin  # rays reaching camera depth 1
    oc = origin - centre
    a, b, c = (d * d).sum(-1), 2 * (d * oc).sum(-1), (oc * oc).sum() - radius**2
    disc = b * b - 4 * a * c
    s = (-b - disc.clamp(min=0).sqrt()) / (2 * a)  # the ray parameter = camera depth, since depth(far) = 1
    return torch.where(disc > 0, s, torch.zeros_like(s)).reshape(H, W)


def test_sphere_zero_crossings_lie_on_the_surface():
    centre, radius = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), 0.5
    n, H, W = 6, 48, 64
    a = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    eye = torch.stack([2 * a.sin(), 0.6 * torch.ones_like(a), 2 * a.cos()], -1)
    R, t = look_at(eye, centre)
    K = fov_intrinsics(50.0, (H, W), dtype=torch.float64).expand(n, 3, 3)
    depths = torch.stack([render_sphere(centre, radius, K[v], R[v], t[v], H, W) for v in range(n)])
    bounds = torch.tensor([[-0.8] * 3, [0.8] * 3], dtype=torch.float64)
    res, voxel = 32, 1.6 / 32
    tsdf, weight = tsdf_fuse(depths, K, R, t, bounds, res, truncation=3 * voxel)
    assert tsdf.shape == weight.shape == (res, res, res)
    assert weight.max() > 1 and ((tsdf >= -1) & (tsdf <= 1)).all()
    centres = tsdf_voxel_centers(bounds, (res,) * 3, dtype=torch.float64)
    crossings = []
    for axis in range(3):
        f0, f1 = tsdf.narrow(axis, 0, res - 1), tsdf.narrow(axis, 1, res - 1)
        w0, w1 = weight.narrow(axis, 0, res - 1), weight.narrow(axis, 1, res - 1)
        sign_change = (w0 > 0) & (w1 > 0) & ((f0 > 0) != (f1 > 0)) & (f0.abs() < 1) & (f1.abs() < 1)
        p0, p1 = centres.narrow(axis, 0, res - 1), centres.narrow(axis, 1, res - 1)
        s = (f0 / (f0 - f1))[..., None]
        crossings.append((p0 + s * (p1 - p0))[sign_change])
    points = torch.cat(crossings)
    assert len(points) > 500
    distance = ((points - centre).norm(dim=-1) - radius).abs()
    assert distance.max() < voxel
    # sign convention: negative just inside, positive outside; the centre (beyond the band) is unobserved
    inside = (centres - centre).norm(dim=-1) < radius - voxel
    outside = (centres - centre).norm(dim=-1) > radius + voxel
    observed = weight > 0
    assert (tsdf[inside & observed] < 0).all() and (tsdf[outside & observed] > 0).all()
    assert weight[res // 2, res // 2, res // 2] == 0


def test_bad_inputs_raise():
    depth, K, R, t = plane_view()
    vol = tsdf_volume(SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match="truncation"):
        tsdf_update(*vol, depth, K, R, t, BOUNDS, 0.0)
    with pytest.raises(ValueError, match="bounds"):
        tsdf_update(*vol, depth, K, R, t, BOUNDS[:, :2], MU)
    with pytest.raises(ValueError, match=r"\(V, H_img, W_img\)"):
        tsdf_fuse(depth, K, R[None], t[None], BOUNDS, 8, MU)
