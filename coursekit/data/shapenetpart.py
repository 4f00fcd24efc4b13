"""Load ShapeNetPart-style point clouds with per-point part labels.

Layout (the benchmark of Yi et al. 2016, ``shapenetcore_partanno_segmentation_benchmark_v0``)::

    <root>/synsetoffset2category.txt              one line per category: "Airplane	02691156"
    <root>/<synset>/points/<id>.pts               one point per line: "x y z"  (or <id>.txt)
    <root>/<synset>/points_label/<id>.seg         one label per line, 1-based within the category
    <root>/train_test_split/shuffled_<split>_file_list.json
                                                  ["shape_data/<synset>/<id>", ...] for
                                                  split in train / val / test

Labels: a category's local part ``k`` (``k = seg - 1``) becomes the global label
``offset(category) + k``, numbering the chosen categories' parts one after another
in the order of ``classes`` (all categories, sorted by name, give the usual 50
labels: Airplane 0-3, Bag 4-5, ..., Table 47-49). Part counts come from
:data:`SHAPENETPART_PARTS` for the 16 standard categories and from the largest
label seen otherwise.

Each cloud is resampled to ``n_points`` (a random subset; a smaller cloud keeps
every point and repeats random ones) from its own seed, and by default centred and scaled into the
unit ball. Unreadable or inconsistent shapes (labels and points of different
lengths, a label < 1 or above the category's count) are skipped and reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from coursekit.geometry.normalize import normalize_unit_sphere

from .modelnet import report_skipped
from .world.datasets import PointCloudSet, sample_seed

__all__ = ["SHAPENETPART_PARTS", "load_shapenetpart"]

SHAPENETPART_PARTS: dict[str, int] = {
    "Airplane": 4, "Bag": 2, "Cap": 2, "Car": 4, "Chair": 4, "Earphone": 3, "Guitar": 3, "Knife": 2,
    "Lamp": 4, "Laptop": 2, "Motorbike": 6, "Mug": 2, "Pistol": 3, "Rocket": 3, "Skateboard": 3, "Table": 3,
}  # fmt: skip
"""Number of parts of each standard ShapeNetPart category (50 in all)."""

SPLITS = ("train", "val", "test", "trainval", "all")


def _categories(root: Path) -> dict[str, str]:
    path = root / "synsetoffset2category.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (it maps category names to synset folders)")
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'Category<tab>synset', got {line!r}")
        out[fields[0]] = fields[1]
    return out


def _split_ids(root: Path, split: str) -> set[tuple[str, str]] | None:
    """``(synset, id)`` pairs of a split from the json lists; ``None`` for ``"all"``."""
    if split == "all":
        return None
    names = ("train", "val") if split == "trainval" else (split,)
    ids = set()
    for name in names:
        path = root / "train_test_split" / f"shuffled_{name}_file_list.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; use split='all' for a folder without split lists")
        for entry in json.loads(path.read_text()):
            synset, shape_id = entry.split("/")[-2:]
            ids.add((synset, shape_id))
    return ids


def _read_columns(path: Path, columns: int, dtype) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not rows or any(len(r) < columns for r in rows):
        raise ValueError(f"expected {columns} number(s) on every line" if rows else "empty file")
    return np.array([r[:columns] for r in rows], dtype=dtype)


def load_shapenetpart(
    root,
    split: str = "train",
    n_points: int = 2048,
    classes=None,
    seed: int = 0,
    normalize: bool = True,
    progress: bool = True,
) -> PointCloudSet:
    """Point clouds with global per-point part labels from a ShapeNetPart folder.

    Args:
        root: the dataset folder (module docstring).
        split: ``"train"``, ``"val"``, ``"test"``, ``"trainval"`` or ``"all"`` (every
            shape found; needs no split lists).
        n_points: points per cloud after resampling.
        classes: optional subset of category names (default all, sorted).
        seed: resampling seed.
        normalize: centre each cloud and scale it into the unit ball.
        progress: show a progress bar.

    Returns:
        :class:`~coursekit.data.world.datasets.PointCloudSet` with ``points (N, P, 3)``,
        ``labels (N,)``, ``part_labels (N, P)`` (global), ``part_names``, ``class_parts``,
        ``sources`` and ``skipped``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_points <= 0:
        raise ValueError(f"n_points must be positive, got {n_points}")
    root = Path(root)
    categories = _categories(root)
    classes = tuple(sorted(categories)) if classes is None else tuple(classes)
    unknown = [c for c in classes if c not in categories]
    if unknown or not classes:
        raise ValueError(f"{root}: categories {unknown or '(none)'} not in synsetoffset2category.txt: {sorted(categories)}")
    wanted = _split_ids(root, split)
    jobs = []
    for name in classes:
        folder = root / categories[name] / "points"
        for points_file in sorted(folder.glob("*.pts")) + sorted(folder.glob("*.txt")):
            if wanted is None or (categories[name], points_file.stem) in wanted:
                jobs.append((name, points_file, root / categories[name] / "points_label" / f"{points_file.stem}.seg"))
    clouds, skipped = [], []
    for name, points_file, label_file in tqdm(jobs, desc=f"ShapeNetPart {split}", disable=not progress, leave=False):
        try:
            xyz = _read_columns(points_file, 3, np.float32)
            seg = _read_columns(label_file, 1, np.int64)[:, 0]
            if len(seg) != len(xyz):
                raise ValueError(f"{len(xyz)} points but {len(seg)} labels in {label_file.name}")
            if seg.min() < 1 or seg.max() > SHAPENETPART_PARTS.get(name, np.iinfo(np.int64).max):
                raise ValueError(f"part labels {seg.min()}..{seg.max()} outside 1..{SHAPENETPART_PARTS.get(name)} for {name}")
            if not np.isfinite(xyz).all():
                raise ValueError("non-finite coordinates")
        except (ValueError, OSError) as exc:
            skipped.append((str(points_file), str(exc)))
            continue
        clouds.append((name, points_file, xyz, seg - 1))
    counts = {c: SHAPENETPART_PARTS.get(c, max([int(s.max()) + 1 for n, _, _, s in clouds if n == c], default=1)) for c in classes}
    offsets = dict(zip(classes, np.cumsum([0] + [counts[c] for c in classes])[:-1].tolist()))
    points, parts, labels, sources = [], [], [], []
    for name, points_file, xyz, seg in clouds:
        g = torch.Generator().manual_seed(sample_seed(seed, points_file.relative_to(root).as_posix()))
        n = len(xyz)
        pick = torch.randperm(n, generator=g)[:n_points]
        if n < n_points:  # every point once, then random repeats
            extra = torch.randint(0, n, (n_points - n,), generator=g)
            pick = torch.cat([pick, extra])[torch.randperm(n_points, generator=g)]
        points.append(torch.from_numpy(xyz)[pick])
        parts.append(torch.from_numpy(seg)[pick] + offsets[name])
        labels.append(classes.index(name))
        sources.append(points_file.relative_to(root).as_posix())
    cloud = torch.stack(points) if points else torch.zeros(0, n_points, 3)
    if normalize and len(cloud):
        cloud = normalize_unit_sphere(cloud)
    report_skipped(f"ShapeNetPart {split}", skipped)
    part_names = tuple(f"{c}/{k}" for c in classes for k in range(counts[c]))
    class_parts = tuple(tuple(range(offsets[c], offsets[c] + counts[c])) for c in classes)
    return PointCloudSet(
        cloud,
        torch.tensor(labels, dtype=torch.int64),
        classes,
        part_labels=torch.stack(parts) if parts else torch.zeros(0, n_points, dtype=torch.int64),
        part_names=part_names,
        class_parts=class_parts,
        sources=tuple(sources),
        skipped=tuple(skipped),
    )
