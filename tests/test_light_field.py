"""Light Field Descriptor: identity, symmetry, rotation robustness, class separation, the view group."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from coursekit.data.world import make_shape
from coursekit.data.world.shapes import random_rotation
from coursekit.metrics.light_field import (VIEW_PAIRS, dodecahedron_rotations, fourier_descriptor, lfd_distance,
                                           light_field_descriptor, light_field_distance, normalize_mesh,
                                           view_alignments, zernike_magnitudes)


def _desc(shape, rotation=None, scale=1.0, shift=(0.0, 0.0, 0.0)):
    v = shape.vertices
    if rotation is not None:
        v = v @ torch.as_tensor(rotation, dtype=torch.float32).T
    return light_field_descriptor(v * scale + torch.tensor(shift), shape.faces)


@pytest.fixture(scope="module")
def shapes():
    return {name: [make_shape(name, seed) for seed in range(2)] for name in ("chair", "airplane", "mug", "table")}


def test_group_is_the_dodecahedron_symmetry_group():
    g = dodecahedron_rotations()
    assert g.shape == (60, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(g @ g.transpose(1, 2), eye.expand(60, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(g), torch.ones(60, dtype=torch.float64))
    # closed under products: every product is again in the group
    prod = (g[:, None] @ g[None]).reshape(-1, 9)
    dist = torch.cdist(prod, g.reshape(60, 9))
    assert (dist.min(1).values < 1e-6).all()
    perms = view_alignments()
    assert perms.shape == (60, len(VIEW_PAIRS)) and len(VIEW_PAIRS) == 10
    assert torch.equal(perms[0], torch.arange(10))
    assert all(sorted(p.tolist()) == list(range(10)) for p in perms)
    assert len({tuple(p.tolist()) for p in perms}) == 60  # 60 distinct alignments


def test_identical_shape_gives_zero_and_distance_is_symmetric(shapes):
    a, b = _desc(shapes["chair"][0]), _desc(shapes["mug"][0])
    assert lfd_distance(a, a) == 0
    assert torch.isclose(lfd_distance(a, b), lfd_distance(b, a))
    assert lfd_distance(a, b) > 0


def test_translation_and_scale_are_normalised_away(shapes):
    a = _desc(shapes["chair"][0])
    moved = _desc(shapes["chair"][0], scale=2.5, shift=(0.3, -1.0, 2.0))
    assert torch.allclose(a, moved, atol=1e-6 * a.abs().max())


def test_symmetry_rotation_is_matched_by_an_alignment(shapes):
    chair = shapes["chair"][0]
    a = _desc(chair)
    other = lfd_distance(a, _desc(shapes["chair"][1]))
    for k in (5, 17, 42):
        d = lfd_distance(a, _desc(chair, dodecahedron_rotations()[k].numpy()))
        assert d < 0.2 * other  # only pixel sampling (in-plane roll of the silhouettes) differs


def test_rotation_robust_and_classes_further_apart(shapes):
    gen = torch.Generator().manual_seed(0)
    for name in ("chair", "airplane"):
        a = _desc(shapes[name][0])
        turned = [lfd_distance(a, _desc(shapes[name][0], random_rotation("so3", gen))) for _ in range(2)]
        across = [lfd_distance(a, _desc(shapes[o][0])) for o in shapes if o != name]
        assert max(turned) < min(across), (name, turned, across)
    # the descriptor without the alignment minimum is NOT robust: the test can fail
    a, r = _desc(shapes["chair"][0]), _desc(shapes["chair"][0], dodecahedron_rotations()[5].numpy())
    assert (a - r).abs().sum() > 5 * lfd_distance(a, r)


def test_zernike_and_fourier_invariances():
    s = 48
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    blob = (((xx - 30) ** 2 / 60 + (yy - 20) ** 2 / 20) < 4).float()  # an off-centre ellipse
    turned = blob.flip(0).T.contiguous()  # exact 90-degree rotation of the pixel grid
    mirrored = blob.flip(1)
    z = zernike_magnitudes(torch.stack([blob, turned, mirrored]))
    assert z.shape == (3, 36)
    assert torch.allclose(z[0], z[1], atol=1e-9) and torch.allclose(z[0], z[2], atol=1e-9)
    f = fourier_descriptor(torch.stack([blob, turned, mirrored]))
    assert torch.allclose(f[0], f[1], atol=1e-6) and torch.allclose(f[0], f[2], atol=1e-6)
    # Z_00 is the area times 1/pi on the unit disk: a full disk gives 1
    disk = ((((xx + 0.5) / s * 2 - 1) ** 2 + ((yy + 0.5) / s * 2 - 1) ** 2) <= 1).float()
    assert math.isclose(float(zernike_magnitudes(disk[None])[0, 0]), 1.0, rel_tol=0.01)


def test_bad_input():
    with pytest.raises(ValueError, match="descriptors"):
        lfd_distance(torch.zeros(10, 5), torch.zeros(9, 5))
    with pytest.raises(ValueError, match="zero surface area"):
        normalize_mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="images"):
        zernike_magnitudes(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="faces"):
        light_field_distance((torch.rand(4, 3), torch.tensor([[0, 1, 7]])), (torch.rand(4, 3), torch.tensor([[0, 1, 2]])))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, 59))
def test_distance_is_symmetric_and_invariant_to_view_alignments(seed, k):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.rand(10, 46, generator=gen, dtype=torch.float64), torch.rand(10, 46, generator=gen, dtype=torch.float64)
    d = lfd_distance(a, b)
    assert torch.isclose(d, lfd_distance(b, a))
    # re-labelling b's views by one of the 60 alignments (what turning the shape does) changes nothing
    assert torch.isclose(d, lfd_distance(a, b[view_alignments()[k]]))
    # ... but an arbitrary re-labelling generally does (a transposition is not in the group)
    swap = torch.arange(10)
    swap[[0, 1]] = swap[[1, 0]]
    assert not any(torch.equal(swap, p) for p in view_alignments())
