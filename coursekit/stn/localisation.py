r"""Localisation networks: predict the transformation parameters :math:`\theta = f_{loc}(U)`.

Both follow the distorted-MNIST appendix of the paper as quoted by the
reimplementations in REFERENCES A.4, and both end in a regression layer with
**zero weights and the identity parameters as bias**, so a freshly built
spatial transformer starts as the identity and training moves it away.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .grids import IDENTITY_AFFINE


def identity_regression(in_features: int, n_params: int, identity: Sequence[float] | torch.Tensor) -> nn.Linear:
    r"""The last layer of a localisation net, initialised to predict the identity transform.

    .. math::
        \theta = W h + b, \qquad W = 0, \quad b = \theta_{\text{identity}}

    Args:
        in_features: size of the hidden vector ``h``.
        n_params: number of transformation parameters.
        identity: ``n_params`` identity parameters (e.g. :data:`~coursekit.stn.IDENTITY_AFFINE`).

    Returns:
        an ``nn.Linear(in_features, n_params)``.
    """
    bias = torch.as_tensor(identity, dtype=torch.float32).detach().flatten()
    if bias.numel() != n_params:
        raise ValueError(f"identity has {bias.numel()} parameters but n_params is {n_params}")
    layer = nn.Linear(in_features, n_params)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(bias)
    return layer


class FCLocalisation(nn.Module):
    r"""Fully connected localisation net (ST-FCN): flatten -> FC 32 -> FC 32 -> regression.

    .. math::
        \theta = W_3\, \mathrm{ReLU}(W_2\, \mathrm{ReLU}(W_1 \operatorname{vec}(U) + b_1) + b_2) + b_3

    Args:
        in_features: ``C*H*W`` of the input, or ``None`` to infer it at the first call.
        hidden: sizes of the hidden layers (the paper's ST-FCN: two of 32 units).
        n_params: number of outputs (6 affine, 3 attention, 8 projective, 32 TPS 4x4).
        identity: identity parameters, the regression layer's initial bias.

    Shapes:
        input ``(B, C, H, W)`` (anything with a batch axis), output ``(B, n_params)``.
    """

    def __init__(self, in_features: int | None, hidden: Sequence[int] = (32, 32), n_params: int = 6,
                 identity: Sequence[float] | torch.Tensor = IDENTITY_AFFINE):
        super().__init__()
        if in_features is None and not hidden:
            raise ValueError("give in_features when there are no hidden layers (the regression layer is not lazy)")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for units in hidden:
            layers += [nn.Linear(width, units) if width is not None else nn.LazyLinear(units), nn.ReLU()]
            width = units
        self.features = nn.Sequential(*layers)
        self.regression = identity_regression(width, n_params, identity)

    def forward(self, U: torch.Tensor) -> torch.Tensor:
        return self.regression(self.features(U))


class ConvLocalisation(nn.Module):
    r"""Convolutional localisation net (ST-CNN), the paper's distorted-MNIST appendix.

    maxpool 2 -> conv 20@5x5 -> ReLU -> maxpool 2 -> conv 20@5x5 -> ReLU -> FC 20 -> ReLU
    -> regression (zero weights, identity bias). Convolutions have stride 1, no padding, so
    the input must be at least 28 x 28 (MNIST gives a 1 x 1 x 20 feature, 42 x 42 gives
    4 x 4 x 20, 60 x 60 gives 9 x 9 x 20).

    Args:
        in_channels: ``C`` of the input.
        n_params: number of outputs.
        identity: identity parameters, the regression layer's initial bias.
        channels: filters per conv layer (20).
        kernel_size: conv kernel size (5).
        hidden: units of the FC layer (20).
        in_size: ``(H, W)`` of the input, or ``None`` to infer the FC input size at the first call.

    Shapes:
        input ``(B, C, H, W)``, output ``(B, n_params)``.
    """

    def __init__(self, in_channels: int, n_params: int = 6, identity: Sequence[float] | torch.Tensor = IDENTITY_AFFINE,
                 channels: int = 20, kernel_size: int = 5, hidden: int = 20, in_size: Sequence[int] | None = None):
        super().__init__()
        self.kernel_size = kernel_size
        self.features = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(in_channels, channels, kernel_size), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, kernel_size), nn.ReLU(),
            nn.Flatten(),
        )
        if in_size is None:
            first = nn.LazyLinear(hidden)
        else:
            height, width = (self._feature_side(int(s)) for s in in_size)
            if height < 1 or width < 1:
                raise ValueError(f"in_size {tuple(in_size)} is too small for ConvLocalisation")
            first = nn.Linear(channels * height * width, hidden)
        self.head = nn.Sequential(first, nn.ReLU())
        self.regression = identity_regression(hidden, n_params, identity)

    def _feature_side(self, side: int) -> int:
        """Side of the last conv feature map for an input side (pool, conv, pool, conv)."""
        return (side // 2 - self.kernel_size + 1) // 2 - self.kernel_size + 1

    def forward(self, U: torch.Tensor) -> torch.Tensor:
        if U.dim() != 4:
            raise ValueError(f"ConvLocalisation expects (B, C, H, W), got {tuple(U.shape)}")
        if min(self._feature_side(U.shape[-2]), self._feature_side(U.shape[-1])) < 1:
            raise ValueError(f"input {U.shape[-2]}x{U.shape[-1]} is too small for ConvLocalisation "
                             f"(two pools and two {self.kernel_size}x{self.kernel_size} convs)")
        return self.regression(self.head(self.features(U)))
