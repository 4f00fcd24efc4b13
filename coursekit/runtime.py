"""Where the course runs: device, seeding, the runtime profile and data folders.

The profile is the only global state in coursekit. It decides how big every
training run is, so that one notebook serves three audiences:

========  ==========================================  ==============================
profile   who                                         budget
========  ==========================================  ==============================
``fast``  tests and CI (``CI`` is set)                seconds per notebook section
``cpu``   a laptop without a GPU                      ~10 minutes per notebook
``gpu``   a machine with CUDA (or Apple MPS)          the slide-scale runs
========  ==========================================  ==============================

Choice, first match wins: :func:`set_profile`, the ``COURSEKIT_PROFILE``
environment variable, ``fast`` when ``CI`` is set, ``gpu`` when an accelerator
is present, else ``cpu``.

Sizes live next to the code that uses them, as one table per experiment keyed
by profile, and are read through :func:`pick`::

    >>> sizes = pick({"fast": {"epochs": 1}, "cpu": {"epochs": 5}, "gpu": {"epochs": 50}})
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Mapping, TypeVar

import numpy as np
import torch

PROFILES = ("fast", "cpu", "gpu")
ENV_PROFILE = "COURSEKIT_PROFILE"
ENV_DATA = "COURSEKIT_DATA"

_override: str | None = None
T = TypeVar("T")


def _accelerator() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def device() -> torch.device:
    """The device to compute on: ``cuda``, then ``mps``, then ``cpu``.

    In the ``fast`` profile the CPU is used even when a GPU is present, so that
    test results do not depend on the machine.
    """
    if profile() == "fast":
        return torch.device("cpu")
    return torch.device(_accelerator() or "cpu")


def profile() -> str:
    """The active profile name: ``"fast"``, ``"cpu"`` or ``"gpu"``."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_PROFILE, "").strip().lower()
    if env:
        if env not in PROFILES:
            raise ValueError(f"{ENV_PROFILE}={env!r} is not a profile; choose one of {PROFILES}")
        return env
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return "fast"
    return "gpu" if _accelerator() else "cpu"


def set_profile(name: str | None) -> None:
    """Force a profile for this process (``None`` returns to automatic choice)."""
    global _override
    if name is not None and name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES}")
    _override = name


def pick(table: Mapping[str, T]) -> T:
    """The entry of a ``{profile: value}`` table for the active profile.

    Raises:
        KeyError: if the table lacks the active profile (a table must name all three).
    """
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise KeyError(f"profile table lacks {missing}; it must define {PROFILES}")
    return table[profile()]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a CPU generator seeded the same.

    CPU runs are bit-reproducible after this call; GPU kernels may still differ
    in the last bits.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def data_dir() -> Path:
    """Folder for caches the course writes (``$COURSEKIT_DATA`` or ``~/.cache/coursekit``)."""
    path = Path(os.environ.get(ENV_DATA) or Path.home() / ".cache" / "coursekit")
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe() -> str:
    """One line for a notebook's first cell: torch version, device and profile."""
    return f"torch {torch.__version__} | device {device()} | profile {profile()}"
