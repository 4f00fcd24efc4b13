"""Offline 3D views for the HTML tour: every k3d plot saved as a self-contained snapshot.

``nbconvert --to html`` loads widget renderers from CDNs, so an exported k3d plot
shows nothing offline. k3d's own :meth:`k3d.plot.Plot.get_snapshot` (with
``snapshot_type="full"``, the default since k3d 2.16) writes one HTML file that
carries the renderer and the data and draws without any network.

:func:`execute_with_k3d_snapshots` executes a notebook with one extra, trailing
cell that asks the still-running kernel for a snapshot of every live k3d plot,
then drops that cell again and replaces each k3d widget output of the executed
notebook by an ``<iframe>`` (plus a link) pointing at the snapshot file. The
notebook's own static matplotlib fallback, next to the plot, stays as it is.

Layout, for a page ``<page_dir>/<stem>.html``::

    <page_dir>/<stem>_k3d/plot_1.html, plot_2.html, ...   (in output order)

The tour page refers to them by relative path, so the folder can be copied,
zipped or opened from ``file://``.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Callable

import nbformat
from nbformat import NotebookNode

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SNAPSHOT_CELL_TAG = "coursekit-k3d-snapshots"
IFRAME_CLASS = "coursekit-k3d"
MANIFEST = "manifest.json"

# Runs in the notebook's kernel after the last cell. Only plots of k3d (if the notebook
# imported it) are written; the manifest maps each widget model id to its file and height.
_SNAPSHOT_CODE = '''\
def _coursekit_k3d_snapshots(out_dir):
    import json, pathlib, sys
    if "k3d" not in sys.modules:
        return
    from ipywidgets.widgets.widget import _instances
    from k3d.plot import Plot
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for model_id, widget in list(_instances.items()):
        if isinstance(widget, Plot):
            widget.snapshot_type = "full"
            (out / f"{model_id}.html").write_text(widget.get_snapshot(), encoding="utf-8")
            manifest[model_id] = {"file": f"{model_id}.html", "height": int(widget.height)}
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
_coursekit_k3d_snapshots(__OUT_DIR__)
del _coursekit_k3d_snapshots
'''


def snapshot_dir(page_dir: Path | str, stem: str) -> Path:
    """Folder holding the k3d snapshots of page ``<page_dir>/<stem>.html``."""
    return Path(page_dir) / f"{stem}_k3d"


def execute_with_k3d_snapshots(
    nb: NotebookNode,
    page_dir: Path | str,
    stem: str,
    execute: Callable[[NotebookNode], NotebookNode],
) -> NotebookNode:
    """Execute ``nb`` and link a self-contained k3d snapshot for each k3d plot it shows.

    Args:
        nb: the notebook to execute (not modified).
        page_dir: folder the tour page ``<stem>.html`` will be written to.
        stem: the page's file name without ``.html`` (the notebook's stem).
        execute: runs a notebook in ONE kernel and returns the executed notebook, e.g.
            ``lambda nb: nbclient.NotebookClient(nb, ...).execute()``. Keep nbclient's
            default ``store_widget_state=True``: with ``False``, nbclient 0.10 crashes on
            any Output widget (``widgets.interactive`` has one).

    Returns:
        The executed notebook, without the helper cell, in which every k3d widget output
        (``application/vnd.jupyter.widget-view+json`` of a k3d plot) is replaced by an HTML
        ``<iframe class="coursekit-k3d">`` and a link to ``<stem>_k3d/plot_<i>.html``; the
        saved state of those k3d models (if ``execute`` kept ``metadata.widgets``) is
        dropped, other widgets' state is kept. Snapshot files of plots that were never
        displayed are removed; the folder is removed when the notebook shows no k3d plot.
    """
    out = snapshot_dir(page_dir, stem).resolve()
    if out.exists():
        shutil.rmtree(out)
    work = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy, same node types
    cell = nbformat.v4.new_code_cell(_SNAPSHOT_CODE.replace("__OUT_DIR__", repr(str(out))))
    cell.metadata["tags"] = [SNAPSHOT_CELL_TAG]
    work.cells.append(cell)

    executed = execute(work)

    executed.cells = [c for c in executed.cells
                      if SNAPSHOT_CELL_TAG not in c.get("metadata", {}).get("tags", [])]
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    _link_snapshots(executed, out, manifest)
    return executed


def _link_snapshots(nb: NotebookNode, out: Path, manifest: dict) -> None:
    """Rename the snapshots ``plot_<i>.html`` in output order and point the outputs at them."""
    names: dict[str, str] = {}  # model id -> plot_<i>.html (a plot shown twice keeps one file)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            model_id = view.get("model_id") if view else None
            if model_id not in manifest:
                continue
            if model_id not in names:
                names[model_id] = f"plot_{len(names) + 1}.html"
                (out / manifest[model_id]["file"]).rename(out / names[model_id])
            state.get("state", {}).pop(model_id, None)
            output["data"] = {
                "text/html": _embed(f"{out.name}/{names[model_id]}", manifest[model_id]["height"]),
                "text/plain": output["data"].get("text/plain", "k3d plot"),
            }
    for leftover in out.glob("*") if out.exists() else ():
        if leftover.name not in names.values():
            leftover.unlink()
    if out.exists() and not names:
        out.rmdir()


def _embed(src: str, height: int) -> str:
    """HTML that shows a snapshot inline and links to it for a full-window view."""
    src = html.escape(src, quote=True)
    return (
        f'<iframe class="{IFRAME_CLASS}" src="{src}" width="100%" height="{height}" '
        f'style="border: 1px solid #ddd" title="interactive 3D view (k3d snapshot)"></iframe>\n'
        f'<p><a href="{src}" target="_blank">Open the 3D view in its own window</a> '
        f'(a self-contained k3d snapshot; drag to rotate, scroll to zoom).</p>'
    )
