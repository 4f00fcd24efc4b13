"""What a student sees: every course notebook in JupyterLab, and the offline HTML tour.

The course tests open each notebook in Chromium, Run All, and check the page (see
``tools/browser_check.py``). The breakage tests build small broken notebooks and show
that each check fails on exactly the breakage it exists for; a sound twin of the same
notebook passes, so the failures come from the breakage and not from the harness.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check as bc  # noqa: E402

pytestmark = pytest.mark.browser

# What each course notebook must show (solution version), by file-name prefix.
EXPECTED = {
    "00_": {"k3d": 1, "sliders": 1, "images": 2},
    "01_": {"sliders": 1, "images": 1},
}

COURSE = bc.course_notebooks(ROOT)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


IMPORTS = ("import numpy as np, k3d, matplotlib.pyplot as plt, ipywidgets as widgets\n"
           "pts = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)")
K3D_POINTS = ("plot = k3d.plot(grid_visible=False)\n"
              "plot += k3d.points(pts, point_size=0.1, color=0x1F77B4)\nplot")
K3D_EMPTY = "plot = k3d.plot(grid_visible=False, axes_helper=0)\nplot"
FIGURE = "fig, ax = plt.subplots(figsize=(4, 3))\nax.scatter(pts[:, 0], pts[:, 1], s=2)\nplt.show()"
WIRED_SLIDER = ("def show(shift=0.0):\n"
                "    fig, ax = plt.subplots(figsize=(4, 3))\n"
                "    ax.plot(np.cos(np.linspace(0, 6, 50) + shift))\n"
                "    plt.show()\n"
                "widgets.interactive(show, shift=widgets.FloatSlider(min=0, max=3, step=0.5))")
UNWIRED_SLIDER = ("slider = widgets.FloatSlider(min=0, max=3, step=0.5, description='shift')\n"
                  "out = widgets.Output()\n"
                  "with out:\n"
                  "    fig, ax = plt.subplots(figsize=(4, 3))\n"
                  "    ax.plot(np.cos(np.linspace(0, 6, 50)))\n"
                  "    plt.show()\n"
                  "widgets.VBox([slider, out])  # nothing observes the slider")


def _problems_matching(report: bc.Report, text: str) -> list[str]:
    return [p for p in report.problems if text in p]


# ---------------------------------------------------------------------------- the course
@pytest.mark.parametrize(("rel_path", "role"), COURSE or [pytest.param(None, None, marks=pytest.mark.skip(
    reason="no course notebooks yet"))], ids=[p for p, _ in COURSE] or None)
def test_course_notebook_renders(browser, lab, out_dir, rel_path, role):
    report = bc.check_notebook(browser, lab, rel_path, role, out_dir)
    print(report.line(), report.timings)
    assert report.ok, "\n".join(report.problems) + f"\n(console log: {out_dir / report.name}.console.log)"
    assert report.screenshot is not None and report.screenshot.exists()
    if role == "solution":
        name = rel_path.split("/")[-1]
        for prefix, minimum in EXPECTED.items():
            if name.startswith(prefix):
                for what, count in minimum.items():
                    assert report.counts[what] >= count, f"{name}: expected >= {count} {what}, saw {report.counts}"


# ---------------------------------------------------------------------------- breakage is caught
def test_sound_notebook_passes(browser, lab, scratch_dir):
    """The control: k3d plot, figure and a slider-driven figure, no saved state -> no problem."""
    rel = lab.add_notebook("broken/sound.ipynb", _notebook(IMPORTS, K3D_POINTS, FIGURE, WIRED_SLIDER))
    report = bc.check_notebook(browser, lab, rel, "solution", scratch_dir)
    assert report.ok, report.problems
    assert report.counts["k3d"] == 1 and report.counts["sliders"] == 1 and report.counts["images"] >= 2


def test_saved_widget_state_is_caught(browser, lab, scratch_dir):
    """nbclient's default (store_widget_state) saves the k3d model: Lab then draws no plot."""
    from coursekit.notebook_run import execute_notebook

    executed = execute_notebook(_notebook(IMPORTS, K3D_POINTS), keep_widget_state=True)
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["state"].get("_anywidget_id") == "k3d.plot.Plot" for m in state.values())
    rel = lab.add_notebook("broken/saved_state.ipynb", executed)
    report = bc.check_notebook(browser, lab, rel, "solution", scratch_dir)
    assert _problems_matching(report, "saved widget state (metadata.widgets)"), report.problems
    # ... and the page itself shows it: the k3d output stays an empty box, no canvas.
    assert _problems_matching(report, "widget rendered nothing"), report.problems
    assert report.counts["k3d"] == 0


def test_blank_k3d_canvas_is_caught(browser, lab, scratch_dir):
    rel = lab.add_notebook("broken/blank_k3d.ipynb", _notebook(IMPORTS, K3D_EMPTY))
    report = bc.check_notebook(browser, lab, rel, "solution", scratch_dir)
    assert report.counts["k3d"] == 1
    assert _problems_matching(report, "k3d canvas is blank"), report.problems
    assert (scratch_dir / f"{report.name}.console.log").exists()


def test_unwired_slider_is_caught(browser, lab, scratch_dir):
    rel = lab.add_notebook("broken/unwired_slider.ipynb", _notebook(IMPORTS, UNWIRED_SLIDER))
    report = bc.check_notebook(browser, lab, rel, "solution", scratch_dir)
    assert report.counts["sliders"] == 1
    assert _problems_matching(report, "but no image it drives changed"), report.problems


def test_student_error_outside_a_check_is_caught(browser, lab, scratch_dir):
    nb = _notebook("x = 1", "def answer(p):\n    raise NotImplementedError", "answer(x)",
                   "from coursekit.checks import check\ncheck('warmup.normalize_unit_sphere', answer)")
    rel = lab.add_notebook("broken/student_error.ipynb", nb)
    report = bc.check_notebook(browser, lab, rel, "student", scratch_dir, move_slider=False)
    assert _problems_matching(report, "cell 2: NotImplementedError outside an exercise check"), report.problems


# ---------------------------------------------------------------------------- the offline tour
def test_tour_draws_3d_offline(browser, out_dir):
    """`make tour` output, opened from file:// with every network request blocked."""
    tour = ROOT / "build" / "tour"
    assert tour.is_dir(), "build/tour is missing: run `make tour` first (make test-browser does)"
    reports = bc.check_tour(browser, tour, out_dir)
    for report in reports:
        print(report.line())
    assert all(r.ok for r in reports), [p for r in reports for p in r.problems]
    uses_k3d = [p.name for p in (ROOT / "solutions").glob("*.ipynb") if "k3d.plot(" in p.read_text()]
    if uses_k3d:
        assert sum(r.counts.get("k3d_snapshots", 0) for r in reports) >= len(uses_k3d), (
            f"{uses_k3d} draw k3d plots but the tour embeds no k3d snapshot for each: does "
            f"coursekit/tour.py call tour_snapshots.execute_with_k3d_snapshots?")


def test_tour_snapshots_draw_and_a_blank_one_is_caught(browser, tmp_path):
    """coursekit.tour_snapshots end to end: one drawn snapshot passes, one empty plot fails."""
    from coursekit.notebook_run import execute_notebook
    from coursekit.tour_snapshots import execute_with_k3d_snapshots

    page_dir = tmp_path / "tour"
    nb = _notebook(IMPORTS, K3D_POINTS, FIGURE, K3D_EMPTY)
    executed = execute_with_k3d_snapshots(
        nb, page_dir, "demo", execute=lambda work: execute_notebook(work, keep_widget_state=True))
    body, _ = HTMLExporter().from_notebook_node(executed)
    (page_dir / "demo.html").write_text(body, encoding="utf-8")
    [report] = bc.check_tour(browser, page_dir, tmp_path / "out")
    assert report.counts["k3d_snapshots"] == 2
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith("snapshot demo_k3d/plot_2.html: canvas is blank"), report.problems


# ---------------------------------------------------------------------------- serving
def test_server_and_kernels_are_gone_after_stop(tmp_path):
    """A kernel started through the server dies with it; nothing of the run is left."""
    server = bc.LabServer([], tmp=tmp_path / "lab").start()
    try:
        server.add_notebook("k.ipynb", _notebook("1 + 1"))
        server.api("POST", "/api/sessions", {"path": "k.ipynb", "type": "notebook", "name": "k.ipynb",
                                             "kernel": {"name": "python3"}})
        deadline = time.monotonic() + 30
        while not (kernels := bc.processes_mentioning(str(server.tmp / "runtime"))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kernels, "no kernel process was found while the server ran"
        server_pid = server.proc.pid
    finally:
        server.stop()
    assert not server.leftovers()
    assert not bc.process_group_alive(server_pid)
    assert not [pid for pid in kernels if bc.processes_mentioning(str(server.tmp))]


def test_make_lab_opens_notebook_00_as_root(browser, tmp_path):
    """`make lab`'s command line (as `make -n lab` prints it) opens notebooks/00 in Lab.

    The "web browser" Lab launches is a script that records the URL it was given; Chromium
    then opens that URL and must land on the notebook, loaded with a running kernel.
    """
    notebook = "notebooks/00_getting_started.ipynb"
    assert (ROOT / notebook).exists(), f"{notebook} is missing: run `make release`"
    recipe = subprocess.run(["make", "-s", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True)
    make_cmd = shlex.split(next(ln for ln in reversed(recipe.stdout.splitlines()) if "jupyter lab" in ln))
    if os.geteuid() == 0:
        assert "--allow-root" in make_cmd, "as root, `make lab` must pass --allow-root"
    opened = tmp_path / "opened_url"
    recorder = tmp_path / "record_url.sh"
    recorder.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    recorder.chmod(0o755)

    class MakeLab(bc.LabServer):
        def command(self):
            return [str(ROOT / make_cmd[0]), *make_cmd[1:], "--ip=127.0.0.1", f"--port={self.port}",
                    "--ServerApp.port_retries=0", "--IdentityProvider.token=",
                    "--ServerApp.disable_check_xsrf=True", f"--ServerApp.browser={recorder} %s",
                    "--LabApp.expose_app_in_browser=True"]

    server = MakeLab([], tmp=tmp_path / "lab")
    server.workspace = ROOT  # `make lab` runs in the repository root
    with server:
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened.exists(), "Lab never opened a browser:\n" + server.log()
        url = opened.read_text()  # Lab's redirect page (file://), as a desktop browser gets it
        page = browser.new_page()
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_url(f"{server.url}/lab/tree/{notebook}*", timeout=30_000)
            page.wait_for_function(bc._JS_READY, arg=notebook, timeout=90_000, polling=250)
        finally:
            server.shutdown_sessions()
            page.close()
