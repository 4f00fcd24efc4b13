"""Read and write triangle meshes (OFF, OBJ, PLY, STL) with errors that name the file.

* OFF is parsed here (:func:`read_off`): ModelNet's files need it, because some of
  them put the counts on the header line (``OFF490 518 0``), which other readers
  reject. Polygons with more than three corners are fan-triangulated.
* OBJ, PLY and STL go through ``trimesh`` (``process=False``: vertices are kept as
  stored, not merged or reordered), except that STL, which stores the three
  corners of every triangle separately, has its coincident corners merged so that
  the topology (and :func:`mesh_report`) is meaningful. (A union of separate closed
  parts whose corners coincide, e.g. capsules meeting end to end, then reports
  non-manifold edges there.)

What counts as broken:

=========================================  ==============================================
problem                                    result
=========================================  ==============================================
missing file                               ``FileNotFoundError``
unknown suffix                             ``ValueError``
unparsable / truncated file                ``MeshFormatError`` (a ``ValueError``) naming
                                           the file and what is wrong
no vertices or no faces                    ``MeshFormatError``
face index out of range, NaN/inf vertex    ``MeshFormatError``
non-manifold edges (shared by > 2 faces),  *reported, not rejected*: a ``MeshWarning``
open boundaries                            by default (``on_defect="warn"``), nothing with
                                           ``"ignore"``, ``MeshFormatError`` with ``"raise"``
=========================================  ==============================================

Many real meshes (a third of ModelNet) are not watertight; surface sampling works
on them, SDFs and inside tests do not, hence a report rather than a refusal.
:func:`mesh_report` gives the counts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["MeshFormatError", "MeshWarning", "MeshReport", "load_mesh", "read_off", "save_mesh", "mesh_report"]

SUFFIXES = (".off", ".obj", ".ply", ".stl")


class MeshFormatError(ValueError):
    """A mesh file is unreadable, empty or inconsistent; the message names the file."""


class MeshWarning(UserWarning):
    """A mesh was read but has defects (non-manifold or boundary edges, degenerate faces)."""


@dataclass(frozen=True)
class MeshReport:
    """Counts of what may be wrong with a triangle mesh.

    Attributes:
        n_vertices, n_faces: sizes.
        boundary_edges: edges used by one face (holes).
        non_manifold_edges: edges used by more than two faces.
        inconsistent_edges: edges used twice in the *same* direction (neighbouring
            faces wound oppositely; normals then flip across the edge).
        degenerate_faces: faces with a repeated vertex index.
    """

    n_vertices: int
    n_faces: int
    boundary_edges: int
    non_manifold_edges: int
    inconsistent_edges: int
    degenerate_faces: int

    @property
    def watertight(self) -> bool:
        """Closed and consistently oriented: every edge shared by exactly two faces in opposite directions."""
        return self.boundary_edges == 0 and self.non_manifold_edges == 0 and self.inconsistent_edges == 0

    def problems(self) -> list[str]:
        """Human-readable list of the defects (empty when none)."""
        names = {
            "boundary_edges": "boundary edges (holes)",
            "non_manifold_edges": "non-manifold edges (shared by > 2 faces)",
            "inconsistent_edges": "edges between oppositely wound faces",
            "degenerate_faces": "degenerate faces",
        }
        return [f"{getattr(self, k)} {v}" for k, v in names.items() if getattr(self, k)]


def mesh_report(vertices: torch.Tensor, faces: torch.Tensor) -> MeshReport:
    """Edge-use statistics of a triangle mesh ``vertices (V, 3)``, ``faces (F, 3)`` int64."""
    f = faces.cpu().numpy().astype(np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    directed = directed[directed[:, 0] != directed[:, 1]]
    undirected = np.sort(directed, axis=1)
    _, uses = np.unique(undirected, axis=0, return_counts=True)
    _, same_direction = np.unique(directed, axis=0, return_counts=True)
    degenerate = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    return MeshReport(
        n_vertices=int(vertices.shape[0]),
        n_faces=int(f.shape[0]),
        boundary_edges=int((uses == 1).sum()),
        non_manifold_edges=int((uses > 2).sum()),
        inconsistent_edges=int((same_direction > 1).sum()),
        degenerate_faces=int(degenerate.sum()),
    )


def _fan(polygons: list[list[int]]) -> np.ndarray:
    """Triangles ``(0, i, i+1)`` of each polygon."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def read_off(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an OFF file, including ModelNet's ``OFF<nv> <nf> <ne>`` header quirk.

    Layout: a header ``OFF``; the counts ``n_vertices n_faces n_edges`` (on the
    header line or the next); ``n_vertices`` lines ``x y z`` (extra columns such as
    colours ignored); ``n_faces`` lines ``k i_1 ... i_k`` (0-based; extra columns
    ignored). ``#`` starts a comment.

    Returns:
        ``vertices (V, 3)`` float32 and ``faces (F, 3)`` int64 (polygons fan-triangulated).

    Raises:
        MeshFormatError: naming the file and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].upper().startswith("OFF"):
        first = lines[0][:40] if lines else ""
        raise MeshFormatError(f"{path}: not an OFF file (first line {first!r}, expected it to start with 'OFF')")
    rest = lines[0][3:].split()
    body = lines[1:]
    if not rest:
        if not body:
            raise MeshFormatError(f"{path}: truncated after the OFF header (no vertex/face counts)")
        rest, body = body[0].split(), body[1:]
    try:
        n_vertices, n_faces = int(rest[0]), int(rest[1])
    except (ValueError, IndexError):
        raise MeshFormatError(f"{path}: cannot read the counts 'n_vertices n_faces n_edges' from {' '.join(rest)!r}") from None
    if n_vertices < 0 or n_faces < 0:
        raise MeshFormatError(f"{path}: negative counts {n_vertices}, {n_faces}")
    if len(body) < n_vertices + n_faces:
        raise MeshFormatError(
            f"{path}: truncated: the header promises {n_vertices} vertices and {n_faces} faces, "
            f"but only {len(body)} data lines follow"
        )
    try:
        vertices = np.array([ln.split()[:3] for ln in body[:n_vertices]], dtype=np.float64).reshape(n_vertices, 3)
    except ValueError:
        raise MeshFormatError(f"{path}: a vertex line is not three numbers") from None
    try:
        rows = [ln.split() for ln in body[n_vertices : n_vertices + n_faces]]
        polygons = [[int(v) for v in r[1 : 1 + int(r[0])]] for r in rows]
    except (ValueError, IndexError):
        raise MeshFormatError(f"{path}: a face line is not 'k i_1 ... i_k' with integer indices") from None
    if any(len(p) < 3 for p in polygons) or any(len(p) != int(r[0]) for p, r in zip(polygons, rows)):
        raise MeshFormatError(f"{path}: a face has fewer than 3 corners or fewer indices than its count says")
    faces = _fan(polygons)
    return _checked(path, torch.from_numpy(vertices).float(), torch.from_numpy(faces))


def _checked(path: Path, vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if vertices.shape[0] == 0 or faces.shape[0] == 0:
        raise MeshFormatError(f"{path}: empty mesh ({vertices.shape[0]} vertices, {faces.shape[0]} faces)")
    if not torch.isfinite(vertices).all():
        raise MeshFormatError(f"{path}: vertices contain NaN or infinite coordinates")
    if faces.min() < 0 or faces.max() >= vertices.shape[0]:
        raise MeshFormatError(f"{path}: face indices reach {int(faces.min())}..{int(faces.max())} but there are {vertices.shape[0]} vertices")
    return vertices, faces


def load_mesh(path, on_defect: str = "warn") -> tuple[torch.Tensor, torch.Tensor]:
    """Load a triangle mesh from an OFF, OBJ, PLY or STL file.

    Args:
        path: the file; the format comes from its suffix.
        on_defect: what to do with a readable mesh that has boundary, non-manifold or
            inconsistently wound edges or degenerate faces: ``"warn"`` (a
            :class:`MeshWarning` naming the file), ``"ignore"`` or ``"raise"``.

    Returns:
        ``vertices (V, 3)`` float32 and ``faces (F, 3)`` int64.

    Raises:
        FileNotFoundError, MeshFormatError (unreadable, empty, indices out of range;
        always names the file), ValueError for an unknown suffix or ``on_defect``.
    """
    if on_defect not in ("warn", "ignore", "raise"):
        raise ValueError(f"on_defect must be 'warn', 'ignore' or 'raise', got {on_defect!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh format {suffix!r}; supported: {SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".off":
        vertices, faces = read_off(path)
    else:
        import trimesh

        try:
            mesh = trimesh.load(path, force="mesh", process=False)
        except Exception as exc:  # trimesh raises many kinds of errors on corrupt input
            raise MeshFormatError(f"{path}: cannot be read as {suffix[1:].upper()} ({type(exc).__name__}: {exc})") from None
        vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float32).reshape(-1, 3)
        faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
        if suffix == ".stl" and len(vertices):  # STL stores every triangle's corners: merge equal ones
            vertices, inverse = np.unique(vertices, axis=0, return_inverse=True)
            faces = inverse.reshape(-1)[faces]
        vertices, faces = _checked(path, torch.from_numpy(vertices), torch.from_numpy(faces))
    if on_defect != "ignore":
        problems = mesh_report(vertices, faces).problems()
        if problems:
            message = f"{path}: " + ", ".join(problems)
            if on_defect == "raise":
                raise MeshFormatError(message)
            warnings.warn(message, MeshWarning, stacklevel=2)
    return vertices, faces


def save_mesh(path, vertices: torch.Tensor, faces: torch.Tensor) -> None:
    """Write a triangle mesh; the format (OFF, OBJ, PLY, STL) comes from the suffix.

    Args:
        path: destination file.
        vertices: ``(V, 3)`` float.
        faces: ``(F, 3)`` int64.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh format {path.suffix!r}; supported: {SUFFIXES}")
    if vertices.dim() != 2 or vertices.shape[-1] != 3 or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"need vertices (V, 3) and faces (F, 3), got {tuple(vertices.shape)} and {tuple(faces.shape)}")
    import trimesh

    mesh = trimesh.Trimesh(vertices.detach().cpu().double().numpy(), faces.detach().cpu().numpy(), process=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
