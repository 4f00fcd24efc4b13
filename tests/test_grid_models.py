"""The view, volumetric, octree, sparse, spectral and spherical classifiers: shapes, sizes, invariances, errors."""

import math

import pytest
import torch

from coursekit import runtime
from coursekit.data.world.primitives import rotation_y
from coursekit.data.world.shapes import make_shape
from coursekit.geometry.spherical import rotate_about_pole, spherical_function_mesh
from coursekit.geometry.voxels import voxelize_mesh_surface, voxelize_points
from coursekit.models import mvcnn, ocnn, sparse_resnet, spectral_cnn, spherical_cnn, voxnet, xray_cnn
from coursekit.models.mvcnn import MVCNN, SingleViewCNN, render_views
from coursekit.models.ocnn import OCNN
from coursekit.models.sparse_resnet import SparseResNet
from coursekit.models.spectral_cnn import SpectralCNN, SyncSpectralCNN
from coursekit.models.spherical_cnn import SphericalCNN
from coursekit.models.voxnet import VoxNet
from coursekit.models.xray_cnn import XRayCNN
from coursekit.nn.sparse_conv import SparseTensor

N_CLASSES = 5


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def clouds():
    """Two shapes' surface samples and normals: ``(2, 256, 3)`` each."""
    samples = [make_shape(name, 1).sample(256, 0) for name in ("chair", "mug")]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


@pytest.fixture
def fast_profile():
    runtime.set_profile("fast")
    yield
    runtime.set_profile(None)


def fwd_bwd(model, *inputs):
    out = model(*inputs)
    assert out.shape == (inputs[0].shape[0] if isinstance(inputs[0], torch.Tensor) else 2, N_CLASSES)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    return out


@pytest.mark.parametrize("module", [mvcnn, voxnet, xray_cnn, ocnn, sparse_resnet, spectral_cnn, spherical_cnn])
def test_every_size_table_names_all_profiles(module):
    assert set(module.SIZES) == set(runtime.PROFILES)


def test_models_build_from_the_fast_profile(fast_profile, clouds):
    points, normals = clouds
    torch.manual_seed(0)
    fwd_bwd(VoxNet(N_CLASSES), voxelize_points(points, voxnet.SIZES["fast"]["resolution"]))
    fwd_bwd(XRayCNN(N_CLASSES), voxelize_points(points, xray_cnn.SIZES["fast"]["resolution"]))
    size = mvcnn.SIZES["fast"]["image_size"]
    views = torch.rand(2, 3, 1, size, size)
    fwd_bwd(MVCNN(N_CLASSES), views)
    fwd_bwd(SingleViewCNN(N_CLASSES), views)
    fwd_bwd(OCNN(N_CLASSES), points, normals)
    fwd_bwd(SparseResNet(N_CLASSES), points)
    fwd_bwd(SpectralCNN(N_CLASSES), points)
    fwd_bwd(SyncSpectralCNN(N_CLASSES), points)
    model = SphericalCNN(N_CLASSES)
    fwd_bwd(model, model.prepare(points))


# ------------------------------------------------------------------ multi-view

def test_render_views_ring_and_dodecahedron():
    shape = make_shape("chair", 3)
    ring = render_views(shape.vertices, shape.faces, 12, 32)
    dodeca = render_views(shape.vertices, shape.faces, 20, 32, layout="dodecahedron")
    assert ring.shape == (12, 1, 32, 32) and dodeca.shape == (20, 1, 32, 32)
    assert ring.min() >= 0 and ring.max() <= 1 and (ring < 1).any() and (ring == 1).any()  # object on white
    assert not torch.equal(ring[0], ring[3])  # the views differ
    with pytest.raises(ValueError, match="20 cameras"):
        render_views(shape.vertices, shape.faces, 12, 32, layout="dodecahedron")
    with pytest.raises(ValueError, match="layout must be"):
        render_views(shape.vertices, shape.faces, 12, 32, layout="sphere")


@pytest.mark.parametrize("cls", [MVCNN, SingleViewCNN])
def test_multiview_models_do_not_depend_on_the_order_of_views(cls):
    torch.manual_seed(0)
    model = cls(N_CLASSES, image_size=32, width=4, hidden=16).eval()
    views = torch.rand(2, 12, 1, 32, 32)
    perm = torch.randperm(12)
    torch.testing.assert_close(model(views[:, perm]), model(views), atol=1e-5, rtol=1e-5)
    assert model(torch.rand(2, 20, 1, 32, 32)).shape == (2, N_CLASSES)  # any number of views


def test_view_pooling_is_what_separates_mvcnn_from_the_score_average():
    torch.manual_seed(0)
    mv = MVCNN(N_CLASSES, image_size=32, width=4, hidden=16).eval()
    single = SingleViewCNN(N_CLASSES, image_size=32, width=4, hidden=16).eval()
    single.load_state_dict(mv.state_dict(), strict=False)
    views = torch.rand(2, 6, 1, 32, 32)
    # one view: pooling is the identity, so both compute the same class ranking
    one = views[:, :1]
    torch.testing.assert_close(torch.log_softmax(mv(one), -1), single(one), atol=1e-5, rtol=1e-5)
    # several views: max-pooled features differ from averaged scores
    assert (torch.log_softmax(mv(views), -1) - single(views)).abs().max() > 1e-4
    torch.testing.assert_close(single(views).exp().sum(-1), torch.ones(2))  # averaged probabilities


def test_multiview_input_errors():
    model = MVCNN(N_CLASSES, image_size=32, width=4, hidden=16)
    with pytest.raises(ValueError, match=r"\(B, V, 1, 32, 32\)"):
        model(torch.rand(2, 12, 3, 32, 32))
    with pytest.raises(ValueError, match="no views"):
        model(torch.rand(2, 0, 1, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(12, 1, 32, 32))


# ------------------------------------------------------------------ volumetric and X-ray

def test_voxnet_has_voxnets_layers_and_parameter_count():
    model = VoxNet(10, resolution=32, filters=32, hidden=128)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.kernel_size, c.stride) for c in convs] == [((5, 5, 5), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))]
    # 32*125+32 + 32*32*27+32 + (32*6^3)*128+128 + 128*10+10
    assert count(model) == 4032 + 27680 + 884864 + 1290
    assert VoxNet(10, resolution=30, filters=32, hidden=128)(torch.zeros(1, 1, 30, 30, 30)).shape == (1, 10)


def test_xray_cnn_is_far_smaller_than_the_volumetric_cnn_on_the_same_grid(clouds):
    points, _ = clouds
    vox = VoxNet(N_CLASSES, resolution=32, filters=32, hidden=128)
    xray = XRayCNN(N_CLASSES, resolution=32, width=16)
    assert count(vox) > 20 * count(xray)
    occupancy = xray.prepare(points)
    assert occupancy.shape == (2, 1, 32, 32, 32)
    fwd_bwd(xray, occupancy)
    shape = make_shape("table", 0)
    grid = voxelize_mesh_surface(shape.vertices, shape.faces, 32)  # from a mesh
    assert xray(grid).shape == (1, N_CLASSES) and vox(grid).shape == (1, N_CLASSES)
    with pytest.raises(ValueError, match="resolution 32"):
        vox(torch.zeros(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="occupancy must have shape"):
        xray(torch.zeros(1, 1, 16, 16, 16))


# ------------------------------------------------------------------ octree and sparse

def test_ocnn_is_invariant_to_point_order_and_reads_normals(clouds):
    points, normals = clouds
    torch.manual_seed(0)
    model = OCNN(N_CLASSES, depth=4, width=4).double().eval()
    perm = torch.randperm(points.shape[1])
    p, n = points.double(), normals.double()
    torch.testing.assert_close(model(p[:, perm], n[:, perm]), model(p, n))
    assert (model(p, n) - model(p, -n)).abs().max() > 1e-6  # the normals matter
    with pytest.raises(ValueError, match="average normals"):
        model(p)
    with pytest.raises(ValueError, match="depth must be at least 3"):
        OCNN(N_CLASSES, depth=2)
    assert OCNN(N_CLASSES, in_channels=1, depth=3, width=4)(points).shape == (2, N_CLASSES)


def test_sparse_resnet_points_or_sparse_tensor_and_point_order(clouds):
    points, normals = clouds
    torch.manual_seed(0)
    model = SparseResNet(N_CLASSES, resolution=16, width=4, levels=3, blocks=1).double().eval()
    p = points.double()
    out = model(p)
    torch.testing.assert_close(model(SparseTensor.from_points(p, 16)), out)
    torch.testing.assert_close(model(p[:, torch.randperm(p.shape[1])]), out)
    # a cloud entirely outside the bounds is an empty grid, and still gets a prediction
    far = torch.cat([p[:1], p[1:] + 5.0])
    assert torch.isfinite(model(far)).all()
    with_normals = SparseResNet(N_CLASSES, in_channels=3, resolution=16, width=4, levels=2)
    assert with_normals(points, normals).shape == (2, N_CLASSES)
    with pytest.raises(ValueError, match="feature channels"):
        with_normals(points)


# ------------------------------------------------------------------ spectral

def test_spectral_cnn_is_invariant_to_point_order(clouds):
    points, _ = clouds
    torch.manual_seed(0)
    model = SpectralCNN(N_CLASSES, n_points=128, n_eigs=12, k=8, widths=(8, 8), n_anchors=4).double().eval()
    p = points.double()
    perm = torch.cat([torch.randperm(128), torch.arange(128, p.shape[1])])  # shuffle the points the model uses
    torch.testing.assert_close(model(p[:, perm]), model(p), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="uses 128 points"):
        model(p[:, :100])


def test_sync_spectral_cnn_starts_from_the_identity_map(clouds):
    points, _ = clouds
    model = SyncSpectralCNN(N_CLASSES, n_points=128, n_eigs=12, k=8, widths=(8,))
    _, basis, C = model.synchronizer(points)
    torch.testing.assert_close(C, torch.eye(12).expand(2, 12, 12))
    assert ((basis ** 3).sum(1) >= 0).all()  # canonical signs
    fwd_bwd(model, points)
    assert model.transformer.mlp[-1].weight.grad.abs().sum() > 0  # the alignment is learned


# ------------------------------------------------------------------ spherical

def test_spherical_cnn_is_equivariant_and_invariant_to_grid_rotations_of_a_shape():
    torch.manual_seed(0)
    model = SphericalCNN(N_CLASSES, bandwidth=8, widths=(6, 8), n_anchors=4).double().eval()
    shape = make_shape("chair", 4)
    L = model.bandwidth
    steps = round(model.rotation_step / (math.pi / L))
    assert steps == 2  # one ReLU grid at L=8 and one at L=4: rotations by multiples of pi/4
    grid = spherical_function_mesh(shape.vertices.double(), shape.faces, L)[None, None]
    for k in (1, 3):
        turned = shape.transformed(rotation_y(k * model.rotation_step))
        grid_r = spherical_function_mesh(turned.vertices.double(), turned.faces, L)[None, None]
        torch.testing.assert_close(grid_r, torch.roll(grid, k * steps, -1), atol=1e-5, rtol=0)  # ray casting rolls
        feats, feats_r = model.features(grid), model.features(grid_r)
        torch.testing.assert_close(feats_r, rotate_about_pole(feats, k * model.rotation_step), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(grid_r), model(grid), atol=1e-4, rtol=1e-4)
    # a quarter step is not a grid rotation: the output changes (the test above can fail)
    turned = shape.transformed(rotation_y(model.rotation_step / 4))
    grid_q = spherical_function_mesh(turned.vertices.double(), turned.faces, L)[None, None]
    assert (model(grid_q) - model(grid)).abs().max() > 1e-4


def test_spherical_cnn_input_errors(clouds):
    model = SphericalCNN(N_CLASSES, bandwidth=8, widths=(4,), n_anchors=3)
    assert model.prepare(clouds[0]).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\)"):
        model(torch.zeros(2, 1, 8, 8))
