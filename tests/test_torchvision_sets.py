"""MNIST-style data sets load from local files; missing files are one clear sentence, offline."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from bnnr_core.datasets.torchvision_sets import load_torchvision_dataset
from bnnr_core.errors import BnnrError


def _write_idx(path: Path, array: np.ndarray) -> None:
    # The IDX format: magic (0, 0, type 0x08 = ubyte, number of dimensions), sizes, raw bytes.
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, folder: str, count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return images, labels


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_local_idx_files_load_as_uint8_nchw(tmp_path: Path, name: str, folder: str) -> None:
    images, labels = _fake_mnist(tmp_path, folder)
    split = load_torchvision_dataset(name, tmp_path, split="eval")
    assert split.images.shape == (12, 1, 28, 28)
    assert split.images.dtype == np.uint8
    np.testing.assert_array_equal(split.images[:, 0], images)
    np.testing.assert_array_equal(split.labels, labels.astype(np.int64))
    assert len(split.class_names) == 10


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
    ],
)
def test_missing_files_offline_say_where_and_how(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(BnnrError) as info:
        load_torchvision_dataset(name, tmp_path)
    message = str(info.value)
    assert expected in message
    assert "--download" in message
    assert "\n" not in message
    assert not any(path.is_file() for path in tmp_path.rglob("*")), "nothing may be fetched"


def test_unknown_name_and_split(tmp_path: Path) -> None:
    with pytest.raises(BnnrError, match="choose one of: cifar10, fashion_mnist, mnist, or digits"):
        load_torchvision_dataset("imagenet", tmp_path)
    with pytest.raises(BnnrError, match="unknown split 'test'"):
        load_torchvision_dataset("mnist", tmp_path, split="test")
