"""Exercise checks: ``check("stn.affine_grid", affine_grid)`` in a notebook.

Each module in this package defines the exercises of one topic and lists them
in a module-level ``EXERCISES`` tuple; they are collected into :data:`REGISTRY`
by name. Points, cases, reference and recognised mistakes live together in the
:class:`~coursekit.checks.core.Exercise` definition.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable

import torch

from .core import Case, CheckFailure, CheckResult, Exercise, Mistake, Outcome, compare, forbidden_uses, run_answer


def _collect() -> dict[str, Exercise]:
    registry: dict[str, Exercise] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "core":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for exercise in getattr(module, "EXERCISES", ()):
            if exercise.name in registry:
                raise RuntimeError(f"exercise {exercise.name!r} is defined twice")
            registry[exercise.name] = exercise
    return registry


REGISTRY: dict[str, Exercise] = _collect()


def get(name: str) -> Exercise:
    """The exercise called ``name``; a clear error lists the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no exercise {name!r}; known: {sorted(REGISTRY)}") from None


def make_cases(exercise: Exercise, seed: int = 0) -> list[Case]:
    """The exercise's cases for ``seed`` (the same seed gives the same cases)."""
    return exercise.make_cases(torch.Generator().manual_seed(seed))


def evaluate(name: str, fn: Callable, seed: int = 0) -> CheckResult:
    """Run and judge ``fn`` in this process; returns the result without raising."""
    exercise = get(name)
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    used = forbidden_uses(exercise, source)
    if used:
        return CheckResult(name, False, f"this exercise must be solved without {', '.join(used)}: "
                           "write it from the formula", 0.0, exercise.points)
    cases = make_cases(exercise, seed)
    return compare(exercise, cases, run_answer(fn, cases))


def check(name: str, fn: Callable, seed: int = 0) -> None:
    """Check a notebook answer: prints a pass line, or raises :class:`CheckFailure`."""
    result = evaluate(name, fn, seed)
    if not result.passed:
        raise CheckFailure(f"{name}: {result.message}")
    unit = "point" if result.points == 1 else "points"
    print(f"\u2714 {name}: {result.message} ({result.points:g} {unit})")


__all__ = ["Case", "CheckFailure", "CheckResult", "Exercise", "Mistake", "Outcome", "REGISTRY",
           "check", "compare", "evaluate", "forbidden_uses", "get", "make_cases", "run_answer"]
