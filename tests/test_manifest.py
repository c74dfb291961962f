"""Multi-label manifests (:mod:`bnnr_core.datasets.manifest`): CSV and JSON Lines, splits, label
names, and every problem reported as one sentence (a :class:`BnnrError`) or a note.

Nothing is decoded by the reader, so the "images" here are small files of arbitrary bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from bnnr_core.datasets.manifest import (
    NO_SPLIT,
    Manifest,
    SkippedRow,
    looks_like_manifest,
    parse_label_names,
    read_manifest,
)
from bnnr_core.errors import BnnrError


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"\x89PNG not decoded here")


def write(root: Path, name: str, lines: Iterable[str]) -> Path:
    manifest = root / name
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def jsonl(root: Path, name: str, entries: Iterable[object]) -> Path:
    return write(root, name, (json.dumps(entry) for entry in entries))


def one_sentence(error: pytest.ExceptionInfo[BnnrError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.count(". ") == 0, message  # one sentence: clauses joined by ';'
    return message


@pytest.fixture
def images(tmp_path: Path) -> Path:
    touch(tmp_path, "a.png", "b.png", "sub/c.png", "d.png")
    return tmp_path


# -------------------------------------------------------------------------------------------
# Formats
# -------------------------------------------------------------------------------------------


def test_a_csv_manifest_gives_multi_hot_labels_in_sorted_label_order(images: Path) -> None:
    manifest = read_manifest(
        write(images, "labels.csv", ["path,labels", "a.png,dog;cat", "b.png, cat ", "sub/c.png,"])
    )
    assert isinstance(manifest, Manifest)
    assert manifest.format == "csv" and manifest.root == images
    assert manifest.class_names == ("cat", "dog") and manifest.names_source == "the manifest"
    split = manifest.eval_split
    assert split.name == NO_SPLIT and manifest.train_split is None
    assert split.labels.dtype == np.int64
    assert split.labels.tolist() == [[1, 1], [1, 0], [0, 0]]
    assert split.sample_ids == ("a.png", "b.png", "sub/c.png")
    assert split.files == (images / "a.png", images / "b.png", images / "sub/c.png")
    assert split.rows == (2, 3, 4)
    assert len(split) == 3 and manifest.skipped == ()
    # An empty labels field means "no label present", and is said so.
    assert any("1 of 3 images" in note and "no label is present" in note for note in manifest.notes)


def test_a_json_lines_manifest_reads_lists_strings_and_numbers(images: Path) -> None:
    manifest = read_manifest(
        jsonl(
            images,
            "labels.jsonl",
            [
                {"path": "a.png", "labels": ["cat", "dog"], "extra": 1},
                {"path": "b.png", "labels": "dog; 3"},
                {"path": "sub/c.png", "labels": [3]},
                {"path": "d.png", "labels": []},
            ],
        )
    )
    assert manifest.format == "jsonl"
    assert manifest.class_names == ("3", "cat", "dog")
    assert manifest.eval_split.labels.tolist() == [[0, 1, 1], [1, 0, 1], [1, 0, 0], [0, 0, 0]]
    assert any("not used: extra" in note for note in manifest.notes)


def test_the_format_is_sniffed_for_other_extensions(images: Path) -> None:
    as_json = jsonl(images, "list.txt", [{"path": "a.png", "labels": ["x"]}])
    assert read_manifest(as_json).format == "jsonl"
    as_csv = write(images, "list.dat", ["path,labels", "a.png,x"])
    assert read_manifest(as_csv).format == "csv"
    tsv = write(images, "list.tsv", ["path\tlabels", "a.png\tx;y"])
    assert read_manifest(tsv).eval_split.labels.tolist() == [[1, 1]]


def test_quoted_fields_blank_lines_a_bom_and_extra_columns(images: Path) -> None:
    manifest = images / "labels.csv"
    manifest.write_text(
        '\ufeffPath , Labels,width\n\n"a.png","big, red;dog",3\n,,\nb.png,dog,4\n', encoding="utf-8"
    )
    read = read_manifest(manifest)
    assert read.class_names == ("big, red", "dog")
    assert read.eval_split.rows == (3, 5)
    assert any("columns of labels.csv not used: width" in note for note in read.notes)


def test_looks_like_manifest_and_parse_label_names(images: Path) -> None:
    assert looks_like_manifest(write(images, "m.csv", ["path,labels"]))
    assert not looks_like_manifest(images / "a.png") and not looks_like_manifest(images)
    assert not looks_like_manifest(images / "missing.csv")
    assert parse_label_names(" cat, dog ,bird") == ("cat", "dog", "bird")
    for bad in ("cat,,dog", "cat,dog,cat"):
        with pytest.raises(BnnrError) as error:
            parse_label_names(bad)
        assert "--labels" in one_sentence(error)


# -------------------------------------------------------------------------------------------
# Splits
# -------------------------------------------------------------------------------------------


def test_the_split_column_picks_val_for_evaluation_and_keeps_train(images: Path) -> None:
    manifest = read_manifest(
        write(
            images,
            "labels.csv",
            [
                "path,labels,split",
                "a.png,cat,train",
                "b.png,dog,Val",
                "sub/c.png,cat;dog,test",
                "d.png,dog, train ",
            ],
        )
    )
    assert manifest.eval_split.name == "val" and manifest.eval_split.sample_ids == ("b.png",)
    assert manifest.train_split is not None
    assert manifest.train_split.sample_ids == ("a.png", "d.png")
    assert manifest.train_split.labels.tolist() == [[1, 0], [0, 1]]
    assert manifest.ignored_splits == ("test",)
    assert any("test" in note and "not used" in note for note in manifest.notes)


@pytest.mark.parametrize(
    ("present", "evaluated"),
    [(("validation", "test"), "validation"), (("valid", "test"), "valid"), (("test",), "test")],
)
def test_the_first_evaluation_split_present_is_evaluated(
    images: Path, present: tuple[str, ...], evaluated: str
) -> None:
    rows = [f"{path},cat,{split}" for path, split in zip(("a.png", "b.png"), present, strict=False)]
    manifest = read_manifest(write(images, "m.csv", ["path,labels,split", *rows]))
    assert manifest.eval_split.name == evaluated


def test_json_lines_splits(images: Path) -> None:
    manifest = read_manifest(
        jsonl(
            images,
            "m.jsonl",
            [
                {"path": "a.png", "labels": ["cat"], "split": "train"},
                {"path": "b.png", "labels": ["dog"], "split": "valid"},
            ],
        )
    )
    assert manifest.eval_split.name == "valid" and manifest.train_split is not None


# -------------------------------------------------------------------------------------------
# Label names
# -------------------------------------------------------------------------------------------


def test_names_from_the_flag_set_the_column_order(images: Path) -> None:
    path = write(images, "m.csv", ["path,labels", "a.png,cat", "b.png,dog"])
    manifest = read_manifest(path, label_names=["dog", "cat", "bird"])
    assert manifest.class_names == ("dog", "cat", "bird") and manifest.names_source == "--labels"
    assert manifest.eval_split.labels.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert any("bird" in note and "undefined" in note for note in manifest.notes)


@pytest.mark.parametrize("file_name", ["labels.txt", "classes.txt"])
def test_names_from_a_names_file_next_to_the_manifest(images: Path, file_name: str) -> None:
    (images / file_name).write_text("# labels\ndog\n\ncat\n", encoding="utf-8")
    manifest = read_manifest(write(images, "m.csv", ["path,labels", "a.png,cat"]))
    assert manifest.class_names == ("dog", "cat")
    assert manifest.names_source == str(images / file_name)


def test_names_from_a_given_names_file(images: Path, tmp_path: Path) -> None:
    names = tmp_path / "elsewhere" / "names.txt"
    names.parent.mkdir()
    names.write_text("b\na\n", encoding="utf-8")
    manifest = read_manifest(write(images, "m.csv", ["path,labels", "a.png,a"]), names_file=names)
    assert manifest.class_names == ("b", "a")


def test_unknown_labels_name_the_first_rows(images: Path) -> None:
    lines = ["path,labels", "a.png,cat", "b.png,dgo;cat", "sub/c.png,bird", "d.png,cat"]
    with pytest.raises(BnnrError) as error:
        read_manifest(write(images, "m.csv", lines), label_names=["cat", "dog"])
    message = one_sentence(error)
    assert "row 3 'dgo'" in message and "row 4 'bird'" in message and "--labels" in message


def test_bad_names_are_errors(images: Path) -> None:
    path = write(images, "m.csv", ["path,labels", "a.png,cat"])
    (images / "names.txt").write_text("cat\ncat\n", encoding="utf-8")
    cases: list[dict[str, object]] = [
        {"label_names": ["cat"], "names_file": images / "names.txt"},
        {"names_file": images / "missing.txt"},
        {"names_file": images / "names.txt"},
        {"label_names": []},
    ]
    for kwargs in cases:
        with pytest.raises(BnnrError) as error:
            read_manifest(path, **kwargs)  # type: ignore[arg-type]
        one_sentence(error)


# -------------------------------------------------------------------------------------------
# Paths
# -------------------------------------------------------------------------------------------


def test_windows_separators_absolute_paths_and_dot_segments(images: Path, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}_outside.png"
    outside.write_bytes(b"x")
    try:
        lines = [
            "path,labels",
            "sub\\c.png,cat",
            f"{images / 'a.png'},dog",
            "./b.png,dog",
            f"../{outside.name},cat",
        ]
        manifest = read_manifest(write(images, "m.csv", lines))
    finally:
        outside.unlink()
    split = manifest.eval_split
    assert split.sample_ids == (
        "sub/c.png",
        (images / "a.png").as_posix(),
        "b.png",
        f"../{outside.name}",
    )
    assert split.files[0] == images / "sub" / "c.png"
    assert split.files[1] == images / "a.png"
    assert manifest.skipped == ()


def test_missing_images_are_skipped_with_a_note(images: Path) -> None:
    lines = [
        "path,labels",
        "a.png,cat",
        "gone.png,dog",
        "sub,cat",
        "../nowhere/x.png,cat",
        "b.png,dog",
    ]
    manifest = read_manifest(write(images, "m.csv", lines))
    assert manifest.eval_split.sample_ids == ("a.png", "b.png")
    assert manifest.eval_split.rows == (2, 6)
    assert manifest.skipped == (
        SkippedRow(3, "gone.png", "does not exist"),
        SkippedRow(4, "sub", "is a folder, not an image file"),
        SkippedRow(5, "../nowhere/x.png", "is outside the manifest's folder and does not exist"),
    )
    (note,) = [note for note in manifest.notes if "not found" in note]
    assert "3 of 5 images" in note and "row 3 gone.png" in note


def test_a_missing_training_split_is_dropped_with_a_note(images: Path) -> None:
    lines = ["path,labels,split", "gone.png,cat,train", "a.png,cat,val"]
    manifest = read_manifest(write(images, "m.csv", lines))
    assert manifest.train_split is None
    assert any("split train" in note for note in manifest.notes)


def test_no_existing_image_is_an_error(images: Path) -> None:
    with pytest.raises(BnnrError) as error:
        read_manifest(write(images, "m.csv", ["path,labels", "x.png,cat", "y.png,dog"]))
    message = one_sentence(error)
    assert "none of the 2 images" in message and "row 2: x.png" in message


def test_an_evaluated_split_without_existing_images_is_an_error(images: Path) -> None:
    lines = ["path,labels,split", "a.png,cat,train", "x.png,cat,val"]
    with pytest.raises(BnnrError) as error:
        read_manifest(write(images, "m.csv", lines))
    message = one_sentence(error)
    assert "the only image of split val" in message and "row 3: x.png" in message


def test_duplicate_paths_are_an_error(images: Path) -> None:
    lines = ["path,labels,split", "a.png,cat,val", "b.png,dog,val", "./a.png,dog,train"]
    with pytest.raises(BnnrError) as error:
        read_manifest(write(images, "m.csv", lines))
    assert "rows 2 and 4: a.png" in one_sentence(error)


# -------------------------------------------------------------------------------------------
# Malformed manifests
# -------------------------------------------------------------------------------------------

BAD_CSV = {
    "empty": ([], "lists no image"),
    "header only": (["path,labels"], "lists no image"),
    "no header": (["a.png,cat"], "not a header"),
    "repeated column": (["path,labels,path", "a.png,cat,a.png"], "more than once"),
    "short row": (["path,labels", "a.png,cat", "b.png"], "row 3"),
    "long row": (["path,labels", "a.png,cat,dog"], "row 2"),
    "no path": (["path,labels", " ,cat"], "row 2"),
    "unknown split": (["path,labels,split", "a.png,cat,dev"], "'dev'"),
    "empty split": (["path,labels,split", "a.png,cat,val", "b.png,dog,"], "row 3"),
    "only train": (["path,labels,split", "a.png,cat,train"], "only train rows"),
    "no label anywhere": (["path,labels", "a.png,", "b.png, "], "names a label"),
    "json array": (['[{"path": "a.png"}]'], "JSON array"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_malformed_csv_is_one_sentence_naming_the_row(images: Path, case: str) -> None:
    lines, expected = BAD_CSV[case]
    path = images / "m.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    if case == "json array":
        path = path.rename(images / "m.json")
    with pytest.raises(BnnrError) as error:
        read_manifest(path)
    assert expected in one_sentence(error)


BAD_JSONL = {
    "bad json": (['{"path": "a.png", "labels": ["cat"]}', '{"path": "b.png",'], "row 2"),
    "not an object": (['["a.png", "cat"]'], "not an object"),
    "no path": (['{"labels": ["cat"]}'], "row 1"),
    "no labels": (['{"path": "a.png"}'], '"labels": []'),
    "null labels": (['{"path": "a.png", "labels": null}'], "row 1"),
    "nested labels": (['{"path": "a.png", "labels": [["cat"]]}'], "row 1"),
    "mixed splits": (
        [
            '{"path": "a.png", "labels": ["cat"], "split": "val"}',
            '{"path": "b.png", "labels": ["cat"]}',
        ],
        "row 2 has none",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_malformed_json_lines_are_one_sentence_naming_the_row(images: Path, case: str) -> None:
    lines, expected = BAD_JSONL[case]
    with pytest.raises(BnnrError) as error:
        read_manifest(write(images, "m.jsonl", lines))
    assert expected in one_sentence(error)


def test_a_missing_folder_or_binary_manifest_is_an_error(images: Path) -> None:
    binary = images / "m.csv"
    binary.write_bytes(b"path,labels\n\xff\xfe\x00a.png,cat\n")
    for path in (images / "nope.csv", images / "sub", binary):
        with pytest.raises(BnnrError) as error:
            read_manifest(path)
        one_sentence(error)
