"""The autograder: static rules, the kernel-side answer runner, and whole classes of hostile submissions.

Kernel tests use small limits (seconds). Whether bubblewrap is installed decides
which isolation the snooping submission meets; without it those tests say so
(a warning) and expect the weaker result instead of skipping.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil
import pytest
import torch

import grading_cases as gc
from coursekit import checks
from coursekit.grading import assignments, autograde, feedback, sandbox
from coursekit.grading.assignments import NotebookCode
from coursekit.grading.autograde import Gradebook, grade_command, grade_folder, grade_notebook
from coursekit.grading.sandbox import AnswersError, Limits, read_answers

LIMITS = Limits(cell=6.0, notebook=60.0, startup=120.0)
MODE = sandbox.sandbox_mode(os.environ.get(autograde.ENV_SANDBOX, "auto"))  # "none" tests the degraded mode


@pytest.fixture(autouse=True)
def test_exercises(monkeypatch):
    gc.register(monkeypatch)


@pytest.fixture
def course(tmp_path):
    """Solutions folder with hw_a and hw_b; returns hw_a as an Assignment."""
    solution, _ = gc.write_solutions(tmp_path / "solutions")
    return assignments.load(str(solution))


def _warn_without_bwrap():
    if MODE != "bwrap":
        warnings.warn("bubblewrap (bwrap) is not used (not installed, not working here, or COURSEKIT_SANDBOX=none): "
                      "grading runs unsandboxed, so submissions can read the solutions and the isolation is not "
                      "tested; install it (apt-get install bubblewrap)")


@pytest.fixture
def no_new_processes():
    """Fails the test if it leaves a process of its own behind."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert left == [], f"left running: {left}"
    assert _processes_mentioning("sleep 31417") == []


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if text in line and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {line[:120]}")
    return found


def _read_gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def _assert_graded(out: Path, cases: dict[str, tuple[bytes, gc.Expected]]) -> None:
    book = _read_gradebook(out)
    assert sorted(book) == sorted(cases)
    for student, (_, want) in cases.items():
        row = book[student]
        got = (float(row[gc.WARMUP]), float(row[gc.FLIP]), row["status"])
        assert got == (want.warmup, want.flip, want.status), f"{student}: {row}"
        assert float(row["total"]) == want.total and float(row["max"]) == 3
        text = (out / "feedback" / f"{student}.md").read_text()
        assert f"Score: {want.total:g} / 3" in text
        sections = {"": text}
        sections.update((name, text.split(f"## `{name}`")[1].split("\n## ")[0]) for name in (gc.WARMUP, gc.FLIP))
        for where, phrases in want.says.items():
            for phrase in phrases:
                assert phrase in sections[where], f"{student}: {phrase!r} not in the feedback of {where or 'the file'}"


def _class(tmp_path: Path, names=None) -> tuple[Path, Path, dict]:
    subs, out = tmp_path / "submissions", tmp_path / "grades"
    subs.mkdir()
    private = [str(tmp_path / "solutions"), str(subs / "correct.ipynb"), str(out)]
    cases = gc.submissions(out, private, MODE == "bwrap")
    if names is not None:
        cases = {n: cases[n] for n in names}
    for student, (data, _) in cases.items():
        if student == "renamed":  # the folder layout: SUBMISSIONS/<student>/<assignment>.ipynb
            (subs / student).mkdir()
            (subs / student / "hw_a.ipynb").write_bytes(data)
        else:
            (subs / f"{student}.ipynb").write_bytes(data)
    return subs, out, cases


# ------------------------------------------------------------ assignments

def test_exercises_come_from_check_cells_with_registry_points(course):
    assert [(t.exercise, t.function, t.points) for t in course.tasks] == [
        (gc.WARMUP, "normalize_unit_sphere", 1.0), (gc.FLIP, "flip_last", 2.0)]
    assert course.max_points == 3 and course.name == "hw_a"


def test_check_call_pattern():
    text = gc.notebook("check('a.b', f)", 'x = check( "c.d" ,g )', "mycheck('e.f', h)", "checks.check('g.h', i)")
    import nbformat

    calls = assignments.check_calls(nbformat.reads(text.decode(), as_version=4))
    assert calls == [("a.b", "f"), ("c.d", "g")]


def test_assignments_are_found_by_name(course, monkeypatch, tmp_path):
    monkeypatch.setenv(assignments.ENV_PATH, str(tmp_path / "solutions"))
    assert assignments.load("hw_b").tasks[0].exercise == gc.DOUBLE
    assert set(assignments.known()) >= {"hw_a", "hw_b"}
    with pytest.raises(KeyError, match="hw_a"):
        assignments.load("no_such_assignment")
    import nbformat

    submitted = nbformat.reads(gc.hw_b().decode(), as_version=4)
    assert assignments.guess(submitted, "my_homework").name == "hw_b"  # by the exercises it checks
    assert assignments.guess(submitted, "hw_a").name == "hw_a"  # the file name wins
    assert assignments.guess(nbformat.reads(gc.notebook("x = 1").decode(), as_version=4), "mine") is None


@pytest.mark.parametrize("data, reason", [
    (b'{"cells": [', "not a Jupyter notebook"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"cells": 3, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "not a Jupyter notebook"),
])
def test_broken_files_are_rejected_with_a_reason(tmp_path, data, reason):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=reason):
        assignments.read_notebook(path)


def test_check_cells_are_recognised():
    assert assignments.is_check_cell('check("a.b", f)')
    assert assignments.is_check_cell('from coursekit.checks import check\ncheck("a.b", f)\nchecks.check("c", g)')
    assert not assignments.is_check_cell('check("a.b", f)\nprint(1)')
    assert not assignments.is_check_cell("x = 1")
    assert not assignments.is_check_cell("")
    assert not assignments.is_check_cell(gc.IMPORTS)  # imports check, but must run


# ----------------------------------------------------------- static rules

def _inspect(*cells: str, function="normalize_unit_sphere", exercise=gc.WARMUP):
    import nbformat

    nb = nbformat.reads(gc.notebook(*cells).decode(), as_version=4)
    return NotebookCode(nb).inspect(function, checks.get(exercise))


@pytest.mark.parametrize("cells, phrase", [
    ((gc.REFERENCE_IMPORT,), "coursekit.geometry.normalize.normalize_unit_sphere"),
    ((gc.REFERENCE_ALIAS,), "not written in your notebook"),
    ((gc.REFERENCE_DYNAMIC,), "__import__"),
    (("import coursekit.geometry.normalize", "def normalize_unit_sphere(p):\n    return coursekit.geometry.normalize.normalize_unit_sphere(p)"),
     "coursekit.geometry.normalize"),
    (("from coursekit.checks import get", "def normalize_unit_sphere(p):\n    return get('warmup.normalize_unit_sphere').reference(p)"),
     "coursekit.checks.get"),
    (("import coursekit.geometry.normalize as n\nhelper = n.normalize_unit_sphere",
      "def normalize_unit_sphere(p):\n    return helper(p)"), "coursekit.geometry.normalize"),
    (("def helper(p):\n    from coursekit.geometry import normalize\n    return normalize.normalize_unit_sphere(p)",
      "def normalize_unit_sphere(p):\n    return helper(p)"), "coursekit.geometry.normalize"),
    (("import importlib", "def normalize_unit_sphere(p):\n    return importlib.import_module('coursekit.geometry.normalize').normalize_unit_sphere(p)"),
     "importlib"),
    (("import sys", "def normalize_unit_sphere(p):\n    return sys.modules['coursekit.geometry.normalize'].normalize_unit_sphere(p)"),
     "sys.modules"),
    (("def normalize_unit_sphere(p):\n    return eval('p')",), "eval"),
])
def test_static_rules_catch_the_reference_and_dynamic_lookups(cells, phrase):
    found = _inspect(*cells)
    assert found is not None and any(phrase in p for p in found.problems), found


@pytest.mark.parametrize("cells", [
    (gc.FORBIDDEN,),
    ("import torch.nn.functional as F", "def flip_last(x):\n    return F.flip(x)"),
    ("from torch import flip as turn", "def flip_last(x):\n    return turn(x, (-1,))"),
    ("reverse = lambda x: x.flip(-1)", "def flip_last(x):\n    return reverse(x)"),
])
def test_static_rules_enforce_forbidden_names(cells):
    found = _inspect(*cells, function="flip_last", exercise=gc.FLIP)
    assert any("without `flip`" in p for p in found.problems), found


@pytest.mark.parametrize("cells", [
    (gc.IMPORTS, gc.WARMUP_OK),
    ("import torch\nfrom coursekit import runtime", "EPS = 1e-12", "def helper(q):\n    return q.norm(dim=-1)",
     "def normalize_unit_sphere(points):\n    c = points - points.mean(1, keepdim=True)\n"
     "    d = runtime.device()\n    return (c / (helper(c).amax(1, keepdim=True).unsqueeze(-1) + EPS)).to(d)"),
    ("import coursekit.runtime as rt\nimport torch.nn as nn", "def normalize_unit_sphere(points):\n"
     "    m = nn.Identity().eval()\n    normalize_unit_sphere = None\n    return m(points) if rt.profile() else points"),
    ("%matplotlib inline\nimport torch", "!echo hi", gc.WARMUP_OK),
])
def test_static_rules_accept_honest_code(cells):
    found = _inspect(*cells)
    assert found is not None and found.problems == []


def test_static_readiness_waits_for_helpers_defined_later():
    found = _inspect("import torch", "def normalize_unit_sphere(p):\n    return helper(p) * SCALE", "x = 1",
                     "def helper(p):\n    return p", "SCALE = 2.0", "y = 2")
    assert found.ready_after == 4 and found.problems == []  # 0-based: the SCALE cell
    assert _inspect("def other(p):\n    return p") is None


SOLUTIONS = sorted(assignments.known().items())


@pytest.mark.parametrize("name, path", SOLUTIONS or [pytest.param("", None, marks=pytest.mark.skip("no notebooks"))])
def test_course_notebooks_follow_the_source_rules(name, path):
    """Exercise solutions may not call coursekit (except runtime) or what their exercise forbids."""
    nb = assignments.read_notebook(path)
    code = NotebookCode(nb)
    for task in assignments.exercises_for(nb):
        found = code.inspect(task.function, checks.get(task.exercise))
        assert found is not None and found.problems == [], f"{name}: {task.function}: {found}"


@pytest.mark.slow
@pytest.mark.parametrize("name, path", SOLUTIONS or [pytest.param("", None, marks=pytest.mark.skip("no notebooks"))])
def test_solution_notebooks_earn_full_marks(name, path, tmp_path):
    if path.parent.name != "solutions":
        pytest.skip(f"{path} is a released notebook")
    course = assignments.load(str(path))
    result = grade_notebook(path, course, "instructor", Limits(cell=600, notebook=1800), MODE)
    assert (result.status, result.total) == ("ok", course.max_points), feedback.markdown(result)


# ------------------------------------------------------ the answer runner

def _runner(namespace: dict):
    """Execute the kernel preamble in this process; return the runner it defines."""
    exec(sandbox.preamble("runner"), namespace)
    return namespace["runner"]


def _answers(tmp_path, fn, cases, forbidden=(), name="answer"):
    namespace = {name: fn}
    cases_file, answers_file = tmp_path / "cases.pt", tmp_path / f"answers-{secrets.token_hex(4)}.pt"
    torch.save([{"args": c.args, "kwargs": c.kwargs, "grad": c.grad} for c in cases], cases_file)
    _runner(namespace)(name, str(cases_file), str(answers_file), forbidden)
    return read_answers(answers_file, len(cases))


def _stub(points):
    raise NotImplementedError("Exercise")


def _not_a_tensor(points):
    return [1, "two", object()]


@pytest.mark.parametrize("seed", [0, 7])
def test_answer_runner_agrees_with_run_answer(tmp_path, seed):
    exercise = checks.get(gc.WARMUP)
    cases = checks.make_cases(exercise, seed)
    answers = [exercise.reference, _stub, _not_a_tensor] + [m.answer for m in exercise.mistakes]
    for answer in answers:
        got = _answers(tmp_path, answer, cases)
        here = checks.run_answer(answer, cases)
        assert got.defined and got.profiler_intact  # (coursekit's own answers are flagged in .library)
        assert checks.compare(exercise, cases, got.outcomes).message == checks.compare(exercise, cases, here).message
        for mine, theirs in zip(got.outcomes, here):
            assert (mine.error is None) == (theirs.error is None)
            if theirs.error is None and isinstance(theirs.output, torch.Tensor):
                same = dict(rtol=0, atol=0, equal_nan=True)
                torch.testing.assert_close(mine.output, theirs.output, **same)
                torch.testing.assert_close(mine.grads, theirs.grads, **same)


def test_answer_runner_sees_calls_into_coursekit_and_forbidden_functions(tmp_path):
    from coursekit.geometry.normalize import normalize_unit_sphere

    cases = checks.make_cases(checks.get(gc.WARMUP))
    sneaky = {"f": normalize_unit_sphere}
    got = _answers(tmp_path, lambda p: sneaky["f"](p), cases)
    assert any(p.endswith(os.path.join("geometry", "normalize.py")) for p in got.library)
    got = _answers(tmp_path, lambda p: getattr(p, "fl" + "ip")(-1), cases, forbidden=("flip",))
    assert got.forbidden == ["flip"]
    got = _answers(tmp_path, lambda p: (sys.setprofile(None), p)[1], cases)
    assert not got.profiler_intact
    assert not _answers(tmp_path, None, cases).defined


def test_answer_runner_keeps_pristine_torch_functions(tmp_path, monkeypatch):
    runner = _runner({"answer": lambda p: p})  # the preamble runs before any notebook code
    cases = checks.make_cases(checks.get(gc.WARMUP))
    cases_file, answers_file = tmp_path / "c.pt", tmp_path / "a.pt"
    torch.save([{"args": c.args, "kwargs": c.kwargs, "grad": c.grad} for c in cases], cases_file)
    monkeypatch.setattr(torch, "save", lambda *a, **k: None)  # then the notebook patches torch
    monkeypatch.setattr(torch, "load", lambda *a, **k: [])
    monkeypatch.setattr(torch.Tensor, "detach", lambda self: "patched")
    runner("answer", str(cases_file), str(answers_file), ())
    monkeypatch.undo()
    got = read_answers(answers_file, len(cases))
    assert [type(o.output) for o in got.outcomes] == [torch.Tensor] * len(cases)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/ck-pwned",))


def test_answers_file_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"defined": True, "outcomes": [{"output": _Payload()}]}, evil)
    with pytest.raises(AnswersError, match="safely"):
        read_answers(evil, 1)
    assert not Path("/tmp/ck-pwned").exists()
    for bad, reason in [({"defined": True, "outcomes": []}, "expected 1"), (["x"], "not a report"),
                        ({"defined": True, "outcomes": [{"output": {"a": 1}}]}, "unexpected value")]:
        torch.save(bad, evil)
        with pytest.raises(AnswersError, match=reason):
            read_answers(evil, 1)
    with pytest.raises(AnswersError, match="no answers"):
        read_answers(tmp_path / "missing.pt", 1)


def test_feedback_hides_reference_values():
    message = ("normalised cloud is wrong at 3 of 8 entries (first at index (0, 1, 2): got 0.5, "
               "expected -0.25; max abs error 0.3)")
    shown = feedback.redact(message)
    assert "0.25" not in shown and "0.3" not in shown and "got 0.5" in shown
    assert feedback.redact("grid has shape (2, 5), expected (2, 7)").endswith("expected (2, 7)")
    assert "0.75" not in feedback.redact("loss is 0.1, expected 0.75")


# ------------------------------------------------------------- discovery

def test_students_are_found_in_both_layouts(tmp_path):
    (tmp_path / "alice.ipynb").write_bytes(gc.hw_a())
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "hw_a.ipynb").write_bytes(gc.hw_a())
    (tmp_path / "bob" / "scratch.ipynb").write_bytes(gc.hw_a())
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "mine.ipynb").write_bytes(gc.hw_a())
    (tmp_path / "dave").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    found, problems = autograde.discover(tmp_path, "hw_a")
    assert {s: p.relative_to(tmp_path).as_posix() for s, p in found.items()} == {
        "alice": "alice.ipynb", "bob": "bob/hw_a.ipynb", "carol": "carol/mine.ipynb"}
    assert len(problems) == 1 and "dave" in problems[0]
    assert autograde.student_id(tmp_path / "bob" / "hw_a.ipynb", "hw_a") == "bob"
    assert autograde.student_id(tmp_path / "alice.ipynb", "hw_a") == "alice"


# --------------------------------------------------------------- kernels

def test_representative_class_in_one_run(course, tmp_path, no_new_processes):
    _warn_without_bwrap()
    subs, out, cases = _class(tmp_path, gc.REPRESENTATIVE)
    start = time.monotonic()
    assert grade_folder(subs, course, out, workers=2, limits=LIMITS, mode=MODE) == 0
    assert time.monotonic() - start < 120
    _assert_graded(out, cases)


def test_every_attack_in_one_run(course, tmp_path, no_new_processes):
    _warn_without_bwrap()
    subs, out, cases = _class(tmp_path)
    start = time.monotonic()
    assert grade_folder(subs, course, out, workers=2, limits=LIMITS, mode=MODE) == 0
    elapsed = time.monotonic() - start
    _assert_graded(out, cases)
    assert elapsed < 240, f"grading took {elapsed:.0f} s"  # ~60 s on a busy 2-core machine; shared CI is slower
    text = (out / "feedback" / "partial.md").read_text()
    assert "expected value hidden" in text or "reversed the first axis" in text


def test_student_run_prints_the_score_table(course, tmp_path, monkeypatch, capsys, no_new_processes):
    """What a student runs; unsandboxed here, with a process left running by a kernel that then dies."""
    monkeypatch.setenv(autograde.ENV_SANDBOX, "none")
    path = tmp_path / "mine.ipynb"
    path.write_bytes(gc.hw_a(flip=gc.FLIP_WRONG_DIM, first=gc.BACKGROUND).replace(
        b"print('done')", b"import os\\nos._exit(1)"))
    assert grade_command(path, assignment=str(course.path), timeout=LIMITS.cell) == 0
    shown = capsys.readouterr().out
    assert re.search(r"warmup\.normalize_unit_sphere\s+1 / 1\s+passed", shown)
    assert re.search(r"testing\.flip_last\s+0 / 2\s+failed: .*reversed the first axis", shown)
    assert re.search(r"total\s+1 / 3", shown) and "(status: kernel died)" in shown
    assert not (tmp_path / "grades").exists()


def test_notebook_time_limit_and_unsandboxed_cleanup(course, tmp_path, no_new_processes):
    """Without bwrap the grader still stops a slow notebook and kills what it started."""
    path = tmp_path / "slow.ipynb"
    path.write_bytes(gc.hw_a(first=gc.BACKGROUND, middle="import time\nfor _ in range(3):\n    time.sleep(1.5)"))
    result = grade_notebook(path, course, "slow", Limits(cell=10, notebook=2.5), mode="none")
    assert result.status == autograde.TIMEOUT and "in total" in result.detail
    assert [e.points for e in result.exercises] == [1.0, 0.0]


def test_kernel_dies_when_its_lifeline_closes(tmp_path, no_new_processes):
    """Without any parent-death signal: the grader's end of the pipe closing takes down the kernel and its children."""
    path = tmp_path / "x.ipynb"
    path.write_bytes(gc.notebook("x = 1"))
    with sandbox.Kernel(path, LIMITS, MODE) as kernel:
        assert kernel.execute("import subprocess; subprocess.Popen(['sleep', '31417'])", LIMITS.cell).status == "ok"
        assert kernel._exit_status() is None and _processes_mentioning("sleep 31417")
        os.close(kernel._lifeline)
        kernel._lifeline = None
        deadline = time.monotonic() + 20
        while (kernel._exit_status() is None or _processes_mentioning("sleep 31417")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "SIGKILL" in (kernel._exit_status() or "still running")
        assert _processes_mentioning("sleep 31417") == []


def _grade_class_here(subs, course, out, tmp):
    """The grading process of the SIGKILL test: a forked copy of this one, its kernels' files under ``tmp``."""
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None
    sys.stdout = sys.stderr = open(os.devnull, "w")
    grade_folder(subs, course, out, workers=2, limits=LIMITS, mode=MODE)


@pytest.fixture
def marked_tmp():
    """A short temporary folder whose name marks the command lines of the kernels started under it."""
    tmp = Path(tempfile.mkdtemp(prefix="ckt", dir="/tmp"))  # short: Unix socket paths are limited
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_sigkill_halfway_then_resume(course, tmp_path, marked_tmp, no_new_processes):
    names = ["correct", "invalid_json", "partial"]  # the quick invalid one finishes while kernels run
    subs, out, cases = _class(tmp_path, names)
    tmp, token = marked_tmp, marked_tmp.name
    grader = multiprocessing.get_context("fork").Process(target=_grade_class_here, args=(subs, course, out, tmp))
    grader.start()
    deadline = time.monotonic() + 120
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = psutil.Process(grader.pid).children()
    os.kill(grader.pid, signal.SIGKILL)
    grader.join()
    graded = {p.stem: p.read_text() for p in (out / "results").glob("*.json")}
    assert 1 <= len(graded) < len(names)
    if (out / "gradebook.csv").exists():  # never torn; at most the last record is not in it yet
        rows = _read_gradebook(out)
        assert set(rows) <= set(graded) and len(rows) >= len(graded) - 1
    deadline = time.monotonic() + 10
    while (_processes_mentioning(token) or any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE
                                               for w in workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(token) == [], "a kernel outlived the killed grader"
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), "a worker outlived it"

    assert grade_folder(subs, course, out, workers=2, limits=LIMITS, mode=MODE) == 0
    _assert_graded(out, cases)
    for student, text in graded.items():  # graded once, not again
        assert (out / "results" / f"{student}.json").read_text() == text


def test_gradebook_skips_unchanged_and_regrades_changed(course, tmp_path):
    path = tmp_path / "subs" / "zoe.ipynb"
    path.parent.mkdir()
    path.write_bytes(gc.notebook("x = 1"))
    book = Gradebook(tmp_path / "out", course)
    result = grade_notebook(path, course, "zoe", LIMITS, MODE)
    assert result.status == "ok" and result.total == 0 and result.exercises[0].state == "missing"
    book.record(result)
    again = Gradebook(tmp_path / "out", course)
    assert again.done("zoe", path)
    path.write_bytes(gc.notebook("x = 2"))
    assert not again.done("zoe", path)
    _, hw_b = gc.write_solutions(tmp_path / "other")
    with pytest.raises(ValueError, match="hw_a"):
        Gradebook(tmp_path / "out", assignments.load(str(hw_b)))
