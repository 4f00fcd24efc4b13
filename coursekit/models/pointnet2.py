r"""PointNet++ classifiers (SSG and MSG) and the hierarchical skeleton the point-convolution models share.

Qi, Yi, Su, Guibas, "PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space", NeurIPS 2017 (arXiv:1706.02413). Set abstraction levels (farthest point sampling,
ball query, a mini-PointNet on coordinates relative to each centre) repeated, then a global
"group all" PointNet and a fully connected head: PointNet applied recursively on a nested
partitioning of the input, so features have local context (the slide's "Limitations of
PointNet: no local context for each point").

Kept from the authors' ``pointnet2_cls_ssg.py`` / ``pointnet2_cls_msg.py`` (``gpu`` size):

* SSG: SA(512 centres, r 0.2, 32 samples, MLP 64-64-128), SA(128, r 0.4, 64, 128-128-256),
  global SA(256-512-1024), FC(512, 256), dropout 0.5.
* MSG: SA(512; r 0.1/0.2/0.4; 16/32/128 samples; 32-32-64 | 64-64-128 | 64-96-128),
  SA(128; r 0.2/0.4/0.8; 32/64/128; 64-64-128 | 128-128-256 | 128-128-256), global SA, FC
  (512, 256), dropout 0.6 (the code's ``keep_prob=0.4``).

Scaled in ``fast``/``cpu``: fewer points (128 / 512), fewer centres, radii grown with the
point spacing (spacing on a surface scales as :math:`N^{-1/2}`), narrower MLPs (table
:data:`SIZES`). Inputs are assumed normalised to the unit sphere, as in the paper.
Changed: FPS starts at the point farthest from the centroid instead of index 0 (so the
centres do not depend on the input order; see :mod:`coursekit.nn.set_abstraction`).

:class:`HierarchicalClassifier` is the PointNet++ skeleton with a pluggable local operator;
RS-CNN, PointConv, KPConv and PCNN use it with their own convolutions, as their authors did
(RS-CNN and PointConv build on the PointNet++ code base).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .. import runtime
from ..nn.mlp import classifier_head
from ..nn.set_abstraction import GlobalSetAbstraction, MiniPointNet, Scale, SetAbstraction

SIZES = {
    "fast": dict(
        n_points=128, dropout=dict(ssg=0.5, msg=0.6), head=(32, 16), global_mlp=(32, 64),
        ssg=[dict(n_centres=32, radius=0.4, n_samples=16, mlp=(16, 16, 32)),
             dict(n_centres=8, radius=0.8, n_samples=16, mlp=(32, 32, 32))],
        msg=[dict(n_centres=32, scales=[(0.25, 8, (8, 8, 16)), (0.5, 16, (16, 16, 16))]),
             dict(n_centres=8, scales=[(0.5, 8, (16, 16, 32)), (1.0, 16, (16, 16, 32))])]),
    "cpu": dict(
        n_points=512, dropout=dict(ssg=0.5, msg=0.6), head=(128, 64), global_mlp=(128, 256),
        ssg=[dict(n_centres=128, radius=0.3, n_samples=32, mlp=(32, 32, 64)),
             dict(n_centres=32, radius=0.6, n_samples=32, mlp=(64, 64, 128))],
        msg=[dict(n_centres=128, scales=[(0.15, 16, (16, 16, 32)), (0.3, 32, (32, 32, 64)), (0.6, 64, (32, 48, 64))]),
             dict(n_centres=32, scales=[(0.3, 16, (32, 32, 64)), (0.6, 32, (64, 64, 128)), (1.2, 32, (64, 64, 128))])]),
    "gpu": dict(
        n_points=1024, dropout=dict(ssg=0.5, msg=0.6), head=(512, 256), global_mlp=(256, 512, 1024),
        ssg=[dict(n_centres=512, radius=0.2, n_samples=32, mlp=(64, 64, 128)),
             dict(n_centres=128, radius=0.4, n_samples=64, mlp=(128, 128, 256))],
        msg=[dict(n_centres=512, scales=[(0.1, 16, (32, 32, 64)), (0.2, 32, (64, 64, 128)), (0.4, 128, (64, 96, 128))]),
             dict(n_centres=128, scales=[(0.2, 32, (64, 64, 128)), (0.4, 64, (128, 128, 256)), (0.8, 128, (128, 128, 256))])]),
}
"""PointNet++ sizes per profile; ``gpu`` is the paper's (dropout: ``keep_prob`` 0.5 for SSG, 0.4 for MSG)."""


class HierarchicalClassifier(nn.Module):
    r"""Set abstraction levels, a global "group all" level and a classifier head.

    .. math::  (x^{(l+1)}, f^{(l+1)}) = \operatorname{SA}_l(x^{(l)}, f^{(l)}), \qquad
               \text{logits} = \gamma\big(\max_i h([x^{(L)}_i, f^{(L)}_i])\big)

    Args:
        levels: the :class:`~coursekit.nn.set_abstraction.SetAbstraction` levels in order.
        global_level: the :class:`~coursekit.nn.set_abstraction.GlobalSetAbstraction`.
        head: logits from the global feature.

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, C)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, levels: Sequence[SetAbstraction], global_level: GlobalSetAbstraction, head: nn.Module):
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.global_level = global_level
        self.head = head

    def global_feature(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, 3) -> (B, C)``: the feature the head classifies."""
        for level in self.levels:
            points, features = level(points, features)
        return self.global_level(points, features)

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.global_feature(points, features))

    def regularizer(self) -> torch.Tensor:
        """Sum of the layers' auxiliary losses from the last forward pass (deformable KPConv; else 0)."""
        total = self.head[-1].weight.new_zeros(())
        for module in self.modules():
            if module is not self and hasattr(module, "regularizer"):
                total = total + module.regularizer()
        return total


def single_scale_levels(specs: Sequence[dict], make_conv: Callable[[int, dict, int], nn.Module], in_channels: int,
                        start: int | str = "farthest") -> tuple[list[SetAbstraction], int]:
    """Set abstraction levels with one ball-query scale each, the local operator made by ``make_conv``.

    Args:
        specs: one dict per level with ``n_centres``, ``radius`` (``None``: kNN), ``n_samples``
            and whatever ``make_conv`` reads.
        make_conv: ``(in_channels, spec, level_index) -> conv`` with an ``out_channels`` attribute.
        in_channels: feature channels of the input points.
        start: FPS start rule.

    Returns:
        the levels and the feature channels after the last one.
    """
    levels, channels = [], int(in_channels)
    for i, spec in enumerate(specs):
        conv = make_conv(channels, spec, i)
        levels.append(SetAbstraction(spec["n_centres"], [Scale(spec["radius"], spec["n_samples"], conv)], start=start))
        channels = levels[-1].out_channels
    return levels, channels


CONV_FAST_SIZES = dict(n_points=128, head=(32, 16), global_mlp=(64,), dropout=0.5,
                       levels=[dict(n_centres=32, radius=0.4, n_samples=16, out=32),
                               dict(n_centres=8, radius=0.8, n_samples=16, out=64)])
"""The ``fast`` sizes shared by the :class:`ConvClassifier` models whose conv reads ``out`` and ``radius`` (KPConv, PCNN, RS-CNN)."""


class ConvClassifier(HierarchicalClassifier):
    r"""The skeleton with one point convolution per level (RS-CNN, PointConv, KPConv, PCNN).

    .. math::  (x^{(l+1)}, f^{(l+1)}) = \operatorname{SA}_l(x^{(l)}, f^{(l)}), \qquad
               \text{logits} = \gamma\big(\max_i h([x^{(L)}_i, f^{(L)}_i])\big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features.
        sizes: a model's size entry: ``levels`` (for :func:`single_scale_levels`),
            ``global_mlp``, ``head`` and ``dropout``.
        make_conv: ``(in_channels, spec, level_index) -> conv``, as in :func:`single_scale_levels`.

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int, sizes: dict, make_conv: Callable[[int, dict, int], nn.Module]):
        levels, channels = single_scale_levels(sizes["levels"], make_conv, in_channels)
        super().__init__(levels, GlobalSetAbstraction(channels, sizes["global_mlp"]),
                         classifier_head(sizes["global_mlp"][-1], sizes["head"], n_classes, sizes["dropout"]))


class PointNet2(HierarchicalClassifier):
    r"""PointNet++ classifier with single-scale (SSG) or multi-scale (MSG) grouping.

    .. math::  f'_i = \big\Vert_{s}\ \max_{j \in \mathcal{B}_{r_s}(c_i)} h_s\big([x_j - c_i,\ f_j]\big)

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (e.g. normals).
        variant: ``"ssg"`` or ``"msg"``.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        grouping: ``"ball"`` (paper) or ``"knn"`` (the slide's faster alternative; radii unused).
        start: FPS start rule, ``"farthest"`` (default, order-independent) or ``0`` (paper).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``;
        ``N`` must be at least the first level's centres.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, variant: str = "ssg", *, sizes: dict | None = None,
                 grouping: str = "ball", start: int | str = "farthest"):
        if variant not in ("ssg", "msg"):
            raise ValueError(f"variant must be 'ssg' or 'msg', got {variant!r}")
        if grouping not in ("ball", "knn"):
            raise ValueError(f"grouping must be 'ball' or 'knn', got {grouping!r}")
        sizes = sizes or runtime.pick(SIZES)
        if variant == "ssg":
            specs = [dict(spec, radius=spec["radius"] if grouping == "ball" else None) for spec in sizes["ssg"]]
            levels, channels = single_scale_levels(specs, lambda c, spec, i: MiniPointNet(c, spec["mlp"]), in_channels, start)
        else:
            levels, channels = [], int(in_channels)
            for spec in sizes["msg"]:
                levels.append(SetAbstraction(spec["n_centres"], [
                    Scale(radius if grouping == "ball" else None, n_samples, MiniPointNet(channels, mlp))
                    for radius, n_samples, mlp in spec["scales"]], start=start))
                channels = levels[-1].out_channels
        super().__init__(levels, GlobalSetAbstraction(channels, sizes["global_mlp"]),
                         classifier_head(sizes["global_mlp"][-1], sizes["head"], n_classes, sizes["dropout"][variant]))
        self.variant, self.grouping = variant, grouping
