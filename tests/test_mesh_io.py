"""Mesh files (OFF, OBJ, PLY, STL), ModelNet folders and ShapeNetPart folders, good and broken."""

import json
import warnings

import pytest
import torch

from coursekit.data.mesh_io import MeshFormatError, MeshWarning, load_mesh, mesh_report, read_off, save_mesh
from coursekit.data.modelnet import load_modelnet
from coursekit.data.shapenetpart import load_shapenetpart
from coursekit.data.world import make_shape

TETRA_V = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
TETRA_F = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def off_text(vertices, faces, quirk=False):
    head = f"OFF{len(vertices)} {len(faces)} 0\n" if quirk else f"OFF\n{len(vertices)} {len(faces)} 0\n"
    body = "".join(f"{x} {y} {z}\n" for x, y, z in vertices.tolist())
    return head + body + "".join(f"{len(f)} " + " ".join(map(str, f)) + "\n" for f in faces.tolist())


# --------------------------------------------------------------------------- mesh report


def test_mesh_report_counts_defects():
    assert mesh_report(TETRA_V, TETRA_F).watertight
    open_mesh = mesh_report(TETRA_V, TETRA_F[:3])
    assert open_mesh.boundary_edges == 3 and not open_mesh.watertight
    flipped = TETRA_F.clone()
    flipped[0] = flipped[0].flip(0)
    assert mesh_report(TETRA_V, flipped).inconsistent_edges == 3
    fin = torch.cat([TETRA_F, torch.tensor([[0, 1, 2]])])  # a third face on edges of the tetrahedron
    report = mesh_report(TETRA_V, fin)
    assert report.non_manifold_edges == 3 and any("non-manifold" in p for p in report.problems())
    assert mesh_report(TETRA_V, torch.tensor([[0, 0, 1]])).degenerate_faces == 1


# --------------------------------------------------------------------------- OFF


def test_read_off_standard_quirk_comments_and_polygons(tmp_path):
    plain = tmp_path / "plain.off"
    plain.write_text("# a comment\n" + off_text(TETRA_V, TETRA_F))
    quirky = tmp_path / "quirk.off"
    quirky.write_text(off_text(TETRA_V, TETRA_F, quirk=True))  # ModelNet: "OFF4 4 0"
    for path in (plain, quirky):
        v, f = read_off(path)
        assert v.dtype == torch.float32 and f.dtype == torch.int64
        assert torch.equal(v, TETRA_V) and torch.equal(f, TETRA_F)
    square = tmp_path / "quad.off"
    square.write_text("OFF\n4 1 0\n0 0 0\n1 0 0 255 0 0\n1 1 0\n0 1 0\n4 0 1 2 3 # a quad\n")
    v, f = read_off(square)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3]] and v.shape == (4, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("PLY\n3 1 0\n", "not an OFF file"),
        ("OFF\n", "truncated after the OFF header"),
        ("OFF\nthree 1 0\n", "cannot read the counts"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", "truncated"),
        ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", "vertex line"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "face indices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1\n", "fewer indices"),
        ("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "empty mesh"),
        ("OFF\n3 1 0\n0 0 nan\n1 0 0\n0 1 0\n3 0 1 2\n", "NaN"),
        ("", "not an OFF file"),
    ],
)
def test_corrupt_off_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "broken.off"
    path.write_text(text)
    with pytest.raises(MeshFormatError, match=message) as info:
        load_mesh(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- other formats


@pytest.mark.parametrize("suffix", [".off", ".obj", ".ply", ".stl"])
def test_save_and_load_round_trip(tmp_path, suffix):
    shape = make_shape("mug", 0)  # round handle: no two parts share a vertex position (STL would merge them)
    path = tmp_path / f"mug{suffix}"
    save_mesh(path, shape.vertices, shape.faces)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean closed mesh: no defect warning
        v, f = load_mesh(path)
    assert f.shape == shape.faces.shape
    # same triangles (STL merges duplicate corners and may renumber the vertices)
    assert torch.allclose(v[f].sort(dim=0).values, shape.vertices[shape.faces].sort(dim=0).values, atol=1e-5)
    if suffix != ".stl":
        assert torch.allclose(v, shape.vertices, atol=1e-5) and torch.equal(f, shape.faces)


@pytest.mark.parametrize(
    "name, text",
    [
        ("bad.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1 2\n"),
        ("words.obj", "this is not a mesh\n"),
        ("empty.obj", ""),
        ("cut.stl", "solid x\n facet normal 0 0 1\n"),
        ("noise.stl", "\x00" * 50),
    ],
)
def test_corrupt_or_empty_files_raise_with_the_file_name(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(MeshFormatError) as info:
        load_mesh(path)
    assert str(path) in str(info.value)


def test_defects_are_reported_not_rejected_by_default(tmp_path):
    path = tmp_path / "open.obj"
    save_mesh(path, TETRA_V, TETRA_F[:3])
    with pytest.warns(MeshWarning, match=r"open\.obj: 3 boundary edges"):
        v, f = load_mesh(path)
    assert f.shape == (3, 3)
    with pytest.raises(MeshFormatError, match="boundary edges"):
        load_mesh(path, on_defect="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mesh(path, on_defect="ignore")


def test_load_mesh_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.off"):
        load_mesh(tmp_path / "missing.off")
    with pytest.raises(ValueError, match="unsupported mesh format"):
        load_mesh(tmp_path / "mesh.fbx")
    with pytest.raises(ValueError, match="on_defect"):
        load_mesh(tmp_path / "mesh.off", on_defect="maybe")


# --------------------------------------------------------------------------- ModelNet


def modelnet_tree(root):
    for name, seeds in (("chair", (0, 1, 2)), ("mug", (3, 4))):
        for split in ("train", "test"):
            folder = root / name / split
            folder.mkdir(parents=True)
            for s in seeds:
                shape = make_shape(name, s)
                (folder / f"{name}_{s:04d}.off").write_text(off_text(shape.vertices, shape.faces, quirk=s % 2 == 0))
    (root / "chair" / "train" / "chair_9998.off").write_text("OFF\n10 10 0\n1 2 3\n")  # truncated
    (root / "mug" / "train" / "mug_9999.off").write_text("not a mesh")
    (root / "mug" / "train" / "notes.txt").write_text("ignored")


def test_load_modelnet_skips_bad_files_and_goes_on(tmp_path, capsys):
    modelnet_tree(tmp_path)
    train = load_modelnet(tmp_path, "train", n_points=256, progress=False)
    assert train.class_names == ("chair", "mug")
    assert train.points.shape == (5, 256, 3) and train.labels.tolist() == [0, 0, 0, 1, 1]
    assert (train.points.norm(dim=-1).amax(1) - 1).abs().max() < 1e-5
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in train.skipped) == ["chair_9998.off", "mug_9999.off"]
    assert any("truncated" in reason for _, reason in train.skipped)
    printed = capsys.readouterr().out
    assert "skipped 2 unreadable" in printed and "mug_9999.off" in printed
    assert train.sources[0] == "chair/train/chair_0000.off"
    test = load_modelnet(tmp_path, "test", n_points=64, classes=("mug",), progress=False)
    assert test.labels.tolist() == [0, 0] and test.skipped == ()
    again = load_modelnet(tmp_path, "train", n_points=256, progress=False)
    assert torch.equal(again.points, train.points)


def test_load_modelnet_cache_and_errors(tmp_path):
    modelnet_tree(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_modelnet(tmp_path / "data", "test", n_points=32, cache_dir=cache, progress=False)
    (tmp_path / "data" / "chair" / "test" / "chair_0000.off").unlink()  # the cache is used, not the files
    second = load_modelnet(tmp_path / "data", "test", n_points=32, cache_dir=cache, progress=False)
    assert torch.equal(first.points, second.points) and first.sources == second.sources
    with pytest.raises(ValueError, match="not found"):
        load_modelnet(tmp_path / "data", classes=("sofa",))
    with pytest.raises(FileNotFoundError):
        load_modelnet(tmp_path / "nowhere")


# --------------------------------------------------------------------------- ShapeNetPart


def shapenetpart_tree(root):
    (root / "synsetoffset2category.txt").write_text("Airplane\t02691156\nMug\t03797390\n")
    split = {"train": [], "val": [], "test": []}
    g = torch.Generator().manual_seed(0)
    for synset, parts, count in (("02691156", 4, 3), ("03797390", 2, 2)):
        (root / synset / "points").mkdir(parents=True)
        (root / synset / "points_label").mkdir(parents=True)
        for k in range(count):
            n = 300 if k else 100  # the first cloud is smaller than n_points: resampled with repetition
            xyz = torch.randn(n, 3, generator=g)
            labels = torch.randint(1, parts + 1, (n,), generator=g)
            shape_id = f"{synset[-3:]}{k:03d}"
            (root / synset / "points" / f"{shape_id}.pts").write_text("".join(f"{x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in xyz.tolist()))
            (root / synset / "points_label" / f"{shape_id}.seg").write_text("".join(f"{v}\n" for v in labels.tolist()))
            split["test" if k == count - 1 else "train"].append(f"shape_data/{synset}/{shape_id}")
    bad = root / "03797390" / "points"
    (bad / "broken.pts").write_text("1 2 3\n4 5 6\n")
    (root / "03797390" / "points_label" / "broken.seg").write_text("1\n")  # one label for two points
    split["train"].append("shape_data/03797390/broken")
    (root / "train_test_split").mkdir()
    for name, ids in split.items():
        (root / "train_test_split" / f"shuffled_{name}_file_list.json").write_text(json.dumps(ids))


def test_load_shapenetpart_global_labels_resampling_and_skips(tmp_path, capsys):
    shapenetpart_tree(tmp_path)
    train = load_shapenetpart(tmp_path, "train", n_points=200, progress=False)
    assert train.class_names == ("Airplane", "Mug")
    assert train.points.shape == (3, 200, 3) and train.labels.tolist() == [0, 0, 1]
    assert train.class_parts == ((0, 1, 2, 3), (4, 5)) and len(train.part_names) == 6
    for points, parts, label in (train[i] for i in range(3)):
        assert set(parts.tolist()) <= set(train.class_parts[label])
    assert (train.points.norm(dim=-1).amax(1) - 1).abs().max() < 1e-5
    # labels follow their points through the resampling: compare with the raw files
    raw = load_shapenetpart(tmp_path, "train", n_points=200, normalize=False, progress=False)
    assert torch.equal(raw.part_labels, train.part_labels)
    for k, stem in ((0, "156000"), (1, "156001")):  # 100 points (repeated) and 300 points (a subset)
        xyz = torch.tensor([[float(v) for v in ln.split()] for ln in (tmp_path / f"02691156/points/{stem}.pts").read_text().splitlines()])
        seg = torch.tensor([int(v) for v in (tmp_path / f"02691156/points_label/{stem}.seg").read_text().split()])
        distance, index = torch.cdist(raw.points[k].double(), xyz.double()).min(1)
        assert distance.max() < 1e-5 and torch.equal(raw.part_labels[k], seg[index] - 1)
        assert len(index.unique()) == (100 if k == 0 else 200)
    assert [p.rsplit("/", 1)[-1] for p, _ in train.skipped] == ["broken.pts"]
    assert "2 points but 1 labels" in train.skipped[0][1]
    assert "skipped 1 unreadable" in capsys.readouterr().out
    everything = load_shapenetpart(tmp_path, "all", n_points=50, classes=("Mug",), progress=False)
    assert everything.labels.tolist() == [0, 0] and everything.class_parts == ((0, 1),)
    with pytest.raises(ValueError, match="split"):
        load_shapenetpart(tmp_path, "holdout")
    with pytest.raises(ValueError, match="Chair"):
        load_shapenetpart(tmp_path, classes=("Chair",))
    with pytest.raises(FileNotFoundError, match="synsetoffset2category"):
        load_shapenetpart(tmp_path / "02691156")
