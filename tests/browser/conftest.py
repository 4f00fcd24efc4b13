"""Fixtures for the browser tests: one JupyterLab server and one Chromium for the session.

These tests need Debian's chromium and playwright (``tools/install_browser.sh``) and take
minutes, so they run only when selected with ``-m browser`` (``make test-browser``): the
default ``-m`` in pyproject.toml deselects them, and a run that selects everything
(``make test-all``, ``-m ""``) skips them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import browser_check  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if "browser" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run with `make test-browser` (-m browser)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lab():
    """JupyterLab over copies of notebooks/ and solutions/ (plus whatever tests add)."""
    with browser_check.LabServer([ROOT / "notebooks", ROOT / "solutions"]) as server:
        yield server


@pytest.fixture(scope="session")
def browser(lab):
    with browser_check.Browser(lab.tmp) as chromium:
        yield chromium


@pytest.fixture(scope="session")
def out_dir():
    """Screenshots, console logs and summary.txt of the course (build/browser/, made afresh)."""
    shutil.rmtree(browser_check.OUT_DIR, ignore_errors=True)
    browser_check.OUT_DIR.mkdir(parents=True)
    return browser_check.OUT_DIR


@pytest.fixture
def scratch_dir(tmp_path):
    """Screenshots and logs of the deliberately broken notebooks (kept out of build/)."""
    return tmp_path / "browser"
