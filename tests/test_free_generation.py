"""Free generation (lecture 05): 3D-GAN, r-GAN / l-GAN with WGAN-GP, the StructureNet VAE and the table."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from coursekit.data.world import PART_NAMES, make_shape
from coursekit.geometry.voxels import cell_indices
from coursekit.models.generation import free_table, gan_points, gan_voxel, structurenet
from coursekit.models.generation.structurenet import PartTree, StructureNetVAE, layout_shape, part_tree

FAST_VOX = gan_voxel.SIZES["fast"]
FAST_PTS = gan_points.SIZES["fast"]
FAST_SN = structurenet.SIZES["fast"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- shapes and errors

def test_voxel_gan_shapes_and_errors():
    torch.manual_seed(0)
    g = gan_voxel.VoxelGenerator(FAST_VOX["z_dim"], FAST_VOX["channels"])
    d = gan_voxel.VoxelDiscriminator(FAST_VOX["channels"])
    r = FAST_VOX["resolution"]
    x = g(torch.randn(3, FAST_VOX["z_dim"]))
    assert x.shape == (3, 1, r, r, r) and ((x > 0) & (x < 1)).all()
    assert d(x).shape == (3,)
    assert g.sample(2, gen()).shape == (2, 1, r, r, r)
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(3, FAST_VOX["z_dim"] + 1))
    with pytest.raises(ValueError, match="x must have shape"):
        d(torch.rand(2, 1, r // 2, r // 2, r // 2))
    with pytest.raises(ValueError, match="resolution must be"):
        gan_voxel.train_voxel_gan(torch.zeros(2, 1, 8, 8, 8), sizes=dict(FAST_VOX, resolution=8))


def test_point_gan_shapes_and_errors():
    torch.manual_seed(0)
    n = FAST_PTS["n_points"]
    g = gan_points.PointGenerator(FAST_PTS["z_dim"], FAST_PTS["generator"], n)
    c = gan_points.PointCritic(FAST_PTS["critic"], FAST_PTS["critic_fc"])
    ae = gan_points.PointAutoencoder(n, FAST_PTS["encoder"], FAST_PTS["code_dim"], FAST_PTS["decoder"])
    x = g(torch.randn(4, FAST_PTS["z_dim"]))
    assert x.shape == (4, n, 3) and c(x).shape == (4,)
    assert ae.encode(x).shape == (4, FAST_PTS["code_dim"]) and ae(x).shape == (4, n, 3)
    assert g.sample(2, gen()).shape == (2, n, 3)
    perm = torch.randperm(n)
    assert torch.allclose(c(x), c(x[:, perm]), atol=1e-6)  # the PointNet critic is permutation invariant
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        c(torch.full((1, 5, 3), float("nan")))
    with pytest.raises(ValueError, match="points"):
        gan_points.train_r_gan(torch.zeros(2, n + 1, 3), sizes=FAST_PTS)


# ----------------------------------------------------------------------------- objectives

def test_gan_objective_known_values():
    half = torch.zeros(5)  # D = 1/2 everywhere
    assert torch.allclose(gan_voxel.gan_objective(half, half), torch.tensor(2 * math.log(0.5)))
    big = torch.full((5,), 50.0)
    assert gan_voxel.gan_objective(big, -big).abs() < 1e-12  # a perfect D reaches the maximum 0
    assert torch.allclose(gan_voxel.discriminator_loss(half, half), -gan_voxel.gan_objective(half, half))
    assert torch.allclose(gan_voxel.generator_loss(half), torch.tensor(math.log(2.0)))
    assert gan_voxel.discriminator_accuracy(torch.tensor([1.0, -1.0]), torch.tensor([-1.0, -1.0])) == 0.75


def _penalty_brute_force(critic, real, fake, seed, weight):
    """Per sample, on its own: the gradient of D at the same interpolate, its norm, the penalty."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=gen(seed)).to(real)
    terms = []
    for b in range(len(real)):
        x = (eps[b] * real[b] + (1 - eps[b]) * fake[b]).detach().requires_grad_(True)
        grad, = torch.autograd.grad(critic(x[None]).sum(), x)
        terms.append((grad.norm() - 1) ** 2)
    return weight * torch.stack(terms).mean()


def test_gradient_penalty_matches_brute_force_autograd():
    torch.manual_seed(0)
    critic = gan_points.PointCritic((8, 16), (8,)).double()
    real, fake = torch.rand(4, 10, 3, dtype=torch.float64), torch.rand(4, 10, 3, dtype=torch.float64)
    got = gan_points.gradient_penalty(critic, real, fake, gen(3), weight=10.0)
    want = _penalty_brute_force(critic, real, fake, 3, 10.0)
    assert torch.allclose(got, want, rtol=1e-10)
    # a different interpolation draw gives another value (the check sees the epsilons)
    assert not torch.allclose(want, _penalty_brute_force(critic, real, fake, 4, 10.0), rtol=1e-6)
    # closed form for a linear critic D(x) = <w, x>: the gradient is w everywhere
    w = torch.randn(10, 3, dtype=torch.float64)
    linear = lambda x: (x * w).sum((1, 2))  # noqa: E731
    got = gan_points.gradient_penalty(linear, real, fake, gen(0), weight=10.0)
    assert torch.allclose(got, 10.0 * (w.norm() - 1) ** 2)
    # and it is differentiable in the critic's weights (create_graph)
    gan_points.gradient_penalty(critic, real, fake, gen(3)).backward()
    first = critic.point_mlp[0].weight.grad
    assert first is not None and first.abs().sum() > 0  # (the output bias rightly gets none: it has no input gradient)
    with pytest.raises(ValueError, match="same shape"):
        gan_points.gradient_penalty(critic, real, fake[:2])


def test_batchnorm_critic_breaks_the_per_sample_penalty():
    """Why the critic has no BatchNorm: batch statistics couple the samples' gradients."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(30, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)).double()
    critic.eval()  # per-sample reference needs eval mode for batch size 1
    real, fake = torch.rand(4, 10, 3, dtype=torch.float64), torch.rand(4, 10, 3, dtype=torch.float64)
    want = _penalty_brute_force(lambda x: critic(x).reshape(-1), real, fake, 1, 10.0)
    critic.train()
    got = gan_points.gradient_penalty(lambda x: critic(x).reshape(-1), real, fake, gen(1), weight=10.0)
    assert not torch.allclose(got, want, rtol=1e-3)


# ----------------------------------------------------------------------------- one training step

def test_voxel_gan_steps_move_losses_the_expected_way():
    torch.manual_seed(0)
    r = FAST_VOX["resolution"]
    g = gan_voxel.VoxelGenerator(8, (8, 4))
    d = gan_voxel.VoxelDiscriminator((8, 4))
    real = (torch.rand(4, 1, r, r, r) > 0.7).float()
    z = torch.randn(4, 8)
    fake = g(z).detach()
    opt_d = torch.optim.SGD(d.parameters(), lr=0.05)
    before = gan_voxel.discriminator_loss(d(real), d(fake))
    opt_d.zero_grad()
    before.backward()
    opt_d.step()
    assert gan_voxel.discriminator_loss(d(real), d(fake)) < before  # D step: its loss goes down
    opt_g = torch.optim.SGD(g.parameters(), lr=0.05)
    g_before = gan_voxel.generator_loss(d(g(z)))
    opt_g.zero_grad()
    g_before.backward()
    opt_g.step()
    assert gan_voxel.generator_loss(d(g(z))) < g_before  # G step: D is fooled more


def test_wgan_gp_steps_move_losses_the_expected_way():
    torch.manual_seed(0)
    n = 32
    g = gan_points.PointGenerator(8, (16,), n)
    c = gan_points.PointCritic((8, 16), (8,))
    real = torch.rand(6, n, 3)
    z = torch.randn(6, 8)
    fake = g(z).detach()
    opt_c = torch.optim.SGD(c.parameters(), lr=0.01)
    w_before = -gan_points.wasserstein_critic_loss(c(real), c(fake))
    opt_c.zero_grad()
    gan_points.wasserstein_critic_loss(c(real), c(fake)).backward()
    opt_c.step()
    assert -gan_points.wasserstein_critic_loss(c(real), c(fake)) > w_before  # the critic separates more
    opt_g = torch.optim.SGD(g.parameters(), lr=0.01)
    g_before = gan_points.wasserstein_generator_loss(c(g(z)))
    opt_g.zero_grad()
    g_before.backward()
    opt_g.step()
    assert gan_points.wasserstein_generator_loss(c(g(z))) < g_before  # samples score higher


def test_training_loops_run_and_record():
    clouds = torch.stack([make_shape("chair", seed=i).sample(FAST_PTS["n_points"], i)[0] for i in range(8)])
    sizes = dict(FAST_PTS, iterations=2, ae_epochs=2, latent_iterations=3, batch_size=4)
    g, c, hist = gan_points.train_r_gan(clouds, sizes=sizes, generator=gen(), progress=False)
    assert len(hist["g_loss"]) == 2 and g.sample(3, gen()).shape == (3, FAST_PTS["n_points"], 3)
    lgan, hist = gan_points.train_l_gan(clouds, sizes=sizes, generator=gen(), progress=False)
    assert len(hist["ae_loss"]) == 2 and len(hist["g_loss"]) == 3
    assert lgan.sample(2, gen()).shape == (2, FAST_PTS["n_points"], 3)
    vox = gan_voxel.shape_voxels([make_shape("chair", seed=i) for i in range(4)], FAST_VOX["resolution"])
    _, _, hist = gan_voxel.train_voxel_gan(vox, sizes=dict(FAST_VOX, iterations=3), generator=gen(), progress=False)
    assert len(hist["d_acc"]) == 3 and all(0 <= a <= 1 for a in hist["d_acc"])
    _, _, hist = gan_voxel.train_voxel_gan(vox, sizes=dict(FAST_VOX, iterations=3), generator=gen(), progress=False,
                                           throttle=False)
    assert all(hist["d_updated"])


# ----------------------------------------------------------------------------- voxels <-> points

def test_voxels_to_points_lands_in_surface_cells():
    r = 8
    grid = torch.zeros(2, 1, r, r, r)
    grid[0, 0, 2:6, 2:6, 2:6] = 1  # a 4^3 block: its 8 inner cells are not surface
    pts = gan_voxel.voxels_to_points(grid, 500, gen())
    assert pts.shape == (2, 500, 3)
    idx, inside = cell_indices(pts[:1], r)
    assert inside.all()
    d, h, w = idx[..., 0].reshape(-1), idx[..., 1].reshape(-1), idx[..., 2].reshape(-1)
    assert grid[0, 0, d, h, w].bool().all()
    inner = (d >= 3) & (d <= 4) & (h >= 3) & (h <= 4) & (w >= 3) & (w <= 4)
    assert not inner.any()
    assert (pts[1] == 0).all()  # an empty grid gives the origin
    with pytest.raises(ValueError, match="grids must have shape"):
        gan_voxel.voxels_to_points(torch.zeros(2, r, r, r), 10)


# ----------------------------------------------------------------------------- StructureNet

def _leaf_match(a: PartTree, b: PartTree) -> tuple[bool, float]:
    """(same leaf labels as multisets, worst mean-abs box error over Hungarian-matched leaves)."""
    la, lb = a.leaves(), b.leaves()
    same = sorted(a.labels[la].tolist()) == sorted(b.labels[lb].tolist())
    cost = torch.cdist(a.boxes[la], b.boxes[lb], p=1)
    r, c = linear_sum_assignment(cost.numpy())
    return same and len(la) == len(lb), float(cost[r, c].max()) / 6


def _signature(tree: PartTree, node: int = 0):
    return (int(tree.labels[node]), tuple(sorted(_signature(tree, c) for c in tree.children[node])))


def test_part_tree_of_a_world_shape():
    shape = make_shape("chair", seed=0)
    tree = part_tree(shape)
    graph = shape.part_graph
    assert len(tree) == len(graph.names) and tree.height() == 2
    assert [len(c) for c in tree.children] == [len(graph.children(i)) for i in range(len(graph.names))]
    for node in tree.leaves():
        lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in shape.parts[graph.part[node]].bounds())
        assert torch.allclose(tree.boxes[node], torch.cat([(lo + hi) / 2, hi - lo]), atol=1e-6)
    for node, kids in enumerate(tree.children):  # inner boxes contain their children
        for k in kids:
            assert ((tree.boxes[k, :3] - tree.boxes[k, 3:] / 2) >= tree.boxes[node, :3] - tree.boxes[node, 3:] / 2 - 1e-6).all()
            assert ((tree.boxes[k, :3] + tree.boxes[k, 3:] / 2) <= tree.boxes[node, :3] + tree.boxes[node, 3:] / 2 + 1e-6).all()
    legs = tree.children[graph.names.index("leg")]
    e = tree.edges[graph.names.index("leg")]
    for t, relation in enumerate((graph.contact, graph.symmetric)):  # sibling edges = the part graph's relations
        want = {(a, b) for a in range(len(legs)) for b in range(len(legs))
                if a != b and relation[graph.part[legs[a]], graph.part[legs[b]]]}
        assert want and {(a, b) for a, b, tt in e.tolist() if tt == t} == want
    # meshing the true layout gives a shape with one box per part and the right bounding box
    mesh = layout_shape(tree, "chair")
    assert len(mesh.parts) == len(shape.parts)
    assert torch.allclose(mesh.bounding_box, shape.bounding_box, atol=1e-4)
    with pytest.raises(ValueError, match="vocabulary"):
        layout_shape(PartTree(tree.boxes, torch.full_like(tree.labels, 9), tree.children, tree.edges), "chair")


def test_structurenet_encode_decode_round_trip_on_a_world_tree():
    tree = part_tree(make_shape("table", seed=0))
    torch.manual_seed(0)
    sizes = dict(FAST_SN, feature=32, hidden=32, z_dim=16)
    model = StructureNetVAE(len(PART_NAMES["table"]), max(len(c) for c in tree.children), 2, sizes)
    before = model.reconstruct(tree)
    assert _signature(before) != _signature(tree) or _leaf_match(before, tree)[1] > 0.05  # untrained: wrong
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(100):
        loss = model.loss(tree, sample=False)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model.reconstruct(tree)
    assert _signature(out) == _signature(tree)  # same hierarchy and labels
    same, err = _leaf_match(out, tree)
    assert same and err < 0.05, err  # boxes within 5% of the unit ball's radius


def test_structurenet_samples_are_valid_layouts():
    trees = [part_tree(make_shape("chair", seed=i)) for i in range(4)]
    model, hist = structurenet.train_structurenet(trees, 4, sizes=dict(FAST_SN, epochs=1), generator=gen(), progress=False)
    assert set(hist) == {"total", "box", "exist", "label", "leaf", "edge", "kl"}
    samples = model.sample(6, gen(1))
    for t in samples:
        assert torch.isfinite(t.boxes).all() and (t.boxes[:, 3:] >= structurenet.MIN_SIZE).all()
        assert t.labels[0] == -1 and ((t.labels[1:] >= 0) & (t.labels[1:] < 4)).all()
        seen = sorted(c for kids in t.children for c in kids)
        assert seen == list(range(1, len(t)))  # every non-root node has exactly one parent
        assert t.height() <= 2
        for node, e in enumerate(t.edges):
            assert e.dtype == torch.int64 and (e[:, :2] < len(t.children[node])).all() and (e[:, 0] != e[:, 1]).all()
        if t.children[0]:
            shape = layout_shape(t, "chair")
            assert len(shape.parts) == len(t.leaves())
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(torch.zeros(3))


# ----------------------------------------------------------------------------- metrics and table

def test_metrics_rank_real_above_noise():
    shapes = [make_shape("chair", seed=i) for i in range(24)]
    clouds = torch.stack([s.sample(64, i)[0] for i, s in enumerate(shapes)])
    held_out, other_real = clouds[:12], clouds[12:]
    noise = torch.rand(12, 64, 3, generator=gen()) * 2 - 1
    itself = free_table.evaluate_generated(held_out, held_out, 32, gen())
    assert itself["mmd_cd"] == 0 and itself["mmd_emd"] == 0 and itself["cov_cd"] == 1 and itself["jsd"] < 1e-12
    real = free_table.evaluate_generated(other_real, held_out, 32, gen())
    bad = free_table.evaluate_generated(noise, held_out, 32, gen())
    assert real["mmd_cd"] < bad["mmd_cd"] and real["mmd_emd"] < bad["mmd_emd"]
    assert real["cov_cd"] > bad["cov_cd"] and real["1nna_cd"] < bad["1nna_cd"] and bad["1nna_cd"] > 0.9
    assert real["jsd"] < bad["jsd"] and real["fpd"] < bad["fpd"]


def test_free_table_reference_rows():
    table = free_table.free_generation_table(["real (train shapes)", "sphere (trivial)"], progress=False,
                                             sizes=dict(free_table.SIZES["fast"], n_train=8, n_test=8, n_generated=8))
    real, sphere = table.rows
    assert real["model"] == "real (train shapes)" and set(free_table.METRICS) <= set(real)
    assert real["mmd_cd"] < sphere["mmd_cd"] and real["fpd"] < sphere["fpd"]
    assert "sphere (trivial)" in free_table.format_table(table)
    again = free_table.free_generation_table(["real (train shapes)"], data=table.data, progress=False,
                                             sizes=dict(free_table.SIZES["fast"], n_train=8, n_test=8, n_generated=8))
    assert again.rows[0] == {**real, "train_seconds": again.rows[0]["train_seconds"]}  # reused data, same row
    bad = free_table.FreeData("chair", [], [], table.data.train_clouds[:, :5], table.data.test_clouds,
                              table.data.train_voxels, [])
    with pytest.raises(ValueError, match="points"):
        free_table.free_generation_table(["real (train shapes)"], data=bad, progress=False)
    with pytest.raises(ValueError, match="unknown models"):
        free_table.free_generation_table(["VAE"])


# ----------------------------------------------------------------------------- the strong-discriminator ablation

def test_generator_objectives_and_their_gradients_closed_form():
    b = torch.tensor([-12.0, -3.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    sig = torch.sigmoid(b.detach())
    ns, = torch.autograd.grad(gan_voxel.generator_loss(b), b)
    mm, = torch.autograd.grad(gan_voxel.generator_loss(b, "minimax"), b)
    assert torch.allclose(ns, -(1 - sig) / 4) and torch.allclose(mm, -sig / 4)  # d/db of -log s(b) and log(1 - s(b))
    assert abs(float(mm[0])) < 1e-5 < abs(float(ns[0]))  # a confidently rejected sample: only minimax saturates
    assert torch.allclose(gan_voxel.generator_loss(b, "minimax"), torch.log1p(-sig).mean())
    assert not torch.allclose(ns, mm)
    with pytest.raises(ValueError, match="objective"):
        gan_voxel.generator_loss(b, "wasserstein")


def test_gradient_norm_is_the_norm_of_all_gradients_as_one_vector():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
    unused = nn.Parameter(torch.ones(3))  # no gradient: counts as zero
    loss = net(torch.randn(7, 5)).pow(2).sum()
    want = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(net.parameters()), retain_graph=True)]).norm()
    loss.backward()
    got = gan_voxel.gradient_norm([*net.parameters(), unused])
    assert math.isclose(got, float(want), rel_tol=1e-6)
    assert not math.isclose(got, sum(float(p.grad.norm()) for p in net.parameters()), rel_tol=1e-3)  # not a sum of norms
    w = nn.Parameter(torch.zeros(3))
    (w * torch.tensor([3.0, 0.0, 4.0])).sum().backward()  # closed form: the gradient is the constant vector
    assert gan_voxel.gradient_norm([w]) == 5.0


def _first_iteration_by_hand(vox, sizes, seed, g_objective, d_lr_scale):
    """Replays iteration 1 of train_voxel_gan (one D step, unthrottled) and returns ||dL_G/dtheta_G||."""
    gen_ = gen(seed)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen_)))
    g = gan_voxel.VoxelGenerator(sizes["z_dim"], sizes["channels"])
    d = gan_voxel.VoxelDiscriminator(sizes["channels"])
    opt_d = torch.optim.Adam(d.parameters(), lr=sizes["lr_d"] * d_lr_scale, betas=(0.5, 0.999))
    real = vox[torch.randint(len(vox), (sizes["batch_size"],), generator=gen_)]
    fake = g(torch.randn(sizes["batch_size"], sizes["z_dim"], generator=gen_))
    opt_d.zero_grad()
    gan_voxel.discriminator_loss(d(real), d(fake.detach())).backward()
    opt_d.step()
    grads = torch.autograd.grad(gan_voxel.generator_loss(d(fake), g_objective), list(g.parameters()))
    return float(torch.cat([x.reshape(-1) for x in grads]).norm())


@pytest.mark.parametrize("g_objective", ["non_saturating", "minimax"])
def test_history_records_the_generator_gradient_norm(g_objective):
    sizes = dict(FAST_VOX, z_dim=8, channels=(8, 4), batch_size=4, iterations=1)
    vox = gan_voxel.shape_voxels([make_shape("chair", seed=i) for i in range(4)], sizes["resolution"])
    _, _, hist = gan_voxel.train_voxel_gan(vox, sizes=sizes, generator=gen(5), progress=False, throttle=False,
                                           d_lr_scale=5.0, g_objective=g_objective)
    want = _first_iteration_by_hand(vox, sizes, 5, g_objective, 5.0)
    assert math.isclose(hist["g_grad_norm"][0], want, rel_tol=1e-5)
    other = "minimax" if g_objective == "non_saturating" else "non_saturating"
    assert not math.isclose(hist["g_grad_norm"][0], _first_iteration_by_hand(vox, sizes, 5, other, 5.0), rel_tol=1e-3)
    _, _, hist = gan_voxel.train_voxel_gan(vox, sizes=dict(sizes, iterations=3), generator=gen(5), progress=False,
                                           throttle=False, d_steps=3)
    assert hist["d_updated"] == [3, 3, 3] and len(hist["g_grad_norm"]) == 3 and all(0 < f < 1 for f in hist["fake_d"])
    with pytest.raises(ValueError, match="d_steps"):
        gan_voxel.train_voxel_gan(vox, sizes=sizes, d_steps=0, progress=False)
    with pytest.raises(ValueError, match="objective"):
        gan_voxel.train_voxel_gan(vox, sizes=sizes, g_objective="hinge", progress=False)


def test_a_strong_discriminator_starves_the_minimax_generator():
    """The slide's caveat, measured: unthrottled D saturates and the minimax G's gradient vanishes."""
    vox = gan_voxel.shape_voxels([make_shape("chair", seed=i) for i in range(16)], FAST_VOX["resolution"])
    runs = {}
    for strong in (False, True):
        _, _, runs[strong] = gan_voxel.train_voxel_gan(
            vox, sizes=dict(FAST_VOX, iterations=20), generator=gen(1), progress=False, g_objective="minimax",
            throttle=not strong, d_lr_scale=free_table.SIZES["fast"]["d_lr_scale"] if strong else 1.0)
    late = lambda h, k: sorted(h[k][10:])[5]  # noqa: E731  (median of the last 10 iterations)
    assert late(runs[True], "d_acc") == 1.0 and late(runs[False], "d_acc") < 0.95
    assert late(runs[True], "fake_d") < 0.05 < late(runs[False], "fake_d")
    assert late(runs[True], "g_grad_norm") < 0.1 * late(runs[False], "g_grad_norm")
