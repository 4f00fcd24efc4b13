r"""PointNet's joint alignment network (T-Net) and its orthogonality regulariser.

Qi, Su, Mo, Guibas, "PointNet: Deep Learning on Point Sets for 3D Classification and
Segmentation", CVPR 2017, Sec. 4.2: "predict an affine transformation matrix by a mini-network
(T-net) and directly apply this transformation to the coordinates of input points"; for the
64-dimensional feature space a second T-Net is constrained "to be close to orthogonal matrix"
by :math:`L_{reg} = \lVert I - A A^T \rVert_F^2`. The T-Net is itself a PointNet: a shared MLP,
a max pool, and fully connected layers regressing :math:`k \times k` numbers.

Convention
    Points are row vectors and the transform multiplies on the right, ``x @ A`` (the original
    ``tf.matmul(point_cloud, transform)``). The last layer starts at zero weights and an
    identity bias, so a fresh T-Net is the identity.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mlp import SharedMLP


class TNet(nn.Module):
    r"""Predict a ``k x k`` transform from a cloud: :math:`A = \gamma(\max_i h(x_i))`, identity at start.

    .. math::  A = \operatorname{reshape}_{k \times k}\big(W \,\gamma(\max_{i} h(x_i)) + \operatorname{vec}(I_k)\big),
               \qquad W = 0 \text{ at initialisation}

    Paper sizes: :math:`h` = MLP(64, 128, 1024), :math:`\gamma` = FC(512, 256), BatchNorm and ReLU
    everywhere but the output.

    Args:
        k: size of the transform (3 for the input, 64 for the feature transform).
        in_channels: channels of the input points (default ``k``).
        mlp: widths of :math:`h`.
        fc: widths of :math:`\gamma`.

    Shapes:
        ``(B, N, in_channels) -> (B, k, k)``.
    """

    def __init__(self, k: int, in_channels: int | None = None, mlp: Sequence[int] = (64, 128, 1024),
                 fc: Sequence[int] = (512, 256)):
        super().__init__()
        self.k = int(k)
        self.h = SharedMLP([in_channels or k, *mlp])
        self.gamma = SharedMLP([mlp[-1], *fc])
        self.out = nn.Linear(fc[-1], k * k)
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.bias.copy_(torch.eye(k).flatten())

    def point_features(self, x: torch.Tensor) -> torch.Tensor:
        """The per-point features :math:`h(x_i)` that are max-pooled: ``(B, N, C) -> (B, N, mlp[-1])``."""
        return self.h(x)

    def regress(self, pooled: torch.Tensor) -> torch.Tensor:
        """The transform from the pooled feature: ``(B, mlp[-1]) -> (B, k, k)``."""
        return self.out(self.gamma(pooled)).reshape(-1, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regress(self.point_features(x).amax(dim=1))


def orthogonality_loss(transform: torch.Tensor) -> torch.Tensor:
    r"""PointNet's regulariser :math:`\lVert I - A A^T \rVert_F^2`, averaged over the batch.

    .. math::  L_{reg} = \frac{1}{B} \sum_{b=1}^{B} \big\lVert I - A_b A_b^T \big\rVert_F^2

    Zero exactly for orthogonal :math:`A`. The paper adds it "with weight 0.001"; the
    original TensorFlow code computes ``tf.nn.l2_loss`` (half the squared norm, summed over
    the batch), i.e. :math:`B/2` times this mean — the models here use the mean so the weight
    does not depend on the batch size.

    Args:
        transform: ``(B, k, k)``.

    Returns:
        a scalar tensor.
    """
    if transform.dim() != 3 or transform.shape[1] != transform.shape[2]:
        raise ValueError(f"transform must have shape (B, k, k), got {tuple(transform.shape)}")
    eye = torch.eye(transform.shape[1], dtype=transform.dtype, device=transform.device)
    return ((eye - transform @ transform.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()
