"""Strict JSON writing and atomic files (bnnr_core.jsonio)."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnr_core import jsonio

FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
NON_FINITE_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf])
KEYS = st.text(max_size=8).filter(lambda key: key != jsonio.NON_FINITE_KEY)


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nested JSON-like values (dicts with string keys, lists) over ``leaves``."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4)
        ),
        max_leaves=20,
    )


FINITE_LEAVES = st.none() | st.booleans() | st.integers() | FINITE_FLOATS | st.text(max_size=10)


def _reject_constant(token: str) -> Any:
    raise AssertionError(f"non-JSON token {token} in output")


def strict_loads(text: str) -> Any:
    """json.loads that fails on NaN/Infinity tokens, which are not JSON."""
    return json.loads(text, parse_constant=_reject_constant)


def _count_non_finite(value: Any) -> Counter[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return Counter(["NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")])
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    total: Counter[str] = Counter()
    for child in children:
        total += _count_non_finite(child)
    return total


def _nulled(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (what the file must hold)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulled(item) for item in value]
    return value


@settings(max_examples=150, deadline=None)
@given(value=json_values(FINITE_LEAVES), indent=st.sampled_from([None, 2]))
def test_dumps_round_trips_every_finite_json_value(value: Any, indent: int | None) -> None:
    assert strict_loads(jsonio.dumps(value, indent=indent)) == value


@settings(max_examples=50, deadline=None)
@given(value=st.dictionaries(KEYS, FINITE_LEAVES, max_size=8))
def test_dumps_is_independent_of_key_order(value: dict[str, Any]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert jsonio.dumps(reversed_order) == jsonio.dumps(value)


@settings(max_examples=150, deadline=None)
@given(value=st.dictionaries(KEYS, json_values(FINITE_LEAVES | NON_FINITE_FLOATS), max_size=5))
def test_dumps_writes_null_and_one_note_per_non_finite_value(value: dict[str, Any]) -> None:
    parsed = strict_loads(jsonio.dumps(value, indent=None))
    expected_counts = _count_non_finite(value)
    notes = parsed.pop(jsonio.NON_FINITE_KEY, [])
    assert Counter(note["value"] for note in notes) == expected_counts
    assert all(note["path"].startswith("$") for note in notes)
    assert parsed == _nulled(value)


def test_non_finite_note_names_the_path() -> None:
    parsed = strict_loads(jsonio.dumps({"metrics": {"ece": math.nan}, "xs": [1.0, -math.inf]}))
    assert parsed["metrics"] == {"ece": None}
    assert parsed["xs"] == [1.0, None]
    assert parsed[jsonio.NON_FINITE_KEY] == [
        {"path": "$.metrics.ece", "value": "NaN"},
        {"path": "$.xs[1]", "value": "-Infinity"},
    ]


def test_sanitize_converts_numpy_and_tuples() -> None:
    clean, notes = jsonio.sanitize(
        {"a": np.array([1.5, np.nan]), "b": (np.int64(3), np.bool_(True))}
    )
    assert clean == {"a": [1.5, None], "b": [3, True]}
    assert type(clean["b"][0]) is int
    assert notes == [{"path": "$.a[1]", "value": "NaN"}]


@pytest.mark.parametrize(
    ("value", "where"),
    [({"a": {1: 2}}, "$.a"), ({"a": [object()]}, "$.a[0]"), ({"a": {1, 2}}, "$.a")],
)
def test_sanitize_rejects_what_json_cannot_hold(value: Any, where: str) -> None:
    with pytest.raises(TypeError, match=re.escape(where)):
        jsonio.sanitize(value)


def test_non_ascii_text_stays_readable() -> None:
    assert '"żółw"' in jsonio.dumps({"name": "żółw"})


def test_lone_surrogates_from_undecodable_file_names_are_escaped(tmp_path: Path) -> None:
    # os.listdir returns such strings for file names that are not valid UTF-8.
    name = os.fsdecode(b"image_\xff.png")
    target = jsonio.write_json(tmp_path / "report.json", {"path": name, "label": "żółw"})
    raw = target.read_bytes()
    raw.decode("utf-8")  # the file is valid UTF-8
    assert jsonio.read_json(target) == {"path": name, "label": "żółw"}


def test_write_json_writes_sorted_text_with_final_newline(tmp_path: Path) -> None:
    target = jsonio.write_json(tmp_path / "sub" / "a.json", {"b": 1, "a": [1, 2]})
    assert target.read_text(encoding="utf-8") == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert sorted(os.listdir(target.parent)) == ["a.json"]


def test_failed_serialisation_keeps_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    jsonio.write_json(target, {"version": 1})
    with pytest.raises(TypeError):
        jsonio.write_json(target, {"version": 2, "model": object()})
    assert jsonio.read_json(target) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_rename_keeps_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    jsonio.write_json(target, {"version": 1})

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk went away"):
        jsonio.write_json(target, {"version": 2})
    assert jsonio.read_json(target) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        target = jsonio.write_bytes_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o644


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(jsonio.JsonReadError, match="does not exist"):
        jsonio.read_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": 1,\n', encoding="utf-8")
    with pytest.raises(jsonio.JsonReadError, match=r"broken\.json is not valid JSON \(line 2"):
        jsonio.read_json(broken)


def test_read_json_accepts_bare_nan_written_by_old_releases(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.json"
    legacy.write_text('{"ratio": Infinity, "ece": NaN}', encoding="utf-8")
    data = jsonio.read_json(legacy)
    assert data["ratio"] == math.inf
    assert math.isnan(data["ece"])
