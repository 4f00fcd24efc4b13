"""Check the course as a person meets it: JupyterLab (and the HTML tour) in a real browser.

nbval proves that notebooks run; it cannot see a widget that never renders, a k3d
plot that stays blank or a slider that no longer drives its figure. This harness
starts JupyterLab on a free loopback port in a throw-away workspace (copies of the
notebooks), drives Debian's Chromium through Python playwright (``executable_path``;
no browser download exists here) and asserts, from the page, for each notebook:

* solution notebooks: every code cell ran and no output is an error;
  student notebooks: Run All stops at the first exercise check (an error only at
  ``check(...)`` cells, raised by the check, never elsewhere);
* every k3d plot has a WebGL canvas with non-background pixels;
* every widget output renders (no "Error displaying widget", no empty widget box:
  that is what saved widget state does to k3d in a trusted notebook);
* the first slider, dragged with the mouse, changes an image it drives;
* matplotlib figures are images of non-trivial size with something drawn on them.

Notebooks are opened *trusted* (``jupyter trust``), as they are for a student once
Lab has saved them: saved ``metadata.widgets`` only breaks k3d in a trusted notebook.

Every notebook leaves a full-height screenshot under ``build/browser/`` and, on a
problem, its console log. The server, its kernels and the browser are shut down
(REST API, then the process group and the PIDs that carry this run's temp dir) and
:meth:`LabServer.stop` asserts that nothing is left running.

Command line (exit status 1 on any problem)::

    .venv/bin/python tools/browser_check.py                    # notebooks/ and solutions/
    .venv/bin/python tools/browser_check.py --tour build/tour  # plus the offline tour
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
OUT_DIR = ROOT / "build" / "browser"
# WebGL headless through SwiftShader (no GPU); no background traffic on a closed network.
CHROMIUM_FLAGS = [
    "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 900}
# Lab settings for the run: every cell and every output in the DOM (no virtual scrolling,
# no "Show more outputs" after 50), no news or update checks, no extension manager.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "maxNumberOutputs": 100000},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}
FIGURE_IMG = "img:not(.k3d-plot img)"   # figures: images in outputs, k3d's own UI aside
CHECK_CELL = re.compile(r"^\s*check\(\s*['\"]", re.MULTILINE)
MIN_IMAGE_SIDE = 100          # px, natural size of a matplotlib figure
MIN_FOREGROUND = 0.002        # fraction of non-background pixels in a drawn canvas / figure
DRAW_WAIT_S = 10.0            # how long a k3d canvas may take to draw
SLIDER_WAIT_S = 10.0          # how long the driven image may take to change


# ---------------------------------------------------------------------------- pixels
def foreground_fraction(png: bytes, tolerance: int = 24) -> float:
    """Fraction of pixels that differ from the background (the commonest border colour)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    if rgb.size == 0:
        return 0.0
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colours, counts = np.unique(border, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    differs = np.abs(rgb - background).max(axis=-1) > tolerance
    return float(differs.mean())


# k3d lays HTML (its control panel, labels) over the WebGL canvas; hide it while reading pixels.
_ONLY_CANVAS_CSS = (".k3d-target * { visibility: hidden !important; } "
                    ".k3d-target canvas { visibility: visible !important; }")


def canvas_foreground(frame, canvas, wait: float = 0.0) -> float:
    """Foreground fraction of a k3d WebGL canvas alone, polled for up to ``wait`` seconds.

    Args:
        frame: the playwright Page or Frame holding the canvas.
        canvas: a locator of the canvas element.
    """
    style = frame.add_style_tag(content=_ONLY_CANVAS_CSS)
    try:
        deadline = time.monotonic() + wait
        while True:
            fraction = foreground_fraction(canvas.screenshot())
            if fraction >= MIN_FOREGROUND or time.monotonic() >= deadline:
                return fraction
            time.sleep(0.5)
    finally:
        style.evaluate("node => node.remove()")


def pixels(png: bytes) -> np.ndarray:
    """Decoded RGB pixels of a PNG screenshot."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# ---------------------------------------------------------------------------- processes
def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(marker: str) -> list[int]:
    """PIDs (other than ours) whose command line contains ``marker`` (this run's temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------- JupyterLab
class LabServer:
    """JupyterLab on a free loopback port, serving a temporary workspace.

    The workspace holds copies of ``sources`` (folders, relative names kept). Every
    Jupyter directory (runtime, data, settings, workspaces, config) lives in the temp
    dir, so the run neither reads nor leaves user state; the kernels get
    ``COURSEKIT_PROFILE=fast``.
    """

    def __init__(self, sources: list[Path], tmp: Path | None = None, jupyter: Path | None = None):
        self._own_tmp = tmp is None
        self.tmp = Path(tempfile.mkdtemp(prefix="coursekit-browser-")) if tmp is None else Path(tmp)
        self.workspace = self.tmp / "ws"
        self.workspace.mkdir(parents=True, exist_ok=True)
        for src in sources:
            if Path(src).is_dir():
                shutil.copytree(src, self.workspace / Path(src).name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.jupyter = jupyter or Path(sys.executable).with_name("jupyter")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp / "lab.log"
        self.env = self._environment()

    def _environment(self) -> dict:
        env = dict(os.environ)
        for name, sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                          ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                          ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
            env[name] = str(self.tmp / sub)
            (self.tmp / sub).mkdir(exist_ok=True)
        env["COURSEKIT_PROFILE"] = "fast"
        env.setdefault("OMP_NUM_THREADS", "1")
        for plugin, values in LAB_SETTINGS.items():
            path = self.tmp / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return env

    def command(self) -> list[str]:
        cmd = [str(self.jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
               "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
               "--ServerApp.terminals_enabled=False", f"--ServerApp.root_dir={self.workspace}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self, timeout: float = 90.0) -> "LabServer":
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.command(), env=self.env, cwd=self.workspace, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def trust(self, rel_path: str) -> None:
        """Sign a workspace notebook, as Lab does when a student saves it (server's notary)."""
        import nbformat
        from nbformat.sign import NotebookNotary

        path = self.workspace / rel_path
        nb = nbformat.read(path, as_version=4)
        NotebookNotary(data_dir=self.env["JUPYTER_DATA_DIR"]).sign(nb)

    def add_notebook(self, rel_path: str, nb) -> str:
        """Write a notebook (nbformat node or dict) into the workspace; return its path."""
        import nbformat

        target = self.workspace / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.from_dict(nb), target)
        return rel_path

    def shutdown_sessions(self, rel_path: str | None = None) -> None:
        """Shut down the kernels of one notebook's sessions (or of all) through the REST API."""
        for session in self.api("GET", "/api/sessions"):
            if rel_path is None or session.get("path") == rel_path:
                self.api("DELETE", f"/api/sessions/{session['id']}")
        if rel_path is None:
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def leftovers(self) -> list[int]:
        """Processes of this run still alive: the server's group and anything naming our temp dir."""
        pids = set(processes_mentioning(str(self.tmp)))
        if self.proc is not None and process_group_alive(self.proc.pid):
            pids.add(self.proc.pid)
        return sorted(pids)

    def stop(self) -> None:
        """Shut kernels and server down (REST, then signals) and assert nothing is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.shutdown_sessions()
                self.api("POST", "/api/shutdown")
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for sig, wait in [(signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]:
            if process_group_alive(self.proc.pid):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    pass
            _kill_pids(processes_mentioning(str(self.tmp)), sig)   # kernels: own sessions
            deadline = time.monotonic() + wait
            while self.leftovers() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self.leftovers():
                break
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        left = self.leftovers()
        self.proc = None
        if self._own_tmp and not left:
            shutil.rmtree(self.tmp, ignore_errors=True)
        assert not left, f"processes left running after shutdown: {left}"

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------- browser
class Browser:
    """Debian's Chromium driven by playwright, WebGL through SwiftShader, fresh profile."""

    def __init__(self, tmp: Path, executable: Path = CHROMIUM, flags: list[str] | None = None):
        self.profile = Path(tmp) / "chromium-profile"
        self.executable = executable
        self.flags = CHROMIUM_FLAGS if flags is None else flags
        self._pw = None
        self.context = None

    def start(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        if not self.executable.exists():
            raise FileNotFoundError(f"{self.executable} missing: run tools/install_browser.sh")
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            str(self.profile), executable_path=str(self.executable), headless=True,
            args=self.flags, viewport=VIEWPORT)
        return self

    def new_page(self):
        return self.context.new_page()

    def stop(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None
        deadline = time.monotonic() + 10
        while processes_mentioning(str(self.profile)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(str(self.profile))
        assert not left, f"chromium processes left running: {left}"

    def __enter__(self) -> "Browser":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------- reports
@dataclass
class Report:
    """What one page showed: counts of what rendered, and every problem found."""

    name: str
    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    screenshot: Path | None = None
    console: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def lap(self, phase: str, since: float) -> float:
        """Record the seconds spent in ``phase`` since ``since``; return the time now."""
        now = time.monotonic()
        self.timings[phase] = round(now - since, 2)
        return now

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{self.name:40s} {self.seconds:6.1f} s  {state:14s} {counts}"

    def record(self, out_dir: Path) -> None:
        """Append this report's line (and screenshot) to ``out_dir/summary.txt``."""
        shot = self.screenshot.name if self.screenshot else "-"
        with (out_dir / "summary.txt").open("a") as f:
            f.write(f"{self.line()}  {shot}\n")

    def write_console(self, out_dir: Path) -> Path:
        path = out_dir / f"{self.name}.console.log"
        path.write_text("\n".join(["# problems", *self.problems, "", "# console", *self.console]) + "\n")
        return path


def _page_name(rel_path: str) -> str:
    return rel_path.replace("/", "__").removesuffix(".ipynb").removesuffix(".html")


def _attach_console(page, report: Report) -> None:
    page.on("console", lambda m: report.console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: report.console.append(f"[pageerror] {e}"))


# JavaScript run in the Lab page. PANEL finds the notebook panel by path.
_JS_PANEL = """(path) => [...window.jupyterapp.shell.widgets('main')]
    .find(w => w.context && w.context.path === path && w.content && w.content.model)"""

_JS_READY = """(path) => { const find = %s; const p = window.jupyterapp && find(path);
  const k = p && p.sessionContext.session && p.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && p.context.isReady); }""" % _JS_PANEL

_JS_RUN_ALL = """(path) => { const find = %s; const p = find(path);
  window.jupyterapp.shell.activateById(p.id);
  window.__ckRun = 'running';
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then(r => { window.__ckRun = 'done:' + r; }, e => { window.__ckRun = 'failed:' + e; }); }""" % _JS_PANEL

_JS_SETTLED = """(path) => { const find = %s; const p = find(path);
  const k = p.sessionContext.session && p.sessionContext.session.kernel;
  if (!window.__ckRun || window.__ckRun === 'running' || !k || k.status !== 'idle') return false;
  return ![...p.node.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('*')); }""" % _JS_PANEL

# One record per code cell; tags each output node with data-ck="c<i>o<j>" for locators.
_JS_DESCRIBE = """(path) => { const find = %s; const p = find(path);
  const cells = [];
  p.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    const outputs = [];
    const area = cell.outputArea;
    for (let j = 0; j < area.model.length; j++) {
      const model = area.model.get(j);
      const json = model.toJSON();
      const node = area.widgets[j] ? area.widgets[j].node : null;
      const id = 'c' + i + 'o' + j;
      if (node) node.setAttribute('data-ck', id);
      const mimes = Object.keys(json.data || {});
      const q = (s) => node ? node.querySelectorAll(s).length : 0;
      const hidden = !!(node && node.querySelector('.jp-OutputArea-output.lm-mod-hidden'));
      outputs.push({id, type: json.output_type, mimes, hidden,
        ename: json.ename || null, evalue: json.evalue || null,
        widget: mimes.includes('application/vnd.jupyter.widget-view+json'),
        k3d: q('.k3d-target'), canvases: q('.k3d-target canvas'),
        controls: q('.jupyter-widgets'), sliders: q('.widget-slider .noUi-handle'),
        imgs: q(FIGURE_IMG), widgetErrors: node ? (node.innerText.match(/Error displaying widget[^\\n]*/g) || []) : [],
        height: node ? node.getBoundingClientRect().height : 0});
    }
    cells.push({index: i, source: cell.model.sharedModel.getSource(),
                executionCount: cell.model.executionCount, outputs,
                outputViews: area.widgets.length});
  });
  return cells; }""".replace("FIGURE_IMG", repr(FIGURE_IMG)) % _JS_PANEL


# ---------------------------------------------------------------------------- notebook check
def check_notebook(browser: Browser, lab: LabServer, rel_path: str, role: str,
                   out_dir: Path = OUT_DIR, run_timeout: float = 900.0,
                   move_slider: bool = True, trust: bool = True) -> Report:
    """Open ``rel_path`` in Lab, Run All, and check what the page shows.

    Args:
        role: ``"solution"`` (every cell runs, no error output) or ``"student"`` (Run All
            stops at the first exercise check; errors only at ``check(...)`` cells).
        move_slider: drag the first slider and require an image it drives to change.
        trust: sign the notebook first (a student's saved notebook is trusted).

    Returns:
        A :class:`Report`; ``report.problems`` is empty when everything rendered.
    """
    if role not in ("solution", "student"):
        raise ValueError(f"role must be 'solution' or 'student', got {role!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(_page_name(rel_path))
    start = time.monotonic()
    if trust:
        lab.trust(rel_path)
    _check_saved_state(lab.workspace / rel_path, report)
    page = browser.new_page()
    _attach_console(page, report)
    try:
        t = report.lap("trust", start)
        page.goto(f"{lab.url}/lab/tree/{rel_path}?reset", wait_until="domcontentloaded")
        page.wait_for_function(_JS_READY, arg=rel_path, timeout=90_000, polling=250)
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        t = report.lap("open", t)
        page.evaluate(_JS_RUN_ALL, rel_path)
        page.wait_for_function(_JS_SETTLED, arg=rel_path, timeout=run_timeout * 1000, polling=500)
        t = report.lap("run_all", t)
        cells = _describe_rendered(page, rel_path)
        _check_errors(cells, role, report)
        _check_widgets(cells, report)
        _check_k3d(page, cells, report)
        t = report.lap("k3d", t)
        _check_images(page, cells, report)
        t = report.lap("images", t)
        if move_slider:
            _check_slider(page, rel_path, cells, report)
            t = report.lap("slider", t)
        report.screenshot = _full_screenshot(page, rel_path, out_dir / f"{report.name}.png")
        report.lap("screenshot", t)
    except Exception as exc:  # a page that never got ready or never settled is a problem too
        report.problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        try:
            report.screenshot = _full_screenshot(page, rel_path, out_dir / f"{report.name}.png")
        except Exception:
            pass
    finally:
        try:
            lab.shutdown_sessions(rel_path)
        finally:
            page.close()
    report.seconds = time.monotonic() - start
    if report.problems:
        report.write_console(out_dir)
    report.record(out_dir)
    return report


def _describe_rendered(page, rel_path: str, wait: float = DRAW_WAIT_S) -> list[dict]:
    """Describe the cells once every widget output has rendered (or ``wait`` has passed)."""
    deadline = time.monotonic() + wait
    while True:
        cells = page.evaluate(_JS_DESCRIBE, rel_path)
        pending = [o for c in cells for o in c["outputs"]
                   if o["widget"] and not o["hidden"] and not (o["k3d"] and o["canvases"])
                   and not o["controls"] and not o["widgetErrors"]]
        if not pending or time.monotonic() > deadline:
            return cells
        time.sleep(0.25)


def _check_saved_state(path: Path, report: Report) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    if "widgets" in nb.get("metadata", {}):
        report.problems.append("notebook file has saved widget state (metadata.widgets): "
                               "k3d plots render blank in a trusted notebook; strip it")


def _check_errors(cells: list[dict], role: str, report: Report) -> None:
    errors = [(c, o) for c in cells for o in c["outputs"] if o["type"] == "error"]
    report.counts["errors"] = len(errors)
    if role == "solution":
        for cell, out in errors:
            report.problems.append(f"cell {cell['index']}: {out['ename']}: {out['evalue']}")
        for cell in cells:
            if cell["executionCount"] is None and cell["source"].strip():
                report.problems.append(f"cell {cell['index']} never ran")
        return
    for cell, out in errors:
        if not CHECK_CELL.search(cell["source"]) or out["ename"] != "CheckFailure":
            report.problems.append(f"cell {cell['index']}: {out['ename']} outside an exercise "
                                   f"check: {out['evalue']}")
    first_error = min((c["index"] for c, _ in errors), default=None)
    first_check = next((c["index"] for c in cells if CHECK_CELL.search(c["source"])), None)
    if first_check is not None and first_error != first_check:
        report.problems.append(f"the first check (cell {first_check}) should stop Run All on the "
                               f"unsolved stub; the first error is at cell {first_error}")
    last = first_error if first_error is not None else float("inf")
    for cell in cells:
        if cell["index"] < last and cell["executionCount"] is None and cell["source"].strip():
            report.problems.append(f"cell {cell['index']} never ran (before the first check)")


def _check_widgets(cells: list[dict], report: Report) -> None:
    widgets = [o for c in cells for o in c["outputs"] if o["widget"]]
    report.counts["widgets"] = len(widgets)
    report.counts["sliders"] = sum(o["sliders"] for o in widgets)
    for cell in cells:
        if cell["outputViews"] != len(cell["outputs"]):
            report.problems.append(f"cell {cell['index']} shows {cell['outputViews']} views of "
                                   f"{len(cell['outputs'])} outputs")
    for out in (o for c in cells for o in c["outputs"]):
        for message in out["widgetErrors"]:
            report.problems.append(f"output {out['id']}: {message}")
    for out in widgets:  # a closed widget (tqdm bar with leave=False) hides its output: fine
        if not out["hidden"] and not out["widgetErrors"] and out["k3d"] == 0 and out["controls"] == 0:
            report.problems.append(f"output {out['id']}: widget rendered nothing (empty box; "
                                   f"saved widget state or a missing front-end extension?)")


def _check_k3d(page, cells: list[dict], report: Report) -> None:
    plots = [o for c in cells for o in c["outputs"] if o["k3d"]]
    report.counts["k3d"] = len(plots)
    for out in plots:
        if out["canvases"] == 0:
            report.problems.append(f"output {out['id']}: k3d plot has no WebGL canvas")
            continue
        canvas = page.locator(f'[data-ck="{out["id"]}"] .k3d-target canvas').first
        fraction = canvas_foreground(page, canvas, wait=DRAW_WAIT_S)
        if fraction < MIN_FOREGROUND:
            report.problems.append(f"output {out['id']}: k3d canvas is blank "
                                   f"({fraction:.4%} non-background pixels)")


def _check_images(page, cells: list[dict], report: Report) -> None:
    """Every figure (an image output, or an image inside a widget's output) is big and drawn."""
    outputs = [o for c in cells for o in c["outputs"] if o["imgs"]]
    report.counts["images"] = sum(o["imgs"] for o in outputs)
    for out in outputs:
        images = page.locator(f'[data-ck="{out["id"]}"] {FIGURE_IMG}')
        for k in range(images.count()):
            img = images.nth(k)
            width, height = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
            if min(width, height) < MIN_IMAGE_SIDE:
                report.problems.append(f"output {out['id']}: figure {k} is only {width}x{height} px")
            elif foreground_fraction(img.screenshot()) < MIN_FOREGROUND:
                report.problems.append(f"output {out['id']}: figure {k} is blank")


def _driven_images(page, out_ids: list[str]) -> dict[str, np.ndarray]:
    """Screenshots of every figure and k3d canvas in these outputs, keyed by position."""
    shots = {}
    for out_id in out_ids:
        box = page.locator(f'[data-ck="{out_id}"]')
        items = box.locator(f"{FIGURE_IMG}, .k3d-target canvas")
        for k in range(items.count()):
            item = items.nth(k)
            if item.is_visible():
                shots[f"{out_id}/{k}"] = pixels(item.screenshot())
    return shots


def _slider_value(handle) -> str:
    return handle.evaluate("h => h.getAttribute('aria-valuenow') || h.getAttribute('aria-valuetext')")


def _check_slider(page, rel_path: str, cells: list[dict], report: Report) -> None:
    """Drag the first slider with the mouse; a figure or canvas it drives must change.

    The driven image is looked for in the slider's own output (``widgets.interactive``)
    or, when that holds none, in every widget output (a slider observed by a callback that
    redraws an ``Output`` widget shown elsewhere).
    """
    slider_out = next((o for c in cells for o in c["outputs"] if o["sliders"]), None)
    if slider_out is None:
        return
    widget_outs = [o for c in cells for o in c["outputs"] if o["widget"]]
    if slider_out["imgs"] or slider_out["canvases"]:
        scope = [slider_out["id"]]
    else:
        scope = [o["id"] for o in widget_outs if o["imgs"] or o["canvases"]]
    handle = page.locator(f'[data-ck="{slider_out["id"]}"] .widget-slider .noUi-handle').first
    track = page.locator(f'[data-ck="{slider_out["id"]}"] .widget-slider .noUi-base').first
    before = _driven_images(page, scope)
    value_before = _slider_value(handle)
    handle.scroll_into_view_if_needed()
    h, t = handle.bounding_box(), track.bounding_box()
    x0, y = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
    x1 = t["x"] + t["width"] * (0.8 if x0 < t["x"] + t["width"] / 2 else 0.2)
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=8)
    page.mouse.up()
    value_after = _slider_value(handle)
    report.counts["slider"] = f"{value_before}->{value_after}"
    if value_after == value_before:
        report.problems.append(f"output {slider_out['id']}: the slider did not move "
                               f"(value stays {value_before})")
        return
    changed, deadline = [], time.monotonic() + SLIDER_WAIT_S
    while not changed and time.monotonic() < deadline:
        page.wait_for_function(_JS_SETTLED, arg=rel_path, timeout=SLIDER_WAIT_S * 1000, polling=250)
        time.sleep(0.5)
        after = _driven_images(page, scope)
        changed = [key for key in before.keys() & after.keys()
                   if before[key].shape != after[key].shape or (before[key] != after[key]).any()]
    if not changed:
        report.problems.append(f"output {slider_out['id']}: slider moved {value_before} -> "
                               f"{value_after} but no image it drives changed")
    for cell in page.evaluate(_JS_DESCRIBE, rel_path):
        for out in cell["outputs"]:
            for message in out["widgetErrors"]:
                report.problems.append(f"after moving the slider, output {out['id']}: {message}")


def _full_screenshot(page, rel_path: str, path: Path, tile: int = 3000) -> Path:
    """The whole notebook in one image, stitched from screenshots of its scrolled panel.

    (One screenshot of a very tall viewport repeats the page in headless Chromium.)
    """
    page.set_viewport_size({"width": VIEWPORT["width"], "height": tile})
    page.evaluate("""(path) => { const p = (%s)(path);
        const nodes = [p.content.node, ...p.content.node.querySelectorAll('.jp-WindowedPanel-outer')];
        const scroller = nodes.reduce((a, b) => (b.scrollHeight - b.clientHeight > a.scrollHeight - a.clientHeight ? b : a));
        document.querySelectorAll('[data-ck-scroller]').forEach(n => n.removeAttribute('data-ck-scroller'));
        scroller.setAttribute('data-ck-scroller', '1'); }""" % _JS_PANEL, rel_path)
    scroller = page.locator("[data-ck-scroller]")
    page.wait_for_function("() => document.querySelector('[data-ck-scroller]').clientHeight > %d" % (tile // 2))
    tiles, covered, total = [], 0, scroller.evaluate("n => n.scrollHeight")
    while covered < total and len(tiles) < 40:
        top, view = scroller.evaluate("(n, y) => { n.scrollTop = y; return [n.scrollTop, n.clientHeight]; }",
                                      covered)
        time.sleep(0.3)
        shot = Image.open(io.BytesIO(scroller.screenshot())).convert("RGB")
        tiles.append(shot.crop((0, covered - top, shot.width, min(shot.height, view))))
        covered = top + view
    image = Image.new("RGB", (max(t.width for t in tiles), sum(t.height for t in tiles)), "white")
    y = 0
    for t in tiles:
        image.paste(t, (0, y))
        y += t.height
    image.save(path)
    page.set_viewport_size(VIEWPORT)
    return path


# ---------------------------------------------------------------------------- tour
def check_tour(browser: Browser, tour_dir: Path, out_dir: Path = OUT_DIR) -> list[Report]:
    """Open every tour page from ``file://`` with all network requests blocked.

    Every ``<iframe class="coursekit-k3d">`` must draw a non-blank WebGL canvas, and every
    snapshot file next to a page must be embedded in it.
    """
    tour_dir = Path(tour_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = sorted(tour_dir.glob("*.html"))
    if not pages:
        return [Report("tour", problems=[f"no tour pages in {tour_dir} (run `make tour`)"])]
    reports = []
    for html_path in pages:
        report = Report(f"tour__{html_path.stem}")
        start = time.monotonic()
        page = browser.new_page()
        _attach_console(page, report)
        blocked: list[str] = []
        page.route(re.compile(r"^(https?|wss?)://"),
                   lambda route: (blocked.append(route.request.url), route.abort()))
        try:
            page.goto(html_path.as_uri(), wait_until="load", timeout=60_000)
            frames = page.locator("iframe.coursekit-k3d")
            report.counts["k3d_snapshots"] = frames.count()
            embedded = set()
            for k in range(frames.count()):
                frame_el = frames.nth(k)
                src = frame_el.get_attribute("src")
                embedded.add((html_path.parent / src).resolve())
                frame_el.scroll_into_view_if_needed()
                frame = frame_el.element_handle().content_frame()
                canvas = frame.locator("canvas").first
                try:
                    canvas.wait_for(timeout=30_000)
                except Exception:
                    report.problems.append(f"snapshot {src}: no canvas appeared")
                    continue
                fraction = canvas_foreground(frame, canvas, wait=DRAW_WAIT_S)
                if fraction < MIN_FOREGROUND:
                    report.problems.append(f"snapshot {src}: canvas is blank ({fraction:.4%})")
            snap_dir = tour_dir / f"{html_path.stem}_k3d"
            for snap in sorted(snap_dir.glob("*.html")) if snap_dir.exists() else []:
                if snap.resolve() not in embedded:
                    report.problems.append(f"snapshot {snap.name} is not embedded in the page")
            report.counts["blocked_requests"] = len(blocked)
            report.screenshot = out_dir / f"{report.name}.png"
            page.screenshot(path=str(report.screenshot), full_page=True)
        except Exception as exc:
            report.problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            page.close()
        report.console += [f"[blocked] {url}" for url in blocked]
        report.seconds = time.monotonic() - start
        if report.problems:
            report.write_console(out_dir)
        report.record(out_dir)
        reports.append(report)
    return reports


# ---------------------------------------------------------------------------- discovery / CLI
def course_notebooks(root: Path = ROOT) -> list[tuple[str, str]]:
    """(workspace path, role) of every solution and student notebook in the repository."""
    found = [(f"solutions/{p.name}", "solution") for p in sorted((root / "solutions").glob("*.ipynb"))]
    found += [(f"notebooks/{p.name}", "student") for p in sorted((root / "notebooks").glob("*.ipynb"))]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="workspace paths, e.g. solutions/00_x.ipynb")
    parser.add_argument("--tour", type=Path, help="also check the offline tour in this folder")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--root", type=Path, default=ROOT, help="folder holding notebooks/ and solutions/")
    args = parser.parse_args(argv)
    targets = course_notebooks(args.root)
    if args.notebooks:
        targets = [t for t in targets if t[0] in args.notebooks]
    reports = []
    with LabServer([args.root / "notebooks", args.root / "solutions"]) as lab:
        with Browser(lab.tmp) as browser:
            for rel_path, role in targets:
                reports.append(check_notebook(browser, lab, rel_path, role, args.out))
                print(reports[-1].line(), reports[-1].timings, flush=True)
            if args.tour:
                for report in check_tour(browser, args.tour, args.out):
                    reports.append(report)
                    print(report.line(), flush=True)
    for report in reports:
        for problem in report.problems:
            print(f"FAIL {report.name}: {problem}")
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
