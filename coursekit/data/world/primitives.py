r"""Closed primitive solids, each with a triangle mesh and an analytic signed distance.

Every object and room of the procedural world is a union of posed primitives
(:class:`Part`). A primitive lives in its own *local frame*; a part's ``pose`` is
the rigid transform local -> parent, :math:`x = R\,x_{local} + t`.

Conventions:
    * Signed distances are negative inside, positive outside, in the primitive's
      units. Every primitive's ``sdf`` is the *exact* Euclidean distance to its
      solid (not a bound), so that :math:`\lVert\nabla f\rVert = 1` away from the
      medial axis.
    * The union of parts has :math:`f_{\cup}(x) = \min_i f_i(x)`: exact outside the
      union and on its surface, an upper bound of the true (negative) distance
      inside where parts overlap.
    * Meshes are closed (watertight, every edge shared by exactly two faces) and
      oriented outward. Round primitives are polygonal approximations (vertices on
      the exact surface), so the mesh deviates from the zero level set by the chord
      error :math:`r(1-\cos(\pi/n))` for ``n`` segments.
    * Axes: ``+y`` is up. Solids of revolution (:class:`Lathe`, :class:`Sphere`,
      :class:`Capsule`) turn about the local ``y`` axis.

Primitive overview:

=================  ===============================================  =====================
primitive          solid                                            used for
=================  ===============================================  =====================
:class:`Box`       axis-aligned box, half extents ``half``          boards, seats, walls
:class:`Sphere`    ball of radius ``radius``                        knobs, casters
:class:`Capsule`   segment ``y in [-h, h]`` swept by a ball         rods, pillows, arms
:class:`ArcTube`   circular arc (xy-plane) swept by a ball          mug handles
:class:`Lathe`     profile polygon in the ``(r, y)`` half-plane     bottles, shades, legs
                   revolved about ``y``
:class:`Prism`     convex polygon in ``xy`` extruded along ``z``    wings, car bodies
=================  ===============================================  =====================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import torch

from coursekit.geometry.sampling import sample_mesh_surface

__all__ = [
    "Primitive",
    "Box",
    "Sphere",
    "Capsule",
    "ArcTube",
    "Lathe",
    "Prism",
    "cylinder",
    "frustum",
    "Part",
    "make_pose",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "rotation_between",
    "assemble",
    "union_sdf",
    "sample_union_surface",
]

SEGMENTS = 16
"""Default number of segments around the axis of round primitives."""


# --------------------------------------------------------------------------- rotations and poses


def rotation_x(angle: float) -> np.ndarray:
    """``(3, 3)`` right-handed rotation by ``angle`` radians about ``+x``."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    r"""``(3, 3)`` right-handed rotation by ``angle`` radians about ``+y`` (the up axis).

    .. math::  R_y(\theta) = \begin{pmatrix}\cos\theta & 0 & \sin\theta\\ 0&1&0\\
               -\sin\theta & 0 & \cos\theta\end{pmatrix}

    so ``R_y(pi/2)`` turns ``+z`` into ``+x``: this is the *yaw* of oriented boxes.
    """
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle: float) -> np.ndarray:
    """``(3, 3)`` right-handed rotation by ``angle`` radians about ``+z``."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_between(a, b) -> np.ndarray:
    """``(3, 3)`` rotation taking the direction ``a`` onto the direction ``b`` (Rodrigues)."""
    a = np.asarray(a, float) / np.linalg.norm(a)
    b = np.asarray(b, float) / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-12:  # opposite: turn by pi about any axis orthogonal to a
        axis = np.cross(a, np.eye(3)[int(np.argmin(np.abs(a)))])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def make_pose(rotation=None, translation=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """``(4, 4)`` float64 rigid transform ``[[R, t], [0, 1]]`` (local -> parent)."""
    pose = np.eye(4)
    if rotation is not None:
        pose[:3, :3] = np.asarray(rotation, float)
    pose[:3, 3] = np.asarray(translation, float)
    return torch.from_numpy(pose)


# --------------------------------------------------------------------------- 2D distance helpers


def _segment_distance_2d(q: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, S)`` distances from points ``q (N, 2)`` to segments ``a -> b`` (each ``(S, 2)``)."""
    ab = b - a  # (S, 2)
    aq = q[:, None, :] - a[None]  # (N, S, 2)
    denom = (ab * ab).sum(-1).clamp_min(1e-30)
    s = ((aq * ab).sum(-1) / denom).clamp(0.0, 1.0)
    return (aq - s[..., None] * ab).norm(dim=-1)


def _inside_polygon_2d(q: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: crossing-number (even-odd) test of ``q (N, 2)`` against a closed polygon ``(K, 2)``."""
    a, b = poly, poly.roll(-1, 0)
    qy = q[:, 1:2]
    straddles = (a[None, :, 1] > qy) != (b[None, :, 1] > qy)  # (N, K)
    dy = b[:, 1] - a[:, 1]
    dy = torch.where(dy == 0, torch.ones_like(dy), dy)
    x_cross = a[None, :, 0] + (qy - a[None, :, 1]) * (b[:, 0] - a[:, 0])[None] / dy[None]
    crossings = straddles & (q[:, 0:1] < x_cross)
    return crossings.sum(-1) % 2 == 1


# --------------------------------------------------------------------------- mesh helpers


def _orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip a closed mesh's faces if its signed volume is negative (normals pointing in)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    cross = v1[:, [1, 2, 0]] * v2[:, [2, 0, 1]] - v1[:, [2, 0, 1]] * v2[:, [1, 2, 0]]
    if (v0 * cross).sum() < 0:
        return faces[:, ::-1].copy()
    return faces


@lru_cache(maxsize=4096)
def _lathe_mesh(profile: tuple, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Revolve a closed ``(r, y)`` polygon about ``y``; vertices with ``r == 0`` become single poles.

    Cached (chairs repeat their legs): callers must not modify the returned arrays.
    """
    profile = np.asarray(profile, float)
    theta = 2.0 * math.pi * np.arange(segments) / segments
    pole = profile[:, 0] == 0.0
    # every profile vertex becomes a ring of `segments` vertices, or one vertex on the axis
    sizes = np.where(pole, 1, segments)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    r = np.repeat(profile[:, 0], sizes)
    angle = np.concatenate([theta[:n] for n in sizes])
    vertices = np.stack([r * np.cos(angle), np.repeat(profile[:, 1], sizes), r * np.sin(angle)], 1)
    j = np.arange(segments)
    ring = np.where(pole[:, None], first[:, None], first[:, None] + j)  # (K, segments) vertex ids
    ring1 = np.where(pole[:, None], first[:, None], first[:, None] + (j + 1) % segments)
    a, a1 = ring, ring1
    b, b1 = np.roll(ring, -1, 0), np.roll(ring1, -1, 0)
    a_pole, b_pole = pole, np.roll(pole, -1)
    # quad (a, a1, b1, b) of each profile edge; a pole end drops the degenerate triangle,
    # and an edge lying on the axis bounds no surface
    upper = np.stack([a, a1, b1], -1)[~a_pole]
    lower = np.stack([a, b1, b], -1)[~b_pole]
    faces = np.concatenate([upper.reshape(-1, 3), lower.reshape(-1, 3)]).astype(np.int64)
    faces = _orient_outward(vertices, faces)
    vertices.flags.writeable = faces.flags.writeable = False
    return vertices, faces


@lru_cache(maxsize=None)
def _unit_box_mesh() -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads], dtype=np.int64)
    return corners, _orient_outward(corners, faces)


def _arc(n: int, start: float, stop: float) -> np.ndarray:
    """``n + 1`` angles from ``start`` to ``stop`` inclusive."""
    return np.linspace(start, stop, n + 1)


def _capsule_profile(radius: float, half_length: float, segments: int, body_rings: int) -> np.ndarray:
    cap = _arc(max(2, segments // 4), -math.pi / 2, 0.0)[1:]  # bottom hemisphere, pole excluded
    bottom = np.stack([radius * np.cos(cap), -half_length + radius * np.sin(cap)], 1)
    body = np.stack([np.full(body_rings, radius), np.linspace(-half_length, half_length, body_rings + 2)[1:-1]], 1)
    top = np.stack([bottom[::-1, 0], -bottom[::-1, 1]], 1)
    pole = np.array([[0.0, -half_length - radius]])
    return np.concatenate([pole, bottom, body, top, -pole])


# --------------------------------------------------------------------------- primitives


class Primitive:
    """A closed solid in its local frame: analytic ``sdf``, a closed ``mesh`` and local ``bounds``."""

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """``(N,)`` exact signed distance of local points ``(N, 3)`` (negative inside)."""
        raise NotImplementedError

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Closed outward-oriented mesh: vertices ``(V, 3)`` float64, faces ``(F, 3)`` int64."""
        raise NotImplementedError

    def bounds(self) -> np.ndarray:
        """``(2, 3)`` local axis-aligned box (min, max) containing the solid."""
        raise NotImplementedError

    def scaled(self, factor: float) -> "Primitive":
        """The same primitive with every length multiplied by ``factor`` (> 0)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Primitive):
    r"""Axis-aligned box ``|x| <= half`` (half extents ``(3,)``).

    .. math::  f(p) = \lVert\max(q, 0)\rVert + \min(\max_k q_k, 0), \qquad q = |p| - h
    """

    half: tuple[float, float, float]

    def __post_init__(self):
        if min(self.half) <= 0:
            raise ValueError(f"Box half extents must be positive, got {self.half}")

    def sdf(self, points):
        q = points.abs() - points.new_tensor(self.half)
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)

    def mesh(self):
        vertices, faces = _unit_box_mesh()
        return vertices * np.asarray(self.half), faces

    def bounds(self):
        h = np.asarray(self.half, float)
        return np.stack([-h, h])

    def scaled(self, factor):
        return Box(tuple(factor * h for h in self.half))


@dataclass(frozen=True)
class Sphere(Primitive):
    r"""Ball of radius ``radius`` centred at the origin.  :math:`f(p) = \lVert p\rVert - r`."""

    radius: float
    segments: int = SEGMENTS

    def __post_init__(self):
        if self.radius <= 0:
            raise ValueError(f"Sphere radius must be positive, got {self.radius}")

    def sdf(self, points):
        return points.norm(dim=-1) - self.radius

    def mesh(self):
        a = _arc(max(4, self.segments // 2), -math.pi / 2, math.pi / 2)
        profile = np.stack([self.radius * np.cos(a), self.radius * np.sin(a)], 1)
        profile[[0, -1], 0] = 0.0
        return _lathe_mesh(tuple(map(tuple, profile)), self.segments)

    def bounds(self):
        return np.array([[-self.radius] * 3, [self.radius] * 3])

    def scaled(self, factor):
        return Sphere(self.radius * factor, self.segments)


@dataclass(frozen=True)
class Capsule(Primitive):
    r"""The segment ``(0, y, 0), |y| <= half_length`` swept by a ball of radius ``radius``.

    .. math::  f(p) = \lVert p - (0, \operatorname{clamp}(p_y, -h, h), 0)\rVert - r
    """

    radius: float
    half_length: float
    segments: int = SEGMENTS

    def __post_init__(self):
        if self.radius <= 0 or self.half_length < 0:
            raise ValueError(f"Capsule needs radius > 0 and half_length >= 0, got {self.radius}, {self.half_length}")

    def sdf(self, points):
        axis = torch.zeros_like(points)
        axis[:, 1] = points[:, 1].clamp(-self.half_length, self.half_length)
        return (points - axis).norm(dim=-1) - self.radius

    def mesh(self, body_rings: int = 1):
        profile = _capsule_profile(self.radius, self.half_length, self.segments, body_rings)
        return _lathe_mesh(tuple(map(tuple, profile)), self.segments)

    def bounds(self):
        r, h = self.radius, self.half_length
        return np.array([[-r, -h - r, -r], [r, h + r, r]])

    def scaled(self, factor):
        return Capsule(self.radius * factor, self.half_length * factor, self.segments)


@dataclass(frozen=True)
class ArcTube(Primitive):
    r"""A circular arc swept by a ball: the arc has radius ``arc_radius`` in the ``xy``-plane,
    centre at the origin, and spans the angles ``[-half_angle, half_angle]`` from ``+x``.

    .. math::  f(p) = d_{arc}(p) - r, \qquad d_{arc}(p)^2 =
               \begin{cases} (\lVert p_{xy}\rVert - R)^2 + p_z^2 & |\operatorname{atan2}(p_y, p_x)|
               \le \varphi \\ \lVert p - e_\pm\rVert^2 & \text{otherwise (nearest end } e_\pm)\end{cases}

    A mug handle is an ``ArcTube`` whose ends sink into the cup's wall.
    """

    radius: float
    arc_radius: float
    half_angle: float
    segments: int = SEGMENTS

    def __post_init__(self):
        if not 0 < self.radius < self.arc_radius:
            raise ValueError(f"ArcTube needs 0 < radius < arc_radius, got {self.radius}, {self.arc_radius}")
        if not 0 < self.half_angle <= math.pi:
            raise ValueError(f"ArcTube half_angle must be in (0, pi], got {self.half_angle}")

    def sdf(self, points):
        x, y, z = points.unbind(-1)
        rho = torch.hypot(x, y)
        on_arc = torch.atan2(y, x).abs() <= self.half_angle
        ex = self.arc_radius * math.cos(self.half_angle)
        ey = torch.where(y >= 0, 1.0, -1.0) * self.arc_radius * math.sin(self.half_angle)
        d_arc = torch.sqrt((rho - self.arc_radius) ** 2 + z**2)
        d_end = torch.sqrt((x - ex) ** 2 + (y - ey) ** 2 + z**2)
        return torch.where(on_arc, d_arc, d_end) - self.radius

    def mesh(self):
        # Bend a straight capsule of half length R * phi onto the arc: the capsule's y becomes
        # arc length, its local x the radial offset and z stays z (orientation preserving).
        R, phi = self.arc_radius, self.half_angle
        half = R * phi
        rings = max(2, int(round(self.segments * phi / math.pi)))
        vertices, faces = Capsule(self.radius, half, self.segments).mesh(body_rings=rings)
        x, y, z = vertices.T
        theta = np.clip(y, -half, half) / R
        beyond = y - np.clip(y, -half, half)  # along the end tangent, on the caps
        radial = np.stack([np.cos(theta), np.sin(theta)], 1)
        tangent = np.stack([-np.sin(theta), np.cos(theta)], 1)
        xy = (R + x)[:, None] * radial + beyond[:, None] * tangent
        return np.column_stack([xy, z]), faces

    def bounds(self):
        R, r = self.arc_radius, self.radius
        return np.array([[-R - r, -R - r, -r], [R + r, R + r, r]])

    def scaled(self, factor):
        return ArcTube(self.radius * factor, self.arc_radius * factor, self.half_angle, self.segments)


@dataclass(frozen=True)
class Lathe(Primitive):
    r"""Solid of revolution of a simple closed polygon in the ``(r, y)`` half-plane about ``+y``.

    ``profile`` lists ``(r, y)`` vertices (``r >= 0``) of a closed polygon; vertices on the
    axis (``r = 0``) become poles, and polygon edges lying on the axis bound no surface. A
    profile that never touches the axis gives a ring (a lampshade, a tyre).

    .. math::  f(p) = \pm\, d_{2D}\big((\sqrt{p_x^2 + p_z^2},\, p_y),\ \partial P\big)

    (exact: the nearest surface point of a solid of revolution lies in the meridian
    half-plane of ``p``); the sign is negative inside the polygon (crossing number).
    """

    profile: tuple[tuple[float, float], ...]
    segments: int = SEGMENTS
    _poly: torch.Tensor = field(init=False, repr=False, compare=False)
    _edges: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        poly = np.asarray(self.profile, float)
        if poly.ndim != 2 or poly.shape[0] < 3 or poly.shape[1] != 2:
            raise ValueError(f"Lathe profile must be at least 3 (r, y) points, got shape {poly.shape}")
        if (poly[:, 0] < 0).any():
            raise ValueError("Lathe profile radii must be >= 0")
        on_axis = (poly[:, 0] == 0) & (np.roll(poly[:, 0], -1) == 0)
        a, b = poly[~on_axis], np.roll(poly, -1, 0)[~on_axis]
        object.__setattr__(self, "_poly", torch.from_numpy(poly))
        object.__setattr__(self, "_edges", (torch.from_numpy(a), torch.from_numpy(b)))

    def sdf(self, points):
        q = torch.stack([torch.hypot(points[:, 0], points[:, 2]), points[:, 1]], 1)
        a, b = (e.to(points) for e in self._edges)
        d = _segment_distance_2d(q, a, b).amin(-1)
        return torch.where(_inside_polygon_2d(q, self._poly.to(points)), -d, d)

    def mesh(self):
        return _lathe_mesh(tuple(map(tuple, np.asarray(self.profile, float))), self.segments)

    def bounds(self):
        poly = np.asarray(self.profile, float)
        r = poly[:, 0].max()
        return np.array([[-r, poly[:, 1].min(), -r], [r, poly[:, 1].max(), r]])

    def scaled(self, factor):
        return Lathe(tuple((factor * r, factor * y) for r, y in self.profile), self.segments)


def cylinder(radius: float, half_height: float, segments: int = SEGMENTS) -> Lathe:
    """Solid cylinder about ``y``, ``|y| <= half_height`` (a :class:`Lathe` of a rectangle)."""
    return frustum(radius, radius, half_height, segments)


def frustum(radius_bottom: float, radius_top: float, half_height: float, segments: int = SEGMENTS) -> Lathe:
    """Truncated cone about ``y`` from ``radius_bottom`` at ``y = -h`` to ``radius_top`` at ``y = +h``
    (``radius_top = 0`` gives a cone)."""
    h = half_height
    profile = [(0.0, -h), (radius_bottom, -h)]
    profile += [(radius_top, h)] if radius_top > 0 else []
    return Lathe(tuple(profile + [(0.0, h)]), segments)


@dataclass(frozen=True)
class Prism(Primitive):
    r"""A convex polygon in the local ``xy``-plane extruded along ``z`` over ``|z| <= half_depth``.

    .. math::  f(p) = \min(\max(w_1, w_2), 0) + \lVert\max(w, 0)\rVert, \qquad
               w = \big(d_{2D}(p_{xy}, P),\ |p_z| - h\big)

    with :math:`d_{2D}` the signed distance to the polygon (negative inside).
    """

    polygon: tuple[tuple[float, float], ...]
    half_depth: float
    _poly: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        poly = np.asarray(self.polygon, float)
        if poly.ndim != 2 or poly.shape[0] < 3 or poly.shape[1] != 2:
            raise ValueError(f"Prism polygon must be at least 3 (x, y) points, got shape {poly.shape}")
        if self.half_depth <= 0:
            raise ValueError(f"Prism half_depth must be positive, got {self.half_depth}")
        e = np.roll(poly, -1, 0) - poly
        turns = e[:, 0] * np.roll(e, -1, 0)[:, 1] - e[:, 1] * np.roll(e, -1, 0)[:, 0]
        if not ((turns > 0).all() or (turns < 0).all()):
            raise ValueError("Prism polygon must be strictly convex (no collinear or reflex vertices)")
        object.__setattr__(self, "_poly", torch.from_numpy(poly))

    def sdf(self, points):
        poly = self._poly.to(points)
        xy = points[:, :2]
        d2 = _segment_distance_2d(xy, poly, poly.roll(-1, 0)).amin(-1)
        d2 = torch.where(_inside_polygon_2d(xy, poly), -d2, d2)
        w = torch.stack([d2, points[:, 2].abs() - self.half_depth], 1)
        return w.amax(-1).clamp_max(0) + w.clamp_min(0).norm(dim=-1)

    def mesh(self):
        poly = np.asarray(self.polygon, float)
        k = len(poly)
        h = self.half_depth
        vertices = np.concatenate([np.column_stack([poly, np.full(k, -h)]), np.column_stack([poly, np.full(k, h)])])
        i = np.arange(k)
        j = (i + 1) % k
        fan = np.stack([np.zeros(k - 2, np.int64), np.arange(1, k - 1), np.arange(2, k)], 1)
        faces = np.concatenate(
            [fan[:, ::-1], fan + k, np.stack([i, j, j + k], 1), np.stack([i, j + k, i + k], 1)]
        ).astype(np.int64)
        return vertices, _orient_outward(vertices, faces)

    def bounds(self):
        poly = np.asarray(self.polygon, float)
        lo, hi = poly.min(0), poly.max(0)
        return np.array([[lo[0], lo[1], -self.half_depth], [hi[0], hi[1], self.half_depth]])

    def scaled(self, factor):
        return Prism(tuple((factor * x, factor * y) for x, y in self.polygon), self.half_depth * factor)


# --------------------------------------------------------------------------- parts and unions


@dataclass(frozen=True, eq=False)
class Part:
    """A posed primitive with a name and an integer label.

    Attributes:
        name: the part's semantic name (``"leg"``); several parts may share it.
        label: its integer label in the owner's vocabulary.
        primitive: the solid in its local frame.
        pose: ``(4, 4)`` float64 rigid transform local -> parent, ``x = R x_local + t``.
    """

    name: str
    label: int
    primitive: Primitive
    pose: torch.Tensor

    @property
    def rotation(self) -> torch.Tensor:
        """``(3, 3)`` rotation of the pose."""
        return self.pose[:3, :3]

    @property
    def translation(self) -> torch.Tensor:
        """``(3,)`` translation of the pose."""
        return self.pose[:3, 3]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        r"""``(N,)`` signed distance of parent-frame points ``(N, 3)``: :math:`f(R^\top(x - t))`."""
        pose = self.pose.to(points)
        return self.primitive.sdf((points - pose[:3, 3]) @ pose[:3, :3])

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """The primitive's closed mesh in the parent frame: ``(V, 3)`` float64, ``(F, 3)`` int64."""
        vertices, faces = self.primitive.mesh()
        pose = self.pose.numpy()
        return vertices @ pose[:3, :3].T + pose[:3, 3], faces.copy()

    def bounds(self) -> np.ndarray:
        """``(2, 3)`` parent-frame axis-aligned box containing the part's solid."""
        return self._bounds.copy()

    @cached_property
    def _bounds(self) -> np.ndarray:
        lo, hi = self.primitive.bounds()
        pose = self.pose.numpy()
        # the box of a rotated box: centre moves, half extents become |R| h
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        centre, half = pose[:3, :3] @ centre + pose[:3, 3], np.abs(pose[:3, :3]) @ half
        return np.stack([centre - half, centre + half])

    def transformed(self, rotation=None, scale: float = 1.0, translation=(0.0, 0.0, 0.0)) -> "Part":
        r"""This part under the similarity :math:`x \mapsto s\,Q\,x + c` of its parent frame."""
        pose = self.pose.numpy()
        q = np.eye(3) if rotation is None else np.asarray(rotation, float)
        new = np.eye(4)
        new[:3, :3] = q @ pose[:3, :3]
        new[:3, 3] = scale * (q @ pose[:3, 3]) + np.asarray(translation, float)
        primitive = self.primitive if scale == 1.0 else self.primitive.scaled(scale)
        return Part(self.name, self.label, primitive, torch.from_numpy(new))


def assemble(parts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate the parts' closed meshes into one triangle soup.

    Args:
        parts: sequence of :class:`Part`.

    Returns:
        ``vertices (V, 3)`` float32, ``faces (F, 3)`` int64 and ``face_parts (F,)`` int64,
        the index of the part each face belongs to.
    """
    if len(parts) == 0:
        raise ValueError("assemble needs at least one part")
    vertices, faces, owners, offset = [], [], [], 0
    for i, part in enumerate(parts):
        v, f = part.mesh()
        vertices.append(v)
        faces.append(f + offset)
        owners.append(np.full(len(f), i, np.int64))
        offset += len(v)
    return (
        torch.from_numpy(np.concatenate(vertices)).float(),
        torch.from_numpy(np.concatenate(faces)),
        torch.from_numpy(np.concatenate(owners)),
    )


def union_sdf(parts, points: torch.Tensor) -> torch.Tensor:
    r"""``(N,)`` signed distance of the union of ``parts`` at points ``(N, 3)``.

    .. math::  f_{\cup}(x) = \min_i f_i(x)

    Exact outside the union and on its surface; inside overlapping parts it bounds
    the true distance from above (it is still negative there, so occupancy is exact).
    """
    if points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if len(parts) == 0:
        raise ValueError("union_sdf needs at least one part")
    return torch.stack([part.sdf(points) for part in parts], 0).amin(0)


def sample_union_surface(
    parts,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    face_parts: torch.Tensor,
    n: int,
    generator: torch.Generator,
    offset: float = 1e-4,
    region: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Uniform samples on the *outer* surface of a union of parts.

    Candidates are uniform on the whole triangle soup
    (:func:`coursekit.geometry.sampling.sample_mesh_surface`: faces drawn in
    proportion to their area, points uniform inside them). A candidate :math:`x`
    on a face of part :math:`i` with outward normal :math:`n` is rejected when the
    probe :math:`x + \varepsilon n` lies inside another part,

    .. math::  \min_{j \ne i} f_j(x + \varepsilon n) < 0,

    and candidates are drawn until ``n`` survive. This removes faces buried in
    other parts (a leg's top inside the seat) and faces pressed flat against
    another part (a shelf resting on a plinth), which are inside the union too.

    Args:
        parts: the :class:`Part` list that ``vertices/faces/face_parts`` were assembled from.
        vertices: ``(V, 3)`` float mesh vertices.
        faces: ``(F, 3)`` int64.
        face_parts: ``(F,)`` int64 owner part of each face.
        n: number of points.
        generator: the random stream.
        offset: :math:`\varepsilon`, in the mesh's units (much smaller than any part).
        region: optional ``(2, 3)`` box (min, max); points outside it are rejected too
            (a room keeps only its inside surfaces).

    Returns:
        ``points (n, 3)`` and ``face_index (n,)`` int64 (the face each point lies on).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    bounds = torch.from_numpy(np.stack([p.bounds() for p in parts])).to(vertices.dtype)  # (P, 2, 3)
    kept_points, kept_faces, total, drawn, batch = [], [], 0, 0, n + n // 2 + 16
    for _ in range(64):
        candidates = sample_mesh_surface(vertices, faces, batch, generator)
        index, points = candidates.face_index, candidates.points
        probe = points + offset * candidates.normals
        owner = face_parts[index]
        buried = torch.zeros(batch, dtype=torch.bool)
        if region is not None:
            buried |= ((points < region[0] - offset) | (points > region[1] + offset)).any(-1)
        # probes inside another part's bounding box, as (point, part) pairs
        near = ((probe[:, None] >= bounds[None, :, 0]) & (probe[:, None] <= bounds[None, :, 1])).all(-1)
        near &= (owner[:, None] != torch.arange(len(parts))) & ~buried[:, None]
        for j in near.any(0).nonzero().squeeze(1).tolist():
            where = near[:, j].nonzero().squeeze(1)
            buried[where] |= parts[j].sdf(probe[where]) < 0
        kept_points.append(points[~buried])
        kept_faces.append(index[~buried])
        total += int((~buried).sum())
        drawn += batch
        if total >= n:
            break
        batch = int(1.2 * (n - total) / max(total / drawn, 0.05)) + 16
    else:
        raise RuntimeError("could not sample the union surface: (almost) all of it is buried")
    return torch.cat(kept_points)[:n], torch.cat(kept_faces)[:n]
