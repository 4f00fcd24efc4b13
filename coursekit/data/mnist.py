"""Read the original MNIST files (IDX format, gzipped or raw) and verify what is read.

The IDX format (LeCun, Cortes and Burges, http://yann.lecun.com/exdb/mnist/) is a
big-endian header followed by unsigned bytes:

=========================  ==========================================================
file                       header (big-endian int32)           then
=========================  ==========================================================
``*-images-idx3-ubyte``    magic 2051, count N, rows 28, cols 28   ``N * 28 * 28`` pixels
``*-labels-idx1-ubyte``    magic 2049, count N                     ``N`` labels in 0..9
=========================  ==========================================================

The test split is ``t10k-*`` (10,000 digits), the training split ``train-*``
(60,000). Every file may also be gzipped (``.gz``), as it is distributed. Any
departure from the format raises :class:`MnistFormatError` naming the file and
what is wrong, instead of returning garbage digits.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
IMAGE_SIZE = 28
SPLITS = {"test": "t10k", "train": "train"}


class MnistFormatError(ValueError):
    """An MNIST file is missing a part, has the wrong magic number or disagrees with its partner."""


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no {stem} or {stem}.gz in {directory}")


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise MnistFormatError(f"{path}: the gzip stream is truncated or corrupt ({exc})") from None


def _parse(path: Path, magic: int, n_dims: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Header dimensions and the uint8 payload of one IDX file, checked for size."""
    data = _read_bytes(path)
    header = 4 * (1 + n_dims)
    if len(data) < header:
        raise MnistFormatError(f"{path}: file is truncated: {len(data)} bytes, shorter than its "
                               f"{header}-byte header")
    found, *dims = struct.unpack(f">{1 + n_dims}i", data[:header])
    if found != magic:
        raise MnistFormatError(f"{path}: magic number is {found}, expected {magic} "
                               f"({'images' if magic == IMAGE_MAGIC else 'labels'} file); "
                               "is it an MNIST IDX file, or images and labels swapped?")
    want = header + int(np.prod(dims))
    if len(data) < want:
        raise MnistFormatError(f"{path}: file is truncated: {len(data)} bytes, the header "
                               f"{tuple(dims)} promises {want}")
    if len(data) > want:
        raise MnistFormatError(f"{path}: {len(data) - want} unexpected bytes after the "
                               f"{tuple(dims)} payload")
    return tuple(dims), np.frombuffer(data, dtype=np.uint8, offset=header)


def load_mnist(directory: str | Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split from ``directory`` holding the original IDX files.

    Args:
        directory: folder with ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``
            (``split="test"``) or the ``train-*`` pair (``split="train"``).
        split: ``"test"`` or ``"train"``.

    Returns:
        images: ``(N, 28, 28)`` uint8 tensor, ink = 255, background = 0.
        labels: ``(N,)`` int64 tensor of digits 0..9.

    Raises:
        FileNotFoundError: the directory or a file of the split is missing.
        MnistFormatError: a file is truncated, has a wrong magic number or image size,
            the two files disagree on the count, or a label is outside 0..9.

    >>> images, labels = load_mnist("../shared/data/mnist")  # doctest: +SKIP
    >>> images.shape, labels[:3]                            # doctest: +SKIP
    (torch.Size([10000, 28, 28]), tensor([7, 2, 1]))
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    prefix = SPLITS[split]
    image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")

    (n_images, rows, cols), pixels = _parse(image_path, IMAGE_MAGIC, 3)
    if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistFormatError(f"{image_path}: images are {rows}x{cols}, expected "
                               f"{IMAGE_SIZE}x{IMAGE_SIZE}")
    (n_labels,), labels = _parse(label_path, LABEL_MAGIC, 1)
    if n_images != n_labels:
        raise MnistFormatError(f"{image_path.name} holds {n_images} images but {label_path.name} "
                               f"holds {n_labels} labels")
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{label_path}: label {int(labels.max())} is not a digit 0..9")
    images = torch.from_numpy(pixels.reshape(n_images, rows, cols).copy())
    return images, torch.from_numpy(labels.astype(np.int64))
