"""The point and graph classifiers of issue #7: shapes, invariances, PointNet's critical points,
deformable KPConv at zero offsets, density stability against PointNet++, and input errors.

Invariance tests run in float64 and ``eval()`` mode (BatchNorm is then a fixed affine map, and
dropout is off), on the ``fast`` profile sizes or smaller hand-made ones.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit import runtime
from coursekit.models import dgcnn, kpconv, pcnn, pointconv, pointnet, pointnet2, rscnn
from coursekit.models.dgcnn import DGCNN
from coursekit.models.kpconv import KPConvNet
from coursekit.models.pcnn import PCNN
from coursekit.models.pointconv import PointConvNet
from coursekit.models.pointnet import PointNet, critical_points, upper_bound_shape
from coursekit.models.pointnet2 import PointNet2
from coursekit.models.rscnn import RSCNN
from coursekit.nn.set_abstraction import neighbourhoods
from coursekit.nn.tnet import orthogonality_loss

D = torch.float64
FAST = {"pointnet": pointnet.SIZES["fast"], "pointnet2": pointnet2.SIZES["fast"], "dgcnn": dgcnn.SIZES["fast"],
        "rscnn": rscnn.SIZES["fast"], "pointconv": pointconv.SIZES["fast"], "kpconv": kpconv.SIZES["fast"],
        "pcnn": pcnn.SIZES["fast"]}
BUILDERS = {
    "PointNet": lambda c: PointNet(5, c, sizes=FAST["pointnet"]),
    "PointNet++ SSG": lambda c: PointNet2(5, c, "ssg", sizes=FAST["pointnet2"]),
    "PointNet++ MSG": lambda c: PointNet2(5, c, "msg", sizes=FAST["pointnet2"]),
    "DGCNN": lambda c: DGCNN(5, c, sizes=FAST["dgcnn"]),
    "RS-CNN": lambda c: RSCNN(5, c, sizes=FAST["rscnn"]),
    "PointConv": lambda c: PointConvNet(5, c, sizes=FAST["pointconv"]),
    "KPConv": lambda c: KPConvNet(5, c, sizes=FAST["kpconv"]),
    "KPConv deformable": lambda c: KPConvNet(5, c, sizes=FAST["kpconv"], deformable=True),
    "PCNN": lambda c: PCNN(5, c, sizes=FAST["pcnn"]),
}


def unit_sphere(b, n, seed=0, skew=0.0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(b):
        pts, have = [], 0
        while have < n:
            p = torch.randn(4 * n, 3, generator=gen, dtype=D)
            p = p / p.norm(dim=-1, keepdim=True)
            w = torch.exp(skew * p[:, 2])
            p = p[torch.rand(4 * n, generator=gen, dtype=D) < w / w.max()]
            pts.append(p)
            have += len(p)
        out.append(torch.cat(pts)[:n])
    return torch.stack(out)


def blob(b, n, seed=0):
    """Irregular clouds inside the unit ball (so no two models see a symmetric input)."""
    gen = torch.Generator().manual_seed(seed)
    pts = torch.randn(b, n, 3, generator=gen, dtype=D) * torch.tensor([0.6, 0.35, 0.2], dtype=D)
    return pts / pts.norm(dim=-1).amax(1, keepdim=True)[..., None]


def seeded(build, seed=0):
    torch.manual_seed(seed)
    return build()


# ------------------------------------------------------------------ shapes, training step, sizes

@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("in_channels", [0, 3])
def test_models_give_logits_and_train(name, in_channels):
    model = seeded(lambda: BUILDERS[name](in_channels))
    points = blob(3, 128, seed=1).float()
    features = torch.randn(3, 128, in_channels) if in_channels else None
    logits = model(points, features)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])) + model.regularizer()
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    model.eval()
    with torch.no_grad():
        assert model(points[:1], None if features is None else features[:1]).shape == (1, 5)


@pytest.mark.parametrize("module", [pointnet, pointnet2, dgcnn, rscnn, pointconv, kpconv, pcnn])
def test_size_tables_cover_every_profile_with_the_same_fields(module):
    assert set(module.SIZES) == set(runtime.PROFILES)
    assert len({frozenset(entry) for entry in module.SIZES.values()}) == 1
    assert module.SIZES["fast"]["n_points"] < module.SIZES["cpu"]["n_points"] <= module.SIZES["gpu"]["n_points"] == 1024


def test_models_read_the_active_profile():
    try:
        runtime.set_profile("fast")
        fast = sum(p.numel() for p in PointNet(5).parameters())
        runtime.set_profile("gpu")
        paper = PointNet(5)
        assert paper.mlp2.out_channels == 1024 and paper.feature_tnet.k == 64
        assert fast < sum(p.numel() for p in paper.parameters()) / 50
    finally:
        runtime.set_profile(None)


# ------------------------------------------------------------------ permutation invariance

SMALL_PN2 = dict(n_points=40, dropout=dict(ssg=0.5, msg=0.6), head=(8,), global_mlp=(8, 16),
                 ssg=[dict(n_centres=12, radius=0.6, n_samples=40, mlp=(8, 8)),
                      dict(n_centres=4, radius=1.2, n_samples=12, mlp=(8, 16))],
                 msg=[dict(n_centres=12, scales=[(0.4, 40, (8,)), (0.8, 40, (8,))]),
                      dict(n_centres=4, scales=[(0.8, 12, (8,)), (1.6, 12, (8,))])])
"""n_samples >= the points searched at every level: no ball is over-full."""


def _invariant(model, points, perm):
    model = model.double().eval()
    with torch.no_grad():
        return model(points), model(points[:, perm])


PERMUTATION = st.permutations(list(range(40)))


@settings(max_examples=6, deadline=None)
@given(perm=PERMUTATION)
def test_pointnet_is_permutation_invariant(perm):
    a, b = _invariant(seeded(lambda: PointNet(5, sizes=FAST["pointnet"])), blob(2, 40, seed=2), perm)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@settings(max_examples=6, deadline=None)
@given(perm=PERMUTATION, variant=st.sampled_from(["ssg", "msg"]), grouping=st.sampled_from(["ball", "knn"]))
def test_pointnet2_is_permutation_invariant_without_overfull_balls(perm, variant, grouping):
    """Farthest-from-centroid FPS start + balls that hold every in-range point (or kNN): exact."""
    model = seeded(lambda: PointNet2(5, variant=variant, sizes=SMALL_PN2, grouping=grouping))
    a, b = _invariant(model, blob(2, 40, seed=3), perm)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@settings(max_examples=6, deadline=None)
@given(perm=PERMUTATION)
def test_dgcnn_is_permutation_invariant(perm):
    a, b = _invariant(seeded(lambda: DGCNN(5, sizes=FAST["dgcnn"])), blob(2, 40, seed=4), perm)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_pointnet2_original_rules_depend_on_the_order():
    """What the invariant configuration avoids: the paper's FPS start at index 0, and over-full balls
    that keep the first S points in index order, both make the output order-dependent."""
    points = blob(2, 128, seed=5)
    perm = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    a, b = _invariant(seeded(lambda: PointNet2(5, sizes=FAST["pointnet2"], start=0)), points, perm)
    assert not torch.allclose(a, b, atol=1e-6)
    overfull = dict(SMALL_PN2, ssg=[dict(SMALL_PN2["ssg"][0], n_samples=4), SMALL_PN2["ssg"][1]])
    a, b = _invariant(seeded(lambda: PointNet2(5, sizes=overfull)), blob(2, 40, seed=3), torch.arange(40).flip(0))
    assert not torch.allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------ critical points and upper-bound shape

def _pointnet_and_cloud():
    model = seeded(lambda: PointNet(5, sizes=FAST["pointnet"])).double().eval()
    return model, blob(1, 64, seed=6)


def test_critical_points_alone_give_the_same_global_feature():
    model, points = _pointnet_and_cloud()
    crit = critical_points(model, points)[0]
    channels = sum(s.shape[-1] for s in model.encode(points).stage_features)
    assert crit.dtype == torch.int64 and 0 < len(crit) <= min(64, channels) and len(crit) < 64
    with torch.no_grad():
        torch.testing.assert_close(model(points[:, crit]), model(points), rtol=0, atol=1e-12)
        # a point that is the clear maximum of some main channel matters
        top2 = model.encode(points).point_features[0].topk(2, dim=0)
        channel = int((top2.values[0] - top2.values[1]).argmax())
        winner = int(top2.indices[0, channel])
        assert winner in crit.tolist()
        rest = torch.tensor([i for i in range(64) if i != winner])
        assert not torch.allclose(model(points[:, rest]), model(points), atol=1e-9)


GRID = torch.stack(torch.meshgrid(*[torch.linspace(-1.2, 1.2, 13, dtype=D)] * 3, indexing="ij"), -1).reshape(-1, 3)


@settings(max_examples=8, deadline=None)
@given(which=st.integers(0, 10 ** 6), where=st.integers(0, 10 ** 6))
def test_moving_a_non_critical_point_inside_the_upper_bound_shape_changes_nothing(which, where):
    model, points = _pointnet_and_cloud()
    crit = set(critical_points(model, points)[0].tolist())
    inside = upper_bound_shape(model, points, GRID)[0]
    assert 0 < int(inside.sum()) < len(GRID)
    free = [i for i in range(64) if i not in crit]
    moved = points.clone()
    moved[0, free[which % len(free)]] = GRID[inside][where % int(inside.sum())]
    with torch.no_grad():
        torch.testing.assert_close(model(moved), model(points), rtol=0, atol=1e-12)


def test_moving_a_point_outside_the_upper_bound_shape_changes_the_output():
    model, points = _pointnet_and_cloud()
    crit = set(critical_points(model, points)[0].tolist())
    outside = GRID[~upper_bound_shape(model, points, GRID)[0]]
    free = [i for i in range(64) if i not in crit]
    moved = points.clone()
    moved[0, free[0]] = outside[0]
    with torch.no_grad():
        assert not torch.allclose(model(moved), model(points), atol=1e-9)


def test_upper_bound_shape_errors():
    model, points = _pointnet_and_cloud()
    with pytest.raises(ValueError, match="grid"):
        upper_bound_shape(model, points, GRID.unsqueeze(0).expand(2, -1, -1))
    with pytest.raises(ValueError, match="without extra input features"):
        upper_bound_shape(PointNet(5, 3, sizes=FAST["pointnet"]), points, GRID)


def test_critical_points_restore_training_mode():
    model, points = _pointnet_and_cloud()
    model.train()
    critical_points(model, points)
    assert model.training


# ------------------------------------------------------------------ regularisers

def test_pointnet_regularizer_is_the_weighted_orthogonality_loss_of_the_last_pass():
    model = seeded(lambda: PointNet(5, sizes=FAST["pointnet"])).double()
    points = blob(4, 64, seed=7)
    model(points)
    assert float(model.regularizer().detach()) == 0.0  # both T-Nets start as the identity
    with torch.no_grad():
        model.feature_tnet.out.weight.normal_(std=0.1)
    model(points)
    enc = model.encode(points)
    expected = 0.001 * orthogonality_loss(enc.feature_transform)
    torch.testing.assert_close(model.regularizer(), expected)
    model.regularizer().backward()
    assert model.feature_tnet.out.weight.grad.abs().sum() > 0
    plain = PointNet(5, sizes=FAST["pointnet"], feature_transform=False)
    plain(points.float())
    assert plain.feature_tnet is None and float(plain.regularizer().detach()) == 0.0


def test_deformable_kpconv_net_with_zero_offsets_equals_the_rigid_one():
    rigid = seeded(lambda: KPConvNet(5, sizes=FAST["kpconv"])).double().eval()
    deform = seeded(lambda: KPConvNet(5, sizes=FAST["kpconv"], deformable=True)).double().eval()
    missing = deform.load_state_dict(rigid.state_dict(), strict=False).missing_keys
    assert missing and all(".offset." in key for key in missing)
    points = blob(2, 128, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(deform(points), rigid(points), rtol=0, atol=1e-12)
        assert float(rigid.regularizer()) == 0.0 and float(deform.regularizer()) > 0  # fitting loss at rest
        deform.levels[-1].convs[0].offset.bias.normal_(std=0.5)  # offsets of half a sigma
        assert not torch.allclose(deform(points), rigid(points), atol=1e-6)


# ------------------------------------------------------------------ density stability against PointNet++

def _density_shift(conv, radius, samples, n=512, draws=24, skew=2.0, seed=0):
    """Mean response at 24 fixed centres on the sphere: shift between uniform and exp(2z)-weighted
    sampling, relative to the variation of the response across centres (0 = sample-invariant)."""
    centres = unit_sphere(1, 24, seed=99).expand(draws, -1, -1)
    means = []
    for i, s in enumerate((0.0, skew)):
        pts = unit_sphere(draws, n, seed=seed + 1000 * i, skew=s)
        idx, valid = neighbourhoods(pts, centres, samples, radius)
        with torch.no_grad():
            means.append(conv(pts, None, centres, idx, valid).mean(0))
    uniform, skewed = means
    return float((skewed - uniform).norm(dim=-1).mean() / (uniform - uniform.mean(0)).norm(dim=-1).mean())


def test_pointconv_first_level_is_more_stable_under_density_change_than_pointnet2():
    """The two models' own first-level operators (fast sizes, r = 0.4, 16 samples, untrained, seeded),
    fed the same pair of samplings of the unit sphere at the same centres.

    Measured for seeds 0-3: PointConv 0.40-0.44, PointNet++ 0.70-1.04. NOT claimed: stability of
    the whole untrained network's global feature — there farthest point sampling already spreads
    the centres evenly and the global max pool hides the difference (relative shift of the global
    feature, seeds 0-2: PointConv 0.055-0.083, PointNet++ SSG 0.069-0.075).
    """
    pc = seeded(lambda: PointConvNet(5, sizes=FAST["pointconv"])).double().eval()
    pn = seeded(lambda: PointNet2(5, sizes=FAST["pointnet2"])).double().eval()
    spec_pc, spec_pn = FAST["pointconv"]["levels"][0], FAST["pointnet2"]["ssg"][0]
    assert (spec_pc["radius"], spec_pc["n_samples"]) == (spec_pn["radius"], spec_pn["n_samples"])
    shift_pc = _density_shift(pc.levels[0].convs[0], spec_pc["radius"], spec_pc["n_samples"])
    shift_pn = _density_shift(pn.levels[0].convs[0], spec_pn["radius"], spec_pn["n_samples"])
    assert shift_pc < 0.75 * shift_pn, (shift_pc, shift_pn)


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("name", list(BUILDERS))
def test_models_reject_bad_input(name):
    model = seeded(lambda: BUILDERS[name](0)).eval()
    with pytest.raises(ValueError, match=r"shape \(B, N, 3\)"):
        model(torch.rand(2, 128, 2))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((2, 128, 3), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        model(torch.rand(2, 0, 3))
    with pytest.raises((ValueError, TypeError)):
        model(torch.rand(2, 128, 3), torch.rand(2, 127, 3))


def test_too_few_points_are_named():
    with pytest.raises(ValueError, match="n_centres"):
        PointNet2(5, sizes=FAST["pointnet2"]).eval()(torch.rand(1, 20, 3))
    with pytest.raises(ValueError, match="at least 8 points"):
        DGCNN(5, sizes=FAST["dgcnn"]).eval()(torch.rand(1, 6, 3))
    with pytest.raises(ValueError, match="variant"):
        PointNet2(5, variant="mrg")
    with pytest.raises(ValueError, match="grouping"):
        PointNet2(5, grouping="radius")
    with pytest.raises(ValueError, match="expects features"):
        PointNet(5, 3, sizes=FAST["pointnet"])(torch.rand(1, 20, 3))
