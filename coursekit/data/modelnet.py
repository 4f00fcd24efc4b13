"""Load a ModelNet-style folder of meshes as labelled point clouds.

Layout (ModelNet10 / ModelNet40 as distributed by Princeton)::

    <root>/<class>/<split>/<anything>.off      e.g. ModelNet40/chair/train/chair_0001.off

Class names are the sub-folders of ``root`` (sorted, so labels match the usual
ModelNet order); ``split`` is ``"train"`` or ``"test"``. Each mesh is sampled with
``n_points`` area-weighted surface points
(:func:`coursekit.geometry.sampling.sample_mesh_surface`) from its own seed, derived
from the dataset seed and the file's relative path, and (by default) centred and
scaled into the unit ball. Files that cannot be read (corrupt, truncated, empty,
zero area) are skipped, listed in the result's ``skipped`` and printed; loading
goes on. Meshes that are merely not watertight are used as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from coursekit.geometry.normalize import normalize_unit_sphere
from coursekit.geometry.sampling import sample_mesh_surface

from .mesh_io import load_mesh
from .world.datasets import PointCloudSet, cached_arrays, sample_seed

__all__ = ["load_modelnet", "report_skipped"]


def report_skipped(what: str, skipped) -> None:
    """Print the files a loader skipped and why (at most 10 lines)."""
    if not skipped:
        return
    print(f"{what}: skipped {len(skipped)} unreadable file(s):")
    for path, reason in skipped[:10]:
        print(f"  {path}: {reason}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more (see .skipped)")


def load_modelnet(
    root,
    split: str = "train",
    n_points: int = 1024,
    classes=None,
    seed: int = 0,
    normalize: bool = True,
    cache_dir=None,
    progress: bool = True,
) -> PointCloudSet:
    """Point clouds and labels from ``<root>/<class>/<split>/*.off``.

    Args:
        root: the dataset folder (e.g. ``.../ModelNet40``).
        split: ``"train"`` or ``"test"`` (any sub-folder name works).
        n_points: points sampled per mesh.
        classes: optional subset of class folder names; labels index this tuple
            (default: every sub-folder of ``root``, sorted).
        seed: sampling seed.
        normalize: centre each cloud and scale it into the unit ball.
        cache_dir: optional folder to keep the sampled clouds (``.npz``) for the next call.
        progress: show a progress bar.

    Returns:
        :class:`~coursekit.data.world.datasets.PointCloudSet` with ``points (N, P, 3)``,
        ``labels (N,)``, ``normals``, ``sources`` (file of each sample) and
        ``skipped`` (``(path, reason)`` of unreadable files).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = tuple(found) if classes is None else tuple(classes)
    missing = [c for c in classes if c not in found]
    if missing or not classes:
        raise ValueError(f"{root}: class folders {missing or '(none)'} not found; present: {found}")
    if n_points <= 0:
        raise ValueError(f"n_points must be positive, got {n_points}")

    def build() -> dict[str, np.ndarray]:
        files = [(c, f) for c in classes for f in sorted((root / c / split).glob("*.off"))]
        points, normals, labels, sources, skipped = [], [], [], [], []
        for name, path in tqdm(files, desc=f"ModelNet {split}", disable=not progress, leave=False):
            relative = path.relative_to(root).as_posix()
            try:
                vertices, faces = load_mesh(path, on_defect="ignore")
                g = torch.Generator().manual_seed(sample_seed(seed, relative))
                sample = sample_mesh_surface(vertices, faces, n_points, g)
            except (ValueError, OSError) as exc:
                skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                continue
            points.append(sample.points)
            normals.append(sample.normals)
            labels.append(classes.index(name))
            sources.append(relative)
        cloud = torch.stack(points) if points else torch.zeros(0, n_points, 3)
        if normalize and len(cloud):
            cloud = normalize_unit_sphere(cloud)
        return {
            "points": cloud.numpy(),
            "normals": (torch.stack(normals) if normals else torch.zeros(0, n_points, 3)).numpy(),
            "labels": np.array(labels, dtype=np.int64),
            "sources": np.array(sources, dtype=str),
            "skipped": np.array(skipped, dtype=str).reshape(-1, 2),
        }

    params = dict(root=str(root.resolve()), split=split, n_points=n_points, classes=classes, seed=seed, normalize=normalize)
    data = cached_arrays(cache_dir, "modelnet", params, build)
    skipped = tuple((str(p), str(r)) for p, r in data["skipped"])
    report_skipped(f"ModelNet {split}", skipped)
    return PointCloudSet(
        torch.from_numpy(data["points"]),
        torch.from_numpy(data["labels"]),
        classes,
        normals=torch.from_numpy(data["normals"]),
        sources=tuple(str(s) for s in data["sources"]),
        skipped=skipped,
    )
