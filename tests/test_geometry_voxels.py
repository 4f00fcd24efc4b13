"""Voxelisation of points and meshes, voxel centres, devoxelisation, IoU and X-ray projections."""

import math

import pytest
import torch
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.geometry.sampling import sample_mesh_surface
from coursekit.geometry.voxels import (_split_large, _trilinear_devoxelize_naive, _voxelize_mesh_solid_naive,
                                       _voxelize_mesh_surface_naive, _voxelize_points_naive, devoxelize,
                                       trilinear_devoxelize, voxel_centers, voxel_iou, voxelize_mesh_solid,
                                       voxelize_mesh_surface, voxelize_points)
from coursekit.geometry.xray import xray_projection, xray_views


def mesh(m: trimesh.Trimesh):
    return torch.tensor(m.vertices, dtype=torch.float64), torch.tensor(m.faces, dtype=torch.int64)


def cube(half: float):
    return mesh(trimesh.creation.box(extents=(2 * half,) * 3))


def cells_spanned(half: float, r: int) -> int:
    """Cells per axis that the slab [-half, half] touches in a grid of r cells over [-1, 1]."""
    s = 2 / r
    return math.floor((half + 1) / s) - math.floor((1 - half) / s) + 1


def centres_inside(half: float, r: int) -> int:
    return sum(abs(-1 + (i + 0.5) * 2 / r) < half for i in range(r))


# ------------------------------------------------------------------ points

def test_voxelize_points_matches_naive_with_boundaries_and_outside_points():
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2, 300, 3, generator=gen, dtype=torch.float64) * 2.6 - 1.3
    points[0, :4] = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [1.0, -1.0, 0.0], [1.0000001, 0, 0]])
    occ = voxelize_points(points, 7)
    assert occ.shape == (2, 1, 7, 7, 7) and occ.dtype == torch.float64
    assert torch.equal(occ, _voxelize_points_naive(points, 7))
    assert occ[0, 0, 6, 6, 6] == 1 and occ[0, 0, 0, 0, 0] == 1  # hi lands in the last cell


def test_voxelize_points_axis_order_is_z_y_x():
    occ = voxelize_points(torch.tensor([[[0.9, -0.9, -0.9], [-0.9, 0.3, 0.9]]]), 4)
    assert torch.nonzero(occ[0, 0]).tolist() == [[0, 0, 3], [3, 2, 0]]


def test_voxelize_points_drops_outside_points_and_rejects_bad_input():
    assert voxelize_points(torch.tensor([[[1.5, 0, 0], [0, -1.01, 0]]]), 4).sum() == 0
    with pytest.raises(ValueError, match="empty"):
        voxelize_points(torch.zeros(1, 0, 3), 4)
    with pytest.raises(ValueError, match="lo < hi"):
        voxelize_points(torch.zeros(1, 2, 3), 4, bounds=(1, -1))
    with pytest.raises(ValueError, match="at least 1"):
        voxelize_points(torch.zeros(1, 2, 3), 0)


def test_centres_devoxelize_and_revoxelize():
    centres = voxel_centers((2, 3, 4), bounds=(0, 6))
    assert centres.shape == (2, 3, 4, 3)
    torch.testing.assert_close(centres[1, 2, 3], torch.tensor([5.25, 5.0, 4.5]))  # (x, y, z) of cell (d=1, h=2, w=3)
    occ = voxelize_points(torch.rand(3, 50, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1, 5)
    clouds = devoxelize(occ)
    assert [len(c) for c in clouds] == occ.flatten(1).sum(1).int().tolist()
    for b, cloud in enumerate(clouds):
        assert torch.equal(voxelize_points(cloud[None], 5), occ[b:b + 1])


# ------------------------------------------------------------------ meshes

@pytest.mark.parametrize("r", [10, 13, 24, 31])
def test_cube_voxel_counts(r):
    vertices, faces = cube(0.45)
    n, m = cells_spanned(0.45, r), centres_inside(0.45, r)
    surface = voxelize_mesh_surface(vertices, faces, r)
    solid = voxelize_mesh_solid(vertices, faces, r)
    assert surface.shape == solid.shape == (1, 1, r, r, r)
    assert surface.sum() == n ** 3 - (n - 2) ** 3  # the shell of the touched block
    assert solid.sum() == m ** 3  # rays through the faces' diagonals are counted once


def test_surface_voxelisation_matches_triangle_clipping():
    gen = torch.Generator().manual_seed(2)
    vertices = torch.rand(9, 3, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 4, 8]])
    assert torch.equal(voxelize_mesh_surface(vertices, faces, 5), _voxelize_mesh_surface_naive(vertices, faces, 5))
    vertices, faces = mesh(trimesh.creation.icosphere(subdivisions=1, radius=0.8))
    assert torch.equal(voxelize_mesh_surface(vertices, faces, 7), _voxelize_mesh_surface_naive(vertices, faces, 7))


def test_surface_voxelisation_covers_dense_surface_samples():
    vertices, faces = mesh(trimesh.creation.icosphere(subdivisions=2, radius=0.8))
    grid = voxelize_mesh_surface(vertices, faces, 24)
    samples = sample_mesh_surface(vertices, faces, 100_000, generator=torch.Generator().manual_seed(3)).points
    sampled = voxelize_points(samples[None], 24)
    assert (sampled <= grid).all()  # every sampled cell is found
    assert grid.sum() - sampled.sum() <= 0.1 * grid.sum()  # the rest are barely grazed (bounding boxes: 2x)


def test_surface_on_cell_boundaries_marks_both_sides():
    vertices, faces = cube(0.7)  # at resolution 20 the faces x, y, z = +-0.7 lie on cell boundaries
    surface = voxelize_mesh_surface(vertices, faces, 20)
    assert surface.sum() == 16 ** 3 - 12 ** 3  # cells 2..17 per axis, a shell two cells thick
    assert surface[0, 0, 2:4, 10, 10].tolist() == [1, 1] and surface[0, 0, 4, 10, 10] == 0  # z = -0.7 between cells 2, 3


def test_large_triangles_are_split_without_changing_the_surface():
    vertices, faces = cube(0.7)
    tri = vertices[faces]
    assert len(_split_large(tri, -1.0, 2 / 96, 96)) > len(tri)  # each face spans 68 x 68 cells
    n = cells_spanned(0.7, 96)
    assert voxelize_mesh_surface(vertices, faces, 96).sum() == n ** 3 - (n - 2) ** 3


def test_solid_sphere_volume():
    radius, r = 0.8, 40
    vertices, faces = mesh(trimesh.creation.icosphere(subdivisions=4, radius=radius))
    volume = voxelize_mesh_solid(vertices, faces, r).sum().item() * (2 / r) ** 3
    assert volume == pytest.approx(4 / 3 * math.pi * radius ** 3, rel=0.01)


@pytest.mark.parametrize("shape", ["torus", "rotated box"])
def test_solid_voxelisation_matches_winding_numbers(shape):
    if shape == "torus":
        m = trimesh.creation.torus(major_radius=0.55, minor_radius=0.25, major_sections=24, minor_sections=12)
        m.apply_transform(trimesh.transformations.rotation_matrix(0.4, [1, 0.3, 0]))
    else:
        m = trimesh.creation.box(extents=(1.2, 0.7, 0.9))
        m.apply_transform(trimesh.transformations.rotation_matrix(0.7, [0.2, 1, 0.5]))
    vertices, faces = mesh(m)
    solid = voxelize_mesh_solid(vertices, faces, 16)
    assert torch.equal(solid, _voxelize_mesh_solid_naive(vertices, faces, 16))
    assert torch.equal(solid, voxelize_mesh_solid(vertices, faces.flip(1), 16))  # winding does not matter


def test_solid_voxelisation_counts_triangles_below_the_bounds():
    vertices, faces = cube(0.5)
    vertices = vertices * torch.tensor([1.0, 1.0, 4.0], dtype=torch.float64)  # z from -2 to 2: beyond the bounds
    solid = voxelize_mesh_solid(vertices, faces, 8)
    assert solid[0, 0, :, 2:6, 2:6].all() and solid.sum() == 8 * 16


def test_solid_voxelisation_of_overlapping_parts_is_their_union():
    a, b = trimesh.creation.box(extents=(1.0, 1.0, 1.0)), trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.5, 0.25, 0.5))  # overlaps a in a 0.5 x 0.75 x 0.5 block
    vertices, faces = mesh(trimesh.util.concatenate([a, b]))
    solid = voxelize_mesh_solid(vertices, faces, 16)
    centres = voxel_centers(16, dtype=torch.float64)
    union = torch.zeros(16, 16, 16, dtype=torch.bool)
    for offset in (torch.zeros(3, dtype=torch.float64), torch.tensor([0.5, 0.25, 0.5], dtype=torch.float64)):
        union |= ((centres - offset).abs() < 0.5).all(-1)
    assert torch.equal(solid[0, 0].bool(), union)  # crossing parity would empty the 4 x 6 x 4 overlap
    assert torch.equal(solid, _voxelize_mesh_solid_naive(vertices, faces, 16))


def test_solid_voxelisation_of_a_world_object_matches_its_occupancy():
    from coursekit.data.world.shapes import make_shape

    shape = make_shape("chair", seed=3)  # legs, seat and back overlap where they join
    solid = voxelize_mesh_solid(shape.vertices.double(), shape.faces, 24)
    exact = shape.occupancy(voxel_centers(24, dtype=torch.float32).reshape(-1, 3)).view(24, 24, 24)
    disagree = (solid[0, 0].bool() != exact).sum().item()
    assert disagree <= 0.02 * exact.sum().item(), f"{disagree} of {int(exact.sum())} cells differ (tessellation only)"


# ------------------------------------------------------------------ devoxelisation, IoU

def test_trilinear_devoxelize_matches_naive_and_gradcheck():
    gen = torch.Generator().manual_seed(4)
    features = torch.rand(2, 3, 4, 5, 6, generator=gen, dtype=torch.float64)
    points = torch.rand(2, 25, 3, generator=gen, dtype=torch.float64) * 2.4 - 1.2  # includes the border zone
    out = trilinear_devoxelize(features, points)
    assert out.shape == (2, 25, 3)
    torch.testing.assert_close(out, _trilinear_devoxelize_naive(features, points))
    f, p = features.clone().requires_grad_(), (points * 0.8).requires_grad_()
    assert torch.autograd.gradcheck(trilinear_devoxelize, (f, p))


def test_trilinear_devoxelize_at_cell_centres_reads_the_cells():
    features = torch.rand(1, 2, 3, 4, 5, dtype=torch.float64)
    centres = voxel_centers((3, 4, 5), dtype=torch.float64).reshape(1, -1, 3)
    torch.testing.assert_close(trilinear_devoxelize(features, centres), features.flatten(2).transpose(1, 2))


def test_voxel_iou():
    a = torch.zeros(3, 1, 2, 2, 2)
    b = torch.zeros(3, 1, 2, 2, 2)
    a[0, 0, 0], b[0, 0, 0] = 1, 1  # identical
    a[1, 0, 0], b[1, 0, 1] = 1, 1  # disjoint
    a[2, 0, 0], b[2, 0, :, 0] = 1, 1  # 2 shared of 6
    assert voxel_iou(a, b).tolist() == [1.0, 0.0, pytest.approx(1 / 3)]
    assert voxel_iou(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2)).tolist() == [1.0]
    with pytest.raises(ValueError, match="same shape"):
        voxel_iou(a, b[:2])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_voxel_iou_is_symmetric_and_bounded(seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.rand(2, 1, 3, 3, 3, generator=gen) for _ in range(2))
    iou = voxel_iou(a, b)
    assert torch.equal(iou, voxel_iou(b, a)) and ((iou >= 0) & (iou <= 1)).all()


# ------------------------------------------------------------------ X-ray

def test_xray_projection_sums_along_each_axis():
    occ = torch.zeros(2, 1, 2, 3, 4)
    occ[0, 0, 1, 2, 3] = 1
    occ[0, 0, 0, 2, 3] = 1
    assert xray_projection(occ, "z").shape == (2, 1, 3, 4) and xray_projection(occ, "z")[0, 0, 2, 3] == 2
    assert xray_projection(occ, "y").shape == (2, 1, 2, 4) and xray_projection(occ, "y")[0, 0, 1, 3] == 1
    assert xray_projection(occ, "x").shape == (2, 1, 2, 3) and xray_projection(occ, "x")[0, 0, 0, 2] == 1
    assert xray_projection(occ, "z", normalize=True)[0, 0, 2, 3] == 1
    with pytest.raises(ValueError, match="axis"):
        xray_projection(occ, 2)


def test_xray_views_stack_x_y_z():
    occ = voxelize_points(torch.rand(2, 100, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1, 6)
    views = xray_views(occ)
    assert views.shape == (2, 3, 6, 6)
    for channel, axis in enumerate("xyz"):
        assert torch.equal(views[:, channel:channel + 1], xray_projection(occ, axis))
    with pytest.raises(ValueError, match="cubic"):
        xray_views(torch.zeros(1, 1, 2, 3, 3))
