"""The tour: every solution notebook executed and exported as HTML, plus an index page.

``coursekit tour solutions --out build/tour`` leaves the solution files
untouched: each notebook runs in memory (working directory = its folder) and
only the HTML, the executed copy and the k3d snapshots land in the output folder.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from .grading.release import dumps, write_atomic
from .notebook_run import execute_notebook
from .tour_snapshots import execute_with_k3d_snapshots


def tour_notebook(path: str | os.PathLike, out_dir: str | os.PathLike, *, profile: str = "fast",
                  timeout: int = 1800) -> Path:
    """Execute one notebook and write ``out_dir/NAME.html`` and ``out_dir/NAME.ipynb``.

    Every k3d plot becomes an offline snapshot in ``out_dir/NAME_k3d/`` embedded in the
    page (:mod:`coursekit.tour_snapshots`); other widgets keep their state in this
    export copy, so that the HTML shows them when their JavaScript can be loaded.

    Returns:
        The HTML file.
    """
    path, out_dir = Path(path), Path(out_dir)
    nb = execute_with_k3d_snapshots(
        nbformat.read(path, as_version=4), out_dir, path.stem,
        lambda work: execute_notebook(work, profile=profile, cwd=path.parent, timeout=timeout, keep_widget_state=True))
    write_atomic(dumps(nb), out_dir / path.name)
    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    target = out_dir / f"{path.stem}.html"
    write_atomic(body, target)
    return target


def write_index(pages: list[Path], out_dir: str | os.PathLike) -> Path:
    """``out_dir/index.html`` linking every page, in order."""
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
    target = Path(out_dir) / "index.html"
    write_atomic(f"<!doctype html>\n<meta charset='utf-8'><title>coursekit tour</title>\n"
                 f"<h1>coursekit tour</h1>\n<ol>\n{items}\n</ol>\n", target)
    return target


def build_tour(solutions_dir: str | os.PathLike, out_dir: str | os.PathLike, *, profile: str = "fast",
               timeout: int = 1800) -> list[Path]:
    """Run :func:`tour_notebook` on every ``*.ipynb`` of ``solutions_dir`` and write the index.

    Returns:
        The HTML pages, index last.
    """
    notebooks = sorted(Path(solutions_dir).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {solutions_dir}")
    pages = []
    for path in notebooks:
        pages.append(tour_notebook(path, out_dir, profile=profile, timeout=timeout))
        print(f"ok {path} -> {pages[-1]}")
    return pages + [write_index(pages, out_dir)]

