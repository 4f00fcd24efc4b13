"""Learned MVS models of lecture 06: SurfaceNet, LSM, Point-MVSNet, BA-Net's LM layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit.data.mvs import make_mvs_scene, render_textured
from coursekit.geometry.camera import camera_centers, fov_intrinsics, look_at, project, world_to_camera
from coursekit.models.mvs.banet import (DampingNet, LMLayer, levenberg_marquardt, lm_step, make_two_view_problem,
                                        residual_jacobian, so3_exp, solve_scipy)
from coursekit.models.mvs.lsm import (LSM, ConvGRU3d, SceneGrids, carved_occupancy, fuse_grids, occupancy_labels, resolution_limit,
                                     unproject_features)
from coursekit.models.mvs.lsm import reconstruct as reconstruct_lsm
from coursekit.models.mvs.point_mvsnet import (PointMVSNet, depth_hypotheses, hypothesis_points, iteration_table,
                                               refinement_loss)
from coursekit.models.mvs.surfacenet import (SurfaceNet, TrainingCubes, binarize, class_balanced_loss, colored_voxel_cube,
                                             cube_centers, quantization_error, scene_cube, scene_cubes, surface_labels,
                                             surface_points)
from coursekit.models.mvs.surfacenet import reconstruct as reconstruct_surfacenet


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float | None = None, atol: float | None = None) -> None:
    """``torch.testing.assert_close``'s tolerances without its first-call import of ``torch.distributed`` (~5 s)."""
    double = got.dtype == torch.float64
    rtol = rtol if rtol is not None else (1e-7 if double else 1.3e-6)
    atol = atol if atol is not None else (1e-7 if double else 1e-5)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want.to(got.dtype), rtol=rtol, atol=atol), f"max abs diff {(got - want).abs().max():.3g}"


def _cameras(V: int, size=(24, 32), distance: float = 2.0, spread: float = 0.4, dtype=torch.float32):
    """``V`` cameras on a short arc in front of the origin, looking at it (view 0 in the middle)."""
    offsets = torch.linspace(-spread, spread, V, dtype=torch.float64)
    order = torch.cat([offsets[V // 2: V // 2 + 1], offsets[: V // 2], offsets[V // 2 + 1:]])
    eye = torch.stack([distance * order.sin(), 0.2 * order, -distance * order.cos()], -1)
    R, t = look_at(eye, torch.zeros(3, dtype=torch.float64))
    K = fov_intrinsics(50.0, size, dtype=torch.float64).expand(V, 3, 3)
    return K.to(dtype), R.to(dtype), t.to(dtype)


def _bilinear_naive(image: torch.Tensor, u: float, v: float) -> torch.Tensor:
    """Bilinear value of ``image (C, H, W)`` at pixel ``(u, v)`` (pixel centres at ``j + 0.5``), zeros outside."""
    C, H, W = image.shape
    x, y = u - 0.5, v - 0.5
    j0, i0 = math.floor(x), math.floor(y)
    out = torch.zeros(C, dtype=image.dtype)
    for i, wy in ((i0, 1 - (y - i0)), (i0 + 1, y - i0)):
        for j, wx in ((j0, 1 - (x - j0)), (j0 + 1, x - j0)):
            if 0 <= i < H and 0 <= j < W:
                out += wx * wy * image[:, i, j]
    return out


# ----------------------------------------------------------------------------- SurfaceNet

def test_colored_voxel_cube_equals_explicit_projection():
    gen = torch.Generator().manual_seed(0)
    K, R, t = _cameras(2, dtype=torch.float64)
    images = torch.rand(1, 2, 3, 24, 32, generator=gen, dtype=torch.float64)
    center, side, s = torch.tensor([[0.05, -0.02, 0.1]], dtype=torch.float64), 0.8, 4
    cube = colored_voxel_cube(images, K[None], R[None], t[None], center, side, s)
    assert cube.shape == (1, 6, s, s, s)
    centers = cube_centers(center, side, s)[0]
    swapped = images.transpose(-1, -2)[..., :24, :24]  # a plausible bug: x/y swapped
    for d, h, w in [(0, 0, 0), (1, 2, 3), (3, 1, 0), (2, 3, 3)]:
        x = centers[d, h, w]
        for v in range(2):
            uv, depth = project(x[None, None], K[v:v + 1], R[v:v + 1], t[v:v + 1])
            want = _bilinear_naive(images[0, v], *uv[0, 0].tolist())
            assert_close(cube[0, 3 * v:3 * v + 3, d, h, w], want)
            assert not torch.allclose(_bilinear_naive(swapped[0, v], *uv[0, 0].tolist()), want)
    # the voxel index order is (z, y, x): the cube centre's voxel row [d, h, w] moves along x with w
    assert torch.allclose(centers[0, 0, 1] - centers[0, 0, 0], torch.tensor([side / s, 0, 0], dtype=torch.float64))


def test_colored_voxel_cube_rejects_bad_shapes():
    K, R, t = _cameras(2)
    with pytest.raises(ValueError, match="images"):
        colored_voxel_cube(torch.rand(2, 3, 24, 32), K[None], R[None], t[None], torch.zeros(1, 3), 1.0, 4)
    with pytest.raises(ValueError, match="K must have shape"):
        colored_voxel_cube(torch.rand(1, 2, 3, 24, 32), K, R[None], t[None], torch.zeros(1, 3), 1.0, 4)


def test_class_balanced_loss_hand_computed():
    p = torch.tensor([0.9, 0.2, 0.6, 0.1, 0.3, 0.7], dtype=torch.float64)
    s = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    logits = torch.log(p / (1 - p)).reshape(1, 1, 1, 2, 3)
    target = s.reshape(1, 1, 1, 2, 3)
    a = 0.7
    want = -(a * (math.log(0.9) + math.log(0.6) + math.log(0.7)) + (1 - a) * (math.log(0.8) + math.log(0.9) + math.log(0.7)))
    got = class_balanced_loss(logits, target, alpha=a)
    assert got.item() == pytest.approx(want, rel=1e-12)
    assert class_balanced_loss(logits, target, alpha=1 - a).item() != pytest.approx(want, rel=1e-3)  # alpha on the wrong class
    # alpha=None: the fraction of empty voxels (here 0.5); batch: mean over cubes of per-cube sums
    two = class_balanced_loss(torch.cat([logits, logits]), torch.cat([target, target]))
    assert two.item() == pytest.approx(class_balanced_loss(logits, target, alpha=0.5).item(), rel=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        class_balanced_loss(logits, target, alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        class_balanced_loss(logits, target[..., :2])


def test_surfacenet_shapes_binarize_and_points():
    net = SurfaceNet(width=4, side_channels=4)
    out = net(torch.rand(2, 6, 8, 8, 8))
    assert out.shape == (2, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 6, 6, 6, 6))
    prob = torch.zeros(1, 1, 4, 4, 4)
    prob[0, 0, 3, 2, 1] = 0.9  # z index 3, y 2, x 1
    assert binarize(prob).sum() == 1
    pts = surface_points(prob, torch.tensor([[1.0, 2.0, 3.0]]), 4.0)[0]
    assert_close(pts, torch.tensor([[1.0 - 2 + 1.5, 2.0 - 2 + 2.5, 3.0 - 2 + 3.5]]))


def test_quantization_error_grows_with_voxel_size():
    gen = torch.Generator().manual_seed(1)
    sphere = torch.nn.functional.normalize(torch.randn(20000, 3, generator=gen), dim=-1) * 0.3
    rows = quantization_error(sphere, torch.zeros(3), 1.0, [8, 16, 32])
    overall = [r["overall"] for r in rows]
    assert overall[0] > overall[1] > overall[2]
    for r in rows:  # between a tenth and one voxel
        assert 0.1 * r["voxel_size"] < r["overall"] < r["voxel_size"]
    labels = surface_labels(sphere[None], torch.zeros(1, 3), 1.0, 16)
    assert labels.shape == (1, 1, 16, 16, 16) and 0 < labels.mean() < 0.5


# ----------------------------------------------------------------------------- LSM

def test_lsm_unprojection_consistent_with_camera_project():
    K, R, t = _cameras(3, dtype=torch.float64)
    H, W, stride = 24, 32, 2
    h, w = H // stride, W // stride
    # feature maps that store each texel centre's own image-pixel coordinates: bilinear is exact on them
    u = (torch.arange(w, dtype=torch.float64) + 0.5) * stride
    v = (torch.arange(h, dtype=torch.float64) + 0.5) * stride
    coords = torch.stack([u.expand(h, w), v[:, None].expand(h, w)])
    features = coords.expand(1, 3, 2, h, w)
    center, side, r = torch.zeros(1, 3, dtype=torch.float64), 0.6, 6
    grids, valid = unproject_features(features, K[None], R[None], t[None], (H, W), center, side, r)
    assert grids.shape == (1, 3, 2, r, r, r) and valid.shape == (1, 3, 1, r, r, r)
    points = cube_centers(center, side, r).reshape(1, -1, 3)
    for view in range(3):
        uv, _ = project(points, K[view:view + 1], R[view:view + 1], t[view:view + 1])
        interior = ((uv[0] > stride) & (uv[0] < torch.tensor([W - stride, H - stride], dtype=torch.float64))).all(-1)
        assert interior.sum() > 100
        got = grids[0, view].reshape(2, -1).T
        assert_close(got[interior], uv[0][interior])
        assert not torch.allclose(got[interior], uv[0][interior].flip(-1))  # an x/y swap would fail
        assert valid[0, view].reshape(-1)[interior].all()


def test_lsm_shapes_and_fusion():
    K, R, t = _cameras(3)
    images = torch.rand(2, 3, 3, 24, 32)
    for fusion in ("gru", "max", "mean"):
        net = LSM(resolution=8, feature_channels=4, width=4, fusion=fusion)
        assert net(images, K.expand(2, 3, 3, 3), R.expand(2, 3, 3, 3), t.expand(2, 3, 3), torch.zeros(2, 3), 1.0).shape == (2, 1, 8, 8, 8)
    grids = torch.rand(2, 3, 4, 5, 5, 5)
    assert_close(fuse_grids(grids, "max"), grids.max(1).values)
    assert_close(fuse_grids(grids.flip(1), "mean"), fuse_grids(grids, "mean"))  # pooling: order-free
    gru = ConvGRU3d(4, 6)
    assert fuse_grids(grids, "gru", gru).shape == (2, 6, 5, 5, 5)
    with pytest.raises(ValueError, match="fusion"):
        LSM(fusion="sum")


def test_lsm_resolution_limit_and_labels():
    occupancy = lambda p: p.norm(dim=-1) <= 0.3  # noqa: E731
    labels = occupancy_labels(occupancy, torch.zeros(1, 3), 1.0, 8)
    assert labels.shape == (1, 1, 8, 8, 8) and labels[0, 0, 4, 4, 4] == 1 and labels[0, 0, 0, 0, 0] == 0
    gen = torch.Generator().manual_seed(2)
    sphere = torch.nn.functional.normalize(torch.randn(20000, 3, generator=gen), dim=-1) * 0.3
    rows = resolution_limit(occupancy, sphere, torch.zeros(3), 1.0, [8, 32])
    assert rows[0]["overall"] > rows[1]["overall"] and rows[1]["grid_MiB"] == 64 * rows[0]["grid_MiB"]


# ----------------------------------------------------------------------------- Point-MVSNet

def test_hypotheses_lie_on_camera_rays():
    K, R, t = _cameras(1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    depth = 1.5 + torch.rand(1, 6, 8, generator=gen, dtype=torch.float64)
    hyp = hypothesis_points(depth, K, R, t, (24, 32), interval=0.05, m=2)
    assert hyp.shape == (1, 5, 48, 3)
    centre = camera_centers(R, t)[0]
    rays = hyp - centre
    cross = torch.linalg.cross(rays, rays[:, 2:3].expand_as(rays), dim=-1)
    assert cross.abs().max() < 1e-10  # all hypotheses of a pixel on one ray through the camera centre
    z = world_to_camera(hyp.reshape(1, -1, 3), R, t)[..., 2].reshape(1, 5, 6, 8)
    assert_close(z, depth_hypotheses(depth, 0.05, 2))
    assert_close(z[:, 3] - z[:, 2], torch.full_like(depth, 0.05))
    # the middle hypothesis is the unprojected depth itself; pixel centres project back onto themselves
    uv, _ = project(hyp[:, 2], K, R, t)
    assert torch.allclose(uv[0, 9], torch.tensor([1.5 * 4, 1.5 * 4], dtype=torch.float64))  # pixel (1, 1) of a 4x-down map


def _plane_scene(V: int = 3, size=(32, 32), depth: float = 2.0):
    K, R, t = _cameras(V, size=size, distance=depth, spread=0.25)
    n = 8
    g = torch.linspace(-1.5, 1.5, n + 1)
    y, x = torch.meshgrid(g, g, indexing="ij")
    verts = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros((n + 1) ** 2)], -1)
    idx = torch.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1), idx[1:, 1:].reshape(-1), idx[1:, :-1].reshape(-1)
    faces = torch.cat([torch.stack([a, b, c], -1), torch.stack([a, c, d], -1)])
    images, gt_depth, hit, world = render_textured(verts, faces, K, R, t, size, texture_seed=5)
    return images[None], K[None], R[None], t[None], gt_depth[:1], hit[:1]


def test_point_mvsnet_shapes_and_loss():
    images, K, R, t, gt, hit = _plane_scene(size=(16, 16))
    net = PointMVSNet(hypotheses=1, channels=(4, 4, 4), width=8, neighbours=4)
    depths = net(torch.full((1, 4, 4), 2.0), images, K, R, t, 0.1)
    assert [tuple(d.shape) for d in depths] == [(1, 4, 4), (1, 4, 4), (1, 8, 8), (1, 16, 16)]
    loss = refinement_loss(depths, gt, hit)
    loss.backward()
    assert torch.isfinite(loss) and net.flow.edge1.theta.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="depth"):
        net(torch.full((4, 4), 2.0), images, K, R, t, 0.1)


def test_point_flow_step_reduces_depth_error_after_training():
    torch.manual_seed(0)  # BatchNorm/Linear initialisation
    images, K, R, t, gt, hit = _plane_scene()
    gt_small = torch.nn.functional.interpolate(gt[:, None], size=(8, 8), mode="nearest")[:, 0]
    net = PointMVSNet(hypotheses=2, channels=(4, 8, 8), width=16, neighbours=6)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    interval, gen = 0.2, torch.Generator().manual_seed(0)  # ~0.9 px of parallax per interval in the side views
    schedule = ((1, 1.0),)
    for _ in range(30):
        offset = (torch.rand(1, 1, 1, generator=gen) * 2 - 1) * 1.5 * interval
        depths = net(gt_small + offset, images, K, R, t, interval, schedule)
        loss = refinement_loss(depths, gt, hit)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        errors = []
        for off in (-1.2, -0.6, 0.7, 1.3):
            coarse = gt_small + off * interval
            refined = net(coarse, images, K, R, t, interval, schedule)[1]
            errors.append(((coarse - gt_small).abs().mean().item(), (refined - gt_small).abs().mean().item()))
    before, after = np.mean([e[0] for e in errors]), np.mean([e[1] for e in errors])
    assert after < 0.7 * before, errors  # measured: 0.19 -> 0.10 (eval-mode BatchNorm)


def test_iteration_table_rows():
    images, K, R, t, gt, hit = _plane_scene(size=(16, 16))
    net = PointMVSNet(hypotheses=1, channels=(4, 4, 4), width=8, neighbours=4)
    gt_points = torch.rand(100, 3)
    rows = iteration_table(net, torch.full((1, 4, 4), 2.0), images, K, R, t, 0.1, gt_points, hit, threshold=0.05, max_dist=5.0)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert [r["resolution"] for r in rows] == ["4x4", "4x4", "8x8", "16x16"]
    assert rows[3]["interval"] == pytest.approx(0.1 * 0.8 / 5.3)
    assert all(set(r) >= {"accuracy", "completeness", "overall", "fscore", "memory_MiB", "runtime_s"} for r in rows)


# ----------------------------------------------------------------------------- BA-Net

def test_so3_exp_matches_scipy_and_is_smooth_at_zero():
    from scipy.spatial.transform import Rotation

    gen = torch.Generator().manual_seed(4)
    omega = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    assert_close(so3_exp(omega), torch.from_numpy(Rotation.from_rotvec(omega.numpy()).as_matrix()))
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (so3_exp(zero) ** 2).sum().backward()
    assert torch.isfinite(zero.grad).all()
    assert_close(so3_exp(torch.tensor([1e-6, 0, 0], dtype=torch.float64))[1, 2], torch.tensor(-1e-6, dtype=torch.float64))


def test_residual_jacobian_matches_autograd_functional():
    problem = make_two_view_problem(size=(16, 16), focal=8.0, grid=3)
    x = problem.x_true + 0.01
    e, J = residual_jacobian(problem.residual, x)
    assert_close(J, torch.autograd.functional.jacobian(problem.residual, x))
    assert e.shape == (9 * 3,) and J.shape == (27, 8)


def test_lm_matches_scipy_least_squares():
    kw = dict(size=(32, 32), focal=16.0, grid=6, frequency=4.0)
    problem = make_two_view_problem(**kw)
    start = problem.x_true + torch.tensor([0.01, -0.01, 0.01, 0.03, -0.02, 0.02, 0.02, 0.02], dtype=torch.float64)
    ours, costs = levenberg_marquardt(problem.residual, start, iterations=60)
    ref = solve_scipy(problem.residual, start)
    assert_close(ours.detach(), ref, atol=1e-6, rtol=0)
    # as low as the true solution's cost (not 0: bilinear sampling of the rendered maps), and close to it
    assert costs[-1] <= 0.5 * float((problem.residual(problem.x_true) ** 2).sum())
    assert (ours.detach() - problem.x_true).abs().max() < 0.02
    # the comparison can fail: a different problem (another baseline) has another solution
    other = make_two_view_problem(**kw, tau=(0.25, 0.05, 0.02))
    assert (solve_scipy(other.residual, start) - ref).abs().max() > 1e-2


def test_lm_step_gradcheck_float64():
    problem = make_two_view_problem(size=(6, 6), focal=4.0, grid=3, channels=1, frequency=3.0)
    x = (problem.x_true + 0.02).requires_grad_()
    src = problem.src_features.clone().requires_grad_()
    lam = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)

    def step(src_features, x, lam):
        problem.src_features = src_features
        return lm_step(problem.residual, x, lam)

    assert torch.autograd.gradcheck(step, (src, x, lam), eps=1e-6, atol=1e-5)


def test_lm_layer_with_predicted_damping_trains():
    problem = make_two_view_problem(size=(32, 32), focal=16.0, grid=6, frequency=4.0)
    start = problem.x_true + 0.01
    net = DampingNet(problem.channels).double()
    out = LMLayer(iterations=2, damping=net)(problem.residual, start)
    loss = ((out - problem.x_true) ** 2).sum()
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    fixed = LMLayer(iterations=5, damping=1e-2)(problem.residual, start)
    cost = lambda x: float((problem.residual(x).detach() ** 2).sum())  # noqa: E731
    assert cost(fixed) < 0.5 * cost(start)
    assert ((fixed - problem.x_true) ** 2).sum() < 0.5 * ((start - problem.x_true) ** 2).sum()


# ----------------------------------------------------------------------------- scene pipelines

def test_carved_occupancy_of_a_plane():
    K, R, t = _cameras(3, size=(24, 24), distance=2.0, spread=0.25)
    verts = torch.tensor([[-1.5, -1.5, 0.0], [1.5, -1.5, 0], [1.5, 1.5, 0], [-1.5, 1.5, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    _, depth, _, _ = render_textured(verts, faces, K, R, t, (24, 24), texture_seed=0)
    center, side, r = torch.tensor([0.0, 0.0, 0.05]), 0.4, 8
    occ = carved_occupancy(depth, K, R, t, center, side, r)
    z = cube_centers(center[None], side, r)[0, ..., 2]
    assert torch.equal(occ[0, 0].bool(), z > 0)  # in front of the plane (cameras at z < 0): seen through; behind: occupied


def test_training_cubes_are_blocks_of_the_scene_grid():
    """A training cube is a block of the whole scene's grid at some voxel offset (D <- z, H <- y, W <- x), so the
    network trained on cubes sees the voxels that reconstruct() gives it; with cube = grid it is the scene cube."""
    scene = make_mvs_scene(0, n_views=3, size=(16, 24), n_objects=(1, 1))
    center, side = scene_cube(scene.points)
    full = scene_cubes(scene, center, side, 16)
    labels = surface_labels(scene.points[None], center[None], side, 16)[0]
    whole = TrainingCubes([scene], grid=16, cube=16)[1]
    torch.testing.assert_close(whole["cubes"], full[1])
    torch.testing.assert_close(whole["labels"], labels)
    cubes = TrainingCubes([scene], grid=16, cube=8, generator=torch.Generator().manual_seed(3))
    for k in (0, 2):
        item = cubes[k]
        assert item["cubes"].shape == (6, 8, 8, 8) and item["labels"].shape == (1, 8, 8, 8)
        matches = [(z, y, x) for z in range(9) for y in range(9) for x in range(9)
                   if torch.allclose(item["cubes"], full[k][:, z:z + 8, y:y + 8, x:x + 8], atol=1e-5)
                   and torch.equal(item["labels"], labels[:, z:z + 8, y:y + 8, x:x + 8])]
        assert len(matches) >= 1, "the training cube is no block of the scene grid"
    with pytest.raises(ValueError, match="divisible by 4"):
        TrainingCubes([scene], grid=16, cube=6)


def test_scene_pipelines_run_end_to_end():
    scene = make_mvs_scene(0, n_views=3, size=(16, 24), n_objects=(1, 1))
    sn = SurfaceNet(width=4, side_channels=4)
    batch = next(iter(torch.utils.data.DataLoader(TrainingCubes([scene], 8, 8), batch_size=2)))
    loss = class_balanced_loss(sn(batch["cubes"]), batch["labels"])
    loss.backward()
    assert math.isfinite(loss.item())
    points, prob = reconstruct_surfacenet(sn, scene, 8, threshold=0.0)
    assert prob.shape == (1, 1, 8, 8, 8) and points.shape == (8 ** 3, 3)
    net = LSM(resolution=8, feature_channels=4, width=4, fusion="max")
    grids = SceneGrids([scene], 8)
    item = next(iter(torch.utils.data.DataLoader(grids, batch_size=1)))
    assert item["images"].shape == (1, 3, 3, 16, 24) and item["occupancy"].shape == (1, 1, 8, 8, 8)
    logits = net(*(item[k] for k in ("images", "K", "R", "t", "center", "side")))
    assert math.isfinite(torch.nn.functional.binary_cross_entropy_with_logits(logits, item["occupancy"]).item())
    points, prob = reconstruct_lsm(net, scene, n_points=500)
    assert prob.shape == (1, 1, 8, 8, 8) and points.dim() == 2 and points.shape[1] == 3
