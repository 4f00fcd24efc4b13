"""The live classification table: its columns and numbers, the perturbations behind the robustness
columns, the representations every model reads, and the published numbers it prints beside ours."""

import math

import pytest
import torch
from torch import nn

from coursekit import runtime
from coursekit.data import representations as rep
from coursekit.data.mesh_io import save_mesh
from coursekit.data.world import make_shape
from coursekit.geometry.voxels import voxelize_points
from coursekit.models import classification_table as ct

TINY = dict(classes=("chair", "mug", "table"), n_train=3, n_test=2, n_points=128, epochs=1, batch_size=8)


@pytest.fixture(autouse=True)
def fast_profile():
    runtime.set_profile("fast")
    yield
    runtime.set_profile(None)


@pytest.fixture(scope="module")
def tiny_table():
    runtime.set_profile("fast")
    try:
        return ct.classification_table(["PointNet", "VoxNet", "Spectral CNN"], sizes=TINY, progress=False)
    finally:
        runtime.set_profile(None)


class ConstantLogits(nn.Module):
    """A broken classifier: the same logits whatever the input (only a bias to train)."""

    def __init__(self, n_classes):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, points):
        return self.bias.expand(points.shape[0], -1)


CONSTANT = ct.ModelEntry("constant", ConstantLogits, lambda m, p: (p,), lambda m, n: f"{n} points", lambda s: 64)


# ---------------------------------------------------------------- the table

def test_tiny_table_has_every_column_with_sane_values(tiny_table):
    assert [r["model"] for r in tiny_table.rows] == ["PointNet", "VoxNet", "Spectral CNN"]
    for row in tiny_table.rows:
        assert set(k for k, _ in ct.COLUMNS) <= set(row)
        for key in ("accuracy", "mean_class_accuracy", "drop", "noise", "rotation"):
            assert 0.0 <= row[key] <= 1.0, (row["model"], key, row[key])
        assert row["train_seconds"] > 0 and row["train_cpu_seconds"] > 0
        model = tiny_table.models[row["model"]]
        assert row["parameters"] == sum(p.numel() for p in model.parameters()) > 1000
        # the table's accuracy is recomputed from its own predictions
        pred = tiny_table.predictions[row["model"]]
        assert set(pred) == set(ct.CONDITIONS)
        assert row["accuracy"] == pytest.approx(float((pred["clean"] == tiny_table.labels).double().mean()))
        assert row["drop"] == pytest.approx(float((pred["drop"] == tiny_table.labels).double().mean()))
    assert tiny_table.labels.shape == (6,) and tiny_table.class_names == TINY["classes"]
    assert tiny_table.row("VoxNet")["representation"] == "occupancy 16³ (128 points)"
    assert tiny_table.confusion("PointNet").sum() == 6
    assert tiny_table.column("parameters") == [r["parameters"] for r in tiny_table.rows]
    with pytest.raises(KeyError, match="no row"):
        tiny_table.row("ResNet-50")


def test_format_table_puts_ours_beside_the_published_numbers_with_their_kinds(tiny_table):
    text = ct.format_table(tiny_table)
    for _, header in ct.COLUMNS:
        assert header in text
    assert "OA = overall accuracy, mAcc = mean class accuracy" in text
    assert "mAcc 86.2" in text and "OA 89.2" in text and "re-run OA 88.3" in text  # PointNet's row
    assert "mAcc 83.0" in text and "OA 85.9" in text                                # VoxNet's row
    assert "| 3D ShapeNets | mAcc 77.3" in text                                     # published-only rows
    pointnet_line = next(line for line in text.splitlines() if line.startswith("| PointNet |"))
    assert f"{100 * tiny_table.row('PointNet')['accuracy']:.1f}" in pointnet_line
    assert "published" not in str(tiny_table)  # ours only


def test_a_broken_model_scores_chance_exactly():
    table = ct.classification_table([CONSTANT], sizes=TINY, progress=False)
    row = table.row("constant")
    k = len(TINY["classes"])
    for key in ("accuracy", "mean_class_accuracy", "drop", "noise", "rotation"):
        assert row[key] == pytest.approx(1 / k), key  # one class predicted for every cloud of a balanced set
    assert row["parameters"] == k


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown model 'ResNet-50'"):
        ct.classification_table(["ResNet-50"], sizes=TINY, progress=False)
    with pytest.raises(ValueError, match="unknown sizes"):
        ct.classification_table(["PointNet"], sizes=dict(TINY, n_epochs=3), progress=False)
    with pytest.raises(ValueError, match="duplicate"):
        ct.classification_table(["PointNet", "PointNet"], sizes=TINY, progress=False)


def test_every_entry_builds_and_reads_the_clouds_it_is_given():
    clouds = torch.stack([make_shape(c, 0).sample(256, 0)[0] for c in ("chair", "mug")])
    sizes = dict(ct.SIZES["fast"], n_points=256)
    for entry in ct.ENTRIES.values():
        torch.manual_seed(0)
        model = entry.build(4).eval()
        n = entry.n_points(sizes)
        inputs = entry.prepare(model, rep.first_points(clouds, n))
        with torch.no_grad():
            assert model(*inputs).shape == (2, 4), entry.name
        assert entry.describe(model, n)
        assert entry.published is None or entry.published in ct.PUBLISHED


def test_modelnet_folder_runs_the_same_table(tmp_path):
    for name in ("bottle", "lamp"):
        for split, count in (("train", 2), ("test", 1)):
            for i in range(count):
                shape = make_shape(name, hash((split, i)) % 1000)
                (tmp_path / name / split).mkdir(parents=True, exist_ok=True)
                save_mesh(tmp_path / name / split / f"{name}_{i:04d}.off", shape.vertices, shape.faces)
    table = ct.classification_table(["PointNet"], sizes=dict(TINY, classes=None), progress=False, root=tmp_path)
    assert table.class_names == ("bottle", "lamp")
    assert "ModelNet folder" in table.dataset and "4 training and 2 test" in table.dataset
    assert table.labels.tolist() == [0, 1]


def test_the_table_feeds_each_model_perturbed_copies_of_the_same_test_clouds():
    points = cloud(b=3, n=600)
    g = torch.Generator().manual_seed(0)
    perturb = {"scores": torch.rand(3, 600, generator=g), "noise": torch.randn(3, 600, 3, generator=g),
               "angles": 2 * math.pi * torch.rand(3, generator=g, dtype=torch.float64)}
    small, large = ct._perturbed(points, 200, perturb), ct._perturbed(points, 400, perturb)
    assert set(small) == set(ct.CONDITIONS)
    assert torch.equal(small["clean"], points[:, :200])
    assert small["drop"].shape == (3, 100, 3) and large["drop"].shape == (3, 200, 3)
    assert (small["noise"] - small["clean"]).std().item() == pytest.approx(0.01, rel=0.1)
    torch.testing.assert_close(large["noise"][:, :200], small["noise"])          # the same noise for every model
    torch.testing.assert_close(small["rotation"][..., 1], small["clean"][..., 1])
    torch.testing.assert_close(large["rotation"][:, :200], small["rotation"])    # the same angle for every model
    assert not torch.allclose(small["rotation"], small["clean"])


# ---------------------------------------------------------------- metrics and published numbers

def test_mean_class_accuracy_weights_classes_not_samples():
    target = torch.tensor([0, 0, 0, 0, 1, 2])
    pred = torch.tensor([0, 0, 0, 0, 0, 0])
    assert ct.mean_class_accuracy(pred, target, 3) == pytest.approx(1 / 3)  # OA would be 4 / 6
    assert ct.mean_class_accuracy(target, target, 4) == 1.0                 # absent class 3 ignored
    with pytest.raises(ValueError, match="no samples"):
        ct.mean_class_accuracy(target[:0], target[:0], 3)


def test_published_numbers_carry_their_metric_kind():
    def values(method, kind):
        return [p.value for p in ct.PUBLISHED[method] if p.kind == kind and not p.rerun]

    assert values("3D ShapeNets", "mAcc") == [77.3] and values("3D ShapeNets", "OA") == [84.7]
    assert values("VoxNet", "mAcc") == [83.0] and values("VoxNet", "OA") == [85.9]
    assert values("PointNet", "OA") == [89.2] and values("PointNet", "mAcc") == [86.2]
    assert values("DGCNN", "OA") == [92.2] and values("DGCNN", "mAcc") == [90.2]
    assert values("PointConv", "OA") == [92.5] and values("KPConv", "OA") == [92.9]
    assert values("PointNet++ MSG", "OA") == [91.9]
    assert 90.1 in values("MVCNN", "mAcc")
    assert all(p.kind in ("OA", "mAcc", "unstated") for records in ct.PUBLISHED.values() for p in records)
    with pytest.raises(ValueError, match="kind"):
        ct.Published(90.0, "accuracy", "somewhere")


# ---------------------------------------------------------------- the perturbations

def cloud(b=2, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(b, n, 3, generator=g), dim=-1) * torch.rand(b, n, 1, generator=g)


def test_drop_keeps_half_of_the_points_and_only_original_ones():
    points = cloud(n=1000)
    kept = rep.drop_points(points, 0.5, torch.Generator().manual_seed(1))
    assert kept.shape == (2, 500, 3)
    for b in range(2):
        same = (kept[b, :, None] == points[b, None]).all(-1)   # (500, 1000)
        assert (same.sum(1) == 1).all()                           # every kept point is one original point
        assert len(torch.unique(same.float().argmax(1))) == 500   # ... and a different one
    again = rep.drop_points(points, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(kept, again)
    assert not torch.equal(kept, points[:, :500])
    # the same random keys drop the same points from clouds cut to different sizes
    scores = torch.rand(2, 1000, generator=torch.Generator().manual_seed(2))
    small = rep.drop_points(points[:, :400], 0.5, scores=scores)
    assert small.shape == (2, 200, 3)
    with pytest.raises(ValueError, match="keep"):
        rep.drop_points(points, 0.0)


def test_noise_has_the_requested_standard_deviation():
    points = cloud()
    noisy = rep.jitter(points, 0.01, torch.Generator().manual_seed(3))
    delta = noisy - points
    assert delta.std().item() == pytest.approx(0.01, rel=0.03)
    assert delta.mean().abs().item() < 1e-3
    assert torch.equal(rep.jitter(points, 0.0, torch.Generator().manual_seed(3)), points)
    with pytest.raises(ValueError, match="sigma"):
        rep.jitter(points, -0.1)


def test_rotation_about_up_keeps_heights_and_norms_and_moves_the_rest():
    points = cloud()
    turned = rep.rotate_about_up(points, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(turned[..., 1], points[..., 1])
    torch.testing.assert_close(turned.norm(dim=-1), points.norm(dim=-1))
    torch.testing.assert_close(turned[..., [0, 2]].norm(dim=-1), points[..., [0, 2]].norm(dim=-1))
    assert (turned - points).abs().max() > 0.1
    quarter = rep.rotate_about_up(torch.tensor([[[1.0, 0.5, 0.0]]]), torch.tensor([math.pi / 2]))
    torch.testing.assert_close(quarter, torch.tensor([[[0.0, 0.5, -1.0]]]), atol=1e-6, rtol=0)  # R_y: x -> -z
    with pytest.raises(ValueError, match="angles"):
        rep.rotate_about_up(points, torch.zeros(3))


# ---------------------------------------------------------------- the representations

def test_representations_of_one_cloud_agree():
    chair = make_shape("chair", 0).sample(2048, 0)[0][None]
    occ = rep.occupancy(chair, 16)
    assert torch.equal(occ, voxelize_points(chair, 16))
    xray = rep.xray_images(chair, 16)
    assert xray.shape == (1, 3, 16, 16) and 0 < xray.max() <= 1
    torch.testing.assert_close(xray[:, 2], occ[:, 0].sum(1) / 16)                  # along z = sum over D
    sparse = rep.sparse_voxels(chair, 16)
    assert len(sparse) == int(occ.sum())                                          # one site per occupied cell
    assert rep.octree(chair, 4).num_nodes(4) == int(occ.sum())
    sphere = rep.spherical_function(chair, 8)
    assert sphere.shape == (1, 1, 16, 16) and 0 < sphere.max() <= 1 + 1e-6
    graph = rep.knn_graphs(chair[:, :100], 5)[0]
    assert graph.shape == (2, 500)
    # dropping points empties cells, never fills new ones
    dropped = rep.occupancy(rep.drop_points(chair, 0.5, torch.Generator().manual_seed(0)), 16)
    assert dropped.sum() < occ.sum() and (dropped <= occ).all()


def test_point_views_project_through_the_camera_module():
    centre = torch.zeros(1, 1, 3)
    views = rep.point_views(centre, 12, 33, splat=1)
    assert views.shape == (1, 12, 1, 33, 33)
    lit = views[0, :, 0].flatten(1).argmax(1)
    assert (lit == 16 * 33 + 16).all()                 # the origin lands on the centre pixel of every view
    assert views[0, :, 0, 16, 16].allclose(torch.tensor(0.5))  # at the camera distance: half way in depth
    assert int((views > 0).sum()) == 12
    assert int((rep.point_views(centre, 12, 33, splat=3) > 0).sum()) == 12 * 9
    near = rep.point_views(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]]), 1, 33, splat=1)  # camera 0 on +z
    assert near[0, 0, 0].max() > 0.5                   # the nearer point wins the pixel and is brighter
    chair = make_shape("chair", 0).sample(1024, 0)[0][None]
    turned = rep.rotate_about_up(chair, torch.tensor([2 * math.pi / 12]))
    torch.testing.assert_close(rep.point_views(turned, 12, 32)[0, 1:], rep.point_views(chair, 12, 32)[0, :-1])
    with pytest.raises(ValueError, match="dodecahedron"):
        rep.point_views(chair, 12, 32, layout="dodecahedron")
    with pytest.raises(ValueError, match="splat"):
        rep.point_views(chair, 12, 32, splat=2)


# ---------------------------------------------------------------- figures

def test_figures_draw_what_they_are_given_and_reject_mismatched_shapes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coursekit.viz import classification as vizc

    fig = vizc.confusion_figure(torch.tensor([[3, 1], [0, 2]]), ("chair", "mug"))
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "2", "3"]  # zero cells are not annotated
    with pytest.raises(ValueError, match="3 class names"):
        vizc.confusion_figure(torch.eye(2), ("a", "b", "c"))
    points = torch.rand(50, 3)
    plot = vizc.critical_points_plot(points, torch.tensor([0, 7, 9]))
    assert [len(obj.positions) for obj in plot.objects] == [47, 3]  # grey others, red critical points
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        vizc.critical_points_figure(points, torch.tensor([50]))
    with pytest.raises(ValueError, match="neighbours"):
        vizc.grouping_figure(points, points[:4], torch.zeros(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="deformed"):
        vizc.kernel_points_figure(torch.rand(15, 3), 0.1, deformed=torch.rand(14, 3))
    plt.close("all")
