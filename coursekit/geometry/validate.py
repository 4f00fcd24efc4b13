"""Input validation shared by the geometry ops: clear errors instead of silent wrong answers."""

from __future__ import annotations

import numpy as np
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


def check_count(value: int, name: str, upper: int | None = None, upper_name: str = "N") -> None:
    """Raise unless ``value`` is an int in ``[1, upper]`` (a count: k, samples, channels, stride)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} = {value} exceeds the number of points {upper_name} = {upper}")


def check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    """Raise a clear error unless ``vertices`` is a finite ``(V, 3)`` float tensor and ``faces`` a valid ``(F, 3)`` int64 one."""
    if not isinstance(vertices, torch.Tensor) or vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {tuple(getattr(vertices, 'shape', ()))}")
    if not vertices.dtype.is_floating_point:
        raise ValueError(f"vertices must be a float tensor, got {vertices.dtype}")
    if not torch.isfinite(vertices).all():
        raise ValueError("vertices contain NaN or infinite values")
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(getattr(faces, 'shape', ()))}")
    if faces.dtype != torch.int64:
        raise TypeError(f"faces must be int64, got {faces.dtype}")
    if faces.shape[0] == 0:
        raise ValueError("the mesh has no faces (F = 0)")
    if int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[0]:
        raise ValueError(f"faces index vertices outside [0, {vertices.shape[0]})")


def check_radius(radius: float) -> None:
    """Raise unless ``radius`` is a positive finite number."""
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
