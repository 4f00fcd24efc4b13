"""Benchmark: the free-generation table of lecture 05 (issue #9) at the active profile, with run times.

Trains 3D-GAN (and its "strong discriminator" ablation: non-saturating or minimax G objective x throttled or
strong D, see ``free_table.ABLATIONS``), r-GAN, l-GAN and the StructureNet VAE on one
class of the procedural world and scores their samples against held-out shapes with MMD / COV / 1-NNA
(Chamfer and exact EMD), JSD and FPD (:mod:`coursekit.models.generation.free_table`). Each model runs
in its own :func:`free_generation_table` call with the same seed and the first call's data: every
model's random stream depends only on the seed and the model's name, so the rows equal those of one
call, and each row is printed when done. The last columns are ratios against the trivial sphere baseline measured
in the same run (MMD-CD and FPD; below 1 beats the sphere).

    COURSEKIT_PROFILE=cpu OMP_NUM_THREADS=2 python benchmarks/free_generation.py [--models NAME ...]
"""

from __future__ import annotations

import argparse
import time

from coursekit import runtime
from coursekit.models.generation.free_table import ABLATIONS, MODELS, SIZES, FreeTable, format_table, free_generation_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", choices=MODELS, help="rows to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = list(args.models or MODELS)
    if "sphere (trivial)" not in models:
        models.insert(0, "sphere (trivial)")
    print(f"{runtime.describe()} | sizes {runtime.pick(SIZES)}", flush=True)
    tic, tic_cpu = time.perf_counter(), time.process_time()
    parts: list[FreeTable] = []
    for name in models:
        t0, c0 = time.perf_counter(), time.process_time()
        part = free_generation_table([name], seed=args.seed, data=parts[0].data if parts else None, progress=False)
        parts.append(part)
        r = part.rows[0]
        if name in ABLATIONS:  # the caveat's evidence: D's accuracy and G's gradient norm, mean per quarter of training
            h = part.histories[name]
            q = max(1, len(h["d_acc"]) // 4)
            for key in ("d_acc", "fake_d", "g_grad_norm"):
                means = [sum(h[key][i:i + q]) / len(h[key][i:i + q]) for i in range(0, len(h[key]), q)]
                print(f"  {key:<12} by quarter: " + "  ".join(f"{m:.3g}" for m in means), flush=True)
        print(f"{name}: MMD-CD {1e3 * r['mmd_cd']:.2f}e-3  COV-CD {100 * r['cov_cd']:.0f}%  1-NNA-CD {100 * r['1nna_cd']:.0f}%  "
              f"MMD-EMD {1e2 * r['mmd_emd']:.2f}e-2  JSD {r['jsd']:.3f}  FPD {r['fpd']:.2f} | train {r['train_seconds']:.0f} s "
              f"| call {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", flush=True)
    table = FreeTable([p.rows[0] for p in parts], data=parts[0].data, sizes=parts[0].sizes)
    print()
    print(format_table(table))
    sphere = next(r for r in table.rows if r["model"] == "sphere (trivial)")
    print(f"\n{'model':<26} {'MMD-CD / sphere':>16} {'FPD / sphere':>13}")
    for r in table.rows:
        print(f"{r['model']:<26} {r['mmd_cd'] / sphere['mmd_cd']:16.2f} {r['fpd'] / sphere['fpd']:13.2f}")
    print(f"\nwhole table: {(time.perf_counter() - tic) / 60:.1f} min wall, {(time.process_time() - tic_cpu) / 60:.1f} min "
          f"process CPU ({runtime.describe()})")


if __name__ == "__main__":
    main()
