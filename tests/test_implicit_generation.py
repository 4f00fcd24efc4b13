"""Implicit-surface generation (lecture 05): marching cubes and mesh scores, DeepSDF, Occupancy Networks,
IM-Net, MarrNet's reprojection losses, and the comparison table in the fast profile."""

import math

import pytest
import torch

from coursekit import runtime
from coursekit.data.world import make_shape
from coursekit.geometry.voxels import voxel_centers, voxelize_mesh_surface
from coursekit.models.generation.deepsdf import (AutoDecoder, DeepSDFDecoder, clamped_l1, deepsdf_loss, infer_codes,
                                                 interpolate_codes)
from coursekit.models.generation.imnet import imnet, imnet_clip, imnet_loss
from coursekit.models.generation.marching import (grid_points, march, march_field, march_voxels, mesh_volume,
                                                  offset_mesh, sample_grid, score_mesh)
from coursekit.models.generation.marrnet import (ImageToVoxels, MarrNet, SketchNet, Sketches, reprojection_losses,
                                                 sketch_loss, voxel_sketches)
from coursekit.models.generation.occupancy_network import occupancy_loss, occupancy_network


def box_sdf(half, centre=(0.0, 0.0, 0.0)):
    half, centre = torch.tensor(half), torch.tensor(centre)

    def f(p):
        q = (p - centre).abs() - half
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
    return f


def face_normals(v, f):
    a, b, c = v[f].unbind(1)
    return torch.linalg.cross(b - a, c - a), (a + b + c) / 3


# ------------------------------------------------------------------ marching cubes

def test_a_marched_sphere_sdf_is_the_sphere_with_outward_faces():
    v, f = march_field(lambda p: p.norm(dim=-1) - 0.6, (30, 34, 38))
    r = v.norm(dim=-1)
    assert (r - 0.6).abs().max() < 5e-3
    assert abs(float(mesh_volume(v, f)) - 4 / 3 * math.pi * 0.6 ** 3) < 0.02 * 4 / 3 * math.pi * 0.6 ** 3
    n, centroid = face_normals(v, f)
    assert ((n * centroid).sum(-1) > 0).all()          # every face normal points away from the centre


def test_axis_order_on_an_anisotropic_box_and_non_cubic_grid():
    half, centre = (0.7, 0.35, 0.15), (0.1, -0.2, 0.3)
    values, spacing, origin = sample_grid(box_sdf(half, centre), (21, 26, 31))   # D (z) != H (y) != W (x)
    assert values.shape == (21, 26, 31)
    points, _, _ = grid_points((21, 26, 31))
    assert torch.allclose(points[0, 0, -1], torch.tensor([1.0, -1.0, -1.0]))    # w runs along x
    assert torch.allclose(points[-1, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))    # d runs along z
    v, f = march(values, 0.0, spacing, origin)
    lo, hi = torch.tensor(centre) - torch.tensor(half), torch.tensor(centre) + torch.tensor(half)
    assert torch.allclose(v.amin(0), lo, atol=0.02) and torch.allclose(v.amax(0), hi, atol=0.02)
    assert float(mesh_volume(v, f)) == pytest.approx(8 * 0.7 * 0.35 * 0.15, rel=0.05)
    # the check can fail: the vertices in scikit-image's (z, y, x) order are not the box
    assert not torch.allclose(v.flip(-1).amin(0), lo, atol=0.02)


def test_offset_mesh_moves_vertices_along_their_outward_normals():
    v, f = march_field(lambda p: p.norm(dim=-1) - 0.5, 32)          # a sphere of radius 0.5, outward faces
    for d in (0.1, -0.2):
        assert offset_mesh(v, f, d).norm(dim=-1).sub(0.5 + d).abs().max() < 2e-3
    # a rod of radius 0.02 dilated by 0.05, marched on a grid coarser than the rod: moved back by -0.05 it is
    # the rod again (moving the other way, or by the wrong amount, misses it by 0.1 or 0.05)
    rod = lambda p: (p[:, [0, 2]].norm(dim=-1) - 0.02).maximum(p[:, 1].abs() - 0.6)  # noqa: E731
    v, f = march_field(lambda p: rod(p) - 0.05, 30)
    side = v[:, 1].abs() < 0.5
    assert offset_mesh(v, f, -0.05)[side][:, [0, 2]].norm(dim=-1).sub(0.02).abs().max() < 5e-3
    assert torch.equal(offset_mesh(v, f[:0], 0.1), v)                # no faces: nothing moves


def test_march_occupancy_inside_above_matches_the_sdf_mesh_and_voxel_units_differ():
    values, spacing, origin = sample_grid(lambda p: p.norm(dim=-1) - 0.5, 24)
    v1, f1 = march(values, 0.0, spacing, origin)
    v2, f2 = march(-values, 0.0, spacing, origin, inside="above")
    assert v1.shape == v2.shape and torch.cdist(v1, v2, compute_mode="donot_use_mm_for_euclid_dist").amin(1).max() < 1e-6      # same vertices, maybe reordered
    assert float(mesh_volume(v2, f2)) == pytest.approx(float(mesh_volume(v1, f1))) and float(mesh_volume(v2, f2)) > 0
    v3, _ = march(values, 0.0)                          # spacing and origin ignored: voxel units
    assert v3.amax() > 10


def test_march_degenerate_and_bad_inputs():
    v, f = march(torch.ones(4, 5, 6), 0.0)
    assert v.shape == (0, 3) and f.shape == (0, 3) and f.dtype == torch.int64
    with pytest.raises(ValueError, match="NaN"):
        march(torch.full((3, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="D, H, W"):
        march(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="inside"):
        march(torch.randn(3, 3, 3), inside="positive")
    with pytest.raises(ValueError, match="resolution"):
        grid_points(1)


def test_sample_grid_chunks_give_the_same_values_and_count_is_checked():
    field = lambda p: p[:, 0] * 2 + p[:, 1] - p[:, 2] ** 2  # noqa: E731
    a, _, _ = sample_grid(field, (5, 6, 7), chunk=1 << 16)
    b, _, _ = sample_grid(field, (5, 6, 7), chunk=7)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="values for"):
        sample_grid(lambda p: p[:1, 0], 4)


def test_march_voxels_closes_a_box_touching_the_border():
    grid = torch.zeros(8, 8, 8)
    grid[:, 2:6, 1:] = 1.0                                # touches the x and z borders
    v, f = march_voxels(grid, 0.5)
    assert float(mesh_volume(v, f)) == pytest.approx(2 * 1.0 * 1.75, rel=0.15)
    assert v[:, 0].max() <= 1.0 + 0.25 + 1e-6             # closed by the padding, half a cell out


def test_mesh_volume_of_a_unit_cube_and_its_mirror():
    from coursekit.data.world.primitives import Box
    v, f = Box((0.5, 0.5, 0.5)).mesh()
    v, f = torch.as_tensor(v, dtype=torch.float64), torch.as_tensor(f)
    assert float(mesh_volume(v, f)) == pytest.approx(1.0)
    assert float(mesh_volume(v, f.flip(-1))) == pytest.approx(-1.0)


def test_score_mesh_ranks_the_true_mesh_above_a_sphere_and_handles_empty():
    shape = make_shape("chair", 1)
    v, f = march_field(shape.sdf, 48)
    good = score_mesh(v, f, shape)
    sphere = score_mesh(*march_field(lambda p: p.norm(dim=-1) - 0.6, 24), shape)
    assert good.iou > 0.85 and good.fscore > 0.9 and good.normal_consistency > 0.85
    assert good.chamfer_mean < 0.2 * sphere.chamfer_mean and sphere.iou < 0.5 * good.iou
    empty = score_mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64), shape, n_points=256)
    assert empty.empty and empty.iou == 0 and empty.fscore < 0.05 and empty.chamfer_mean > good.chamfer_mean


# ------------------------------------------------------------------ DeepSDF

def test_clamped_l1_and_interpolation():
    pred, sdf = torch.tensor([[0.5, -0.05, 0.0]]), torch.tensor([[0.2, 0.05, -0.3]])
    assert float(clamped_l1(pred, sdf, 0.1)) == pytest.approx((0.0 + 0.1 + 0.1) / 3)
    z = interpolate_codes(torch.zeros(4), torch.ones(4), 5)
    assert z.shape == (5, 4) and torch.equal(z[0], torch.zeros(4)) and torch.equal(z[-1], torch.ones(4))
    assert torch.allclose(z[2], torch.full((4,), 0.5))
    with pytest.raises(ValueError):
        interpolate_codes(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="codes must have shape"):
        DeepSDFDecoder(8, 16, 2)(torch.rand(2, 5, 3), torch.rand(3, 8))


def _sdf_samples(names, n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    points, values = [], []
    for name in names:
        shape = make_shape(name, seed)
        p = torch.cat([shape.sample(n // 2, g)[0] + 0.05 * torch.randn(n // 2, 3, generator=g),
                       torch.rand(n // 2, 3, generator=g) * 2 - 1])
        points.append(p)
        values.append(shape.sdf(p).float())
    return torch.stack(points), torch.stack(values)


def test_deepsdf_trains_jointly_and_code_optimisation_reduces_the_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    points, sdf = _sdf_samples(["mug", "table"], n=256)
    model = AutoDecoder(2, DeepSDFDecoder(8, 64, 4), generator=g)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    start = model.codes.weight.detach().clone()
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = deepsdf_loss(model(torch.arange(2), points), sdf)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.6 * first
    assert not torch.equal(model.codes.weight, start)        # the codes are learned with the decoder
    weights = [p.detach().clone() for p in model.decoder.parameters()]
    codes, losses = infer_codes(model.decoder, points, sdf, steps=40, lr=1e-2, generator=g)
    assert codes.shape == (2, 8) and len(losses) == 40
    assert losses[-1] < 0.8 * losses[0]
    assert all(torch.equal(a, b) for a, b in zip(weights, model.decoder.parameters()))   # decoder frozen
    assert all(p.requires_grad for p in model.decoder.parameters())


# ------------------------------------------------------------------ Occupancy Networks and IM-Net

@pytest.mark.parametrize("kind", ["occnet", "imnet"])
def test_occnet_and_imnet_overfit_one_shape_above_the_sphere_baseline(kind):
    torch.manual_seed(0)
    shape = make_shape("car", 3)
    g = torch.Generator().manual_seed(0)
    cloud = shape.sample(128, g)[0][None]
    p = torch.cat([shape.sample(768, g)[0] + 0.03 * torch.randn(768, 3, generator=g),
                   torch.rand(768, 3, generator=g) * 2 - 1])[None]
    occ = shape.occupancy(p[0]).float()[None]
    if kind == "occnet":
        net, loss_fn, level = occupancy_network("points", 16, 48, 2, widths=(16, 32)), occupancy_loss, 0.0
    else:
        net, loss_fn, level = imnet("points", 16, (64, 32, 16), encoder_widths=(16, 32)), imnet_loss, 0.5
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(net(cloud, p), occ)
        loss.backward()
        opt.step()
    v, f = march_field(net.field(cloud), 32, level=level, inside="above")
    ours = score_mesh(v, f, shape, n_points=2048)
    sphere = score_mesh(*march_field(lambda q: q.norm(dim=-1) - 0.6, 24), shape, n_points=2048)
    assert ours.iou > sphere.iou + 0.2 and ours.fscore > sphere.fscore and ours.chamfer_mean < sphere.chamfer_mean


def test_imnet_clip_and_losses():
    y = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])
    assert torch.allclose(imnet_clip(y), torch.tensor([-0.01, 0.0, 0.5, 1.0, 1.01]))
    assert float(imnet_loss(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 1.0]]))) == pytest.approx(0.125)
    assert float(occupancy_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]))) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="same shape"):
        occupancy_loss(torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------ MarrNet

def _camera(size=48):
    from coursekit.models.generation.implicit_table import implicit_camera
    return implicit_camera(size)


def test_reprojection_losses_are_zero_on_the_sketches_of_the_grid_itself():
    K, R, t = _camera()
    shape = make_shape("chair", 2)
    solid = shape.occupancy(voxel_centers(24).reshape(-1, 3)).float().reshape(1, 1, 24, 24, 24)
    grid = torch.maximum(solid, voxelize_mesh_surface(shape.vertices, shape.faces, 24))
    depth, sil = voxel_sketches(grid, K, R, t, (48, 48))
    assert sil.any() and (depth[sil] > 0).all() and (depth[~sil] == 0).all()
    s, d = reprojection_losses(grid, depth, sil.float(), K, R, t)
    assert float(s) == 0 and float(d) == 0
    for wrong in (grid.roll(3, 4), torch.ones_like(grid), torch.zeros_like(grid)):
        s, d = reprojection_losses(wrong, depth, sil.float(), K, R, t)
        assert float(s) + float(d) > 0.05


def test_reprojection_losses_on_rendered_sketches_prefer_the_true_grid_and_have_gradients():
    from coursekit.geometry.render import render_mesh
    K, R, t = _camera()
    shape = make_shape("mug", 1)
    r = render_mesh(shape.vertices, shape.faces, K, R, t, (48, 48))
    solid = shape.occupancy(voxel_centers(24).reshape(-1, 3)).float().reshape(1, 1, 24, 24, 24)
    grid = torch.maximum(solid, voxelize_mesh_surface(shape.vertices, shape.faces, 24))
    true = sum(reprojection_losses(grid, r["depth"], r["mask"].float(), K, R, t))
    for wrong in (grid.roll(3, 4), torch.ones_like(grid), torch.zeros_like(grid)):
        assert float(sum(reprojection_losses(wrong, r["depth"], r["mask"].float(), K, R, t))) > 2 * float(true)
    v = torch.full_like(grid, 0.5, requires_grad=True)
    sum(reprojection_losses(v, r["depth"], r["mask"].float(), K, R, t)).backward()
    assert v.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="voxels must be"):
        reprojection_losses(grid[0], r["depth"], r["mask"].float(), K, R, t)


def test_marrnet_shapes_and_sketch_loss_vanishes_on_the_truth():
    net = MarrNet(SketchNet(1, (8, 16, 32)), ImageToVoxels(5, 16, 16, (8, 16), 16))
    sketches, logits = net(torch.rand(2, 1, 32, 32))
    assert sketches.depth.shape == (2, 32, 32) and sketches.normals.shape == (2, 3, 32, 32)
    assert logits.shape == (2, 1, 16, 16, 16)
    depth, normals = torch.rand(2, 32, 32) + 2, torch.nn.functional.normalize(torch.randn(2, 3, 32, 32), dim=1)
    mask = torch.rand(2, 32, 32) > 0.5
    perfect = Sketches(depth, normals, torch.where(mask, 30.0, -30.0))
    assert float(sketch_loss(perfect, depth, normals, mask.float())) < 1e-6
    assert float(sketch_loss(Sketches(depth + 0.1, normals, perfect.silhouette), depth, normals, mask.float())) \
        == pytest.approx(0.01, rel=1e-3)


# ------------------------------------------------------------------ the table (fast profile)

def test_implicit_table_runs_in_the_fast_profile_with_baselines():
    from coursekit.models.generation.implicit_table import SIZES, format_table, implicit_table
    rows = implicit_table(dict(SIZES["fast"], epochs=2, field_epochs=2), models=("OccNet", "image->voxels"),
                          progress=False)
    names = [r["model"] for r in rows]
    assert names[:2] == ["OccNet", "image->voxels"] and names[2] == "class mean shape" and names[3].startswith("sphere")
    for r in rows:
        assert 0 <= r["iou"] <= 1 and 0 <= r["fscore"] <= 1 and r["chamfer_mean"] > 0
    assert "| class mean shape |" in format_table(rows)
    with pytest.raises(ValueError, match="unknown model"):
        implicit_table(SIZES["fast"], models=("PSGN",), progress=False)
    assert runtime.pick(SIZES)["epochs"] >= 1


def test_unseen_classes_table_rows():
    from coursekit.models.generation.implicit_table import SIZES, unseen_classes_table
    sizes = dict(SIZES["fast"], epochs=1)
    rows = unseen_classes_table(sizes, progress=False)
    assert [(r["model"], r["classes"]) for r in rows] == [("MarrNet", "seen"), ("MarrNet", "unseen"),
                                                          ("image->voxels", "seen"), ("image->voxels", "unseen")]
    assert all(0 <= r["iou"] <= 1 and r["train_cpu_s"] >= 0 for r in rows)


def test_sdf_samples_follow_deepsdfs_recipe_mostly_near_the_surface():
    from coursekit.models.generation.implicit_table import make_implicit_set, sample_sdf_points
    data = make_implicit_set(("lamp", "table"), 1, image_size=16, n_samples=1000, resolution=8, progress=False)
    near = data.sdf.abs() < 0.05
    assert near.float().mean() > 0.6                     # half uniform samples gave 0.45 on these thin shapes
    assert (data.sdf <= 0).float().mean() > 0.18         # ~0.15 inside with half uniform samples
    outside_ball = data.points.norm(dim=-1) > 1.0        # uniform cube samples reach the corners
    assert 0 < outside_ball.float().mean() < 0.2
    points, sdf = sample_sdf_points(data.shapes[0], 10, torch.Generator().manual_seed(0), (0.05, 0.01), 0.3)
    assert points.shape == (10, 3) and torch.allclose(sdf, data.shapes[0].sdf(points).float())
    assert (points[7:].abs() <= 1).all()                  # the last round(0.3 * 10) = 3 are uniform in the cube
    with pytest.raises(ValueError, match="uniform_fraction"):
        make_implicit_set(("mug",), 1, uniform_fraction=1.5, image_size=16, n_samples=10, resolution=4, progress=False)


def test_deepsdf_of_the_fast_profile_meshes_every_test_shape_and_beats_the_sphere():
    # The defect this guards against: too few code updates (and half uniform SDF samples) left the
    # auto-decoder at the median field of all classes, positive everywhere: every test mesh empty.
    from coursekit.models.generation.implicit_table import SIZES, implicit_table
    deepsdf, _, sphere = implicit_table(SIZES["fast"], models=("DeepSDF",), progress=False)
    assert deepsdf["empty"] == 0
    assert deepsdf["fscore"] > sphere["fscore"] + 0.1 and deepsdf["chamfer_mean"] < sphere["chamfer_mean"]


def test_predict_meshes_marches_each_field_at_its_stated_level():
    # IM-Net is meshed at 0.4: a field that never reaches 0.5 has a surface there. Marched at the old 0.5
    # the same field gives an empty mesh, so this fails on the old level. OccNet: probability 0.4 (logit
    # log(0.4 / 0.6)); at its old probability 0.5 the sphere below would come out at radius 0.4.
    from coursekit.models.generation.implicit_table import LEVELS, make_implicit_set, predict_meshes
    from coursekit.models.generation.occupancy_network import ConditionalField

    class Radial(torch.nn.Module):                      # value = a + b |p|, the code ignored
        def __init__(self, a, b):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, points, codes):
            return self.a + self.b * points.norm(dim=-1)

    class Code(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :1]

    test = make_implicit_set(("mug",), 1, image_size=8, n_samples=16, resolution=4, progress=False)
    sizes = {"march_resolution": 32}
    assert LEVELS == {"DeepSDF": 0.0, "OccNet": pytest.approx(math.log(0.4 / 0.6)), "IM-Net": 0.4}
    imnet_like = ConditionalField(Code(), Radial(0.46, -0.3))       # 0.46 at the centre, 0.4 at radius 0.2
    (v, f), = predict_meshes("IM-Net", imnet_like, test, sizes, torch.Generator())
    assert len(f) > 0 and v.norm(dim=-1).mean() == pytest.approx(0.2, abs=0.02)
    assert len(march_field(imnet_like.field(test.images[:1]), 32, level=0.5, inside="above")[1]) == 0
    (v, f), = predict_meshes("IM-Net", imnet_like, test, {"march_resolution": 32, "thickness": 0.05}, torch.Generator())
    assert v.norm(dim=-1).mean() == pytest.approx(0.15, abs=0.02)     # the mesh of a dilated target moves back by it
    occnet = ConditionalField(Code(), Radial(1.0, -2.5))             # probability 0.4 at radius 0.562, 0.5 at 0.4
    (v, f), = predict_meshes("OccNet", occnet, test, sizes, torch.Generator())
    assert v.norm(dim=-1).mean() == pytest.approx((1.0 - math.log(0.4 / 0.6)) / 2.5, abs=0.02)


def test_thickened_sdf_dilates_the_solid_and_models_train_on_it():
    from coursekit.models.generation.implicit_table import thickened_sdf
    sphere = lambda p: p.norm(dim=-1) - 0.3  # noqa: E731
    v, f = march_field(lambda p: thickened_sdf(sphere(p), 0.1), 32)
    assert v.norm(dim=-1).mean() == pytest.approx(0.4, abs=0.01)     # the zero set moves out by delta
    assert torch.equal(thickened_sdf(torch.tensor([0.5, -0.2]), 0.0), torch.tensor([0.5, -0.2]))
    with pytest.raises(ValueError, match="thickness"):
        thickened_sdf(torch.zeros(3), -0.1)


def test_occupancy_samples_straddle_the_dilated_surface():
    # The near samples are centred on the surface the occupancy models learn (the solid dilated by delta):
    # with sigma << delta about half of them are inside the dilated solid. Centred on the true surface
    # (offset ignored) every one of them is inside it, and the field never sees its boundary.
    from coursekit.models.generation.implicit_table import occupancy_samples, thickened_sdf
    shapes = [make_shape("car", 3), make_shape("lamp", 1)]
    points, occ = occupancy_samples(shapes, 2000, {"thickness": 0.05, "field_near_std": 0.005},
                                    torch.Generator().manual_seed(0))
    assert points.shape == (2, 2000, 3) and occ.shape == (2, 2000)
    inside_near = occ[:, :1000].mean(1)                  # the first half: near the surface
    assert ((inside_near > 0.4) & (inside_near < 0.7)).all(), f"near samples inside the dilated solid: {inside_near}"
    assert (points[:, 1000:].abs() <= 1).all()           # the second half: uniform in the cube
    for shape, p, o in zip(shapes, points, occ):
        assert torch.equal(o, (thickened_sdf(shape.sdf(p).float(), 0.05) <= 0).float())


def test_occupancy_samples_are_redrawn_from_the_pool_every_epoch():
    from coursekit.models.generation.implicit_table import _FreshSamples
    g = torch.Generator().manual_seed(0)
    images, pool = torch.rand(5, 1, 4, 4), torch.rand(5, 40, 3)
    occ = (pool[..., 0] > 0.5).float()                    # occupancy is a function of the point
    data = _FreshSamples(images, pool, occ, 10, 2, g)
    epochs = [list(data) for _ in range(2)]
    assert len(data) == 3 and [len(b[0]) for b in epochs[0]] == [2, 2, 1]
    for epoch in epochs:
        for im, pts, o in epoch:
            assert pts.shape == (len(im), 10, 3) and torch.equal(o, (pts[..., 0] > 0.5).float())
            shape = [int((images == i).flatten(1).all(1).nonzero()) for i in im]     # which shape each row is
            assert all(torch.isin(pts[r], pool[s]).all(1).all() for r, s in enumerate(shape))   # from its own pool
    first = torch.cat([b[1] for b in epochs[0]]).flatten(0, 1)
    second = torch.cat([b[1] for b in epochs[1]]).flatten(0, 1)
    assert not torch.equal(first.sort(0).values, second.sort(0).values)                # fresh points each epoch


def test_conditional_fields_build_either_encoder_and_name_a_wrong_one():
    from coursekit.models.generation.encoders import ImageEncoder, PointEncoder, make_encoder
    from coursekit.models.generation.imnet import imnet
    from coursekit.models.generation.occupancy_network import occupancy_network

    assert isinstance(make_encoder("image", 8, (4, 8), in_channels=1), ImageEncoder)
    assert isinstance(make_encoder("points", 8, (4, 8)), PointEncoder)
    assert occupancy_network("points", 8, 16, 1, 1, (4, 8))(torch.rand(2, 20, 3), torch.rand(2, 5, 3)).shape == (2, 5)
    assert imnet("image", 8, (16, 8), 1, (4, 8))(torch.rand(2, 1, 16, 16), torch.rand(2, 5, 3)).shape == (2, 5)
    for build in (lambda: make_encoder("voxels", 8, (4,)), lambda: imnet("voxels"), lambda: occupancy_network("voxels")):
        with pytest.raises(ValueError, match="'image' or 'points', got 'voxels'"):
            build()
