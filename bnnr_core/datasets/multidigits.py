"""The bundled multi-label demo set ``multidigits``: two or three digits per 16x16 grey image.

Every image is a 2x2 grid of 8x8 cells; two or three cells hold a digit of the bundled
:mod:`~bnnr_core.datasets.digits` (different digits, so two or three labels), the others are
black. The labels are the set of digits present (10 labels, ``"0"`` .. ``"9"``), multi-hot.

The set is derived from the digits, without any download, the same on every machine:

* the training split (2,000 images) uses only digits of the digits *training* split, the
  evaluation split (500 images) only digits of the digits *evaluation* split, so no evaluated
  digit was seen in training;
* the draws come from SHAKE-256 of a fixed seed string (numpy's ``Generator`` streams may change
  between numpy releases, a hash does not); no two images of a split have the same cells.

:func:`write_multidigits_manifest` writes the images as PNG files with a ``labels.csv``
manifest: an example of the format ``bnnr analyze --task multilabel`` reads
(:mod:`bnnr_core.datasets.manifest`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bnnr_core.datasets.digits import CLASS_NAMES, digits_content_digest, load_digits
from bnnr_core.errors import BnnrError

SPLITS = ("train", "eval")
#: Images per split.
SIZES = {"train": 2000, "eval": 500}
#: Side of a cell (one digit) and of an image (2x2 cells).
CELL = 8
SIDE = 2 * CELL
#: ``(channels, height, width)``.
INPUT_SIZE = (1, SIDE, SIDE)
#: Digits per image: two or three, drawn with equal probability.
DIGITS_PER_IMAGE = (2, 3)
#: Seed string of the draws; a new value gives a new data set.
SEED = "bnnr-multidigits-v1"
#: Pixel mean and standard deviation of the training split, on pixels scaled to [0, 1].
MEAN: tuple[float] = (0.1919,)
STD: tuple[float] = (0.3321,)
#: :func:`multidigits_content_digest` of both splits (checked by the tests).
CONTENT_SHA256 = "55cd75016f22cc5f6bf1e9144cba378635e34ccfe428c9a37f736b3e76141b59"
#: What :func:`write_multidigits_manifest` calls the evaluation split in the ``split`` column.
MANIFEST_SPLIT_NAMES = {"train": "train", "eval": "val"}

_DRAWS_PER_IMAGE = 16  # 1 count + 3 digits + 3 cells + 3 images, rounded up
_MAX_ATTEMPTS = 100


class MultiDigitsSplit(NamedTuple):
    """One split: ``images`` uint8 ``(N, 1, 16, 16)``, ``labels`` int64 ``(N, 10)`` multi-hot,
    ``class_names`` ``"0"`` .. ``"9"``, and ``cells`` int64 ``(N, 4)``: the position, in the
    digits split of the same role, of the digit in each cell (top left, top right, bottom left,
    bottom right), ``-1`` for an empty cell."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    cells: np.ndarray


def _split_name(split: str) -> str:
    if split not in SPLITS:
        raise BnnrError(f"multidigits has no split {split!r}; use one of: {', '.join(SPLITS)}")
    return split


def _draws(split: str, image: int, attempt: int) -> np.ndarray:
    """``_DRAWS_PER_IMAGE`` uint64 values for one image, from SHAKE-256 of the seed."""
    key = f"{SEED}:{split}:{image}:{attempt}".encode()
    return np.frombuffer(hashlib.shake_256(key).digest(8 * _DRAWS_PER_IMAGE), dtype="<u8")


def _pick(values: np.ndarray, options: int, count: int) -> list[int]:
    """``count`` distinct numbers below ``options`` (a partial Fisher-Yates shuffle)."""
    pool = list(range(options))
    for k in range(count):
        j = k + int(values[k] % np.uint64(options - k))
        pool[k], pool[j] = pool[j], pool[k]
    return pool[:count]


@functools.lru_cache(maxsize=2)
def _build(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits(split)
    by_class = [np.flatnonzero(digits.labels == digit) for digit in range(len(CLASS_NAMES))]
    size = SIZES[split]
    cells = np.full((size, 4), -1, dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    for image in range(size):
        for attempt in range(_MAX_ATTEMPTS):
            values = _draws(split, image, attempt)
            count = DIGITS_PER_IMAGE[int(values[0] % np.uint64(len(DIGITS_PER_IMAGE)))]
            classes = _pick(values[1:4], len(CLASS_NAMES), count)
            places = _pick(values[4:7], 4, count)
            row = [-1] * 4
            for n, (digit, place) in enumerate(zip(classes, places, strict=True)):
                members = by_class[digit]
                row[place] = int(members[int(values[7 + n] % np.uint64(members.size))])
            if tuple(row) not in seen:
                break
        else:  # pragma: no cover - 100 collisions in a row cannot happen with these sizes
            raise BnnrError("could not build the multidigits data set; reinstall bnnr")
        seen.add(tuple(row))
        cells[image] = row
    images = np.zeros((size, 1, SIDE, SIDE), dtype=np.uint8)
    labels = np.zeros((size, len(CLASS_NAMES)), dtype=np.int64)
    for place in range(4):
        top, left = divmod(place, 2)
        filled = np.flatnonzero(cells[:, place] >= 0)
        source = cells[filled, place]
        images[filled, 0, top * CELL : (top + 1) * CELL, left * CELL : (left + 1) * CELL] = (
            digits.images[source]
        )
        labels[filled, digits.labels[source]] = 1
    for array in (images, labels, cells):
        array.setflags(write=False)  # cached and shared: callers get copies
    return images, labels, cells


def load_multidigits(split: str = "eval") -> MultiDigitsSplit:
    """The images, multi-hot labels, label names and cell sources of one split.

    :param split: ``"train"`` (2,000 images, from digits' training split) or ``"eval"`` (500
        images, from digits' evaluation split).
    :returns: fresh arrays the caller may modify (the split is built once and cached).
    """
    images, labels, cells = _build(_split_name(split))
    return MultiDigitsSplit(
        images=images.copy(),
        labels=labels.copy(),
        class_names=list(CLASS_NAMES),
        cells=cells.copy(),
    )


def multidigits_content_digest() -> str:
    """SHA-256 over both splits' images, labels and cells (see
    :func:`~bnnr_core.datasets.digits.digits_content_digest`)."""
    arrays = {}
    for split in SPLITS:
        images, labels, cells = _build(split)
        arrays.update(
            {f"{split}_images": images, f"{split}_labels": labels, f"{split}_cells": cells}
        )
    return digits_content_digest(arrays)


def write_multidigits_manifest(folder: str | os.PathLike[str], split: str = "eval") -> Path:
    """Write a split (or both) as PNG files with a ``labels.csv`` manifest and ``labels.txt``.

    Images go to ``folder/images/<split>/00000.png``; ``labels.csv`` has the columns
    ``path,labels`` (labels separated by ``;``), plus ``split`` (``train`` and ``val``) when
    ``split="both"``; ``labels.txt`` names the 10 labels in order. Existing files of these names
    are replaced.

    :param split: ``"eval"``, ``"train"`` or ``"both"``.
    :returns: the path of ``labels.csv``.
    """
    if split not in (*SPLITS, "both"):
        raise BnnrError(f"multidigits has no split {split!r}; use eval, train or both")
    from PIL import Image

    root = Path(folder)
    written = SPLITS if split == "both" else (split,)
    lines = ["path,labels,split" if split == "both" else "path,labels"]
    for name in written:
        data = load_multidigits(name)
        target = root / "images" / name
        target.mkdir(parents=True, exist_ok=True)
        for index, (image, labels) in enumerate(zip(data.images, data.labels, strict=True)):
            relative = f"images/{name}/{index:05d}.png"
            Image.fromarray(image[0]).save(root / relative, format="PNG")
            present = ";".join(CLASS_NAMES[k] for k in np.flatnonzero(labels))
            lines.append(
                f"{relative},{present}"
                + (f",{MANIFEST_SPLIT_NAMES[name]}" if split == "both" else "")
            )
    (root / "labels.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    manifest = root / "labels.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
