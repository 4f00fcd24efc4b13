"""Layers of the view, volumetric, octree, sparse, spectral and spherical models, and their geometry helpers.

Each differentiable op: gradcheck in float64 and a comparison against an independent reference
(PyTorch's dense conv3d / conv_transpose3d / max_pool3d, SciPy, brute force).
"""

import math

import numpy as np
import pytest
import scipy.sparse.csgraph
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import eval_legendre, sph_harm_y

from coursekit.checks import compare, get, make_cases, run_answer
from coursekit.data.world.primitives import rotation_y
from coursekit.data.world.shapes import make_shape, random_rotation
from coursekit.geometry.graphs import mesh_edges
from coursekit.geometry.lattice import (elevate, lattice_conv, lattice_neighbours, permutohedral_splat, slice_lattice,
                                        splat, splat_conv_slice)
from coursekit.geometry.sparse import SparseCoords, _kernel_map_naive, kernel_map
from coursekit.geometry.spherical import (equiangular_grid, grid_directions, isht, power_spectrum, quadrature_weights,
                                          ray_cast_mesh, real_spherical_harmonics, rotate_about_pole, sht,
                                          spherical_function_mesh, spherical_function_points, spherical_function_sdf)
from coursekit.geometry.tangent import tangent_convolution, tangent_frames, tangent_images
from coursekit.nn.octree_conv import (OctreeBatch, OctreeConv, OctreeMaxPool, hybrid_grid_octree, hybrid_max_pool,
                                      hybrid_to_dense, octree_conv, octree_max_pool)
from coursekit.nn.sparse_conv import (SparseConv3d, SparseConvTranspose3d, SparseTensor, SubmanifoldConv3d,
                                      _sparse_conv_naive, sparse_conv, sparse_global_pool, weight_from_conv3d,
                                      weight_from_conv_transpose3d)
from coursekit.nn.spectral import (SpectralConv, basis_mismatch, canonical_signs, functional_map, graph_laplacian,
                                   hat_weights, knn_laplacian, laplacian_eigenbasis, spectral_filter)
from coursekit.nn.spherical import SphericalConv, grid_nonlinearity
from coursekit.nn.view_pooling import ViewPooling, view_pool

D64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_sparse_grid(seed, batch=2, channels=3, shape=(8, 6, 10), density=0.2):
    """A dense grid (B, C, D, H, W) with features only at random sites, and the site mask."""
    g = gen(seed)
    mask = torch.rand(batch, *shape, generator=g) < density
    dense = torch.randn(batch, channels, *shape, generator=g, dtype=D64) * mask.unsqueeze(1)
    return dense, mask


def at_sites(dense, coords):
    b, z, y, x = coords.unbind(1)
    return dense.permute(0, 2, 3, 4, 1)[b, z, y, x]


# ======================================================================= sparse convolution

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_submanifold_conv_equals_dense_conv3d_on_occupied_sites(seed, dilation):
    dense, mask = random_sparse_grid(seed)
    x = SparseTensor.from_dense(dense, mask)
    w = torch.randn(4, 3, 3, 3, 3, generator=gen(seed + 10), dtype=D64)
    b = torch.randn(4, generator=gen(seed + 20), dtype=D64)
    layer = SubmanifoldConv3d(3, 4, 3, dilation=dilation).double()
    layer.weight.data, layer.bias.data = weight_from_conv3d(w), b
    y = layer(x)
    want = F.conv3d(dense, w, b, padding=dilation, dilation=dilation)
    assert torch.equal(y.coords, x.coords)  # the sites do not grow
    torch.testing.assert_close(y.features, at_sites(want, x.coords), atol=1e-5, rtol=0)
    # ... while the dense convolution has spread to many more cells
    assert int((want.abs().sum(1) > 1e-12).sum()) > 2 * len(x)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_strided_conv_equals_dense_conv3d_at_coarse_sites(seed, kernel_size):
    dense, mask = random_sparse_grid(seed, shape=(8, 6, 10))
    x = SparseTensor.from_dense(dense, mask)
    w = torch.randn(5, 3, kernel_size, kernel_size, kernel_size, generator=gen(seed + 1), dtype=D64)
    layer = SparseConv3d(3, 5, kernel_size, stride=2).double()
    layer.weight.data = weight_from_conv3d(w)
    y = layer(x)
    want = F.conv3d(dense, w, layer.bias, stride=2, padding=(kernel_size - 1) // 2)
    assert y.stride == 2
    torch.testing.assert_close(y.features, at_sites(want, y.coords), atol=1e-5, rtol=0)
    expected_sites = torch.unique(torch.cat([x.coords[:, :1], x.coords[:, 1:] // 2], 1), dim=0)
    assert torch.equal(y.coords, expected_sites)


@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_transposed_conv_reuses_the_down_map_and_equals_conv_transpose3d(seed, kernel_size):
    dense, mask = random_sparse_grid(seed, shape=(8, 6, 10))
    x = SparseTensor.from_dense(dense, mask)
    down = SparseConv3d(3, 4, kernel_size, stride=2).double()
    coarse = down(x)
    n_maps = len(x.cache)
    wt = torch.randn(4, 2, kernel_size, kernel_size, kernel_size, generator=gen(seed + 2), dtype=D64)
    up = SparseConvTranspose3d(4, 2, kernel_size, stride=2).double()
    up.weight.data = weight_from_conv_transpose3d(wt)
    y = up(coarse, x)
    assert len(x.cache) == n_maps  # no new kernel map was built
    assert torch.equal(y.coords, x.coords)
    p = (kernel_size - 1) // 2
    want = F.conv_transpose3d(coarse.to_dense((4, 3, 5), 2), wt, up.bias, stride=2, padding=p,
                              output_padding=2 + 2 * p - kernel_size)
    torch.testing.assert_close(y.features, at_sites(want, x.coords), atol=1e-5, rtol=0)


def test_gather_gemm_scatter_equals_one_pair_at_a_time():
    dense, mask = random_sparse_grid(5, channels=2)
    sites = SparseCoords.from_dense(dense, mask)
    w = torch.randn(27, 2, 3, generator=gen(1), dtype=D64)
    got = sparse_conv(sites.features, kernel_map(sites, 3), w, len(sites))
    want = _sparse_conv_naive(sites.features, _kernel_map_naive(sites.coords, 3), w, len(sites))
    torch.testing.assert_close(got, want)


def test_sparse_layers_gradcheck():
    dense, mask = random_sparse_grid(6, batch=1, channels=2, shape=(4, 4, 4), density=0.3)
    x = SparseTensor.from_dense(dense, mask)
    sub = x.submanifold_map(3)
    coarse, _, down = x.downsample_map(2, 3)
    feats = x.features.clone().requires_grad_()
    w = torch.randn(27, 2, 2, generator=gen(2), dtype=D64, requires_grad=True)
    b = torch.randn(2, generator=gen(3), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w, b: sparse_conv(f, sub, w, len(x), b), (feats, w, b))
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, down, w, len(coarse)), (feats, w))
    cf = torch.randn(len(coarse), 2, generator=gen(4), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, down, w, len(x), transpose=True), (cf, w))


def test_sparse_global_pool_per_grid_and_empty_grids_give_zeros():
    dense, mask = random_sparse_grid(7, batch=2)
    mask[1] = False  # second grid empty
    dense = dense * mask.unsqueeze(1)
    x = SparseTensor.from_dense(dense, mask)
    g_max = sparse_global_pool(x, "max", batch_size=3)
    g_mean = sparse_global_pool(x, "mean", batch_size=3)
    torch.testing.assert_close(g_max[0], x.features.amax(0))
    torch.testing.assert_close(g_mean[0], x.features.mean(0))
    assert (g_max[1:] == 0).all() and (g_mean[1:] == 0).all()


def test_sparse_conv_errors():
    dense, mask = random_sparse_grid(0)
    x = SparseTensor.from_dense(dense, mask)
    with pytest.raises(ValueError, match="expects 4 input channels"):
        SubmanifoldConv3d(4, 2).double()(x)
    with pytest.raises(TypeError, match="takes a SparseTensor"):
        SubmanifoldConv3d(3, 2)(dense)
    with pytest.raises(ValueError, match="odd kernel_size"):
        SubmanifoldConv3d(3, 2, 2)
    with pytest.raises(ValueError, match="features must have shape"):
        SparseTensor(torch.zeros(3, 2), x.sites)
    with pytest.raises(ValueError, match="weight must have shape"):
        sparse_conv(x.features, x.submanifold_map(3), torch.zeros(27, 5, 2, dtype=D64), len(x))
    other = SparseTensor.from_dense(*random_sparse_grid(9))
    coarse = SparseConv3d(3, 3).double()(other)
    with pytest.raises(ValueError, match="not on the coarse sites"):
        SparseConvTranspose3d(3, 3).double()(coarse, x)
    with pytest.raises(ValueError, match="mode must be"):
        sparse_global_pool(x, "sum")


# ======================================================================= octree convolution

def octree_batch(seed=0, depth=4, n=300):
    pts = torch.rand(2, n, 3, generator=gen(seed), dtype=D64) * torch.tensor([1.8, 1.0, 0.6], dtype=D64) - 0.8
    return OctreeBatch.build(pts, depth), pts


@pytest.mark.parametrize("level", [2, 3, 4])
def test_octree_conv_equals_dense_conv3d_on_occupied_octants(level):
    ob, _ = octree_batch(1)
    n = ob.num_nodes(level)
    x = torch.randn(n, 3, generator=gen(2), dtype=D64)
    w = torch.randn(4, 3, 3, 3, 3, generator=gen(3), dtype=D64)
    conv = OctreeConv(3, 4).double()
    conv.weight.data = weight_from_conv3d(w)
    want = F.conv3d(ob.to_dense(x, level), w, conv.bias, padding=1)
    torch.testing.assert_close(conv(x, ob, level), at_sites(want, ob.coords(level)), atol=1e-5, rtol=0)


def test_octree_pool_equals_dense_max_pool_over_occupied_children():
    ob, _ = octree_batch(4)
    L = 4
    x = torch.randn(ob.num_nodes(L), 2, generator=gen(5), dtype=D64)
    occupied = ob.to_dense(torch.ones(ob.num_nodes(L), 1, dtype=D64), L) > 0
    masked = torch.where(occupied, ob.to_dense(x, L), torch.tensor(-1e30, dtype=D64))
    want = at_sites(F.max_pool3d(masked, 2), ob.coords(L - 1))
    torch.testing.assert_close(OctreeMaxPool()(x, ob, L), want)


def test_octree_layers_gradcheck():
    ob, _ = octree_batch(6, depth=3, n=20)
    L = 3
    x = torch.randn(ob.num_nodes(L), 2, generator=gen(7), dtype=D64, requires_grad=True)
    w = torch.randn(27, 2, 2, generator=gen(8), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: octree_conv(x, ob.neighbours(L), w), (x, w))
    assert torch.autograd.gradcheck(lambda x: octree_max_pool(x, ob.parents(L), ob.num_nodes(L - 1)), (x,))


def test_leaf_average_is_the_mean_over_the_points_of_each_leaf():
    ob, pts = octree_batch(9, depth=3)
    values = torch.randn(*pts.shape[:2], 2, generator=gen(10), dtype=D64)
    got = ob.leaf_average(values)
    for b, tree in enumerate(ob.trees):
        for leaf in range(tree.num_nodes(3)):
            want = values[b][tree.point_rows == leaf].mean(0)
            torch.testing.assert_close(got[ob.offsets[3][b] + leaf], want)


def test_octree_errors():
    ob, _ = octree_batch(0)
    with pytest.raises(ValueError, match="features must have shape"):
        OctreeConv(3, 2)(torch.zeros(5, 3), ob, 4)
    with pytest.raises(ValueError, match="disagree"):
        octree_conv(torch.zeros(ob.num_nodes(4), 3), ob.neighbours(4), torch.zeros(27, 2, 2))
    with pytest.raises(ValueError, match="level must be"):
        ob.parents(0)


def test_hybrid_grid_octree_pooling_equals_dense_max_pool():
    g = gen(11)
    grid = torch.zeros(2, 16, 16, 8, dtype=D64)
    grid[:, 3:9, 2:5, 1:7] = torch.randn(2, 1, 1, 1, generator=g, dtype=D64)  # a uniform box
    grid[:, 10:12, 10:15, 4:6] = torch.randn(2, 2, 5, 2, generator=g, dtype=D64)  # detail
    cells = hybrid_grid_octree(grid, 8)
    assert torch.equal(hybrid_to_dense(cells), grid)
    assert len(cells) < grid[0].numel() / 4  # uniform space is stored coarsely
    assert (cells.corners % cells.sizes.unsqueeze(1) == 0).all()
    pooled = cells
    want = grid
    for _ in range(3):
        pooled, want = hybrid_max_pool(pooled), F.max_pool3d(want.unsqueeze(0), 2)[0]
        assert torch.equal(hybrid_to_dense(pooled), want)
    with pytest.raises(ValueError, match="power of two dividing"):
        hybrid_grid_octree(torch.zeros(1, 12, 8, 8), 8)


# ======================================================================= view pooling

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), views=st.integers(1, 12))
def test_view_pooling_is_invariant_to_the_order_of_views(seed, views):
    f = torch.randn(3, views, 4, 2, 2, generator=gen(seed))
    perm = torch.randperm(views, generator=gen(seed + 1))
    torch.testing.assert_close(view_pool(f[:, perm]), view_pool(f), atol=0, rtol=0)
    torch.testing.assert_close(ViewPooling()(f), f.amax(1))


def test_view_pooling_is_a_max_not_a_mean_and_gradcheck():
    f = torch.tensor([[[1.0, -2.0], [3.0, -4.0]]], dtype=D64, requires_grad=True)
    assert view_pool(f).tolist() == [[3.0, -2.0]]
    g = torch.randn(2, 5, 3, generator=gen(0), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(view_pool, (g,))
    with pytest.raises(ValueError, match="no views"):
        view_pool(torch.zeros(2, 0, 3))
    with pytest.raises(ValueError, match="must have shape"):
        view_pool(torch.zeros(2, 3))


# ======================================================================= exercises

@pytest.mark.parametrize("name", ["classification.view_pooling", "classification.xray"])
def test_exercise_reference_passes_each_mistake_names_itself_and_stub_fails(name):
    exercise = get(name)
    cases = make_cases(exercise, seed=0)
    assert compare(exercise, cases, run_answer(exercise.reference, cases)).passed
    for mistake in exercise.mistakes:
        result = compare(exercise, cases, run_answer(mistake.answer, cases))
        assert not result.passed and mistake.message in result.message, (mistake.message, result.message)

    def stub(*args):
        raise NotImplementedError

    assert "not implemented" in compare(exercise, cases, run_answer(stub, cases)).message


# ======================================================================= spectral

def cloud(n=120, seed=0):
    return make_shape("mug", 2).sample(n, seed)[0].double()


def test_graph_laplacian_matches_scipy_and_knn_laplacian_is_a_normalised_laplacian():
    shape = make_shape("bottle", 0)
    edges = mesh_edges(shape.faces)
    L = graph_laplacian(torch.cat([edges, edges.flip(0)], 1), len(shape.vertices), dtype=D64)
    W = np.zeros((len(shape.vertices),) * 2)
    W[edges[0].numpy(), edges[1].numpy()] = W[edges[1].numpy(), edges[0].numpy()] = 1
    np.testing.assert_allclose(L.numpy(), scipy.sparse.csgraph.laplacian(W, normed=True), atol=1e-12)
    p = cloud()
    Lk = knn_laplacian(p[None], 8)[0]
    torch.testing.assert_close(Lk, Lk.T)
    values = torch.linalg.eigvalsh(Lk)
    assert values.min() > -1e-10 and values.max() < 2 + 1e-10
    W = torch.eye(len(p), dtype=D64) - Lk  # D^-1/2 W D^-1/2
    assert ((W > 0).sum(1) >= 8).all()  # every point keeps its k neighbours


def test_eigenbasis_is_orthogonal_with_mean_square_one_and_signs_canonical():
    p = cloud()
    values, basis = laplacian_eigenbasis(knn_laplacian(p[None], 8), 10)
    torch.testing.assert_close(basis[0].T @ basis[0], len(p) * torch.eye(10, dtype=D64), atol=1e-8, rtol=0)
    assert (values[0, 1:] >= values[0, :-1]).all() and abs(float(values[0, 0])) < 1e-10
    fixed = canonical_signs(basis * torch.tensor([1.0, -1.0] * 5, dtype=D64))
    torch.testing.assert_close(fixed, canonical_signs(basis))
    assert ((fixed ** 3).sum(1) >= 0).all()


def test_hat_weights_interpolate_and_sum_to_one():
    x = torch.linspace(0, 1, 41, dtype=D64)
    h = hat_weights(x, 5)
    torch.testing.assert_close(h.sum(-1), torch.ones_like(x))
    theta = torch.tensor([0.0, 2.0, -1.0, 4.0, 3.0], dtype=D64)
    torch.testing.assert_close(h[::10] @ theta, theta)  # exact at the anchors
    np.testing.assert_allclose((h @ theta).numpy(), np.interp(x.numpy(), np.linspace(0, 1, 5), theta.numpy()))


def test_spectral_conv_ignores_eigenvector_signs_and_gradcheck():
    p = cloud()
    values, basis = laplacian_eigenbasis(knn_laplacian(p[None], 8), 12)
    x = torch.randn(1, len(p), 3, generator=gen(1), dtype=D64)
    conv = SpectralConv(3, 4, 5).double()
    flips = torch.where(torch.rand(12, generator=gen(2)) < 0.5, -1.0, 1.0).to(D64)
    torch.testing.assert_close(conv(x, basis * flips, values), conv(x, basis, values))
    # an index-defined (non-diagonal) spectral operator is not sign invariant: the mismatch problem
    op = torch.randn(12, 12, generator=gen(3), dtype=D64)
    assert (spectral_filter(x, basis * flips, op) - spectral_filter(x, basis, op)).abs().max() > 1e-2
    small = cloud(40)
    values, basis = laplacian_eigenbasis(knn_laplacian(small[None], 6), 8)
    xs = torch.randn(1, 40, 3, generator=gen(4), dtype=D64, requires_grad=True)
    theta = conv.theta.detach().clone().requires_grad_()
    call = lambda x, t: torch.func.functional_call(conv, {"theta": t}, (x, basis, values))  # noqa: E731
    assert torch.autograd.gradcheck(call, (xs, theta))


def test_spectral_filter_with_identity_multipliers_projects_on_the_basis():
    p = cloud()
    _, basis = laplacian_eigenbasis(knn_laplacian(p[None], 8), len(p))
    x = torch.randn(1, len(p), 2, generator=gen(4), dtype=D64)
    eye = torch.eye(2, dtype=D64).expand(1, len(p), 2, 2)
    torch.testing.assert_close(spectral_filter(x, basis, eye), x)  # the full basis: identity
    with pytest.raises(ValueError, match="multipliers must have shape"):
        spectral_filter(x, basis[..., :5], torch.zeros(3, 3))


def test_functional_map_recovers_a_known_change_of_basis():
    p = cloud()
    _, basis = laplacian_eigenbasis(knn_laplacian(p[None], 8), 8)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen(5), dtype=D64))
    descriptors = torch.randn(len(p), 20, generator=gen(6), dtype=D64)
    C = functional_map(basis[0], basis[0] @ q, descriptors, descriptors)
    torch.testing.assert_close(C, q.T, atol=1e-8, rtol=0)


def test_basis_mismatch_same_filter_disagrees_across_samplings():
    shape = make_shape("airplane", 0)
    pa, pb = shape.sample(600, 1)[0], shape.sample(500, 2)[0]
    f = lambda p: p[:, 1] + torch.sin(3 * p[:, 0])  # noqa: E731
    same = basis_mismatch(pa, pa, f(pa), f(pa))
    assert max(same["coefficients"], same["index_filter"], same["smooth_filter"]) < 1e-8 and same["sign_flips"] == 0
    r = basis_mismatch(pa, pb, f(pa), f(pb))
    assert r["coefficients"] > 1.0 and r["sign_flips"] >= 3  # the bases disagree
    assert r["aligned_coefficients"] < 0.3  # a functional map fixes it
    assert r["index_filter"] > 2 * r["smooth_filter"]  # index-defined filters are inconsistent


# ======================================================================= spherical geometry

@pytest.mark.parametrize("L", [2, 5, 8])
def test_quadrature_integrates_polynomials_below_degree_2L(L):
    beta, _ = equiangular_grid(L)
    w = quadrature_weights(L)
    for n in range(2 * L):
        integral = float((w * torch.from_numpy(eval_legendre(n, beta.cos().numpy()))).sum())
        assert abs(integral - (2.0 if n == 0 else 0.0)) < 1e-12


def test_real_harmonics_match_scipy():
    beta = torch.rand(30, generator=gen(0), dtype=D64) * math.pi
    alpha = torch.rand(30, generator=gen(1), dtype=D64) * 2 * math.pi
    Y = real_spherical_harmonics(7, beta, alpha)
    for l in range(7):
        for m in range(-l, l + 1):
            c = sph_harm_y(l, abs(m), beta.numpy(), alpha.numpy()) * (-1) ** abs(m)  # undo Condon-Shortley
            want = c.real if m == 0 else math.sqrt(2) * (c.real if m > 0 else c.imag)
            np.testing.assert_allclose(Y[l * l + l + m].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("L", [4, 8])
def test_sht_round_trip_and_orthonormality(L):
    c = torch.randn(2, 3, L * L, generator=gen(L), dtype=D64)
    torch.testing.assert_close(sht(isht(c, L), L), c, atol=1e-12, rtol=0)
    torch.testing.assert_close(sht(isht(c[..., :4], L), L)[..., :4], c[..., :4], atol=1e-12, rtol=0)
    grid = torch.randn(1, 2 * L, 2 * L, generator=gen(0), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: sht(f, L), (grid,))


def test_pole_rotation_rolls_the_grid_and_keeps_the_power_spectrum():
    L = 6
    c = torch.randn(4, L * L, generator=gen(3), dtype=D64)
    f = isht(c, L)
    for steps in (1, 2, 5):
        torch.testing.assert_close(sht(torch.roll(f, steps, -1), L), rotate_about_pole(c, steps * math.pi / L))
    both = rotate_about_pole(rotate_about_pole(c, 0.3), -0.3)
    torch.testing.assert_close(both, c)
    torch.testing.assert_close(power_spectrum(rotate_about_pole(c, 0.77)), power_spectrum(c))
    assert (rotate_about_pole(c, 0.3) - c).abs().max() > 1e-2


def test_ray_casting_a_sphere_and_a_box():
    import trimesh

    ball = trimesh.creation.icosphere(4, radius=0.8)
    v, f = torch.tensor(ball.vertices), torch.tensor(ball.faces, dtype=torch.int64)
    r = spherical_function_mesh(v, f, 6)
    assert r.shape == (12, 12) and (r - 0.8).abs().max() < 3e-3
    assert (ray_cast_mesh(v, f, grid_directions(3), origin=(5.0, 0.0, 0.0)) == 0).sum() > 0  # rays from outside miss
    box = trimesh.creation.box((1.0, 0.6, 0.4))
    vb, fb = torch.tensor(box.vertices), torch.tensor(box.faces, dtype=torch.int64)
    u = grid_directions(5)
    want = (torch.tensor([0.5, 0.3, 0.2], dtype=D64) / u.abs().clamp_min(1e-12)).amin(-1)  # slab distances
    torch.testing.assert_close(spherical_function_mesh(vb, fb, 5), want, atol=1e-9, rtol=0)
    sdf = lambda p: ((p.abs() - torch.tensor([0.5, 0.3, 0.2])).clamp_min(0).norm(dim=-1)  # noqa: E731
                     + (p.abs() - torch.tensor([0.5, 0.3, 0.2])).amax(-1).clamp_max(0))
    torch.testing.assert_close(spherical_function_sdf(sdf, 5), want.float(), atol=1e-3, rtol=0)


def test_spherical_functions_roll_under_rotations_about_the_pole():
    shape = make_shape("chair", 2)
    L, k = 8, 3
    turned = shape.transformed(rotation_y(2 * math.pi * k / (2 * L)))
    f = spherical_function_mesh(shape.vertices, shape.faces, L)
    torch.testing.assert_close(spherical_function_mesh(turned.vertices, turned.faces, L), torch.roll(f, k, -1),
                               atol=1e-5, rtol=0)
    pts = shape.sample(800, 0)[0].double()
    q = torch.as_tensor(rotation_y(2 * math.pi * k / (2 * L)))
    g = spherical_function_points(pts[None], L)
    torch.testing.assert_close(spherical_function_points((pts @ q.T)[None], L), torch.roll(g, k, -1), atol=1e-9, rtol=0)
    # on a convex shape (a ball of radius 0.8) the cloud version agrees with the ray cast
    ball = torch.nn.functional.normalize(torch.randn(1, 2000, 3, generator=gen(0), dtype=D64), dim=-1) * 0.8
    torch.testing.assert_close(spherical_function_points(ball, L), torch.full((1, 2 * L, 2 * L), 0.8, dtype=D64))


# ======================================================================= spherical layers

def test_zonal_conv_commutes_with_every_rotation_about_the_pole_and_gradcheck():
    L = 6
    conv = SphericalConv(2, 3, L, n_anchors=4).double()
    with torch.no_grad():
        conv.bias.normal_(generator=gen(0))
    x = torch.randn(2, 2, L * L, generator=gen(1), dtype=D64)
    for angle in (0.1, 1.234, math.pi / L):
        torch.testing.assert_close(conv(rotate_about_pole(x, angle)), rotate_about_pole(conv(x), angle))
    # multipliers depend on the degree only: each (l, m) of one degree scaled alike
    w = conv.multipliers()
    assert w.shape == (L, 2, 3)
    xs = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(conv, (xs,))
    with pytest.raises(ValueError, match="coeffs must have shape"):
        conv(torch.zeros(1, 2, 10, dtype=D64))


def test_grid_nonlinearity_is_equivariant_for_grid_steps():
    L = 6
    c = torch.randn(3, L * L, generator=gen(2), dtype=D64)
    step = math.pi / L
    y = grid_nonlinearity(c, L, torch.relu, 3)
    assert y.shape == (3, 9)
    torch.testing.assert_close(grid_nonlinearity(rotate_about_pole(c, 2 * step), L, torch.relu, 3),
                               rotate_about_pole(y, 2 * step), atol=1e-10, rtol=0)
    # off the grid it is only approximately equivariant
    off = grid_nonlinearity(rotate_about_pole(c, step / 2), L) - rotate_about_pole(grid_nonlinearity(c, L), step / 2)
    assert off.abs().max() > 1e-6


# ======================================================================= tangent convolution

def test_tangent_frames_are_rotations_and_images_are_rotation_invariant():
    pts = make_shape("vase", 1).sample(300, 0)[0].double()[None]
    frames, idx = tangent_frames(pts, 12)
    torch.testing.assert_close(frames @ frames.transpose(-1, -2), torch.eye(3, dtype=D64).expand_as(frames))
    assert torch.allclose(torch.linalg.det(frames), torch.ones(1, dtype=D64))
    feats = torch.randn(1, 300, 2, generator=gen(0), dtype=D64)
    images = tangent_images(pts, feats, 12, 5)
    q = torch.as_tensor(random_rotation("so3", gen(1)))
    torch.testing.assert_close(tangent_images(pts @ q.T, feats, 12, 5), images, atol=1e-9, rtol=0)
    # a plane: zero heights, normals along z
    xs = torch.linspace(-1, 1, 12, dtype=D64)
    X, Y = torch.meshgrid(xs, xs, indexing="ij")
    plane = torch.stack([X.flatten(), Y.flatten(), torch.full((144,), 0.5, dtype=D64)], -1)[None]
    assert tangent_images(plane, None, 9, 3).abs().max() < 1e-12
    assert torch.allclose(tangent_frames(plane, 9)[0][..., 2, :], torch.tensor([0.0, 0.0, 1.0], dtype=D64))


def test_tangent_convolution_is_conv2d_at_the_centre_and_gradcheck():
    pts = make_shape("mug", 0).sample(30, 0)[0].double()[None]
    feats = torch.randn(1, 30, 1, generator=gen(2), dtype=D64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=gen(3), dtype=D64, requires_grad=True)
    images = tangent_images(pts, feats, 8, 3)
    got = tangent_convolution(images, w)
    torch.testing.assert_close(got, torch.einsum("bncij,ocij->bno", images, w))
    assert torch.autograd.gradcheck(lambda f, w: tangent_convolution(tangent_images(pts, f, 8, 3), w), (feats, w))
    with pytest.raises(ValueError, match="disagree"):
        tangent_convolution(images, torch.zeros(2, 2, 5, 5, dtype=D64))
    with pytest.raises(ValueError, match="k >= 3"):
        tangent_frames(pts, 2)


# ======================================================================= permutohedral lattice

@pytest.mark.parametrize("d", [1, 2, 3])
def test_splat_weights_are_barycentric_on_lattice_vertices(d):
    p = torch.randn(300, d, generator=gen(d), dtype=D64) * 3
    lat = permutohedral_splat(p, spacing=0.7)
    x = elevate(p / 0.7)
    torch.testing.assert_close(lat.elevated, x)
    torch.testing.assert_close(x.sum(1), torch.zeros(300, dtype=D64), atol=1e-12, rtol=0)
    recon = (lat.weights.unsqueeze(-1) * lat.keys[lat.vertex].double()).sum(1)
    torch.testing.assert_close(recon, x, atol=1e-10, rtol=0)
    assert (lat.weights >= 0).all()
    torch.testing.assert_close(lat.weights.sum(1), torch.ones(300, dtype=D64))
    assert (lat.keys.sum(1) == 0).all() and ((lat.keys - lat.keys[:, :1]) % (d + 1) == 0).all()
    assert all(len(set(row)) == d + 1 for row in lat.vertex.tolist())  # a simplex: d + 1 distinct vertices


@pytest.mark.parametrize("d", [2, 3])
def test_lattice_neighbours_match_a_dictionary(d):
    lat = permutohedral_splat(torch.randn(200, d, generator=gen(0), dtype=D64) * 2)
    nb = lattice_neighbours(lat.keys)
    table = {tuple(k): i for i, k in enumerate(lat.keys.tolist())}
    for i, key in enumerate(lat.keys.tolist()):
        assert nb[i, 0] == i
        for j in range(d + 1):
            step = [(d + 1) * (t == j) - 1 for t in range(d + 1)]
            assert nb[i, 1 + 2 * j] == table.get(tuple(a + s for a, s in zip(key, step)), -1)
            assert nb[i, 2 + 2 * j] == table.get(tuple(a - s for a, s in zip(key, step)), -1)


def test_splat_slice_keeps_constants_and_bcl_gradcheck():
    p = torch.randn(30, 3, generator=gen(1), dtype=D64)
    lat = permutohedral_splat(p, 0.5)
    ones = torch.ones(30, 2, dtype=D64)
    torch.testing.assert_close(slice_lattice(splat(ones, lat), lat), ones)
    f = torch.randn(30, 2, generator=gen(2), dtype=D64, requires_grad=True)
    w = torch.randn(9, 2, 2, generator=gen(3), dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: splat_conv_slice(p, f, w, spacing=0.5), (f, w))
    # the 1-ring convolution equals a neighbour-by-neighbour loop
    xv = splat(f.detach(), lat)
    nb = lattice_neighbours(lat.keys)
    want = torch.stack([sum((xv[n] @ w[t].detach() if n >= 0 else 0) for t, n in enumerate(row.tolist())) for row in nb])
    torch.testing.assert_close(lattice_conv(xv, nb, w.detach()), want)
    with pytest.raises(ValueError, match="d <= 3"):
        permutohedral_splat(torch.zeros(5, 4))
