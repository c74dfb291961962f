"""The envelope of one line of ``events.jsonl``.

Every line is ``{"payload": {...}, "run_id": ..., "schema_version": "2.1", "sequence": n,
"timestamp": ..., "type": ...}``, the shape BNNR 0.7 wrote, so existing tools keep reading it.
The payload of each event type gets its own schema with the training engine.
"""

from __future__ import annotations

from typing import Any

import attrs

#: Version of the event envelope. A string, as in BNNR 0.7's ``events.jsonl``.
EVENT_SCHEMA_VERSION = "2.1"

#: Document kind of an event line for :func:`bnnr_core.schema.upgrade`.
EVENT_KIND = "event"


@attrs.frozen(kw_only=True)
class Event:
    """One event of a run, as written to and read from ``events.jsonl``."""

    #: Envelope version; :data:`EVENT_SCHEMA_VERSION` for events this BNNR writes.
    schema_version: str
    #: 1 for the first event of the log, then +1 per event (a resumed run continues it).
    sequence: int
    #: The run directory's name, e.g. ``run_20261204_194742``.
    run_id: str
    #: When the event was written: ISO-8601 in UTC with ``+00:00`` and microseconds.
    timestamp: str
    #: The event type, e.g. ``epoch_end`` (see the constants in :mod:`bnnr_core.events`).
    type: str
    #: Type-specific data; JSON values only (images are files referenced by run-relative path).
    payload: dict[str, Any]
