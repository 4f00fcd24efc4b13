"""kNN, ball query, grouping and three-NN interpolation against brute force and SciPy."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

import coursekit.geometry.neighbors as nb
from coursekit.geometry.neighbors import (_ball_query_naive, _group_naive, _knn_naive, _three_nn_interpolate_naive,
                                          ball_query, group, knn, three_nn_interpolate)

BACKENDS = ["torch", "kdtree"]


def clouds(b, n, d=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, d, generator=gen, dtype=dtype) * torch.tensor([2.0, 1.0, 0.5][:d] + [1.0] * (d - 3), dtype=dtype)


# ------------------------------------------------------------------ kNN

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [None, 7])
def test_knn_matches_brute_force(backend, chunk):
    query, points = clouds(2, 40, seed=1), clouds(2, 150, seed=2)
    d, i = knn(query, points, 6, chunk=chunk, backend=backend)
    d_ref, i_ref = _knn_naive(query, points, 6)
    assert i.dtype == torch.int64 and i.shape == (2, 40, 6)
    assert torch.equal(i, i_ref)
    torch.testing.assert_close(d, d_ref)
    assert (d[..., 1:] >= d[..., :-1]).all()


def test_knn_matches_scipy_and_torch_path_merges_point_blocks(monkeypatch):
    query, points = clouds(1, 30, seed=3, dtype=torch.float32), clouds(1, 500, seed=4, dtype=torch.float32)
    monkeypatch.setattr(nb, "_BLOCK", 64)  # 2 queries x 32 points per block: many merges
    d, i = knn(query, points, 9, backend="torch")
    d_ref, i_ref = cKDTree(points[0].numpy()).query(query[0].numpy(), k=9)
    assert np.array_equal(i[0].numpy(), i_ref)
    np.testing.assert_allclose(d[0].numpy(), d_ref ** 2, rtol=1e-5, atol=1e-7)


def test_knn_in_feature_space_and_extreme_k():
    query, points = clouds(2, 10, d=7, seed=5), clouds(2, 12, d=7, seed=6)
    for k in (1, 12):
        d, i = knn(query, points, k)  # D = 7: the torch path
        d_ref, i_ref = _knn_naive(query, points, k)
        assert torch.equal(i, i_ref)
        torch.testing.assert_close(d, d_ref)


def test_knn_distances_are_differentiable():
    query = clouds(1, 5, seed=7).requires_grad_()
    points = clouds(1, 20, seed=8).requires_grad_()
    assert torch.autograd.gradcheck(lambda q, p: knn(q, p, 4)[0], (query, points))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_knn_is_equivariant_to_permuting_points(seed):
    query, points = clouds(1, 8, seed=seed), clouds(1, 30, seed=seed + 1)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(seed))
    d, i = knn(query, points, 5)
    d_p, i_p = knn(query, points[:, perm], 5)
    torch.testing.assert_close(d, d_p)
    assert torch.equal(perm[i_p], i)


_PEAK_SCRIPT = """
from pathlib import Path
import torch
import coursekit.geometry.neighbors as nb

def peak_mib(block):
    nb._BLOCK = block
    points = torch.rand(1, 8_000, 3)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size
    status = lambda key: int(next(l for l in Path("/proc/self/status").read_text().splitlines()
                                  if l.startswith(key)).split()[1])
    before = status("VmRSS")
    nb.knn(points, points, 4, backend="torch")
    return (status("VmHWM") - before) / 1024

print(peak_mib(nb._BLOCK), peak_mib(1 << 40))
"""


def test_knn_torch_path_never_materialises_m_by_n():
    """Peak memory of an 8k x 8k query in a fresh process (M x N float32 would be 244 MiB).

    glibc's mmap threshold is fixed so that freed blocks go back to the system; the second
    measurement (one block for everything) shows that the method sees a materialised matrix.
    """
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read peak memory")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0 and "clear_refs" in run.stderr:
        pytest.skip("cannot reset the peak resident size")
    blocked, materialised = map(float, run.stdout.split())
    assert blocked < 80 and materialised > 200


@pytest.mark.parametrize("bad, match", [
    (dict(points=torch.zeros(1, 0, 3)), "empty"),
    (dict(k=11), "exceeds the number of points"),
    (dict(k=0), "at least 1"),
    (dict(k=2.0), "must be an int"),
    (dict(points=torch.full((1, 10, 3), float("nan"))), "NaN"),
    (dict(points=torch.zeros(10, 3)), "shape"),
    (dict(points=torch.zeros(2, 10, 3)), "batch size"),
    (dict(points=torch.zeros(1, 10, 3, dtype=torch.int64)), "float"),
    (dict(backend="gpu"), "backend"),
])
def test_knn_rejects_bad_input(bad, match):
    args = dict(query=torch.zeros(1, 4, 3), points=torch.rand(1, 10, 3), k=3) | bad
    with pytest.raises((ValueError, TypeError), match=match):
        knn(**args)


# ------------------------------------------------------------------ ball query

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [None, 5])
def test_ball_query_matches_the_cuda_rule(backend, chunk):
    points = clouds(2, 200, seed=9)
    query = points[:, :25] + 0.01
    idx, counts = ball_query(query, points, 0.3, 8, chunk=chunk, backend=backend, return_counts=True)
    assert idx.dtype == torch.int64 and idx.shape == (2, 25, 8)
    assert torch.equal(idx, _ball_query_naive(query, points, 0.3, 8))
    inside = (((query.unsqueeze(2) - points.unsqueeze(1)) ** 2).sum(-1) < 0.09).sum(-1)
    assert torch.equal(counts, inside.clamp_max(8))
    assert (counts < 8).any() and (inside > 8).any()  # both padding and truncation happen


def test_ball_query_torch_path_merges_point_blocks(monkeypatch):
    points = clouds(2, 300, seed=10)
    query = clouds(2, 9, seed=11)
    monkeypatch.setattr(nb, "_BLOCK", 50)
    assert torch.equal(ball_query(query, points, 0.4, 16, backend="torch"), _ball_query_naive(query, points, 0.4, 16))


def test_ball_query_matches_scipy_sets():
    points = clouds(1, 400, seed=12)
    query = clouds(1, 20, seed=13)
    idx, counts = ball_query(query, points, 0.25, 400, return_counts=True, backend="torch")
    lists = cKDTree(points[0].numpy()).query_ball_point(query[0].numpy(), 0.25)
    for row, count, ref in zip(idx[0], counts[0], lists):
        assert row[:count].tolist() == sorted(ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ball_query_padding_strictness_and_empty_balls(backend):
    points = torch.tensor([[[5.0, 0, 0], [0.5, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [9, 9, 9]]])
    query = torch.tensor([[[0.0, 0, 0], [-7.0, 0, 0]]])
    idx, counts = ball_query(query, points, 0.5, 4, return_counts=True, backend=backend)
    # index 1 lies at distance exactly 0.5: outside (strict <, as the CUDA kernel)
    assert idx.tolist() == [[[2, 3, 2, 2], [0, 0, 0, 0]]]
    assert counts.tolist() == [[2, 0]]


def test_ball_query_rejects_bad_input():
    p = torch.rand(1, 10, 3)
    for kwargs, match in [(dict(radius=0.0), "radius"), (dict(radius=float("nan")), "radius"),
                          (dict(max_samples=0), "at least 1"), (dict(points=torch.rand(1, 10, 2)), "shape")]:
        args = dict(query=p[:, :2], points=p, radius=0.1, max_samples=4) | kwargs
        with pytest.raises(ValueError, match=match):
            ball_query(**args)


# ------------------------------------------------------------------ group

def test_group_matches_naive_and_gradcheck():
    features = clouds(2, 15, d=4, seed=14).requires_grad_()
    idx = torch.randint(15, (2, 6, 5), generator=torch.Generator().manual_seed(0))
    out = group(features, idx)
    assert out.shape == (2, 6, 5, 4)
    assert torch.equal(out, _group_naive(features, idx))
    assert torch.autograd.gradcheck(lambda f: group(f, idx), (features,))
    assert torch.equal(group(features, idx[:, :, 0]), _group_naive(features, idx[:, :, 0]))  # (B, S) indices


def test_group_rejects_bad_indices():
    f = torch.rand(2, 5, 3)
    with pytest.raises(ValueError, match="outside"):
        group(f, torch.full((2, 3), 5))
    with pytest.raises(ValueError, match="outside"):
        group(f, torch.full((2, 3), -1))
    with pytest.raises(TypeError, match="int64"):
        group(f, torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="B = 2"):
        group(f, torch.zeros(3, 3, dtype=torch.int64))


# ------------------------------------------------------------------ three-NN interpolation

def test_three_nn_interpolate_matches_naive_and_gradcheck():
    query, points, features = clouds(2, 12, seed=15), clouds(2, 9, seed=16), clouds(2, 9, d=5, seed=17)
    out = three_nn_interpolate(query, points, features)
    torch.testing.assert_close(out, _three_nn_interpolate_naive(query, points, features))
    q, p, f = (t.clone().requires_grad_() for t in (query, points, features))
    assert torch.autograd.gradcheck(lambda q, p, f: three_nn_interpolate(q, p, f), (q, p, f))


def test_three_nn_interpolate_uses_inverse_squared_distance():
    points = torch.tensor([[[1.0, 0, 0], [0, 2, 0], [0, 0, 4], [50, 50, 50]]], dtype=torch.float64)
    features = torch.tensor([[[1.0], [0.0], [0.0], [100.0]]], dtype=torch.float64)
    out = three_nn_interpolate(torch.zeros(1, 1, 3, dtype=torch.float64), points, features)
    w = torch.tensor([1 / 1, 1 / 4, 1 / 16], dtype=torch.float64)  # 1 / d^2, not 1 / d
    torch.testing.assert_close(out[0, 0, 0], w[0] / w.sum())


def test_three_nn_interpolate_copies_features_at_the_points_and_handles_small_clouds():
    points, features = clouds(1, 6, seed=18), clouds(1, 6, d=2, seed=19)
    torch.testing.assert_close(three_nn_interpolate(points, points, features), features)
    out = three_nn_interpolate(clouds(1, 4, seed=20), points[:, :2], features[:, :2])
    assert out.shape == (1, 4, 2)
    with pytest.raises(ValueError, match="features"):
        three_nn_interpolate(points, points, features[:, :5])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), value=st.floats(-5, 5))
def test_three_nn_interpolate_preserves_constants(seed, value):
    points = clouds(1, 10, seed=seed)
    out = three_nn_interpolate(clouds(1, 7, seed=seed + 1), points, torch.full((1, 10, 3), value, dtype=torch.float64))
    torch.testing.assert_close(out, torch.full_like(out, value))
