"""Versioned, attrs-based schemas of the artifacts BNNR writes, and how to read them back.

* :func:`to_dict` / :func:`from_dict`: the project's single cattrs converter (:data:`converter`);
  reading ignores unknown keys and reports type errors as :class:`SchemaError`.
* :func:`register_upgrade` / :func:`upgrade`: the explicit chain of dict -> dict steps that brings
  an old document to the current version before it is structured.
* :data:`SCHEMA_CLASSES`: every schema class, so tests can check each one round-trips.

Writers are strict: serialise ``to_dict(obj)`` with :func:`bnnr_core.jsonio.dumps` or
:func:`bnnr_core.jsonio.write_json` (sorted keys, no NaN/Infinity, atomic files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from bnnr_core.schema.converter import SchemaError, converter, from_dict, to_dict
from bnnr_core.schema.event import EVENT_KIND, EVENT_SCHEMA_VERSION, Event
from bnnr_core.schema.upgrade import (
    UpgradeError,
    UpgradeFn,
    UpgradeRegistry,
    Version,
    parse_version,
    register_upgrade,
    upgrade,
)

T = TypeVar("T")

#: Every attrs schema class of bnnr_core. Add each new one here: the property tests iterate it.
SCHEMA_CLASSES: tuple[type, ...] = (Event,)


def read_document(cls: type[T], data: Any, *, kind: str, current: Version) -> T:
    """Upgrade ``data`` (a parsed JSON document of ``kind``) to ``current``, then structure it.

    :raises SchemaError: if ``data`` is not an object, cannot be upgraded, or does not match
        ``cls`` (:class:`UpgradeError` is a :class:`SchemaError`).
    """
    if not isinstance(data, Mapping):
        raise SchemaError(f"cannot read {kind}: expected a JSON object, got {type(data).__name__}")
    return from_dict(cls, upgrade(kind, data, current=current))


__all__ = [
    "EVENT_KIND",
    "EVENT_SCHEMA_VERSION",
    "SCHEMA_CLASSES",
    "Event",
    "SchemaError",
    "UpgradeError",
    "UpgradeFn",
    "UpgradeRegistry",
    "Version",
    "converter",
    "from_dict",
    "parse_version",
    "read_document",
    "register_upgrade",
    "to_dict",
    "upgrade",
]
