"""Sparse coordinates, the coordinate hash table, and kernel maps checked against dense convolutions."""

import pytest
import torch
import torch.nn.functional as F

from coursekit.geometry.sparse import (SparseCoords, _kernel_map_naive, kernel_map, kernel_offsets, pack_coords,
                                       sparse_quantize, strided_kernel_map)


def random_sites(batch=2, size=(6, 7, 5), density=0.15, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, *size, generator=gen) < density
    dense = torch.randn(batch, channels, *size, generator=gen, dtype=torch.float64) * mask.unsqueeze(1)
    return SparseCoords.from_dense(dense, mask), dense


def sparse_conv(inputs_features, maps, weight, n_out, transpose=False):
    """out[j] += W[offset] x[i] over the map (what the sparse conv layer will compute)."""
    w = weight.flatten(2)  # (C_out, C_in, k^3) for Conv3d; (C_in, C_out, k^3) for ConvTranspose3d
    out = inputs_features.new_zeros(n_out, w.shape[1] if transpose else w.shape[0])
    for o, entry in enumerate(maps):
        src, dst = (entry.out_idx, entry.in_idx) if transpose else (entry.in_idx, entry.out_idx)
        wo = w[:, :, o] if transpose else w[:, :, o].T
        out.index_add_(0, dst, inputs_features[src] @ wo)
    return out


def read(dense, coords):
    b, z, y, x = coords.unbind(-1)
    return dense.permute(0, 2, 3, 4, 1)[b, z, y, x]


def test_dense_round_trip_and_lookup():
    sites, dense = random_sites()
    assert torch.equal(sites.to_dense((6, 7, 5), 2), dense)
    assert torch.equal(sites.lookup(sites.coords), torch.arange(len(sites)))
    empty_site = torch.nonzero((dense == 0).all(1))[0]
    queries = torch.stack([empty_site, torch.tensor([1, -3, 0, 0]), torch.tensor([0, 40000, 0, 0]), sites.coords[5]])
    assert sites.lookup(queries).tolist() == [-1, -1, -1, 5]


def test_packing_is_monotone_and_rejects_duplicates():
    coords = torch.tensor([[0, -5, 3, 2], [0, -5, 3, 3], [0, 4, -32768, 0], [1, -32768, 0, 0], [1, 0, 0, 32767]])
    keys = pack_coords(coords)
    assert (keys[1:] > keys[:-1]).all()
    with pytest.raises(ValueError, match="duplicate"):
        SparseCoords(torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="spatial coordinates"):
        SparseCoords(torch.tensor([[0, 1, 1, 40000]]), torch.zeros(1, 1))
    with pytest.raises(TypeError, match="int64"):
        SparseCoords(torch.zeros(1, 4, dtype=torch.int32), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="features"):
        SparseCoords(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(2, 1))


@pytest.mark.parametrize("dilation", [1, 2])
def test_kernel_map_matches_the_naive_double_loop(dilation):
    sites, _ = random_sites(seed=1)
    maps = kernel_map(sites, 3, dilation)
    naive = _kernel_map_naive(sites.coords, 3, dilation)
    assert [tuple(e.offset.tolist()) for e in maps] == [offset for offset, _ in naive]
    for entry, (_, pairs) in zip(maps, naive):
        assert sorted(zip(entry.in_idx.tolist(), entry.out_idx.tolist())) == sorted(pairs)
    centre = maps[13]
    assert torch.equal(centre.in_idx, centre.out_idx) and len(centre.in_idx) == len(sites)


@pytest.mark.parametrize("kernel_size, dilation", [(3, 1), (3, 2), (5, 1)])
def test_submanifold_conv_through_the_map_equals_dense_conv_at_the_sites(kernel_size, dilation):
    sites, dense = random_sites(seed=2)
    weight = torch.randn(4, 3, kernel_size, kernel_size, kernel_size, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(3))
    out = sparse_conv(sites.features, kernel_map(sites, kernel_size, dilation), weight, len(sites))
    reference = F.conv3d(dense, weight, padding=dilation * (kernel_size // 2), dilation=dilation)
    torch.testing.assert_close(out, read(reference, sites.coords))


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_strided_conv_and_its_transpose_equal_dense_ones(kernel_size):
    sites, dense = random_sites(size=(8, 6, 10), seed=4)
    out_coords, maps = strided_kernel_map(sites, stride=2, kernel_size=kernel_size)
    coarse = sites.coords.clone()
    coarse[:, 1:] //= 2
    assert torch.equal(out_coords, torch.unique(coarse, dim=0))
    pad = (kernel_size - 1) // 2
    weight = torch.randn(4, 3, *(kernel_size,) * 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out = sparse_conv(sites.features, maps, weight, len(out_coords))
    reference = F.conv3d(dense, weight, stride=2, padding=pad)
    torch.testing.assert_close(out, read(reference, out_coords))
    # transpose: coarse features back to the fine sites through the same pairs
    coarse_features = torch.randn(len(out_coords), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    t_weight = torch.randn(4, 3, *(kernel_size,) * 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    fine = sparse_conv(coarse_features, maps, t_weight, len(sites), transpose=True)
    coarse_dense = SparseCoords(out_coords, coarse_features).to_dense((4, 3, 5), 2)
    reference = F.conv_transpose3d(coarse_dense, t_weight, stride=2, padding=pad, output_padding=1 if pad else 0)
    torch.testing.assert_close(fine, read(reference, sites.coords))


def test_strided_map_of_negative_coordinates_uses_floor():
    sites = SparseCoords(torch.tensor([[0, -1, -1, -1], [0, -2, 0, 1], [0, 1, 1, 1]]), torch.ones(3, 1))
    out_coords, maps = strided_kernel_map(sites)
    assert out_coords.tolist() == [[0, -1, -1, -1], [0, -1, 0, 0], [0, 0, 0, 0]]
    assert sum(len(e.in_idx) for e in maps) == 3  # kernel = stride: every fine site in exactly one pair


def test_kernel_offsets_and_bad_kernels():
    assert kernel_offsets(3).shape == (27, 3) and kernel_offsets(3)[0].tolist() == [-1, -1, -1]
    assert kernel_offsets(2).tolist()[:2] == [[0, 0, 0], [0, 0, 1]]
    sites, _ = random_sites()
    with pytest.raises(ValueError, match="odd"):
        kernel_map(sites, 2)


def test_sparse_quantize_averages_features_per_cell():
    points = torch.tensor([[[0.1, 0.1, 0.1], [0.2, 0.3, 0.05], [-0.9, 0.5, 0.5], [3.0, 0, 0]],
                           [[0.1, 0.1, 0.1], [0.6, 0.6, 0.6], [0.7, 0.6, 0.6], [0.9, 0.9, 0.9]]])
    features = torch.arange(8.0).reshape(2, 4, 1)
    sites, rows = sparse_quantize(points, 4, features=features)
    assert sites.coords.tolist() == [[0, 2, 2, 2], [0, 3, 3, 0], [1, 2, 2, 2], [1, 3, 3, 3]]  # (batch, z, y, x)
    assert sites.features.flatten().tolist() == [0.5, 2.0, 4.0, 6.0]
    assert rows.tolist() == [[0, 0, 1, -1], [2, 3, 3, 3]]
    occupancy, _ = sparse_quantize(points, 4)
    assert (occupancy.features == 1).all()
