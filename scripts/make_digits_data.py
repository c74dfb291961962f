"""Build the bundled ``digits`` data set: ``bnnr_core/datasets/data/digits.npz``.

Source: scikit-learn's bundled copy of the UCI ML "Optical Recognition of Handwritten Digits"
data set (optdigits; E. Alpaydin and C. Kaynak; CC BY 4.0): 1797 grey 8x8 images, pixel values
0..16, labels 0..9. scikit-learn is needed here only (it is a dev dependency); at run time BNNR
reads the ``.npz`` with numpy.

What is written:

* ``digits.npz`` (deflate-compressed, byte-for-byte reproducible: fixed entry order and
  timestamps): ``train_images``/``eval_images`` (uint8, ``(N, 8, 8)``, 0..255 = round(v*255/16)),
  ``train_labels``/``eval_labels`` (int64), ``train_index``/``eval_index`` (int64 row numbers in
  scikit-learn's ``load_digits()`` order, ascending).
* ``DIGITS_LICENSE.txt``: the attribution.

The split is stratified and seeded: exactly ``EVAL_SIZE`` evaluation images, each class getting
its proportional share (largest remainders), the images of a class ordered by a SHA-256 of
``"{seed}:{row}"``; it depends on no random-number generator, so any numpy gives the same split.

Run from the repository root: ``python scripts/make_digits_data.py`` (add ``--output-dir DIR``
to write elsewhere). It prints the content digest that ``bnnr_core.datasets.digits`` checks.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from bnnr_core.datasets.digits import (
    DATA_FILE,
    LICENSE_FILE,
    digits_content_digest,
)
from bnnr_core.jsonio import write_bytes_atomic, write_text_atomic

EVAL_SIZE = 360
SPLIT_SEED = 0
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "bnnr_core" / "datasets" / "data"

LICENSE_TEXT = """\
The "digits" data set bundled with BNNR (digits.npz in this folder)

Source: Optical Recognition of Handwritten Digits (optdigits), UCI Machine Learning Repository,
by E. Alpaydin and C. Kaynak (Bogazici University, 1998),
https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits
as distributed with scikit-learn (sklearn.datasets.load_digits: the 1797 8x8 images of the
optdigits test set).

License: Creative Commons Attribution 4.0 International (CC BY 4.0),
https://creativecommons.org/licenses/by/4.0/

Changes made by BNNR: pixel values rescaled from 0..16 to 0..255 (round(v * 255 / 16), uint8),
and the images split into a training part and a 360-image evaluation part (stratified, seeded;
see scripts/make_digits_data.py in the BNNR source).
"""


def stratified_split(
    labels: np.ndarray, eval_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, eval_index)``, both ascending, with exactly ``eval_size`` eval rows."""
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * eval_size / len(labels)
    shares = np.floor(quotas).astype(np.int64)
    remainder = eval_size - int(shares.sum())
    # Largest fractional parts first; ties go to the smaller class label.
    order = sorted(range(len(classes)), key=lambda i: (-(quotas[i] - shares[i]), classes[i]))
    for i in order[:remainder]:
        shares[i] += 1
    eval_rows: list[int] = []
    for cls, share in zip(classes, shares, strict=True):
        rows = np.flatnonzero(labels == cls)
        ranked = sorted(
            rows.tolist(), key=lambda row: hashlib.sha256(f"{seed}:{row}".encode()).digest()
        )
        eval_rows.extend(ranked[: int(share)])
    eval_index = np.array(sorted(eval_rows), dtype=np.int64)
    train_index = np.setdiff1d(np.arange(len(labels), dtype=np.int64), eval_index)
    return train_index, eval_index


def build_arrays() -> dict[str, np.ndarray]:
    """The arrays of ``digits.npz``, from scikit-learn's copy of optdigits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(np.asarray(digits.images, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)
    labels = np.asarray(digits.target, dtype=np.int64)
    train_index, eval_index = stratified_split(labels, EVAL_SIZE, SPLIT_SEED)
    return {
        "train_images": images[train_index],
        "train_labels": labels[train_index],
        "train_index": train_index,
        "eval_images": images[eval_index],
        "eval_labels": labels[eval_index],
        "eval_index": eval_index,
    }


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` whose bytes depend only on the arrays (np.savez_compressed stamps
    the current time into every entry)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def write_digits(output_dir: Path) -> str:
    """Write ``digits.npz`` and the license into ``output_dir``; return the content digest."""
    arrays = build_arrays()
    write_bytes_atomic(output_dir / DATA_FILE, npz_bytes(arrays))
    write_text_atomic(output_dir / LICENSE_FILE, LICENSE_TEXT)
    return digits_content_digest(arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    digest = write_digits(args.output_dir)
    print(f"wrote {args.output_dir / DATA_FILE} (content sha256 {digest})")


if __name__ == "__main__":
    main()
