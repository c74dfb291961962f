"""Schema classes, the converter and the upgrade chain (bnnr_core.schema)."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import types
import typing
import uuid
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bnnr_core.schema
from bnnr_core import jsonio
from bnnr_core.errors import BnnrError
from bnnr_core.schema import (
    SCHEMA_CLASSES,
    Event,
    SchemaError,
    UpgradeError,
    UpgradeRegistry,
    from_dict,
    read_document,
    register_upgrade,
    to_dict,
    upgrade,
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)

_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(max_size=20),
    int: st.integers(),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
    Any: JSON_VALUES,
}


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the annotated type ``tp``, finite and JSON-representable."""
    if tp in _SCALARS:
        return _SCALARS[tp]
    if attrs.has(tp):
        return strategy_for_class(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in args))
    if tp is type(None):
        return st.none()
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is dict and args[0] is str:
        return st.dictionaries(st.text(max_size=8), strategy_for(args[1]), max_size=4)
    raise NotImplementedError(f"tests/test_schema.py has no strategy for {tp!r}; add one")


def strategy_for_class(cls: type) -> st.SearchStrategy[Any]:
    fields = attrs.fields(attrs.resolve_types(cls))
    return st.builds(cls, **{field.name: strategy_for(field.type) for field in fields})


def _schema_modules() -> list[types.ModuleType]:
    package = bnnr_core.schema
    names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [package, *(importlib.import_module(name) for name in names)]


def _reject_constant(token: str) -> Any:
    raise AssertionError(f"non-JSON token {token} in output")


# -- the list of schema classes -------------------------------------------------------------------


def test_schema_classes_lists_every_attrs_class_of_the_schema_package() -> None:
    defined = {
        obj
        for module in _schema_modules()
        for obj in vars(module).values()
        if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == module.__name__
    }
    assert defined == set(SCHEMA_CLASSES)


@pytest.mark.parametrize("cls", SCHEMA_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_schema_classes_are_frozen_slotted_and_keyword_only(cls: type, data: st.DataObject) -> None:
    assert "__slots__" in cls.__dict__
    assert all(field.kw_only for field in attrs.fields(cls))
    instance = data.draw(strategy_for_class(cls))
    first = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, getattr(instance, first))


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", SCHEMA_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_schema_class_round_trips_through_json_text(cls: type, data: st.DataObject) -> None:
    obj = data.draw(strategy_for_class(cls))
    text = jsonio.dumps(to_dict(obj))
    parsed = json.loads(text, parse_constant=_reject_constant)
    assert from_dict(cls, parsed) == obj


@pytest.mark.parametrize("cls", SCHEMA_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_readers_ignore_unknown_keys(cls: type, data: st.DataObject) -> None:
    obj = data.draw(strategy_for_class(cls))
    known = {field.name for field in attrs.fields(cls)}
    extra = data.draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda key: key not in known), JSON_VALUES, min_size=1
        )
    )
    document = {**extra, **to_dict(obj)}
    assert from_dict(cls, document) == obj


# -- the converter's errors -----------------------------------------------------------------------


def _event_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": "2.1",
        "sequence": 3,
        "run_id": "run_20261204_194742",
        "timestamp": "2026-12-04T19:47:42.538000+00:00",
        "type": "epoch_end",
        "payload": {"epoch": 1},
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sequence": "3"}, "@ $.sequence"),
        ({"sequence": 2.7}, "@ $.sequence"),
        ({"sequence": True}, "@ $.sequence"),
        ({"run_id": 7}, "@ $.run_id"),
        ({"payload": [1, 2]}, "@ $.payload"),
    ],
)
def test_wrong_types_are_schema_errors_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SchemaError, match="cannot read Event") as caught:
        from_dict(Event, _event_document(**changes))
    assert message in str(caught.value)


def test_missing_fields_are_all_named() -> None:
    with pytest.raises(SchemaError) as caught:
        from_dict(Event, {"schema_version": "2.1", "type": "x"})
    for field in ("sequence", "run_id", "timestamp", "payload"):
        assert f"required field missing @ $.{field}" in str(caught.value)


def test_non_object_document_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="expected a JSON object, got list"):
        from_dict(Event, [1, 2])


def test_schema_error_is_a_user_facing_value_error() -> None:
    assert issubclass(SchemaError, BnnrError)
    assert issubclass(SchemaError, ValueError)
    assert issubclass(UpgradeError, SchemaError)


def test_float_fields_accept_integers() -> None:
    @attrs.frozen(kw_only=True)
    class Score:
        value: float

    assert from_dict(Score, {"value": 2}) == Score(value=2.0)
    with pytest.raises(SchemaError):
        from_dict(Score, {"value": "2"})


# -- upgrades -------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> UpgradeRegistry:
    chain = UpgradeRegistry()

    @chain.register("report", "1", "2")
    def _rename(document: dict[str, Any]) -> dict[str, Any]:
        document["total_seconds"] = document.pop("total_time")
        document["nested"]["touched"] = True
        return document

    @chain.register("report", "2", "2.1")
    def _add_checkpoints(document: dict[str, Any]) -> dict[str, Any]:
        document.setdefault("checkpoints", [])
        return document

    return chain


def test_upgrade_runs_the_chain_in_order(registry: UpgradeRegistry) -> None:
    old = {"schema_version": "1", "total_time": 12.5, "nested": {"touched": False}}
    before = copy.deepcopy(old)
    upgraded = registry.upgrade("report", old, current="2.1")
    assert upgraded == {
        "schema_version": "2.1",
        "total_seconds": 12.5,
        "nested": {"touched": True},
        "checkpoints": [],
    }
    assert old == before  # the caller's document, nested parts included, is untouched


def test_upgrade_starts_from_the_documents_version(registry: UpgradeRegistry) -> None:
    upgraded = registry.upgrade("report", {"schema_version": "2.0", "a": 1}, current="2.1")
    assert upgraded == {"schema_version": "2.1", "a": 1, "checkpoints": []}


def test_current_document_is_returned_as_is(registry: UpgradeRegistry) -> None:
    document = {"schema_version": "2.1", "a": 1}
    assert registry.upgrade("report", document, current="2.1") is document


def test_newer_document_is_read_leniently_not_upgraded(registry: UpgradeRegistry) -> None:
    document = {"schema_version": "3.4", "brand_new": {"x": 1}}
    assert registry.upgrade("report", document, current="2.1") == document


def test_version_without_an_upgrade_path_is_a_clear_error(registry: UpgradeRegistry) -> None:
    with pytest.raises(UpgradeError) as caught:
        registry.upgrade("report", {"schema_version": "0.9"}, current="2.1")
    message = str(caught.value)
    assert "'0.9'" in message
    assert "'2.1'" in message
    assert "1, 2" in message  # the versions it does know


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "has no schema_version"),
        ({"schema_version": "two"}, "not a version"),
        ({"schema_version": None}, "string or an integer"),
    ],
)
def test_missing_or_malformed_version_is_an_error(
    registry: UpgradeRegistry, document: dict[str, Any], message: str
) -> None:
    with pytest.raises(UpgradeError, match=message):
        registry.upgrade("report", document, current="2.1")


def test_kinds_have_separate_chains(registry: UpgradeRegistry) -> None:
    with pytest.raises(UpgradeError, match="cannot read event"):
        registry.upgrade("event", {"schema_version": "1"}, current="2.1")


def test_integer_and_string_versions_compare_numerically() -> None:
    chain = UpgradeRegistry()
    chain.register("manifest", 1, 2)(lambda document: {**document, "upgraded": True})
    assert chain.upgrade("manifest", {"schema_version": "1.0"}, current=2) == {
        "schema_version": 2,
        "upgraded": True,
    }
    assert chain.upgrade("manifest", {"schema_version": 10}, current=2) == {"schema_version": 10}


def test_steps_must_go_forward_and_be_unique(registry: UpgradeRegistry) -> None:
    with pytest.raises(ValueError, match="must go forward"):
        registry.register("report", "2", "1.9")
    with pytest.raises(ValueError, match="already has an upgrade"):
        registry.register("report", "1.0", "3")


def test_module_level_chain_and_read_document() -> None:
    kind = f"test-{uuid.uuid4().hex}"

    @attrs.frozen(kw_only=True)
    class Manifest:
        schema_version: str
        files: list[str]

    @register_upgrade(kind, "1", "2")
    def _files_became_a_list(document: dict[str, Any]) -> dict[str, Any]:
        document["files"] = document.pop("file").split(",")
        return document

    old = {"schema_version": "1", "file": "a.png,b.png", "unknown": 1}
    assert upgrade(kind, old, current="2")["files"] == ["a.png", "b.png"]
    assert read_document(Manifest, old, kind=kind, current="2") == Manifest(
        schema_version="2", files=["a.png", "b.png"]
    )
    with pytest.raises(SchemaError, match="expected a JSON object"):
        read_document(Manifest, "text", kind=kind, current="2")
