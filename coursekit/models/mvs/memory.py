r"""Peak tensor memory of a computation, on any device (R-MVSNet's motivation, measured).

:func:`peak_tensor_memory` runs a function under a ``TorchDispatchMode`` that sees every
tensor an operator returns, counts each new storage's bytes while any tensor refers to it
(weak references; PyTorch keeps a tensor's Python object alive as long as autograd or
another tensor holds it) and records the maximum of the running total:

.. math::  M_{peak} = \max_t \sum_{s \text{ alive at } t} \text{bytes}(s)

It counts what the operators allocate (activations, cost volumes, saved tensors), not the
inputs or parameters that existed before, nor allocator caching or fragmentation, so it
is deterministic and equal on CPU and GPU (on CUDA the allocator's
``max_memory_allocated`` agrees up to rounding to 512-byte blocks).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["peak_tensor_memory"]


class _LiveStorages(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.refs: dict[tuple, int] = {}
        self.sizes: dict[tuple, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: tuple) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = (t.device.type, t.device.index, storage.data_ptr())
            if key not in self.refs:
                if storage.nbytes() == 0:
                    continue
                self.refs[key], self.sizes[key] = 0, storage.nbytes()
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def peak_tensor_memory(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(result, peak_bytes)``: the most tensor memory its operators held at once.

    >>> _, peak = peak_tensor_memory(lambda: torch.zeros(1000).add(1).sum())
    >>> peak >= 4000
    True
    """
    tracker = _LiveStorages()
    with tracker:
        result = fn()
    return result, tracker.peak
