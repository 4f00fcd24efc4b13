"""Segmentation models of lecture 04: point heads, feature propagation, sparse U-Net, 2D-3D fusion, scene folder, table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit.data.scene_folder import load_scene, load_scene_folder
from coursekit.geometry.camera import fov_intrinsics, look_at
from coursekit.geometry.neighbors import _three_nn_interpolate_naive
from coursekit.models.fusion import PointFusionSeg, SceneViews, VoxelFusionSeg, backproject, normalise_views
from coursekit.models.pointnet2_seg import PointNet2Seg
from coursekit.models.pointnet_seg import PointNetSeg
from coursekit.models.segmentation_table import majority_miou, segmentation_table
from coursekit.models.sparse_unet import SparseUNet, site_centres
from coursekit.nn.feature_propagation import FeaturePropagation

SMALL_P2 = dict(levels=[dict(n_centres=16, radius=0.5, n_samples=8, mlp=(8, 16)),
                        dict(n_centres=4, radius=1.0, n_samples=8, mlp=(16, 16))],
                fp=[(16,), (8,)], head=(8,), dropout=0.0)


def _cloud(b=2, n=64, seed=0, dtype=torch.float32):
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


# ------------------------------------------------------------------ feature propagation

def test_feature_propagation_matches_brute_force_interpolation_then_mlp():
    torch.manual_seed(0)
    dense, sparse = _cloud(2, 30, 1), _cloud(2, 7, 2)
    f, skip = torch.randn(2, 7, 5), torch.randn(2, 30, 4)
    fp = FeaturePropagation(5, 4, (6,)).eval()
    want = fp.h(torch.cat([_three_nn_interpolate_naive(dense, sparse, f), skip], -1))
    torch.testing.assert_close(fp(dense, sparse, f, skip), want)
    assert fp(dense, sparse, f, skip).shape == (2, 30, 6)


def test_feature_propagation_is_differentiable_in_features_and_positions_gradcheck():
    fp = FeaturePropagation(3, 2, (4,)).double().eval()
    dense = _cloud(1, 9, 3, torch.float64).requires_grad_()
    sparse = _cloud(1, 5, 4, torch.float64).requires_grad_()
    f = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(1, 9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: fp(*a), (dense, sparse, f, skip))


def test_feature_propagation_rejects_bad_skip():
    fp = FeaturePropagation(3, 2, (4,))
    with pytest.raises(ValueError, match="skip features must have shape"):
        fp(_cloud(1, 9), _cloud(1, 5), torch.randn(1, 5, 3), torch.randn(1, 9, 3))
    with pytest.raises(ValueError, match="without a skip link"):
        FeaturePropagation(3, 0, (4,))(_cloud(1, 9), _cloud(1, 5), torch.randn(1, 5, 3), torch.randn(1, 9, 2))


# ------------------------------------------------------------------ point heads

@pytest.mark.parametrize("make", [lambda: PointNetSeg(4, sizes=None), lambda: PointNet2Seg(4, sizes=SMALL_P2, grouping="knn")],
                         ids=["pointnet", "pointnet2"])
def test_point_segmentation_heads_are_permutation_equivariant(make):
    torch.manual_seed(0)
    model = make().eval()
    x = _cloud(2, 64, 5)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, y_perm = model(x), model(x[:, perm])
    assert y.shape == (2, 64, 4)
    torch.testing.assert_close(y_perm, y[:, perm], rtol=1e-4, atol=1e-5)
    # the test can fail: a non-equivariant change (shifting one point) changes other points' outputs
    with torch.no_grad():
        moved = x.clone()
        moved[:, 0] += 0.5
        assert not torch.allclose(model(moved)[:, 1:], y[:, 1:])


def test_part_heads_read_the_category_and_complain_without_it():
    torch.manual_seed(0)
    x = _cloud(2, 32, 6)
    for model in (PointNetSeg(5, n_categories=3).eval(), PointNet2Seg(5, n_categories=3, sizes=SMALL_P2).eval()):
        with torch.no_grad():
            a, b = model(x, category=torch.tensor([0, 1])), model(x, category=torch.tensor([2, 1]))
        assert a.shape == (2, 32, 5)
        assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
        with pytest.raises(ValueError, match="category"):
            model(x)


def test_pointnet_seg_regularizer_is_the_feature_transform_orthogonality_loss():
    from coursekit.nn.tnet import orthogonality_loss
    model = PointNetSeg(3)
    assert model.regularizer() == 0  # before any forward pass
    with torch.no_grad():  # the T-Net starts at the identity (loss 0): move it away
        for p in model.encoder.feature_tnet.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model(_cloud(2, 32))
    reg = model.regularizer()
    assert reg.dim() == 0 and reg > 0
    ft = model.encoder.encode(_cloud(2, 32)).feature_transform
    torch.testing.assert_close(reg, 0.001 * orthogonality_loss(ft))
    assert PointNetSeg(3, feature_transform=False).regularizer() == 0


def test_pointnet2_seg_xyz_features_change_the_input_width():
    model = PointNet2Seg(3, in_channels=2, sizes=SMALL_P2, xyz_features=True)
    assert model.levels[0].convs[0].in_channels == 5
    assert model(_cloud(2, 32), torch.randn(2, 32, 2)).shape == (2, 32, 3)
    with pytest.raises(ValueError, match="expects features"):
        model(_cloud(2, 32))


# ------------------------------------------------------------------ sparse U-Net

def test_sparse_unet_maps_voxel_predictions_back_to_every_point():
    torch.manual_seed(0)
    model = SparseUNet(5, resolution=8, width=4, levels=3).eval()
    x = _cloud(2, 100, 7) * 1.2  # some points outside the bounds: clamped, still predicted
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 100, 5) and torch.isfinite(y).all()
    _, rows = model.voxelise(x)
    assert (rows >= 0).all()
    same = rows[0, :, None] == rows[0, None, :]  # points in one voxel share their logits
    close = (y[0, :, None] - y[0, None, :]).abs().amax(-1) < 1e-6
    assert close[same].all() and same.sum() > 100  # (isolated voxels alike may share logits too: translation equivariance)


def test_sparse_unet_decoder_restores_the_encoder_sites_and_backpropagates():
    model = SparseUNet(3, resolution=8, width=4, levels=3)
    x = _cloud(2, 60, 8)
    y = model(x)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="divisible"):
        SparseUNet(3, resolution=10, levels=3)


def test_site_centres_are_the_voxel_centres():
    model = SparseUNet(3, resolution=4, width=2, levels=2)
    x, _ = model.voxelise(torch.tensor([[[-0.9, -0.9, -0.9], [0.1, 0.6, -0.4]]]))
    _, xyz = site_centres(x, 4)
    torch.testing.assert_close(xyz, torch.tensor([[-0.75, -0.75, -0.75], [0.25, 0.75, -0.25]]))


# ------------------------------------------------------------------ fusion

def _views(b=2, v=3, size=(12, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.tensor([[0.0, 0.3, -2.5], [2.0, 0.5, 1.0], [-2.2, 0.2, 0.8]])[:v]
    R, t = look_at(eye, torch.zeros(3))
    K = fov_intrinsics(60.0, size).expand(v, 3, 3)
    depth = 1.5 + torch.rand(b, v, *size, generator=g)
    return SceneViews(torch.rand(b, v, 3, *size, generator=g), depth, torch.zeros(b, v, *size, dtype=torch.long),
                      K.expand(b, v, 3, 3), R.expand(b, v, 3, 3), t.expand(b, v, 3))


def test_backproject_reads_the_pixel_feature_and_tests_visibility():
    H, W = 6, 8
    R, t = look_at(torch.tensor([[0.0, 0.0, -3.0]]), torch.zeros(3))
    K = fov_intrinsics(60.0, (H, W))[None]
    depth = torch.full((1, H, W), 3.0)
    maps = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    from coursekit.geometry.camera import pixel_grid, unproject
    uv = pixel_grid(H, W).reshape(1, -1, 2)
    on_surface = unproject(uv, torch.full((1, H * W), 3.0), K, R, t)[0]  # each pixel centre's surface point
    feats, visible = backproject(on_surface, maps, depth, K, R, t, tol=0.05)
    assert visible.all()
    torch.testing.assert_close(feats[0, :, 0], torch.arange(H * W, dtype=torch.float32))
    behind = unproject(uv, torch.full((1, H * W), 3.5), K, R, t)[0]  # occluded by the surface at depth 3
    feats, visible = backproject(behind, maps, depth, K, R, t, tol=0.05)
    assert not visible.any() and (feats == 0).all()


def test_backproject_gradcheck_in_the_feature_maps():
    H, W = 5, 7
    R, t = look_at(torch.tensor([[0.0, 0.0, -3.0]], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    K = fov_intrinsics(60.0, (H, W), dtype=torch.float64)[None]
    xyz = torch.rand(10, 3, dtype=torch.float64) - 0.5
    depth = torch.full((1, H, W), 3.0, dtype=torch.float64)
    maps = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m: backproject(xyz, m, depth, K, R, t, tol=1.0)[0], (maps,))


def test_normalise_views_keeps_pixels_and_scales_depth():
    views = _views(1, 2)
    x = torch.randn(5, 3)
    centre, scale = torch.tensor([0.3, -0.2, 0.5]), 2.5
    from coursekit.geometry.camera import project
    n = normalise_views(SceneViews(*[a[0] for a in views]), centre, scale)
    uv, z = project(x.expand(2, 5, 3), views.K[0], views.R[0], views.t[0])
    uv2, z2 = project(((x - centre) / scale).expand(2, 5, 3), n.K, n.R, n.t)
    torch.testing.assert_close(uv2, uv, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z2, z / scale)


@pytest.mark.parametrize("make", [lambda: VoxelFusionSeg(4, image_channels=4, resolution=8, width=4, levels=2),
                                  lambda: PointFusionSeg(4, image_channels=4, view_channels=4, tol=10.0, sizes=SMALL_P2)],
                         ids=["a-voxels", "b-points"])
def test_fusion_variants_run_and_the_image_path_gets_gradients(make):
    torch.manual_seed(0)
    model = make()
    views = _views()
    views = views._replace(depth=torch.full_like(views.depth, 2.5))
    x = _cloud(2, 48, 9) * 0.5
    y = model(x, views)
    assert y.shape == (2, 48, 4)
    y.square().sum().backward()
    grad = model.images.net[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # and the images matter: other images give other logits
    with torch.no_grad():
        model.eval()
        other = views._replace(rgb=torch.rand_like(views.rgb))
        assert not torch.allclose(model(x, views), model(x, other))


# ------------------------------------------------------------------ scene folder

def _write_dir(root, name, n=20, **extra):
    d = root / name
    d.mkdir()
    np.save(d / "coord.npy", np.random.default_rng(0).random((n, 3)).astype(np.float32))
    np.save(d / "segment.npy", np.arange(n) % 3)
    for key, value in extra.items():
        np.save(d / f"{key}.npy", value)
    return d


def test_scene_folder_reads_dirs_and_text_and_reports_bad_scenes(tmp_path):
    _write_dir(tmp_path, "scene0000_00", instance=np.arange(20) // 5, color=np.full((20, 3), 255.0),
               bbox=np.array([[0, 0, 0, 1, 2, 3, 0.5, 4]], dtype=np.float32))
    (tmp_path / "Area_1_office_1.txt").write_text("0 0 0 10 20 30 2\n1 1 1 10 20 30 -100\n")
    bad = _write_dir(tmp_path, "scene_bad_length")
    np.save(bad / "segment.npy", np.zeros(7, dtype=np.int64))
    corrupt = tmp_path / "scene_corrupt"
    corrupt.mkdir()
    (corrupt / "coord.npy").write_bytes(b"\x93NUMPY garbage")
    (corrupt / "segment.npy").write_bytes(b"not an array")
    missing = tmp_path / "scene_missing"
    missing.mkdir()
    with pytest.warns(UserWarning, match="skipped scene"):
        folder = load_scene_folder(tmp_path, ignore_label=-100)
    assert [s.name for s in folder.scenes] == ["Area_1_office_1", "scene0000_00"]
    reasons = dict(folder.problems)
    assert set(reasons) == {str(bad), str(corrupt), str(missing)}
    assert "rows but there are 20 points" in reasons[str(bad)] and "missing coord.npy" in reasons[str(missing)]
    txt, scan = folder.scenes
    assert txt.semantic.tolist() == [2, -1] and torch.allclose(txt.colors[0], torch.tensor([10, 20, 30]) / 255)
    assert scan.points.shape == (20, 3) and scan.instance.tolist()[-1] == 3 and scan.colors.max() == 1
    assert scan.boxes.shape == (1, 7) and scan.box_labels.tolist() == [4]


def test_scene_folder_converts_z_up_scans(tmp_path):
    d = _write_dir(tmp_path, "s", n=2, bbox=np.array([[1.0, 2.0, 3.0, 0.5, 0.6, 0.7, 0.0]]))
    np.save(d / "coord.npy", np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], dtype=np.float32))
    scene = load_scene(d, up="z")
    torch.testing.assert_close(scene.points, torch.tensor([[1.0, 3.0, -2.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(scene.boxes, torch.tensor([[1.0, 3.0, -2.0, 0.5, 0.7, 0.6, 0.0]]))
    assert scene.box_labels.tolist() == [-1]
    with pytest.raises(ValueError, match="up must be"):
        load_scene(d, up="x")


# ------------------------------------------------------------------ table

def test_majority_baseline_by_hand():
    train_labels = torch.tensor([0, 0, 0, 1, 2])
    test_labels = torch.tensor([0, 1, 1, 2])
    b = majority_miou(train_labels, test_labels, 4)
    assert b["class"] == 0 and b["oa"] == 0.25
    assert math.isclose(b["miou"], (1 / 4 + 0 + 0) / 3)  # class 0: TP 1, FP 3; classes 1, 2 IoU 0; class 3 absent


def test_short_training_beats_the_majority_class_on_a_tiny_scene_set():
    sizes = dict(conditions=("complete",), n_train=6, n_test=2, n_points=384, n_views=2, image_size=(24, 32), epochs=10,
                 batch_size=2, lr=5e-3)
    table = segmentation_table(["Sparse U-Net"], part_models=(), sizes=sizes, progress=False)
    row, base = table.row("Sparse U-Net"), table.baseline["complete"]
    assert row["miou"] > base["miou"] + 0.03, table.format()
    assert "majority (wall)" in table.format()


def test_partial_scan_points_lie_on_the_room_surfaces_with_their_labels():
    from coursekit.data.world import make_scene_split
    from coursekit.models.fusion import partial_scene_scan, render_scene_views

    _, test = make_scene_split(0, 1, n_points=64, seed=0, progress=False)
    room = test.scenes[0]
    views = render_scene_views(room, 2, (24, 32))
    points, labels = partial_scene_scan(views, 300, torch.Generator().manual_seed(0))
    assert points.shape == (300, 3) and labels.shape == (300,)
    assert room.sdf(points).abs().max() < 0.02  # unprojected depth lands on a surface
    assert set(labels.tolist()) <= set(room.part_semantic.tolist()) and (labels >= 0).all()
    # the complete cloud's nearest point agrees on the class for most scan points (boundaries may differ)
    from coursekit.geometry.neighbors import knn
    _, idx = knn(points[None], test.points[:1], 1)
    agree = (test.semantic[0][idx[0, :, 0]] == labels).float().mean()
    assert agree > 0.8
