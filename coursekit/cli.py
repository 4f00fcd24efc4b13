"""The ``coursekit`` command line (also ``python -m coursekit``).

    coursekit release SOLUTIONS_DIR NOTEBOOKS_DIR [--check]
    coursekit execute NOTEBOOK... [--profile fast] [--inplace | --out DIR]
    coursekit tour SOLUTIONS_DIR [--out build/tour] [--profile fast]
    coursekit grade PATH --assignment NAME [--out DIR] [--workers N] [--timeout S] [--regrade]
    coursekit fpd-weights [--out PATH]

Heavy modules are imported inside each command, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

PROFILES = ("fast", "cpu", "gpu")  # runtime.PROFILES, repeated to keep --help free of torch


def _release(args: argparse.Namespace) -> int:
    from .grading.release import ReleaseError, differences, release

    try:
        if args.check:
            problems = differences(args.solutions, args.notebooks)
            for problem in problems:
                print(problem)
            if problems:
                print(f"run `coursekit release {args.solutions} {args.notebooks}` to regenerate the student notebooks")
            return 1 if problems else 0
        for path in release(args.solutions, args.notebooks):
            print(f"wrote {path}")
    except ReleaseError as exc:
        print(f"release failed: {exc}", file=sys.stderr)
        return 2
    return 0


def _execute(args: argparse.Namespace) -> int:
    from .notebook_run import execute_files

    return execute_files(args.notebooks, profile=args.profile, inplace=args.inplace, out_dir=args.out,
                         timeout=args.timeout)


def _tour(args: argparse.Namespace) -> int:
    from nbclient.exceptions import CellExecutionError

    from .tour import build_tour

    try:
        pages = build_tour(args.solutions, args.out, profile=args.profile, timeout=args.timeout)
    except (CellExecutionError, FileNotFoundError) as exc:
        print(f"tour failed: {exc}", file=sys.stderr)
        return 1
    print(f"open {pages[-1]}")
    return 0


GRADE_OPTIONS = ("assignment", "out", "workers", "timeout", "regrade")


def _grade(args: argparse.Namespace) -> int:
    from .grading.autograde import grade_command

    # Options left out on the command line are not passed: grade_command owns the defaults.
    options = {name: getattr(args, name) for name in GRADE_OPTIONS if hasattr(args, name)}
    return int(grade_command(args.path, **options) or 0)


def _fpd_weights(args: argparse.Namespace) -> int:
    from .metrics.fpd_features import WEIGHTS_FILE, build_weights

    report = build_weights(args.out or WEIGHTS_FILE, progress=True)
    print(f"wrote {report['path']} ({report['parameters']} parameters, train accuracy {report['train_accuracy']:.3f})")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    top = argparse.ArgumentParser(prog="coursekit", description="Course notebooks for STNs and 3D deep learning.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("release", help="generate student notebooks from solution notebooks")
    p.add_argument("solutions", metavar="SOLUTIONS_DIR")
    p.add_argument("notebooks", metavar="NOTEBOOKS_DIR")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if NOTEBOOKS_DIR differs from the release")
    p.set_defaults(run=_release)

    p = sub.add_parser("execute", help="run notebooks headless (outputs stored without widget state)")
    p.add_argument("notebooks", metavar="NOTEBOOK", nargs="+")
    p.add_argument("--profile", choices=PROFILES, default="fast", help="runtime profile (default: fast)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="write the outputs back into each notebook")
    where.add_argument("--out", metavar="DIR", help="write executed copies into DIR")
    p.add_argument("--timeout", type=int, default=1800, metavar="S", help="seconds allowed per cell")
    p.set_defaults(run=_execute)

    p = sub.add_parser("tour", help="execute every solution notebook and export HTML")
    p.add_argument("solutions", metavar="SOLUTIONS_DIR")
    p.add_argument("--out", default="build/tour", metavar="DIR", help="output folder (default: build/tour)")
    p.add_argument("--profile", choices=PROFILES, default="fast", help="runtime profile (default: fast)")
    p.add_argument("--timeout", type=int, default=1800, metavar="S", help="seconds allowed per cell")
    p.set_defaults(run=_tour)

    p = sub.add_parser("grade", help="autograde student submissions", argument_default=argparse.SUPPRESS)
    p.add_argument("path", metavar="PATH", help="a submitted notebook or a folder of submissions")
    p.add_argument("--assignment", metavar="NAME",
                   help="assignment name or solution notebook (guessed for a single notebook)")
    p.add_argument("--out", metavar="DIR", help="where gradebook and feedback go")
    p.add_argument("--workers", type=int, metavar="N", help="submissions graded in parallel")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="seconds allowed per cell and per exercise (the whole notebook gets 10x)")
    p.add_argument("--regrade", action="store_true", help="grade again submissions already graded")
    p.set_defaults(run=_grade)

    p = sub.add_parser("fpd-weights", help="rebuild the FPD PointNet state file deterministically")
    p.add_argument("--out", metavar="PATH", help="where to write it (default: the packaged fpd_pointnet.pt)")
    p.set_defaults(run=_fpd_weights)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
