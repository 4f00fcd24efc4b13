"""Assignments, and what a notebook's code defines and uses.

An assignment is a solution notebook (``solutions/01_spatial_transformers.ipynb``,
or its released copy in ``notebooks/``): its exercises are the ones its check
cells name, ``check("stn.affine_grid", affine_grid)``, in order, each with the
function name the student must keep and the points declared next to the check
(``coursekit.checks.get(name).points``).

:class:`NotebookCode` reads a submission statically: which cell last defines each
top-level name, and, for an exercise function, everything it reaches (helpers,
globals, imports). :meth:`NotebookCode.inspect` applies the grading rules to
that code: exercise functions may not use coursekit's own code (except
:mod:`coursekit.runtime`), may not look code up at run time (``__import__``,
``importlib``, ``eval``, ``sys.modules``, ...), and may not use what the
exercise forbids (``Exercise.forbidden``). The kernel-side hook in
:mod:`coursekit.grading.sandbox` backs these rules at run time.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import nbformat

from coursekit import checks

CHECK_CALL = re.compile(r"""(?<![\w.])check\(\s*(['"])([\w.]+)\1\s*,\s*([A-Za-z_]\w*)""")
ENV_PATH = "COURSEKIT_ASSIGNMENTS"
ALLOWED = "coursekit.runtime"  # the only coursekit module an exercise function may use
DYNAMIC_NAMES = frozenset({"__import__", "exec", "eval", "compile", "globals", "vars", "locals",
                           "__builtins__", "get_ipython", "breakpoint"})
DYNAMIC_MODULES = frozenset({"importlib", "builtins", "ctypes", "gc", "inspect", "pydoc", "runpy"})
DYNAMIC_PATHS = frozenset({"sys.modules", "sys.setprofile", "sys.settrace", "sys._getframe",
                           "threading.setprofile", "threading.settrace"})


@dataclass(frozen=True)
class Task:
    """One exercise of an assignment: its check name, the function name, its points."""

    exercise: str
    function: str
    points: float


@dataclass(frozen=True)
class Assignment:
    """A solution notebook's exercises, in notebook order."""

    name: str
    path: Path
    tasks: tuple[Task, ...]

    @property
    def max_points(self) -> float:
        """The assignment's total: the sum of its exercises' points."""
        return sum(t.points for t in self.tasks)


# ------------------------------------------------------------------ notebooks

def read_notebook(path: Path | str) -> nbformat.NotebookNode:
    """Parse a notebook file (raises ``ValueError`` with the reason when it is not a notebook)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise ValueError(f"not a Jupyter notebook ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("source", ""), str):
            raise ValueError(f"not a Jupyter notebook (cell {i + 1} is malformed)")
    return nb


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(index, source)`` of every code cell; ``index`` counts all cells from 0."""
    return [(i, c.get("source", "")) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]


def check_calls(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(exercise, function)`` for each ``check("exercise", function)`` in the code cells."""
    return [(m.group(2), m.group(3)) for _, src in code_cells(nb) for m in CHECK_CALL.finditer(src)]


def exercises_for(notebook: Path | str | nbformat.NotebookNode) -> tuple[Task, ...]:
    """The tasks a solution notebook defines through its check cells (points from the registry)."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else read_notebook(notebook)
    tasks, seen = [], set()
    for exercise, function in check_calls(nb):
        if exercise not in seen:
            seen.add(exercise)
            tasks.append(Task(exercise, function, float(checks.get(exercise).points)))
    return tuple(tasks)


# ---------------------------------------------------------------- discovery

def search_path() -> list[Path]:
    """Folders searched for assignment notebooks, first match wins.

    ``$COURSEKIT_ASSIGNMENTS`` (``os.pathsep``-separated), then ``solutions/`` and
    ``notebooks/`` in the current folder and next to the installed package.
    """
    folders = [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    repo = Path(checks.__file__).resolve().parents[2]
    for base in (Path.cwd(), repo):
        folders += [base / "solutions", base / "notebooks"]
    unique = []
    for folder in folders:
        if folder.is_dir() and folder.resolve() not in [u.resolve() for u in unique]:
            unique.append(folder)
    return unique


def known() -> dict[str, Path]:
    """Assignment name -> notebook, over :func:`search_path` (notebooks with check cells only)."""
    found: dict[str, Path] = {}
    for folder in search_path():
        for path in sorted(folder.glob("*.ipynb")):
            if path.stem not in found and _checks_something(path):
                found[path.stem] = path
    return found


def _checks_something(path: Path) -> bool:
    try:
        return bool(check_calls(read_notebook(path)))
    except (ValueError, OSError):
        return False


def load(name: str) -> Assignment:
    """The assignment called ``name`` (see :func:`known`), or the notebook at path ``name``.

    Raises:
        KeyError: no such assignment; the message lists the known ones.
        ValueError: the notebook names no exercise.
    """
    path = Path(name)
    if not (path.suffix == ".ipynb" and path.is_file()):
        available = known()
        stem = name[:-6] if name.endswith(".ipynb") else name
        if stem not in available:
            raise KeyError(f"no assignment {name!r}; known: {sorted(available) or 'none'} "
                           f"(searched {[str(p) for p in search_path()]}; set ${ENV_PATH} or pass a notebook path)")
        path = available[stem]
    tasks = exercises_for(path)
    if not tasks:
        raise ValueError(f"{path} has no check cells, so it defines no exercise")
    return Assignment(path.stem, path, tasks)


def guess(nb: nbformat.NotebookNode, stem: str) -> Assignment | None:
    """The known assignment a submission belongs to: by file name, else by the exercises it checks."""
    available = known()
    if stem in available:
        return load(stem)
    names = {e for e, _ in check_calls(nb)}
    overlap = {name: len(names & {e for e, _ in check_calls(read_notebook(path))}) for name, path in available.items()}
    best = max(overlap, key=overlap.get, default=None)
    return load(best) if best is not None and overlap[best] else None


# ------------------------------------------------------------ reading code

def python_source(cell_source: str) -> str:
    """The cell as plain Python (IPython magics and ``!`` lines turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(cell_source)
    except Exception:
        return cell_source


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(python_source(source))
    except (SyntaxError, ValueError):
        return None


def is_check_cell(source: str) -> bool:
    """Whether a cell only calls ``check(...)`` (and imports): the grader skips running it."""
    tree = _parse(source)
    if tree is None:
        return False
    calls = 0
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        func = call.func if isinstance(call, ast.Call) else None
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != "check":
            return False
        calls += 1
    return calls > 0


@dataclass
class Binding:
    """The last top-level statement binding a name: its cell and, for imports, the module path."""

    cell: int
    node: ast.AST
    module: str | None = None  # "torch.nn.functional.grid_sample" for ``from torch.nn.functional import grid_sample``


@dataclass
class Definition:
    """What the grader knows statically about an exercise function.

    Attributes:
        ready_after: index of the last cell the function and everything it reaches is defined in.
        problems: rule violations, in words for the student (empty when none).
    """

    ready_after: int
    problems: list[str] = field(default_factory=list)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, looking into if/try/with/for blocks but not into functions or classes."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                yield from _statements(getattr(stmt, block, []))
            for handler in getattr(stmt, "handlers", []):
                yield from _statements(handler.body)


def _targets(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            yield sub.id


def _chains(node: ast.AST) -> Iterator[tuple[str, str]]:
    """``(root name, dotted attributes)`` for every maximal ``name.attr.attr`` chain read in ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Attribute):
            parts, value = [], current
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                yield value.id, ".".join(reversed(parts))
                continue
            stack.append(value)
            continue
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
            yield current.id, ""
            continue
        stack.extend(ast.iter_child_nodes(current))


def _locals(node: ast.AST) -> set[str]:
    """Names local to a function or lambda (arguments and assigned names, nested scopes included)."""
    names = set(_targets(node))
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return names


def _module_problem(dotted: str) -> str | None:
    """Why using the module path ``dotted`` inside an exercise function breaks the rules."""
    if dotted == "coursekit" or dotted.startswith("coursekit."):
        if dotted == ALLOWED or dotted.startswith(ALLOWED + "."):
            return None
        return (f"it uses coursekit's own code (`{dotted}`); an exercise must be solved by your code, "
                f"not by calling the library's reference")
    if dotted.split(".")[0] in DYNAMIC_MODULES or any(dotted == p or dotted.startswith(p + ".") for p in DYNAMIC_PATHS):
        return _dynamic(dotted)
    return None


def _dynamic(name: str) -> str:
    return (f"it uses `{name}`, which looks code up at run time; exercise functions may not do that "
            f"(the grader could not tell whether it reaches coursekit's reference)")


class NotebookCode:
    """The top-level names a notebook defines, for static checks of exercise functions."""

    def __init__(self, nb: nbformat.NotebookNode):
        self.bindings: dict[str, Binding] = {}
        for index, source in code_cells(nb):
            tree = _parse(source)
            if tree is None:
                continue
            for stmt in _statements(tree.body):
                self._bind(index, stmt)

    def _bind(self, cell: int, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bindings[stmt.name] = Binding(cell, stmt)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                name = alias.asname or alias.name.split(".")[0]
                self.bindings[name] = Binding(cell, stmt, alias.name if alias.asname else name)
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                module = "." * stmt.level + (stmt.module or "")
                self.bindings[alias.asname or alias.name] = Binding(cell, stmt, f"{module}.{alias.name}")
        elif isinstance(stmt, ast.Assign):
            self._bind_targets(cell, stmt, stmt.targets)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For)):
            self._bind_targets(cell, stmt, [stmt.target])
        elif isinstance(stmt, ast.With):
            self._bind_targets(cell, stmt, [item.optional_vars for item in stmt.items if item.optional_vars])

    def _bind_targets(self, cell: int, stmt: ast.stmt, targets: list[ast.expr]) -> None:
        for target in targets:
            for name in _targets(target):
                self.bindings[name] = Binding(cell, stmt)

    def inspect(self, function: str, exercise: checks.Exercise) -> Definition | None:
        """Check the exercise function ``function`` and what it reaches; None if it is not defined.

        Args:
            function: the top-level name the exercise is graded under.
            exercise: the exercise (its ``forbidden`` names are enforced).
        """
        if function not in self.bindings:
            return None
        forbidden = tuple(exercise.forbidden)
        problems: list[str] = []
        todo, seen, ready = [function], {function}, self.bindings[function].cell
        while todo:
            name = todo.pop()
            binding = self.bindings[name]
            ready = max(ready, binding.cell)
            if binding.module is not None:
                if name == function:
                    problems.append(f"`{function}` is imported (from `{binding.module}`), not written in your notebook")
                problems += self._use_problems(binding.module, forbidden)
                continue
            node = binding.node
            problems += [self._forbidden(n) for n in checks.forbidden_uses(exercise, ast.unparse(node))]
            local = _locals(node) - {name}
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    for alias in sub.names:
                        problems += self._use_problems(alias.name, forbidden)
                elif isinstance(sub, ast.ImportFrom):
                    for alias in sub.names:
                        problems += self._use_problems(f"{sub.module or ''}.{alias.name}", forbidden)
            for root, attrs in _chains(node):
                if root in local:
                    continue
                other = self.bindings.get(root)
                if other is None:
                    if root in DYNAMIC_NAMES:
                        problems.append(_dynamic(root))
                    continue
                if other.module is not None:
                    problems += self._use_problems(".".join(filter(None, [other.module, attrs])), forbidden)
                    ready = max(ready, other.cell)
                elif root not in seen:
                    seen.add(root)
                    todo.append(root)
        return Definition(ready, list(dict.fromkeys(problems)))

    @staticmethod
    def _forbidden(name: str) -> str:
        return f"this exercise must be solved without `{name}`: write it from the formula"

    def _use_problems(self, dotted: str, forbidden: tuple[str, ...]) -> list[str]:
        found = [self._forbidden(part) for part in dotted.split(".") if part in forbidden]
        problem = _module_problem(dotted)
        return found + ([problem] if problem else [])

