r"""The eight networks of the STN paper's distorted-MNIST table (Jaderberg et al. 2015, Table 1).

Rows of the table (:data:`MODEL_NAMES`): FCN, CNN, and each with a spatial
transformer on its input, ST-FCN and ST-CNN, with an affine (Aff, 6
parameters), projective (Proj, 8) or 16-point thin-plate-spline (TPS, 32)
transformation. Every network is built as

.. math::
    \text{logits} = f_{cls}\big(\operatorname{pool}(\,\mathcal{T}_\theta(U)\,)\big),
    \qquad \theta = f_{loc}(U),

with :math:`\mathcal{T}_\theta` omitted for FCN/CNN, and the 2x average pool
only in the ST networks on the 42x42 RTS digits.

**What the paper specifies** (§4.1, verbatim): the classification networks
have three weight layers; the CNNs two max-pooling layers; all networks about
the same number of parameters; layer widths are not given. From its
appendix, as quoted by reimplementations (REFERENCES A.4, *unverified*):
CNN = conv 9x9 -> max-pool 2 -> conv 7x7 -> max-pool 2 -> softmax layer;
FCN = two hidden FC layers -> softmax layer; ST-CNN localisation = max-pool 2
-> conv 20@5x5 -> max-pool 2 -> conv 20@5x5 -> FC 20 -> regression; ST-FCN
localisation = FC 32 -> FC 32 -> regression; regression layers start at the
identity; for RTS the ST output (42x42) is average-pooled by 2 before the
classifier.

**Our choices** (the paper's filter and unit counts are not known):

* CNN: 32 filters per conv layer (hvy/chainer-spatial-transformer-networks),
  ReLU, max-pools with ``ceil_mode=True`` (Caffe/Chainer rounding, so a 21x21
  input still fits the 7x7 conv). 54k parameters on 28x28 digits.
* FCN: hidden width chosen to give the CNN's parameter count: 64 units on
  28x28 or 21x21 inputs, 32 on the full 42x42 (about 55k parameters); A.4's
  quoted "128-256 units" would give 2-5 times more.
* On 42x42 (RTS) inputs, FCN and CNN classify the full-resolution digit; the
  ST networks' transformer samples it at 42x42 and its output is pooled to
  21x21 for the classifier (the paper's sentence). The FC localisation net
  sees the pooled 21x21 input there (14k parameters instead of 56k).
* Parameter counts on 28x28: FCN 55k, CNN 54k, ST-CNN 65k, ST-FCN 81k; on 42x42
  (RTS): ST-FCN 49k, FCN 58k, CNN 64k, ST-CNN 70k. The localisation nets are
  added on top rather than taken out of the classifier, so "approximately the
  same" holds within a factor 1.75.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..stn.localisation import ConvLocalisation, FCLocalisation
from ..stn.transformer import SpatialTransformer, identity_params, n_params

#: Rows of the paper's table, in its order.
MODEL_NAMES = ("FCN", "CNN", "ST-FCN Aff", "ST-FCN Proj", "ST-FCN TPS", "ST-CNN Aff", "ST-CNN Proj", "ST-CNN TPS")
#: The table's transformation labels and the :class:`~coursekit.stn.SpatialTransformer` names.
TRANSFORM_LABELS = {"Aff": "affine", "Proj": "projective", "TPS": "tps"}
INPUT_SIZES = (28, 42)
#: FCN hidden units per classifier input side: about 55k parameters each, like the CNN.
FCN_HIDDEN = {21: 64, 28: 64, 42: 32}
N_CLASSES = 10


class FCN(nn.Module):
    r"""Fully connected classifier: two hidden layers and a softmax layer (three weight layers).

    .. math::
        z = W_3\,\mathrm{ReLU}(W_2\,\mathrm{ReLU}(W_1 \operatorname{vec}(U) + b_1) + b_2) + b_3

    Args:
        in_size: side of the square ``(B, 1, S, S)`` input.
        hidden: units of each hidden layer (64 on 28x28: the CNN's parameter count).

    Shapes:
        input ``(B, 1, S, S)``, output logits ``(B, 10)``.
    """

    def __init__(self, in_size: int, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_size * in_size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, N_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CNN(nn.Module):
    r"""Convolutional classifier: conv 9x9 -> max-pool 2 -> conv 7x7 -> max-pool 2 -> softmax layer.

    .. math::
        z = W_3 \operatorname{vec}\Big(\operatorname{pool}\big(\mathrm{ReLU}(K_2 *
            \operatorname{pool}(\mathrm{ReLU}(K_1 * U)))\big)\Big) + b_3

    Convolutions have stride 1 and no padding; pools round up (``ceil_mode``).
    28x28 -> 20 -> 10 -> 4 -> 2; 21x21 -> 13 -> 7 -> 1 -> 1.

    Args:
        in_size: side of the square ``(B, 1, S, S)`` input (at least 21).
        channels: filters of each conv layer (32).

    Shapes:
        input ``(B, 1, S, S)``, output logits ``(B, 10)``.
    """

    def __init__(self, in_size: int, channels: int = 32):
        super().__init__()
        pooled = math.ceil((in_size - 8) / 2)                 # conv 9x9, then ceil max-pool
        if pooled < 7:
            raise ValueError(f"CNN needs inputs of at least 21x21 (conv 9x9, pool, conv 7x7), got {in_size}")
        side = math.ceil((pooled - 6) / 2)                   # conv 7x7, then ceil max-pool
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 9), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(channels, channels, 7), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(),
            nn.Linear(channels * side * side, N_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DigitClassifier(nn.Module):
    """A table row: optional spatial transformer -> optional 2x average pool -> classifier.

    Args:
        classifier: :class:`FCN` or :class:`CNN` for the (pooled) size.
        transformer: a :class:`~coursekit.stn.SpatialTransformer` or ``None``.
        pool: average-pool factor before the classifier (2 for the ST networks on 42x42
            RTS digits, else 1).

    Shapes:
        input ``(B, 1, S, S)``, output logits ``(B, 10)``.

    Attributes:
        transformer: the spatial transformer (``None`` for FCN/CNN); its
            ``last_theta``/``last_grid`` show where the last batch was sampled.
    """

    def __init__(self, classifier: nn.Module, transformer: SpatialTransformer | None = None, pool: int = 1):
        super().__init__()
        self.transformer = transformer
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()
        self.classifier = classifier

    def canonicalise(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier's pool sees: the transformer output ``(B, 1, S, S)`` (or ``x``)."""
        return x if self.transformer is None else self.transformer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.canonicalise(x)))


def parse_name(name: str, transform: str | None = None) -> tuple[str, str | None]:
    """``("ST-CNN", "tps")`` from ``"ST-CNN TPS"`` or from ``("ST-CNN", "tps")``; validates both."""
    base, _, label = name.partition(" ")
    if label:
        if label not in TRANSFORM_LABELS or transform not in (None, TRANSFORM_LABELS[label]):
            raise ValueError(f"model {name!r} with transform={transform!r}: expected one of {MODEL_NAMES}")
        transform = TRANSFORM_LABELS[label]
    if base not in ("FCN", "CNN", "ST-FCN", "ST-CNN"):
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    if base.startswith("ST-"):
        transform = transform or "affine"
        if transform not in TRANSFORM_LABELS.values():
            raise ValueError(f"transform must be one of {tuple(TRANSFORM_LABELS.values())}, got {transform!r}")
    elif transform is not None:
        raise ValueError(f"{base} has no spatial transformer; do not pass transform={transform!r}")
    return base, transform


def build_model(name: str, transform: str | None = None, input_size: int = 28, *,
                cnn_channels: int = 32, fcn_hidden: int | None = None) -> DigitClassifier:
    """Build one row of the distorted-MNIST table.

    Args:
        name: a row of :data:`MODEL_NAMES` (``"ST-CNN TPS"``) or a base name ``"FCN"``,
            ``"CNN"``, ``"ST-FCN"``, ``"ST-CNN"``.
        transform: for a base ST name: ``"affine"`` (default), ``"projective"`` or ``"tps"``.
        input_size: 28 (R, P, E digits) or 42 (RTS; an ST network pools its output by 2).
        cnn_channels: filters of each conv layer of the CNN classifier.
        fcn_hidden: units of the FCN's hidden layers; default :data:`FCN_HIDDEN` for the
            classifier's input side (about 55k parameters, like the CNN).

    Returns:
        a freshly initialised :class:`DigitClassifier` (ST at the identity).

    >>> model = build_model("ST-CNN Aff")
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    base, transform = parse_name(name, transform)
    if input_size not in INPUT_SIZES:
        raise ValueError(f"input_size must be one of {INPUT_SIZES}, got {input_size}")
    pool = 2 if input_size == 42 and base.startswith("ST-") else 1
    side = input_size // pool
    if base.endswith("FCN"):
        classifier = FCN(side, fcn_hidden or FCN_HIDDEN[side])
    else:
        classifier = CNN(side, cnn_channels)
    transformer = None
    if base.startswith("ST-"):
        k, identity = n_params(transform), identity_params(transform)
        if base == "ST-FCN":
            localisation = FCLocalisation(side * side, hidden=(32, 32), n_params=k, identity=identity)
            if pool > 1:
                localisation = nn.Sequential(nn.AvgPool2d(pool), localisation)
        else:
            localisation = ConvLocalisation(1, k, identity, in_size=(input_size, input_size))
        transformer = SpatialTransformer(localisation, transform)
    return DigitClassifier(classifier, transformer, pool)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
