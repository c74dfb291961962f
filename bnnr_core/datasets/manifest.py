"""Multi-label manifests: a CSV or JSON Lines file that lists images and their label sets.

CSV (``.csv``; ``.tsv`` is read tab-separated)::

    path,labels,split
    images/0001.png,cat;dog,train
    images/0002.png,dog,val
    images/0003.png,,val

JSON Lines (``.jsonl``, ``.ndjson``; any other extension is sniffed: a first character ``{``
means JSON Lines)::

    {"path": "images/0001.png", "labels": ["cat", "dog"], "split": "train"}

* ``path``: relative to the manifest's folder (absolute paths are allowed; ``\\`` is read as
  ``/``). A path that leaves the manifest's folder through ``..`` is allowed when the file exists.
* ``labels``: the labels present in the image, separated by ``;`` in CSV (whitespace around each
  is stripped), a list (or a ``;``-separated string) in JSON Lines. An **empty** field (``""`` in
  CSV, ``[]`` in JSON) means *no label is present*: every label is negative for that image,
  which is legitimate in multi-label data. A *missing* field (a short CSV row, no ``labels`` key)
  is an error.
* ``split`` (optional column): ``train``, or ``val``/``valid``/``validation``/``test``; the first
  of ``val``, ``valid``, ``validation``, ``test`` present is evaluated, ``train`` is kept for
  cross-split checks. Without the column every row is evaluated (split ``all``).

Label names come from ``label_names`` (``--labels a,b,c``), else a names file (one name per
line; by default ``labels.txt`` or ``classes.txt`` next to the manifest), else the sorted set of
labels used. Rows are numbered as lines of the file (the CSV header is line 1).

Nothing is decoded here. A listed image that does not exist is skipped and reported
(:attr:`Manifest.skipped`, :attr:`Manifest.notes`); every other problem is a
:class:`~bnnr_core.errors.BnnrError` naming the row. ``docs/multilabel-data.md`` has the details.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import attrs
import numpy as np

from bnnr_core.datasets.imagefolder import EVAL_SPLIT_NAMES, TRAIN_SPLIT_NAME
from bnnr_core.errors import BnnrError

#: Extensions read as CSV (``.tsv``: tab-separated) and as JSON Lines; others are sniffed.
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
MANIFEST_SUFFIXES = CSV_SUFFIXES | JSONL_SUFFIXES
#: Names files looked for next to the manifest, in this order, when no names are given.
NAMES_FILES = ("labels.txt", "classes.txt")
#: Separator of the labels of one image in a CSV field.
LABEL_SEPARATOR = ";"
#: Split name of a manifest without a ``split`` column (every row is evaluated).
NO_SPLIT = "all"
#: Columns (CSV) or keys (JSON Lines) read; others are ignored with a note.
COLUMNS = ("path", "labels", "split")
#: Rows quoted in a message or a note before "... and N more".
ROWS_QUOTED = 5

_SPLITS = (TRAIN_SPLIT_NAME, *EVAL_SPLIT_NAMES)


class SkippedRow(NamedTuple):
    """A manifest row left out: its row (line) number, its path as written, and why."""

    row: int
    path: str
    reason: str


@attrs.frozen(kw_only=True, eq=False)
class ManifestSplit:
    """The images of one split and their label sets."""

    #: ``val``, ``test``, ``train``, ... or ``all`` (no split column).
    name: str
    #: Image files (absolute when the manifest path was, else joined to it), in manifest order.
    files: tuple[Path, ...]
    #: ``(N, C)`` int64 multi-hot: ``labels[i, k]`` is 1 when image ``i`` has label ``k``.
    labels: np.ndarray
    #: The paths as written in the manifest, in POSIX form (``\\`` read as ``/``, ``./`` dropped).
    sample_ids: tuple[str, ...]
    #: The row (line) number of every image in the manifest.
    rows: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)


@attrs.frozen(kw_only=True, eq=False)
class Manifest:
    """What :func:`read_manifest` found."""

    #: The manifest file, and the folder its relative paths start from.
    path: Path
    root: Path
    #: ``csv`` or ``jsonl``.
    format: str
    #: Label names; column ``k`` of every ``labels`` array is ``class_names[k]``.
    class_names: tuple[str, ...]
    #: Where the names came from: ``--labels``, a names file's path, or ``the manifest``.
    names_source: str
    #: The evaluated split (the first of val, valid, validation, test; or ``all``).
    eval_split: ManifestSplit
    #: The ``train`` rows, or ``None``.
    train_split: ManifestSplit | None = None
    #: Evaluation-like splits present but not evaluated (``test`` when ``val`` is).
    ignored_splits: tuple[str, ...] = ()
    #: Sentences for the report: skipped images, rows without labels, ignored columns, ...
    notes: tuple[str, ...] = ()
    #: Rows left out (missing images), in row order.
    skipped: tuple[SkippedRow, ...] = ()

    @property
    def num_labels(self) -> int:
        return len(self.class_names)


@attrs.frozen
class _Row:
    row: int
    path: str
    labels: tuple[str, ...]
    split: str | None


def looks_like_manifest(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file with a manifest extension (``.csv``, ``.tsv``, ``.jsonl``,
    ``.ndjson``); for deciding what ``--data`` points at."""
    candidate = Path(path)
    return candidate.suffix.lower() in MANIFEST_SUFFIXES and candidate.is_file()


def parse_label_names(text: str) -> tuple[str, ...]:
    """The names of ``--labels a,b,c`` (commas separate, whitespace is stripped).

    :raises BnnrError: an empty name or a name given twice.
    """
    return _check_names([part.strip() for part in text.split(",")], "--labels")


def read_manifest(
    path: str | os.PathLike[str],
    *,
    label_names: Sequence[str] | None = None,
    names_file: str | os.PathLike[str] | None = None,
) -> Manifest:
    """Read a multi-label manifest (CSV or JSON Lines) without decoding any image.

    :param label_names: the label names, in column order (``--labels``); every label used must
        be one of them.
    :param names_file: a file of label names, one per line (blank lines and lines starting with
        ``#`` are ignored); by default ``labels.txt`` or ``classes.txt`` next to the manifest
        when present. Not together with ``label_names``.
    :raises BnnrError: a missing or unreadable manifest, a malformed row (wrong column count,
        bad JSON, no path, no labels field, an unknown split), no row at all, a label not among
        the given names, an image listed twice, or an evaluated split without any existing image.
    """
    manifest = Path(path)
    if not manifest.exists():
        raise BnnrError(f"manifest {manifest} does not exist; pass a CSV or JSON Lines file")
    if not manifest.is_file():
        raise BnnrError(f"{manifest} is not a file; pass a CSV or JSON Lines manifest")
    if label_names is not None and names_file is not None:
        raise BnnrError("give the label names with --labels or in a names file, not both")
    text = _read_text(manifest, "manifest")
    kind = _format(manifest, text)
    name = manifest.name
    notes: list[str] = []
    if kind == "csv":
        rows = _read_csv(text, name, manifest.suffix.lower(), notes)
    else:
        rows = _read_jsonl(text, name, notes)
    if not rows:
        raise BnnrError(
            f"{name} lists no image; add one row per image (path and its labels separated by "
            f"'{LABEL_SEPARATOR}')"
        )
    eval_name, used, ignored = _choose_splits(rows, name)
    if ignored:
        notes.append(
            f"rows of split(s) {', '.join(ignored)} are not used: split {eval_name} is evaluated"
        )
    class_names, source = _names(manifest, used, label_names, names_file)
    _check_labels(used, class_names, source, name)
    root = manifest.parent
    files = _locate(used, root, name)
    skipped = tuple(
        SkippedRow(row.row, row.path, reason)
        for row, (_, reason) in zip(used, files, strict=True)
        if reason
    )
    eval_rows = [k for k, row in enumerate(used) if (row.split or NO_SPLIT) == eval_name]
    train_rows = [k for k, row in enumerate(used) if row.split == TRAIN_SPLIT_NAME]
    eval_split = _split(eval_name, eval_rows, used, files, class_names)
    if not len(eval_split):
        first = next(item for item in skipped if item.row == used[eval_rows[0]].row)
        raise BnnrError(
            f"{_none_found(len(eval_rows), _where(eval_name, name))} "
            f"(row {first.row}: {first.path} {first.reason}); paths are relative to "
            f"{os.path.abspath(root)}"
        )
    train_split = _split(TRAIN_SPLIT_NAME, train_rows, used, files, class_names)
    if skipped:
        notes.append(_skipped_note(skipped, len(used), name))
    if train_rows and not len(train_split):
        notes.append(f"no image of split train in {name} can be found; it is not used")
    notes.extend(_label_notes(eval_split, class_names, name))
    return Manifest(
        path=manifest,
        root=root,
        format=kind,
        class_names=class_names,
        names_source=source,
        eval_split=eval_split,
        train_split=train_split if len(train_split) else None,
        ignored_splits=tuple(ignored),
        notes=tuple(notes),
        skipped=skipped,
    )


# -------------------------------------------------------------------------------------------
# Reading rows
# -------------------------------------------------------------------------------------------


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BnnrError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise BnnrError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc


def _format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    first = text.lstrip()[:1]
    if first == "[":
        raise BnnrError(
            f"{path.name} holds a JSON array; write one JSON object per line (JSON Lines, "
            ".jsonl) or a CSV file with the header path,labels"
        )
    return "jsonl" if first == "{" else "csv"


def _label_set(values: Iterable[str]) -> tuple[str, ...]:
    """Stripped, non-empty labels without repeats, in the order written."""
    return tuple(dict.fromkeys(value.strip() for value in values if value.strip()))


def _split_value(value: Any, row: int, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BnnrError(
            f"row {row} of {name} has no split; give every row one of {', '.join(_SPLITS)}, or "
            "drop the split column"
        )
    split = value.strip().lower()
    if split not in _SPLITS:
        raise BnnrError(
            f"row {row} of {name} has split {value.strip()!r}; use one of {', '.join(_SPLITS)}"
        )
    return split


def _read_csv(text: str, name: str, suffix: str, notes: list[str]) -> list[_Row]:
    delimiter, delimiter_name = ("\t", "tab") if suffix == ".tsv" else (",", "comma")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[_Row] = []
    header: list[str] | None = None
    columns: dict[str, int] = {}
    try:
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue  # blank lines and spreadsheet rows of empty cells
            line = reader.line_num
            if header is None:
                header = [field.strip().lower() for field in fields]
                columns = _header(header, fields, name)
                continue
            if len(fields) != len(header):
                raise BnnrError(
                    f"row {line} of {name} has {_fields(len(fields))} but the header has "
                    f"{len(header)}; give every row one field per column (an empty labels "
                    f"field for no label) and quote a field that contains a {delimiter_name}"
                )
            path = fields[columns["path"]].strip()
            if not path:
                raise BnnrError(f"row {line} of {name} has no path; give every row an image path")
            split = None
            if "split" in columns:
                split = _split_value(fields[columns["split"]], line, name)
            labels = _label_set(fields[columns["labels"]].split(LABEL_SEPARATOR))
            rows.append(_Row(line, path, labels, split))
    except csv.Error as exc:
        raise BnnrError(f"row {reader.line_num} of {name} is not valid CSV ({exc})") from exc
    extra = [column for column in header or () if column not in COLUMNS]
    if extra:
        notes.append(f"columns of {name} not used: {', '.join(extra)}")
    return rows


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


def _header(header: list[str], fields: list[str], name: str) -> dict[str, int]:
    written = ",".join(field.strip() for field in fields)
    if "path" not in header or "labels" not in header:
        raise BnnrError(
            f"the first row of {name} is {written!r}, not a header naming the columns path and "
            "labels; start the file with the line path,labels (or path,labels,split)"
        )
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise BnnrError(
            f"the header of {name} names column(s) {', '.join(repeated)} more than once; give "
            "each column once"
        )
    return {column: header.index(column) for column in COLUMNS if column in header}


def _read_jsonl(text: str, name: str, notes: list[str]) -> list[_Row]:
    rows: list[_Row] = []
    extra: dict[str, None] = {}
    with_split: list[int] = []
    without_split: list[int] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BnnrError(
                f"row {line} of {name} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "write one JSON object per line"
            ) from exc
        if not isinstance(entry, dict):
            raise BnnrError(
                f"row {line} of {name} is a JSON {type(entry).__name__}, not an object; write "
                'one object per line, like {"path": "a.png", "labels": ["cat"]}'
            )
        path = entry.get("path")
        if not isinstance(path, str) or not path.strip():
            raise BnnrError(f'row {line} of {name} has no "path" string; give every row a path')
        labels = _json_labels(entry, line, name)
        split = None
        if entry.get("split") is not None:
            split = _split_value(entry["split"], line, name)
            with_split.append(line)
        else:
            without_split.append(line)
        extra.update(dict.fromkeys(key for key in entry if key not in COLUMNS))
        rows.append(_Row(line, path.strip(), labels, split))
    if with_split and without_split:
        raise BnnrError(
            f"rows of {name} have a split but row {without_split[0]} has none; give every row a "
            "split, or none"
        )
    if extra:
        notes.append(f"keys of {name} not used: {', '.join(extra)}")
    return rows


def _json_labels(entry: dict[str, Any], line: int, name: str) -> tuple[str, ...]:
    if "labels" not in entry:
        raise BnnrError(
            f'row {line} of {name} has no "labels"; write "labels": [] for an image without any '
            "label"
        )
    value = entry["labels"]
    if isinstance(value, str):
        return _label_set(value.split(LABEL_SEPARATOR))
    if isinstance(value, list) and all(
        isinstance(item, (str, int)) and not isinstance(item, bool) for item in value
    ):
        return _label_set(str(item) for item in value)
    raise BnnrError(
        f'row {line} of {name} has "labels": {json.dumps(value)[:60]}; give a list of label '
        'names, like ["cat", "dog"], or [] for none'
    )


# -------------------------------------------------------------------------------------------
# Splits, names and files
# -------------------------------------------------------------------------------------------


def _choose_splits(rows: list[_Row], name: str) -> tuple[str, list[_Row], list[str]]:
    """The evaluated split's name, the rows used (evaluated and training), the ignored splits."""
    present = {row.split for row in rows}
    if present == {None}:
        return NO_SPLIT, rows, []
    evaluated = [split for split in EVAL_SPLIT_NAMES if split in present]
    if not evaluated:
        raise BnnrError(
            f"{name} has only train rows; mark the rows to evaluate with split val (or valid, "
            "validation, test), or drop the split column to evaluate every row"
        )
    eval_name = evaluated[0]
    used = [row for row in rows if row.split in (eval_name, TRAIN_SPLIT_NAME)]
    return eval_name, used, evaluated[1:]


def _check_names(names: Sequence[str], source: str) -> tuple[str, ...]:
    cleaned = [str(item).strip() for item in names]
    if not cleaned or not all(cleaned):
        raise BnnrError(
            f"the label names of {source} are empty or include an empty name; give each label "
            "a name"
        )
    repeated = sorted(item for item, count in Counter(cleaned).items() if count > 1)
    if repeated:
        raise BnnrError(
            f"the label names of {source} name {', '.join(repeated[:ROWS_QUOTED])} more than "
            "once; give each label once"
        )
    return tuple(cleaned)


def _names(
    manifest: Path,
    rows: list[_Row],
    label_names: Sequence[str] | None,
    names_file: str | os.PathLike[str] | None,
) -> tuple[tuple[str, ...], str]:
    if label_names is not None:
        return _check_names(label_names, "--labels"), "--labels"
    if names_file is not None:
        file = Path(names_file)
        if not file.is_file():
            raise BnnrError(
                f"label names file {file} does not exist; pass a file of one name a line"
            )
    else:
        found = [
            manifest.parent / candidate
            for candidate in NAMES_FILES
            if (manifest.parent / candidate).is_file() and candidate != manifest.name
        ]
        if not found:
            used = sorted({label for row in rows for label in row.labels})
            if not used:
                raise BnnrError(
                    f"no row of {manifest.name} names a label; write the labels of each image "
                    f"separated by '{LABEL_SEPARATOR}', or pass the label names with --labels"
                )
            return tuple(used), "the manifest"
        file = found[0]
    lines = _read_text(file, "label names file").splitlines()
    names = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return _check_names(names, str(file)), str(file)


def _check_labels(rows: list[_Row], names: tuple[str, ...], source: str, name: str) -> None:
    known = set(names)
    bad = [(row.row, label) for row in rows for label in row.labels if label not in known]
    if not bad:
        return
    quoted = ", ".join(f"row {row} {label!r}" for row, label in bad[:ROWS_QUOTED])
    more = f" and {len(bad) - ROWS_QUOTED} more" if len(bad) > ROWS_QUOTED else ""
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    raise BnnrError(
        f"{name} uses labels that are not among the label names of {source} ({shown}): "
        f"{quoted}{more}; fix those rows or add the labels to the names"
    )


def _sample_id(written: str) -> str:
    return PurePosixPath(written.replace("\\", "/")).as_posix()


def _locate(rows: list[_Row], root: Path, name: str) -> list[tuple[Path, str]]:
    """The file of every row, and ``""`` or why it is skipped; duplicates are an error."""
    seen: dict[str, int] = {}
    repeats: list[tuple[int, int, str]] = []
    located: list[tuple[Path, str]] = []
    base = os.path.abspath(root)
    for row in rows:
        written = _sample_id(row.path)
        file = Path(written) if os.path.isabs(written) else root / written
        full = os.path.normpath(os.path.abspath(file))
        key = os.path.normcase(full)
        if key in seen:
            repeats.append((seen[key], row.row, written))
        seen.setdefault(key, row.row)
        reason = ""
        if os.path.isdir(full):
            reason = "is a folder, not an image file"
        elif not os.path.isfile(full):
            outside = not os.path.isabs(written) and not _inside(full, base)
            reason = (
                "is outside the manifest's folder and does not exist"
                if outside
                else "does not exist"
            )
        located.append((file, reason))
    if repeats:
        quoted = "; ".join(
            f"rows {first} and {second}: {written}" for first, second, written in repeats[:3]
        )
        more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
        raise BnnrError(
            f"{name} lists the same image more than once ({quoted}{more}); give each image one "
            "row with all its labels"
        )
    return located


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # another drive (Windows)
        return False


def _split(
    split: str,
    indices: list[int],
    rows: list[_Row],
    files: list[tuple[Path, str]],
    names: tuple[str, ...],
) -> ManifestSplit:
    kept = [k for k in indices if not files[k][1]]
    column = {label: k for k, label in enumerate(names)}
    labels = np.zeros((len(kept), len(names)), dtype=np.int64)
    for n, k in enumerate(kept):
        labels[n, [column[label] for label in rows[k].labels]] = 1
    return ManifestSplit(
        name=split,
        files=tuple(files[k][0] for k in kept),
        labels=labels,
        sample_ids=tuple(_sample_id(rows[k].path) for k in kept),
        rows=tuple(rows[k].row for k in kept),
    )


def _none_found(count: int, where: str) -> str:
    if count == 1:
        return f"the only image {where} cannot be found"
    return f"none of the {count} images {where} can be found"


def _where(split: str, name: str) -> str:
    return f"in {name}" if split == NO_SPLIT else f"of split {split} in {name}"


def _skipped_note(skipped: tuple[SkippedRow, ...], total: int, name: str) -> str:
    quoted = ", ".join(f"row {item.row} {item.path}" for item in skipped[:ROWS_QUOTED])
    more = f" and {len(skipped) - ROWS_QUOTED} more" if len(skipped) > ROWS_QUOTED else ""
    return (
        f"{len(skipped)} of {total} images listed in {name} were not found and are skipped: "
        f"{quoted}{more}"
    )


def _label_notes(split: ManifestSplit, names: tuple[str, ...], name: str) -> list[str]:
    notes = []
    empty = int((split.labels.sum(axis=1) == 0).sum())
    if empty:
        notes.append(
            f"{empty} of {len(split)} images {_where(split.name, name)} have an empty labels "
            "field: no label is present in them (every label is negative)"
        )
    absent = [names[k] for k in np.flatnonzero(split.labels.sum(axis=0) == 0)]
    if absent:
        shown = ", ".join(absent[:10]) + (
            f" and {len(absent) - 10} more" if len(absent) > 10 else ""
        )
        notes.append(
            f"no image {_where(split.name, name)} has label(s) {shown}: their per-label metrics "
            "are undefined"
        )
    return notes
