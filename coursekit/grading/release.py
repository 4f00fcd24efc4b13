"""The release: student notebooks generated from the solution notebooks.

In code cells, a solution region is the lines between a line ``# BEGIN SOLUTION``
and a line ``# END SOLUTION`` (indented like the code around them). The release

* replaces each region, markers included, by one line
  ``raise NotImplementedError("Exercise: ...")`` at the BEGIN marker's
  indentation (the signature and docstring above the marker stay);
* clears outputs and execution counts of exercise cells and of check cells
  (cells calling ``check(``); other cells keep their outputs so that students
  see the figures and numbers they should get;
* removes saved widget state (``metadata.widgets``) everywhere, since it
  stops k3d from rendering in JupyterLab.

The output is deterministic (same input, same bytes) and written atomically:
a malformed notebook raises :class:`ReleaseError` naming the notebook and cell,
and nothing is written.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nbformat

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
_MARKER_LIKE = re.compile(r"#+\s*(begin|end)[\s_-]*solutions?\s*:?", re.IGNORECASE)
_CHECK_CALL = re.compile(r"(?<![\w.])check\s*\(")
_DEF = re.compile(r"^(\s*)(?:async\s+)?(?:def|class)\s+(\w+)")


class ReleaseError(ValueError):
    """A solution notebook cannot be released; the message names the notebook and cell."""


def _stub(indent: str, lines: list[str], begin: int) -> str:
    """The line that replaces a solution region starting at ``lines[begin]``."""
    name = None
    for line in reversed(lines[:begin]):
        match = _DEF.match(line)
        if match and len(match.group(1)) < len(indent):
            name = match.group(2)
            break
    what = f"write the body of {name}" if name else "write this code"
    return f'{indent}raise NotImplementedError("Exercise: {what}")'


def release_source(source: str) -> tuple[str, bool]:
    """Replace the solution regions of one code cell's source.

    Returns:
        ``(new_source, had_regions)``.

    Raises:
        ReleaseError: nested, unbalanced or malformed markers (message without location).
    """
    lines = source.split("\n")
    out: list[str] = []
    begin: int | None = None
    found = False
    for i, line in enumerate(lines):
        text = line.strip()
        if text == BEGIN:
            if begin is not None:
                raise ReleaseError(f"line {i + 1}: nested {BEGIN} (the one on line {begin + 1} is not closed)")
            begin = i
            found = True
            out.append(_stub(line[:len(line) - len(line.lstrip())], lines, i))
        elif text == END:
            if begin is None:
                raise ReleaseError(f"line {i + 1}: {END} without a {BEGIN} before it")
            begin = None
        elif _MARKER_LIKE.fullmatch(text):
            raise ReleaseError(f"line {i + 1}: {line.strip()!r} looks like a solution marker; "
                               f"write exactly {BEGIN!r} or {END!r} on a line of its own")
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise ReleaseError(f"line {begin + 1}: {BEGIN} is never closed by {END}")
    return "\n".join(out), found


def is_check_cell(source: str) -> bool:
    """Whether a code cell's source calls ``check(`` (a check cell)."""
    return bool(_CHECK_CALL.search(source))


def _has_marker(source: str) -> bool:
    return any(_MARKER_LIKE.fullmatch(line.strip()) for line in source.split("\n"))


def release_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new object; ``nb`` is untouched).

    Raises:
        ReleaseError: naming ``name`` and the cell index.
    """
    nb = nbformat.from_dict(nb)  # deep copy
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("widgets", None)
        if cell.cell_type != "code":
            if _has_marker(cell.source):
                raise ReleaseError(f"{name}, cell {index}: solution markers in a {cell.cell_type} cell; "
                                   "only code cells may hold solutions")
            continue
        try:
            source, exercise = release_source(cell.source)
        except ReleaseError as exc:
            raise ReleaseError(f"{name}, cell {index}: {exc}") from None
        if exercise or is_check_cell(source):
            cell.source = source
            cell.outputs = []
            cell.execution_count = None
    return nb


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read and validate a notebook; errors become :class:`ReleaseError` naming the file."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        raise ReleaseError(f"{path}: not a valid notebook ({type(exc).__name__}: {exc})") from None
    return nb


def write_atomic(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def dumps(nb: nbformat.NotebookNode) -> str:
    """The canonical text of a notebook (sorted keys, one-space indent, final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def released(solutions_dir: str | os.PathLike) -> dict[str, str]:
    """``{file name: student notebook text}`` for every ``*.ipynb`` in ``solutions_dir``."""
    folder = Path(solutions_dir)
    if not folder.is_dir():
        raise ReleaseError(f"{folder}: no such folder")
    return {p.name: dumps(release_notebook(read_notebook(p), p.name))
            for p in sorted(folder.glob("*.ipynb"))}


def release(solutions_dir: str | os.PathLike, notebooks_dir: str | os.PathLike) -> list[Path]:
    """Write the student version of every solution notebook into ``notebooks_dir``.

    All notebooks are released in memory first, so one malformed notebook
    writes nothing. Files whose content is unchanged are not rewritten.

    Returns:
        The paths written.
    """
    texts = released(solutions_dir)
    written = []
    for name, text in texts.items():
        target = Path(notebooks_dir) / name
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        write_atomic(text, target)
        written.append(target)
    return written


def differences(solutions_dir: str | os.PathLike, notebooks_dir: str | os.PathLike) -> list[str]:
    """How ``notebooks_dir`` differs from the release of ``solutions_dir`` (empty: in sync)."""
    texts = released(solutions_dir)
    folder = Path(notebooks_dir)
    problems = []
    for name, text in texts.items():
        target = folder / name
        if not target.exists():
            problems.append(f"{target} is missing")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target} differs from the release of {Path(solutions_dir) / name}")
    for extra in sorted(folder.glob("*.ipynb")):
        if extra.name not in texts:
            problems.append(f"{extra} has no solution notebook")
    return problems
