"""The bundled ``digits`` data set: 1797 grey 8x8 handwritten digits, read with numpy only.

UCI ML optdigits (E. Alpaydin and C. Kaynak; CC BY 4.0) as distributed with scikit-learn, stored
in ``data/digits.npz`` with its attribution in ``data/DIGITS_LICENSE.txt``. Pixel values are
uint8 0..255 (the original 0..16 scaled). The split is fixed: 1437 training and 360 evaluation
images, stratified by class. ``scripts/make_digits_data.py`` rebuilds the file.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import NamedTuple

import numpy as np

from bnnr_core.errors import BnnrError

DATA_FILE = "digits.npz"
LICENSE_FILE = "DIGITS_LICENSE.txt"
SPLITS = ("train", "eval")
CLASS_NAMES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
#: ``(channels, height, width)``.
INPUT_SIZE = (1, 8, 8)
#: Pixel mean and standard deviation of the training split, on pixels scaled to [0, 1]; the
#: normalisation :class:`bnnr_core.datasets.DigitsDataset` applies.
MEAN: tuple[float] = (0.3048,)
STD: tuple[float] = (0.3754,)
#: :func:`digits_content_digest` of the bundled arrays; checked on every first load.
CONTENT_SHA256 = "46c0623c72ba52af8d7261087260601e5e50544495449c2c82b5ac6accd47c99"

_ARRAYS = (
    "train_images",
    "train_labels",
    "train_index",
    "eval_images",
    "eval_labels",
    "eval_index",
)


class DigitsSplit(NamedTuple):
    """One split: ``images`` uint8 ``(N, 8, 8)``, ``labels`` int64 ``(N,)``, ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]


def digits_content_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes: the same arrays give the same
    digest whatever compressor wrote the file."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _bundled_arrays() -> dict[str, np.ndarray]:
    resource = resources.files("bnnr_core.datasets") / "data" / DATA_FILE
    try:
        with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAYS}
    except (OSError, KeyError, ValueError) as exc:
        raise BnnrError(
            f"the bundled digits data ({DATA_FILE}) is missing or damaged ({exc}); reinstall bnnr"
        ) from exc
    if digits_content_digest(arrays) != CONTENT_SHA256:
        raise BnnrError(
            f"the bundled digits data ({DATA_FILE}) does not match this BNNR release; reinstall "
            "bnnr"
        )
    for array in arrays.values():
        array.setflags(write=False)  # cached and shared: callers get copies
    return arrays


def _split_name(split: str) -> str:
    if split not in SPLITS:
        raise BnnrError(f"digits has no split {split!r}; use one of: {', '.join(SPLITS)}")
    return split


def load_digits(split: str = "eval") -> DigitsSplit:
    """The images, labels and class names (``"0"`` .. ``"9"``) of one split.

    :param split: ``"train"`` (1437 images) or ``"eval"`` (360 images).
    :returns: fresh arrays the caller may modify.
    """
    name = _split_name(split)
    arrays = _bundled_arrays()
    return DigitsSplit(
        images=arrays[f"{name}_images"].copy(),
        labels=arrays[f"{name}_labels"].copy(),
        class_names=list(CLASS_NAMES),
    )


def digits_source_rows(split: str = "eval") -> np.ndarray:
    """Row numbers of the split's images in scikit-learn's ``load_digits()`` order."""
    return _bundled_arrays()[f"{_split_name(split)}_index"].copy()
