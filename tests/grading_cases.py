"""Fixture builders for the autograder tests: two small assignments and adversarial submissions.

Assignment ``hw_a`` checks the real warm-up exercise (1 point) and the test-only
``testing.flip_last`` (2 points, must not use ``flip``); ``hw_b`` checks the
test-only ``testing.double``. :func:`register` adds the test-only exercises to
the check registry (the grader's worker processes are forked, so they see it).

:func:`submissions` returns, for each adversarial case, the notebook bytes and
what the grader must conclude: points per exercise, status, and words the
feedback must contain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import torch

from coursekit import checks
from coursekit.checks import Case, Exercise, Mistake

WARMUP, FLIP, DOUBLE = "warmup.normalize_unit_sphere", "testing.flip_last", "testing.double"


def _flip_cases(gen: torch.Generator) -> list[Case]:
    return [Case("a (2, 3, 5) tensor", (torch.randn(2, 3, 5, generator=gen, dtype=torch.float64),), grad=(0,)),
            Case("a (4, 7) tensor", (torch.randn(4, 7, generator=gen, dtype=torch.float64),))]


def _flip_first(x):
    return x.flip(0)


def _flip_reference(x):
    return x.flip(-1)


def _double_cases(gen: torch.Generator) -> list[Case]:
    return [Case("a (3, 2) tensor", (torch.randn(3, 2, generator=gen),))]


def _double_reference(x):
    return 2 * x


EXERCISES = (
    Exercise(FLIP, 2, _flip_reference, _flip_cases, forbidden=("flip", "fliplr"), what="reversed tensor",
             mistakes=(Mistake("you reversed the first axis; reverse the last one (dim=-1)", _flip_first),)),
    Exercise(DOUBLE, 1, _double_reference, _double_cases, what="doubled tensor"),
)


def register(monkeypatch=None) -> None:
    """Add the test-only exercises to ``coursekit.checks.REGISTRY`` (undone by ``monkeypatch``)."""
    for exercise in EXERCISES:
        if monkeypatch is not None:
            monkeypatch.setitem(checks.REGISTRY, exercise.name, exercise)
        else:
            checks.REGISTRY[exercise.name] = exercise


# ------------------------------------------------------------------ code cells

IMPORTS = "import torch\nfrom coursekit import runtime\nfrom coursekit.checks import check"
WARMUP_OK = '''def normalize_unit_sphere(points):
    """Centre each cloud on its centroid, scale its farthest point to radius 1 (mentions coursekit.geometry)."""
    centred = points - points.mean(dim=1, keepdim=True)
    return centred / centred.norm(dim=-1).amax(dim=1, keepdim=True).unsqueeze(-1)'''
FLIP_OK = '''def flip_last(x):
    index = torch.arange(x.shape[-1] - 1, -1, -1)
    return x[..., index]'''
STUB_WARMUP = 'def normalize_unit_sphere(points):\n    raise NotImplementedError("Exercise: write the body")'
STUB_FLIP = 'def flip_last(x):\n    raise NotImplementedError("Exercise: write the body")'
CHECK_WARMUP = f'check("{WARMUP}", normalize_unit_sphere)'
CHECK_FLIP = f'check("{FLIP}", flip_last)'


def notebook(*cells: str) -> bytes:
    """A v4 notebook of code cells (a cell starting with ``# md`` becomes markdown)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source in cells:
        if source.startswith("# md"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source[4:].strip()))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    return nbformat.writes(nb).encode()


def hw_a(warmup: str = WARMUP_OK, flip: str = FLIP_OK, first: str = "", middle: str = "",
         check_warmup: str = CHECK_WARMUP, check_flip: str = CHECK_FLIP) -> bytes:
    """A submission of hw_a: imports, [first], warm-up, its check, [middle], flip, its check."""
    cells = ["# md # Homework A", IMPORTS, first, warmup, check_warmup, middle, flip, check_flip, "print('done')"]
    return notebook(*(c for c in cells if c))


def hw_b() -> bytes:
    return notebook(IMPORTS, "def double(x):\n    return 2 * x", f'check("{DOUBLE}", double)')


def write_solutions(folder: Path) -> tuple[Path, Path]:
    """Write the solution notebooks ``hw_a.ipynb`` and ``hw_b.ipynb`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hw_a.ipynb").write_bytes(hw_a())
    (folder / "hw_b.ipynb").write_bytes(hw_b())
    return folder / "hw_a.ipynb", folder / "hw_b.ipynb"


# ------------------------------------------------------------- the submissions

@dataclass
class Expected:
    """What the grader must conclude about one submission."""

    warmup: float
    flip: float
    status: str = "ok"
    says: dict[str, list[str]] = field(default_factory=dict)  # exercise (or "" for the file) -> phrases

    @property
    def total(self) -> float:
        return self.warmup + self.flip


MONKEYPATCH_CHECKS = '''import coursekit.checks as ck, coursekit.checks.core as core
passed = lambda *a, **k: core.CheckResult(a[0] if a else "x", True, "passed", 99, 99)
ck.check = ck.evaluate = ck.compare = core.compare = passed
ck.run_answer = core.run_answer = lambda fn, cases: []
check = lambda *a, **k: print("\\u2714 passed (99 points)")'''
PATCH_BUILTINS = '''import builtins, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
torch.Tensor.__eq__ = lambda self, other: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.print = lambda *a, **k: None'''
PRINT_PASSED_WARMUP = f'print("\\u2714 {WARMUP}: passed 3 cases (1 points)")'
PRINT_PASSED_FLIP = f'print("\\u2714 {FLIP}: passed 2 cases (2 points)")\nprint("All tests passed!")'
REFERENCE_IMPORT = '''from coursekit.geometry.normalize import normalize_unit_sphere as reference

def normalize_unit_sphere(points):
    return reference(points)'''
REFERENCE_ALIAS = "from coursekit.geometry.normalize import normalize_unit_sphere"
REFERENCE_HIDDEN_SETUP = "import torch, coursekit.geometry.normalize as g\ntorch.unit = g.normalize_unit_sphere"
REFERENCE_HIDDEN = "def normalize_unit_sphere(points):\n    return torch.unit(points)"
REFERENCE_DYNAMIC = '''def normalize_unit_sphere(points):
    return __import__("coursekit.geometry.normalize", fromlist=["x"]).normalize_unit_sphere(points)'''
FORBIDDEN = "def flip_last(x):\n    return torch.flip(x, (-1,))"
FORBIDDEN_HIDDEN = "def flip_last(x):\n    return getattr(x, 'fl' + 'ip')(-1)"
FLIP_WRONG_DIM = "def flip_last(x):\n    return x[torch.arange(x.shape[0] - 1, -1, -1)]"
RENAMED = WARMUP_OK.replace("def normalize_unit_sphere", "def normalise")
LOOPING_WARMUP = "def normalize_unit_sphere(points):\n    while True:\n        pass"
BACKGROUND = "import subprocess\nsubprocess.Popen(['sleep', '31417'], start_new_session=True)"


def fake_gradebook(out: Path, student: str) -> str:
    """A cell that overwrites the grader's outputs with full marks."""
    record = {"student": student, "assignment": "hw_a", "status": "ok"}
    return (f"import json, pathlib\nout = pathlib.Path({str(out)!r})\n"
            f"(out / 'gradebook.csv').write_text('student,total\\n{student},3\\n')\n"
            f"(out / 'results' / '{student}.json').write_text({json.dumps(json.dumps(record))})\n"
            f"(out / 'feedback' / '{student}.md').write_text('Score: 3 / 3')")


def snoop(paths: list[str]) -> str:
    """A first cell that records which of ``paths`` the kernel can see."""
    return f"import os\nSEEN = [p for p in {paths!r} if os.path.exists(p)]"


SNOOPING_WARMUP = WARMUP_OK.replace('    centred =', '    if SEEN:\n        return points\n    centred =')


def submissions(out: Path, private: list[str], sandboxed: bool) -> dict[str, tuple[bytes, Expected]]:
    """Every adversarial case: student -> (file bytes, expected outcome).

    Args:
        out: the grader's out folder (the fake-gradebook case writes there).
        private: paths a submission must not see (solutions, another student's file).
        sandboxed: whether bubblewrap hides ``private`` (else the snooping case sees them).
    """
    not_ours = "not written in your notebook"
    cases = {
        "correct": (hw_a(), Expected(1, 2, says={WARMUP: ["passed"], FLIP: ["passed"]})),
        "one_cell": (notebook(IMPORTS, f"{WARMUP_OK}\n\n\n{FLIP_OK}", CHECK_WARMUP, CHECK_FLIP), Expected(1, 2)),
        "partial": (hw_a(flip=FLIP_WRONG_DIM), Expected(1, 0, says={FLIP: ["reversed the first axis"]})),
        "empty": (hw_a(STUB_WARMUP, STUB_FLIP), Expected(0, 0, says={WARMUP: ["not implemented yet"]})),
        "loop": (hw_a(middle="while True:\n    pass"), Expected(1, 0, "timeout", {"": ["cell 5 ran longer"]})),
        "loop_in_function": (notebook(IMPORTS, FLIP_OK, CHECK_FLIP, LOOPING_WARMUP, CHECK_WARMUP),
                             Expected(0, 2, "timeout", {WARMUP: ["grading stopped"]})),
        "sys_exit": (hw_a(middle="import sys\nsys.exit(3)"), Expected(1, 0, "kernel died", {"": ["sys.exit"]})),
        "os_exit": (hw_a(middle="import os\nos._exit(0)"), Expected(1, 0, "kernel died", {"": ["exited with code 0"]})),
        "kernel_kill": (hw_a(middle="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                        Expected(1, 0, "kernel died", {"": ["SIGKILL"]})),
        "megabytes": (hw_a(middle="for _ in range(400):\n    print('x' * 10000)"),
                      Expected(1, 2, "too much output", {"": ["MiB"]})),
        "memory": (hw_a(middle="big = torch.ones(6 * 2**30, dtype=torch.uint8)"),
                   Expected(1, 0, "out of memory", {"": ["out of memory"]})),
        "invalid_json": (b'{"cells": [{"cell_type": "code", "source": "1"', Expected(0, 0, "invalid notebook")),
        "non_utf8": (hw_a().replace(b"print('done')", b"print('d\xe9j\xe0')"),
                     Expected(0, 0, "invalid notebook", {"": ["not UTF-8"]})),
        "cheat_checks": (hw_a(STUB_WARMUP, STUB_FLIP, first=MONKEYPATCH_CHECKS), Expected(0, 0)),
        "cheat_builtins": (hw_a(STUB_WARMUP, FLIP_WRONG_DIM, first=PATCH_BUILTINS), Expected(0, 0)),
        "cheat_print_passed": (hw_a(STUB_WARMUP, STUB_FLIP, check_warmup=PRINT_PASSED_WARMUP,
                                    check_flip=PRINT_PASSED_FLIP), Expected(0, 0)),
        "cheat_gradebook": (hw_a(STUB_WARMUP, STUB_FLIP, middle=fake_gradebook(out, "cheat_gradebook")),
                            Expected(0, 0)),
        "cheat_reference_import": (hw_a(REFERENCE_IMPORT),
                                   Expected(0, 2, says={WARMUP: ["coursekit.geometry.normalize", "reference"]})),
        "cheat_reference_alias": (hw_a(REFERENCE_ALIAS), Expected(0, 2, says={WARMUP: [not_ours]})),
        "cheat_reference_hidden": (hw_a(REFERENCE_HIDDEN, first=REFERENCE_HIDDEN_SETUP),
                                   Expected(0, 2, says={WARMUP: ["called coursekit's own code",
                                                                 "coursekit.geometry.normalize"]})),
        "cheat_reference_dynamic": (hw_a(REFERENCE_DYNAMIC), Expected(0, 2, says={WARMUP: ["__import__"]})),
        "forbidden": (hw_a(flip=FORBIDDEN), Expected(1, 0, says={FLIP: ["without `flip`"]})),
        "forbidden_hidden": (hw_a(flip=FORBIDDEN_HIDDEN), Expected(1, 0, says={FLIP: ["without `flip`"]})),
        "renamed": (hw_a(RENAMED, check_warmup=f'check("{WARMUP}", normalise)'),
                    Expected(0, 2, says={WARMUP: ["`normalize_unit_sphere`", "`normalise`"]})),
        "other_assignment": (hw_b(), Expected(0, 0, "wrong assignment", {"": [DOUBLE]})),
        "snoop": (hw_a(SNOOPING_WARMUP, first=snoop(private)), Expected(1 if sandboxed else 0, 2)),
        "background": (hw_a(first=BACKGROUND), Expected(1, 2)),
    }
    return cases


REPRESENTATIVE = ("one_cell", "partial", "loop", "invalid_json", "cheat_checks", "cheat_reference_import",
                  "other_assignment")
