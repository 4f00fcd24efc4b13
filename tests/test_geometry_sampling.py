"""Farthest point sampling and mesh-surface sampling."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.geometry.sampling import _farthest_point_sample_naive, farthest_point_sample, sample_mesh_surface


def clouds(b, n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, 3, generator=gen, dtype=dtype) * torch.tensor([3.0, 1.0, 0.3], dtype=dtype)


# ------------------------------------------------------------------ FPS

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fps_matches_naive(dtype):
    points = clouds(3, 80, seed=1, dtype=dtype)
    idx = farthest_point_sample(points, 20)
    assert idx.dtype == torch.int64 and idx.shape == (3, 20)
    assert torch.equal(idx, _farthest_point_sample_naive(points, 20))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), data=st.data())
def test_fps_matches_naive_for_any_size_and_start(seed, n, data):
    s = data.draw(st.integers(1, n))
    start = data.draw(st.integers(0, n - 1))
    points = clouds(2, n, seed=seed)
    assert torch.equal(farthest_point_sample(points, s, start_idx=start), _farthest_point_sample_naive(points, s, start))


def test_fps_picks_extremes_first_and_every_point_when_s_equals_n():
    pts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [10, 0, 0], [9, 0, 0]]])
    assert farthest_point_sample(pts, 3).tolist() == [[0, 2, 1]]
    idx = farthest_point_sample(clouds(2, 15, seed=2), 15)
    assert (idx.sort(dim=1).values == torch.arange(15)).all()


def test_fps_per_cloud_and_random_starts():
    points = clouds(2, 30, seed=3)
    idx = farthest_point_sample(points, 6, start_idx=torch.tensor([4, 17]))
    assert idx[:, 0].tolist() == [4, 17]
    assert torch.equal(idx[1:], _farthest_point_sample_naive(points[1:], 6, 17))
    a = farthest_point_sample(points, 6, start_idx=None, generator=torch.Generator().manual_seed(5))
    b = farthest_point_sample(points, 6, start_idx=None, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_fps_repeats_only_after_every_distinct_point():
    points = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]]])
    assert farthest_point_sample(points, 4).tolist() == [[0, 1, 0, 0]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_samples=31), "exceeds"),
    (dict(n_samples=0), "at least 1"),
    (dict(start_idx=30), r"\[0, 30\)"),
    (dict(start_idx=None), "Generator"),
    (dict(start_idx=torch.tensor([0])), "shape"),
    (dict(points=torch.zeros(2, 0, 3)), "empty"),
    (dict(points=torch.full((2, 30, 3), float("nan"))), "NaN"),
])
def test_fps_rejects_bad_input(kwargs, match):
    args = dict(points=clouds(2, 30), n_samples=5) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        farthest_point_sample(**args)


# ------------------------------------------------------------------ mesh surfaces

def two_triangles():
    vertices = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 2, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    return vertices, faces  # areas 0.5 and 3: ratio 1 : 6


def test_surface_samples_lie_on_their_faces_with_face_normals_and_labels():
    vertices, faces = two_triangles()
    s = sample_mesh_surface(vertices, faces, 500, generator=torch.Generator().manual_seed(0),
                            face_labels=torch.tensor([7, 9]))
    assert s.points.shape == (500, 3) and s.face_index.dtype == torch.int64
    a, b, c = vertices[faces[s.face_index]].unbind(1)
    normal = torch.linalg.cross(b - a, c - a)
    torch.testing.assert_close((s.points - a).mul(normal).sum(-1), torch.zeros(500, dtype=torch.float64))
    # inside: the barycentric coordinates are non-negative
    for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
        assert (torch.linalg.cross(q - p, s.points - p).mul(normal).sum(-1) >= -1e-12).all()
    torch.testing.assert_close(s.normals, torch.nn.functional.normalize(normal, dim=-1))
    assert torch.equal(s.labels, torch.tensor([7, 9])[s.face_index])


def test_faces_are_drawn_by_area_and_points_are_uniform_inside():
    vertices, faces = two_triangles()
    s = sample_mesh_surface(vertices, faces, 40_000, generator=torch.Generator().manual_seed(1))
    share = (s.face_index == 0).double().mean()
    assert abs(share - 1 / 7) < 0.01  # binomial sd 0.0018
    # uniform points on a triangle average to its centroid; without the square root they average a/2 + b/4 + c/4
    big = s.points[s.face_index == 1]
    torch.testing.assert_close(big.mean(0), vertices[3:].mean(0), atol=0.02, rtol=0)


def test_surface_sampling_is_reproducible_and_normals_optional():
    vertices, faces = two_triangles()
    a = sample_mesh_surface(vertices, faces, 10, generator=torch.Generator().manual_seed(2), return_normals=False)
    b = sample_mesh_surface(vertices, faces, 10, generator=torch.Generator().manual_seed(2), return_normals=False)
    assert torch.equal(a.points, b.points) and a.normals is None and a.labels is None


def test_zero_area_faces_are_never_drawn():
    vertices, faces = two_triangles()
    faces = torch.cat([torch.tensor([[0, 0, 1]]), faces, torch.tensor([[3, 4, 4]])])
    s = sample_mesh_surface(vertices, faces, 2000, generator=torch.Generator().manual_seed(3))
    assert set(s.face_index.tolist()) == {1, 2}


@pytest.mark.parametrize("vertices, faces, match", [
    (torch.zeros(3, 2), torch.tensor([[0, 1, 2]]), "shape"),
    (torch.zeros(3, 3), torch.tensor([[0, 1, 3]]), "outside"),
    (torch.zeros(3, 3), torch.tensor([[0, 1, 2]], dtype=torch.int32), "int64"),
    (torch.full((3, 3), float("nan")), torch.tensor([[0, 1, 2]]), "NaN"),
    (torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), "zero surface area"),
    (torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.int64), "no faces"),
])
def test_surface_sampling_rejects_bad_meshes(vertices, faces, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sample_mesh_surface(vertices, faces, 5)


def _covering_radius(points: torch.Tensor, centres: torch.Tensor) -> float:
    """max over points of the distance to the nearest centre (the k-centre objective)."""
    return torch.cdist(points, centres).amin(dim=1).max().item()


def _optimal_covering_radius(points: torch.Tensor, k: int) -> float:
    """Exact k-centre optimum over centre subsets of the points, by enumeration (tiny inputs only)."""
    dist = torch.cdist(points, points)
    subsets = torch.combinations(torch.arange(points.shape[0]), k)
    return dist[:, subsets].amin(dim=-1).amax(dim=0).min().item()


@pytest.mark.parametrize("grid, k", [((3, 3, 3), 3), ((4, 4, 1), 4), ((5, 3, 2), 4), ((4, 3, 2), 5)])
def test_fps_covering_radius_within_twice_the_optimum_on_a_grid(grid, k):
    axes = [torch.arange(n, dtype=torch.float64) * s for n, s in zip(grid, (1.0, 1.3, 0.7))]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    optimum = _optimal_covering_radius(points, k)
    for start in range(points.shape[0]):
        idx = farthest_point_sample(points[None], k, start_idx=start)[0]
        assert _covering_radius(points, points[idx]) <= 2 * optimum + 1e-12, f"start {start}"


def test_covering_radius_bound_can_fail_for_a_poor_sampler():
    # Control for the test above: the first k points of a grid cluster in one corner.
    axes = [torch.arange(5, dtype=torch.float64)] * 3
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    assert _covering_radius(points, points[:2]) > 2 * _optimal_covering_radius(points, 2)
