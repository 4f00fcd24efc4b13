r"""PointNet++ segmentation: set abstraction down, feature propagation up, skip links, per-point head.

Qi, Yi, Su, Guibas, "PointNet++", NeurIPS 2017, Sec. 3.4 and the authors'
``pointnet2_sem_seg.py`` (the slide's encoder-decoder on points). The encoder is the
classifier's set abstraction levels (:func:`~coursekit.models.pointnet2.single_scale_levels`);
the decoder walks back level by level with
:class:`~coursekit.nn.feature_propagation.FeaturePropagation` (three-NN inverse-distance
interpolation, concatenation with the encoder's features of that level, unit PointNet):

.. math::  (x^{(l)}, f^{(l)}) = \operatorname{SA}_l(x^{(l-1)}, f^{(l-1)}),\quad
           \tilde f^{(l-1)} = \operatorname{FP}_l\big(x^{(l-1)}, x^{(l)}, \tilde f^{(l)}, f^{(l-1)}\big),\quad
           s_i = \gamma(\tilde f^{(0)}_i)

**Kept** (``gpu`` size = the authors' ScanNet network): SA(1024, r 0.1, 32, 32-32-64),
SA(256, 0.2, 32, 64-64-128), SA(64, 0.4, 32, 128-128-256), SA(16, 0.8, 32, 256-256-512);
FP(256, 256), FP(256, 256), FP(256, 128), FP(128, 128, 128); head FC 128, dropout 0.5.
**Scaled** in ``fast``/``cpu`` (fewer centres and levels, narrower MLPs, radii for inputs
normalised to ``[-1, 1]^3``). FPS starts at the point farthest from the centroid
(:mod:`coursekit.nn.set_abstraction`).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..nn.feature_propagation import FeaturePropagation
from ..nn.mlp import SharedMLP
from ..nn.set_abstraction import MiniPointNet
from .pointnet2 import single_scale_levels

__all__ = ["SIZES", "PointNet2Seg"]

SIZES = {
    "fast": dict(levels=[dict(n_centres=128, radius=0.2, n_samples=16, mlp=(16, 16, 32)),
                         dict(n_centres=32, radius=0.5, n_samples=16, mlp=(32, 32, 64))],
                 fp=[(64,), (32, 32)], head=(32,), dropout=0.3),
    "cpu": dict(levels=[dict(n_centres=512, radius=0.1, n_samples=32, mlp=(32, 32, 64)),
                        dict(n_centres=128, radius=0.2, n_samples=32, mlp=(64, 64, 128)),
                        dict(n_centres=32, radius=0.4, n_samples=32, mlp=(128, 128, 256))],
                fp=[(128, 128), (128, 64), (64, 64)], head=(64,), dropout=0.5),
    "gpu": dict(levels=[dict(n_centres=1024, radius=0.1, n_samples=32, mlp=(32, 32, 64)),
                        dict(n_centres=256, radius=0.2, n_samples=32, mlp=(64, 64, 128)),
                        dict(n_centres=64, radius=0.4, n_samples=32, mlp=(128, 128, 256)),
                        dict(n_centres=16, radius=0.8, n_samples=32, mlp=(256, 256, 512))],
                fp=[(256, 256), (256, 256), (256, 128), (128, 128, 128)], head=(128,), dropout=0.5),
}
"""Sizes per profile: ``levels`` (coarsening order), ``fp`` widths (decoding order, coarsest first), ``head``."""


class PointNet2Seg(nn.Module):
    r"""PointNet++ (SSG) segmentation network with feature propagation and skip links.

    .. math::  s_i = W\,\phi\big(\tilde f^{(0)}_i\big) + b, \qquad
               \tilde f^{(l-1)} = h_l\Big(\Big[\textstyle\sum_{j \in 3NN(i)} \frac{w_{ij}}{\sum w} \tilde f^{(l)}_j,\ f^{(l-1)}_i\Big]\Big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point input features (colours, image features); they are also
            the skip features of the last decoder level.
        n_categories: object categories whose one-hot vector joins the input level's skip
            features (ShapeNetPart network; 0: none).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        grouping: ``"ball"`` (paper) or ``"knn"`` (radii unused).
        xyz_features: append the absolute coordinates to the input features. Set abstraction sees
            only coordinates relative to each centre, so without them a room network cannot tell
            height (floor from table top); the authors' ScanNet / S3DIS inputs carry the location too.

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None``, ``category (B,)``
        ``-> (B, N, K)``; ``N`` at least the first level's centres.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, n_categories: int = 0, *, sizes: dict | None = None,
                 grouping: str = "ball", xyz_features: bool = False):
        super().__init__()
        if grouping not in ("ball", "knn"):
            raise ValueError(f"grouping must be 'ball' or 'knn', got {grouping!r}")
        sizes = sizes or runtime.pick(SIZES)
        if len(sizes["fp"]) != len(sizes["levels"]):
            raise ValueError(f"need one fp entry per level, got {len(sizes['fp'])} for {len(sizes['levels'])} levels")
        specs = [dict(spec, radius=spec["radius"] if grouping == "ball" else None) for spec in sizes["levels"]]
        self.in_channels, self.n_categories, self.xyz_features = int(in_channels), int(n_categories), bool(xyz_features)
        channels_in = self.in_channels + 3 * self.xyz_features
        levels, _ = single_scale_levels(specs, lambda c, spec, i: MiniPointNet(c, spec["mlp"]), channels_in)
        self.levels = nn.ModuleList(levels)
        skips = [channels_in + self.n_categories] + [lvl.out_channels for lvl in levels[:-1]]
        channels = levels[-1].out_channels
        fps = []
        for skip, widths in zip(reversed(skips), sizes["fp"]):
            fps.append(FeaturePropagation(channels, skip, widths))
            channels = fps[-1].out_channels
        self.fp = nn.ModuleList(fps)
        self.head = nn.Sequential(SharedMLP([channels, *sizes["head"]]), nn.Dropout(sizes["dropout"]),
                                  nn.Linear(sizes["head"][-1], n_classes))

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None,
                category: torch.Tensor | None = None) -> torch.Tensor:
        if self.in_channels and (features is None or features.shape[-1] != self.in_channels):
            raise ValueError(f"this network expects features (B, N, {self.in_channels})")
        if self.xyz_features:
            features = points if features is None else torch.cat([points, features], dim=-1)
        xyz, feats = [points], [features]
        for level in self.levels:
            centres, f = level(xyz[-1], feats[-1])
            xyz.append(centres)
            feats.append(f)
        skip0 = features
        if self.n_categories:
            if category is None or category.shape != (points.shape[0],):
                raise ValueError(f"this network takes the object category: pass category of shape ({points.shape[0]},)")
            onehot = nn.functional.one_hot(category, self.n_categories).to(points)[:, None].expand(-1, points.shape[1], -1)
            skip0 = onehot if features is None else torch.cat([features, onehot], dim=-1)
        skips = [skip0] + feats[1:-1]
        f = feats[-1]
        for i, fp in enumerate(self.fp):
            level = len(self.levels) - 1 - i  # decode from level+1 (sparse) to level (dense)
            f = fp(xyz[level], xyz[level + 1], f, skips[level])
        return self.head(f)
