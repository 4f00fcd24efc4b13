"""3-D figures: k3d scenes, their matplotlib twins, the shared palette and the side-by-side helper.

Each test checks what is drawn (positions, colours, segment counts, geometry of boxes and
frusta) against values computed independently here, not just that something is returned.
"""

import math

import matplotlib

matplotlib.use("Agg")

import k3d  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Line3DCollection, Path3DCollection, Poly3DCollection  # noqa: E402

from coursekit.geometry.camera import fov_intrinsics, look_at, project  # noqa: E402
from coursekit.viz import scene3d, static3d  # noqa: E402
from coursekit.viz.compare import Panel, compare_figure, compare_plot, multiview_figure, panel_extent  # noqa: E402
from coursekit.viz.points import PALETTE, UNLABELLED, as_cloud, label_hex, label_rgb, legend_handles  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def cloud(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * 2 - 1


def collections(fig, kind):
    return [c for ax in fig.axes for c in ax.collections if isinstance(c, kind)]


# ---------------------------------------------------------------- palette

def test_palette_maps_labels_to_their_colours_wraps_and_greys_negatives():
    rgb = label_rgb([0, 3, 20, -1])
    assert np.allclose(rgb[0], to_rgb(PALETTE[0]))
    assert np.allclose(rgb[1], to_rgb(PALETTE[3]))
    assert np.allclose(rgb[2], rgb[0])  # 20 wraps to 0
    assert np.allclose(rgb[3], to_rgb(UNLABELLED))
    assert not np.allclose(rgb[0], rgb[1])
    assert label_hex([0])[0] == 0x1F77B4 and label_hex([1])[0] == 0xFF7F0E


def test_palette_colours_are_distinct_and_legend_names_the_labels_present():
    assert len({tuple(np.round(label_rgb([k])[0], 3)) for k in range(len(PALETTE))}) == len(PALETTE)
    handles = legend_handles(torch.tensor([2, 0, 2, -1]), names=("back", "seat", "leg"))
    assert [h.get_label() for h in handles] == ["unlabelled", "back", "leg"]


def test_clouds_accept_a_batch_of_one_and_reject_bad_shapes():
    assert as_cloud(cloud(5)[None]).shape == (5, 3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        as_cloud(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="NaN"):
        as_cloud(torch.tensor([[0.0, float("nan"), 0.0]]))


# ---------------------------------------------------------------- k3d

def test_points_plot_colours_each_point_by_its_label():
    pts, labels = cloud(), torch.arange(30) % 4
    plot = scene3d.points_plot(pts, labels)
    assert isinstance(plot, k3d.Plot) and len(plot.objects) == 1
    obj = plot.objects[0]
    assert np.allclose(obj.positions, pts.numpy())
    assert np.array_equal(obj.colors, label_hex(labels))
    assert not np.array_equal(obj.colors, label_hex((labels + 1) % 4))  # the check can fail


def test_points_plot_takes_rgb_or_one_colour_and_rejects_bad_labels():
    pts = cloud(4)
    rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=float)
    assert list(scene3d.points_plot(pts, colors=rgb).objects[0].colors) == [0xFF0000, 0x00FF00, 0x0000FF, 0xFFFFFF]
    assert scene3d.points_plot(pts, color="#ff0000").objects[0].color == 0xFF0000
    with pytest.raises(ValueError, match=r"\(4,\)"):
        scene3d.points_plot(pts, torch.arange(3))
    with pytest.raises(ValueError, match="either labels or colors"):
        scene3d.points_plot(pts, torch.arange(4), colors=rgb)
    with pytest.raises(ValueError, match="integers"):
        scene3d.points_plot(pts, torch.tensor([0.5, 1, 2, 3]))


def test_functions_chain_into_one_plot():
    plot = scene3d.points_plot(cloud())
    again = scene3d.boxes_plot(torch.tensor([[0.0, 0, 0, 1, 1, 1, 0]]), plot=plot)
    assert again is plot and len(plot.objects) == 2


def test_voxels_plot_keeps_the_z_y_x_layout_labels_and_bounds():
    occ = torch.zeros(1, 1, 2, 3, 4)
    occ[0, 0, 1, 2, 3] = 1
    occ[0, 0, 0, 0, 0] = 1
    labels = torch.full((2, 3, 4), 5)
    labels[0, 0, 0] = -1
    obj = scene3d.voxels_plot(occ, bounds=(-2.0, 2.0)).objects[0]
    assert obj.voxels.shape == (2, 3, 4) and obj.voxels[1, 2, 3] == 1 and obj.voxels.sum() == 2
    assert np.allclose(np.diag(obj.model_matrix)[:3], 4.0) and np.allclose(obj.model_matrix[:3, 3], 0.0)
    labelled = scene3d.voxels_plot(occ, labels=labels).objects[0]
    assert labelled.voxels[1, 2, 3] == 6 and labelled.voxels[0, 0, 0] == len(PALETTE) + 1
    assert labelled.color_map[5] == label_hex([5])[0]
    with pytest.raises(ValueError, match="grid's shape"):
        scene3d.voxels_plot(occ, labels=torch.zeros(2, 3, 3))


def test_mesh_plot_gives_every_face_its_label_colour():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 2, 3]])
    obj = scene3d.mesh_plot(v, f, face_labels=torch.tensor([2, 0, 7])).objects[0]
    assert np.allclose(obj.vertices, v[f].reshape(-1, 3).numpy())  # corners unshared
    assert np.array_equal(obj.colors, np.repeat(label_hex([2, 0, 7]), 3))
    plain = scene3d.mesh_plot(v, f).objects[0]
    assert np.array_equal(plain.indices, f.numpy()) and len(plain.colors) == 0
    with pytest.raises(ValueError, match="indices"):
        scene3d.mesh_plot(v, torch.tensor([[0, 1, 9]]))


def test_box_edges_are_the_box_and_the_heading_points_to_its_front():
    box = torch.tensor([[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0]])
    vertices, segments = scene3d.box_edges(box)
    assert segments.shape == (13, 2)
    corners = vertices[:8]
    assert set(map(tuple, np.round(corners, 5))) == {(x, y, z) for x in (0, 2) for y in (0, 4) for z in (0, 6)}
    lengths = sorted(np.round(np.linalg.norm(vertices[segments[:12, 0]] - vertices[segments[:12, 1]], axis=1), 5))
    assert lengths == [2.0] * 4 + [4.0] * 4 + [6.0] * 4
    tick = vertices[segments[12, 1]] - vertices[segments[12, 0]]
    assert np.allclose(tick, [0, 0, 3])  # centre -> front face (+z)
    turned = scene3d.box_edges(torch.tensor([[0.0, 0, 0, 2, 2, 2, math.pi / 2]]))[0]
    assert np.allclose(turned[9] - turned[8], [1, 0, 0], atol=1e-6)  # yaw pi/2: the front faces +x


def test_boxes_plot_colours_each_box_and_has_13_segments_per_box():
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0], [3.0, 0, 0, 1, 2, 1, 0.3]])
    obj = scene3d.boxes_plot(boxes, labels=torch.tensor([4, 1])).objects[0]
    assert obj.indices.shape == (26, 2) and obj.indices_type == "segment"
    assert np.array_equal(obj.colors, np.repeat(label_hex([4, 1]), 10))
    with pytest.raises(ValueError, match=r"\(K, 7\)"):
        scene3d.boxes_plot(torch.zeros(2, 6))


def test_frusta_start_at_the_camera_centre_and_reach_the_image_corners():
    eye = torch.tensor([[2.0, 1.0, 3.0], [-1.0, 2.0, 2.0]])
    R, t = look_at(eye, torch.zeros(2, 3))
    K = fov_intrinsics(50.0, (30, 40)).expand(2, 3, 3)
    vertices, segments = scene3d.frustum_segments(K, R, t, (30, 40), depth=0.5)
    assert segments.shape == (22, 2)
    v = torch.tensor(vertices).view(2, 8, 3)
    assert torch.allclose(v[:, 0], eye, atol=1e-5)
    uv, depth = project(v[:, 1:5], K, R, t)
    assert torch.allclose(depth, torch.full_like(depth, 0.5), atol=1e-5)
    assert torch.allclose(uv, torch.tensor([[0.0, 0], [40, 0], [40, 30], [0, 30]]).expand(2, 4, 2), atol=1e-3)
    obj = scene3d.cameras_plot(K, R, t, (30, 40), depth=0.5, labels=torch.tensor([0, 1])).objects[0]
    assert np.array_equal(obj.colors, np.repeat(label_hex([0, 1]), 8))


# ---------------------------------------------------------------- matplotlib twins

def colour_counts(rgb):
    """``{rounded colour: count}``: matplotlib sorts markers and polygons by depth, so compare multisets."""
    keys, counts = np.unique(np.round(np.asarray(rgb)[:, :3], 4), axis=0, return_counts=True)
    return {tuple(k): int(c) for k, c in zip(keys, counts)}


def base_colour_counts(shaded, candidates):
    """Count, per candidate base colour, the shaded colours that are a multiple of it (flat shading scales RGB)."""
    counts = {}
    for colour in np.asarray(shaded)[:, :3]:
        ratio = colour / candidates
        match = [i for i, r in enumerate(ratio) if np.allclose(r, r[0], atol=1e-6) and 0.29 < r[0] <= 1]
        assert len(match) == 1, f"{colour} is not a shade of exactly one label colour"
        counts[match[0]] = counts.get(match[0], 0) + 1
    return counts


def test_points_figure_draws_one_coloured_marker_per_point():
    pts, labels = cloud(), torch.tensor([0] * 5 + [1] * 10 + [2] * 15)
    fig = static3d.points_figure(pts, labels, names=("a", "b", "c"))
    assert isinstance(fig, matplotlib.figure.Figure)
    fig.canvas.draw()
    (scatter,) = collections(fig, Path3DCollection)
    assert len(scatter.get_offsets()) == 30
    assert colour_counts(scatter.get_facecolor()) == colour_counts(label_rgb(labels))
    assert colour_counts(scatter.get_facecolor()) != colour_counts(label_rgb((labels + 1) % 3))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]


def test_voxel_faces_are_the_visible_faces_only():
    one = torch.zeros(3, 3, 3)
    one[1, 1, 1] = 1
    assert len(static3d.voxel_faces(one)[0]) == 6
    two = one.clone()
    two[1, 1, 2] = 1  # a neighbour along x hides one face of each
    assert len(static3d.voxel_faces(two)[0]) == 10
    assert len(static3d.voxel_faces(torch.ones(2, 2, 2))[0]) == 24
    corner = torch.zeros(2, 2, 2)
    corner[0, 0, 1] = 1  # (d, h, w) = (z, y, x): x in [0, 1], y and z in [-1, 0]
    quads = static3d.voxel_faces(corner)[0].reshape(-1, 3)
    assert np.allclose(quads.min(0), [0, -1, -1]) and np.allclose(quads.max(0), [1, 0, 0])


def test_voxels_figure_shades_each_face_in_its_cell_label_colour():
    occ = torch.zeros(2, 2, 2)
    occ[0, 0, 0] = occ[1, 1, 1] = occ[1, 1, 0] = 1
    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    labels[1, 1, 1] = labels[1, 1, 0] = 3
    fig = static3d.voxels_figure(occ, labels=labels)
    fig.canvas.draw()
    (poly,) = collections(fig, Poly3DCollection)
    candidates = label_rgb([0, 3])
    assert base_colour_counts(poly.get_facecolor(), candidates) == {0: 6, 1: 10}


def test_mesh_figure_draws_every_face_in_its_label_hue():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    fig = static3d.mesh_figure(v, f, face_labels=torch.tensor([0, 1, 1, 1]))
    fig.canvas.draw()
    (poly,) = collections(fig, Poly3DCollection)
    assert base_colour_counts(poly.get_facecolor(), label_rgb([0, 1])) == {0: 1, 1: 3}


def test_boxes_and_cameras_figures_draw_their_segments():
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0], [2.0, 0, 0, 1, 1, 1, 1.0]])
    fig = static3d.boxes_figure(boxes, labels=torch.tensor([0, 5]))
    fig.canvas.draw()
    (lines,) = collections(fig, Line3DCollection)
    assert len(lines.get_segments()) == 26
    assert np.allclose(lines.get_colors()[13:, :3], label_rgb([5]))
    R, t = look_at(torch.tensor([[0.0, 0, 3], [3.0, 0, 0], [0.0, 3, 0.1]]), torch.zeros(3, 3))
    fig = static3d.cameras_figure(fov_intrinsics(40.0, (8, 8)), R, t, (8, 8))
    fig.canvas.draw()
    (frusta,) = collections(fig, Line3DCollection)
    assert len(frusta.get_segments()) == 33


def test_drawing_into_one_axes_frames_everything_with_y_up():
    fig = static3d.points_figure(cloud() * 0.1)
    ax = fig.axes[0]
    static3d.boxes_figure(torch.tensor([[5.0, 0, 0, 1, 1, 1, 0]]), ax=ax)
    assert ax.get_xlim3d()[0] < -0.05 and ax.get_xlim3d()[1] > 5.5
    with pytest.raises(TypeError, match="3-D axes"):
        static3d.points_figure(cloud(), ax=plt.figure().add_subplot())


# ---------------------------------------------------------------- side by side

def panels():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    occ = torch.zeros(1, 1, 4, 4, 4)
    occ[..., 1:3, 1:3, 1:3] = 1
    return [Panel("mesh", "mesh", dict(vertices=v, faces=f, face_labels=torch.tensor([0, 1, 1, 2]))),
            Panel("points", "points", dict(points=cloud(), labels=torch.arange(30) % 2, names=("a", "b"),
                                           point_size=0.05)),
            Panel("voxels", "voxels", dict(occupancy=occ, bounds=(-1, 1)))]


def test_compare_plot_places_the_panels_side_by_side_without_overlap():
    plot = compare_plot(panels())
    drawn = [o for o in plot.objects if not isinstance(o, k3d.objects.Text)]
    assert len(drawn) == 3 and len([o for o in plot.objects if isinstance(o, k3d.objects.Text)]) == 3
    spans = []
    for panel, obj in zip(panels(), drawn):
        lo, hi = panel_extent(panel)[:, 0]
        shift = obj.model_matrix[0, 3]  # the voxels' bounds are centred at 0, so only the shift is left
        spans.append((lo + shift, hi + shift))
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    assert np.allclose(panel_extent(panels()[2]), [[-0.5] * 3, [0.5] * 3])  # the filled cells, not the bounds
    captions = [o.text for o in plot.objects if isinstance(o, k3d.objects.Text)]
    assert captions == ["mesh", "points", "voxels"]
    assert compare_plot([Panel("4^3 <", "points", dict(points=cloud()))]).objects[1].text == "4<sup>3</sup> &lt;"


def test_compare_figure_has_one_titled_3d_axes_per_panel():
    fig = compare_figure(panels())
    assert [ax.get_title() for ax in fig.axes if ax.name == "3d"] == ["mesh", "points", "voxels"]
    with pytest.raises(ValueError, match="unknown kind"):
        compare_figure([Panel("x", "sdf", {})])


def test_multiview_figure_is_a_kind_by_view_grid_with_white_background():
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 1:3] = True
    renders = {"mask": mask, "depth": mask * 2.0, "rgb": torch.zeros(3, 3, 4, 4), "normal": torch.zeros(3, 3, 4, 4)}
    fig = multiview_figure(renders, views=[0, 2], titles=["a", "b"])
    assert len(fig.axes) == 8
    rgb = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(rgb[0, 0], 1.0) and np.allclose(rgb[1, 1], 0.0)
    with pytest.raises(ValueError, match="kinds"):
        multiview_figure(renders, kinds=("albedo",))


# ---------------------------------------------------------------- the dataset catalog (the notebook's tables)

def test_catalog_covers_the_slides_and_names_loaders_that_exist():
    import importlib

    from coursekit.data.datasets_catalog import CATALOG, dataset

    names = {d.name for d in CATALOG}
    assert {"ShapeNet", "ModelNet", "PartNet", "SceneNet", "ScanNet", "KITTI", "Semantic KITTI",
            "Waymo Open Dataset"} <= names
    for d in CATALOG:
        assert d.counts and d.reference and d.stand_in and d.read_note
        if d.loader:
            module, _, function = d.loader.rpartition(".")
            assert callable(getattr(importlib.import_module(module), function)), d.loader
    assert dataset("modelnet").loader == "coursekit.data.modelnet.load_modelnet"
    with pytest.raises(KeyError, match="known"):
        dataset("ImageNet")


def test_catalog_tables_have_a_row_per_entry_and_no_raw_html():
    import re

    from coursekit.data.datasets_catalog import CATALOG, catalog_table, counts_table, loaders_table

    for table, rows in ((catalog_table(), len(CATALOG)), (loaders_table(), len(CATALOG)),
                        (counts_table(), sum(len(d.counts) for d in CATALOG))):
        lines = table.splitlines()
        assert len(lines) == rows + 2 and all(line.startswith("| ") and line.endswith(" |") for line in lines)
        outside_code = re.sub(r"`[^`]*`", "", table)
        assert "<" not in outside_code and ">" not in outside_code  # would be read as HTML tags
    unchecked = sum(not c.checked for d in CATALOG for c in d.counts)
    assert counts_table().count("| ? |") == unchecked > 0
