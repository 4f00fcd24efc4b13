r"""PointNet segmentation: per-point features concatenated with the global feature, a shared head per point.

Qi, Su, Mo, Guibas, "PointNet", CVPR 2017, Fig. 2 (segmentation network). The classification
encoder (:class:`~coursekit.models.pointnet.PointNet`: T-Nets, shared MLPs, max pool) gives one
global feature :math:`g`; every point's own feature :math:`h(x_i)` is concatenated with it, so
each point knows both its local geometry and the whole shape, and a shared MLP scores each point:

.. math::  s_i = \gamma_{\text{seg}}\big([\,h(x_i),\ g,\ e_k\,]\big), \qquad g = \max_j h(x_j)

with :math:`e_k` the optional one-hot object category (the paper's ShapeNetPart network
concatenates it to the global feature). Outputs are per-point logits ``(B, N, K)``.

**Kept**: encoder, T-Nets and regulariser as in the classifier; concatenation of per-point and
global features; the shared per-point head (paper 512-256-128, here from :data:`SIZES`) with
dropout before the last layer. **Changed**: the per-point feature concatenated is the encoder's
last per-point layer (the one that is max-pooled; the paper's semantic network concatenates the
64-d feature after the feature transform, its part network several layers).

Permutation: the global feature is a max (invariant), every other step acts point-wise, so
permuting the input points permutes the output rows the same way (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..nn.mlp import SharedMLP
from ..nn.tnet import orthogonality_loss
from .pointnet import SIZES as CLASSIFIER_SIZES
from .pointnet import PointNet

__all__ = ["SIZES", "PointNetSeg"]

SIZES = {name: dict(CLASSIFIER_SIZES[name], seg_head=seg_head, dropout=0.3)
         for name, seg_head in (("fast", (64, 32)), ("cpu", (128, 64)), ("gpu", (512, 256, 128)))}
"""The classifier's encoder sizes per profile plus the per-point head ``seg_head`` (``gpu``: the paper's)."""


class PointNetSeg(nn.Module):
    r"""PointNet segmentation network: per-point logits from ``[h(x_i), max_j h(x_j), category]``.

    .. math::  s_i = W\,\phi_{\text{seg}}\big([\,h(x_i),\ \max_j h(x_j),\ e_k\,]\big) + b

    Args:
        n_classes: ``K`` classes (semantic) or parts (part segmentation).
        in_channels: extra per-point input features (normals, colours).
        n_categories: object categories whose one-hot vector joins the global feature (0: none).
        input_transform, feature_transform: use the T-Nets (as :class:`PointNet`).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        reg_weight: weight of the feature-transform orthogonality loss (:meth:`regularizer`).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None``, ``category (B,)``
        int64 (with ``n_categories``) ``-> (B, N, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, n_categories: int = 0, *, input_transform: bool = True,
                 feature_transform: bool = True, sizes: dict | None = None, reg_weight: float = 0.001):
        super().__init__()
        sizes = dict(sizes or runtime.pick(SIZES))
        self.encoder = PointNet(1, in_channels, input_transform=input_transform, feature_transform=feature_transform,
                                sizes=dict(sizes, head=()), reg_weight=reg_weight)
        self.encoder.head = nn.Identity()  # the classifier head is replaced by the per-point head below
        self.n_categories, self.reg_weight = int(n_categories), float(reg_weight)
        c = sizes["mlp2"][-1]
        self.head = nn.Sequential(SharedMLP([2 * c + self.n_categories, *sizes["seg_head"]]),
                                  nn.Dropout(sizes["dropout"]), nn.Linear(sizes["seg_head"][-1], n_classes))
        self._last_feature_transform: torch.Tensor | None = None

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None,
                category: torch.Tensor | None = None) -> torch.Tensor:
        enc = self.encoder.encode(points, features)
        self._last_feature_transform = enc.feature_transform
        g = enc.global_feature
        if self.n_categories:
            if category is None or category.shape != (points.shape[0],):
                raise ValueError(f"this network takes the object category: pass category of shape ({points.shape[0]},)")
            g = torch.cat([g, nn.functional.one_hot(category, self.n_categories).to(g)], dim=-1)
        n = points.shape[1]
        return self.head(torch.cat([enc.point_features, g.unsqueeze(1).expand(-1, n, -1)], dim=-1))

    def regularizer(self) -> torch.Tensor:
        r"""``reg_weight`` :math:`\cdot \lVert I - F F^T \rVert_F^2` of the last forward pass (0 without feature T-Net)."""
        if self._last_feature_transform is None:
            return self.head[-1].weight.new_zeros(())
        return self.reg_weight * orthogonality_loss(self._last_feature_transform)
