r"""DGCNN: EdgeConv layers on a kNN graph recomputed in feature space at every layer.

Wang, Sun, Liu, Sarma, Bronstein, Solomon, "Dynamic Graph CNN for Learning on Point Clouds",
ACM TOG 2019 (arXiv:1801.07829), Fig. 3 and the authors' PyTorch ``DGCNN`` model: the slide's
"points -> nodes, neighborhood -> edges". Four EdgeConv layers, each building its kNN graph
from its own input (xyz for the first, features after), their outputs concatenated and lifted
by a shared layer, then max and average pooling concatenated, and a fully connected head.

Kept from the paper (``gpu`` size): ``k = 20`` neighbours (the point itself included, as in
the code), EdgeConv widths 64-64-128-256, embedding 1024, FC(512, 256) with dropout 0.5,
BatchNorm + LeakyReLU(0.2) everywhere, max + mean pooling. Scaled in ``fast``/``cpu``
(table :data:`SIZES`): fewer points, ``k`` scaled with them (20 x 512 / 1024 = 10 at ``cpu`` size), narrower layers.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.validate import check_points
from ..nn.edgeconv import EdgeConv
from ..nn.mlp import SharedMLP, classifier_head

SIZES = {
    "fast": dict(n_points=128, k=8, edge=(16, 16, 32, 32), embedding=64, head=(32, 16), dropout=0.5),
    "cpu": dict(n_points=512, k=10, edge=(32, 32, 64, 128), embedding=256, head=(128, 64), dropout=0.5),
    "gpu": dict(n_points=1024, k=20, edge=(64, 64, 128, 256), embedding=1024, head=(512, 256), dropout=0.5),
}
"""DGCNN sizes per profile; ``gpu`` is the paper's classification network."""


class DGCNN(nn.Module):
    r"""Dynamic graph CNN classifier.

    .. math::  x^{(l+1)}_i = \max_{j \in \mathcal{N}_k(x^{(l)}_i)} \phi\big([x^{(l)}_i,\ x^{(l)}_j - x^{(l)}_i] W_l\big),
               \qquad g = [\max_i e_i,\ \operatorname{mean}_i e_i], \quad e_i = \phi(W_e [x^{(1)}_i, \dots, x^{(4)}_i])

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features, concatenated to xyz for the first graph.
        sizes: a :data:`SIZES` entry (default: the active profile's).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``; ``N >= k``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, sizes: dict | None = None):
        super().__init__()
        sizes = sizes or runtime.pick(SIZES)
        self.in_channels, self.k = int(in_channels), int(sizes["k"])
        widths = [3 + self.in_channels, *sizes["edge"]]
        self.edge_convs = nn.ModuleList(EdgeConv(a, b, self.k) for a, b in zip(widths[:-1], widths[1:]))
        self.embed = SharedMLP([sum(sizes["edge"]), sizes["embedding"]], negative_slope=0.2)
        self.head = classifier_head(2 * sizes["embedding"], sizes["head"], n_classes, sizes["dropout"], negative_slope=0.2)

    def global_feature(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, 3) -> (B, 2 * embedding)``: max and mean pooled embeddings."""
        check_points(points)
        if points.shape[1] < self.k:
            raise ValueError(f"DGCNN with k = {self.k} needs at least {self.k} points per cloud, got N = {points.shape[1]}")
        if features is not None and (features.dim() != 3 or features.shape[:2] != points.shape[:2]):
            raise ValueError(f"features must have shape ({points.shape[0]}, {points.shape[1]}, C), got {tuple(features.shape)}")
        x = points if features is None else torch.cat([points, features], dim=-1)
        outputs = []
        for conv in self.edge_convs:
            x = conv(x)  # each layer builds its kNN graph from its own input: the dynamic graph
            outputs.append(x)
        e = self.embed(torch.cat(outputs, dim=-1))
        return torch.cat([e.amax(dim=1), e.mean(dim=1)], dim=-1)

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.global_feature(points, features))

    def regularizer(self) -> torch.Tensor:
        """DGCNN has no auxiliary loss: 0 (for a uniform training loop)."""
        return self.head[-1].weight.new_zeros(())
