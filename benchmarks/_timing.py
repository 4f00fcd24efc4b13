"""Shared timing for the benchmark scripts: min-of-repeats wall time, per-call peak memory, peer tables.

The peak resident memory one call added is Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs`` (tracemalloc cannot see PyTorch's allocator). For per-call peaks,
a script calls :func:`fix_malloc_threshold` first: it re-executes the script with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB so that freed blocks go back to the system and one
call's peak is not hidden or inflated by what an earlier call left in the heap.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _rss_kib(field: str) -> int | None:
    try:
        line = next(l for l in _STATUS.read_text().splitlines() if l.startswith(field))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1])


def fix_malloc_threshold() -> None:
    """Re-execute this script with ``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB (Linux, once)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)})


def measure(fn, repeats: int) -> tuple[float, float | None]:
    """Minimum wall time over ``repeats`` calls (seconds) and the peak resident memory one call added (MiB)."""
    fn()  # warm-up (first-call allocations, tree of lazy imports)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    peak = None
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kib("VmRSS")
        fn()
        after = _rss_kib("VmHWM")
        peak = (after - before) / 1024 if before is not None and after is not None else None
    except OSError:
        pass
    return best, peak


def print_peer_table(rows, skipped: str) -> None:
    """Print one markdown table: coursekit's time and peak per row, then each peer's and ``peer / coursekit``.

    Args:
        rows: iterable of ``(op, size, ours, peers, repeats)``; ``peers`` is a list of
            ``(name, fn)`` where ``fn`` is a callable, a string (printed instead of a time,
            e.g. "not installed") or ``None`` (printed as ``skipped``).
        skipped: the text printed for a ``None`` peer.
    """
    print("| op | size | coursekit ms | peak MiB | peer | peer ms | peer peak MiB | peer / coursekit |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    for op, size, ours, peers, reps in rows:
        t, peak = measure(ours, reps)
        first = True
        for name, peer in peers:
            lead = f"| {op} | {size} | {t * 1e3:.1f} | {fmt(peak)} |" if first else "| | | | |"
            first = False
            if peer is None or isinstance(peer, str):
                print(f"{lead} {name} | {peer or skipped} | | |")
                continue
            pt, ppeak = measure(peer, reps)
            print(f"{lead} {name} | {pt * 1e3:.1f} | {fmt(ppeak)} | {pt / t:.2f} |", flush=True)
