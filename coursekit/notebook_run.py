"""Execute notebooks headless, the way the tests and the committed solutions see them.

One kernel per notebook (kernel ``python3``), working directory = the notebook's
folder, ``COURSEKIT_PROFILE`` set in the kernel's environment. Widget state is
stripped from the result (saved ``metadata.widgets`` stops k3d from rendering
in JupyterLab; it is recorded during the run only because nbclient's emulation
of Output widgets, as in ``widgets.interactive``, needs it) and no per-cell
timing metadata is recorded, so executing the same
notebook twice gives the same file except for genuinely random outputs.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from pathlib import Path
from queue import Empty

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets import Type
from traitlets.config import Config

from . import runtime
from .grading.release import dumps, write_atomic

KERNEL = "python3"


class LevelCheckedChannel(AsyncZMQSocketChannel):
    """A kernel channel that looks at its queue at least once a second instead of trusting one wake-up.

    jupyter_client's asyncio channel waits on ZeroMQ's edge-triggered descriptor for the whole
    cell timeout. When that wake-up is lost (seen here on a loaded machine: the kernel idle
    with its reply sent, nbclient waiting on ``execute_reply`` until the timeout), the cell
    hangs. Checking ``zmq.EVENTS`` (level-triggered: is a message queued?) between bounded
    waits turns a lost wake-up into at most a second's delay.
    """

    async def get_msg(self, timeout: float | None = None) -> dict:  # type: ignore[override]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return await self._recv()
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise Empty
            await self.socket.poll(int(1000 * min(1.0, left)))


class LevelCheckedKernelClient(AsyncKernelClient):
    """The asyncio kernel client with :class:`LevelCheckedChannel` for the shell and IOPub replies."""

    shell_channel_class = Type(LevelCheckedChannel)
    iopub_channel_class = Type(LevelCheckedChannel)


def strip_widget_state(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove saved widget state (``metadata.widgets``) from the notebook and its cells, in place."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
    return nb


def execute_notebook(nb: nbformat.NotebookNode | str | os.PathLike, *, profile: str = "fast",
                     cwd: str | os.PathLike | None = None, timeout: int = 1800, allow_errors: bool = False,
                     keep_widget_state: bool = False, retries: int = 1) -> nbformat.NotebookNode:
    """Run every code cell of a notebook in a fresh kernel; return the executed notebook.

    Args:
        nb: a notebook object (left untouched) or a path to one.
        profile: the :mod:`coursekit.runtime` profile, passed as ``COURSEKIT_PROFILE``.
        cwd: the kernel's working directory; default the notebook's folder
            (the current directory for an in-memory notebook).
        timeout: seconds allowed per cell.
        allow_errors: keep going after a cell raises (errors stay in the outputs).
        keep_widget_state: keep ``metadata.widgets`` (only for HTML exports, never
            for committed notebooks).
        retries: fresh kernels to try after one that stops answering (a cell over
            ``timeout``, a kernel that dies or never becomes ready): the whole notebook
            then runs again in a new kernel, with a warning. (A reply whose wake-up is
            lost no longer looks like this: :class:`LevelCheckedChannel` reads it.)

    Returns:
        A new notebook with outputs.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised and ``allow_errors`` is false.
    """
    if profile not in runtime.PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {runtime.PROFILES}")
    if isinstance(nb, (str, os.PathLike)):
        path = Path(nb)
        cwd = cwd if cwd is not None else path.parent
        nb = nbformat.read(path, as_version=4)
    else:
        nb = nbformat.from_dict(nb)
    env = {**os.environ, runtime.ENV_PROFILE: profile}
    source = nb
    for attempt in range(retries + 1):
        nb = copy.deepcopy(source)
        try:
            _run_in_fresh_kernel(nb, env, cwd, timeout, allow_errors)
            break
        except (CellTimeoutError, DeadKernelError, RuntimeError) as exc:
            if attempt == retries:
                raise
            warnings.warn(f"the kernel stopped answering ({type(exc).__name__}: {str(exc)[:200]}); "
                          "running the notebook again in a fresh kernel", RuntimeWarning, stacklevel=2)
    return nb if keep_widget_state else strip_widget_state(nb)


def _run_in_fresh_kernel(nb: nbformat.NotebookNode, env: dict, cwd, timeout: int, allow_errors: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="coursekit-kernel-") as sockets:
        # ipc (Unix socket) transport in a private folder: TCP ports picked by concurrent
        # kernel starts can collide, and the client then waits forever on another kernel.
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")},
                         "AsyncKernelManager": {"client_class": f"{__name__}.LevelCheckedKernelClient"}})
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=allow_errors,
                                store_widget_state=True, record_timing=False, config=config,
                                resources={"metadata": {"path": str(cwd or Path.cwd())}})
        client.execute(env=env)


def errors(nb: nbformat.NotebookNode) -> list[tuple[int, dict]]:
    """``(cell index, error output)`` for every error output of an executed notebook."""
    return [(i, out) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.get("outputs", ()) if out.output_type == "error"]


def execute_files(paths: list[str | os.PathLike], *, profile: str = "fast", inplace: bool = False,
                  out_dir: str | os.PathLike | None = None, timeout: int = 1800) -> int:
    """Execute notebook files (the ``coursekit execute`` command); returns an exit code.

    Each notebook is written back (``inplace``) or into ``out_dir`` only if it ran
    without error; otherwise the failing cell is reported and the file is untouched.
    """
    status = 0
    for name in paths:
        path = Path(name)
        tic = time.perf_counter()
        try:
            nb = execute_notebook(path, profile=profile, timeout=timeout)
        except CellExecutionError as exc:
            print(f"FAILED {path} ({time.perf_counter() - tic:.1f} s): {exc}")
            status = 1
            continue
        target = path if inplace else (Path(out_dir) / path.name if out_dir is not None else None)
        if target is not None:
            write_atomic(dumps(nb), target)
        print(f"ok {path} ({time.perf_counter() - tic:.1f} s, profile {profile})"
              + (f" -> {target}" if target is not None else ""))
    return status
