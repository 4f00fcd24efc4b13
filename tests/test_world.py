"""The procedural world: primitives and their SDFs, object classes, part graphs, rooms, datasets."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.data.mesh_io import mesh_report
from coursekit.data.world import (
    CLASSES,
    FURNITURE,
    PART_NAMES,
    SCENE_CLASSES,
    box_corners,
    make_classification_split,
    make_multiview_split,
    make_part_segmentation_split,
    make_scene,
    make_scene_split,
    make_shape,
    split_table,
)
from coursekit.data.world.primitives import (
    ArcTube,
    Box,
    Capsule,
    Lathe,
    Part,
    Prism,
    Sphere,
    cylinder,
    frustum,
    make_pose,
    rotation_between,
    rotation_x,
    rotation_y,
    union_sdf,
)
from coursekit.data.world.shapes import random_rotation
from coursekit.geometry.sampling import sample_mesh_surface

PRIMITIVES = {
    "box": Box((0.3, 0.5, 0.2)),
    "sphere": Sphere(0.6),
    "capsule": Capsule(0.2, 0.4),
    "arc": ArcTube(0.06, 0.35, 2.1),
    "cylinder": cylinder(0.3, 0.4),
    "cone": frustum(0.4, 0.0, 0.3),
    "ring": Lathe(((0.2, 0.0), (0.35, 0.0), (0.3, 0.3), (0.15, 0.3))),
    "cup": Lathe(((0.0, 0.0), (0.4, 0.0), (0.45, 0.8), (0.41, 0.8), (0.37, 0.05), (0.0, 0.05)), 32),
    "prism": Prism(((0.0, 0.0), (0.8, 0.0), (0.7, 0.4), (0.1, 0.5)), 0.15),
}


def winding_inside(vertices: np.ndarray, faces: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Generalised winding number > 1/2 (an independent inside test for closed meshes)."""
    a, b, c = (vertices[faces[:, k]][None] - q[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    num = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
    den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
    return 2 * np.arctan2(num, den).sum(1) / (4 * np.pi) > 0.5


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_mesh_is_closed_and_outward(name):
    v, f = (np.array(a) for a in PRIMITIVES[name].mesh())
    report = mesh_report(torch.from_numpy(v), torch.from_numpy(f))
    assert report.watertight and report.degenerate_faces == 0, report
    volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert volume > 0
    lo, hi = PRIMITIVES[name].bounds()
    assert (v >= lo - 1e-12).all() and (v <= hi + 1e-12).all()


@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_sdf_is_the_distance_to_the_solid(name):
    """|sdf| = distance to the (dense) surface samples, sign = winding-number inside test,
    up to the mesh's chord error (the mesh approximates the exact solid)."""
    prim = PRIMITIVES[name]
    v, f = (np.array(a) for a in prim.mesh())
    g = torch.Generator().manual_seed(0)
    dense = sample_mesh_surface(torch.from_numpy(v), torch.from_numpy(f), 60_000, g, return_normals=False).points
    q = (torch.rand(200, 3, generator=g, dtype=torch.float64) - 0.5) * 2.0
    d = prim.sdf(q)
    reference = torch.cdist(q, dense).amin(1)
    chord = 0.03 if name == "sphere" else 0.012
    assert (d.abs() - reference).abs().max() < chord
    inside = torch.from_numpy(winding_inside(v, f, q.numpy()))
    agree = ((d < 0) == inside) | (d.abs() < chord)
    assert agree.all()
    # the exact solid: the SDF is zero on the mesh vertices (which lie on the surface)
    assert prim.sdf(torch.from_numpy(v)).abs().max() < 1e-9


@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_sdf_has_unit_gradient(name):
    prim = PRIMITIVES[name]
    g = torch.Generator().manual_seed(1)
    q = ((torch.rand(300, 3, generator=g, dtype=torch.float64) - 0.5) * 2.5).requires_grad_()
    (grad,) = torch.autograd.grad(prim.sdf(q).sum(), q)
    norm = grad.norm(dim=-1)
    # eikonal equation |grad f| = 1 almost everywhere (it fails only on the medial axis, a null set)
    assert ((norm - 1).abs() < 1e-6).float().mean() > 0.97


def test_scaled_primitive_scales_the_sdf():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(100, 3, generator=g, dtype=torch.float64)
    for prim in PRIMITIVES.values():
        assert torch.allclose(prim.scaled(2.5).sdf(2.5 * q), 2.5 * prim.sdf(q), atol=1e-9)


def test_primitive_validation():
    with pytest.raises(ValueError, match="positive"):
        Box((1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="convex"):
        Prism(((0, 0), (1, 0), (0.2, 0.2), (0, 1)), 0.1)
    with pytest.raises(ValueError, match="radius < arc_radius"):
        ArcTube(0.5, 0.3, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        Lathe(((0.0, 0.0), (-0.1, 1.0), (0.0, 1.0)))


def test_posed_part_sdf_and_rotation_helpers():
    rot = rotation_between((0.0, 1.0, 0.0), (1.0, 1.0, 0.0))
    assert np.allclose(rot @ np.array([0, 1.0, 0]), np.array([1, 1.0, 0]) / math.sqrt(2))
    assert np.allclose(rotation_between((0, 1.0, 0), (0, -1.0, 0)) @ np.array([0, 1.0, 0]), [0, -1, 0])
    assert np.allclose(rotation_y(math.pi / 2) @ np.array([0, 0, 1.0]), [1, 0, 0])  # yaw turns +z onto +x
    part = Part("p", 0, Box((0.1, 1.0, 0.1)), make_pose(rotation_x(math.pi / 2), (0.0, 2.0, 0.0)))
    # the long axis now runs along z, centred at (0, 2, 0)
    q = torch.tensor([[0.0, 2.0, 0.9], [0.0, 2.0, 1.2], [0.0, 2.9, 0.0]], dtype=torch.float64)
    assert torch.allclose(part.sdf(q), torch.tensor([-0.1, 0.2, 0.8], dtype=torch.float64))
    lo, hi = part.bounds()
    assert np.allclose(lo, [-0.1, 1.9, -1.0]) and np.allclose(hi, [0.1, 2.1, 1.0])


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", CLASSES)
def test_every_class_is_deterministic_labelled_and_canonical(name):
    a, b, c = make_shape(name, 3), make_shape(name, 3), make_shape(name, 4)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.faces, b.faces)
    assert not (a.vertices.shape == c.vertices.shape and torch.allclose(a.vertices, c.vertices))
    assert a.vertices.dtype == torch.float32 and a.faces.dtype == torch.int64 and a.face_labels.dtype == torch.int64
    assert a.part_names == PART_NAMES[name] and a.class_index == CLASSES.index(name)
    assert a.face_labels.shape == a.faces.shape[:1] and a.face_labels.max() < len(a.part_names)
    assert all(a.part_names[p.label] == p.name for p in a.parts)
    assert (a.face_labels == torch.tensor([p.label for p in a.parts])[a.face_parts]).all()
    # canonical pose: bounding-box centre at the origin, farthest vertex on the unit sphere
    assert torch.allclose(a.bounding_box.mean(0), torch.zeros(3), atol=1e-5)
    assert a.vertices.norm(dim=-1).max() == pytest.approx(1.0, abs=1e-5)
    # every part mesh is closed
    for p in a.parts[:6]:
        v, f = p.mesh()
        assert mesh_report(torch.from_numpy(v), torch.from_numpy(f)).watertight


@pytest.mark.parametrize("name", CLASSES)
def test_shape_sdf_is_zero_on_the_surface_and_positive_far_away(name):
    shape = make_shape(name, 7)
    points, normals, labels = shape.sample(1500, 0)
    assert shape.sdf(points.double()).abs().max() < 0.02  # chord error of round parts
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1500), atol=1e-5)
    far = torch.randn(200, 3, dtype=torch.float64)
    far = 3 * far / far.norm(dim=-1, keepdim=True)
    assert (shape.sdf(far) > 1.0).all() and not shape.occupancy(far).any()
    # no interior faces: pushed a little outwards, a surface point is outside every *other* part
    # (its own part's exact solid may still hold it: round parts' meshes sit inside by the chord error)
    per_part = torch.stack([p.sdf(points.double()) for p in shape.parts], 1)
    own = per_part.abs().argmin(1)
    pushed = torch.stack([p.sdf((points + 0.004 * normals).double()) for p in shape.parts], 1)
    pushed[torch.arange(len(points)), own] = float("inf")
    assert (pushed.amin(1) > 0).float().mean() > 0.99


def test_samples_skip_buried_faces_and_carry_part_labels():
    shape = make_shape("chair", 5)
    points, normals, labels = shape.sample(3000, torch.Generator().manual_seed(0))
    # a point of part i is never inside another part j
    per_part = torch.stack([p.sdf(points.double()) for p in shape.parts], 1)  # (N, P)
    own = per_part.abs().argmin(1)
    others = per_part.clone()
    others[torch.arange(len(points)), own] = float("inf")
    assert (others.amin(1) > -1e-3).all()  # (a probe offset of 1e-4 x size decides coplanar cases)
    # the plain mesh sampler does put points inside other parts (legs' tops in the seat): the check can fail
    plain = sample_mesh_surface(shape.vertices, shape.faces, 3000, torch.Generator().manual_seed(0)).points.double()
    per_part = torch.stack([p.sdf(plain) for p in shape.parts], 1)
    owner = shape.face_parts[sample_mesh_surface(shape.vertices, shape.faces, 3000, torch.Generator().manual_seed(0)).face_index]
    per_part[torch.arange(3000), owner] = float("inf")
    assert (per_part.amin(1) < -1e-3).any()
    assert set(labels.tolist()) <= set(range(len(shape.part_names)))
    assert torch.equal(shape.sample(100, 3)[0], shape.sample(100, 3)[0])


def test_intra_class_variation():
    chairs = [make_shape("chair", s) for s in range(40)]
    arms = [any(p.name == "arm" for p in c.parts) for c in chairs]
    legs = {sum(p.name == "leg" for p in c.parts) for c in chairs}
    assert 0 < sum(arms) < 40 and len(legs) >= 4
    kinds = {type(p.primitive).__name__ for c in chairs for p in c.parts if p.name == "seat"}
    assert kinds == {"Box", "Lathe"}  # square and round seats
    tables = [make_shape("table", s) for s in range(30)]
    tops = {type(p.primitive).__name__ for t in tables for p in t.parts if p.name == "top"}
    assert tops == {"Box", "Lathe"}
    heights = [make_shape("table", s, normalize=False).bounding_box[1, 1].item() for s in range(30)]
    assert min(heights) < 0.5 < 0.7 < max(heights)  # coffee and dining tables
    mugs = [make_shape("mug", s) for s in range(30)]
    assert len({type(p.primitive).__name__ for m in mugs for p in m.parts if p.name == "handle"}) == 2


def test_metric_shapes_stand_on_the_floor_facing_plus_z():
    chair = make_shape("chair", 0, normalize=False)
    lo, hi = chair.bounding_box
    assert lo[1].abs() < 1e-5 and 0.6 < hi[1] < 1.3
    centre = chair.vertices[chair.faces].mean(1)
    back, seat = centre[chair.face_labels == 0], centre[chair.face_labels == 1]
    assert back[:, 2].mean() < seat[:, 2].mean() - 0.1  # the back is behind (-z): the chair faces +z


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.2, 3.0))
def test_transformed_shape_moves_mesh_and_sdf_together(seed, scale):
    shape = make_shape("lamp", seed)
    g = torch.Generator().manual_seed(seed)
    q = random_rotation("so3", g)
    shift = (0.3, -1.0, 2.0)
    moved = shape.transformed(q, scale, shift)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = scale * x @ torch.as_tensor(q).T + torch.tensor(shift, dtype=torch.float64)
    assert torch.allclose(moved.sdf(y), scale * shape.sdf(x), atol=1e-8)
    expected = scale * shape.vertices.double() @ torch.as_tensor(q).T + torch.tensor(shift, dtype=torch.float64)
    assert torch.allclose(moved.vertices.double(), expected, atol=1e-5)
    first = moved.vertices[moved.faces[moved.face_parts == 0].unique()].double()
    assert moved.parts[0].sdf(first).abs().max() < 1e-5 * scale + 1e-5  # part 0's vertices stay on part 0


def test_random_rotations():
    g = torch.Generator().manual_seed(0)
    for mode in ("up", "so3"):
        q = random_rotation(mode, g)
        assert np.allclose(q @ q.T, np.eye(3)) and np.isclose(np.linalg.det(q), 1.0)
    assert np.allclose(random_rotation("up", g)[:, 1], [0, 1, 0])
    rotated = make_shape("car", 0, rotation="up", scale=(0.5, 0.5))
    assert rotated.vertices.norm(dim=-1).max() == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ValueError, match="rotation"):
        make_shape("car", 0, rotation="sideways")
    with pytest.raises(ValueError, match="unknown class"):
        make_shape("dragon", 0)
    with pytest.raises(TypeError, match="seed"):
        make_shape("car", 1.5)


def test_part_graph_of_a_chair():
    chair = next(c for c in (make_shape("chair", s) for s in range(50)) if sum(p.name == "leg" for p in c.parts) == 4 and len(c.parts) == 6)
    graph = chair.part_graph
    assert graph.names[0] == "chair" and graph.parent[0] == -1
    groups = graph.children(0)
    assert {graph.names[i] for i in groups} == {"back", "seat", "leg"}
    leg_group = next(i for i in groups if graph.names[i] == "leg")
    legs = graph.children(leg_group)
    assert len(legs) == 4 and all(graph.names[i].startswith("leg.") for i in legs)
    assert set(graph.siblings(legs[0])) == set(legs[1:])
    seat = next(i for i, p in enumerate(chair.parts) if p.name == "seat")
    leg_parts = [graph.part[i] for i in legs]
    assert graph.contact[seat, leg_parts].all()  # every leg touches the seat
    assert not graph.contact[leg_parts[0], leg_parts[1:]].any()  # legs do not touch each other
    assert graph.symmetric[leg_parts[0], leg_parts[1]]
    assert torch.equal(graph.contact, graph.contact.T) and not graph.contact.diagonal().any()
    assert graph.leaf(seat) in graph.children(next(i for i in groups if graph.names[i] == "seat"))


# --------------------------------------------------------------------------- scenes


@pytest.fixture(scope="module")
def scene():
    return make_scene(3, n_objects=(6, 8))


def test_scene_is_deterministic_and_labelled(scene):
    again = make_scene(3, n_objects=(6, 8))
    assert torch.equal(scene.vertices, again.vertices) and torch.equal(scene.boxes, again.boxes)
    assert scene.face_semantic.shape == scene.faces.shape[:1]
    assert set(scene.face_semantic.tolist()) >= {SCENE_CLASSES.index("wall"), SCENE_CLASSES.index("floor"), SCENE_CLASSES.index("door")}
    assert scene.boxes.shape == (len(scene.objects), 7) and scene.box_labels.shape == (len(scene.objects),)
    assert torch.equal(scene.instance_semantic[scene.box_instances], scene.box_labels)
    assert len([o for o in scene.objects if o.shape is not None]) >= 3


def test_scene_samples_lie_inside_the_room_with_consistent_labels(scene):
    sample = scene.sample(8000, 0)
    lo, hi = scene.interior
    assert ((sample["points"] >= lo - 1e-3) & (sample["points"] <= hi + 1e-3)).all()
    assert scene.sdf(sample["points"].double()).abs().max() < 0.02
    assert torch.equal(scene.instance_semantic[sample["instance"]], sample["semantic"])
    # inside surfaces only: floor points have normals pointing up
    floor = sample["semantic"] == SCENE_CLASSES.index("floor")
    assert floor.sum() > 100 and (sample["normals"][floor, 1] > 0.99).all()


def test_boxes_contain_their_objects_and_objects_do_not_overlap(scene):
    sample = scene.sample(8000, 1)
    corners = box_corners(scene.boxes)
    for k, obj in enumerate(scene.objects):
        pts = sample["points"][sample["instance"] == obj.instance]
        if len(pts) == 0:
            continue
        c, s, yaw = obj.box[:3], obj.box[3:6], obj.box[6]
        rel = pts - c
        local_x = rel[:, 0] * torch.cos(yaw) - rel[:, 2] * torch.sin(yaw)  # R_y(yaw)^T (x, z)
        local_z = rel[:, 0] * torch.sin(yaw) + rel[:, 2] * torch.cos(yaw)
        assert (local_x.abs() <= s[0] / 2 + 1e-3).all() and (rel[:, 1].abs() <= s[1] / 2 + 1e-3).all()
        assert (local_z.abs() <= s[2] / 2 + 1e-3).all()
        assert torch.allclose(corners[k].mean(0), c, atol=1e-5)
    furniture = [o for o in scene.objects if o.shape is not None]
    for i, a in enumerate(furniture):
        pts = a.shape.sample(400, i)[0].double()
        for b in furniture[i + 1 :]:
            assert (b.shape.sdf(pts) > -1e-3).all(), (a.name, b.name)


def test_box_corners_convention():
    boxes = torch.tensor([[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, math.pi / 2]])
    corners = box_corners(boxes)[0]
    # yaw pi/2 turns the box's depth axis (z, size 6) onto world x
    assert torch.allclose(corners.amax(0) - corners.amin(0), torch.tensor([6.0, 4.0, 2.0]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        box_corners(torch.zeros(3, 6))


def test_scene_viewpoints_look_into_the_room(scene):
    from coursekit.geometry.camera import camera_centers

    R, t = scene.viewpoints(5)
    lo, hi = scene.interior
    c = camera_centers(R, t)
    assert ((c > lo) & (c < hi)).all()
    with pytest.raises(ValueError, match="subset"):
        make_scene(0, classes=("airplane",))


# --------------------------------------------------------------------------- datasets


def test_classification_split_shapes_counts_and_determinism(tmp_path):
    classes = ("chair", "sofa", "bed")
    train, test = make_classification_split(3, 2, n_points=128, seed=5, classes=classes, progress=False)
    assert train.points.shape == (9, 128, 3) and test.points.shape == (6, 128, 3)
    assert train.class_counts() == {"chair": 3, "sofa": 3, "bed": 3}
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (train.points.norm(dim=-1) <= 1 + 1e-5).all()
    x, y = train[4]
    assert x.shape == (128, 3) and y == 1
    # the same seed gives the same clouds; a sample does not depend on which classes are asked for
    again, _ = make_classification_split(3, 2, n_points=128, seed=5, classes=("sofa",), progress=False)
    assert torch.equal(again.points, train.points[3:6])
    other, _ = make_classification_split(3, 2, n_points=128, seed=6, classes=classes, progress=False)
    assert not torch.allclose(other.points, train.points)
    # train and test shapes differ
    assert not any(torch.allclose(a, b) for a in train.points for b in test.points)
    # cache round trip
    first = make_classification_split(2, 1, n_points=64, seed=1, classes=classes, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("shapes-*.npz"))) == 2
    second = make_classification_split(2, 1, n_points=64, seed=1, classes=classes, cache_dir=tmp_path, progress=False)
    assert torch.equal(first[0].points, second[0].points) and torch.equal(first[1].labels, second[1].labels)
    table = split_table(train=train, test=test)
    assert "| chair | 3 | 2 |" in table and "| **total** | 9 | 6 |" in table


def test_rotation_and_noise_options():
    plain, _ = make_classification_split(2, 0, n_points=256, seed=0, classes=("car",), progress=False)
    turned, _ = make_classification_split(2, 0, n_points=256, seed=0, classes=("car",), rotate="so3", progress=False)
    noisy, _ = make_classification_split(2, 0, n_points=256, seed=0, classes=("car",), noise_std=0.01, progress=False)
    small, _ = make_classification_split(2, 0, n_points=256, seed=0, classes=("car",), scale=(0.5, 0.8), progress=False)
    radius = small.points.norm(dim=-1).amax(1)
    assert ((radius >= 0.5 - 1e-5) & (radius <= 0.8 + 1e-5)).all() and radius[0] != radius[1]
    assert not torch.allclose(plain.points, turned.points)
    assert torch.allclose(plain.points.norm(dim=-1).amax(1), turned.points.norm(dim=-1).amax(1), atol=1e-4)
    residual = (noisy.points - plain.points).std()
    assert 0.005 < residual < 0.02
    with pytest.raises(ValueError, match="rotate"):
        make_classification_split(1, 1, classes=("car",), rotate="x", progress=False)
    with pytest.raises(ValueError, match="unknown classes"):
        make_classification_split(1, 1, classes=("dragon",), progress=False)


def test_partial_scans_see_one_side_of_the_surface():
    from coursekit.data.world.datasets import partial_scan

    shape = make_shape("cabinet", 2)  # a closed box: one view sees at most three of its sides
    points, normals, labels = partial_scan(shape, 800, torch.Generator().manual_seed(0))
    assert points.shape == (800, 3) and normals.shape == (800, 3) and labels.shape == (800,)
    assert shape.sdf(points.double()).abs().max() < 1e-3
    assert set(labels.tolist()) <= set(range(len(shape.part_names)))
    full = shape.sample(2000, 0)[0]
    covered = torch.cdist(full, points).amin(1) < 0.05
    assert covered.float().mean() < 0.7  # the far side is missing
    again = partial_scan(shape, 800, torch.Generator().manual_seed(0))[0]
    assert torch.equal(points, again)
    train, _ = make_classification_split(1, 0, n_points=300, seed=0, classes=("mug",), partial=True, progress=False)
    assert train.points.shape == (1, 300, 3)


def test_part_segmentation_labels_are_global_and_within_the_class():
    classes = ("mug", "chair")
    train, test = make_part_segmentation_split(2, 1, n_points=512, seed=0, classes=classes, progress=False)
    assert train.part_names == ("mug/body", "mug/handle", "chair/back", "chair/seat", "chair/leg", "chair/arm")
    assert train.class_parts == ((0, 1), (2, 3, 4, 5))
    for points, parts, label in (train[i] for i in range(len(train))):
        assert set(parts.tolist()) <= set(train.class_parts[label])
    chairs = train.part_labels[train.labels == 1]
    assert {3, 4} <= set(chairs.unique().tolist())  # seats and legs
    same, _ = make_classification_split(2, 1, n_points=512, seed=0, classes=classes, progress=False)
    assert torch.equal(same.points, train.points)  # the same shapes as the classification split


def test_scene_split():
    train, test = make_scene_split(2, 1, n_points=2000, seed=0, n_objects=(2, 3), progress=False)
    assert train.points.shape == (2, 2000, 3) and test.semantic.shape == (1, 2000)
    item = train[1]
    assert item["boxes"].shape[1] == 7 and item["boxes"].shape[0] == item["box_labels"].shape[0]
    assert set(item["semantic"].tolist()) <= set(range(len(SCENE_CLASSES)))
    assert train.class_names == SCENE_CLASSES and set(FURNITURE) >= {"chair", "table", "bed"}


def test_multiview_split_renders_known_views(tmp_path):
    train, test = make_multiview_split(1, 1, n_views=4, image_size=24, seed=0, classes=("mug", "car"), progress=False, cache_dir=tmp_path)
    assert train.images.shape == (2, 4, 1, 24, 24) and train.depth.shape == (2, 4, 24, 24)
    assert train.R.shape == (4, 3, 3) and train.K.shape == (4, 3, 3)
    background = train.depth == 0
    assert (train.images[:, :, 0][background] == 1).all() and (train.images[:, :, 0][~background] < 1).all()
    assert background.float().mean() < 0.95 and (~background).any(dim=(2, 3)).all()  # every view sees the object
    images, label = test[1]
    assert images.shape == (4, 1, 24, 24) and label == 1
    again, _ = make_multiview_split(1, 1, n_views=4, image_size=24, seed=0, classes=("mug", "car"), progress=False, cache_dir=tmp_path)
    assert torch.equal(again.images, train.images)


def test_pointcloudset_validates_shapes():
    from coursekit.data.world import PointCloudSet

    with pytest.raises(ValueError, match="labels must have shape"):
        PointCloudSet(torch.zeros(3, 5, 3), torch.zeros(2, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="points must have shape"):
        PointCloudSet(torch.zeros(3, 5), torch.zeros(3, dtype=torch.int64), ("a",))


def test_union_sdf_errors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        union_sdf([Part("a", 0, Sphere(1.0), make_pose())], torch.zeros(2, 2))
