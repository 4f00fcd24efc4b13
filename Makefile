# The whole set-up is `make lab` (run the course) or `make test` (run the tests).
# Both bootstrap .venv on first use: torch first, pinned to the CPU build that pip
# finds on disk (a bare `torch` would pull a multi-GB CUDA build), then the package.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup lab test test-all tour test-browser release clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import torch, coursekit, nbval, k3d, jupyterlab" 
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (coursekit)" >/dev/null
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_getting_started.ipynb

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -m "" $(PYTEST_ARGS)

tour: $(STAMP)
	$(PY) -m coursekit tour solutions --out build/tour

# JupyterLab driven in headless Chromium (installs Debian's chromium and playwright when missing).
test-browser: $(STAMP) tour
	bash tools/install_browser.sh
	$(PY) -m pytest tests/browser -m browser $(PYTEST_ARGS)

release: $(STAMP)
	$(PY) -m coursekit release solutions notebooks

clean:
	rm -rf build .pytest_cache
