"""k-NN and radius graphs (PyG edge_index convention) and mesh edges, against brute force."""

import pytest
import torch
import trimesh

from coursekit.geometry.graphs import knn_graph, mesh_edges, radius_graph


def cloud(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)


def sources_of(edge_index, n):
    return [edge_index[0, edge_index[1] == i].tolist() for i in range(n)]


@pytest.mark.parametrize("loop", [False, True])
def test_knn_graph_points_from_neighbours_to_centres(loop):
    points = cloud(60, seed=1)
    edges = knn_graph(points, 5, loop=loop)
    assert edges.dtype == torch.int64 and edges.shape == (2, 60 * 5)
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
    if not loop:
        d2.fill_diagonal_(float("inf"))
    nearest = d2.argsort(1)[:, :5]
    assert sources_of(edges, 60) == nearest.tolist()  # row 1 = target (centre), row 0 = its neighbours, nearest first
    assert torch.equal(edges[1], torch.arange(60).repeat_interleave(5))
    assert ((edges[0] == edges[1]).any()) == loop


def test_knn_graph_excludes_self_even_among_duplicates():
    points = torch.tensor([[0.0, 0, 0], [0, 0, 0], [0, 0, 0], [5, 5, 5]])
    edges = knn_graph(points, 2)
    assert (edges[0] != edges[1]).all()
    assert sorted(sources_of(edges, 4)[0]) == [1, 2]
    with pytest.raises(ValueError, match="N - 1"):
        knn_graph(points, 4)


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_matches_brute_force(loop):
    points = cloud(80, seed=2)
    edges = radius_graph(points, 0.35, max_neighbors=100, loop=loop)
    d = ((points[:, None] - points[None]) ** 2).sum(-1).sqrt()
    expected = [[j for j in range(80) if d[i, j] < 0.35 and (loop or j != i)] for i in range(80)]
    assert sources_of(edges, 80) == expected


def test_radius_graph_keeps_the_lowest_indices_when_capped():
    points = cloud(80, seed=3)
    edges = radius_graph(points, 0.5, max_neighbors=4)
    d = ((points[:, None] - points[None]) ** 2).sum(-1).sqrt()
    expected = [[j for j in range(80) if d[i, j] < 0.5 and j != i][:4] for i in range(80)]
    assert sources_of(edges, 80) == expected
    assert max(len(s) for s in expected) == 4


def test_mesh_edges_of_closed_meshes_satisfy_euler():
    for m in (trimesh.creation.box(), trimesh.creation.icosphere(subdivisions=1)):
        faces = torch.tensor(m.faces, dtype=torch.int64)
        edges = mesh_edges(faces)
        assert edges.shape[0] == 2 and (edges[0] < edges[1]).all()
        assert len(m.vertices) - edges.shape[1] + len(m.faces) == 2  # V - E + F = 2 for a sphere
        assert set(map(tuple, edges.T.tolist())) == set(map(tuple, m.edges_unique.tolist()))


def test_graphs_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        knn_graph(cloud(5)[None], 2)
    with pytest.raises(ValueError, match="radius"):
        radius_graph(cloud(5), -1.0)
    with pytest.raises(TypeError, match="int64"):
        mesh_edges(torch.zeros(2, 3, dtype=torch.int32))
