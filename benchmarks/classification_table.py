"""Benchmark: the live classification table of lecture 03 (issue #7) at the ``cpu`` profile, with its run time.

Trains and tests every classifier of :mod:`coursekit.models.classification_table` on the procedural
world and prints the table beside the published ModelNet40 numbers. Each model runs in its own
:func:`classification_table` call with the same seed: the split, every model's initialisation, the
batch order and the test perturbations depend only on the seed, so the rows are exactly those of
one call over all models, and each row is printed as soon as it is done (with the wall and process
CPU time of its training; on a machine shared with other jobs the CPU time is the better measure).

    COURSEKIT_PROFILE=cpu OMP_NUM_THREADS=2 python benchmarks/classification_table.py [--models NAME ...]
"""

from __future__ import annotations

import argparse
import time

from coursekit import runtime
from coursekit.models.classification_table import ENTRIES, SIZES, Table, classification_table, format_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="rows to run (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = runtime.pick(SIZES)
    models = args.models or list(sizes["models"] or ENTRIES)
    print(f"{runtime.describe()} | {len(models)} models | sizes {sizes}", flush=True)
    tic, tic_cpu = time.perf_counter(), time.process_time()
    parts = []
    for name in models:
        part = classification_table([name], seed=args.seed, progress=False)
        parts.append(part)
        r = part.rows[0]
        print(f"{name}: OA {100 * r['accuracy']:.1f}  mAcc {100 * r['mean_class_accuracy']:.1f}  "
              f"drop {100 * r['drop']:.1f}  noise {100 * r['noise']:.1f}  rotation {100 * r['rotation']:.1f}  "
              f"| train {r['train_seconds']:.0f} s wall, {r['train_cpu_seconds']:.0f} s CPU | call {part.seconds:.0f} s "
              f"| elapsed {time.perf_counter() - tic:.0f} s", flush=True)
    first = parts[0]
    table = Table([p.rows[0] for p in parts], first.class_names, first.labels,
                  {k: v for p in parts for k, v in p.predictions.items()}, {k: v for p in parts for k, v in p.models.items()},
                  first.dataset, first.sizes, time.perf_counter() - tic)
    print()
    print(format_table(table))
    wall, cpu = time.perf_counter() - tic, time.process_time() - tic_cpu
    train_wall = sum(r["train_seconds"] for r in table.rows)
    train_cpu = sum(r["train_cpu_seconds"] for r in table.rows)
    print(f"\nwhole table: {wall / 60:.1f} min wall, {cpu / 60:.1f} min process CPU "
          f"(training: {train_wall / 60:.1f} min wall, {train_cpu / 60:.1f} min CPU; "
          f"the rest is data generation, representations and testing, once per model here)")


if __name__ == "__main__":
    main()
