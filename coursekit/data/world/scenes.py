r"""Procedural rooms: floor, walls, doors, windows, pictures and furniture, with labels and boxes.

A room is an axis-aligned box of interior ``Lx x height x Lz`` metres: the floor's
top is ``y = 0``, the interior spans ``x in [-Lx/2, Lx/2]``, ``z in [-Lz/2, Lz/2]``
(``+y`` up, no ceiling). Furniture from :mod:`.shapes`, in metres, stands on the
floor without overlapping anything (tested on oriented footprints plus height
intervals); beds, sofas, cabinets and bookshelves back onto a wall, chairs gather
around tables, pendant lamps hang from the ceiling height.

Labels:
    * **semantic**: an index into :data:`SCENE_CLASSES`, the 20 ScanNet benchmark
      classes in the slide's order (lamps are ``otherfurniture``);
    * **instance**: ``0`` the floor, ``1..4`` the walls, then one id per door,
      window, picture and piece of furniture;
    * **oriented boxes** for every object except floor and walls: ``(7,)`` =
      ``(cx, cy, cz, sx, sy, sz, yaw)``: centre, the sizes along the object's own
      ``x`` (width), ``y`` (height) and ``z`` (depth; the object faces its ``+z``),
      and the yaw :math:`\theta` about ``+y`` such that the box's axes in the world
      are the columns of :math:`R_y(\theta)` (``yaw = 0``: the object faces ``+z``);
      :func:`coursekit.geometry.boxes.box_corners` (re-exported here) gives their corners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from coursekit.geometry.boxes import box_corners  # re-exported: the corners of the boxes below

from .primitives import Box, Part, assemble, make_pose, rotation_y, sample_union_surface, union_sdf
from .shapes import Shape, _numpy_rng, as_generator, make_shape

__all__ = ["SCENE_CLASSES", "FURNITURE", "Scene", "SceneObject", "make_scene", "box_corners"]

SCENE_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
    "otherfurniture",
)  # fmt: skip
"""ScanNet's 20 benchmark classes (the slide's legend, without ``ignore``); semantic labels index it."""

_SEMANTIC = {"bed": "bed", "bookshelf": "bookshelf", "cabinet": "cabinet", "chair": "chair", "lamp": "otherfurniture", "sofa": "sofa", "table": "table"}
FURNITURE: tuple[str, ...] = tuple(_SEMANTIC)
"""Object classes that a room may contain."""

_AGAINST_WALL = {"bed", "bookshelf", "cabinet", "sofa"}
_WEIGHTS = {"bed": 0.6, "bookshelf": 1.0, "cabinet": 1.0, "chair": 1.5, "lamp": 0.8, "sofa": 0.8, "table": 1.2}
_WALL_THICKNESS = 0.1


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One labelled thing in a room.

    Attributes:
        name: its class (``"chair"``, ``"door"`` ...).
        semantic: index into :data:`SCENE_CLASSES`.
        instance: its instance id.
        box: ``(7,)`` oriented box (module convention).
        shape: the furniture :class:`Shape` in its own metric frame (``None`` for
            doors, windows and pictures, which are single boxes).
    """

    name: str
    semantic: int
    instance: int
    box: torch.Tensor
    shape: Shape | None


@dataclass(frozen=True, eq=False)
class Scene:
    """A furnished room: parts in world coordinates, a labelled mesh, boxes and an SDF.

    Attributes:
        size: ``(Lx, height, Lz)`` interior size in metres.
        parts: every posed primitive (floor, walls, fixtures, furniture parts).
        part_semantic: ``(P,)`` int64 semantic label of each part.
        part_instance: ``(P,)`` int64 instance id of each part.
        objects: the boxed objects (fixtures and furniture), in instance order.
        vertices: ``(V, 3)`` float32.
        faces: ``(F, 3)`` int64.
        face_parts: ``(F,)`` int64 part of each face.
    """

    size: tuple[float, float, float]
    parts: tuple[Part, ...]
    part_semantic: torch.Tensor
    part_instance: torch.Tensor
    objects: tuple[SceneObject, ...]
    vertices: torch.Tensor
    faces: torch.Tensor
    face_parts: torch.Tensor

    @property
    def face_semantic(self) -> torch.Tensor:
        """``(F,)`` int64 semantic label of each face."""
        return self.part_semantic[self.face_parts]

    @property
    def face_instance(self) -> torch.Tensor:
        """``(F,)`` int64 instance id of each face."""
        return self.part_instance[self.face_parts]

    @property
    def boxes(self) -> torch.Tensor:
        """``(K, 7)`` float32 oriented boxes of the objects (module convention)."""
        return torch.stack([o.box for o in self.objects]) if self.objects else torch.zeros(0, 7)

    @property
    def box_labels(self) -> torch.Tensor:
        """``(K,)`` int64 semantic label of each box."""
        return torch.tensor([o.semantic for o in self.objects], dtype=torch.int64)

    @property
    def box_instances(self) -> torch.Tensor:
        """``(K,)`` int64 instance id of each box."""
        return torch.tensor([o.instance for o in self.objects], dtype=torch.int64)

    @cached_property
    def instance_semantic(self) -> torch.Tensor:
        """``(I,)`` int64: the semantic label of every instance id ``0..I-1``."""
        out = torch.empty(int(self.part_instance.max()) + 1, dtype=torch.int64)
        out[self.part_instance] = self.part_semantic
        return out

    @property
    def interior(self) -> torch.Tensor:
        """``(2, 3)`` the room's inside: ``[min, max]`` corners."""
        lx, h, lz = self.size
        return torch.tensor([[-lx / 2, 0.0, -lz / 2], [lx / 2, h, lz / 2]])

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        r"""``(N,)`` signed distance of the whole scene at ``points (N, 3)``: :math:`\min_i f_i(x)`."""
        return union_sdf(self.parts, points)

    def occupancy(self, points: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: inside some solid (``sdf <= 0``)."""
        return self.sdf(points) <= 0

    def sample(self, n: int, generator: torch.Generator | int = 0) -> dict[str, torch.Tensor]:
        """Uniform points on the surfaces seen from inside the room (a scan's view).

        Faces buried in other parts and the outer sides of walls and floor are skipped.

        Returns:
            dict of ``points (n, 3)`` float32, ``normals (n, 3)``, ``semantic (n,)`` int64
            and ``instance (n,)`` int64.
        """
        points, face = sample_union_surface(
            self.parts, self.vertices, self.faces, self.face_parts, n, as_generator(generator), offset=1e-3, region=self.interior
        )
        v0, v1, v2 = (self.vertices[self.faces[face, k]] for k in range(3))
        normals = torch.nn.functional.normalize(torch.linalg.cross(v1 - v0, v2 - v0), dim=-1)
        owner = self.face_parts[face]
        return {"points": points, "normals": normals, "semantic": self.part_semantic[owner], "instance": self.part_instance[owner]}

    def viewpoints(self, n: int, height: float = 1.5, margin: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` cameras inside the room on an ellipse ``margin`` from the walls at eye ``height``,
        each looking at the opposite side of the room at table height.

        Returns:
            ``R (n, 3, 3)``, ``t (n, 3)`` (see :mod:`coursekit.geometry.camera`).
        """
        from coursekit.geometry.camera import look_at

        lx, _, lz = self.size
        a = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
        eye = torch.stack([(lx / 2 - margin) * a.sin(), torch.full_like(a, height), (lz / 2 - margin) * a.cos()], -1)
        target = torch.stack([-0.3 * eye[:, 0], torch.full_like(a, 0.7), -0.3 * eye[:, 2]], -1)
        R, t = look_at(eye, target)
        return R.float(), t.float()


# --------------------------------------------------------------------------- placement


class _Footprints:
    """Placed volumes as oriented rectangles on the floor plus height intervals (yaw-only boxes)."""

    def __init__(self):
        self.items: list[tuple[np.ndarray, np.ndarray, float, float, float]] = []

    @staticmethod
    def _axes(yaw: float) -> np.ndarray:
        # columns of R_y(yaw) restricted to (x, z): local x -> (cos, -sin), local z -> (sin, cos)
        return np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])

    def free(self, centre, half, yaw, y0, y1, margin=0.05) -> bool:
        a_axes = self._axes(yaw)
        for c, h, w, z0, z1 in self.items:
            if y1 <= z0 or z1 <= y0:
                continue
            b_axes = self._axes(w)
            d = np.asarray(centre) - c
            separated = False
            for axis in np.concatenate([a_axes, b_axes]):
                ra = np.abs(a_axes @ axis) @ (np.asarray(half) + margin)
                rb = np.abs(b_axes @ axis) @ h
                if abs(d @ axis) > ra + rb:
                    separated = True
                    break
            if not separated:
                return False
        return True

    def add(self, centre, half, yaw, y0, y1) -> None:
        self.items.append((np.asarray(centre, float), np.asarray(half, float), yaw, y0, y1))


def _inside(centre, half, yaw, lx, lz, margin=0.02) -> bool:
    axes = _Footprints._axes(yaw)
    corners = np.array([[sx, sz] for sx in (-1, 1) for sz in (-1, 1)]) * half @ axes + centre
    return bool((np.abs(corners[:, 0]) <= lx / 2 - margin).all() and (np.abs(corners[:, 1]) <= lz / 2 - margin).all())


# walls: (inward normal in (x, z), yaw that turns an object's +z onto that normal)
_WALLS = (((0.0, 1.0), 0.0), ((-1.0, 0.0), -math.pi / 2), ((0.0, -1.0), math.pi), ((1.0, 0.0), math.pi / 2))


def _wall_frame(wall: int, lx: float, lz: float):
    """Inner-face centre (x, z), along-wall unit vector, half length and yaw of wall ``wall``."""
    (nx, nz), yaw = _WALLS[wall]
    half_x, half_z = lx / 2, lz / 2
    centre = np.array([-nx * half_x, -nz * half_z])
    along = np.array([1.0, 0.0]) if nx == 0 else np.array([0.0, 1.0])
    half_len = half_x if nx == 0 else half_z
    return centre, np.array([nx, nz]), along, half_len, yaw


def make_scene(
    seed: int | torch.Generator = 0,
    *,
    n_objects: tuple[int, int] = (4, 8),
    room_size: tuple[float, float] = (3.5, 7.0),
    wall_height: tuple[float, float] = (2.4, 2.8),
    classes: tuple[str, ...] = FURNITURE,
    fixtures: bool = True,
    segments: int = 12,
) -> Scene:
    """Generate a furnished room.

    Args:
        seed: int seed or ``torch.Generator``.
        n_objects: ``(lo, hi)`` number of furniture pieces to try to place (some may not fit).
        room_size: ``(lo, hi)`` range of each interior side ``Lx, Lz`` in metres.
        wall_height: ``(lo, hi)`` range of the wall height.
        classes: furniture classes to draw from (a subset of :data:`FURNITURE`).
        fixtures: add a door, windows and pictures on the walls.
        segments: mesh resolution of round parts.

    Returns:
        the :class:`Scene`.
    """
    unknown = set(classes) - set(FURNITURE)
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {FURNITURE}, got {classes}")
    generator = as_generator(seed)
    rng = _numpy_rng(generator)
    lx, lz = rng.uniform(*room_size, size=2)
    height = float(rng.uniform(*wall_height))
    T = _WALL_THICKNESS
    sem = SCENE_CLASSES.index
    parts, semantic, instance, objects = [], [], [], []

    def add_parts(new_parts, label: int, inst: int) -> None:
        parts.extend(new_parts)
        semantic.extend([label] * len(new_parts))
        instance.extend([inst] * len(new_parts))

    add_parts([Part("floor", 0, Box((lx / 2 + T, T / 2, lz / 2 + T)), make_pose(None, (0, -T / 2, 0)))], sem("floor"), 0)
    for i, ((nx, nz), _) in enumerate(_WALLS):
        half = (T / 2, height / 2, lz / 2 + T) if nx else (lx / 2 + T, height / 2, T / 2)
        at = (-nx * (lx / 2 + T / 2), height / 2, -nz * (lz / 2 + T / 2))
        add_parts([Part("wall", 0, Box(half), make_pose(None, at))], sem("wall"), 1 + i)
    placed = _Footprints()
    next_instance = 5

    def add_object(name: str, shape_parts, box_local: np.ndarray, yaw: float, translation, shape=None) -> None:
        nonlocal next_instance
        rot = rotation_y(yaw)
        centre = rot @ box_local.mean(0) + np.asarray(translation)
        size = box_local[1] - box_local[0]
        box = torch.tensor([*centre, *size, yaw], dtype=torch.float32)
        label = sem(_SEMANTIC.get(name, name))
        add_parts([p.transformed(rot, translation=translation) for p in shape_parts], label, next_instance)
        objects.append(SceneObject(name, label, next_instance, box, None if shape is None else shape.transformed(rot, translation=translation)))
        next_instance += 1

    if fixtures:
        spans: dict[int, list[tuple[float, float]]] = {w: [] for w in range(4)}
        wanted = [("door", 1)] + [("window", int(rng.integers(0, 3))), ("picture", int(rng.integers(0, 3)))]
        for name, count in wanted:
            for _ in range(count):
                width, tall, y0, depth = {
                    "door": lambda: (rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1), 0.0, 0.06),
                    "window": lambda: (rng.uniform(0.8, 1.5), rng.uniform(1.0, 1.3), rng.uniform(0.8, 1.0), 0.06),
                    "picture": lambda: (rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.7), rng.uniform(1.2, 1.5), 0.03),
                }[name]()
                tall = min(tall, height - y0 - 0.1)
                for _ in range(20):
                    wall = int(rng.integers(0, 4))
                    centre, normal, along, half_len, yaw = _wall_frame(wall, lx, lz)
                    if width / 2 + 0.15 > half_len:
                        continue
                    s = rng.uniform(-half_len + width / 2 + 0.15, half_len - width / 2 - 0.15)
                    if any(abs(s - s0) < (width + w0) / 2 + 0.1 for s0, w0 in spans[wall]):
                        continue
                    spans[wall].append((s, width))
                    xz = centre + s * along  # the box is half sunk into the wall
                    box_local = np.array([[-width / 2, y0, -depth / 2], [width / 2, y0 + tall, depth / 2]])
                    add_object(name, [Part(name, 0, Box((width / 2, tall / 2, depth / 2)), make_pose(None, (0, y0 + tall / 2, 0)))], box_local, yaw, (xz[0], 0.0, xz[1]))
                    reach = 0.9 if name == "door" else depth / 2
                    block = xz + normal * reach / 2
                    placed.add(block, (width / 2, reach / 2), yaw, y0, y0 + tall)
                    break

    names = list(classes)
    weights = np.array([_WEIGHTS[c] for c in names])
    n_target = int(rng.integers(n_objects[0], n_objects[1] + 1))
    placed_count = 0

    def try_place(cls: str, proposal) -> tuple | None:
        shape = make_shape(cls, int(rng.integers(0, 2**62)), normalize=False, segments=segments)
        lo, hi = shape.bounding_box.double().numpy()
        box_local = np.stack([lo, hi])
        half = np.array([(hi[0] - lo[0]) / 2, (hi[2] - lo[2]) / 2])
        hanging = any(p.name == "canopy" for p in shape.parts)
        lift = height - hi[1] - 0.01 if hanging else 0.0
        for _ in range(30):
            xz, yaw = proposal(half)
            rot = rotation_y(yaw)
            centre_xz = xz
            offset = rot @ box_local.mean(0)
            translation = (centre_xz[0] - offset[0], lift, centre_xz[1] - offset[2])
            if _inside(centre_xz, half, yaw, lx, lz) and placed.free(centre_xz, half, yaw, lift, lift + hi[1]):
                placed.add(centre_xz, half, yaw, lift, lift + hi[1])
                add_object(cls, shape.parts, box_local, yaw, translation, shape)
                return centre_xz, half, yaw
        return None

    def free_spot(half):
        x = rng.uniform(-lx / 2 + half.min(), lx / 2 - half.min())
        z = rng.uniform(-lz / 2 + half.min(), lz / 2 - half.min())
        return np.array([x, z]), float(rng.uniform(0, 2 * math.pi))

    def wall_spot(half):
        wall = int(rng.integers(0, 4))
        centre, normal, along, half_len, yaw = _wall_frame(wall, lx, lz)
        s = rng.uniform(-half_len + half[0], half_len - half[0]) if half_len > half[0] else 0.0
        return centre + s * along + normal * (half[1] + rng.uniform(0.02, 0.08)), yaw

    while placed_count < n_target:
        cls = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        if cls == "table":
            spot = try_place(cls, lambda half: (free_spot(half)[0], float(rng.integers(0, 4)) * math.pi / 2 + rng.normal(0, 0.1)))
        elif cls in _AGAINST_WALL:
            spot = try_place(cls, wall_spot)
        else:
            spot = try_place(cls, free_spot)
        placed_count += 1
        if cls == "table" and spot is not None and "chair" in names and rng.random() < 0.7:
            centre, t_half, t_yaw = spot
            axes = _Footprints._axes(t_yaw)
            sides = rng.permutation(4)[: int(rng.integers(1, 5))]
            for side in sides:
                if placed_count >= n_target + 2:
                    break
                local = np.array([(0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0)][side])
                chair_yaw = t_yaw + (math.pi, 0.0, -math.pi / 2, math.pi / 2)[side]
                reach = t_half[1] if local[0] == 0 else t_half[0]

                def beside(half, local=local, chair_yaw=chair_yaw, reach=reach):
                    return centre + (local @ axes) * (reach + half[1] + 0.04 + rng.uniform(0, 0.1)), chair_yaw + rng.normal(0, 0.15)

                try_place("chair", beside)
                placed_count += 1

    vertices, faces, face_parts = assemble(parts)
    return Scene(
        (float(lx), height, float(lz)),
        tuple(parts),
        torch.tensor(semantic, dtype=torch.int64),
        torch.tensor(instance, dtype=torch.int64),
        tuple(objects),
        vertices,
        faces,
        face_parts,
    )
