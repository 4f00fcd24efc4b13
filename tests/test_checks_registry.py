"""Every registered exercise check is honest, and the check protocol (checks/core.py) says what is wrong."""

import importlib.util
import re

import pytest
import torch

from coursekit import checks
from coursekit.checks import REGISTRY, Case, CheckFailure, Exercise, Mistake, compare, forbidden_uses, make_cases, run_answer
from coursekit.checks.core import _difference

NAMES = sorted(REGISTRY)
MISTAKES = [(name, i) for name in NAMES for i in range(len(REGISTRY[name].mistakes))]


def judge(exercise, fn, seed=0):
    """Judge ``fn`` on the exercise's cases without the source inspection of ``checks.evaluate``."""
    cases = make_cases(exercise, seed)
    return compare(exercise, cases, run_answer(fn, cases))


# ---------------------------------------------------------------- every registered exercise

def test_the_registry_is_not_empty_and_names_are_dotted():
    assert "warmup.normalize_unit_sphere" in REGISTRY
    for name in NAMES:
        assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", name), name


@pytest.mark.parametrize("name", NAMES)
def test_reference_passes_with_positive_points(name):
    exercise = REGISTRY[name]
    assert exercise.points > 0
    for seed in (0, 1):
        result = judge(exercise, exercise.reference, seed)
        assert result.passed, result.message
        assert result.points == exercise.points == result.max_points


@pytest.mark.parametrize("name", NAMES)
def test_cases_are_reproducible_from_the_seed(name):
    a, b = make_cases(REGISTRY[name], 3), make_cases(REGISTRY[name], 3)
    assert [c.label for c in a] == [c.label for c in b]
    for ca, cb in zip(a, b):
        for x, y in zip(ca.args, cb.args):
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y)


@pytest.mark.parametrize("name, index", MISTAKES, ids=[f"{n}-{i}" for n, i in MISTAKES])
def test_every_mistake_fails_with_its_own_message(name, index):
    exercise = REGISTRY[name]
    mistake = exercise.mistakes[index]
    result = judge(exercise, mistake.answer)
    assert not result.passed
    assert result.points == 0
    assert mistake.message in result.message, (
        f"mistake {index} ({mistake.message!r}) was reported as {result.message!r}: "
        "make the cases tell it apart from the mistakes listed before it")


@pytest.mark.parametrize("name", NAMES)
def test_a_stub_fails_as_not_implemented(name):
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise: write the body")

    result = judge(REGISTRY[name], stub)
    assert not result.passed and "not implemented" in result.message


def _wrong_shape(reference):
    def answer(*args, **kwargs):
        out = reference(*args, **kwargs)
        if isinstance(out, (tuple, list)):
            return type(out)([out[0].unsqueeze(0), *out[1:]])
        return out.unsqueeze(0)
    return answer


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_shape_fails_naming_both_shapes(name):
    exercise = REGISTRY[name]
    case = make_cases(exercise)[0]
    out = exercise.reference(*case.args, **case.kwargs)
    first = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(first, torch.Tensor):
        pytest.skip("the output is not a tensor")
    result = judge(exercise, _wrong_shape(exercise.reference))
    assert not result.passed
    assert f"has shape {(1, *first.shape)}, expected {tuple(first.shape)}" in result.message


def _module_from_source(tmp_path, source):
    path = tmp_path / "answer_module.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("answer_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].forbidden])
def test_forbidden_names_are_detected_in_the_source(name, tmp_path):
    exercise = REGISTRY[name]
    for forbidden in exercise.forbidden:
        as_attribute = f"import torch\n\ndef answer(*args):\n    return torch.nn.functional.{forbidden}(*args)\n"
        as_name = f"from torch.nn.functional import {forbidden}\n\ndef answer(*args):\n    return {forbidden}(*args)\n"
        assert forbidden_uses(exercise, as_attribute) == [forbidden]
        assert forbidden in forbidden_uses(exercise, as_name)
        # Through the notebook path: checks.evaluate reads the function's source.
        answer = _module_from_source(tmp_path, as_attribute).answer
        result = checks.evaluate(name, answer)
        assert not result.passed and f"must be solved without {forbidden}" in result.message
    assert forbidden_uses(exercise, "def answer(x):\n    return x  # mentions " + exercise.forbidden[0] + " in a comment\n") == []


# ---------------------------------------------------------------- the protocol itself (core.py)

def _double(x):
    return x * 2


def _cases(gen):
    return [Case("a 2x3 float64 tensor", (torch.randn(2, 3, generator=gen, dtype=torch.float64),), grad=(0,))]


DOUBLE = Exercise("demo.double", 2, _double, _cases, what="doubled tensor",
                  mistakes=(Mistake("you added instead of multiplying", lambda x: x + 2),))


@pytest.mark.parametrize("got, want, message", [
    (torch.zeros(2, 4), torch.zeros(2, 3), "out has shape (2, 4), expected (2, 3)"),
    (torch.zeros(2, 3, dtype=torch.float32), torch.zeros(2, 3, dtype=torch.float64),
     "out has dtype torch.float32, expected torch.float64"),
    (torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]),
     "out is wrong at 1 of 2 entries (first at index (1,): got 2.5, expected 2; max abs error 0.5)"),
    (torch.tensor([1, 3]), torch.tensor([1, 2]), "out is wrong at 1 of 2 entries"),
    (torch.tensor([float("nan")]), torch.tensor([1.0]), "out contains NaN"),
    ([1, 2], torch.zeros(2), "out should be a torch tensor, got a list"),
    (torch.zeros(2), (torch.zeros(2), torch.zeros(1)), "out should be a tuple of 2 values"),
    ((torch.zeros(2), torch.ones(1)), (torch.zeros(2), torch.zeros(1)), "out[1] is wrong at 1 of 1 entries"),
    (0.5, 0.25, "out is 0.5, expected 0.25"),
    ("a", "b", "out is 'a', expected 'b'"),
])
def test_difference_names_the_problem(got, want, message):
    problem = _difference(got, want, "out", rtol=1e-5, atol=1e-8)
    assert problem is not None and problem.startswith(message)


@pytest.mark.parametrize("got, want", [
    (torch.tensor([1.0, 2.0 + 1e-9]), torch.tensor([1.0, 2.0])),
    (torch.tensor([float("nan")]), torch.tensor([float("nan")])),
    (__import__("numpy").array([1.0]), torch.tensor([1.0], dtype=torch.float64)),
    ((torch.ones(1),), (torch.ones(1),)),
    (0.25 + 1e-12, 0.25),
])
def test_difference_accepts_matches_within_tolerance(got, want):
    assert _difference(got, want, "out", rtol=1e-5, atol=1e-8) is None


def test_missing_gradient_is_reported():
    result = judge(DOUBLE, lambda x: (x * 2).detach())
    assert not result.passed and "no gradient reaches argument 0" in result.message


def test_wrong_gradient_is_reported():
    result = judge(DOUBLE, lambda x: (x * 2).detach() + x * 0.5 - (x * 0.5).detach())  # right value, gradient 0.5
    assert not result.passed and "gradient w.r.t. argument 0 is wrong" in result.message


def test_mistake_message_beats_the_generic_difference():
    assert judge(DOUBLE, lambda x: x + 2).message == "on a 2x3 float64 tensor: you added instead of multiplying"
    assert "doubled tensor is wrong at" in judge(DOUBLE, lambda x: x * 3).message


def test_student_errors_are_reported_and_never_raise():
    def broken(x):
        raise IndexError("index 5 is out of bounds")

    outcome = run_answer(broken, make_cases(DOUBLE))[0]
    assert outcome.error_type == "IndexError" and "broken" in outcome.traceback
    result = judge(DOUBLE, broken)
    assert result.message == "on a 2x3 float64 tensor: your function raised IndexError: index 5 is out of bounds"


def test_inputs_are_copied_so_in_place_edits_do_not_leak():
    def in_place(x):
        return x.mul_(2) if not x.requires_grad else x * 2

    cases = make_cases(DOUBLE)
    original = cases[0].args[0].clone()
    run_answer(in_place, cases)
    assert torch.equal(cases[0].args[0], original)


def test_check_prints_on_success_and_raises_on_failure(capsys, monkeypatch):
    monkeypatch.setitem(REGISTRY, "demo.double", DOUBLE)
    checks.check("demo.double", _double)
    assert "\u2714 demo.double: passed 1 cases (2 points)" in capsys.readouterr().out
    with pytest.raises(CheckFailure, match="demo.double: on a 2x3 float64 tensor: you added instead of multiplying"):
        checks.check("demo.double", lambda x: x + 2)
    with pytest.raises(KeyError, match="no exercise 'demo.triple'; known: "):
        checks.get("demo.triple")


def test_compare_rejects_a_wrong_number_of_outcomes():
    assert "expected 1 results, got 0" in compare(DOUBLE, make_cases(DOUBLE), []).message


def test_forbidden_uses_ignores_unparsable_source():
    exercise = Exercise("demo.x", 1, _double, _cases, forbidden=("grid_sample",))
    assert forbidden_uses(exercise, "def f(:\n grid_sample") == []
    assert forbidden_uses(DOUBLE, "grid_sample(x)") == []  # nothing is forbidden there
