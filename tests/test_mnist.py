"""MNIST IDX loader (real files and corrupted copies) and the embedded default digits."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.data.digits import default_digits, load_digits
from coursekit.data.mnist import MnistFormatError, load_mnist

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("COURSEKIT_MNIST", REPO / ".." / "shared" / "data" / "mnist")).resolve()
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST test files not found in {MNIST_DIR} (set COURSEKIT_MNIST to a folder holding them)",
)


def idx_images(n: int, rows: int = 28, cols: int = 28, magic: int = 2051, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=n * rows * cols, dtype=np.uint8)
    return struct.pack(">4i", magic, n, rows, cols) + pixels.tobytes()


def idx_labels(n: int, magic: int = 2049, seed: int = 0) -> bytes:
    labels = np.random.default_rng(seed).integers(0, 10, size=n, dtype=np.uint8)
    return struct.pack(">2i", magic, n) + labels.tobytes()


def write(folder: Path, images: bytes, labels: bytes, gz: bool = False, prefix: str = "t10k") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if gz:
            with gzip.open(folder / (stem + ".gz"), "wb") as f:
                f.write(data)
        else:
            (folder / stem).write_bytes(data)
    return folder


# ------------------------------------------------------------------ real files

@needs_mnist
def test_real_mnist_test_split():
    images, labels = load_mnist(MNIST_DIR, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,) and labels.dtype == torch.int64
    # The first test digits of MNIST are 7, 2, 1, 0, 4 and every class appears ~1,000 times.
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images[:, 0, :].max() == 0  # ink is bright, borders empty


@needs_mnist
def test_load_digits_reads_a_directory():
    images, labels = load_digits(MNIST_DIR)
    assert images.shape == (10000, 28, 28)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_digits(MNIST_DIR, split="train")  # the shared folder holds only the test half


# ------------------------------------------------------------------ synthetic files

@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_raw_and_gzip(tmp_path, gz):
    folder = write(tmp_path, idx_images(5), idx_labels(5), gz=gz, prefix="train")
    images, labels = load_mnist(folder, "train")
    want = np.frombuffer(idx_images(5)[16:], dtype=np.uint8).reshape(5, 28, 28)
    assert torch.equal(images, torch.from_numpy(want.copy()))
    assert torch.equal(labels, torch.from_numpy(np.frombuffer(idx_labels(5)[8:], dtype=np.uint8).astype(np.int64)))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_images(tmp_path, gz):
    folder = write(tmp_path, idx_images(5)[:-100], idx_labels(5), gz=gz)
    with pytest.raises(MnistFormatError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load_mnist(folder)


def test_truncated_header(tmp_path):
    folder = write(tmp_path, idx_images(5)[:10], idx_labels(5))
    with pytest.raises(MnistFormatError, match="shorter than its 16-byte header"):
        load_mnist(folder)


def test_truncated_gzip_stream(tmp_path):
    folder = write(tmp_path, idx_images(50), idx_labels(50), gz=True)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(MnistFormatError, match="gzip stream is truncated or corrupt"):
        load_mnist(folder)


def test_wrong_magic(tmp_path):
    folder = write(tmp_path, idx_images(5, magic=2049), idx_labels(5))
    with pytest.raises(MnistFormatError, match="magic number is 2049, expected 2051"):
        load_mnist(folder)
    folder = write(tmp_path / "b", idx_images(5), idx_labels(5, magic=2051))
    with pytest.raises(MnistFormatError, match=r"labels-idx1-ubyte: magic number is 2051, expected 2049"):
        load_mnist(folder)


def test_count_mismatch(tmp_path):
    folder = write(tmp_path, idx_images(5), idx_labels(4))
    with pytest.raises(MnistFormatError, match="holds 5 images but t10k-labels-idx1-ubyte holds 4 labels"):
        load_mnist(folder)


def test_wrong_image_size_and_trailing_bytes_and_bad_label(tmp_path):
    with pytest.raises(MnistFormatError, match="images are 32x32, expected 28x28"):
        load_mnist(write(tmp_path / "a", idx_images(2, 32, 32), idx_labels(2)))
    with pytest.raises(MnistFormatError, match="unexpected bytes"):
        load_mnist(write(tmp_path / "b", idx_images(2) + b"\0", idx_labels(2)))
    bad = bytearray(idx_labels(3))
    bad[-1] = 10
    with pytest.raises(MnistFormatError, match="label 10 is not a digit"):
        load_mnist(write(tmp_path / "c", idx_images(3), bytes(bad)))


def test_format_error_is_a_value_error_and_missing_files(tmp_path):
    assert issubclass(MnistFormatError, ValueError)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation")


# ------------------------------------------------------------------ embedded default

def test_default_digits_look_like_mnist():
    images, labels = default_digits()
    assert images.shape == (1797, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and sorted(labels.unique().tolist()) == list(range(10))
    ink = images.float()
    # Digit inside a 20x20 box (one pixel of interpolation blur allowed) ...
    rows, cols = ink.sum(2) > 0, ink.sum(1) > 0
    assert int(rows.sum(1).max()) <= 21 and int(cols.sum(1).max()) <= 21
    assert int(torch.maximum(rows.sum(1), cols.sum(1)).min()) >= 19
    # ... centred by mass on pixel (14, 14), like MNIST (measured there: mean 14.0, sd 0.3).
    r = torch.arange(28.0)
    mass = ink.sum((1, 2))
    cy = (ink.sum(2) * r).sum(1) / mass
    cx = (ink.sum(1) * r).sum(1) / mass
    assert (cy - 14).abs().max() < 1 and (cx - 14).abs().max() < 1
    assert images.max() == 255
    assert torch.equal(load_digits()[0], images)
