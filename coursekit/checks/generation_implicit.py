"""Exercise of lecture 05 (implicit surfaces): march an SDF grid into a mesh and score it.

The student writes ``march_and_score(sdf, spacing, origin, gt_points)``: scikit-image's
``marching_cubes`` on the zero level of an SDF sampled on a grid (axis 0 = z, 1 = y, 2 = x;
``spacing`` and ``origin`` in world ``(x, y, z)`` order), the vertices moved to world
coordinates, faces wound outwards; then two numbers, a float64 tensor ``[chamfer, volume]``:
the Chamfer distance between the mesh's VERTICES and ``gt_points`` (PyTorch3D convention:
mean squared nearest distance each way, summed) and the mesh's signed volume
(:math:`\\frac16 \\sum a \\cdot (b \\times c)`, positive for outward faces).

The cases are built so that each plausible mistake shows: non-cubic grids (``D != H != W``)
with anisotropic spacing and a non-zero origin, objects off-centre and longer along x than
z (axis swaps move them), and grids reaching far enough out that scikit-image's default
level ``(min + max) / 2`` still cuts the field.
"""

from __future__ import annotations

import numpy as np
import torch

from ..metrics.chamfer import chamfer_distance
from ..models.generation.marching import march, mesh_volume
from .core import Case, Exercise, Mistake


def _box_sdf(p: torch.Tensor, centre: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    q = (p - centre).abs() - half
    return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)


def _ellipsoid_sdf(p: torch.Tensor, centre: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    return ((p - centre) / radii).norm(dim=-1).sub(1) * radii.min()


def _grid(shape: tuple[int, int, int], lo: torch.Tensor, hi: torch.Tensor):
    """Nodes of a (D, H, W) grid from ``lo`` to ``hi`` (x, y, z): points, spacing (x, y, z), origin."""
    D, H, W = shape
    spacing = (hi - lo) / torch.tensor([W - 1, H - 1, D - 1], dtype=torch.float64)
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (D, H, W)), indexing="ij")
    return lo + torch.stack([x, y, z], -1) * spacing, spacing, lo.clone()


def _cases(gen: torch.Generator) -> list[Case]:
    f64 = dict(dtype=torch.float64)
    jitter = lambda scale: (torch.rand(3, generator=gen, **f64) - 0.5) * scale  # noqa: E731
    cases = []
    # a box, longer along x than z, off-centre, on a (12, 15, 20) grid
    centre = torch.tensor([0.1, -0.05, 0.2], **f64) + jitter(0.05)
    half = torch.tensor([0.5, 0.3, 0.2], **f64)
    points, spacing, origin = _grid((12, 15, 20), torch.tensor([-0.8, -0.6, -0.5], **f64), torch.tensor([0.8, 0.6, 0.9], **f64))
    sdf = _box_sdf(points, centre, half)
    gt = (torch.rand(300, 3, generator=gen, **f64) * 2 - 1) * half
    axis = torch.randint(3, (300,), generator=gen)
    side = torch.where(torch.rand(300, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    gt[torch.arange(300), axis] = side * half[axis]
    cases.append(Case("an off-centre box on a non-cubic 12 x 15 x 20 grid (D, H, W), anisotropic spacing",
                      (sdf, spacing, origin, gt + centre)))
    # an ellipsoid on a (18, 11, 14) grid
    centre = torch.tensor([-0.2, 0.15, -0.1], **f64) + jitter(0.05)
    radii = torch.tensor([0.6, 0.35, 0.25], **f64)
    points, spacing, origin = _grid((18, 11, 14), torch.tensor([-1.0, -0.5, -0.7], **f64), torch.tensor([0.7, 0.8, 0.6], **f64))
    sdf = _ellipsoid_sdf(points, centre, radii)
    directions = torch.nn.functional.normalize(torch.randn(400, 3, generator=gen, **f64), dim=-1)
    cases.append(Case("an off-centre ellipsoid on a non-cubic 18 x 11 x 14 grid", (sdf, spacing, origin, centre + directions * radii)))
    return cases


def _score(vertices: torch.Tensor, faces: torch.Tensor, gt_points: torch.Tensor) -> torch.Tensor:
    vertices = vertices.double()
    cd = chamfer_distance(vertices[None], gt_points[None], "pytorch3d")[0]
    return torch.stack([cd, mesh_volume(vertices, faces)])


def _reference(sdf, spacing, origin, gt_points):
    vertices, faces = march(sdf, 0.0, spacing, origin)
    return _score(vertices, faces, gt_points)


def _skimage(sdf, level=0.0, spacing=(1.0, 1.0, 1.0)):
    """Vertices in array-axis order (d, h, w) scaled by ``spacing`` (given in that order), faces."""
    from skimage.measure import marching_cubes

    verts, faces, _, _ = marching_cubes(sdf.numpy(), level=level, spacing=tuple(float(s) for s in spacing),
                                        gradient_direction="descent")
    return torch.from_numpy(verts.copy()), torch.from_numpy(faces.astype(np.int64))


def _world(verts_dhw, faces, origin):
    return verts_dhw.flip(-1) + origin, faces.flip(-1)


def _inside_out(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, 0.0, spacing.flip(0))
    return _score(verts.flip(-1) + origin, faces, gt_points)


def _default_level(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, None, spacing.flip(0))
    return _score(*_world(verts, faces, origin), gt_points)


def _voxel_units(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, 0.0)
    return _score(*_world(verts, faces, torch.zeros(3, dtype=torch.float64)), gt_points)


def _no_origin(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, 0.0, spacing.flip(0))
    return _score(*_world(verts, faces, torch.zeros(3, dtype=torch.float64)), gt_points)


def _spacing_xyz(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, 0.0, spacing)
    return _score(*_world(verts, faces, origin), gt_points)


def _axes_swapped(sdf, spacing, origin, gt_points):
    verts, faces = _skimage(sdf, 0.0, spacing.flip(0))
    return _score(verts + origin, faces.flip(-1), gt_points)


EXERCISES = (
    Exercise(
        name="generation.marching_score",
        points=2,
        reference=_reference,
        make_cases=_cases,
        what="[chamfer, volume]",
        forbidden=("march", "march_field", "score_mesh", "mesh_volume"),
        rtol=1e-4,
        atol=1e-6,
        mistakes=(
            Mistake("the mesh is inside out (its volume is negative): an SDF is NEGATIVE inside. Either the "
                    "gradient_direction treats the inside as positive, or you reversed the vertex columns "
                    "(z, y, x) -> (x, y, z) without reversing each face's vertex order (a mirror flips the winding)",
                    _inside_out),
            Mistake("the surface is not the zero level: scikit-image's default level is (min + max) / 2 of the "
                    "grid; pass level=0.0", _default_level),
            Mistake("the mesh is in voxel units: multiply the vertex indices by the spacing and add the origin "
                    "(or pass spacing to marching_cubes)", _voxel_units),
            Mistake("the origin is missing: vertex = origin + index * spacing; sdf[0, 0, 0] sits at origin", _no_origin),
            Mistake("spacing is given in world (dx, dy, dz) order but marching_cubes wants it in array-axis order "
                    "(dz, dy, dx): pass spacing reversed", _spacing_xyz),
            Mistake("x and z are swapped: sdf[d, h, w] is indexed (z, y, x), and marching_cubes returns vertices in "
                    "that same (z, y, x) order; reverse the columns to get (x, y, z)", _axes_swapped),
        ),
    ),
)
