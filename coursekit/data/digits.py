"""The course's handwritten digits: MNIST when the user has it, else an embedded default.

The embedded default is scikit-learn's bundled UCI handwritten digits
(``sklearn.datasets.load_digits``: 1,797 digits, 8x8 pixels, ink 0..16, shipped
inside scikit-learn, so it works offline) brought to MNIST's format the way MNIST
itself was made (LeCun et al.): each digit's ink bounding box is resized so its
longer side is 20 pixels, aspect ratio kept, and pasted into a 28x28 canvas so
that its centre of mass lands on pixel (14, 14).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .mnist import load_mnist

CANVAS = 28
BOX = 20
CENTRE = 14


def _to_mnist_frame(digits: torch.Tensor) -> torch.Tensor:
    r"""``(N, h, w)`` float images in [0, 1] -> ``(N, 28, 28)`` float, MNIST-style size and centring.

    .. math::
        s = 20 / \max(h_{ink}, w_{ink}), \qquad
        \text{offset} = \operatorname{round}\big((14, 14) - \bar c\big), \quad
        \bar c = \frac{\sum_p I_p\, p}{\sum_p I_p}

    Digits whose ink boxes have the same size are resized together.
    """
    rows, cols = digits.sum(2) > 0, digits.sum(1) > 0
    index = torch.arange(digits.shape[1])
    top = torch.where(rows, index, digits.shape[1]).amin(1)
    left = torch.where(cols, index, digits.shape[2]).amin(1)
    height = torch.where(rows, index, -1).amax(1) - top + 1
    width = torch.where(cols, index, -1).amax(1) - left + 1
    canvas = torch.zeros(len(digits), CANVAS, CANVAS)
    for h, w in torch.unique(torch.stack([height, width], 1), dim=0).tolist():
        group = torch.nonzero((height == h) & (width == w)).flatten()
        scale = BOX / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        ink = torch.stack([digits[i, top[i]:top[i] + h, left[i]:left[i] + w] for i in group.tolist()])
        patch = F.interpolate(ink[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
        mass = patch.sum((1, 2))
        cy = (patch.sum(2) * torch.arange(size[0])).sum(1) / mass
        cx = (patch.sum(1) * torch.arange(size[1])).sum(1) / mass
        for i, p, y, x in zip(group.tolist(), patch, cy.tolist(), cx.tolist()):
            y0 = min(max(round(CENTRE - y), 0), CANVAS - size[0])
            x0 = min(max(round(CENTRE - x), 0), CANVAS - size[1])
            canvas[i, y0:y0 + size[0], x0:x0 + size[1]] = p
    return canvas


def default_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8x8 digits, converted to MNIST's 28x28 format.

    Returns:
        images: ``(1797, 28, 28)`` uint8 tensor (ink 255, background 0), digit in a 20x20
            box centred by mass, as in MNIST.
        labels: ``(1797,)`` int64 tensor of digits 0..9.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    small = torch.from_numpy(bunch.images).float() / 16.0
    images = _to_mnist_frame(small)
    return (images * 255).round().to(torch.uint8), torch.from_numpy(bunch.target).long()


def load_digits(directory: str | Path | None = None, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Handwritten digits for the notebooks: MNIST from ``directory`` if given, else the default.

    Args:
        directory: a folder holding the original MNIST IDX files (see
            :func:`~coursekit.data.mnist.load_mnist`), or ``None`` for the embedded
            :func:`default_digits`.
        split: ``"test"`` or ``"train"`` (MNIST only; the default set has one split).

    Returns:
        images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 (:func:`to_image_batch`
        makes the float ``(N, 1, 28, 28)`` batch a network takes).
    """
    if directory is None:
        return default_digits()
    return load_mnist(directory, split)


def to_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Loader format -> network format: uint8 ``(N, H, W)`` to float ``(N, 1, H, W)`` in [0, 1].

    Float input of shape ``(N, 1, H, W)`` (already converted) is returned unchanged,
    float ``(N, H, W)`` gains the channel axis.
    """
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be (N, H, W) uint8 or (N, 1, H, W) float, got {shape}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    return images
