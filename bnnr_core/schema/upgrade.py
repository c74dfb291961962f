"""Explicit upgrades of old documents, one registered dict -> dict step per schema change.

Every artifact kind (``"event"``, ``"report"``, ``"analysis_report"``, ...) carries a
``schema_version``. When a schema changes, its version is bumped and one function is registered
that turns a document of the previous version into the new one::

    @register_upgrade("report", "1", "2")
    def _rename_total_time(document: dict[str, Any]) -> dict[str, Any]:
        document["total_seconds"] = document.pop("total_time", None)
        return document

Readers call :func:`upgrade` on the parsed dict before structuring it. Nothing is ever upgraded
implicitly: a version with no registered step is an error, not a guess.

Versions are strings or integers of dot-separated integers (``"2.1"``, ``"0.2.1"``, ``3``) and are
compared numerically, ignoring trailing zeros (``"2"`` == ``"2.0"``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from bnnr_core.schema.converter import SchemaError

#: A schema version as documents hold it.
Version = str | int
#: One upgrade step: receives a private copy of the document, returns the upgraded document.
UpgradeFn = Callable[[dict[str, Any]], dict[str, Any]]

VERSION_KEY = "schema_version"


class UpgradeError(SchemaError):
    """A document's version cannot be brought to the version this BNNR reads."""


def parse_version(version: object) -> tuple[int, ...]:
    """``"2.1"`` -> ``(2, 1)``; trailing zeros are dropped so ``"2.0"`` and ``2`` compare equal.

    :raises UpgradeError: when ``version`` is not an integer or dot-separated integers.
    """
    if isinstance(version, bool) or not isinstance(version, (str, int)):
        raise UpgradeError(f"schema_version must be a string or an integer, got {version!r}")
    text = str(version).strip()
    parts = text.split(".")
    if not text or not all(part.isdecimal() for part in parts):
        raise UpgradeError(f"schema_version {version!r} is not a version like '2.1'")
    numbers = [int(part) for part in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


class UpgradeRegistry:
    """Upgrade steps per document kind. BNNR uses the module-level one (:func:`register_upgrade`);
    tests may build their own."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, tuple[int, ...]], tuple[Version, UpgradeFn]] = {}

    def register(
        self, kind: str, from_version: Version, to_version: Version
    ) -> Callable[[UpgradeFn], UpgradeFn]:
        """Decorator registering ``fn`` as the step ``from_version`` -> ``to_version`` of ``kind``.

        :raises ValueError: if the step does not go forward or ``from_version`` already has one
            (a version has exactly one way forward, so the chain is unambiguous).
        """
        source, target = parse_version(from_version), parse_version(to_version)
        if target <= source:
            raise ValueError(
                f"upgrade of {kind!r} must go forward, not {from_version!r} -> {to_version!r}"
            )
        if (kind, source) in self._steps:
            raise ValueError(f"{kind!r} already has an upgrade from version {from_version!r}")

        def decorator(fn: UpgradeFn) -> UpgradeFn:
            self._steps[(kind, source)] = (to_version, fn)
            return fn

        return decorator

    def upgrade(
        self, kind: str, document: Mapping[str, Any], *, current: Version
    ) -> Mapping[str, Any]:
        """Bring ``document`` from its ``schema_version`` to ``current`` (see :func:`upgrade`)."""
        if VERSION_KEY not in document:
            raise UpgradeError(f"{kind} document has no {VERSION_KEY}")
        version = parse_version(document[VERSION_KEY])
        target = parse_version(current)
        if version >= target:
            # A newer document is returned as is: readers ignore the keys they do not know,
            # which is how an older BNNR reads a newer artifact.
            return document
        # Steps may mutate their argument; the caller's document must stay untouched.
        working: dict[str, Any] = copy.deepcopy(dict(document))
        while version < target:
            step = self._steps.get((kind, version))
            if step is None:
                raise UpgradeError(self._no_path_message(kind, document[VERSION_KEY], current))
            to_version, fn = step
            working = fn(working)
            working[VERSION_KEY] = to_version
            version = parse_version(to_version)
        return working

    def _no_path_message(self, kind: str, found: object, current: Version) -> str:
        known = sorted(source for (step_kind, source) in self._steps if step_kind == kind)
        readable = ", ".join(".".join(map(str, v)) for v in known) or "none"
        return (
            f"cannot read {kind} schema_version {found!r}: this BNNR reads version {current!r} "
            f"and knows upgrades only from versions: {readable}. "
            f"Read it with the BNNR release that wrote it."
        )


_registry = UpgradeRegistry()


def register_upgrade(
    kind: str, from_version: Version, to_version: Version
) -> Callable[[UpgradeFn], UpgradeFn]:
    """Register the upgrade step of ``kind`` from ``from_version`` to ``to_version``.

    The decorated function receives a copy of the document (safe to mutate) and returns the
    upgraded document; its ``schema_version`` is set to ``to_version`` afterwards.
    """
    return _registry.register(kind, from_version, to_version)


def upgrade(kind: str, document: Mapping[str, Any], *, current: Version) -> Mapping[str, Any]:
    """Run the registered steps of ``kind`` from ``document["schema_version"]`` up to ``current``.

    * same version: ``document`` itself is returned;
    * older: the steps run in order on a deep copy (``document`` is never modified);
    * newer than ``current``: returned unchanged, to be read leniently.

    :raises UpgradeError: when the version is missing or malformed, or no chain of steps leads
        from it to ``current``.
    """
    return _registry.upgrade(kind, document, current=current)
