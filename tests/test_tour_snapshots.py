"""coursekit.tour_snapshots without a kernel: the helper cell runs in this process.

The fake ``execute`` runs each code cell with ``exec`` and turns the widgets a cell puts in
``shown`` into widget-view outputs, as a kernel displaying them would. The browser test
(tests/browser) shows the snapshots drawing offline; this one pins the notebook rewriting.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from coursekit import tour_snapshots as ts

k3d = pytest.importorskip("k3d")


LAST_RUN: dict = {}


def fake_execute(nb):
    namespace = LAST_RUN["namespace"] = {"shown": []}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        namespace["shown"] = []
        exec(cell.source, namespace)
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={ts.WIDGET_VIEW: {"version_major": 2, "version_minor": 0,
                                                    "model_id": w.model_id},
                                  "text/plain": repr(w)}) for w in namespace["shown"]]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        w.model_id: {"model_name": "AnyModel", "state": {}}
        for w in namespace.get("everything", [])}}}
    return nb


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# demo")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


SETUP = ("import numpy as np, k3d\n"
         "pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)")
SHOW_ONE = ("plot = k3d.plot(height=300)\nplot += k3d.points(pts, point_size=0.1)\n"
            "hidden = k3d.plot()\n"          # created, never displayed
            "shown.append(plot)\neverything = [plot, hidden]")


def test_displayed_plot_becomes_an_iframe_to_a_self_contained_snapshot(tmp_path):
    nb = notebook(SETUP, SHOW_ONE, "shown.append(plot)")  # the same plot shown twice
    before = json.dumps(nb)
    out = ts.execute_with_k3d_snapshots(nb, tmp_path, "demo", fake_execute)

    assert json.dumps(nb) == before, "the input notebook must not change"
    assert len(out.cells) == len(nb.cells), "the helper cell must be dropped"
    assert not any(ts.SNAPSHOT_CELL_TAG in c.metadata.get("tags", []) for c in out.cells)

    snap_dir = tmp_path / "demo_k3d"
    assert sorted(p.name for p in snap_dir.iterdir()) == ["plot_1.html"]  # no manifest, no hidden plot
    page = (snap_dir / "plot_1.html").read_text()
    assert "K3D snapshot viewer" in page
    assert not re.search(r"<script[^>]+src=", page), "a snapshot must not load scripts from anywhere"

    for cell in (out.cells[2], out.cells[3]):
        [output] = cell.outputs
        assert ts.WIDGET_VIEW not in output.data
        assert '<iframe class="coursekit-k3d" src="demo_k3d/plot_1.html"' in output.data["text/html"]
        assert 'height="300"' in output.data["text/html"]
        assert output.data["text/plain"].startswith("<k3d.plot.Plot")
    state = out.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert set(state) == {LAST_RUN["namespace"]["hidden"].model_id}, "the shown plot's state must go"


def test_plots_are_numbered_in_output_order_and_reruns_start_clean(tmp_path):
    cells = (SETUP, "a = k3d.plot(); a += k3d.points(pts); shown.append(a)",
             "b = k3d.plot(); b += k3d.points(pts * 2); shown.append(b)")
    (tmp_path / "demo_k3d").mkdir()
    (tmp_path / "demo_k3d" / "plot_9.html").write_text("stale")
    out = ts.execute_with_k3d_snapshots(notebook(*cells), tmp_path, "demo", fake_execute)
    assert sorted(p.name for p in (tmp_path / "demo_k3d").iterdir()) == ["plot_1.html", "plot_2.html"]
    assert "demo_k3d/plot_1.html" in out.cells[2].outputs[0].data["text/html"]
    assert "demo_k3d/plot_2.html" in out.cells[3].outputs[0].data["text/html"]


def test_notebook_without_a_displayed_plot_is_left_alone(tmp_path):
    out = ts.execute_with_k3d_snapshots(notebook(SETUP, "x = k3d.plot()"), tmp_path, "plain", fake_execute)
    assert not (tmp_path / "plain_k3d").exists()
    assert all(not c.get("outputs") for c in out.cells if c.cell_type == "code")
