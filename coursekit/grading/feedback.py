"""What the student reads: the feedback file and the score table.

Messages come from :func:`coursekit.checks.compare` and name what is wrong
("normalised cloud has shape (2, 7, 3), expected (2, 7, 4)"). Feedback never
shows the reference's values: numbers the checks quote as "expected" are
removed by :func:`redact` (shapes and dtypes stay, the student needs them),
and nothing else from the grader's side of the comparison is included.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .autograde import StudentResult

_NUMBER = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)|True|False"
_EXPECTED_NUMBER = re.compile(rf",? expected (?:{_NUMBER})(?=[;,)\s]|$)")
_ERROR_SIZE = re.compile(rf"; max abs error (?:{_NUMBER})")
TRACEBACK_SHOWN = 3000  # characters of a traceback shown in feedback


def redact(message: str) -> str:
    """``message`` without the reference values it quotes (shapes and dtypes are kept).

    >>> redact("x is wrong at 3 of 8 entries (first at index (0, 1): got 0.5, expected 0.25; max abs error 0.3)")
    'x is wrong at 3 of 8 entries (first at index (0, 1): got 0.5; expected value hidden)'
    """
    return _EXPECTED_NUMBER.sub("; expected value hidden", _ERROR_SIZE.sub("", message))


def _fence(text: str) -> str:
    ticks = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}text\n{text.rstrip()}\n{ticks}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(result: "StudentResult") -> str:
    """The feedback file of one submission (Markdown)."""
    lines = [f"# {result.assignment}: feedback for {result.student}", "",
             f"**Score: {result.total:g} / {result.max_points:g}** (status: {result.status})", ""]
    if result.detail:
        lines += [f"> {_cell(result.detail)}", ""]
    lines += ["| exercise | result | points |", "| --- | --- | --- |"]
    lines += [f"| `{e.exercise}` | {e.state} | {e.points:g} / {e.max_points:g} |" for e in result.exercises]
    for e in result.exercises:
        lines += ["", f"## `{e.exercise}` ({e.state}, {e.points:g} / {e.max_points:g})", "",
                  f"Function `{e.function}`: {redact(e.message)}"]
        if e.traceback:
            lines += ["", "Your function's error:", "", _fence(e.traceback[-TRACEBACK_SHOWN:])]
    if result.cell_errors:
        lines += ["", "## Cells that raised an error", ""]
        for err in result.cell_errors:
            lines += [f"<details><summary>cell {err.cell}: {_cell(err.ename)}: {_cell(err.evalue[:200])}</summary>",
                      "", _fence(err.traceback[-TRACEBACK_SHOWN:]), "", "</details>", ""]
    if result.sandbox:
        where = "a bubblewrap sandbox" if result.sandbox == "bwrap" else "a kernel without sandbox"
        lines += ["", f"_Graded in a fresh kernel ({where}) in {result.seconds:g} s; "
                      f"printed output: {result.output_bytes / 1024:.0f} KiB._", ""]
    else:
        lines += ["", "_Graded without running the notebook._", ""]
    return "\n".join(lines)


def table(result: "StudentResult") -> str:
    """The score table printed by ``coursekit grade one.ipynb`` (plain text)."""
    width = max([len(e.exercise) for e in result.exercises] + [len("exercise")])
    rows = [f"{result.student} - {result.assignment} (status: {result.status})"]
    if result.detail:
        rows.append(f"  {result.detail}")
    rows.append(f"  {'exercise':<{width}}  {'points':>9}  result")
    for e in result.exercises:
        rows.append(f"  {e.exercise:<{width}}  {f'{e.points:g} / {e.max_points:g}':>9}  {e.state}: {redact(e.message)}")
    rows.append(f"  {'total':<{width}}  {f'{result.total:g} / {result.max_points:g}':>9}")
    return "\n".join(rows)
