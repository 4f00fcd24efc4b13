"""MVS geometry and data: plane-sweep homographies, depth warping, fusion, scenes, the DTU folder format."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coursekit.data.mvs import (load_mvs_folder, make_mvs_scene, read_cam_txt, read_pair_txt, read_pfm,
                                save_mvs_folder, select_pairs, view_selection_scores, write_cam_txt, write_pfm)
from coursekit.geometry.camera import fov_intrinsics, intrinsics, look_at, pixel_grid, project, unproject
from coursekit.geometry.depth_fusion import consistency_mask, depth_to_points, fuse_depth_maps, reprojection_errors
from coursekit.geometry.homography import (depth_planes, depth_warp, homography_warp, plane_sweep_homographies,
                                           scale_intrinsics)


def two_cameras(dtype=torch.float64, B=2, size=(5, 7)):
    """B reference/source pairs with off-centre, non-square intrinsics (so K^T != K^-1 shows)."""
    g = torch.Generator().manual_seed(0)
    H, W = size
    K = intrinsics(torch.tensor([6.0, 7.5])[:B], torch.tensor([5.0, 6.5])[:B], torch.tensor([3.1, 3.9])[:B],
                   torch.tensor([2.2, 2.8])[:B], dtype)
    target = torch.tensor([0.1, -0.2, 3.0], dtype=dtype)
    eye_ref = torch.randn(B, 3, generator=g, dtype=dtype) * 0.1
    eye_src = eye_ref + torch.tensor([0.4, 0.15, -0.1], dtype=dtype)
    R1, t1 = look_at(eye_ref, target)
    R2, t2 = look_at(eye_src, target)
    return K, R1, t1, K.flip(0), R2, t2


@pytest.fixture(scope="module")
def scene():
    return make_mvs_scene(3, n_views=5, size=(24, 32))


def test_homography_maps_plane_points_like_explicit_projection():
    K1, R1, t1, K2, R2, t2 = two_cameras()
    depths = torch.tensor([[2.0, 3.5, 5.0]] * 2, dtype=torch.float64)
    Hm = plane_sweep_homographies(K1, R1, t1, K2, R2, t2, depths)
    uv = pixel_grid(5, 7, torch.float64).reshape(1, -1, 2).expand(2, -1, -1)
    for k in range(3):
        X = unproject(uv, depths[:, k:k + 1].expand(-1, uv.shape[1]), K1, R1, t1)
        want, _ = project(X, K2, R2, t2)
        q = torch.cat([uv, torch.ones_like(uv[..., :1])], -1) @ Hm[:, k].transpose(-1, -2)
        torch.testing.assert_close(q[..., :2] / q[..., 2:], want)


def test_homography_with_K_transpose_is_wrong():
    """MVSNet's printed K_1^T: the test above would fail with it (principal point off-centre)."""
    K1, R1, t1, K2, R2, t2 = two_cameras()
    d = torch.tensor([3.0], dtype=torch.float64)
    Hm = plane_sweep_homographies(K1, R1, t1, K2, R2, t2, d)
    R_rel = R2 @ R1.transpose(-1, -2)
    t_rel = t2 - (R_rel @ t1[..., None])[..., 0]
    bad = K2 @ (R_rel + t_rel[..., None] * torch.tensor([0, 0, 1.0], dtype=torch.float64) / 3.0) @ K1.transpose(-1, -2)
    good = K2 @ (R_rel + t_rel[..., None] * torch.tensor([0, 0, 1.0], dtype=torch.float64) / 3.0) @ torch.linalg.inv(K1)
    torch.testing.assert_close(Hm[:, 0], good)
    assert not torch.allclose(Hm[:, 0], bad, atol=1e-3)


def test_homography_warp_equals_warping_through_3d_points():
    K1, R1, t1, K2, R2, t2 = two_cameras()
    src = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    depths = torch.tensor([2.5, 3.0, 4.0], dtype=torch.float64)
    warped, inside = homography_warp(src, K1, R1, t1, K2, R2, t2, depths, return_mask=True)
    assert warped.shape == (2, 3, 3, 5, 7) and inside.shape == (2, 3, 5, 7)
    for k in range(3):
        ref, valid = depth_warp(src, torch.full((2, 5, 7), float(depths[k]), dtype=torch.float64), K1, R1, t1, K2, R2, t2)
        torch.testing.assert_close(warped[:, :, k], ref)
        assert torch.equal(valid, inside[:, k])


def test_homography_warp_identity_and_plane_order():
    K = fov_intrinsics(50.0, (6, 8), torch.float64)[None]
    R, t = torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3, dtype=torch.float64)
    img = torch.rand(1, 2, 6, 8, dtype=torch.float64)
    out = homography_warp(img, K, R, t, K, R, t, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(out, img[:, :, None].expand(-1, -1, 3, -1, -1))
    # order is kept: reversing the planes reverses the volume
    K1, R1, t1, K2, R2, t2 = two_cameras()
    src = torch.rand(2, 1, 5, 7, dtype=torch.float64)
    d = torch.tensor([2.0, 3.0, 4.5], dtype=torch.float64)
    a = homography_warp(src, K1, R1, t1, K2, R2, t2, d)
    b = homography_warp(src, K1, R1, t1, K2, R2, t2, d.flip(0))
    torch.testing.assert_close(a, b.flip(2))
    assert not torch.allclose(a, b)


def test_homography_warp_gradcheck():
    K1, R1, t1, K2, R2, t2 = two_cameras(B=1, size=(3, 4))
    src = torch.rand(1, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    t2 = t2.clone().requires_grad_(True)
    d = torch.tensor([2.7, 3.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s, tt: homography_warp(s, K1, R1, t1, K2, R2, tt, d, size=(3, 4)), (src, t2))


def test_scale_intrinsics_matches_resized_pixels():
    K = fov_intrinsics(50.0, (8, 12), torch.float64)[None]
    R, t = look_at(torch.tensor([[0.3, 0.2, -2.0]], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    X = torch.randn(1, 10, 3, dtype=torch.float64) * 0.3
    uv, _ = project(X, K, R, t)
    uv4, _ = project(X, scale_intrinsics(K, 0.25), R, t)
    torch.testing.assert_close(uv4, uv * 0.25)


def test_depth_planes_and_errors():
    d = depth_planes(1.0, 2.0, 5)
    torch.testing.assert_close(d, torch.tensor([1.0, 1.25, 1.5, 1.75, 2.0]))
    inv = depth_planes(1.0, 2.0, 3, inverse=True)
    torch.testing.assert_close(1 / inv, torch.tensor([1.0, 0.75, 0.5]))
    K1, R1, t1, K2, R2, t2 = two_cameras()
    with pytest.raises(ValueError, match="positive"):
        plane_sweep_homographies(K1, R1, t1, K2, R2, t2, torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="src must have shape"):
        homography_warp(torch.zeros(2, 5, 7), K1, R1, t1, K2, R2, t2, torch.tensor([1.0]))


def test_reprojection_errors_zero_for_consistent_depths(scene):
    S = scene
    ref = lambda x: x[0:1]  # noqa: E731
    src = lambda x: x[1:2]  # noqa: E731
    pix, rel = reprojection_errors(ref(S.depth), ref(S.K), ref(S.R), ref(S.t), src(S.depth), src(S.K), src(S.R), src(S.t))
    finite = torch.isfinite(pix)
    assert finite.float().mean() > 0.3
    mask = consistency_mask(pix, rel, 1.0, 0.01)
    # exact depths reproject onto themselves (up to bilinear interpolation); the rest is occlusion
    assert pix[finite].median() < 0.2 and rel[finite].median() < 0.01
    assert mask.float().sum() / finite.float().sum() > 0.4
    # a wrong depth map (scaled by 10%) fails the check
    pix2, rel2 = reprojection_errors(ref(S.depth) * 1.1, ref(S.K), ref(S.R), ref(S.t), src(S.depth), src(S.K), src(S.R), src(S.t))
    assert consistency_mask(pix2, rel2).float().sum() < 0.1 * mask.float().sum()


def test_fusion_keeps_consistent_points_on_the_surface(scene):
    S = scene
    out = fuse_depth_maps(S.depth, S.K, S.R, S.t, images=S.images, pairs=S.pairs, min_views=1)
    assert out["points"].shape[0] == out["mask"].sum() == out["colors"].shape[0]
    gt = depth_to_points(S.depth, S.K, S.R, S.t).reshape(-1, 3)[S.depth.reshape(-1) > 0]
    d = torch.cdist(out["points"][::7], gt).amin(1)
    assert d.median() < 0.01
    # noisy depth maps: fusion removes the inconsistent ones
    g = torch.Generator().manual_seed(0)
    noisy = S.depth * (1 + 0.2 * (torch.rand(S.depth.shape, generator=g) < 0.3).float())
    out2 = fuse_depth_maps(noisy, S.K, S.R, S.t, pairs=S.pairs, min_views=2)
    bad = (noisy != S.depth)
    assert (out2["mask"] & bad).sum() < 0.05 * (out2["mask"] & ~bad).sum()
    conf = torch.zeros_like(S.depth)
    assert fuse_depth_maps(S.depth, S.K, S.R, S.t, confidence=conf)["points"].shape[0] == 0


def test_scene_views_are_photo_consistent(scene):
    S = scene
    w, valid = depth_warp(S.images[1:2], S.depth[0:1], S.K[0:1], S.R[0:1], S.t[0:1], S.K[1:2], S.R[1:2], S.t[1:2])
    pix, rel = reprojection_errors(S.depth[0:1], S.K[0:1], S.R[0:1], S.t[0:1], S.depth[1:2], S.K[1:2], S.R[1:2], S.t[1:2])
    visible = consistency_mask(pix, rel, 1.0, 0.01)
    err = (w - S.images[0:1]).abs().mean(1)[visible]
    assert err.median() < 0.05 < (S.images[1] - S.images[0]).abs().mean()


def test_scene_contents_and_pairs(scene):
    S = scene
    assert S.images.shape == (5, 3, 24, 32) and S.depth.shape == (5, 24, 32)
    assert S.mask.any() and (S.depth[S.mask] > 0).all()
    d0, d1 = S.depth_range
    assert d0 < S.depth[S.depth > 0].min() and d1 > S.depth.max()
    assert S.pairs.shape == (5, 4) and not (S.pairs == torch.arange(5)[:, None]).any()
    torch.testing.assert_close(S.scores, S.scores.T)
    again = make_mvs_scene(3, n_views=5, size=(24, 32))
    assert torch.equal(again.images, S.images)


def test_view_selection_prefers_the_5_degree_baseline():
    """Two sources at 5 and 30 degrees from the reference: the 5-degree one scores higher."""
    target = torch.zeros(3, dtype=torch.float64)
    angles = torch.deg2rad(torch.tensor([0.0, 5.0, 30.0], dtype=torch.float64))
    eye = torch.stack([2 * angles.sin(), torch.zeros(3, dtype=torch.float64), 2 * angles.cos()], -1)
    R, t = look_at(eye, target)
    K = fov_intrinsics(40.0, (16, 16), torch.float64).expand(3, 3, 3)
    pts = torch.randn(50, 3, dtype=torch.float64) * 0.05
    _, z = project(pts.expand(3, -1, -1), K, R, t)
    depth = torch.zeros(3, 16, 16, dtype=torch.float64)
    uv, _ = project(pts.expand(3, -1, -1), K, R, t)
    for v in range(3):
        depth[v, uv[v, :, 1].long(), uv[v, :, 0].long()] = z[v]
    s = view_selection_scores(pts, K, R, t, depth, visibility_tol=0.2)
    assert s[0, 1] > s[0, 2] > 0
    assert select_pairs(s, 1)[0, 0] == 1


def test_cam_pair_pfm_round_trip(tmp_path, scene):
    K = scene.K[0]
    write_cam_txt(tmp_path / "c.txt", K, scene.R[0], scene.t[0], 425.0, 2.5, 192)
    text = (tmp_path / "c.txt").read_text()
    assert text.startswith("extrinsic") and "intrinsic" in text
    cam = read_cam_txt(tmp_path / "c.txt")
    torch.testing.assert_close(cam["K"], K)
    assert abs(float(text.split("intrinsic")[1].split()[2]) - (float(K[0, 2]) - 0.5)) < 1e-6  # OpenCV cx on disk
    assert cam["depth_num"] == 192 and cam["depth_min"] == 425.0
    img = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    write_pfm(tmp_path / "d.pfm", img)
    np.testing.assert_array_equal(read_pfm(tmp_path / "d.pfm"), img)
    folder = save_mvs_folder(scene, tmp_path / "scan1")
    refs, srcs, _ = read_pair_txt(folder / "pair.txt")
    assert refs == list(range(5)) and srcs[0] == scene.pairs[0].tolist()
    loaded = load_mvs_folder(folder)
    torch.testing.assert_close(loaded.K, scene.K)
    torch.testing.assert_close(loaded.R, scene.R)
    torch.testing.assert_close(loaded.depth, scene.depth)
    assert (loaded.images - scene.images).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(loaded.pairs, scene.pairs)
    assert abs(loaded.depth_range[1] - scene.depth_range[1]) < 1e-4


def test_hand_written_mvsnet_cam_file(tmp_path):
    """A camera file as in MVSNet's DTU release (integer pixel centres, 2 tail numbers)."""
    (tmp_path / "00000000_cam.txt").write_text(
        "extrinsic\n1 0 0 -10\n0 1 0 5\n0 0 1 600\n0.0 0.0 0.0 1.0\n\nintrinsic\n"
        "361.54 0.0 82.9\n0.0 360.39 66.38\n0.0 0.0 1.0\n\n425.0 2.5\n")
    cam = read_cam_txt(tmp_path / "00000000_cam.txt")
    assert cam["t"].tolist() == [-10.0, 5.0, 600.0] and "depth_num" not in cam
    assert abs(float(cam["K"][0, 2]) - 83.4) < 1e-4
    with pytest.raises(ValueError, match="not an MVSNet camera"):
        (tmp_path / "bad.txt").write_text("1 2 3")
        read_cam_txt(tmp_path / "bad.txt")


def test_stereo_pairs_are_rectified():
    """Reading the right image at u - disparity reproduces the left image (rows are epipolar lines)."""
    from coursekit.data.mvs import make_stereo_pairs

    for baseline, doffs in ((0.12, 0.0), (0.3, 3.0)):  # also with the right principal point shifted: d = f b / z - doffs
        s = make_stereo_pairs(0, n_pairs=2, size=(24, 32), baseline=baseline, doffs=doffs)
        P, _, H, W = s["left"].shape
        z = s["K"][:, 0, 0, None, None] * baseline / (s["disparity"] + doffs)
        torch.testing.assert_close(z[s["mask"]], s["depth"][s["mask"]])
        u = torch.arange(W) + 0.5
        x = 2 * (u - s["disparity"]) / W - 1
        y = (2 * (torch.arange(H) + 0.5) / H - 1)[None, :, None].expand(P, H, W)
        back = F.grid_sample(s["right"], torch.stack([x, y], -1), align_corners=False)
        ok = s["mask"] & (x.abs() < 1)
        assert (back - s["left"]).abs().mean(1)[ok].median() < 0.05
        assert (s["right"] - s["left"]).abs().mean(1)[ok].median() > 0.05
        # a 3-pixel misread (the shift applied twice, or forgotten) misaligns the pair
        x = 2 * (u - s["disparity"] - 3.0) / W - 1
        back = F.grid_sample(s["right"], torch.stack([x, y], -1), align_corners=False)
        assert (back - s["left"]).abs().mean(1)[s["mask"] & (x.abs() < 1)].median() > 0.05


def test_independent_student_style_implementations_agree_with_the_library():
    """The checks' plain variants (written from the formulas, no library calls) equal the library."""
    from coursekit.checks.mvs import _fusion_cases, _fusion_variant, _warp_cases, _warp_variant

    g = torch.Generator().manual_seed(0)
    for case in _warp_cases(g):
        torch.testing.assert_close(_warp_variant(*case.args), homography_warp(*case.args))
    for case in _fusion_cases(g):
        got, want = _fusion_variant(*case.args), reprojection_errors(*case.args)
        for a, b in zip(got, want):
            assert torch.equal(torch.isinf(a), torch.isinf(b))
            torch.testing.assert_close(a[torch.isfinite(a)], b[torch.isfinite(b)])


def test_mvs_samples_put_the_reference_first(scene):
    from coursekit.data.mvs import MVSSamples

    data = MVSSamples([scene], n_src=2, n_depths=8)
    item = data[3]
    assert len(data) == 5 and item["images"].shape == (3, 3, 24, 32)
    assert torch.equal(item["images"][0], scene.images[3]) and torch.equal(item["images"][1], scene.images[scene.pairs[3, 0]])
    assert torch.equal(item["depth"], scene.depth[3]) and item["depth_values"].shape == (8,)
    assert item["depth_values"][0] == pytest.approx(scene.depth_range[0]) and item["depth_values"][-1] == pytest.approx(scene.depth_range[1])
