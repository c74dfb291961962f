"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, from files the user already has.

Nothing is downloaded unless ``download=True`` is asked for; offline, a missing data set is a
:class:`~bnnr_core.errors.BnnrError` that says where the files were looked for and how to get
them. The evaluation split is the official test split (the train split stays for training).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from bnnr_core.errors import BnnrError


class TorchvisionSpec(NamedTuple):
    """How a data set is found: torchvision class, folder it uses, channels, image side."""

    class_name: str
    folder: str
    channels: int
    side: int


TORCHVISION_DATASETS: dict[str, TorchvisionSpec] = {
    "mnist": TorchvisionSpec("MNIST", "MNIST/raw", 1, 28),
    "fashion_mnist": TorchvisionSpec("FashionMNIST", "FashionMNIST/raw", 1, 28),
    "cifar10": TorchvisionSpec("CIFAR10", "cifar-10-batches-py", 3, 32),
}
SPLITS = ("train", "eval")


class TorchvisionSplit(NamedTuple):
    """One split: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``, ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]


def load_torchvision_dataset(
    name: str, data_dir: str | Path, *, split: str = "eval", download: bool = False
) -> TorchvisionSplit:
    """Load split ``split`` of data set ``name`` from ``data_dir`` (torchvision's layout).

    :raises BnnrError: unknown name or split, files missing (offline), or a failed download.
    """
    spec = TORCHVISION_DATASETS.get(name)
    if spec is None:
        choices = ", ".join(sorted(TORCHVISION_DATASETS))
        raise BnnrError(f"unknown data set {name!r}; choose one of: {choices}, or digits")
    if split not in SPLITS:
        raise BnnrError(f"unknown split {split!r}; choose 'train' or 'eval'")
    import torchvision.datasets

    root = Path(data_dir)
    dataset_class = getattr(torchvision.datasets, spec.class_name)
    try:
        dataset = dataset_class(str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        if download:
            raise BnnrError(
                f"could not download {spec.class_name} into {root} ({exc}); check the network "
                f"connection, or place the files in {root / spec.folder} yourself"
            ) from exc
        raise BnnrError(
            f"the {spec.class_name} files are not in {root / spec.folder}; run again with "
            f"--download to fetch them (needs network access), or copy torchvision's "
            f"{spec.class_name} files there"
        ) from exc
    except OSError as exc:
        raise BnnrError(f"could not read {spec.class_name} from {root}: {exc}") from exc
    images = np.asarray(dataset.data, dtype=np.uint8)
    # MNIST-style data is (N, H, W); CIFAR is (N, H, W, C): both become (N, C, H, W).
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return TorchvisionSplit(np.ascontiguousarray(images), labels, list(dataset.classes))
