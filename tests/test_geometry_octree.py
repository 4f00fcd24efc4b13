"""Octree construction, Morton keys, child slots, neighbour lookup, and the memory comparison."""

import itertools

import pytest
import torch
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.geometry.memory import representation_memory
from coursekit.geometry.octree import (Octree, _octree_occupancy_naive, morton_decode, morton_encode,
                                       octree_occupancy)
from coursekit.geometry.sampling import sample_mesh_surface
from coursekit.geometry.voxels import cell_indices


def cloud(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.2, 0.6], dtype=torch.float64) - 1


@settings(max_examples=20, deadline=None)
@given(level=st.integers(0, 21), seed=st.integers(0, 10_000))
def test_morton_round_trip(level, seed):
    cells = torch.randint(2 ** level, (50, 3), generator=torch.Generator().manual_seed(seed))
    keys = morton_encode(cells, level)
    assert torch.equal(morton_decode(keys, level), cells)
    assert int(keys.min()) >= 0 and int(keys.max()) < 8 ** level


def test_morton_octants_follow_z_y_x_row_major_order():
    block = torch.tensor(list(itertools.product(range(2), repeat=3)))  # (z, y, x) row-major
    assert morton_encode(block, 1).tolist() == list(range(8))
    assert morton_encode(torch.tensor([[3, 2, 5]]), 3).item() >> 3 == morton_encode(torch.tensor([[1, 1, 2]]), 2).item()


def test_levels_match_pooled_voxel_grids():
    points = cloud(400, seed=1)
    for got, want in zip(octree_occupancy(points, 4), _octree_occupancy_naive(points, 4)):
        assert torch.equal(got, want)
    assert [g.shape[0] for g in octree_occupancy(points, 4)] == [1, 2, 4, 8, 16]


def test_every_internal_node_has_eight_child_slots():
    tree = Octree.build(cloud(300, seed=2), 4)
    for level in range(tree.depth):
        slots = tree.children(level, tree.keys[level])
        assert slots.shape == (tree.num_nodes(level), 8)
        filled = slots[slots >= 0]
        assert torch.equal(filled.sort().values, torch.arange(tree.num_nodes(level + 1)))  # each child once
        assert ((slots >= 0).sum(1) >= 1).all()  # internal nodes contain a point
        child_keys = tree.keys[level + 1][slots.clamp_min(0)]
        octant = torch.arange(8).expand_as(slots)
        expected = tree.keys[level].unsqueeze(1) * 8 + octant
        assert torch.equal(child_keys[slots >= 0], expected[slots >= 0])
        assert torch.equal(tree.parent(level + 1, tree.keys[level + 1]).unique(), tree.keys[level])


def test_points_know_their_leaf_and_outside_points_are_dropped():
    points = torch.cat([cloud(100, seed=3), torch.tensor([[1.5, 0, 0], [0, 0, -2.0]], dtype=torch.float64)])
    tree = Octree.build(points, 3)
    assert (tree.point_rows[-2:] == -1).all() and (tree.point_rows[:-2] >= 0).all()
    cells, _ = cell_indices(points[:-2], 8)
    assert torch.equal(tree.coords(3)[tree.point_rows[:-2]], cells)


def test_neighbours_match_a_dictionary():
    tree = Octree.build(cloud(200, seed=4), 3)
    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)))
    rows = tree.neighbours(3, tree.keys[3], offsets)
    table = {tuple(c): i for i, c in enumerate(tree.coords(3).tolist())}
    expected = [[table.get(tuple(a + b for a, b in zip(c, o)), -1) for o in offsets.tolist()] for c in tree.coords(3).tolist()]
    assert rows.tolist() == expected
    assert (rows[:, 13] == torch.arange(tree.num_nodes(3))).all()  # the centre offset is the node itself


def test_octree_rejects_bad_input():
    with pytest.raises(ValueError, match="depth"):
        Octree.build(cloud(5), 22)
    with pytest.raises(ValueError, match="shape"):
        Octree.build(cloud(5)[None], 2)
    tree = Octree.build(cloud(5), 2)
    with pytest.raises(ValueError, match="level"):
        tree.children(2, tree.keys[2])
    with pytest.raises(ValueError, match="not nodes"):
        tree.children(0, torch.tensor([5]))
    with pytest.raises(ValueError, match="offsets"):
        tree.neighbours(1, tree.keys[1], torch.zeros(2, 2, dtype=torch.int64))


def test_memory_of_the_three_representations():
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.9)
    surface = sample_mesh_surface(torch.tensor(m.vertices), torch.tensor(m.faces), 20_000,
                                  generator=torch.Generator().manual_seed(5)).points
    rows = representation_memory(surface, [8, 32, 64])
    for row in rows:
        tree = Octree.build(surface, row["resolution"].bit_length() - 1)
        n = tree.num_nodes(tree.depth)
        assert row["occupied"] == n
        assert row["dense_bytes"] == 4 * row["resolution"] ** 3
        assert row["sparse_bytes"] == 36 * n
        internal = sum(tree.num_nodes(level) for level in range(tree.depth))
        assert row["octree_bytes"] == 8 * (internal + n) + 64 * internal + 4 * n == tree.memory_bytes() + 4 * n
    # dense grows as R^3, the others as the surface's R^2: dense wins coarse grids, loses fine ones
    assert rows[0]["dense_bytes"] < rows[0]["octree_bytes"] and rows[0]["dense_bytes"] < rows[0]["sparse_bytes"]
    assert rows[-1]["dense_bytes"] > rows[-1]["octree_bytes"] and rows[-1]["dense_bytes"] > rows[-1]["sparse_bytes"]
    with pytest.raises(ValueError, match="powers of two"):
        representation_memory(surface, [24])
