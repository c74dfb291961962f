"""The one cattrs converter BNNR uses to turn schema objects into JSON-ready dicts and back.

Writers unstructure with :func:`to_dict` and serialise with :func:`bnnr_core.jsonio.dumps`.
Readers structure with :func:`from_dict`, which is lenient about *shape* (unknown keys are ignored,
so a document written by a newer BNNR still reads) and strict about *types* (a string where a
number belongs is an error, not a silent ``int("3")``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter

from bnnr_core.errors import BnnrError

T = TypeVar("T")


class SchemaError(BnnrError, ValueError):
    """A document does not match its schema; the message lists each problem with its JSON path."""


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: object, _: type) -> int:
    # cattrs' default is int(value), which would turn 2.7 into 2 and "3" into 3.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _structure_float(value: object, _: type) -> float:
    # JSON writers other than Python's may write 2.0 as 2, so integers are accepted.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    result = make_converter()
    result.register_structure_hook(str, _structure_str)
    result.register_structure_hook(int, _structure_int)
    result.register_structure_hook(float, _structure_float)
    result.register_structure_hook(bool, _structure_bool)
    return result


#: The project's JSON converter. Register hooks for new schema types here, not on a copy.
converter: cattrs.Converter = _make_converter()


def to_dict(obj: Any) -> Any:
    """Unstructure a schema object into JSON-ready dicts, lists and scalars."""
    return converter.unstructure(obj)


def from_dict(cls: type[T], data: Any) -> T:
    """Structure ``data`` (parsed JSON) into ``cls``, ignoring keys ``cls`` does not know.

    :raises SchemaError: when ``data`` is not an object or a field is missing or of the wrong
        type; the message names every problem, e.g. ``"expected an integer @ $.sequence"``.
    """
    name = getattr(cls, "__name__", str(cls))
    if not isinstance(data, Mapping):
        raise SchemaError(f"cannot read {name}: expected a JSON object, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="$"))
        raise SchemaError(f"cannot read {name}: {problems}") from exc
