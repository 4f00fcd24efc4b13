r"""A ScanNet / S3DIS-style folder of scenes: points, per-point labels and boxes, read from files you already have.

Two layouts are read (one scene each; both may be mixed in one folder):

* **a directory per scene** (the layout of Pointcept's preprocessed ScanNet / S3DIS):
  ``<root>/<scene>/coord.npy`` ``(N, 3)`` float, ``segment.npy`` ``(N,)`` int semantic labels,
  optional ``instance.npy`` ``(N,)``, ``color.npy`` ``(N, 3)`` (0-255 or 0-1), ``normal.npy``
  ``(N, 3)``, and boxes ``bbox.npy`` ``(K, 7)`` ``(cx, cy, cz, sx, sy, sz, yaw)`` or ``(K, 8)`` with the
  semantic label last (VoteNet's ``*_bbox.npy`` axis-aligned ``(cx, cy, cz, dx, dy, dz, label)``
  is the ``(K, 7)`` form read as having no yaw: pass ``box_format="aabb"``);
* **a text file per scene** (S3DIS's ``Area_x/room/room.txt`` style): ``<root>/<scene>.txt``, one
  point per line ``x y z r g b label`` (or ``x y z label``).

Labels equal to ``ignore_label`` (default ``-1``; ScanNet tools use ``-100`` or ``0`` for
"unannotated", say which) become ``-1``, the library's ignore index. ``up="z"`` (ScanNet and
S3DIS are z-up) rotates points and boxes into the library's ``+y``-up frame:
:math:`(x, y, z) \mapsto (x, z, -y)`, boxes' sizes ``(sx, sy, sz) -> (sx, sz, sy)``.

A bad scene (missing file, wrong shape, lengths that do not match, NaN, unreadable) is
**reported** — in :attr:`SceneFolder.problems` and as a ``UserWarning`` — and skipped; the loader
goes on with the others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["FolderScene", "SceneFolder", "load_scene_folder", "load_scene"]


@dataclass(eq=False)
class FolderScene:
    """One scene read from disk (library frame, ``+y`` up when converted).

    Attributes:
        name: the scene's directory or file stem.
        points: ``(N, 3)`` float32.
        semantic: ``(N,)`` int64, ``-1`` = ignore.
        instance: ``(N,)`` int64 or ``None``.
        colors: ``(N, 3)`` float32 in ``[0, 1]`` or ``None``.
        normals: ``(N, 3)`` float32 or ``None``.
        boxes: ``(K, 7)`` float32 ``(cx, cy, cz, sx, sy, sz, yaw)`` (``(0, 7)`` when none).
        box_labels: ``(K,)`` int64 (``-1`` when the file gives none).
    """

    name: str
    points: torch.Tensor
    semantic: torch.Tensor
    instance: torch.Tensor | None = None
    colors: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 7))
    box_labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))


@dataclass(eq=False)
class SceneFolder:
    """The readable scenes of a folder and what went wrong with the others.

    Attributes:
        scenes: :class:`FolderScene` in sorted name order.
        problems: ``(path, reason)`` for every skipped scene.
    """

    scenes: list[FolderScene]
    problems: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> FolderScene:
        return self.scenes[i]


def _array(path: Path, ndim: int, width: int | None = None) -> np.ndarray:
    a = np.load(path, allow_pickle=False)
    if a.ndim != ndim or (width is not None and a.shape[1] != width):
        want = "(N,)" if ndim == 1 else f"(N, {width})"
        raise ValueError(f"{path.name} has shape {a.shape}, expected {want}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{path.name} contains NaN or infinite values")
    return a


def _boxes(path: Path, box_format: str) -> tuple[np.ndarray, np.ndarray]:
    b = np.load(path, allow_pickle=False)
    if b.ndim != 2 or b.shape[1] not in (7, 8) or not np.isfinite(b).all():
        raise ValueError(f"{path.name} must be a finite (K, 7) or (K, 8) array, got shape {b.shape}")
    if box_format == "aabb":
        if b.shape[1] != 7:
            raise ValueError(f"{path.name}: box_format='aabb' expects (K, 7) (cx, cy, cz, dx, dy, dz, label), got {b.shape}")
        return np.concatenate([b[:, :6], np.zeros((len(b), 1))], 1), b[:, 6].astype(np.int64)
    labels = b[:, 7].astype(np.int64) if b.shape[1] == 8 else np.full(len(b), -1, dtype=np.int64)
    return b[:, :7], labels


def _read_dir(path: Path, box_format: str) -> dict:
    for required in ("coord.npy", "segment.npy"):
        if not (path / required).exists():
            raise FileNotFoundError(f"missing {required}")
    out = {"points": _array(path / "coord.npy", 2, 3), "semantic": _array(path / "segment.npy", 1)}
    for key, name, ndim, width in (("instance", "instance.npy", 1, None), ("colors", "color.npy", 2, 3),
                                   ("normals", "normal.npy", 2, 3)):
        if (path / name).exists():
            out[key] = _array(path / name, ndim, width)
    if (path / "bbox.npy").exists():
        out["boxes"], out["box_labels"] = _boxes(path / "bbox.npy", box_format)
    return out


def _read_txt(path: Path) -> dict:
    a = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if a.shape[1] not in (4, 7):
        raise ValueError(f"expected 4 (x y z label) or 7 (x y z r g b label) columns, got {a.shape[1]}")
    if not np.isfinite(a).all():
        raise ValueError("contains NaN or infinite values")
    out = {"points": a[:, :3], "semantic": a[:, -1]}
    if a.shape[1] == 7:
        out["colors"] = a[:, 3:6]
    return out


def _to_scene(name: str, raw: dict, ignore_label: int, up: str) -> FolderScene:
    n = len(raw["points"])
    if n == 0:
        raise ValueError("the scene has no points")
    for key in ("semantic", "instance", "colors", "normals"):
        if key in raw and len(raw[key]) != n:
            raise ValueError(f"{key} has {len(raw[key])} rows but there are {n} points")
    semantic = torch.as_tensor(raw["semantic"]).round().long()
    semantic[semantic == ignore_label] = -1
    points = torch.as_tensor(raw["points"], dtype=torch.float32)
    normals = torch.as_tensor(raw["normals"], dtype=torch.float32) if "normals" in raw else None
    boxes = torch.as_tensor(raw.get("boxes", np.zeros((0, 7))), dtype=torch.float32)
    if up == "z":
        swap = lambda v: torch.stack([v[:, 0], v[:, 2], -v[:, 1]], 1)  # noqa: E731  (x, y, z) -> (x, z, -y)
        points = swap(points)
        normals = swap(normals) if normals is not None else None
        if len(boxes):  # yaw about +z becomes yaw about +y; sizes (sx, sy, sz) -> (sx, sz, sy)
            boxes = torch.cat([swap(boxes[:, :3]), boxes[:, [3, 5, 4]], boxes[:, 6:]], 1)
    colors = None
    if "colors" in raw:
        colors = torch.as_tensor(raw["colors"], dtype=torch.float32)
        colors = colors / 255.0 if colors.max() > 1 else colors
    return FolderScene(name, points, semantic,
                       torch.as_tensor(raw["instance"]).long() if "instance" in raw else None, colors, normals, boxes,
                       torch.as_tensor(raw.get("box_labels", np.zeros(0, dtype=np.int64))).long())


def load_scene(path: str | Path, *, ignore_label: int = -1, up: str = "y", box_format: str = "oriented") -> FolderScene:
    """Read one scene (a directory or a ``.txt`` file); raises ``ValueError``/``OSError`` on a bad one.

    Args:
        path: the scene's directory or text file.
        ignore_label: the file's label for "unannotated" (becomes ``-1``).
        up: ``"y"`` (as stored) or ``"z"`` (convert a z-up scan to ``+y`` up).
        box_format: ``"oriented"`` (``(K, 7)`` / ``(K, 8)``) or ``"aabb"`` (VoteNet ``(K, 7)`` with the label last).
    """
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    if box_format not in ("oriented", "aabb"):
        raise ValueError(f"box_format must be 'oriented' or 'aabb', got {box_format!r}")
    path = Path(path)
    raw = _read_dir(path, box_format) if path.is_dir() else _read_txt(path)
    return _to_scene(path.stem if path.is_file() else path.name, raw, ignore_label, up)


def load_scene_folder(root: str | Path, *, ignore_label: int = -1, up: str = "y", box_format: str = "oriented",
                      warn: bool = True) -> SceneFolder:
    """Every scene under ``root`` (sub-directories and ``*.txt`` files), bad ones reported and skipped.

    Args:
        root: the folder.
        ignore_label, up, box_format: as :func:`load_scene`.
        warn: also emit a ``UserWarning`` per skipped scene.

    Returns:
        :class:`SceneFolder` with the scenes and the ``(path, reason)`` problems.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder {root} does not exist")
    scenes, problems = [], []
    for path in sorted(p for p in root.iterdir() if p.is_dir() or p.suffix == ".txt"):
        try:
            scenes.append(load_scene(path, ignore_label=ignore_label, up=up, box_format=box_format))
        except (OSError, ValueError, EOFError) as exc:  # unreadable, truncated or malformed
            problems.append((str(path), str(exc)))
            if warn:
                warnings.warn(f"skipped scene {path}: {exc}", UserWarning, stacklevel=2)
    return SceneFolder(scenes, problems)
