"""The exercise-check protocol shared by every notebook and by the grader.

An :class:`Exercise` knows how to make test cases (plain tensors, seeded), the
library's reference answer, and the plausible mistakes a student makes. Checking
is split in two so that the grader can run them in different processes:

1. :func:`run_answer` (student side) calls the student's function on each case
   and returns plain :class:`Outcome` records: outputs, gradients, or the error.
2. :func:`compare` (grader side) recomputes the reference on the same cases and
   judges the outcomes. The student's process never sees the reference values.

:func:`check` does both in one process for the notebook's check cells: it prints
one line on success and raises :class:`CheckFailure` with an actionable message
("grid has shape (2, 5, 7, 3), expected (2, 5, 7, 2)") otherwise.

Gradients: for cases that name ``grad`` arguments, the runner back-propagates
``sum(output * w)`` with a fixed pseudo-random cotangent ``w`` (see
:func:`cotangent`) and returns the gradients w.r.t. those arguments.
"""

from __future__ import annotations

import ast
import textwrap
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch


class CheckFailure(AssertionError):
    """A check rejected an answer; the message says what to fix."""


@dataclass(frozen=True)
class Case:
    """One input to an exercise.

    Attributes:
        label: words for the student ("batch of 2, non-square 5x7 output").
        args: positional arguments (tensors, arrays or Python scalars).
        kwargs: keyword arguments.
        grad: indices of tensor ``args`` whose gradients are compared.
    """

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    grad: tuple[int, ...] = ()


@dataclass
class Outcome:
    """What an answer produced on one case: ``output`` and ``grads``, or ``error``."""

    output: Any = None
    grads: tuple | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer and the message that names it.

    ``answer`` has the exercise's signature and computes the wrong result, so
    the check can recognise it and the test suite can prove it is caught.
    """

    message: str
    answer: Callable


@dataclass(frozen=True)
class Exercise:
    """A graded exercise.

    Attributes:
        name: dotted id used in notebooks (``check("stn.affine_grid", fn)``).
        points: points the grader awards for passing.
        reference: the library's implementation.
        make_cases: ``generator -> list[Case]``; fresh seeded inputs plus edge cases.
        mistakes: recognised wrong answers, tried in order when values differ.
        forbidden: names the answer must not use (``"grid_sample"``); enforced on source.
        rtol, atol: tolerances for values and gradients.
        what: a short noun for the output in messages ("grid", "sampled image").
    """

    name: str
    points: float
    reference: Callable
    make_cases: Callable[[torch.Generator], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    forbidden: tuple[str, ...] = ()
    rtol: float = 1e-4
    atol: float = 1e-5
    what: str = "output"


@dataclass
class CheckResult:
    exercise: str
    passed: bool
    message: str
    points: float
    max_points: float


# ----------------------------------------------------------------- student side

def cotangent(like: torch.Tensor) -> torch.Tensor:
    """The fixed weights ``w`` used to back-propagate ``sum(output * w)``."""
    gen = torch.Generator().manual_seed(12345)
    return torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like.dtype)


def _clone(value: Any, requires_grad: bool = False) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(requires_grad)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    return value


def run_answer(fn: Callable, cases: Sequence[Case]) -> list[Outcome]:
    """Call ``fn`` on every case; never raises. Outputs come back detached, on CPU."""
    outcomes = []
    for case in cases:
        try:
            args = [_clone(a, i in case.grad) for i, a in enumerate(case.args)]
            out = fn(*args, **{k: _clone(v) for k, v in case.kwargs.items()})
            grads = None
            if case.grad:
                if not isinstance(out, torch.Tensor):
                    raise TypeError(f"expected a tensor output to differentiate, got {type(out).__name__}")
                if not out.requires_grad:
                    grads = tuple(None for _ in case.grad)
                else:
                    inputs = [args[i] for i in case.grad]
                    got = torch.autograd.grad((out * cotangent(out)).sum(), inputs, allow_unused=True)
                    grads = tuple(_detach(g) for g in got)
            outcomes.append(Outcome(output=_detach(out), grads=grads))
        except Exception as exc:  # the student's error is data for the report
            outcomes.append(Outcome(error=str(exc), error_type=type(exc).__name__,
                                    traceback=traceback.format_exc(limit=-3)))
    return outcomes


# ------------------------------------------------------------------ grader side

def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {tuple(value.shape)} {str(value.dtype).replace('torch.', '')} tensor"
    return f"a {type(value).__name__}"


def _difference(got: Any, want: Any, what: str, rtol: float, atol: float) -> str | None:
    """None when ``got`` matches ``want``, else the first problem in words."""
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{what} should be a tuple of {len(want)} values, got {_describe(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            problem = _difference(g, w, f"{what}[{i}]", rtol, atol)
            if problem:
                return problem
        return None
    if isinstance(want, torch.Tensor):
        if isinstance(got, np.ndarray):
            got = torch.from_numpy(got)
        if not isinstance(got, torch.Tensor):
            return f"{what} should be a torch tensor, got {_describe(got)}"
        if tuple(got.shape) != tuple(want.shape):
            return f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if got.dtype != want.dtype:
            return f"{what} has dtype {got.dtype}, expected {want.dtype}"
        if want.dtype.is_floating_point:
            g, w = got.double(), want.double()
            if torch.isnan(g).any() and not torch.isnan(w).any():
                return f"{what} contains NaN"
            bad = ~torch.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        else:
            bad = got != want
        if bad.any():
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            err = (got.double() - want.double()).abs().max().item()
            return (f"{what} is wrong at {int(bad.sum())} of {bad.numel()} entries "
                    f"(first at index {idx}: got {got[idx].item():.6g}, expected {want[idx].item():.6g}; "
                    f"max abs error {err:.3g})")
        return None
    if isinstance(want, float):
        if not isinstance(got, (int, float)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
            return f"{what} should be a number, got {_describe(got)}"
        return None if abs(float(got) - want) <= atol + rtol * abs(want) else f"{what} is {float(got):.6g}, expected {want:.6g}"
    return None if got == want else f"{what} is {got!r}, expected {want!r}"


def _judge(exercise: Exercise, case: Case, got: Outcome, want: Outcome) -> str | None:
    problem = _difference(got.output, want.output, exercise.what, exercise.rtol, exercise.atol)
    if problem is None and case.grad and want.grads is not None:
        for i, g, w in zip(case.grad, got.grads or (), want.grads):
            if w is None:
                continue
            if g is None:
                problem = (f"no gradient reaches argument {i}: the computation is not differentiable "
                           f"there (a .detach(), .item(), integer rounding or numpy round trip?)")
                break
            problem = _difference(g, w, f"gradient w.r.t. argument {i}", exercise.rtol * 10, exercise.atol * 10)
            if problem:
                break
    return problem


def _matches(outcome: Outcome, other: Outcome, exercise: Exercise, case: Case) -> bool:
    return other.error is None and _judge(exercise, case, outcome, other) is None


def compare(exercise: Exercise, cases: Sequence[Case], outcomes: Sequence[Outcome]) -> CheckResult:
    """Judge student ``outcomes`` against the reference on ``cases`` (grader side)."""
    def fail(message: str) -> CheckResult:
        return CheckResult(exercise.name, False, message, 0.0, exercise.points)

    if len(outcomes) != len(cases):
        return fail(f"expected {len(cases)} results, got {len(outcomes)}")
    references = run_answer(exercise.reference, cases)
    for case, got, want in zip(cases, outcomes, references):
        if want.error is not None:
            raise RuntimeError(f"reference of {exercise.name} failed on '{case.label}': {want.error}")
        if got.error is not None:
            if got.error_type == "NotImplementedError":
                return fail("not implemented yet: replace the `raise NotImplementedError` with your code")
            return fail(f"on {case.label}: your function raised {got.error_type}: {got.error}")
        problem = _judge(exercise, case, got, want)
        if problem is None:
            continue
        for mistake in exercise.mistakes:
            if _matches(got, run_answer(mistake.answer, [case])[0], exercise, case):
                return fail(f"on {case.label}: {mistake.message}")
        return fail(f"on {case.label}: {problem}")
    return CheckResult(exercise.name, True, f"passed {len(cases)} cases", exercise.points, exercise.points)


def forbidden_uses(exercise: Exercise, source: str) -> list[str]:
    """Names from ``exercise.forbidden`` that ``source`` uses (as a name or attribute)."""
    if not exercise.forbidden:
        return []
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return []
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return sorted(set(exercise.forbidden) & used)
