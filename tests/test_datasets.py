"""Data sets (bnnr_core.datasets): bundled digits, image-folder layouts, robust decoding."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from bnnr_core.datasets import (
    DigitsDataset,
    ImageFileDataset,
    decode_images,
    iter_image_batches,
    load_digits,
    resolve_image_folder,
)
from bnnr_core.datasets import digits as digits_module
from bnnr_core.errors import BnnrError

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "bnnr_core" / "datasets" / "data"


@pytest.fixture(scope="module")
def make_digits_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_digits_data", REPO / "scripts" / "make_digits_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- digits ----------------------------------------------------------------------------------


def test_digits_splits_have_the_documented_shapes() -> None:
    train = load_digits("train")
    evaluation = load_digits("eval")
    assert train.images.shape == (1437, 8, 8) and evaluation.images.shape == (360, 8, 8)
    for split in (train, evaluation):
        assert split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64
        assert split.class_names == [str(d) for d in range(10)]
        assert set(np.unique(split.labels)) == set(range(10))
    assert train.images.max() == 255 and train.images.min() == 0


def test_digits_eval_split_is_stratified() -> None:
    train_counts = np.bincount(load_digits("train").labels, minlength=10)
    eval_counts = np.bincount(load_digits("eval").labels, minlength=10)
    totals = train_counts + eval_counts
    assert eval_counts.sum() == 360
    proportional = totals * 360 / totals.sum()
    assert np.all(np.abs(eval_counts - proportional) < 1)


def test_digits_agree_with_scikit_learn_row_by_row() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    reference = sklearn_digits()
    expected_images = np.round(reference.images * 255 / 16).astype(np.uint8)
    rows = {split: digits_module.digits_source_rows(split) for split in ("train", "eval")}
    assert not set(rows["train"]) & set(rows["eval"])
    assert sorted([*rows["train"], *rows["eval"]]) == list(range(1797))
    for split, split_rows in rows.items():
        arrays = load_digits(split)
        assert np.array_equal(arrays.labels, reference.target[split_rows])
        assert np.array_equal(arrays.images, expected_images[split_rows])


def test_bundled_file_is_what_the_script_produces(
    tmp_path: Path, make_digits_script: ModuleType
) -> None:
    digest = make_digits_script.write_digits(tmp_path)
    assert digest == digits_module.CONTENT_SHA256
    with (
        np.load(tmp_path / "digits.npz") as regenerated,
        np.load(DATA_DIR / "digits.npz") as bundled,
    ):
        assert sorted(regenerated.files) == sorted(bundled.files)
        for name in bundled.files:
            assert np.array_equal(regenerated[name], bundled[name]), name
            assert regenerated[name].dtype == bundled[name].dtype, name
    assert (tmp_path / "DIGITS_LICENSE.txt").read_text() == (
        DATA_DIR / "DIGITS_LICENSE.txt"
    ).read_text()
    # Same arrays, same bytes: the writer stamps no time into the archive.
    arrays = make_digits_script.build_arrays()
    first = make_digits_script.npz_bytes(arrays)
    assert first == make_digits_script.npz_bytes(arrays)
    assert (
        hashlib.sha256(first).digest()
        == hashlib.sha256((tmp_path / "digits.npz").read_bytes()).digest()
    )


def test_split_helper_gives_exact_sizes_for_any_seed(make_digits_script: ModuleType) -> None:
    labels = np.repeat(np.arange(3), [5, 7, 11])
    for seed in range(5):
        train, evaluation = make_digits_script.stratified_split(labels, 8, seed)
        assert len(evaluation) == 8 and len(train) == 15
        assert np.bincount(labels[evaluation], minlength=3).tolist() in ([2, 2, 4], [2, 3, 3])
        assert np.all(np.diff(evaluation) > 0)


def test_license_attributes_the_source() -> None:
    text = (DATA_DIR / "DIGITS_LICENSE.txt").read_text()
    for phrase in ("UCI Machine Learning Repository", "Alpaydin", "Kaynak", "CC BY 4.0"):
        assert phrase in text


def test_digits_normalisation_constants_are_the_training_statistics() -> None:
    pixels = load_digits("train").images.astype(np.float64) / 255
    assert digits_module.MEAN[0] == pytest.approx(pixels.mean(), abs=1e-4)
    assert digits_module.STD[0] == pytest.approx(pixels.std(), abs=1e-4)


def test_digits_load_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # any import of it now fails
    digits_module._bundled_arrays.cache_clear()
    try:
        assert load_digits("eval").images.shape == (360, 8, 8)
    finally:
        digits_module._bundled_arrays.cache_clear()


def test_load_digits_returns_fresh_arrays_and_checks_the_split() -> None:
    first = load_digits("eval")
    first.images[:] = 0
    assert load_digits("eval").images.max() == 255
    with pytest.raises(BnnrError, match="no split 'test'; use one of: train, eval"):
        load_digits("test")


def test_damaged_bundled_data_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digits_module, "CONTENT_SHA256", "0" * 64)
    digits_module._bundled_arrays.cache_clear()
    try:
        with pytest.raises(BnnrError, match="does not match this BNNR release; reinstall"):
            load_digits("eval")
    finally:
        digits_module._bundled_arrays.cache_clear()


def test_digits_dataset_yields_normalised_float_tensors() -> None:
    dataset = DigitsDataset("train")
    image, label = dataset[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int)
    assert len(dataset) == 1437
    assert float(dataset.images.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(dataset.images.std()) == pytest.approx(1.0, abs=1e-3)
    raw = load_digits("train")
    assert torch.equal(dataset.labels, torch.from_numpy(raw.labels))
    expected = (torch.from_numpy(raw.images[:1]).float() / 255 - 0.3048) / 0.3754
    assert torch.allclose(dataset.images[0], expected, atol=1e-6)
    plain = DigitsDataset("eval", normalize=False)
    assert float(plain.images.min()) == 0.0 and float(plain.images.max()) == 1.0
    assert (plain.mean, plain.std) == ((0.0,), (1.0,))
    batch = next(iter(torch.utils.data.DataLoader(plain, batch_size=32)))
    assert batch[0].shape == (32, 1, 8, 8)


# -- image folders ---------------------------------------------------------------------------


def _png(path: Path, value: int = 128, size: tuple[int, int] = (6, 6), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (value, value, value) if mode == "RGB" else value
    Image.new(mode, size, colour).save(path)
    return path


def _tree(root: Path, classes: dict[str, int]) -> None:
    for name, count in classes.items():
        for i in range(count):
            _png(root / name / f"{i}.png", value=10 * i)


def test_plain_image_folder_is_the_evaluation_set(tmp_path: Path) -> None:
    _tree(tmp_path, {"dog": 2, "cat": 3})
    _png(tmp_path / "cat" / "nested" / "deep.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"ignored")
    (tmp_path / ".cache").mkdir()
    layout = resolve_image_folder(tmp_path)
    assert layout.class_names == ("cat", "dog")
    split = layout.eval_split
    assert split.name == "." and layout.train_split is None
    names = [str(p.relative_to(tmp_path)) for p in split.files]
    assert names == [
        "cat/0.png",
        "cat/1.png",
        "cat/2.png",
        "cat/nested/deep.png",
        "dog/0.png",
        "dog/1.png",
    ]
    assert split.labels == (0, 0, 0, 0, 1, 1)
    assert len(split) == 6


@pytest.mark.parametrize("eval_name", ["val", "valid", "validation", "test"])
def test_split_root_evaluates_the_validation_split_and_keeps_train(
    tmp_path: Path, eval_name: str
) -> None:
    _tree(tmp_path / "train", {"a": 2, "b": 2})
    _tree(tmp_path / eval_name, {"a": 1, "b": 1})
    layout = resolve_image_folder(tmp_path)
    assert layout.eval_split.name == eval_name
    assert layout.eval_split.root == tmp_path / eval_name
    assert layout.train_split is not None and len(layout.train_split) == 4
    assert layout.class_names == ("a", "b")


def test_val_is_preferred_over_test_and_the_rest_is_reported(tmp_path: Path) -> None:
    for split in ("val", "test"):
        _tree(tmp_path / split, {"a": 1, "b": 1})
    _png(tmp_path / "extras" / "x.png")
    layout = resolve_image_folder(tmp_path)
    assert layout.eval_split.name == "val"
    assert layout.train_split is None
    assert set(layout.ignored_folders) == {"test", "extras"}


def _make_error_case(name: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        if name == "missing":
            return root / "nope"
        if name == "file":
            return _png(root / "one.png")
        if name == "empty":
            return root
        if name == "loose":
            _png(root / "a.png")
            return root
        if name == "one_class":
            _tree(root, {"cats": 2})
        elif name == "no_images":
            (root / "a").mkdir()
            (root / "b").mkdir()
            (root / "b" / "readme.md").write_text("x")
        elif name == "different":
            _tree(root / "train", {"a": 1, "b": 1, "c": 1})
            _tree(root / "val", {"a": 1, "b": 1, "d": 1})
        elif name == "train_only":
            _tree(root / "train", {"a": 1, "b": 1})
        elif name == "one_class_split":
            _tree(root / "val", {"a": 1})
        return root

    return build


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"does not exist; pass a folder with one sub-folder per class"),
        ("file", r"is a file, not a folder"),
        ("empty", r"is empty \(no class sub-folders\)"),
        ("loose", r"holds images but no class sub-folders"),
        ("one_class", r"has only one class folder \('cats'\); .* at least two classes"),
        ("no_images", r"class folders of .* \(a, b\) hold no image files"),
        ("different", r"different class folders \(val/ lacks c; train/ lacks d\)"),
        ("train_only", r"train/ folder but no evaluation split; add val/"),
        ("one_class_split", r"val has only one class folder"),
    ],
)
def test_image_folder_errors_say_what_to_fix(tmp_path: Path, case: str, message: str) -> None:
    path = _make_error_case(case)(tmp_path)
    with pytest.raises(BnnrError, match=message) as error:
        resolve_image_folder(path)
    assert "\n" not in str(error.value)


# -- decoding --------------------------------------------------------------------------------


def _broken_files(root: Path) -> dict[str, Path]:
    good = _png(root / "good.png", value=200)
    truncated = root / "truncated.png"
    _png(root / "big.png", size=(64, 64))
    truncated.write_bytes((root / "big.png").read_bytes()[:60])
    empty = root / "empty.jpg"
    empty.write_bytes(b"")
    text = root / "text.jpg"
    text.write_text("this is not a jpeg")
    return {"good": good, "truncated": truncated, "empty": empty, "text": text}


def test_unreadable_images_are_skipped_with_a_reason(tmp_path: Path) -> None:
    files = _broken_files(tmp_path)
    order = ["good", "truncated", "empty", "text", "good"]
    dataset = ImageFileDataset([files[k] for k in order], [0, 1, 2, 3, 4], channels=1, size=(4, 4))
    decoded = decode_images(dataset, batch_size=2)
    assert decoded.indices.tolist() == [0, 4]
    assert decoded.labels.tolist() == [0, 4]
    assert decoded.images.shape == (2, 1, 4, 4)
    assert torch.allclose(decoded.images, torch.full((2, 1, 4, 4), 200 / 255))
    skipped = {s.index: s for s in decoded.skipped}
    assert sorted(skipped) == [1, 2, 3]
    assert skipped[1].path == files["truncated"]
    for entry in skipped.values():
        assert entry.reason and "Error" in entry.reason


def test_batches_cover_every_file_exactly_once(tmp_path: Path) -> None:
    files = _broken_files(tmp_path)
    paths = [files["good"], files["text"]] * 5
    dataset = ImageFileDataset(paths, list(range(10)), channels=3, size=(5, 5))
    seen: list[int] = []
    for batch in iter_image_batches(dataset, batch_size=3):
        assert batch.images.shape[1:] == (3, 5, 5)
        assert batch.images.dtype == torch.float32
        seen += batch.indices.tolist() + [s.index for s in batch.skipped]
    assert sorted(seen) == list(range(10))


def test_a_batch_with_only_broken_files_is_empty_not_an_error(tmp_path: Path) -> None:
    files = _broken_files(tmp_path)
    dataset = ImageFileDataset([files["text"], files["empty"]], [0, 1], channels=3, size=(4, 6))
    (batch,) = list(iter_image_batches(dataset, batch_size=4))
    assert batch.images.shape == (0, 3, 4, 6)
    assert batch.labels.shape == (0,)
    assert len(batch.skipped) == 2


def test_channels_size_and_normalisation(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (8, 4), (255, 0, 0)).save(rgb)
    grey = _png(tmp_path / "grey.png", value=100, mode="L")
    as_rgb = ImageFileDataset([rgb, grey], [0, 1], channels=3, size=(4, 4))
    decoded = decode_images(as_rgb, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    red = decoded.images[0]
    assert torch.allclose(red[0], torch.ones(4, 4)) and torch.allclose(red[1], -torch.ones(4, 4))
    assert torch.allclose(decoded.images[1], torch.full((3, 4, 4), (100 / 255 - 0.5) / 0.5))
    as_grey = decode_images(ImageFileDataset([rgb], [0], channels=1, size=(2, 3)))
    assert as_grey.images.shape == (1, 1, 2, 3)
    # PIL's ITU-R 601-2 luma: L = R * 299/1000 for pure red.
    assert torch.allclose(as_grey.images, torch.full((1, 1, 2, 3), 76 / 255))


def test_center_crop_keeps_the_aspect_ratio_and_stretch_does_not(tmp_path: Path) -> None:
    # 12x4: black | white | black thirds. A centre crop to 4x4 sees only the white middle.
    image = Image.new("L", (12, 4), 0)
    image.paste(255, (4, 0, 8, 4))
    path = tmp_path / "bands.png"
    image.save(path)
    cropped = decode_images(ImageFileDataset([path], [0], channels=1, size=(4, 4)))
    assert float(cropped.images.min()) == 1.0
    stretched = decode_images(
        ImageFileDataset([path], [0], channels=1, size=(4, 4), resize="stretch")
    )
    assert float(stretched.images[0, 0, :, 0].max()) < 0.5


def test_decoding_in_worker_processes(tmp_path: Path) -> None:
    files = _broken_files(tmp_path)
    dataset = ImageFileDataset(
        [files["good"], files["text"], files["good"]], [1, 2, 3], size=(4, 4)
    )
    decoded = decode_images(dataset, batch_size=2, num_workers=1)
    assert decoded.labels.tolist() == [1, 3]
    assert [s.index for s in decoded.skipped] == [1]


def test_dataset_arguments_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 files but 1 labels"):
        ImageFileDataset(["a.png", "b.png"], [0], size=(4, 4))
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        ImageFileDataset([], [], channels=2, size=(4, 4))
    with pytest.raises(ValueError, match="resize must be one of"):
        ImageFileDataset([], [], size=(4, 4), resize="squash")
    with pytest.raises(ValueError, match="needs 3 values"):
        decode_images(ImageFileDataset([], [], size=(4, 4)), mean=[0.5], std=[0.5])
    empty = decode_images(ImageFileDataset([], [], size=(4, 4)))
    assert empty.images.shape == (0, 3, 4, 4) and empty.skipped == ()


def test_importing_datasets_is_cheap() -> None:
    import subprocess

    code = (
        "import sys, bnnr_core.datasets as d; d.resolve_image_folder; d.load_digits; "
        "sys.exit(any(m in sys.modules for m in ('torch', 'PIL', 'sklearn')))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
