"""Input validation shared by the geometry ops: clear errors instead of silent wrong answers."""

from __future__ import annotations

import torch


def check_points(points: torch.Tensor, name: str = "points", dim: int | None = 3, allow_empty: bool = False) -> None:
    """Raise a ``ValueError`` naming the problem unless ``points`` is a finite ``(B, N, D)`` float tensor.

    Args:
        points: the tensor to validate.
        name: how the error message calls it.
        dim: the required size of the last axis (``None`` accepts any).
        allow_empty: accept ``N == 0``.
    """
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    want = f"(B, N, {dim if dim is not None else 'D'})"
    if points.dim() != 3 or (dim is not None and points.shape[-1] != dim):
        raise ValueError(f"{name} must have shape {want}, got {tuple(points.shape)}")
    if not points.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got {points.dtype}")
    if points.shape[1] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty cloud (N = 0)")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite values")
