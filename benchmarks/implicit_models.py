"""Implicit-surface and voxel reconstruction on the procedural world: the lecture-05 model table.

Run:  COURSEKIT_PROFILE=cpu python benchmarks/implicit_models.py [--models DeepSDF OccNet 'image->voxels' ...] [--no-unseen]
(quote ``'image->voxels'``: unquoted, the shell reads ``>`` as a redirection)

Trains DeepSDF, an Occupancy Network, IM-Net, MarrNet and the direct image -> voxel network on
the same world shapes (sizes: ``coursekit.models.generation.implicit_table.SIZES`` of the active
profile), meshes every prediction with marching cubes and prints the mean scores of the test
meshes next to the trivial baselines (class mean shape, sphere); then MarrNet's "unseen
classes" table (train on ``seen`` classes, test on seen and held-out classes). ``train_s`` is
wall-clock training time (on a shared machine it includes waiting for a core).
"""

from __future__ import annotations

import argparse
import time

from coursekit import runtime
from coursekit.models.generation.implicit_table import LEVELS, SIZES, format_table, implicit_table, unseen_classes_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["DeepSDF", "OccNet", "IM-Net", "MarrNet", "image->voxels"])
    parser.add_argument("--no-unseen", action="store_true", help="skip the unseen-classes table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = runtime.pick(SIZES)
    print(runtime.describe())
    print(f"classes {sizes['classes']}, {sizes['n_train']} train / {sizes['n_test']} test shapes per class, "
          f"{sizes['epochs']} epochs (fields {sizes['field_epochs']}, DeepSDF {sizes['sdf_epochs']}), voxels "
          f"{sizes['resolution']}^3, marching {sizes['march_resolution']}^3, implicit targets dilated by "
          f"{sizes['thickness']}, levels {({k: round(v, 3) for k, v in LEVELS.items()})}\n")
    tic = time.perf_counter()
    def show(row: dict) -> None:  # each row as soon as it is scored (the full table follows at the end)
        print(f"[{time.perf_counter() - tic:.0f} s] " + format_table([row]).splitlines()[-1], flush=True)

    rows = implicit_table(sizes, args.seed, args.models, progress=False, on_row=show)
    print()
    print(format_table(rows), flush=True)
    if not args.no_unseen:
        print(f"\nunseen classes: train on {sizes['seen']}, held out {sizes['unseen']}")
        rows = unseen_classes_table(sizes, args.seed, progress=False)
        print(format_table(rows, ("model", "classes", "train_s", "train_cpu_s", "chamfer_mean", "chamfer_l1", "fscore",
                                  "iou", "empty")))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
