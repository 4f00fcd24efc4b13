r"""Procedural man-made objects assembled from labelled parts: the :class:`Shape` and its classes.

Every object is a union of closed primitives (:mod:`.primitives`), built in metres
with ``+y`` up, the object's *front* facing ``+z`` and its lowest point on the floor
``y = 0``. :func:`make_shape` then (by default) centres it and scales it into the
unit ball, the canonical pose of ModelNet-style data, and optionally turns and
scales it at random.

Each class has a part vocabulary in the style of ShapeNetPart (local labels
``0..k-1`` per class, :data:`PART_NAMES`) and real intra-class variation: part
counts, proportions and styles change (chairs with or without arms, four legs,
three legs, a swivel base or a sled; round or rectangular tables ...). Confusable
classes are there on purpose: chair / sofa / bed (lounge armchairs, one-seat
sofas, daybeds), bottle / vase / lamp / mug (bud vases, jugs, tumblers, vase-bodied
table lamps), table / bookshelf / cabinet (lower shelves, drawer pedestals, low
shelves).

=============  =====================================================  ==================================
class          part vocabulary (label order)                          styles that vary
=============  =====================================================  ==================================
airplane       body, wing, tail, engine                               sweep, wing height, T-tail, 0/2/4
                                                                      engines under wings or at the tail
bed            frame, mattress, headboard, footboard, leg, pillow     size, legs, board shapes, pillows,
                                                                      daybed (boards on three sides)
bookshelf      side, shelf, back, base                                tall/low, open frame, divider
bottle         body, neck, cap, handle                                wine, water, jug, square
cabinet        body, door, drawer, handle, leg                        doors, drawers, mixed, legs/plinth
car            body, roof, wheel                                      sedan, hatchback, SUV, pickup, van
chair          back, seat, leg, arm                                   4/3 legs, swivel, sled; 5 back
                                                                      styles; arms or not; round seat;
                                                                      upholstered lounge armchair
lamp           base, tube, shade, canopy                              floor, table, arm, pendant
mug            body, handle                                           straight/tapered/bellied; round,
                                                                      square or no handle (tumbler)
sofa           base, seat, back, arm, leg                             1-3 seats, 4 arm styles, legs
table          top, leg, support                                      dining, coffee, side, desk; round
                                                                      top; 4 legs, pedestal, trestle,
                                                                      panels; apron, shelf, stretchers,
                                                                      drawer pedestal
vase           body, lip, foot, handle                                random profiles, bud vases with a
                                                                      neck, lip, foot, two handles
=============  =====================================================  ==================================
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from .primitives import (
    SEGMENTS,
    ArcTube,
    Box,
    Capsule,
    Lathe,
    Part,
    Prism,
    Sphere,
    assemble,
    cylinder,
    make_pose,
    rotation_between,
    rotation_x,
    rotation_y,
    rotation_z,
    sample_union_surface,
    union_sdf,
)

__all__ = ["CLASSES", "PART_NAMES", "Shape", "PartGraph", "make_shape", "random_rotation", "as_generator"]

PART_NAMES: dict[str, tuple[str, ...]] = {
    "airplane": ("body", "wing", "tail", "engine"),
    "bed": ("frame", "mattress", "headboard", "footboard", "leg", "pillow"),
    "bookshelf": ("side", "shelf", "back", "base"),
    "bottle": ("body", "neck", "cap", "handle"),
    "cabinet": ("body", "door", "drawer", "handle", "leg"),
    "car": ("body", "roof", "wheel"),
    "chair": ("back", "seat", "leg", "arm"),
    "lamp": ("base", "tube", "shade", "canopy"),
    "mug": ("body", "handle"),
    "sofa": ("base", "seat", "back", "arm", "leg"),
    "table": ("top", "leg", "support"),
    "vase": ("body", "lip", "foot", "handle"),
}
"""Part vocabulary of each class; a part's label is its position in the tuple."""

CLASSES: tuple[str, ...] = tuple(sorted(PART_NAMES))
"""The object classes in label order (alphabetical, as ModelNet's)."""

GENERATOR_VERSION = 1
"""Bumped whenever a seed starts giving different shapes (part of dataset cache keys)."""


def as_generator(seed: int | torch.Generator) -> torch.Generator:
    """A ``torch.Generator`` from an int seed (or the generator itself)."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(int(seed))
    raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A NumPy stream drawn from the torch stream (so the torch generator stays the one source)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def random_rotation(mode: str, generator: torch.Generator) -> np.ndarray:
    """``(3, 3)`` random rotation: ``"none"`` (identity), ``"up"`` (uniform yaw about ``+y``) or
    ``"so3"`` (uniform on SO(3), from a normalised Gaussian quaternion)."""
    if mode == "none":
        return np.eye(3)
    if mode == "up":
        return rotation_y(2 * math.pi * float(torch.rand((), generator=generator, dtype=torch.float64)))
    if mode == "so3":
        w, x, y, z = torch.randn(4, generator=generator, dtype=torch.float64).tolist()
        n = math.sqrt(w * w + x * x + y * y + z * z)
        w, x, y, z = w / n, x / n, y / n, z / n
        return np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
    raise ValueError(f"rotation must be 'none', 'up' or 'so3', got {mode!r}")


# --------------------------------------------------------------------------- the shape


@dataclass(frozen=True, eq=False)
class PartGraph:
    """The part hierarchy of a shape, for structure-aware models (StructureNet).

    Nodes: ``0`` is the whole object; then one node per part name present (a
    *group*: "leg"); then one leaf per part (``"leg.2"``). ``parent[i]`` is ``-1``
    for the root. Leaves point at their :class:`Part` through ``part``; inner
    nodes have ``part = -1``. Relations between parts (``(P, P)`` bool, symmetric,
    ``P = len(shape.parts)``): ``contact`` (the solids touch or overlap) and
    ``symmetric`` (same name and identical primitive: the legs of a chair).
    """

    names: tuple[str, ...]
    parent: tuple[int, ...]
    part: tuple[int, ...]
    contact: torch.Tensor
    symmetric: torch.Tensor

    def children(self, node: int) -> list[int]:
        """Nodes whose parent is ``node``."""
        return [i for i, p in enumerate(self.parent) if p == node]

    def siblings(self, node: int) -> list[int]:
        """Other children of ``node``'s parent (empty for the root)."""
        if self.parent[node] < 0:
            return []
        return [i for i in self.children(self.parent[node]) if i != node]

    def leaf(self, part_index: int) -> int:
        """The node of ``shape.parts[part_index]``."""
        return self.part.index(part_index)


@dataclass(frozen=True, eq=False)
class Shape:
    """One object: its parts, its triangle mesh with per-face part labels, and its SDF.

    Attributes:
        class_name: e.g. ``"chair"``.
        class_index: position of ``class_name`` in :data:`CLASSES`.
        part_names: the class's part vocabulary (label -> name); an instance may lack some.
        parts: the posed primitives (``Part.label`` indexes ``part_names``).
        vertices: ``(V, 3)`` float32 mesh vertices (the union of closed part meshes).
        faces: ``(F, 3)`` int64.
        face_labels: ``(F,)`` int64 part label of each face.
        face_parts: ``(F,)`` int64 index into ``parts`` of each face.
    """

    class_name: str
    class_index: int
    part_names: tuple[str, ...]
    parts: tuple[Part, ...]
    vertices: torch.Tensor
    faces: torch.Tensor
    face_labels: torch.Tensor
    face_parts: torch.Tensor

    @classmethod
    def from_parts(cls, class_name: str, parts) -> "Shape":
        """Assemble the mesh of ``parts`` into a shape of class ``class_name``."""
        vertices, faces, face_parts = assemble(parts)
        labels = torch.tensor([p.label for p in parts], dtype=torch.int64)
        return cls(class_name, CLASSES.index(class_name), PART_NAMES[class_name], tuple(parts), vertices, faces, labels[face_parts], face_parts)

    @property
    def bounding_box(self) -> torch.Tensor:
        """``(2, 3)`` axis-aligned box of the mesh: ``[min, max]``."""
        return torch.stack([self.vertices.amin(0), self.vertices.amax(0)])

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        r"""``(N,)`` signed distance of the union of parts at ``points (N, 3)`` (negative inside).

        .. math::  f(x) = \min_i f_i\big(R_i^\top (x - t_i)\big)

        with :math:`f_i` the analytic SDF of part ``i``'s primitive in its local frame:
        exact outside and on the surface, an upper bound inside where parts overlap.
        """
        return union_sdf(self.parts, points)

    def occupancy(self, points: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: ``points (N, 3)`` inside the solid (``sdf <= 0``)."""
        return self.sdf(points) <= 0

    def sample(self, n: int, generator: torch.Generator | int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uniform points on the outer surface (faces buried inside other parts are skipped).

        Args:
            n: number of points.
            generator: random stream or int seed.

        Returns:
            ``points (n, 3)`` float32, ``normals (n, 3)`` float32 (unit, outward face
            normals) and ``part_labels (n,)`` int64.
        """
        size = float((self.vertices.amax(0) - self.vertices.amin(0)).norm())
        points, face = sample_union_surface(
            self.parts, self.vertices, self.faces, self.face_parts, n, as_generator(generator), offset=1e-4 * size
        )
        return points, self.face_normals[face], self.face_labels[face]

    @cached_property
    def face_normals(self) -> torch.Tensor:
        """``(F, 3)`` unit outward normals of the faces."""
        v0, v1, v2 = (self.vertices[self.faces[:, k]] for k in range(3))
        return torch.nn.functional.normalize(torch.linalg.cross(v1 - v0, v2 - v0), dim=-1)

    def transformed(self, rotation=None, scale: float = 1.0, translation=(0.0, 0.0, 0.0)) -> "Shape":
        r"""The shape under :math:`x \mapsto s\,Q\,x + c` (parts, mesh and SDF move together)."""
        q = np.eye(3) if rotation is None else np.asarray(rotation, float)
        parts = tuple(p.transformed(q, scale, translation) for p in self.parts)
        qt = torch.as_tensor(q, dtype=torch.float64)
        vertices = (scale * self.vertices.double() @ qt.T + torch.as_tensor(translation, dtype=torch.float64)).float()
        return Shape(self.class_name, self.class_index, self.part_names, parts, vertices, self.faces, self.face_labels, self.face_parts)

    def normalized(self) -> "Shape":
        r"""Centred on its bounding-box centre :math:`c` and scaled into the unit ball:
        :math:`x \mapsto (x - c) / \max_v \lVert v - c\rVert`."""
        centre = self.bounding_box.double().mean(0)
        radius = float((self.vertices.double() - centre).norm(dim=-1).max())
        return self.transformed(scale=1.0 / radius, translation=(-centre / radius).tolist())

    @cached_property
    def part_graph(self) -> PartGraph:
        """The :class:`PartGraph` (hierarchy, contact and symmetry of parts), computed once."""
        names = [self.class_name]
        parent = [-1]
        part = [-1]
        group = {}
        for label in sorted({p.label for p in self.parts}):
            group[label] = len(names)
            names.append(self.part_names[label])
            parent.append(0)
            part.append(-1)
        count: dict[int, int] = {}
        for i, p in enumerate(self.parts):
            names.append(f"{p.name}.{count.get(p.label, 0)}")
            count[p.label] = count.get(p.label, 0) + 1
            parent.append(group[p.label])
            part.append(i)
        n = len(self.parts)
        size = float((self.vertices.amax(0) - self.vertices.amin(0)).norm())
        tol = 1e-3 * size
        bounds = np.stack([p.bounds() for p in self.parts])
        contact = torch.zeros(n, n, dtype=torch.bool)
        symmetric = torch.zeros(n, n, dtype=torch.bool)
        for i in range(n):
            for j in range(i + 1, n):
                symmetric[i, j] = symmetric[j, i] = (
                    self.parts[i].label == self.parts[j].label and self.parts[i].primitive == self.parts[j].primitive
                )
                if (bounds[i, 0] > bounds[j, 1] + tol).any() or (bounds[j, 0] > bounds[i, 1] + tol).any():
                    continue
                vi = self.vertices[self.faces[self.face_parts == i]].mean(1).double()
                vj = self.vertices[self.faces[self.face_parts == j]].mean(1).double()
                touch = bool((self.parts[j].sdf(vi) <= tol).any() or (self.parts[i].sdf(vj) <= tol).any())
                contact[i, j] = contact[j, i] = touch
        return PartGraph(tuple(names), tuple(parent), tuple(part), contact, symmetric)


# --------------------------------------------------------------------------- the builder


class _Builder:
    """Collects parts of one class; draws every random number from one NumPy stream."""

    def __init__(self, class_name: str, rng: np.random.Generator, segments: int):
        self.vocab = PART_NAMES[class_name]
        self.rng = rng
        self.segments = segments
        self.parts: list[Part] = []

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options, p=None):
        return options[int(self.rng.choice(len(options), p=p))]

    def add(self, name: str, primitive, rotation=None, at=(0.0, 0.0, 0.0)) -> None:
        self.parts.append(Part(name, self.vocab.index(name), primitive, make_pose(rotation, at)))

    def box(self, name: str, center, size, rotation=None) -> None:
        self.add(name, Box(tuple(0.5 * s for s in size)), rotation, center)

    def lathe(self, name: str, profile, rotation=None, at=(0.0, 0.0, 0.0)) -> None:
        self.add(name, Lathe(tuple(map(tuple, np.asarray(profile, float))), self.segments), rotation, at)

    def cylinder(self, name: str, center, radius: float, height: float, rotation=None) -> None:
        self.add(name, cylinder(radius, height / 2, self.segments), rotation, center)

    def rod(self, name: str, p0, p1, radius: float, style: str = "round") -> None:
        """A bar from ``p0`` to ``p1``: ``round`` (cylinder), ``square`` (box) or ``capsule``."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        half = float(np.linalg.norm(p1 - p0)) / 2
        rotation = rotation_between((0.0, 1.0, 0.0), p1 - p0)
        primitive = {
            "round": lambda: cylinder(radius, half, self.segments),
            "square": lambda: Box((radius, half, radius)),
            "capsule": lambda: Capsule(radius, half, self.segments),
        }[style]()
        self.add(name, primitive, rotation, (p0 + p1) / 2)

    @contextlib.contextmanager
    def frame(self, rotation=None, at=(0.0, 0.0, 0.0)):
        """Parts added inside the block are given in a frame posed by ``rotation, at``."""
        start = len(self.parts)
        yield
        self.parts[start:] = [p.transformed(rotation, translation=at) for p in self.parts[start:]]

    def grounded(self) -> list[Part]:
        """The parts moved so the object stands on ``y = 0``, centred in ``x`` and ``z``."""
        bounds = np.stack([p.bounds() for p in self.parts])
        lo, hi = bounds[:, 0].min(0), bounds[:, 1].max(0)
        shift = -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])
        return [p.transformed(translation=shift) for p in self.parts]


def _rounded_top(width: float, height: float, bulge: float, n: int = 8) -> tuple:
    """Convex polygon: a ``width x height`` rectangle (bottom at y=0) whose top is an arc rising ``bulge``."""
    a = np.linspace(0.0, math.pi, n + 2)[1:-1]
    top = np.stack([width / 2 * np.cos(a), height + bulge * np.sin(a)], 1)
    return tuple(map(tuple, np.concatenate([[[-width / 2, 0.0], [width / 2, 0.0], [width / 2, height]], top, [[-width / 2, height]]])))


# --------------------------------------------------------------------------- furniture


def _legs_under(b: _Builder, name: str, positions, top_y: float, radius: float, style: str, splay: float = 0.0) -> None:
    """Vertical (or splayed outwards) legs from the floor to ``top_y`` at ``(x, z)`` positions."""
    for x, z in positions:
        out = np.array([x, z]) / max(math.hypot(x, z), 1e-9) * splay
        b.rod(name, (x + out[0], 0.0, z + out[1]), (x, top_y, z), radius, style)


def _lounge_chair(b: _Builder) -> None:
    """An upholstered armchair: block seat, solid arms, thick back, short legs (a sofa's cousin)."""
    width, depth = b.u(0.65, 1.0), b.u(0.65, 0.9)
    leg_h, seat_h = b.u(0.04, 0.15), b.u(0.38, 0.46)
    arm_w, arm_h = b.u(0.08, 0.2), b.u(0.15, 0.3)
    back_t, back_h = b.u(0.1, 0.2), b.u(0.35, 0.5)
    b.box("seat", (0, (leg_h + seat_h) / 2, back_t / 2), (width - 2 * arm_w + 0.01, seat_h - leg_h, depth - back_t))
    for sx in (-1, 1):
        b.box("arm", (sx * (width / 2 - arm_w / 2), (leg_h + seat_h + arm_h) / 2, 0), (arm_w, seat_h + arm_h - leg_h, depth))
    with b.frame(rotation_x(-b.u(0.0, 0.2)), (0, leg_h, -depth / 2 + back_t / 2)):
        h = seat_h + back_h - leg_h
        b.box("back", (0, h / 2, 0), (width, h, back_t))
    r = b.u(0.015, 0.03)
    spots = [(sx * (width / 2 - 0.05), sz * (depth / 2 - 0.05)) for sx in (-1, 1) for sz in (-1, 1)]
    _legs_under(b, "leg", spots, leg_h + 0.02, r, b.pick(("round", "square")), b.u(0.0, 0.03))


def _chair(b: _Builder) -> None:
    if b.chance(0.2):
        return _lounge_chair(b)
    width, depth = b.u(0.42, 0.6), b.u(0.4, 0.55)
    seat_h, t = b.u(0.4, 0.48), b.u(0.03, 0.08)
    round_seat = b.chance(0.2)
    if round_seat:
        r = min(width, depth) / 2
        width = depth = 2 * r
        b.cylinder("seat", (0, seat_h - t / 2, 0), r, t)
    else:
        b.box("seat", (0, seat_h - t / 2, 0), (width, t, depth))
    join = seat_h - t / 2
    leg_r = b.u(0.012, 0.025)
    leg_style = b.pick(("round", "square"))
    base = b.pick(("four", "three", "swivel", "sled"), (0.55, 0.15 if round_seat else 0.0, 0.2, 0.1 + (0.0 if round_seat else 0.15)))
    if base == "four":
        ix, iz = width / 2 - leg_r - b.u(0, 0.05), depth / 2 - leg_r - b.u(0, 0.05)
        if round_seat:
            ix = iz = width / 2 * 0.65
        spots = [(sx * ix, sz * iz) for sx in (-1, 1) for sz in (-1, 1)]
        _legs_under(b, "leg", spots, join, leg_r, leg_style, b.u(0, 0.05) if b.chance(0.4) else 0.0)
        if b.chance(0.3):  # stretchers between the front and back legs
            y = b.u(0.1, 0.2)
            for sx in (-1, 1):
                b.rod("leg", (sx * ix, y, -iz), (sx * ix, y, iz), leg_r * 0.6, leg_style)
    elif base == "three":
        r = width / 2 * 0.65
        spots = [(r * math.cos(a), r * math.sin(a)) for a in np.pi / 2 + 2 * np.pi / 3 * np.arange(3)]
        _legs_under(b, "leg", spots, join, leg_r, leg_style, b.u(0.02, 0.08))
    elif base == "swivel":
        hub = b.u(0.05, 0.09)
        b.cylinder("leg", (0, (hub + join) / 2, 0), b.u(0.02, 0.035), join - hub)
        arms, reach = b.pick((4, 5), (0.3, 0.7)), b.u(0.24, 0.33)
        casters = b.chance(0.6)
        for a in 2 * np.pi * np.arange(arms) / arms + b.u(0, 1):
            end = (reach * math.cos(a), 0.03 if casters else 0.015, reach * math.sin(a))
            b.rod("leg", (0, hub, 0), end, 0.015, "capsule")
            if casters:
                b.add("leg", Sphere(0.025, b.segments), at=(end[0], 0.025, end[2]))
    else:  # sled: two U-shaped runners
        rail = leg_r * 0.8
        x = width / 2 - rail
        for sx in (-1, 1):
            front, back = (sx * x, rail, depth / 2 - rail), (sx * x, rail, -depth / 2 + rail)
            b.rod("leg", front, back, rail, "capsule")
            b.rod("leg", front, (sx * x, join, depth / 2 - 2 * rail), rail, "capsule")
            b.rod("leg", back, (sx * x, join, -depth / 2 + 2 * rail), rail, "capsule")

    back_h, bt = b.u(0.3, 0.55), b.u(0.02, 0.06)
    bw = width * (0.8 if round_seat else b.u(0.75, 1.0))
    style = b.pick(("panel", "slats", "ladder", "posts", "arched"))
    with b.frame(rotation_x(-b.u(0.0, 0.26)), (0, join, -depth / 2 + bt / 2 + (0.05 * width if round_seat else 0.0))):
        h = back_h + t / 2  # the back starts inside the seat
        if style == "panel":
            b.box("back", (0, h / 2, 0), (bw, h, bt))
        elif style == "arched":
            b.add("back", Prism(_rounded_top(bw, h - 0.08, 0.08), bt / 2))
        else:
            post = b.u(0.012, 0.022)
            for sx in (-1, 1):
                b.rod("back", (sx * (bw / 2 - post), 0, 0), (sx * (bw / 2 - post), h, 0), post, "square")
            rail_h = b.u(0.04, 0.12)
            if style == "posts":  # a panel held high between two posts
                rail_h = b.u(0.12, 0.25)
            b.box("back", (0, h - rail_h / 2, 0), (bw - 2 * post, rail_h, bt * 0.8))
            if style == "slats":
                n = b.pick((2, 3, 4, 5))
                for x in np.linspace(-bw / 2, bw / 2, n + 2)[1:-1]:
                    b.box("back", (x, (h - rail_h) / 2 + 0.01, 0), (b.u(0.015, 0.05), h - rail_h + 0.02, bt * 0.6))
            elif style == "ladder":
                for y in np.linspace(0, h - rail_h, b.pick((2, 3, 4)) + 1)[1:]:
                    b.box("back", (0, y - 0.02, 0), (bw - 2 * post, 0.035, bt * 0.6))

    if not round_seat and b.chance(0.35):
        arm_h, arm_w = b.u(0.17, 0.26), b.u(0.04, 0.07)
        length = depth * b.u(0.7, 0.95)
        solid = b.chance(0.3)
        for sx in (-1, 1):
            x = sx * (width / 2 - arm_w / 2)
            z0 = -depth / 2 + length / 2
            b.box("arm", (x, seat_h + arm_h, z0), (arm_w, 0.03, length))
            if solid:
                b.box("arm", (x, seat_h + arm_h / 2, z0), (arm_w * 0.6, arm_h, length * 0.9))
            else:
                b.rod("arm", (x, join, z0 + length / 2 - 0.03), (x, seat_h + arm_h, z0 + length / 2 - 0.03), 0.015, leg_style)


def _sofa(b: _Builder) -> None:
    seats, seat_w = b.pick((1, 2, 3), (0.2, 0.4, 0.4)), b.u(0.5, 0.7)
    arms = b.pick(("none", "box", "rolled", "low"), (0.15, 0.45, 0.25, 0.15))
    arm_w = 0.0 if arms == "none" else b.u(0.1, 0.25)
    width, depth = seats * seat_w + 2 * arm_w, b.u(0.75, 1.0)
    leg_h = b.u(0.04, 0.15) if b.chance(0.6) else 0.0
    base_h = b.u(0.15, 0.3)
    base_top = leg_h + base_h
    bt = b.u(0.12, 0.25)
    b.box("base", (0, leg_h + base_h / 2, 0), (width, base_h, depth))
    cushion_h, cushion_d = b.u(0.08, 0.18), depth - bt
    inner = width - 2 * arm_w
    cz = -depth / 2 + bt + cushion_d / 2
    if seats == 1 or b.chance(0.3):
        b.box("seat", (0, base_top + cushion_h / 2 - 0.01, cz), (inner - 0.01, cushion_h, cushion_d - 0.01))
    else:
        for x in (np.arange(seats) - (seats - 1) / 2) * inner / seats:
            b.box("seat", (x, base_top + cushion_h / 2 - 0.01, cz), (inner / seats - 0.01, cushion_h, cushion_d - 0.01))
    back_h = b.u(0.3, 0.55)
    back_w = width if b.chance(0.5) or arm_w == 0 else inner
    with b.frame(rotation_x(-b.u(0.0, 0.2)), (0, base_top - 0.02, -depth / 2 + bt / 2)):
        b.box("back", (0, (back_h + 0.02) / 2, 0), (back_w, back_h + 0.02, bt))
        if b.chance(0.4):  # loose back cushions
            for x in (np.arange(seats) - (seats - 1) / 2) * inner / seats:
                b.box("back", (x, cushion_h + back_h * 0.4, bt / 2 + 0.05), (inner / seats - 0.02, back_h * 0.7, 0.12))
    if arm_w:
        top = base_top + (b.u(0.05, 0.12) if arms == "low" else b.u(0.12, 0.3))
        for sx in (-1, 1):
            x = sx * (width / 2 - arm_w / 2)
            if arms == "rolled":
                r = arm_w / 2
                b.box("arm", (x, (leg_h + top - r) / 2, 0), (arm_w, top - r - leg_h, depth))
                b.add("arm", Capsule(r, depth / 2 - r, b.segments), rotation_x(math.pi / 2), (x, top - r, 0))
            else:
                b.box("arm", (x, (leg_h + top) / 2, 0), (arm_w, top - leg_h, depth))
    if leg_h:
        style, r = b.pick(("round", "square")), b.u(0.015, 0.03)
        xs = [-1, 1] if width < 1.9 else [-1, 0, 1]
        spots = [(sx * (width / 2 - 0.06), sz * (depth / 2 - 0.06)) for sx in xs for sz in (-1, 1)]
        _legs_under(b, "leg", spots, leg_h + 0.02, r, style)


def _bed(b: _Builder) -> None:
    length = b.u(1.9, 2.2)
    daybed = b.chance(0.15)  # boards at both ends and along the back side: looks like a sofa
    width = b.u(0.8, 1.0) if daybed else b.pick((b.u(0.9, 1.1), b.u(1.35, 1.6), b.u(1.8, 2.0)))
    leg_h = b.u(0.05, 0.25) if b.chance(0.6) else 0.0
    frame_h = b.u(0.12, 0.3)
    frame_top = leg_h + frame_h
    b.box("frame", (0, leg_h + frame_h / 2, 0), (width, frame_h, length))
    mat_h, inset = b.u(0.15, 0.3), b.u(0.0, 0.05)
    b.box("mattress", (0, frame_top + mat_h / 2 - 0.01, 0), (width - 2 * inset, mat_h, length - 2 * inset))
    mat_top = frame_top + mat_h - 0.01
    board_t = b.u(0.04, 0.12)
    if daybed:
        rise = b.u(0.25, 0.6)
        boards = (("headboard", -1, rise, 1.0), ("footboard", 1, rise, 1.0))
        b.box("headboard", (-width / 2 - board_t / 2 + 0.01, (mat_top + rise) / 2, 0), (board_t, mat_top + rise, length + 2 * board_t - 0.02))
    else:
        boards = (("headboard", -1, b.u(0.3, 1.0), 0.9), ("footboard", 1, b.u(-0.1, 0.3), 0.4))
    for name, z, rise, p in boards:
        if not b.chance(p):
            continue
        h = mat_top + rise
        zc = z * (length / 2 + board_t / 2 - 0.01)
        w = width + b.u(0.0, 0.1)
        style = b.pick(("box", "arched", "posts"))
        if style == "box":
            b.box(name, (0, h / 2, zc), (w, h, board_t))
        elif style == "arched":
            b.add(name, Prism(_rounded_top(w, h - 0.12, 0.12), board_t / 2), at=(0, 0, zc))
        else:
            post = b.u(0.03, 0.05)
            for sx in (-1, 1):
                b.rod(name, (sx * (w / 2 - post), 0, zc), (sx * (w / 2 - post), h + 0.05, zc), post, "square")
            b.box(name, (0, h - rise / 2 if rise > 0 else h - 0.1, zc), (w - 2 * post, max(rise, 0.2), board_t * 0.6))
    if leg_h:
        r = b.u(0.025, 0.05)
        spots = [(sx * (width / 2 - r - 0.02), sz * (length / 2 - r - 0.02)) for sx in (-1, 1) for sz in (-1, 1)]
        _legs_under(b, "leg", spots, leg_h + 0.02, r, b.pick(("round", "square")))
    if b.chance(0.85):
        n = 1 if width < 1.2 else 2
        pw = min(0.65, width / n - 0.1)
        ph, pd = b.u(0.08, 0.15), b.u(0.3, 0.45)
        z = -length / 2 + inset + pd / 2 + 0.05
        for x in (np.arange(n) - (n - 1) / 2) * width / n:
            if b.chance(0.5):
                b.box("pillow", (x, mat_top + ph / 2 - 0.01, z), (pw, ph, pd))
            else:
                b.add("pillow", Capsule(ph / 2, pw / 2 - ph / 2, b.segments), rotation_z(math.pi / 2), (x, mat_top + ph / 2 - 0.01, z))


def _table(b: _Builder) -> None:
    kind = b.pick(("dining", "coffee", "side", "desk"), (0.4, 0.2, 0.2, 0.2))
    height, width, depth = {
        "dining": lambda: (b.u(0.7, 0.78), b.u(1.0, 2.0), b.u(0.7, 1.0)),
        "coffee": lambda: (b.u(0.35, 0.5), b.u(0.8, 1.4), b.u(0.5, 0.8)),
        "side": lambda: (b.u(0.5, 0.7), b.u(0.4, 0.6), b.u(0.4, 0.6)),
        "desk": lambda: (b.u(0.72, 0.76), b.u(1.0, 1.6), b.u(0.55, 0.75)),
    }[kind]()
    t = b.u(0.02, 0.06)
    round_top = kind != "desk" and b.chance(0.3)
    if round_top:
        r = min(width, depth) / 2 if kind != "dining" else depth / 2 * b.u(1.0, 1.3)
        width = depth = 2 * r
        b.cylinder("top", (0, height - t / 2, 0), r, t)
    else:
        b.box("top", (0, height - t / 2, 0), (width, t, depth))
    join = height - t / 2
    base = b.pick(
        ("four", "pedestal", "trestle", "panels"),
        (0.45, 0.45, 0.0, 0.1) if round_top else ((0.3, 0.0, 0.1, 0.6) if kind == "desk" else (0.65, 0.1, 0.1, 0.15)),
    )
    leg_r, style = b.u(0.015, 0.04), b.pick(("round", "square"))
    if base == "four":
        if round_top:
            n = b.pick((3, 4))
            reach = width / 2 * 0.65
            spots = [(reach * math.cos(a), reach * math.sin(a)) for a in 2 * np.pi * np.arange(n) / n + math.pi / 4]
        else:
            ix, iz = width / 2 - leg_r - b.u(0.0, 0.1), depth / 2 - leg_r - b.u(0.0, 0.08)
            spots = [(sx * ix, sz * iz) for sx in (-1, 1) for sz in (-1, 1)]
        _legs_under(b, "leg", spots, join, leg_r, style, b.u(0.0, 0.04) if b.chance(0.3) else 0.0)
        if not round_top and b.chance(0.4):  # apron under the top
            ah = b.u(0.05, 0.1)
            y = join - t / 2 - ah / 2 + 0.005
            b.box("support", (0, y, iz), (2 * ix, ah, 0.02))
            b.box("support", (0, y, -iz), (2 * ix, ah, 0.02))
            b.box("support", (ix, y, 0), (0.02, ah, 2 * iz))
            b.box("support", (-ix, y, 0), (0.02, ah, 2 * iz))
        elif not round_top and b.chance(0.35):  # a lower shelf or an H stretcher
            y = b.u(0.08, 0.3) * height / 0.75
            if b.chance(0.5):
                b.box("support", (0, y, 0), (2 * ix + 2 * leg_r, 0.02, 2 * iz + 2 * leg_r))
            else:
                for sx in (-1, 1):
                    b.rod("support", (sx * ix, y, -iz), (sx * ix, y, iz), leg_r * 0.6, style)
                b.rod("support", (-ix, y, 0), (ix, y, 0), leg_r * 0.6, style)
    elif base == "pedestal":
        col = b.u(0.04, 0.1)
        foot_h = b.u(0.02, 0.05)
        b.cylinder("leg", (0, (foot_h + join) / 2, 0), col, join - foot_h + 0.01)
        if b.chance(0.5):
            b.cylinder("leg", (0, foot_h / 2, 0), b.u(0.18, 0.32) * min(1.0, width), foot_h)
        else:
            reach = b.u(0.2, 0.35) * min(1.0, width)
            for a in (0.25 + np.arange(4) * 0.5) * math.pi:
                b.rod("leg", (0, foot_h, 0), (reach * math.cos(a), foot_h / 2, reach * math.sin(a)), foot_h / 2, "square")
    elif base == "trestle":
        ix = width / 2 * b.u(0.6, 0.85)
        for sx in (-1, 1):
            b.box("leg", (sx * ix, join / 2, 0), (0.05, join, depth * 0.2))
            b.box("leg", (sx * ix, 0.025, 0), (0.08, 0.05, depth * 0.8))
        b.box("support", (0, join * 0.35, 0), (2 * ix, 0.05, 0.04))
    else:  # two side panels
        pt = b.u(0.025, 0.05)
        ix = width / 2 - pt / 2 - b.u(0.0, 0.05)
        for sx in (-1, 1):
            b.box("leg", (sx * ix, join / 2, 0), (pt, join, depth * b.u(0.85, 1.0)))
        if b.chance(0.5):  # modesty panel
            b.box("support", (0, join * 0.6, -depth / 2 * 0.8), (2 * ix, join * 0.5, 0.02))
    if kind == "desk" and base != "pedestal" and b.chance(0.45):  # a drawer pedestal under one end
        pw = width * b.u(0.25, 0.4)
        side = b.pick((-1, 1))
        b.box("support", (side * (width / 2 - pw / 2 - 0.02), (join - t / 2) / 2 + 0.01, 0), (pw, join - t / 2 - 0.02, depth * 0.9))


def _bookshelf(b: _Builder) -> None:
    tall = b.chance(0.65)
    height = b.u(1.2, 2.0) if tall else b.u(0.6, 1.0)
    width = b.u(0.6, 1.2) if tall else b.u(0.8, 1.6)
    depth, t = b.u(0.25, 0.4), b.u(0.015, 0.03)
    base_h = b.u(0.04, 0.1) if b.chance(0.5) else 0.0
    if b.chance(0.15):  # open frame on four posts
        post = b.u(0.015, 0.025)
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.rod("side", (sx * (width / 2 - post), 0, sz * (depth / 2 - post)), (sx * (width / 2 - post), height, sz * (depth / 2 - post)), post, "square")
        inner = width
    else:
        for sx in (-1, 1):
            b.box("side", (sx * (width / 2 - t / 2), height / 2, 0), (t, height, depth))
        inner = width - 2 * t + 0.01
    n = max(2, int(round((height - base_h) / b.u(0.28, 0.42)))) + 1
    overhang = b.u(0.02, 0.05) if b.chance(0.3) else 0.0
    for k, y in enumerate(np.linspace(base_h + t / 2, height - t / 2, n)):
        w = width + 2 * overhang if k == n - 1 and overhang else inner
        b.box("shelf", (0, y, 0), (w, t, depth - 0.005))
    if width > 0.9 and b.chance(0.3):
        b.box("side", (0, height / 2, 0), (t, height - 0.01, depth - 0.01))
    if b.chance(0.75):
        b.box("back", (0, height / 2, -depth / 2 + 0.005), (width - 0.005, height - 0.005, 0.01))
    if base_h:
        b.box("base", (0, base_h / 2, 0.01), (inner, base_h, depth * 0.9))


def _cabinet(b: _Builder) -> None:
    width, height, depth = b.u(0.4, 1.2), b.u(0.5, 1.5), b.u(0.35, 0.6)
    leg_h = b.u(0.06, 0.2) if b.chance(0.4) else 0.0
    body_h = height - leg_h
    b.box("body", (0, leg_h + body_h / 2, 0), (width, body_h, depth))
    if b.chance(0.3):
        b.box("body", (0, height + 0.0125, 0.01), (width + 0.04, 0.025, depth + 0.02))
    layout = b.pick(("doors", "drawers", "mixed"))
    margin, gap, front_t = 0.02, 0.008, 0.02
    fronts = []  # (name, x0, x1, y0, y1)
    lo, hi = leg_h + margin, height - margin
    if layout == "drawers":
        ys = np.linspace(lo, hi, b.pick((2, 3, 4, 5)) + 1)
        fronts = [("drawer", -width / 2 + margin, width / 2 - margin, y0, y1 - gap) for y0, y1 in zip(ys[:-1], ys[1:])]
    else:
        split = hi if layout == "doors" else hi - (hi - lo) * b.u(0.2, 0.35)
        doors = b.pick((1, 2)) if width < 0.8 else 2
        xs = np.linspace(-width / 2 + margin, width / 2 - margin, doors + 1)
        fronts = [("door", x0, x1 - gap, lo, split - gap) for x0, x1 in zip(xs[:-1], xs[1:])]
        if layout == "mixed":
            fronts.append(("drawer", -width / 2 + margin, width / 2 - margin, split, hi))
    z = depth / 2 + front_t / 2 - 0.005
    knob = b.chance(0.4)
    for i, (name, x0, x1, y0, y1) in enumerate(fronts):
        b.box(name, ((x0 + x1) / 2, (y0 + y1) / 2, z), (x1 - x0, y1 - y0, front_t))
        if name == "drawer":
            hx, hy = (x0 + x1) / 2, y1 - min(0.06, (y1 - y0) / 3)
        else:
            side = -1 if (x0 + x1) / 2 > 0 or len([f for f in fronts if f[0] == "door"]) == 1 else 1
            hx, hy = (x1 - 0.04) if side == 1 else (x0 + 0.04), (y0 + y1) / 2
        if knob:
            b.add("handle", Sphere(0.015, b.segments), at=(hx, hy, z + front_t / 2 + 0.01))
        else:
            along_x = name == "drawer"
            length = 0.1 if along_x else min(0.2, (y1 - y0) * 0.4)
            rot = rotation_z(math.pi / 2) if along_x else None
            b.add("handle", Capsule(0.008, length / 2, b.segments), rot, (hx, hy, z + front_t / 2 + 0.012))
    if leg_h:
        r = b.u(0.015, 0.03)
        spots = [(sx * (width / 2 - 0.04), sz * (depth / 2 - 0.04)) for sx in (-1, 1) for sz in (-1, 1)]
        _legs_under(b, "leg", spots, leg_h + 0.02, r, b.pick(("round", "square")), b.u(0.0, 0.03))


# --------------------------------------------------------------------------- lamps and vessels


def _band(r_bottom: float, r_top: float, height: float, wall: float, closed_top: bool = False) -> np.ndarray:
    """``(r, y)`` profile of a thin conical band (a lampshade) from y=0 to ``height``, open at the
    bottom, and at the top unless ``closed_top``."""
    if closed_top:
        inner = [[0.0, height], [0.0, height - wall], [r_top - wall, height - wall]]
        return np.array([[r_bottom, 0.0], [r_top, height], *inner, [r_bottom - wall, 0.0]])
    return np.array([[r_bottom, 0.0], [r_top, height], [r_top - wall, height], [r_bottom - wall, 0.0]])


def _dome(radius: float, height: float, wall: float, hole: float, n: int = 6) -> np.ndarray:
    """``(r, y)`` profile of a thin dome shell open at the bottom, with a hole of radius ``hole`` on top."""
    a = np.linspace(0.0, math.acos(hole / radius), n)
    outer = np.stack([radius * np.cos(a), height * np.sin(a)], 1)
    inner = np.stack([(radius - wall) * np.cos(a[::-1]), (height - wall) * np.sin(a[::-1])], 1)
    inner[0, 0] = outer[-1, 0] - wall
    return np.concatenate([outer, inner])


def _smooth_profile(b: _Builder, height: float, r_lo: float, r_hi: float, knots: int, samples: int) -> np.ndarray:
    """``(samples, 2)`` ``(r, y)`` points of a random smooth radius curve from y=0 to ``height``."""
    y = np.linspace(0.0, height, knots)
    r = np.array([b.u(r_lo, r_hi) for _ in range(knots)])
    ys = np.linspace(0.0, height, samples)
    rs = np.clip(CubicSpline(y, r, bc_type="natural")(ys), 0.6 * r_lo, 1.2 * r_hi)
    return np.stack([rs, ys], 1)


def _lamp(b: _Builder) -> None:
    style = b.pick(("floor", "table", "arm", "pendant"), (0.3, 0.35, 0.2, 0.15))
    wall = b.u(0.004, 0.01)
    tube_r = b.u(0.008, 0.018)
    if style in ("floor", "table"):
        tall = style == "floor"
        base_top = b.u(0.02, 0.05) if tall else b.u(0.03, 0.3)
        if tall and b.chance(0.3):  # tripod
            reach = b.u(0.2, 0.3)
            for a in 2 * np.pi * np.arange(3) / 3:
                b.rod("base", (reach * math.cos(a), 0.0, reach * math.sin(a)), (0, 0.35, 0), 0.012, "round")
            base_top = 0.33
        elif not tall and base_top > 0.1 and b.chance(0.7):  # a vase-like body
            body = _smooth_profile(b, base_top, 0.04, 0.1, 4, 8)
            b.lathe("base", np.concatenate([[[0.0, 0.0]], body, [[0.0, base_top]]]))
        elif b.chance(0.3):
            side = b.u(0.1, 0.2)
            b.box("base", (0, base_top / 2, 0), (side, base_top, side))
        else:
            b.cylinder("base", (0, base_top / 2, 0), b.u(0.08, 0.2), base_top)
        pole = b.u(1.1, 1.6) if tall else b.u(0.1, 0.3)
        top = base_top + pole
        b.cylinder("tube", (0, (base_top + top) / 2 - 0.005, 0), tube_r, pole + 0.01)
        rb = b.u(0.15, 0.28) if tall else b.u(0.1, 0.22)
        rt, h = rb * b.u(0.45, 1.0), rb * b.u(0.8, 1.4)
        if tall and b.chance(0.3):  # upturned bowl (uplighter)
            b.lathe("shade", [[0.0, 0.0], [rb * 0.3, 0.0], [rb, h * 0.4], [rb - wall, h * 0.4], [0.0, wall + 0.002]], at=(0, top, 0))
        else:
            frac = b.u(0.3, 0.7)
            b.lathe("shade", _band(rb, rt, h, wall), at=(0, top - h * frac, 0))
            reach = rb + (rt - rb) * frac - wall / 2  # a spider holds the shade on the tube
            for a in (0.0, math.pi / 2):
                b.box("shade", (0, top, 0), (2 * reach, 0.006, 0.006), rotation_y(a))
    elif style == "arm":
        b.cylinder("base", (0, 0.0125, 0), b.u(0.06, 0.1), 0.025)
        lean = b.u(0.1, 0.6)
        l1, l2 = b.u(0.25, 0.45), b.u(0.25, 0.45)
        elbow = np.array([l1 * math.sin(lean), 0.02 + l1 * math.cos(lean), 0.0])
        drop = b.u(-0.3, 0.6)
        head = elbow + l2 * np.array([math.cos(drop), -math.sin(drop), 0.0])
        b.rod("tube", (0, 0.02, 0), elbow, tube_r, "capsule")
        b.rod("tube", elbow, head, tube_r, "capsule")
        rb, h = b.u(0.06, 0.1), b.u(0.1, 0.16)
        direction = np.array([b.u(0.0, 0.6), -1.0, 0.0])
        direction /= np.linalg.norm(direction)  # the shade opens down and forwards
        shade = _band(rb, rb * b.u(0.2, 0.4), h, wall, closed_top=True)
        b.lathe("shade", shade, rotation_between((0.0, 1.0, 0.0), -direction), head + 0.9 * h * direction)
    else:  # pendant: canopy at the top, cord, shade hanging
        drop = b.u(0.4, 1.0)
        rb = b.u(0.12, 0.3)
        h = rb * b.u(0.5, 1.1)
        shade = _dome(rb, h, wall, 0.02) if b.chance(0.5) else _band(rb, rb * b.u(0.2, 0.6), h, wall, closed_top=True)
        b.lathe("shade", shade)
        b.cylinder("tube", (0, h + drop / 2 - 0.02, 0), 0.004, drop + 0.03)
        b.cylinder("canopy", (0, h + drop + 0.015, 0), b.u(0.04, 0.08), 0.03)


def _attach_handle(b: _Builder, name: str, outer: np.ndarray, y_mid: float, arc_radius: float, tube: float, half_angle: float, side: float = 1.0) -> None:
    """An :class:`ArcTube` handle whose ends sink into a body of revolution with ``(r, y)`` outer profile
    ``outer`` (increasing y), on the ``+x`` side (``side=1``) or the ``-x`` side (``side=-1``)."""
    r_at = lambda y: float(np.interp(y, outer[:, 1], outer[:, 0]))  # noqa: E731
    y1, y2 = y_mid - arc_radius * math.sin(half_angle), y_mid + arc_radius * math.sin(half_angle)
    p1 = np.array([r_at(y1) + 0.3 * tube, y1])
    p2 = np.array([r_at(y2) + 0.3 * tube, y2])
    chord = p2 - p1
    tilt = math.atan2(-chord[0], chord[1])  # turns the arc's vertical chord onto the body's side
    rot = rotation_z(tilt)
    centre = np.append((p1 + p2) / 2, 0.0) + rot @ np.array([-arc_radius * math.cos(half_angle), 0.0, 0.0])
    flip = rotation_y(math.pi) if side < 0 else np.eye(3)
    b.add(name, ArcTube(tube, arc_radius, half_angle, b.segments), flip @ rot, flip @ centre)


def _mug(b: _Builder) -> None:
    radius, height = b.u(0.035, 0.055), b.u(0.07, 0.12)
    wall, floor = b.u(0.003, 0.007), b.u(0.005, 0.012)
    shape = b.pick(("straight", "tapered", "bellied"))
    top = radius
    if shape == "tapered":  # wider or narrower at the rim
        top *= b.u(1.05, 1.25) if b.chance(0.5) else b.u(0.85, 0.95)
    outer = [[radius, 0.0]]
    if shape == "bellied":
        outer.append([radius * b.u(1.08, 1.2), height * b.u(0.35, 0.6)])
    outer.append([top, height])
    outer = np.array(outer)
    inner = outer[::-1] - [wall, 0.0]
    inner[-1, 1] = floor
    b.lathe("body", np.concatenate([[[0.0, 0.0]], outer, inner, [[0.0, floor]]]))
    handle = b.pick(("round", "square", "none"), (0.6, 0.25, 0.15))
    tube = min(b.u(0.004, 0.008), 1.3 * wall)
    if handle == "round":
        _attach_handle(b, "handle", outer, height * b.u(0.45, 0.55), height * b.u(0.25, 0.38), tube, b.u(1.7, 2.4))
    elif handle == "square":
        reach = b.u(0.02, 0.035)
        y1, y2 = height * b.u(0.15, 0.3), height * b.u(0.7, 0.85)
        x1 = float(np.interp(y1, outer[:, 1], outer[:, 0])) + 0.3 * tube
        x2 = float(np.interp(y2, outer[:, 1], outer[:, 0])) + 0.3 * tube
        far = max(x1, x2) + reach
        b.rod("handle", (x1, y1, 0), (far, y1, 0), tube, "capsule")
        b.rod("handle", (far, y1, 0), (far, y2, 0), tube, "capsule")
        b.rod("handle", (far, y2, 0), (x2, y2, 0), tube, "capsule")


def _bottle(b: _Builder) -> None:
    style = b.pick(("wine", "water", "jug", "square"), (0.35, 0.3, 0.15, 0.2))
    radius = {"wine": (0.033, 0.045), "water": (0.03, 0.045), "jug": (0.06, 0.1), "square": (0.03, 0.05)}[style]
    radius = b.u(*radius)
    body_h = b.u(0.16, 0.24) if style != "water" else b.u(0.12, 0.2)
    neck_r = b.u(0.011, 0.016) if style != "jug" else b.u(0.02, 0.03)
    shoulder = b.u(0.03, 0.07) if style in ("wine", "jug") else b.u(0.015, 0.04)
    neck_len = b.u(0.06, 0.1) if style == "wine" else b.u(0.015, 0.04)
    s = np.linspace(0.0, 1.0, 6)[1:]
    ramp = np.stack([neck_r + (radius - neck_r) * (1 + np.cos(np.pi * s)) / 2, body_h + s * shoulder], 1)
    if style == "square":
        depth = 2 * radius * b.u(0.6, 1.0)
        b.box("body", (0, body_h / 2, 0), (2 * radius, body_h, depth))
        r0 = min(radius, depth / 2) * 0.95
        ramp = np.stack([neck_r + (r0 - neck_r) * (1 + np.cos(np.pi * s)) / 2, body_h + s * shoulder], 1)
        b.lathe("body", np.concatenate([[[0.0, body_h - 0.01], [r0, body_h - 0.01]], ramp, [[0.0, ramp[-1, 1]]]]))
        outer = None
    else:
        if style == "jug":
            bulge = _smooth_profile(b, body_h, radius * 0.9, radius * 1.1, 3, 6)
        else:
            bulge = np.array([[radius * 0.92, 0.0], [radius, 0.005], [radius, body_h]])
        outer = np.concatenate([bulge, ramp])
        b.lathe("body", np.concatenate([[[0.0, 0.0]], outer, [[0.0, ramp[-1, 1]]]]))
    neck_base = body_h + shoulder - 0.005
    neck_top = neck_base + neck_len
    b.cylinder("neck", (0, (neck_base + neck_top) / 2, 0), neck_r, neck_len)
    if b.chance(0.4):  # a lip ring
        b.lathe("neck", [[neck_r - 0.002, 0.0], [neck_r + 0.003, 0.0], [neck_r + 0.003, 0.006], [neck_r - 0.002, 0.006]], at=(0, neck_top - 0.008, 0))
    if style == "water" or b.chance(0.5):
        cap_h = b.u(0.012, 0.03)
        b.cylinder("cap", (0, neck_top - 0.005 + cap_h / 2, 0), neck_r + b.u(0.001, 0.004), cap_h)
    if style == "jug":
        _attach_handle(b, "handle", outer, body_h * b.u(0.6, 0.75), body_h * b.u(0.2, 0.3), b.u(0.006, 0.01), b.u(1.6, 2.2))


def _vase(b: _Builder) -> None:
    height = b.u(0.2, 0.5)
    foot_h = height * b.u(0.04, 0.1) if b.chance(0.4) else 0.0
    body_h = height - foot_h
    wall = b.u(0.004, 0.01)
    outer = _smooth_profile(b, body_h, height * 0.1, height * 0.35, b.pick((4, 5, 6)), 14) + [0.0, foot_h]
    if b.chance(0.25):  # a bud vase: the top narrows into a bottle-like neck
        start = b.u(0.45, 0.7)
        s = np.clip((outer[:, 1] - foot_h) / body_h - start, 0.0, None) / (1.0 - start)
        outer[:, 0] *= 1.0 - (1.0 - b.u(0.25, 0.45)) * np.sin(np.pi / 2 * np.minimum(3 * s, 1.0))
    outer[-1, 0] = max(outer[-1, 0], 2.5 * wall)  # an opening wider than the wall
    # hollow from the mouth down as far as the inside stays wider than the wall
    wide = outer[:, 0] >= 2.5 * wall
    first = len(outer) - int(np.argmin(wide[::-1])) if not wide.all() else 0
    depth_index = min(max(first, int(len(outer) * b.u(0.0, 0.6))), len(outer) - 2)
    inner = outer[depth_index:][::-1].copy()
    inner[:, 0] = np.maximum(inner[:, 0] - wall, 0.3 * inner[:, 0])  # the wall thins where the neck is narrow
    profile = np.concatenate([[[0.0, foot_h]], outer, inner, [[0.0, inner[-1, 1]]]])
    b.lathe("body", profile)
    if foot_h:
        b.lathe("foot", [[0.0, 0.0], [outer[0, 0] * b.u(0.8, 1.2), 0.0], [outer[0, 0] * 0.9, foot_h + 0.005], [0.0, foot_h + 0.005]])
    mouth = outer[-1]
    if b.chance(0.45):
        lip = b.u(0.005, 0.02)
        b.lathe("lip", [[mouth[0] - wall, 0.0], [mouth[0] + lip, 0.0], [mouth[0] + lip, 0.008], [mouth[0] - wall, 0.012]], at=(0, mouth[1] - 0.01, 0))
    if b.chance(0.2):
        arc = body_h * b.u(0.12, 0.2)
        y_mid = foot_h + body_h * b.u(0.5, 0.7)
        tube = min(b.u(0.005, 0.01), 1.3 * wall)
        for side in (1.0, -1.0):
            _attach_handle(b, "handle", outer, y_mid, arc, tube, b.u(1.5, 2.2), side)


# --------------------------------------------------------------------------- vehicles


def _airplane(b: _Builder) -> None:
    length = 1.0
    fr = b.u(0.035, 0.06)
    nose, tail = b.u(0.07, 0.15), b.u(0.2, 0.32)
    s = np.linspace(0.0, 1.0, 6)
    nose_pts = np.stack([fr * np.sqrt(1 - s[1:] ** 2), 0.5 - nose + nose * s[1:]], 1)[:-1]
    tail_pts = np.stack([fr * (0.15 + 0.85 * s[1:] ** 0.7), -0.5 + tail * s[1:]], 1)
    profile = np.concatenate([[[0.0, -0.5]], tail_pts, nose_pts, [[0.0, 0.5]]])
    along_x = rotation_z(-math.pi / 2)  # the lathe's +y axis onto +x (nose forward)
    b.lathe("body", profile, along_x)

    def planform(root: float, tip: float, span: float, sweep: float) -> tuple:
        d = span * math.tan(sweep)
        return ((0.0, 0.0), (-root, 0.0), (-d - tip, span), (-d, span))

    root = b.u(0.12, 0.25) * length
    tip, span = root * b.u(0.25, 0.6), b.u(0.35, 0.6) * length
    sweep, thick = b.u(0.0, 0.6), root * b.u(0.06, 0.12) / 2
    x_wing = b.u(-0.05, 0.15) + root / 2
    y_wing = fr * b.pick((-0.6, 0.0, 0.6))
    dihedral = b.u(-0.05, 0.14)
    wing = Prism(planform(root, tip, span, sweep), thick)
    for side in (1, -1):
        rot = rotation_x(-side * dihedral) @ rotation_x(side * math.pi / 2)
        b.add("wing", wing, rot, (x_wing, y_wing, 0.0))
    fin_root, fin_h = root * b.u(0.4, 0.7), b.u(0.1, 0.2) * length
    x_tail = -0.5 + fin_root + 0.02
    fin = Prism(planform(fin_root, fin_root * b.u(0.3, 0.7), fin_h, b.u(0.3, 0.8)), thick * 0.6)
    twin = b.chance(0.1)
    t_tail = not twin and b.chance(0.2)
    stab_root, stab_span = root * b.u(0.35, 0.6), span * b.u(0.25, 0.4)
    stab_y = fin_h * 0.95 if t_tail else fr * 0.3
    stab = Prism(planform(stab_root, stab_root * b.u(0.4, 0.7), stab_span, sweep), thick * 0.6)
    for side in (1, -1):
        b.add("tail", stab, rotation_x(side * math.pi / 2), (x_tail, stab_y, 0.0))
        if twin:
            b.add("tail", fin, None, (x_tail, fr * 0.3, side * stab_span * 0.9))
    if not twin:
        b.add("tail", fin, None, (x_tail, 0.0, 0.0))
    engines = b.pick(("none", "two", "four", "rear"), (0.2, 0.5, 0.2, 0.1))
    er, el = fr * b.u(0.35, 0.6), root * b.u(0.6, 1.0)
    nacelle = [[0.0, -el / 2], [er * 0.7, -el / 2], [er, -el / 4], [er, el / 2 - 0.01], [er * 0.85, el / 2], [0.0, el / 2]]
    spans = {"none": [], "two": [b.u(0.3, 0.4)], "four": [b.u(0.25, 0.35), b.u(0.6, 0.7)], "rear": []}[engines]
    for f in spans:
        for side in (1, -1):
            d = f * span
            x = x_wing - d * math.tan(sweep) - root * 0.25 + el * 0.3
            y = y_wing + d * math.sin(dihedral) - thick - er * 0.8
            b.lathe("engine", nacelle, along_x, (x, y, side * d * math.cos(dihedral)))
            b.box("engine", (x - el * 0.1, y + er * 0.8, side * d * math.cos(dihedral)), (el * 0.5, er * 1.0, er * 0.25))
    if engines == "rear":
        for side in (1, -1):
            b.lathe("engine", nacelle, along_x, (-0.5 + tail * 0.9, fr * 0.3, side * (0.9 * fr + 0.8 * er)))


def _car(b: _Builder) -> None:
    kind = b.pick(("sedan", "hatchback", "suv", "pickup", "van"), (0.3, 0.2, 0.2, 0.15, 0.15))
    length = b.u(4.3, 5.2) if kind in ("suv", "van", "pickup") else b.u(3.8, 4.9)
    width, wheel = b.u(1.6, 1.9), b.u(0.28, 0.36)
    clearance = wheel * b.u(0.45, 0.7)
    body_h = {"sedan": (0.45, 0.6), "hatchback": (0.45, 0.6), "suv": (0.6, 0.8), "pickup": (0.6, 0.8), "van": (0.7, 0.9)}[kind]
    body_h = b.u(*body_h)
    front, rear = b.u(0.15, 0.5), b.u(0.1, 0.35)
    top = clearance + body_h
    body = ((-length / 2, clearance + 0.1), (-length / 2 + 0.1, clearance), (length / 2 - 0.15, clearance),
            (length / 2, clearance + body_h * 0.45), (length / 2 - front, top), (-length / 2 + rear, top),
            (-length / 2, top - 0.1))  # fmt: skip
    b.add("body", Prism(body, width / 2))
    cabin = {"sedan": (-0.28, 0.2), "hatchback": (-0.46, 0.15), "suv": (-0.46, 0.15), "pickup": (-0.1, 0.2), "van": (-0.48, 0.32)}[kind]
    x0, x1 = (c * length + b.u(-0.1, 0.1) for c in cabin)
    cabin_h = b.u(0.7, 0.9) if kind == "van" else b.u(0.35, 0.55) if kind != "suv" else b.u(0.45, 0.6)
    rake_back = b.u(0.05, 0.15) if kind in ("hatchback", "suv", "van", "pickup") else b.u(0.3, 0.6)
    rake_front = b.u(0.3, 0.7) if kind != "van" else b.u(0.15, 0.4)
    roof = ((x0, 0.0), (x1, 0.0), (x1 - rake_front, cabin_h), (x0 + rake_back, cabin_h))
    b.add("roof", Prism(roof, width / 2 * b.u(0.85, 0.95)), at=(0.0, top - 0.02, 0.0))
    tyre = b.u(0.18, 0.28)
    profile = [[0.0, -tyre / 2], [wheel - 0.03, -tyre / 2], [wheel, -tyre / 2 + 0.03], [wheel, tyre / 2 - 0.03], [wheel - 0.03, tyre / 2], [0.0, tyre / 2]]
    base = length * b.u(0.55, 0.65)
    for x in (-base / 2, base / 2):
        for z in (-1, 1):
            b.lathe("wheel", profile, rotation_x(math.pi / 2), (x, wheel, z * (width / 2 - tyre / 2 + 0.03)))


_GENERATORS = {
    "airplane": _airplane,
    "bed": _bed,
    "bookshelf": _bookshelf,
    "bottle": _bottle,
    "cabinet": _cabinet,
    "car": _car,
    "chair": _chair,
    "lamp": _lamp,
    "mug": _mug,
    "sofa": _sofa,
    "table": _table,
    "vase": _vase,
}


def make_shape(
    class_name: str,
    seed: int | torch.Generator = 0,
    *,
    normalize: bool = True,
    rotation: str = "none",
    scale: tuple[float, float] | None = None,
    segments: int = SEGMENTS,
) -> Shape:
    """Generate one random object of a class.

    Args:
        class_name: one of :data:`CLASSES`.
        seed: int seed or ``torch.Generator`` (the only source of randomness).
        normalize: centre on the bounding-box centre and scale into the unit ball
            (canonical pose). ``False`` keeps metres, standing on ``y = 0`` and
            centred in ``x, z``, front towards ``+z`` (what a room needs).
        rotation: ``"none"``, ``"up"`` (random yaw about ``+y``) or ``"so3"``.
        scale: optional ``(lo, hi)``: multiply by a uniform random factor.
        segments: segments around round primitives (mesh resolution).

    Returns:
        the :class:`Shape`.

    >>> chair = make_shape("chair", seed=3)
    >>> chair.part_names
    ('back', 'seat', 'leg', 'arm')
    """
    if class_name not in _GENERATORS:
        raise ValueError(f"unknown class {class_name!r}; choose one of {CLASSES}")
    generator = as_generator(seed)
    builder = _Builder(class_name, _numpy_rng(generator), segments)
    _GENERATORS[class_name](builder)
    shape = Shape.from_parts(class_name, builder.grounded())
    if normalize:
        shape = shape.normalized()
    if rotation != "none" or scale is not None:
        q = random_rotation(rotation, generator)
        s = 1.0 if scale is None else scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=generator, dtype=torch.float64))
        shape = shape.transformed(q, s)
    return shape
