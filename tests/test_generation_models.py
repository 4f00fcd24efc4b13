"""Conditional generators of lecture 05: PSGN, FoldingNet, AtlasNet, Pixel2Mesh, OGN and their table."""

import math

import pytest
import torch
import torch.nn.functional as F

from coursekit import runtime
from coursekit.geometry.camera import fov_intrinsics, look_at, project
from coursekit.models.generation import atlasnet, conditional_table as ct, folding, ogn, pixel2mesh, psgn


@pytest.fixture(autouse=True)
def fast_profile():
    runtime.set_profile("fast")
    yield
    runtime.set_profile(None)


def _camera(size=32):
    R, t = look_at(torch.tensor([[1.5, 1.0, 2.0]]), torch.zeros(3))
    return fov_intrinsics(50.0, (size, size)), R[0], t[0]


# ------------------------------------------------------------------ PSGN


def test_psgn_shapes_losses_and_spread():
    torch.manual_seed(0)
    model = psgn.PSGN(64)
    pred = model(torch.rand(3, 1, 32, 32))
    assert pred.shape == (3, 64, 3)
    gt = torch.rand(3, 64, 3)
    for kind in ("chamfer", "emd"):
        loss = psgn.psgn_loss(pred, gt, kind)
        loss.backward(retain_graph=True)
        assert loss.dim() == 0 and loss > 0
    with pytest.raises(ValueError, match="kind"):
        psgn.psgn_loss(pred, gt, "l2")
    # spacing: a clumped cloud (half the points on one spot) has a larger CV than a uniform one
    uniform = torch.rand(1, 200, 3)
    clumped = torch.cat([uniform[:, :100], uniform[:, :1].expand(1, 100, 3) + 1e-3 * torch.rand(1, 100, 3)], 1)
    s_u, s_c = psgn.spacing_statistics(uniform), psgn.spacing_statistics(clumped)
    assert s_c["cv"] > s_u["cv"] and s_c["mean_spacing"] < s_u["mean_spacing"]


def test_psgn_overfits_two_shapes_with_cd():
    torch.manual_seed(0)
    images, gt = torch.rand(2, 1, 32, 32), torch.rand(2, 64, 3) - 0.5
    model = psgn.PSGN(64)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(40):
        loss = psgn.psgn_loss(model(images), gt)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


# ------------------------------------------------------------------ FoldingNet


def test_folding_decoder_matches_modules_and_folds_twice():
    torch.manual_seed(0)
    net = folding.FoldingNet("points")
    z = torch.randn(2, net.fold1[0].in_features - 2)
    out = net.decode(z)
    # independent reference with the nn modules
    g = net.grid.expand(2, -1, -1)
    zz = z[:, None].expand(-1, g.shape[1], -1)
    want = net.fold2(torch.cat([zz, net.fold1(torch.cat([zz, g], -1))], -1))
    assert torch.allclose(out, want, atol=1e-6)
    assert not torch.allclose(out, net.fold_once(z), atol=1e-3)
    assert net(torch.rand(2, 50, 3)).shape == (2, net.grid.shape[0], 3)
    assert folding.square_grid(4).shape == (16, 2)
    with pytest.raises(ValueError, match="codeword"):
        folding.folding_decoder(z[0], net.grid, *[torch.zeros(1)] * 8)


def test_balanced_fold_init_unfolds_the_grid_and_trains():
    """Regression (cpu table: CD 63 > class mean 51): with PyTorch's default init the 2 grid columns
    are drowned by the codeword's, every output starts collapsed onto one point and Chamfer training stalls."""
    from coursekit.data.world import make_shape
    from coursekit.metrics.chamfer import chamfer_distance

    layer = torch.nn.Linear(66, 8)
    before = layer.weight.detach().clone()
    folding.balance_fold_init(layer, 64)
    assert torch.allclose(layer.weight[:, :64], before[:, :64])
    assert torch.allclose(layer.weight[:, 64:], before[:, 64:] * math.sqrt(32))
    with pytest.raises(ValueError, match="code size"):
        folding.balance_fold_init(torch.nn.Linear(64, 8), 64)

    pts = torch.stack([make_shape(c, i).sample(256, 0)[0] for i, c in enumerate(["chair", "mug", "airplane", "table"])])
    torch.manual_seed(0)
    net = folding.FoldingNet("points")
    with torch.no_grad():
        spread = float(net(pts).std(1).mean())
    assert spread > 5e-3  # default init: ~8e-4 (all M points on one spot)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(60):
        loss = chamfer_distance(net(pts), pts, "pytorch3d", reduction="mean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2  # default init: 0.27 after the same 60 steps


def test_folding_decoder_gradcheck():
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)  # noqa: E731
    args = (r(2, 3), torch.rand(5, 2, dtype=torch.float64), r(4, 5), r(4), r(3, 4), r(3), r(4, 6), r(4), r(3, 4), r(3))
    assert torch.autograd.gradcheck(folding.folding_decoder, args)


# ------------------------------------------------------------------ AtlasNet


def test_atlasnet_patches_and_mesh():
    uv, faces = atlasnet.square_triangulation(4)
    assert uv.shape == (16, 2) and faces.shape == (18, 3)
    assert uv.min() == 0 and uv.max() == 1
    a, b, c = (torch.cat([uv, torch.zeros(16, 1)], 1)[faces[:, k]] for k in range(3))
    area = 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=-1)
    assert math.isclose(float(area.sum()), 1.0, rel_tol=1e-6)  # the triangles tile the square
    torch.manual_seed(0)
    net = atlasnet.AtlasNet("image", n_points=40)
    images = torch.rand(2, 1, 32, 32)
    assert net(images).shape == (2, 40, 3)
    vertices, mesh_faces = net.mesh(images, m=5)
    assert vertices.shape == (2, net.n_patches * 25, 3)
    assert mesh_faces.shape == (net.n_patches * 32, 3) and int(mesh_faces.max()) == net.n_patches * 25 - 1
    # mesh vertices are the patches evaluated on the grid
    grid, _ = atlasnet.square_triangulation(5)
    assert torch.allclose(vertices.reshape(2, net.n_patches, 25, 3), net.decode(net.encoder(images), grid), atol=1e-6)
    with pytest.raises(ValueError, match="uv"):
        net.decode(torch.zeros(2, 64), torch.zeros(3, 7, 2, 2))


# ------------------------------------------------------------------ Pixel2Mesh


@pytest.mark.parametrize("level", [0, 1, 2])
def test_ico_sphere_is_a_closed_outward_sphere(level):
    v, f = pixel2mesh.ico_sphere(level)
    assert v.shape == (10 * 4 ** level + 2, 3) and f.shape == (20 * 4 ** level, 3)
    assert torch.allclose(v.norm(dim=-1), torch.ones(len(v)), atol=1e-6)
    assert pixel2mesh.euler_characteristic(len(v), f) == 2
    a, b, c = (v[f[:, k]].double() for k in range(3))
    volume = (a * torch.linalg.cross(b, c)).sum() / 6
    assert volume > 0.6 * 4 / 3 * math.pi  # outward winding, close to the ball's volume


def test_subdivide_places_midpoints_and_template_variant():
    v, f = pixel2mesh.ico_sphere(0)
    v2, f2, edges = pixel2mesh.subdivide(v, f)
    assert edges.shape == (30, 2) and v2.shape == (42, 3) and f2.shape == (80, 3)
    assert torch.allclose(v2[12:], 0.5 * (v[edges[:, 0]] + v[edges[:, 1]]))
    assert pixel2mesh.euler_characteristic(42, f2) == 2
    tv, tf, ids = pixel2mesh.template(1, n_templates=3)
    assert pixel2mesh.euler_characteristic(len(tv), tf) == 6  # three spheres
    assert torch.bincount(ids).tolist() == [42, 42, 42]


def test_graph_conv_against_dense_adjacency_and_gradcheck():
    v, f = pixel2mesh.ico_sphere(1)
    edges = pixel2mesh.mesh_edges(f)
    n = len(v)
    adj = torch.zeros(n, n, dtype=torch.float64)
    adj[edges[0], edges[1]] = adj[edges[1], edges[0]] = 1
    x = torch.randn(2, n, 4, dtype=torch.float64, requires_grad=True)
    want = (adj @ x) / adj.sum(1, keepdim=True)
    assert torch.allclose(pixel2mesh.neighbour_mean(x, edges), want)
    conv = pixel2mesh.GraphConv(4, 3).double()
    assert torch.allclose(conv(x, edges), conv.self_weight(x) + conv.neighbour_weight(want))
    assert torch.autograd.gradcheck(lambda t: pixel2mesh.neighbour_mean(t, edges), (x,))


def test_mesh_losses_known_values():
    v, f = pixel2mesh.ico_sphere(1)
    edges = pixel2mesh.mesh_edges(f)
    verts = v[None]
    normals = F.normalize(verts, dim=-1)
    terms = pixel2mesh.mesh_losses(verts, edges, verts, normals, verts)
    assert terms["chamfer"] < 1e-10 and terms["laplacian"] < 1e-12
    lengths2 = ((v[edges[1]] - v[edges[0]]) ** 2).sum(-1)
    assert torch.isclose(terms["edge"], lengths2.mean())
    assert terms["normal"] < 0.1  # edges of a sphere are nearly perpendicular to its normals
    scaled = pixel2mesh.mesh_losses(2 * verts, edges, verts, normals, verts)
    assert scaled["laplacian"] > 1e-3 and scaled["chamfer"] > 0.5


def test_perceptual_pooling_reads_the_projected_pixel():
    K, R, t = _camera(32)
    model = pixel2mesh.Pixel2Mesh(K, R, t, (32, 32))
    u = (torch.arange(32) + 0.5).expand(32, 32)
    feature = torch.stack([u, u.T])[None]  # channel 0 = u of the pixel centre, channel 1 = v
    verts = 0.3 * torch.rand(1, 20, 3)
    got = model.perceptual_features(verts, [feature])
    uv, _ = project(verts, K[None], R[None], t[None])
    assert torch.allclose(got, uv, atol=1e-3)  # bilinear sampling of a linear ramp is exact inside


def test_pixel2mesh_forward_and_topology():
    K, R, t = _camera(32)
    torch.manual_seed(0)
    for n_templates, chi in ((1, 2), (2, 4)):
        model = pixel2mesh.Pixel2Mesh(K, R, t, (32, 32), n_templates=n_templates)
        stages = model.stages(torch.rand(2, 1, 32, 32))
        assert len(stages) == len(model.faces)
        for (before, after), faces in zip(stages, model.faces):
            assert before.shape == after.shape == (2, int(faces.max()) + 1, 3)
            assert pixel2mesh.euler_characteristic(after.shape[1], faces) == chi  # deformation keeps topology
        loss = model.loss(torch.rand(2, 1, 32, 32), torch.rand(2, 50, 3), F.normalize(torch.randn(2, 50, 3), dim=-1))
        loss["total"].backward()
        assert set(loss) == {"chamfer", "normal", "edge", "laplacian", "total"}


# ------------------------------------------------------------------ OGN


def _ball(res, radius=0.6):
    c = (torch.arange(res) + 0.5) / res * 2 - 1
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return (x ** 2 + y ** 2 + z ** 2 <= radius ** 2)[None]


def test_octree_labels_against_brute_force():
    occ = torch.rand(2, 16, 16, 16) > 0.9
    occ |= _ball(16)
    labels = ogn.octree_labels(occ, 4)
    assert [tuple(lab.shape) for lab in labels] == [(2, 4, 4, 4), (2, 8, 8, 8), (2, 16, 16, 16)]
    for lab in labels:
        k = 16 // lab.shape[1]
        for b, z, y, x in [(0, 1, 2, 3), (1, 0, 0, 0), (0, lab.shape[1] // 2, lab.shape[1] // 2, lab.shape[1] // 2)]:
            block = occ[b, z * k:(z + 1) * k, y * k:(y + 1) * k, x * k:(x + 1) * k]
            want = ogn.EMPTY if not block.any() else ogn.FILLED if block.all() else ogn.MIXED
            assert lab[b, z, y, x] == want
    assert (labels[-1] != ogn.MIXED).all()
    with pytest.raises(ValueError, match="power of two"):
        ogn.octree_labels(torch.zeros(1, 12, 12, 12, dtype=torch.bool), 4)


def test_ogn_expands_only_mixed_cells_and_decodes_exactly():
    torch.manual_seed(0)
    model = ogn.OGN()
    occ = _ball(model.resolution).expand(2, -1, -1, -1)
    labels = ogn.octree_labels(occ, model.base)
    levels = model(torch.rand(2, 1, 32, 32), labels)
    for level in range(1, model.levels):
        assert len(levels[level].cells) == 8 * int((labels[level - 1] == ogn.MIXED).sum())
    loss = ogn.ogn_loss(levels, labels)
    loss.backward()
    # perfect logits (one-hot of the labels) decode to the input grid exactly
    perfect = [ogn.OctreeLevel(lv.cells, F.one_hot(lab[lv.cells[:, 0], lv.cells[:, 1], lv.cells[:, 2], lv.cells[:, 3]], 3).float())
               for lv, lab in zip(levels, labels)]
    assert torch.equal(model.occupancy(perfect, 2), occ)
    # the octree holds far fewer cells than the dense grid of the finest level
    assert sum(len(lv.cells) for lv in levels) < 0.5 * occ.numel()


def test_octree_memory_grows_slower_than_dense():
    def ratio(res_lo, res_hi):
        out = {}
        for res in (res_lo, res_hi):
            levels = int(math.log2(res // 4)) + 1
            model = ogn.OGN({**ogn.SIZES["fast"], "levels": levels})
            occ = _ball(res)
            labels = ogn.octree_labels(occ, 4)
            octree = ogn.activation_bytes(model, torch.rand(1, 1, 32, 32), labels)
            dense = ogn.activation_bytes(ogn.DenseVoxelDecoder(64, res, 32), torch.rand(1, 64))
            out[res] = (octree, dense)
        return out[res_hi][0] / out[res_lo][0], out[res_hi][1] / out[res_lo][1]
    octree_growth, dense_growth = ratio(16, 32)
    assert dense_growth > 6 and octree_growth < 0.7 * dense_growth


# ------------------------------------------------------------------ the table


def test_score_points_and_baselines():
    x = torch.rand(2, 32, 3)
    s = ct.score_points(x, x, 0.05)
    assert torch.allclose(s.cd, torch.zeros(2, dtype=torch.float64)) and (s.fscore == 1).all() and (s.emd < 1e-7).all()
    far = ct.score_points(x + 1.0, x, 0.05)
    assert (far.cd > 1e3).all() and (far.fscore == 0).all()


def test_row_epochs_override_the_profile_epochs_of_their_row_only():
    sizes = {**ct.SIZES["fast"], "epochs": 1, "batch_size": 2, "row_epochs": {"FoldingNet": 2}}
    train = ct.make_reconstruction_set(("mug",), 2, n_points=64, image_size=32, resolution=16, progress=False)
    assert ct.train_model("FoldingNet", train, sizes, progress=False)[1]["epochs"] == 2
    assert ct.train_model("PSGN (CD)", train, sizes, progress=False)[1]["epochs"] == 1


def test_conditional_table_runs_and_baselines_are_ordered():
    sizes = {**ct.SIZES["fast"], "classes": ("chair", "mug"), "n_train": 2, "n_test": 1, "n_points": 96, "epochs": 1,
             "batch_size": 4, "models": ("PSGN (CD)", "OGN", "FoldingNet")}
    result = ct.conditional_table(sizes, progress=False)
    names = [(r["task"], r["model"]) for r in result["rows"]]
    assert ("image", "PSGN (CD)") in names and ("image", "OGN") in names and ("completion", "FoldingNet") in names
    assert ("image", "AtlasNet") not in names
    rows = {(r["task"], r["model"]): r for r in result["rows"]}
    for task in ("image", "completion"):
        assert rows[(task, "class mean shape")]["CD x1e3"] < rows[(task, "sphere")]["CD x1e3"]
    assert result["predictions"]["image/OGN"].shape == (2, 96, 3)
    assert "| image | PSGN (CD) |" in ct.format_table(result)
    with pytest.raises(ValueError, match="unknown model"):
        ct.train_model("NeRF", result["train"], sizes, progress=False)
