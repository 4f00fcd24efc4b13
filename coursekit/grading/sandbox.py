r"""One untrusted notebook in a fresh, confined Jupyter kernel, and plain data back out.

The autograder runs every submission in its own kernel (:class:`Kernel`), started
in a temporary folder that holds nothing but a copy of that submission. The
student's code runs there; the grader talks to it over Jupyter's ``ipc``
transport (Unix sockets in that folder), never over the network.

What is enforced, and by what
=============================

=============================  ===========================================  ===========================
limit                          with bubblewrap                              without
=============================  ===========================================  ===========================
wall clock per cell, notebook  the grader stops waiting, kills the kernel   same
memory                         ``RLIMIT_AS`` (``Limits.memory``)            same
file size                      ``RLIMIT_FSIZE``, no core dumps              same
printed output                 counted; over ``Limits.output``: a status    same
kernel outliving the grader    a lifeline pipe, ``--die-with-parent``      pipe, ``PR_SET_PDEATHSIG``
processes the notebook starts  own PID namespace: die with the kernel       tree, group, orphans killed
solutions, other students      not mounted (see below)                      **readable**
network                        own namespace, loopback only                 open
privileges                     own user namespace, no capabilities          the grader's user
environment                    cleared, then a short fixed list             same list
=============================  ===========================================  ===========================

The sandbox sees only the OS (``/usr``, ``/etc``), the Python installation and
the ``coursekit`` package (read-only), and its own temporary folder: the copy
of the submission, ``HOME``, the answer files; ``/tmp`` is private.

Bubblewrap (``bwrap``, Debian package ``bubblewrap``) is used when it is
installed and works; :func:`sandbox_mode` probes it once. Without it the
grader still enforces the time, memory and output limits and kills what the
notebook started, but a hostile submission can read any file the grader's
user can read: grade untrusted work only where ``bwrap`` is available.

Getting answers out
===================

Before any student code runs, the kernel executes :data:`PREAMBLE`: plain
torch code (it does not import :mod:`coursekit.checks`) that keeps private
references to ``torch.save``, ``torch.load``, ``torch.autograd.grad`` and the
tensor methods it needs, so that later monkeypatching by the notebook cannot
change what it writes. For each exercise the grader writes the cases
(``torch.save`` of plain tensors) and asks the kernel to call the student's
function on them, with a profiling hook that records calls into ``coursekit``
(other than :mod:`coursekit.runtime`) and into functions an exercise forbids.
The outcomes come back as a file that :func:`read_answers` loads with
``torch.load(weights_only=True)`` and checks field by field; the comparison
with the reference happens in the grader (``coursekit.checks.compare``).
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import psutil
import torch

from coursekit.checks import Case, Outcome

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_MESSAGE = 32 << 20  # the largest kernel message the grader accepts (protects its memory)
MAX_ANSWERS = 64 << 20  # the largest answers file the grader loads
TRACEBACK_KEEP = 3000  # characters of a traceback kept for feedback


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        cell: seconds one cell (or one exercise's evaluation) may run.
        notebook: seconds the whole notebook may run, evaluations included.
        memory: bytes of address space (``RLIMIT_AS``); torch needs at least ~700 MiB.
        output: bytes of printed output accepted; more gives the status "too much output" (points kept).
        file_size: the largest file the notebook may write (``RLIMIT_FSIZE``).
        startup: seconds for the kernel to start and import torch (not the student's time).
    """

    cell: float = 120.0
    notebook: float = 1200.0
    memory: int = 4 << 30
    output: int = 1 << 20
    file_size: int = 256 << 20
    startup: float = 120.0


@dataclass
class Reply:
    """How one execution ended.

    ``status`` is ``"ok"``, ``"error"`` (the code raised: ``ename``, ``evalue``,
    ``traceback``), ``"timeout"`` or ``"died"`` (``evalue`` says how).
    """

    status: str
    ename: str = ""
    evalue: str = ""
    traceback: str = ""


# ------------------------------------------------------------------ the sandbox

def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _system_binds() -> list[str]:
    """Read-only binds of the OS and the Python installation that runs the kernel."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    import coursekit

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *coursekit.__path__}
    if os.environ.get("COURSEKIT_DATA"):
        paths.add(os.environ["COURSEKIT_DATA"])
    for path in sorted(paths):
        real = os.path.realpath(path)
        if os.path.isdir(real) and not real.startswith("/usr/"):
            args += ["--ro-bind", real, real]
            if os.path.abspath(path) != real:
                args += ["--ro-bind", real, os.path.abspath(path)]
    return args


def _bwrap_command(root: Path) -> list[str]:
    """``bwrap`` arguments confining a process to ``root`` plus read-only system paths."""
    return [_bwrap(), *_system_binds(),
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", str(root), str(root),
            "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--chdir", str(root / "work"), "--clearenv"]


@lru_cache(maxsize=None)
def sandbox_mode(requested: str = "auto") -> str:
    """``"bwrap"`` when bubblewrap is installed and works here, else ``"none"``.

    Args:
        requested: ``"auto"``, ``"bwrap"`` (raise if unusable) or ``"none"``.
    """
    if requested == "none":
        return "none"
    if requested not in ("auto", "bwrap"):
        raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none', got {requested!r}")
    problem = "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if _bwrap():
        with tempfile.TemporaryDirectory(prefix="ck-probe-") as tmp:
            (Path(tmp) / "work").mkdir()
            try:
                probe = subprocess.run([*_bwrap_command(Path(tmp)), sys.executable, "-c", "print('ok')"],
                                       capture_output=True, text=True, timeout=60)
                works, why = probe.stdout.strip() == "ok", probe.stderr.strip()[:300]
            except subprocess.TimeoutExpired:
                works, why = False, "a test run did not finish in 60 s"
        if works:
            return "bwrap"
        problem = f"bwrap does not work here: {why}"
    if requested == "bwrap":
        raise RuntimeError(problem)
    return "none"


def sandbox_warning(mode: str) -> str | None:
    """What an instructor must know when grading runs without bubblewrap."""
    if mode == "bwrap":
        return None
    return ("warning: grading WITHOUT bubblewrap: time, memory and output limits hold, but submissions can "
            "read every file this user can read (solutions, other students, the gradebook). "
            "Install bubblewrap (apt-get install bubblewrap) before grading untrusted work.")


# Sets the resource limits and the parent-death signal, then becomes the kernel (or bwrap).
# A separate interpreter instead of ``preexec_fn``, which is unsafe in a process with threads.
_LAUNCHER = """\
import ctypes, os, resource, signal, sys
memory, file_size, parent = (int(a) for a in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the grader
except AttributeError:
    pass
if os.getppid() != parent:
    os._exit(1)
os.execv(sys.argv[4], sys.argv[4:])
"""


# The kernel itself: a thread blocks on the read end of a pipe whose only write end the
# grading process holds, and kills the kernel's process group when it reads end-of-file (the
# grader closed it or died). Parent-death signals alone leave a window: bwrap sets its own
# inside the sandbox a moment after it starts, and a grader killed in that moment left a kernel.
_KERNEL = """\
import os, signal, sys, threading
lifeline = int(sys.argv.pop(1))
def watch():
    try:
        while os.read(lifeline, 1):
            pass
    finally:
        os.killpg(0, signal.SIGKILL)
threading.Thread(target=watch, daemon=True, name="lifeline").start()
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def _kernel_env(root: Path) -> dict[str, str]:
    home = root / "home"
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".matplotlib"),
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "COURSEKIT_PROFILE": "fast", "JUPYTER_PLATFORM_DIRS": "1",
    }
    if os.environ.get("COURSEKIT_DATA"):
        env["COURSEKIT_DATA"] = os.environ["COURSEKIT_DATA"]
    return env


# ------------------------------------------------------------- the kernel side

PREAMBLE = r'''
def _make_grader(namespace, package, allowed):
    import os, sys, threading, traceback
    import numpy, torch
    Tensor, save, load, grad = torch.Tensor, torch.save, torch.load, torch.autograd.grad
    mul, total, randn, Generator = torch.mul, torch.sum, torch.randn, torch.Generator
    from_numpy, float64 = torch.from_numpy, torch.float64
    detach, clone, cpu, to, requires_grad_, as_subclass = (
        Tensor.detach, Tensor.clone, Tensor.cpu, Tensor.to, Tensor.requires_grad_, Tensor.as_subclass)
    ndarray, copy = numpy.ndarray, numpy.ndarray.copy
    getprofile, setprofile, thread_setprofile = sys.getprofile, sys.setprofile, threading.setprofile
    format_exception, BaseException_, callable_, getattr_ = traceback.format_exception, BaseException, callable, getattr
    isinstance_, type_, str_, tuple_, list_, set_, len_ = isinstance, type, str, tuple, list, set, len
    enumerate_, sorted_, frozenset_ = enumerate, sorted, frozenset
    scalars = (bool, int, float, str, type(None))
    libraries = tuple_(set_(p.rstrip(os.sep) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)))

    def plain(value, depth=0):
        # Only tensors, Python scalars and tuples/lists of them leave the kernel.
        if isinstance_(value, Tensor):
            return as_subclass(clone(cpu(detach(value))), Tensor)
        if isinstance_(value, ndarray):
            try:
                return from_numpy(copy(value))
            except BaseException_:
                pass
        elif type_(value) in scalars:
            return value[:10000] if type_(value) is str else value
        elif isinstance_(value, (tuple_, list_)) and depth < 8 and len_(value) <= 1000:
            items = [plain(item, depth + 1) for item in value]
            return items if isinstance_(value, list_) else tuple_(items)
        return {"opaque": str_(type_(value).__name__)[:64]}

    def argument(value, requires_grad):
        if isinstance_(value, Tensor):
            return requires_grad_(clone(detach(value)), requires_grad)
        if isinstance_(value, ndarray):
            return copy(value)
        return value

    def cotangent(like):
        return to(randn(like.shape, generator=Generator().manual_seed(12345), dtype=float64), like.dtype)

    def message(exc):
        try:
            return str_(exc)[:2000]
        except BaseException_:
            return "(the exception could not be printed)"

    def run(name, cases_path, out_path, forbidden):
        forbidden = frozenset_(forbidden)
        report = {"defined": False, "outcomes": [], "library": [], "forbidden": [], "profiler": True}
        fn = namespace.get(name)
        if callable_(fn):
            report["defined"] = True
            cases = load(cases_path, weights_only=False)
            library, used, outcomes = set_(), set_(), report["outcomes"]

            def hook(frame, event, arg):
                if event == "call":
                    code = frame.f_code
                    where = code.co_filename
                    if where.startswith(package):
                        if where not in allowed:
                            library.add(where)
                    elif code.co_name in forbidden and where.startswith(libraries):
                        used.add(code.co_name)
                elif event == "c_call" and forbidden:
                    called = getattr_(arg, "__name__", None)
                    if called in forbidden:
                        used.add(called)

            setprofile(hook)
            thread_setprofile(hook)
            try:
                for case in cases:
                    try:
                        args = [argument(a, i in case["grad"]) for i, a in enumerate_(case["args"])]
                        out = fn(*args, **{k: argument(v, False) for k, v in case["kwargs"].items()})
                        grads = None
                        if case["grad"]:
                            if not isinstance_(out, Tensor):
                                raise TypeError(f"expected a tensor output to differentiate, got {type_(out).__name__}")
                            if not out.requires_grad:
                                grads = tuple_(None for _ in case["grad"])
                            else:
                                inputs = [args[i] for i in case["grad"]]
                                got = grad(total(mul(out, cotangent(out))), inputs, allow_unused=True)
                                grads = tuple_(None if g is None else plain(g) for g in got)
                        outcomes.append({"output": plain(out), "grads": grads})
                    except BaseException_ as exc:
                        where = exc.__traceback__.tb_next  # from the student's frames on
                        outcomes.append({"error": message(exc), "error_type": str_(type_(exc).__name__),
                                         "traceback": "".join(format_exception(type_(exc), exc, where))[-4000:]})
            finally:
                report["profiler"] = getprofile() is hook
                setprofile(None)
                thread_setprofile(None)
            report["library"], report["forbidden"] = sorted_(library), sorted_(used)
        save(report, out_path)

    return run


__GRADER__ = _make_grader(globals(), __PACKAGE__, __ALLOWED__)
del _make_grader
'''


def preamble(name: str) -> str:
    """The preamble binding the answer runner to ``name`` in the kernel's namespace."""
    import coursekit

    package = tuple(os.path.realpath(p) + os.sep for p in coursekit.__path__)
    allowed = tuple(os.path.join(p, "runtime.py") for p in package)
    return (PREAMBLE.replace("__GRADER__", name).replace("__PACKAGE__", repr(package))
            .replace("__ALLOWED__", repr(frozenset(allowed))))


# ------------------------------------------------------------- the grader side

class Kernel:
    """A fresh IPython kernel in a temporary folder holding one submission.

    Use as a context manager; leaving it kills the kernel with everything it
    started and deletes the folder.

    Args:
        submission: the notebook file; only a copy of it is placed in the kernel's folder.
        limits: the resource limits.
        mode: ``"bwrap"`` or ``"none"`` (see :func:`sandbox_mode`).
    """

    def __init__(self, submission: Path, limits: Limits, mode: str):
        self.limits, self.mode = limits, mode
        self.root = Path(tempfile.mkdtemp(prefix="ck-"))
        for sub in ("work", "home", "io", "conn"):
            (self.root / sub).mkdir()
        shutil.copyfile(submission, self.root / "work" / Path(submission).name)
        self.output_bytes = 0
        self.grader = "_grader_" + secrets.token_hex(8)
        self._proc: subprocess.Popen | None = None
        self._lifeline: int | None = None
        self._context = None
        self._sockets: dict[str, Any] = {}

    # -- lifecycle

    def __enter__(self) -> "Kernel":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        import zmq
        from jupyter_client.connect import write_connection_file
        from jupyter_client.session import Session

        key = secrets.token_hex(16).encode()
        conn_file, info = write_connection_file(str(self.root / "conn" / "kernel.json"), transport="ipc",
                                                ip=str(self.root / "conn" / "k"), key=key)
        lifeline, self._lifeline = os.pipe()
        kernel = [sys.executable, "-c", _KERNEL, str(lifeline), "-f", conn_file]
        env = _kernel_env(self.root)
        if self.mode == "bwrap":
            setenv = [arg for name, value in env.items() for arg in ("--setenv", name, value)]
            inner = [*_bwrap_command(self.root), *setenv, "--setenv", "TMPDIR", "/tmp", *kernel]
        else:
            (self.root / "tmp").mkdir()
            env["TMPDIR"] = str(self.root / "tmp")
            inner = kernel
        command = [sys.executable, "-S", "-c", _LAUNCHER, str(self.limits.memory), str(self.limits.file_size),
                   str(os.getpid()), *inner]
        try:
            self._proc = subprocess.Popen(command, cwd=self.root / "work", env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True, pass_fds=(lifeline,))
        finally:
            os.close(lifeline)
        self.session = Session(key=key, signature_scheme=info["signature_scheme"])
        self._context = zmq.Context()
        self._context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        self._context.setsockopt(zmq.LINGER, 0)
        shell = self._context.socket(zmq.DEALER)
        shell.connect(f"ipc://{info['ip']}-{info['shell_port']}")
        iopub = self._context.socket(zmq.SUB)
        iopub.setsockopt(zmq.SUBSCRIBE, b"")
        iopub.connect(f"ipc://{info['ip']}-{info['iopub_port']}")
        self._sockets = {"shell": shell, "iopub": iopub}
        reply = self._request("kernel_info_request", {}, self.limits.startup)
        if reply.status != "ok":
            raise RuntimeError(f"the grading kernel did not start ({self.mode} sandbox): {reply.status} {reply.evalue}")
        reply = self.execute(preamble(self.grader), self.limits.startup)
        if reply.status != "ok":
            raise RuntimeError(f"the grading kernel could not import torch: {reply.status} {reply.ename} "
                               f"{reply.evalue}")
        # Warm-up: importing the course package is not the student's time (a failure shows in their cell).
        reply = self.execute("import coursekit.checks", self.limits.startup)
        if reply.status in ("died", "timeout"):
            raise RuntimeError(f"the grading kernel could not import coursekit: {reply.status} {reply.evalue}")

    def close(self) -> None:
        """Kill the kernel and whatever it started; delete its folder."""
        if self._proc is not None:
            _kill_tree(self._proc.pid)
            self._proc.wait()
            self._proc = None
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._context is not None:
            self._context.destroy(linger=0)
            self._context = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _exit_status(self) -> str | None:
        """How the kernel ended, or None while it runs (the process is left unreaped)."""
        info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            code = info.si_status
            if self.mode == "bwrap" and code > 128:  # bwrap reports a signal as 128 + n
                return _signal_text(code - 128)
            return f"the kernel exited with code {code} (sys.exit, os._exit or exit())"
        return _signal_text(info.si_status)

    # -- messages

    def _request(self, msg_type: str, content: dict, timeout: float) -> Reply:
        import zmq

        message = self.session.msg(msg_type, content)
        msg_id = message["header"]["msg_id"]
        self.session.send(self._sockets["shell"], message)
        poller = zmq.Poller()
        for sock in self._sockets.values():
            poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        reply, idle, replied_at = None, False, 0.0
        while True:
            now = time.monotonic()
            if reply is not None and (idle or now - replied_at > 1.0 or msg_type != "execute_request"):
                return reply
            ended = self._exit_status()
            if ended:  # a kernel that died after replying is noticed by the next request
                return reply if reply is not None else Reply("died", evalue=ended)
            if reply is None and now > deadline:
                return Reply("timeout", evalue=f"still running after {timeout:g} s")
            for sock, _ in poller.poll(100):
                for msg in self._drain(sock):
                    if msg["parent_header"].get("msg_id") != msg_id:
                        continue
                    if sock is self._sockets["iopub"]:
                        idle = idle or (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle")
                    elif msg["msg_type"].endswith("_reply") and reply is None:
                        reply, replied_at = _reply(msg["content"]), time.monotonic()

    def _drain(self, sock) -> list[dict]:
        """Every well-formed message waiting on ``sock``; output is counted, never kept."""
        messages = []
        for _ in range(10000):
            try:
                _, msg = self.session.recv(sock)
            except Exception:  # a malformed or forged message: the kernel is untrusted
                continue
            if msg is None:
                break
            if not (isinstance(msg.get("content"), dict) and isinstance(msg.get("parent_header"), dict)
                    and isinstance(msg.get("msg_type"), str)):
                continue
            if sock is self._sockets["iopub"]:
                self.output_bytes += _output_size(msg)
            messages.append(msg)
        return messages

    def execute(self, code: str, timeout: float) -> Reply:
        """Run ``code`` as one cell; wait at most ``timeout`` seconds."""
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": False}
        return self._request("execute_request", content, timeout)

    # -- answers

    def answers(self, function: str, cases: Sequence[Case], forbidden: Sequence[str], tag: str,
                timeout: float) -> tuple[Reply, Path]:
        """Call ``function`` in the kernel on ``cases``; returns the reply and the answers file.

        ``tag`` names the files of this call (one per exercise: a missing answer must not be
        mistaken for another exercise's).
        """
        cases_file = self.root / "io" / f"cases-{tag}.pt"
        answers_file = self.root / "io" / f"answers-{tag}.pt"
        answers_file.unlink(missing_ok=True)
        torch.save([{"args": tuple(c.args), "kwargs": dict(c.kwargs), "grad": tuple(c.grad)} for c in cases],
                   cases_file)
        call = f"{self.grader}({function!r}, {str(cases_file)!r}, {str(answers_file)!r}, {tuple(forbidden)!r})"
        return self.execute(call, timeout), answers_file


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` (not yet reaped, so the number is still ours), its process group and its descendants.

    Under bubblewrap the PID namespace already takes everything down with the
    kernel; without it this catches children that left the process group
    (``start_new_session``) while the kernel still lived. Orphans of a kernel
    that died first are left to :func:`kill_adopted`.
    """
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        tree = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in tree:
        try:
            process.kill()
        except psutil.Error:
            pass


def die_with_parent() -> None:
    """Have the kernel send this process SIGKILL when its parent dies (Linux; a no-op elsewhere)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except AttributeError:
        return
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def adopt_orphans() -> None:
    """Make this process the reaper of orphaned descendants (Linux), so :func:`kill_adopted` finds them."""
    try:
        ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    except AttributeError:
        pass


def kill_adopted() -> None:
    """SIGKILL and reap every child process left behind (call when no kernel is running)."""
    for process in psutil.Process().children(recursive=True):
        try:
            process.kill()
            process.wait(5)
        except psutil.Error:
            pass


def _signal_text(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    why = " (os.kill, or the machine ran out of memory)" if number == signal.SIGKILL else ""
    return f"the kernel was killed by {name}{why}"


def _reply(content: dict) -> Reply:
    if content.get("status") == "error":
        lines = content.get("traceback")
        text = ANSI.sub("", "\n".join(str(line) for line in lines) if isinstance(lines, list) else "")
        return Reply("error", str(content.get("ename", ""))[:200], str(content.get("evalue", ""))[:2000],
                     text[-TRACEBACK_KEEP:])
    return Reply("ok" if content.get("status") in ("ok", None) else str(content.get("status"))[:50])


def _output_size(msg: dict) -> int:
    content = msg.get("content") or {}
    kind = msg.get("msg_type")
    if kind == "stream":
        return len(str(content.get("text", "")))
    if kind in ("execute_result", "display_data", "update_display_data"):
        return len(str((content.get("data") or {}).get("text/plain", "")))
    if kind == "error":
        return len(str(content.get("traceback", "")))
    return 0


# --------------------------------------------------------- reading the answers

class AnswersError(ValueError):
    """The answers file is missing or malformed; the message is for the student."""


@dataclass
class Answers:
    """What the kernel reported for one exercise."""

    defined: bool
    outcomes: list[Outcome] = field(default_factory=list)
    library: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    profiler_intact: bool = True


def _opaque(name: Any):
    """A stand-in for an object the kernel could not send; it describes itself by type name."""
    label = re.sub(r"\W", "_", str(name))[:64] or "object"
    if not label.isidentifier():
        label = "object_" + label
    return type(label, (), {"__repr__": lambda self: f"<{label} object>"})()


def _value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (tuple, list)) and depth < 8:
        items = [_value(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and set(value) == {"opaque"}:
        return _opaque(value["opaque"])
    raise AnswersError(f"unexpected value of type {type(value).__name__}")


def _text(value: Any, limit: int = 4000) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnswersError("a message is not text")
    return value[:limit]


def read_answers(path: Path, n_cases: int) -> Answers:
    """Load and validate an answers file written by the kernel (untrusted data).

    Raises:
        AnswersError: the file is missing, too large, not loadable as plain
            tensors and Python values, or not shaped like answers.
    """
    if not path.is_file():
        raise AnswersError("the notebook produced no answers file")
    if path.stat().st_size > MAX_ANSWERS:
        raise AnswersError(f"the answers are larger than {MAX_ANSWERS >> 20} MiB")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise AnswersError(f"the answers file could not be loaded safely ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("defined"), bool):
        raise AnswersError("the answers file is not a report")
    if not data["defined"]:
        return Answers(False)
    raw = data.get("outcomes")
    if not isinstance(raw, list) or len(raw) != n_cases or not all(isinstance(o, dict) for o in raw):
        raise AnswersError(f"expected {n_cases} outcomes")
    outcomes = []
    for item in raw:
        if "error" in item:
            outcomes.append(Outcome(error=_text(item["error"]) or "", error_type=_text(item.get("error_type"), 100),
                                    traceback=_text(item.get("traceback"))))
        else:
            grads = item.get("grads")
            if grads is not None and not isinstance(grads, (tuple, list)):
                raise AnswersError("gradients are not a tuple")
            outcomes.append(Outcome(output=_value(item.get("output")),
                                    grads=None if grads is None else tuple(_value(g) for g in grads)))
    names = [data.get("library", []), data.get("forbidden", [])]
    if not all(isinstance(n, list) and all(isinstance(s, str) for s in n) for n in names):
        raise AnswersError("malformed call record")
    return Answers(True, outcomes, [s[:300] for s in names[0]], [s[:100] for s in names[1]],
                   data.get("profiler") is True)

