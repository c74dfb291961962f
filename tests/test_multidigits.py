"""The bundled multi-label demo set ``multidigits``: deterministic, labels that match the digits
placed, no evaluation digit from the digits training split, and a manifest that reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnnr_core.datasets import multidigits
from bnnr_core.datasets.digits import load_digits
from bnnr_core.datasets.manifest import read_manifest
from bnnr_core.datasets.multidigits import (
    CELL,
    CONTENT_SHA256,
    MEAN,
    SIZES,
    STD,
    load_multidigits,
    multidigits_content_digest,
    write_multidigits_manifest,
)
from bnnr_core.errors import BnnrError


def test_the_content_is_pinned_and_rebuilt_identically() -> None:
    assert multidigits_content_digest() == CONTENT_SHA256
    multidigits._build.cache_clear()
    assert multidigits_content_digest() == CONTENT_SHA256


@pytest.mark.parametrize("split", ["train", "eval"])
def test_shapes_and_two_or_three_distinct_digits_per_image(split: str) -> None:
    data = load_multidigits(split)
    size = SIZES[split]
    assert data.images.shape == (size, 1, 16, 16) and data.images.dtype == np.uint8
    assert data.labels.shape == (size, 10) and data.labels.dtype == np.int64
    assert data.class_names == [str(digit) for digit in range(10)]
    assert set(np.unique(data.labels)) == {0, 1}
    assert set(data.labels.sum(axis=1)) == {2, 3}
    assert ((data.cells >= 0).sum(axis=1) == data.labels.sum(axis=1)).all()
    assert len({tuple(row) for row in data.cells}) == size  # no two images alike
    assert (data.labels.sum(axis=0) > 0.15 * size).all()  # every digit well represented


@pytest.mark.parametrize("split", ["train", "eval"])
def test_labels_are_the_digits_placed_and_empty_cells_are_black(split: str) -> None:
    data = load_multidigits(split)
    digits = load_digits(split)  # the same role: no image crosses splits
    for image, labels, cells in zip(data.images, data.labels, data.cells, strict=True):
        placed = set()
        for place, source in enumerate(cells):
            top, left = divmod(place, 2)
            cell = image[0, top * CELL : (top + 1) * CELL, left * CELL : (left + 1) * CELL]
            if source < 0:
                assert not cell.any()
            else:
                assert np.array_equal(cell, digits.images[source])
                placed.add(int(digits.labels[source]))
        assert set(np.flatnonzero(labels).tolist()) == placed


def test_no_evaluation_image_holds_a_digit_of_the_training_split() -> None:
    train_digits = {image.tobytes() for image in load_digits("train").images}
    data = load_multidigits("eval")
    cells = data.images[:, 0].reshape(-1, 2, CELL, 2, CELL).transpose(0, 1, 3, 2, 4)
    filled = [cell for cell in cells.reshape(-1, CELL, CELL) if cell.any()]
    assert len(filled) == int(data.labels.sum())
    assert not any(cell.tobytes() in train_digits for cell in filled)


def test_normalisation_constants_are_those_of_the_training_split() -> None:
    pixels = load_multidigits("train").images / 255.0
    assert MEAN[0] == pytest.approx(pixels.mean(), abs=1e-4)
    assert STD[0] == pytest.approx(pixels.std(), abs=1e-4)


def test_callers_get_copies_and_bad_splits_are_user_errors() -> None:
    first = load_multidigits("eval")
    first.images[:] = 0
    first.labels[:] = 0
    assert load_multidigits("eval").images.any() and load_multidigits("eval").labels.any()
    with pytest.raises(BnnrError, match="no split 'test'"):
        load_multidigits("test")
    with pytest.raises(BnnrError, match="eval, train or both"):
        write_multidigits_manifest(Path("unused"), split="val")


def test_the_written_manifest_reads_back_with_the_same_pixels_and_labels(tmp_path: Path) -> None:
    path = write_multidigits_manifest(tmp_path / "demo", split="both")
    assert path == tmp_path / "demo" / "labels.csv"
    first = ";".join(str(k) for k in np.flatnonzero(load_multidigits("train").labels[0]))
    lines = path.read_text().splitlines()
    assert lines[:2] == ["path,labels,split", f"images/train/00000.png,{first},train"]
    assert lines[-1].endswith(",val") and len(lines) == 1 + SIZES["train"] + SIZES["eval"]
    manifest = read_manifest(path)
    assert manifest.names_source.endswith("labels.txt")
    assert manifest.class_names == tuple(str(digit) for digit in range(10))
    assert manifest.skipped == () and manifest.ignored_splits == ()
    assert manifest.train_split is not None
    for split, role in ((manifest.eval_split, "eval"), (manifest.train_split, "train")):
        data = load_multidigits(role)
        assert split.name == ("val" if role == "eval" else "train")
        assert np.array_equal(split.labels, data.labels)
        for index in (0, len(split) - 1):
            with Image.open(split.files[index]) as image:
                assert image.mode == "L"
                assert np.array_equal(np.asarray(image), data.images[index, 0])


def test_the_evaluation_split_alone_has_no_split_column(tmp_path: Path) -> None:
    manifest = read_manifest(write_multidigits_manifest(tmp_path))
    assert manifest.eval_split.name == "all" and manifest.train_split is None
    assert len(manifest.eval_split) == SIZES["eval"]
    assert manifest.eval_split.sample_ids[0] == "images/eval/00000.png"
