"""Strict JSON writing, lenient reading, and atomic file writes.

Every JSON artifact BNNR writes goes through :func:`dumps` or :func:`write_json`:

* keys are sorted, so the same document gives the same bytes;
* NaN and +/-Infinity are never written (they are not JSON): each becomes ``null`` and its place
  and original value are recorded under :data:`NON_FINITE_KEY` of the top-level object;
* files are written to a temporary sibling, flushed to disk and renamed over the target, so a
  reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Top-level key listing the values that were not finite and were written as ``null``.
NON_FINITE_KEY = "non_finite_values"


class NonFiniteNote(dict[str, str]):
    """``{"path": "$.metrics.ece", "value": "NaN"}``: a non-finite value replaced by ``null``."""


def _non_finite_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def sanitize(value: Any, path: str = "$") -> tuple[Any, list[NonFiniteNote]]:
    """Return a JSON-ready copy of ``value`` and the notes for each non-finite float replaced.

    Accepts dicts with string keys, lists, tuples, strings, bools, ints, floats, ``None`` and
    numpy scalars/arrays (converted with ``.tolist()``/``.item()``, without importing numpy).
    Anything else is a programming error and raises :class:`TypeError`.
    """
    notes: list[NonFiniteNote] = []
    return _sanitize(value, path, notes), notes


def _sanitize(value: Any, path: str, notes: list[NonFiniteNote]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        notes.append(NonFiniteNote(path=path, value=_non_finite_name(value)))
        return None
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings; got {key!r} at {path}")
            result[key] = _sanitize(item, _child_path(path, key), notes)
        return result
    if isinstance(value, (list, tuple)):
        return [_sanitize(item, _child_path(path, i), notes) for i, item in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _sanitize(value.tolist(), path, notes)
    raise TypeError(f"cannot write {type(value).__name__} as JSON at {path}")


def dumps(value: Any, *, indent: int | None = 2, record_non_finite: bool = True) -> str:
    """Serialise ``value`` with sorted keys and no NaN/Infinity.

    When ``value`` is an object and contains non-finite numbers, the notes are stored under
    :data:`NON_FINITE_KEY` (unless ``record_non_finite`` is false). Non-ASCII text is written
    as is, except that a lone surrogate (a file name that is not UTF-8) turns on ``\\uXXXX``
    escapes, so the result always encodes as UTF-8.
    """
    clean, notes = sanitize(value)
    if notes and record_non_finite and isinstance(clean, dict):
        existing = clean.get(NON_FINITE_KEY)
        merged = list(existing) if isinstance(existing, list) else []
        merged.extend(dict(note) for note in notes)
        clean[NON_FINITE_KEY] = merged
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(
        clean,
        sort_keys=True,
        allow_nan=False,
        ensure_ascii=False,
        indent=indent,
        separators=separators,
    )
    if _has_lone_surrogate(text):
        # File names that are not valid UTF-8 reach Python as lone surrogates
        # (surrogateescape); written raw they make the text unencodable, so escape them.
        text = json.dumps(
            clean, sort_keys=True, allow_nan=False, indent=indent, separators=separators
        )
    return text


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _create_temp_sibling(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)
    return target


def _create_temp_sibling(target: Path) -> tuple[int, str]:
    # Not tempfile.mkstemp: it creates mode 0600 files, and the rename would then leave every
    # artifact unreadable to other users. os.open with 0o666 lets the umask decide, as open() does.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp_name = str(target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp_name, flags, 0o666), tmp_name
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse directory fsync
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2) -> Path:
    """Write ``value`` as JSON (see :func:`dumps`) to ``path`` atomically."""
    return write_text_atomic(path, dumps(value, indent=indent) + "\n")


class JsonReadError(ValueError):
    """A JSON file could not be read; the message says which file and why."""


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, raising :class:`JsonReadError` with a readable message on failure.

    Bare ``NaN``/``Infinity`` tokens (written by older BNNR releases) are accepted.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise JsonReadError(f"{source} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonReadError(f"{source} could not be read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonReadError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
