"""The z-buffer rasteriser against analytic depth maps, silhouettes and SDFs."""

import math

import pytest
import torch

from coursekit.data.world.primitives import Part, Sphere, make_pose
from coursekit.data.world.shapes import make_shape
from coursekit.geometry.camera import fov_intrinsics, intrinsics, look_at, pixel_grid, ring_cameras, unproject
from coursekit.geometry.render import render_mesh

H, W = 48, 64


def quad(corners):
    """Two triangles of the quad ``corners (4, 3)`` (in order around it)."""
    return torch.as_tensor(corners, dtype=torch.float64), torch.tensor([[0, 1, 2], [0, 2, 3]])


def front_camera(z=0.0):
    """Camera at the origin looking down +z (identity extrinsics), f = 40 px, principal point at the centre."""
    K = intrinsics(40.0, 40.0, W / 2, H / 2, torch.float64)[None]
    return K, torch.eye(3, dtype=torch.float64)[None], torch.tensor([[0.0, 0.0, z]], dtype=torch.float64)


def test_fronto_parallel_plane_depth_and_exact_pixel_coverage():
    # the quad spans u in [10, 20) and v in [8, 30) exactly (pixel corners at integers)
    K, R, t = front_camera()
    d = 3.0
    u0, u1, v0, v1 = 10, 20, 8, 30
    to_world = lambda u, v: [(u - W / 2) * d / 40, (v - H / 2) * d / 40, d]  # noqa: E731
    v, f = quad([to_world(u0, v0), to_world(u1, v0), to_world(u1, v1), to_world(u0, v1)])
    out = render_mesh(v, f, K, R, t, (H, W))
    expected = torch.zeros(H, W, dtype=torch.bool)
    expected[v0:v1, u0:u1] = True  # pixel centres j + 0.5 in [10, 20) -> columns 10..19
    assert torch.equal(out["mask"][0], expected)
    assert torch.allclose(out["depth"][0][expected], torch.tensor(d, dtype=torch.float64))
    assert (out["depth"][0][~expected] == 0).all() and (out["face_index"][0][~expected] == -1).all()
    assert set(out["face_index"][0][expected].tolist()) == {0, 1}
    # a renderer sampling pixel corners (j) instead of centres (j + 0.5) would cover column 20 too
    shifted = expected.clone()
    shifted[v0:v1, u1] = True
    assert not torch.equal(out["mask"][0], shifted)


def test_tilted_plane_depth_is_exact_along_every_ray():
    # plane n . x = c with n not parallel to the optical axis
    n = torch.tensor([0.3, -0.4, 1.0], dtype=torch.float64)
    c = 4.0
    K, R, t = front_camera()
    big = 50.0
    xy = torch.tensor([[-big, -big], [big, -big], [big, big], [-big, big]], dtype=torch.float64)
    z = (c - xy @ n[:2]) / n[2]
    v, f = quad(torch.cat([xy, z[:, None]], 1))
    out = render_mesh(v, f, K, R, t, (H, W))
    assert out["mask"].all()
    points = unproject(pixel_grid(H, W, torch.float64).reshape(1, -1, 2), out["depth"].reshape(1, -1), K, R, t)
    assert torch.allclose(points[0] @ n, torch.tensor(c, dtype=torch.float64), atol=1e-9)


def test_nearer_triangle_wins_whatever_the_order():
    K, R, t = front_camera()
    near = [[-1.0, -1, 2], [1, -1, 2], [0, 1, 2]]
    far = [[-1.0, -1, 5], [1, -1, 5], [0, 1, 5]]
    for verts, nearest in (([*near, *far], 0), ([*far, *near], 1)):
        out = render_mesh(torch.tensor(verts, dtype=torch.float64), torch.tensor([[0, 1, 2], [3, 4, 5]]), K, R, t, (H, W))
        centre = out["face_index"][0, H // 2, W // 2]
        assert centre == nearest and out["depth"][0, H // 2, W // 2] == pytest.approx(2.0)


def test_sphere_silhouette_area_and_depth():
    r, dist = 0.5, 3.0
    v, f = Part("ball", 0, Sphere(r, segments=96), make_pose()).mesh()
    v, f = torch.from_numpy(v), torch.from_numpy(f)
    K = fov_intrinsics(40.0, (128, 128), torch.float64)[None]
    R, t = look_at(torch.tensor([[0.0, 0.0, dist]], dtype=torch.float64), torch.zeros(3))
    out = render_mesh(v, f, K, R, t, (128, 128))
    # the silhouette of a sphere seen from distance D is a circle of radius f r / sqrt(D^2 - r^2)
    radius = K[0, 0, 0].item() * r / math.sqrt(dist**2 - r**2)
    area = out["mask"].sum().item()
    assert area == pytest.approx(math.pi * radius**2, rel=0.02)
    assert out["depth"][0, 64, 64].item() == pytest.approx(dist - r, abs=2e-3)
    # every visible point lies on the sphere (up to the mesh's chord error)
    points = unproject(pixel_grid(128, 128, torch.float64).reshape(1, -1, 2), out["depth"].reshape(1, -1), K, R, t)[0]
    on = out["mask"].reshape(-1)
    assert (points[on].norm(dim=-1) - r).abs().max() < r * (1 - math.cos(math.pi / 48)) + 1e-6


def test_unprojected_depth_lands_on_the_shape_surface():
    R, t = ring_cameras(6, distance=2.8, dtype=torch.float64)
    K = fov_intrinsics(45.0, (40, 40), torch.float64).expand(6, 3, 3)
    grid = pixel_grid(40, 40, torch.float64).reshape(1, -1, 2).expand(6, -1, -1)
    for name, tol in (("bookshelf", 1e-6), ("chair", 2e-2)):  # boxes only: exact; round legs: chord error
        shape = make_shape(name, 4)
        out = render_mesh(shape.vertices.double(), shape.faces, K, R, t, (40, 40))
        points = unproject(grid, out["depth"].reshape(6, -1), K, R, t)[out["mask"].reshape(6, -1)]
        assert len(points) > 500
        assert shape.sdf(points).abs().max() < tol
        # pixels off the shape unproject (at depth 0) to the camera centres, far from the surface
        assert (shape.sdf(unproject(grid, torch.ones(6, 1600, dtype=torch.float64), K, R, t)[~out["mask"].reshape(6, -1)]) > 0).all()


def test_near_plane_clipping_keeps_geometry_that_passes_behind_the_camera():
    # a huge floor y = -1 extending behind the camera; camera at the origin looking along +z
    K, R, t = front_camera()
    v, f = quad([[-100.0, 1.0, -100.0], [100.0, 1.0, -100.0], [100.0, 1.0, 100.0], [-100.0, 1.0, 100.0]])  # +y is image down
    out = render_mesh(v, f, K, R, t, (H, W), near=0.05)
    # rows below the horizon (v > cy) are floor; the ray through row centre v has depth 40 / (v - cy)
    rows = torch.arange(H, dtype=torch.float64) + 0.5
    below = rows > H / 2 + 0.5
    assert out["mask"][0][below].all() and not out["mask"][0][~below & (rows < H / 2)].any()
    expected = 40.0 / (rows[below] - H / 2)
    assert torch.allclose(out["depth"][0][below], expected[:, None].expand(-1, W), rtol=1e-9)


def test_normals_face_the_camera_and_shading_is_lambertian():
    K, R, t = front_camera()
    for corners in ([[-1.0, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], [[-1.0, -1, 2], [-1, 1, 2], [1, 1, 2], [1, -1, 2]]):
        v, f = quad(corners)  # both windings
        out = render_mesh(v, f, K, R, t, (H, W), face_colors=torch.tensor([[1.0, 0.5, 0.0]] * 2), ambient=0.2)
        m = out["mask"][0]
        assert torch.allclose(out["normal"][0][:, m], torch.tensor([[0.0], [0.0], [-1.0]], dtype=torch.float64))
        assert torch.allclose(out["rgb"][0][:, m], torch.tensor([[1.0], [0.5], [0.0]], dtype=torch.float64))
        assert (out["rgb"][0][:, ~m] == 0).all() and (out["normal"][0][:, ~m] == 0).all()
    # a light at 60 degrees to the normal: a + (1 - a) cos 60
    out = render_mesh(v, f, K, R, t, (H, W), light_dir=torch.tensor([0.0, math.sin(math.pi / 3), -0.5]), ambient=0.2)
    assert torch.allclose(out["rgb"][0][:, m], torch.tensor(0.8 * (0.2 + 0.8 * 0.5), dtype=torch.float64))


def test_batched_views_equal_single_views_and_chunking_changes_nothing():
    shape = make_shape("chair", 2)
    R, t = ring_cameras(4, distance=2.5)
    K = fov_intrinsics(45.0, (32, 32)).expand(4, 3, 3)
    full = render_mesh(shape.vertices, shape.faces, K, R, t, (32, 32))
    small = render_mesh(shape.vertices, shape.faces, K, R, t, (32, 32), max_pairs=500)
    for key in full:
        assert torch.equal(full[key], small[key]), key
    one = render_mesh(shape.vertices, shape.faces, K[2:3], R[2:3], t[2:3], (32, 32))
    assert torch.equal(one["face_index"], full["face_index"][2:3])
    assert torch.allclose(one["depth"], full["depth"][2:3])


def test_clear_errors():
    K, R, t = front_camera()
    v, f = quad([[-1.0, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]])
    with pytest.raises(TypeError, match="int64"):
        render_mesh(v, f.int(), K, R, t, (H, W))
    with pytest.raises(ValueError, match="outside"):
        render_mesh(v, f + 5, K, R, t, (H, W))
    with pytest.raises(ValueError, match="no faces"):
        render_mesh(v, f[:0], K, R, t, (H, W))
    with pytest.raises(ValueError, match="face_colors"):
        render_mesh(v, f, K, R, t, (H, W), face_colors=torch.ones(3, 3))
    with pytest.raises(ValueError, match="batch size"):
        render_mesh(v, f, K.expand(2, 3, 3), R, t, (H, W))
