"""Grading submitted notebooks: ``coursekit grade SUBMISSIONS --assignment NAME``.

Layout of a class's submissions (the student id is the file stem or the folder name)::

    SUBMISSIONS/alice.ipynb                          -> student "alice"
    SUBMISSIONS/bob/01_spatial_transformers.ipynb    -> student "bob"
    SUBMISSIONS/carol/anything.ipynb                 -> student "carol" (the folder's only notebook)

Each submission is graded in a fresh kernel (:class:`coursekit.grading.sandbox.Kernel`):

1. The notebook is read; text that is not UTF-8 or not notebook JSON gets the
   status ``invalid notebook``; check cells naming only other exercises get
   ``wrong assignment``.
2. Each exercise function is inspected statically
   (:meth:`~coursekit.grading.assignments.NotebookCode.inspect`): a missing
   (e.g. renamed) function scores 0 and the feedback names the expected name;
   a function that uses coursekit's own code or a forbidden name scores 0 and
   the feedback says why.
3. The code cells run in order (check cells are skipped: their output proves
   nothing). Right after the last cell an exercise function depends on, the
   grader writes fresh cases (seeded per student and exercise, not the
   notebook's public seed) and the kernel calls the function on them; the
   outcomes come back as a file and are judged HERE, in the grader, by
   :func:`coursekit.checks.compare`. Nothing the notebook prints, patches or
   writes can change that judgement.
4. A fault stops the run and keeps the points earned before it: ``timeout``
   (a cell, or the whole notebook, ran too long), ``kernel died`` (the kernel
   exited, was killed, or the notebook called ``sys.exit``), ``out of memory``.
   Printing more than the output limit gives ``too much output`` (points kept).

The out folder holds ``results/<student>.json`` (the full record),
``feedback/<student>.md`` (for the student) and ``gradebook.csv`` (student,
points per exercise, total, max, status, notes), each written atomically after
every student. A re-run skips students whose submission is unchanged since it
was graded (``--regrade`` grades everyone again), so an interrupted run loses
nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Iterable, Iterator

import coursekit
from coursekit import checks

from . import feedback
from .assignments import (Assignment, NotebookCode, Task, check_calls, code_cells, guess, is_check_cell, load,
                          read_notebook)
from .sandbox import (AnswersError, Kernel, Limits, Reply, adopt_orphans, die_with_parent, kill_adopted, read_answers,
                      sandbox_mode, sandbox_warning)

OK = "ok"
TOO_MUCH_OUTPUT = "too much output"
TIMEOUT = "timeout"
OUT_OF_MEMORY = "out of memory"
KERNEL_DIED = "kernel died"
INVALID = "invalid notebook"
WRONG_ASSIGNMENT = "wrong assignment"
GRADER_ERROR = "grader error"  # the grader's fault, not the student's: retried on the next run

ENV_SANDBOX = "COURSEKIT_SANDBOX"  # "auto" (default), "bwrap" (refuse to grade without it) or "none"
ENV_SECRET = "COURSEKIT_GRADE_SECRET"  # mixed into the case seeds; set it to make cases unpredictable
MAX_NOTEBOOK = 100 << 20  # larger files are not read
_MEMORY_TEXT = re.compile(r"can't allocate memory|cannot allocate memory|not enough memory|out of memory", re.I)


@dataclass
class ExerciseResult:
    """One exercise of one submission.

    ``state`` is ``passed``, ``failed``, ``missing`` (no such function),
    ``not allowed`` (broke a rule: coursekit's reference, a forbidden name) or
    ``not graded`` (the run stopped before it).
    """

    exercise: str
    function: str
    points: float
    max_points: float
    state: str
    message: str
    traceback: str | None = None


@dataclass
class CellError:
    """A cell of the submission that raised (1-based cell number)."""

    cell: int
    ename: str
    evalue: str
    traceback: str


@dataclass
class StudentResult:
    """Everything the grader learned about one submission."""

    student: str
    assignment: str
    submission: str
    sha256: str
    status: str = OK
    detail: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    cell_errors: list[CellError] = field(default_factory=list)
    output_bytes: int = 0
    sandbox: str = ""  # "bwrap" or "none" when the notebook ran, "" when it did not need to
    seconds: float = 0.0

    @property
    def total(self) -> float:
        """Points earned."""
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        """Points available."""
        return sum(e.max_points for e in self.exercises)

    def notes(self) -> str:
        """A short line for the gradebook: the fault and any broken rules."""
        parts = [self.detail] if self.detail and self.status != OK else []
        parts += [f"{e.exercise}: not allowed" for e in self.exercises if e.state == "not allowed"]
        return "; ".join(parts)[:300]

    def to_json(self) -> str:
        """The record as stored in ``results/<student>.json``."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "StudentResult":
        """Read a stored record (raises ``ValueError``/``TypeError``/``KeyError`` when malformed)."""
        data = json.loads(text)
        data["exercises"] = [ExerciseResult(**e) for e in data["exercises"]]
        data["cell_errors"] = [CellError(**e) for e in data["cell_errors"]]
        return cls(**data)


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes: a re-run grades a submission again only when this changes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def case_seed(assignment: str, student: str, exercise: str) -> int:
    """The seed of a student's cases: stable across regrades, different from the notebook's seed 0."""
    text = "\0".join([os.environ.get(ENV_SECRET, ""), assignment, student, exercise])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) + 1


# ----------------------------------------------------------- one submission

def _result(task: Task, state: str, message: str, traceback: str | None = None, passed: bool = False) -> ExerciseResult:
    return ExerciseResult(task.exercise, task.function, task.points if passed else 0.0, task.points, state,
                          message, traceback)


def _fault(reply: Reply, where: str, limits: Limits, out_of_time: bool) -> tuple[str, str] | None:
    """``(status, detail)`` when ``reply`` means the run cannot go on."""
    if reply.status == "timeout":
        if out_of_time:
            return TIMEOUT, f"the notebook ran longer than {limits.notebook:g} s in total (stopped in {where})"
        return TIMEOUT, f"{where} ran longer than {limits.cell:g} s (an endless loop?)"
    if reply.status == "died":
        return KERNEL_DIED, f"{reply.evalue} in {where}"
    if reply.status == "error" and reply.ename == "SystemExit":
        return KERNEL_DIED, f"{where} called sys.exit(); the notebook stops there"
    if reply.status == "error" and (reply.ename in ("MemoryError", "OutOfMemoryError")
                                    or _MEMORY_TEXT.search(reply.evalue)):
        return OUT_OF_MEMORY, f"{where} ran out of memory (limit {limits.memory / 2**30:g} GiB): {reply.evalue[:200]}"
    return None


def _module_name(path: str) -> str:
    for base in coursekit.__path__:
        base = os.path.realpath(base)
        if path.startswith(base + os.sep):
            return "coursekit." + path[len(base) + 1:].removesuffix(".py").replace(os.sep, ".")
    return path


def _missing(task: Task, nb) -> ExerciseResult:
    renamed = sorted({f for e, f in check_calls(nb) if e == task.exercise and f != task.function})
    hint = f" (your check cell passes `{renamed[0]}`)" if renamed else ""
    return _result(task, "missing", f"no function `{task.function}` is defined in your notebook{hint}; "
                                    f"keep the name `{task.function}` from the template so the grader can find it")


class _Run:
    """Runs one submission's cells in a kernel and grades its exercises at the right moments."""

    def __init__(self, kernel: Kernel, result: StudentResult, limits: Limits):
        self.kernel, self.result, self.limits = kernel, result, limits
        self.deadline = time.monotonic() + limits.notebook

    def _budget(self) -> tuple[float, bool]:
        left = self.deadline - time.monotonic()
        return max(min(self.limits.cell, left), 0.01), left <= self.limits.cell

    def execute(self, index: int, source: str) -> tuple[str, str] | None:
        timeout, last = self._budget()
        reply = self.kernel.execute(source, timeout)
        fault = _fault(reply, f"cell {index + 1}", self.limits, last and reply.status == "timeout")
        if fault is None and reply.status == "error":
            self.result.cell_errors.append(CellError(index + 1, reply.ename, reply.evalue, reply.traceback))
        return fault

    def grade(self, task: Task, index: int) -> tuple[ExerciseResult, tuple[str, str] | None]:
        exercise = checks.get(task.exercise)
        cases = checks.make_cases(exercise, case_seed(self.result.assignment, self.result.student, task.exercise))
        timeout, last = self._budget()
        reply, answers_file = self.kernel.answers(task.function, cases, exercise.forbidden, task.exercise, timeout)
        where = f"`{task.function}` (graded after cell {index + 1})"
        fault = _fault(reply, where, self.limits, last and reply.status == "timeout")
        if fault:
            return _result(task, "failed", f"grading stopped while running your function: {fault[1]}"), fault
        try:
            answers = read_answers(answers_file, len(cases))
        except AnswersError as exc:
            return _result(task, "failed", f"the grader could not read your function's results: {exc}"), None
        if not answers.defined:
            return _result(task, "missing", f"`{task.function}` is not defined after cell {index + 1}, where it "
                                            f"should be: did the cell that defines it raise an error?"), None
        if answers.library:
            used = ", ".join(sorted({_module_name(p) for p in answers.library}))
            return _result(task, "not allowed", f"it called coursekit's own code ({used}); an exercise must be "
                                                f"solved by your code, not by the library's reference"), None
        if answers.forbidden:
            return _result(task, "not allowed", f"this exercise must be solved without "
                                                f"`{', '.join(answers.forbidden)}`: write it from the formula"), None
        if not answers.profiler_intact:
            return _result(task, "not allowed", "it switched off the Python profiler that the grader uses to see "
                                                "which functions an answer calls"), None
        verdict = checks.compare(exercise, cases, answers.outcomes)
        errors = [o for o in answers.outcomes if o.error is not None]
        memory = [o for o in errors if o.error_type == "MemoryError" or _MEMORY_TEXT.search(o.error or "")]
        fault = None
        if memory:
            fault = OUT_OF_MEMORY, f"{where} ran out of memory (limit {self.limits.memory / 2**30:g} GiB)"
        shown = not verdict.passed and errors and errors[0].error_type != "NotImplementedError"
        traceback = errors[0].traceback if shown else None
        state = "passed" if verdict.passed else "failed"
        return _result(task, state, verdict.message, traceback, verdict.passed), fault


def _read(path: Path, assignment: Assignment, result: StudentResult):
    """The submission as a notebook of this assignment, or None (the result says why)."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK:
            raise ValueError(f"larger than {MAX_NOTEBOOK >> 20} MiB")
        nb = read_notebook(path)
    except (ValueError, OSError) as exc:
        result.status, result.detail = INVALID, f"the file is not a valid notebook: {exc}"
        result.exercises = [_result(t, "not graded", "the submission could not be read as a notebook")
                            for t in assignment.tasks]
        return None
    named = {e for e, _ in check_calls(nb)}
    if named and not named & {t.exercise for t in assignment.tasks}:
        result.status = WRONG_ASSIGNMENT
        result.detail = f"its check cells name {', '.join(sorted(named))}, not the exercises of {assignment.name}"
        result.exercises = [_result(t, "not graded", f"this notebook is not {assignment.name}")
                            for t in assignment.tasks]
        return None
    return nb


def _run_cells(kernel: Kernel, nb, schedule: dict[int, list[Task]], graded: dict[str, ExerciseResult],
         result: StudentResult, limits: Limits) -> None:
    """Run the cells, grading each scheduled task after its cell; stop at the first fault."""
    run = _Run(kernel, result, limits)
    for index, source in code_cells(nb):
        fault = None if is_check_cell(source) else run.execute(index, source)
        for task in schedule.pop(index, []) if not fault else []:
            if fault:  # an earlier exercise of this cell stopped the run
                schedule.setdefault(index, []).append(task)
            else:
                graded[task.exercise], fault = run.grade(task, index)
        if fault:
            result.status, result.detail = fault
            break
    for task in (t for tasks in schedule.values() for t in tasks):
        graded[task.exercise] = _result(task, "not graded", f"the run stopped before this exercise: {result.detail}")


def _grade(path: Path, assignment: Assignment, result: StudentResult, limits: Limits, mode: str) -> None:
    nb = _read(path, assignment, result)
    if nb is None:
        return
    code = NotebookCode(nb)
    graded: dict[str, ExerciseResult] = {}
    schedule: dict[int, list[Task]] = {}  # cell index -> the tasks graded right after it
    for task in assignment.tasks:
        definition = code.inspect(task.function, checks.get(task.exercise))
        if definition is None:
            graded[task.exercise] = _missing(task, nb)
        elif definition.problems:
            graded[task.exercise] = _result(task, "not allowed", "; ".join(definition.problems))
        else:
            schedule.setdefault(definition.ready_after, []).append(task)
    if schedule:
        result.sandbox = mode
        with Kernel(path, limits, mode) as kernel:
            _run_cells(kernel, nb, schedule, graded, result, limits)
            result.output_bytes = kernel.output_bytes
    if result.status == OK and result.output_bytes > limits.output:
        result.status = TOO_MUCH_OUTPUT
        result.detail = (f"the notebook printed {result.output_bytes / 2**20:.1f} MiB; only "
                         f"{limits.output / 2**20:g} MiB of output is accepted and the rest was ignored")
    result.exercises = [graded[t.exercise] for t in assignment.tasks]


def grade_notebook(path: Path | str, assignment: Assignment, student: str, limits: Limits = Limits(),
                   mode: str = "none") -> StudentResult:
    """Grade one submission in this process (its code runs in a sandboxed kernel). Never raises."""
    path = Path(path)
    start = time.monotonic()
    try:
        digest = file_hash(path)
    except OSError:
        digest = ""
    result = StudentResult(student, assignment.name, str(path), digest)
    try:
        _grade(path, assignment, result, limits, mode)
    except Exception as exc:  # a bug or a broken sandbox: never the student's fault, retried next run
        result.status, result.detail = GRADER_ERROR, f"{type(exc).__name__}: {exc}"[:500]
        result.exercises = [_result(t, "not graded", "the grader failed; this submission will be graded again")
                            for t in assignment.tasks]
    result.seconds = round(time.monotonic() - start, 2)
    return result


# ------------------------------------------------------------- a whole class

def student_id(path: Path, assignment: str) -> str:
    """``SUBMISSIONS/<student>/<assignment>.ipynb`` -> folder name; ``SUBMISSIONS/<student>.ipynb`` -> stem."""
    path = Path(path).resolve()
    return path.parent.name if path.stem == assignment else path.stem


def discover(folder: Path, assignment: str) -> tuple[dict[str, Path], list[str]]:
    """Student id -> notebook for every submission in ``folder``, and the entries that were skipped (why)."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            student, path = entry.stem, entry
        elif entry.is_dir():
            wanted = entry / f"{assignment}.ipynb"
            notebooks = [wanted] if wanted.is_file() else sorted(
                p for p in entry.glob("*.ipynb") if not p.name.startswith("."))
            if len(notebooks) != 1:
                problems.append(f"{entry}: expected {assignment}.ipynb or a single notebook, found {len(notebooks)}")
                continue
            student, path = entry.name, notebooks[0]
        else:
            continue
        if student in found:
            problems.append(f"{path}: a second submission of {student} (graded: {found[student]})")
            continue
        found[student] = path
    return found, problems


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` holds either the old or the new content, never a torn file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Gradebook:
    """An out folder: ``results/`` (the records), ``feedback/`` and ``gradebook.csv`` (derived from them)."""

    def __init__(self, out: Path | str, assignment: Assignment):
        self.out, self.assignment = Path(out), assignment
        (self.out / "results").mkdir(parents=True, exist_ok=True)
        (self.out / "feedback").mkdir(exist_ok=True)
        self.results: dict[str, StudentResult] = {}
        for record in sorted((self.out / "results").glob("*.json")):
            try:
                result = StudentResult.from_json(record.read_text(encoding="utf-8"))
            except (ValueError, TypeError, KeyError):
                print(f"warning: ignoring unreadable record {record}", file=sys.stderr)
                continue
            if result.assignment != assignment.name:
                raise ValueError(f"{self.out} holds grades of {result.assignment}, not {assignment.name}; "
                                 f"use another --out folder")
            self.results[result.student] = result

    def done(self, student: str, path: Path) -> bool:
        """Whether ``student`` was graded from exactly this file (grader errors are graded again)."""
        previous = self.results.get(student)
        return previous is not None and previous.status != GRADER_ERROR and previous.sha256 == file_hash(path)

    def record(self, result: StudentResult) -> None:
        """Store one student's result, feedback and the updated gradebook (each atomically)."""
        _write_atomic(self.out / "results" / f"{result.student}.json", result.to_json())
        _write_atomic(self.out / "feedback" / f"{result.student}.md", feedback.markdown(result))
        self.results[result.student] = result
        self.write_csv()

    def write_csv(self) -> None:
        """Rewrite ``gradebook.csv`` from the records: one row per student, sorted."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        names = [t.exercise for t in self.assignment.tasks]
        writer.writerow(["student", *names, "total", "max", "status", "notes"])
        for student in sorted(self.results):
            result = self.results[student]
            points = {e.exercise: e.points for e in result.exercises}
            writer.writerow([student, *(f"{points.get(n, 0.0):g}" for n in names), f"{result.total:g}",
                             f"{self.assignment.max_points:g}", result.status, result.notes()])
        _write_atomic(self.out / "gradebook.csv", buffer.getvalue())


def _serve(conn) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    adopt_orphans()
    import torch

    torch.set_num_threads(1)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        result = grade_notebook(*job)
        kill_adopted()  # whatever the submission left running, even after its kernel died
        conn.send(result)


class Workers:
    """``n`` forked grading processes; a worker that dies is replaced and its student reported, not lost."""

    def __init__(self, n: int):
        self._context = multiprocessing.get_context("fork")
        self._idle = [self._spawn() for _ in range(max(1, n))]
        self._all = list(self._idle)

    def _spawn(self):
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        return process, mine

    def map(self, jobs: Iterable[tuple]) -> Iterator[tuple[tuple, StudentResult | None]]:
        """Yield ``(job, result)`` as results arrive; ``result`` is None when the worker crashed."""
        todo, busy = list(jobs), {}
        while todo or busy:
            while todo and self._idle:
                worker = self._idle.pop()
                job = todo.pop(0)
                worker[1].send(job)
                busy[worker] = job
            wait([w[1] for w in busy] + [w[0].sentinel for w in busy])
            for worker in list(busy):
                process, conn = worker
                if conn.poll():
                    try:
                        result = conn.recv()
                    except (EOFError, OSError):
                        result = None
                    if result is not None:
                        job = busy.pop(worker)
                        self._idle.append(worker)
                        yield job, result
                        continue
                if not process.is_alive():
                    job = busy.pop(worker)
                    conn.close()
                    replacement = self._spawn()
                    self._all.append(replacement)
                    self._idle.append(replacement)
                    yield job, None

    def close(self) -> None:
        """Stop every worker: idle ones exit on their own, busy ones (after Ctrl-C) are killed."""
        for _, conn in self._all:
            conn.close()
        for process, _ in self._all:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()


def grade_folder(folder: Path | str, assignment: Assignment, out: Path | str, workers: int = 1,
                 limits: Limits = Limits(), regrade: bool = False, mode: str = "none") -> int:
    """Grade every submission in ``folder`` into ``out``; returns 0, or 1 when some could not be graded."""
    submissions, problems = discover(Path(folder), assignment.name)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    try:
        book = Gradebook(out, assignment)
    except ValueError as exc:
        print(f"coursekit grade: {exc}", file=sys.stderr)
        return 2
    todo = [(path, assignment, student, limits, mode) for student, path in submissions.items()
            if regrade or not book.done(student, path)]
    print(f"{assignment.name}: {len(submissions)} submissions, {len(submissions) - len(todo)} already graded, "
          f"grading {len(todo)} with {workers} worker(s)", file=sys.stderr)
    failed = 0
    if todo:
        from tqdm.auto import tqdm

        pool = Workers(min(workers, len(todo)))
        try:
            with tqdm(total=len(todo), desc=f"grading {assignment.name}", unit="student") as bar:
                for job, result in pool.map(todo):
                    result = result or _crashed(*job)
                    book.record(result)
                    failed += result.status == GRADER_ERROR
                    bar.update()
                    bar.write(f"{result.student}: {result.total:g} / {result.max_points:g} ({result.status})")
        finally:
            pool.close()
    book.write_csv()
    counts = Counter(r.status for r in book.results.values())
    print(f"gradebook: {book.out / 'gradebook.csv'} ({', '.join(f'{n} {s}' for s, n in counts.most_common())}); "
          f"feedback: {book.out / 'feedback'}", file=sys.stderr)
    return 1 if failed else 0


def grade_command(path, assignment: str | None = None, out=None, workers: int = 1, timeout: float | None = None,
                  regrade: bool = False) -> int:
    """``coursekit grade``: a folder of submissions (instructor) or one notebook (student).

    Args:
        path: a folder of submissions, or one notebook.
        assignment: assignment name or solution notebook path; for one notebook it is
            guessed from the file name or its check cells when omitted.
        out: folder for gradebook, feedback and records (a folder defaults to
            ``grades/<assignment>``; one notebook writes nothing unless given).
        workers: parallel grading processes.
        timeout: seconds per cell (the whole notebook gets ten times as much).
        regrade: grade again students already in the out folder.

    Returns:
        0 on success, 1 when a submission could not be graded (grader error),
        2 on a usage error (message on stderr).
    """
    path, workers = Path(path), workers or 1
    limits = Limits() if timeout is None else Limits(cell=float(timeout), notebook=10 * float(timeout))
    try:
        mode = sandbox_mode(os.environ.get(ENV_SANDBOX, "auto"))
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if path.is_dir():
            if assignment is None:
                raise ValueError("grading a folder needs --assignment NAME")
            chosen = load(assignment)
        else:
            chosen = load(assignment) if assignment is not None else _guess(path)
    except (KeyError, ValueError, OSError, RuntimeError) as exc:
        print(f"coursekit grade: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    warning = sandbox_warning(mode)
    if warning:
        print(warning, file=sys.stderr)
    if path.is_dir():
        return grade_folder(path, chosen, out or Path("grades") / chosen.name, workers, limits, regrade, mode)
    student = student_id(path, chosen.name)
    try:
        book = Gradebook(out, chosen) if out else None
    except ValueError as exc:
        print(f"coursekit grade: {exc}", file=sys.stderr)
        return 2
    if book is not None and not regrade and book.done(student, path):
        result = book.results[student]
        print(f"{student} was already graded from this file (use --regrade to grade again)", file=sys.stderr)
    else:
        result = _grade_in_worker(path, chosen, student, limits, mode)
        if book is not None:
            book.record(result)
    print(feedback.table(result))
    return 1 if result.status == GRADER_ERROR else 0


def _grade_in_worker(path: Path, assignment: Assignment, student: str, limits: Limits, mode: str) -> StudentResult:
    """:func:`grade_notebook` in a worker process, which also cleans up whatever the submission left running."""
    job = (path, assignment, student, limits, mode)
    pool = Workers(1)
    try:
        return next(result for _, result in pool.map([job])) or _crashed(*job)
    finally:
        pool.close()


def _crashed(path: Path, assignment: Assignment, student: str, limits: Limits, mode: str) -> StudentResult:
    return StudentResult(student, assignment.name, str(path), file_hash(path), GRADER_ERROR,
                         "the grading process crashed; this submission will be graded again",
                         [_result(t, "not graded", "the grader crashed") for t in assignment.tasks], sandbox=mode)


def _guess(path: Path) -> Assignment:
    try:
        nb = read_notebook(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    found = guess(nb, path.stem)
    if found is None:
        raise ValueError(f"cannot tell which assignment {path} is; pass --assignment NAME")
    return found
