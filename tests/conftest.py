"""Shared test set-up.

* Tests run in the ``fast`` profile (CPU, small sizes) unless ``COURSEKIT_PROFILE``
  says otherwise, so results do not depend on the machine.
* One thread per process (this process and the notebook kernels it starts inherit
  ``OMP_NUM_THREADS=1``): ``make test`` runs two workers on two cores, and tight
  per-step loops (FPS, small matmuls) stall badly when threads outnumber cores.
* ``gen``: a seeded ``torch.Generator`` for tests that draw random inputs.
* Under ``pytest -n 2 --dist loadfile`` (``make test``) the notebook tests are
  scheduled one notebook per unit instead of one file per unit, so that the two
  workers execute different notebooks at the same time.
"""

import os

os.environ.setdefault("COURSEKIT_PROFILE", "fast")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

NOTEBOOK_TESTS = "test_notebooks.py::"


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _scope(nodeid: str) -> str:
    """One scheduling unit per file, except one per notebook (the ``[...]`` id) in the notebook tests."""
    path, _, rest = nodeid.partition("::")
    if NOTEBOOK_TESTS in nodeid and "[" in rest:
        return path + "::" + rest[rest.index("["):]
    return path


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return NotebookScheduling(config, log)
