r"""PointNet for classification, its critical point set and upper-bound shape.

Qi, Su, Mo, Guibas, "PointNet: Deep Learning on Point Sets for 3D Classification and
Segmentation", CVPR 2017 (arXiv:1612.00593). The slide's symmetric function

.. math::  f(x_1, \dots, x_n) = \gamma \circ \max_{i}\, h(x_i)

with :math:`h` a shared MLP on each point, :math:`\max` the channel-wise max pool (symmetric,
so the output does not depend on the order of the points) and :math:`\gamma` a fully
connected classifier. Two T-Nets align the input (3x3) and the 64-d features (64x64,
regularised towards orthogonality).

Kept from the paper: the architecture (input T-Net, MLP(64, 64), feature T-Net, MLP(64, 128,
1024), max pool, FC(512, 256) with dropout 0.3 — keep ratio 0.7 — BatchNorm everywhere but
the logits), the regulariser :math:`\lVert I - A A^T\rVert_F^2` on the feature transform with
weight 0.001 (mean over the batch here; the TF code sums and halves), and at ``gpu`` size
the paper's widths and 1024 points. Scaled down in ``fast``/``cpu``: every width (table
:data:`SIZES`; the "64x64" feature transform is ``mlp1[-1]`` square) and the points per cloud.

Regulariser: ``forward`` returns logits only; after a forward pass ``model.regularizer()``
returns the weighted orthogonality loss of that pass (a scalar tensor in the graph), so a
training loss is ``cross_entropy(model(x), y) + model.regularizer()``.

Critical points ("Visualize what is learned", paper Sec. 5.3 / Thm. 2): :func:`critical_points`
and :func:`upper_bound_shape`. With T-Nets the per-point features depend on the cloud through
the two predicted transforms, which are themselves max pools; the critical set here is the
union over all three max pools (input T-Net, feature T-Net, main), and the upper-bound shape
keeps a probe point only if it exceeds none of the three global features. Under those
definitions Theorem 2 holds exactly for the full network: replacing a non-critical point by a
point of the upper-bound shape leaves all three global features, hence the logits, unchanged.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn

from .. import runtime
from ..geometry.validate import check_points
from ..nn.mlp import SharedMLP, classifier_head
from ..nn.tnet import TNet, orthogonality_loss

SIZES = {
    "fast": dict(n_points=128, mlp1=(16, 16), mlp2=(16, 32, 64), tnet_mlp=(16, 32, 64), tnet_fc=(32, 16),
                 head=(32, 16), dropout=0.3),
    "cpu": dict(n_points=512, mlp1=(32, 32), mlp2=(32, 64, 256), tnet_mlp=(32, 64, 256), tnet_fc=(128, 64),
                head=(128, 64), dropout=0.3),
    "gpu": dict(n_points=1024, mlp1=(64, 64), mlp2=(64, 128, 1024), tnet_mlp=(64, 128, 1024), tnet_fc=(512, 256),
                head=(512, 256), dropout=0.3),
}
"""Widths per profile; ``gpu`` is the paper's network. ``n_points`` is the cloud size the sizes were chosen for."""


class PointNetEncoding(NamedTuple):
    """What PointNet computes before the classifier.

    Attributes:
        global_feature: ``(B, C)`` the max-pooled feature fed to :math:`\\gamma`.
        point_features: ``(B, N, C)`` the main per-point features :math:`h(x_i)`.
        stage_features: per-point features of every max pool, in order (input T-Net,
            feature T-Net, main), each ``(B, N, C_s)``; only the enabled ones.
        input_transform: ``(B, 3, 3)`` or ``None``.
        feature_transform: ``(B, C1, C1)`` or ``None``.
    """

    global_feature: torch.Tensor
    point_features: torch.Tensor
    stage_features: tuple[torch.Tensor, ...]
    input_transform: torch.Tensor | None
    feature_transform: torch.Tensor | None


class PointNet(nn.Module):
    r"""PointNet classifier: T-Nets, shared MLPs, max pool, fully connected head.

    .. math::  \text{logits} = \gamma\Big(\max_i\ h_2\big(h_1(x_i A)\, F\big)\Big),
               \qquad A = T_3(\{x_i\}),\ F = T_{64}(\{h_1(x_i A)\})

    Args:
        n_classes: ``K``.
        in_channels: extra per-point features (e.g. 3 for normals; the input transform
            acts on the coordinates only).
        input_transform: use the 3x3 T-Net.
        feature_transform: use the feature T-Net and its regulariser.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        reg_weight: weight of the orthogonality loss in :meth:`regularizer` (paper 0.001).

    Shapes:
        ``points (B, N, 3)``, ``features (B, N, in_channels)`` or ``None`` ``-> (B, K)``.
    """

    def __init__(self, n_classes: int, in_channels: int = 0, *, input_transform: bool = True,
                 feature_transform: bool = True, sizes: dict | None = None, reg_weight: float = 0.001):
        super().__init__()
        sizes = dict(sizes or runtime.pick(SIZES))
        self.in_channels = int(in_channels)
        self.reg_weight = float(reg_weight)
        c1 = sizes["mlp1"][-1]
        self.input_tnet = TNet(3, 3 + self.in_channels, sizes["tnet_mlp"], sizes["tnet_fc"]) if input_transform else None
        self.mlp1 = SharedMLP([3 + self.in_channels, *sizes["mlp1"]])
        self.feature_tnet = TNet(c1, c1, sizes["tnet_mlp"], sizes["tnet_fc"]) if feature_transform else None
        self.mlp2 = SharedMLP([c1, *sizes["mlp2"]])
        self.head = classifier_head(sizes["mlp2"][-1], sizes["head"], n_classes, sizes["dropout"])
        self._last_feature_transform: torch.Tensor | None = None

    def encode(self, points: torch.Tensor, features: torch.Tensor | None = None, *,
               input_transform: torch.Tensor | None = None,
               feature_transform: torch.Tensor | None = None) -> PointNetEncoding:
        """Run everything up to the global feature.

        Given transforms (e.g. those of another cloud) are used instead of predicted ones,
        which is how :func:`upper_bound_shape` evaluates probe points "inside" a cloud.
        """
        self._check(points, features)
        stages = []
        x = points if features is None else torch.cat([points, features], dim=-1)
        if self.input_tnet is not None:
            stages.append(self.input_tnet.point_features(x))
            if input_transform is None:
                input_transform = self.input_tnet.regress(stages[-1].amax(dim=1))
            xyz = points @ input_transform
            x = xyz if features is None else torch.cat([xyz, features], dim=-1)
        h = self.mlp1(x)
        if self.feature_tnet is not None:
            stages.append(self.feature_tnet.point_features(h))
            if feature_transform is None:
                feature_transform = self.feature_tnet.regress(stages[-1].amax(dim=1))
            h = h @ feature_transform
        h = self.mlp2(h)
        stages.append(h)
        return PointNetEncoding(h.amax(dim=1), h, tuple(stages),
                                input_transform if self.input_tnet is not None else None,
                                feature_transform if self.feature_tnet is not None else None)

    def global_feature(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, 3) -> (B, C)``: the max-pooled feature (also records the feature transform)."""
        enc = self.encode(points, features)
        self._last_feature_transform = enc.feature_transform
        return enc.global_feature

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.global_feature(points, features))

    def regularizer(self) -> torch.Tensor:
        r"""``reg_weight`` :math:`\cdot \lVert I - F F^T \rVert_F^2` of the last forward pass (0 without feature T-Net)."""
        if self._last_feature_transform is None:
            return self.mlp1[0].weight.new_zeros(())
        return self.reg_weight * orthogonality_loss(self._last_feature_transform)

    def _check(self, points: torch.Tensor, features: torch.Tensor | None) -> None:
        check_points(points)
        if self.in_channels and features is None:
            raise ValueError(f"this PointNet expects features (B, N, {self.in_channels}) besides the points")
        if features is not None and (features.dim() != 3 or features.shape[:2] != points.shape[:2]
                                     or features.shape[-1] != self.in_channels):
            raise ValueError(f"features must have shape ({points.shape[0]}, {points.shape[1]}, {self.in_channels}), "
                             f"got {tuple(features.shape)}")


@contextlib.contextmanager
def _evaluating(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def critical_points(model: PointNet, points: torch.Tensor, features: torch.Tensor | None = None) -> list[torch.Tensor]:
    r"""The critical point set :math:`C_S`: the points that attain the maximum in some channel.

    .. math::  C_S = \bigcup_{s} \{ \operatorname*{arg\,max}_{i} h^{(s)}_c(x_i) : c = 1, \dots, C_s \}

    over the max pools :math:`s` of the model (input T-Net, feature T-Net, main; see the module
    notes). Ties go to the lowest index (``torch.argmax``), so a channel that is 0 for every
    point names point 0. Evaluated in ``eval()`` mode without gradients (the model's mode is
    restored).

    Args:
        model: a :class:`PointNet`.
        points: ``(B, N, 3)``.
        features: ``(B, N, C)`` if the model takes features.

    Returns:
        a list of ``B`` sorted ``int64`` tensors of point indices (at most the total channel count).
    """
    with _evaluating(model):
        enc = model.encode(points, features)
    winners = torch.cat([s.argmax(dim=1) for s in enc.stage_features], dim=1)  # (B, sum C_s)
    return [torch.unique(w) for w in winners]


def upper_bound_shape(model: PointNet, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    r"""Which probe points lie in the upper-bound shape :math:`N_S` of each cloud.

    .. math::  N_S = \{ x : h^{(s)}(x) \le \max_i h^{(s)}(x_i) \ \text{channel-wise, for every max pool } s \}

    with the probe's features computed under the cloud's own input and feature transforms.
    Any subset of :math:`N_S` containing :math:`C_S` gives the same global feature (Thm. 2).

    Args:
        model: a :class:`PointNet` without extra input features.
        points: ``(B, N, 3)`` the clouds.
        grid: ``(G, 3)`` probe points (the same for every cloud) or ``(B, G, 3)``.

    Returns:
        ``(B, G)`` booleans; ``grid[mask[b]]`` are the probes inside cloud ``b``'s shape.
    """
    if model.in_channels:
        raise ValueError("upper_bound_shape needs a model without extra input features (probes have coordinates only)")
    check_points(points)
    if grid.dim() == 2:
        grid = grid.unsqueeze(0).expand(points.shape[0], -1, -1)
    check_points(grid, "grid")
    if grid.shape[0] != points.shape[0]:
        raise ValueError(f"grid must be (G, 3) or (B, G, 3) with B = {points.shape[0]}, got {tuple(grid.shape)}")
    with _evaluating(model):
        enc = model.encode(points)
        probe = model.encode(grid.to(points), input_transform=enc.input_transform,
                             feature_transform=enc.feature_transform)
    inside = torch.ones(grid.shape[:2], dtype=torch.bool, device=grid.device)
    for cloud_stage, probe_stage in zip(enc.stage_features, probe.stage_features):
        inside &= (probe_stage <= cloud_stage.amax(dim=1, keepdim=True)).all(dim=-1)
    return inside
