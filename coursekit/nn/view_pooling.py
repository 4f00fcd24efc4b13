r"""View pooling (Multi-view CNN): combine the features of all rendered views by an element-wise max.

"All image features are combined by view pooling ... and then passed through CNN_2" (Su, Maji,
Kalogerakis, Learned-Miller, "Multi-view convolutional neural networks for 3D shape
recognition", ICCV 2015):

.. math::  g[b, c, \dots] = \max_{v = 1..V} f[b, v, c, \dots]

The max is symmetric in the views, so the pooled descriptor does not depend on the order in
which the cameras are listed (the tests check it), and it keeps, per feature, the view that
shows it best.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["view_pool", "ViewPooling"]


def view_pool(view_features: torch.Tensor) -> torch.Tensor:
    r"""Element-wise maximum over the view axis (dim 1).

    .. math::  g[b, \dots] = \max_{v} f[b, v, \dots]

    Args:
        view_features: ``(B, V, ...)``, e.g. ``(B, V, C)`` vectors or ``(B, V, C, H, W)`` feature maps.

    Returns:
        ``(B, ...)``; the gradient flows to the view that attains each maximum.
    """
    if not isinstance(view_features, torch.Tensor) or view_features.dim() < 3:
        raise ValueError("view_features must have shape (B, V, ...) with at least one feature axis, "
                         f"got {tuple(getattr(view_features, 'shape', ()))}")
    if view_features.shape[1] == 0:
        raise ValueError("view_features has no views (V = 0)")
    return view_features.amax(dim=1)


class ViewPooling(nn.Module):
    """:func:`view_pool` as a module. Shapes: ``(B, V, ...)`` -> ``(B, ...)``."""

    def forward(self, view_features: torch.Tensor) -> torch.Tensor:
        return view_pool(view_features)
