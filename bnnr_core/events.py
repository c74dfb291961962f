"""The event log of a training run: ``events.jsonl``, one JSON object per line.

* :class:`EventLog` appends events. Each line is written whole by one ``os.write`` on an
  ``O_APPEND`` descriptor under a lock, so threads never interleave lines; the operating system
  has the line as soon as :meth:`EventLog.emit` returns, and terminal events are ``fsync``-ed.
  Reopening an existing log continues its sequence (resume into the same run directory).
* :func:`read_events` / :func:`read_events_report` read a whole log, tolerating a line cut short
  by a crash and skipping (and reporting) corrupt lines.
* :class:`EventTail` reads a log while it is being written (live dashboard), returning each
  event exactly once, and only when its line is complete.

One process writes a given log; readers may be anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import attrs

from bnnr_core import jsonio
from bnnr_core.clock import utc
from bnnr_core.schema import (
    EVENT_KIND,
    EVENT_SCHEMA_VERSION,
    Event,
    SchemaError,
    read_document,
)

__all__ = [
    "BRANCH_CREATED",
    "BRANCH_EVALUATED",
    "BRANCH_SELECTED",
    "DATASET_PROFILE",
    "EPOCH_END",
    "EVENT_SCHEMA_VERSION",
    "EVENT_TYPES",
    "PIPELINE_COMPLETE",
    "PIPELINE_PHASE",
    "PROBE_SET_INITIALIZED",
    "RUN_ABORTED",
    "RUN_FAILED",
    "RUN_STARTED",
    "SAMPLE_PREDICTION_SNAPSHOT",
    "SAMPLE_SNAPSHOT",
    "TERMINAL_EVENT_TYPES",
    "XAI_SNAPSHOT",
    "Event",
    "EventLog",
    "EventLogReport",
    "EventObserver",
    "EventTail",
    "SkippedLine",
    "read_events",
    "read_events_report",
    "utc_timestamp",
]

logger = logging.getLogger("bnnr")

RUN_STARTED = "run_started"
DATASET_PROFILE = "dataset_profile"
PROBE_SET_INITIALIZED = "probe_set_initialized"
PIPELINE_PHASE = "pipeline_phase"
EPOCH_END = "epoch_end"
BRANCH_CREATED = "branch_created"
BRANCH_EVALUATED = "branch_evaluated"
BRANCH_SELECTED = "branch_selected"
SAMPLE_SNAPSHOT = "sample_snapshot"
SAMPLE_PREDICTION_SNAPSHOT = "sample_prediction_snapshot"
XAI_SNAPSHOT = "xai_snapshot"
#: The run finished and its report is written.
PIPELINE_COMPLETE = "pipeline_complete"
#: The run stopped on an error; the payload says which.
RUN_FAILED = "run_failed"
#: The run was stopped on purpose (Ctrl-C, a signal, a budget).
RUN_ABORTED = "run_aborted"

#: Every event type of the contract, in the order a run first emits them.
EVENT_TYPES: tuple[str, ...] = (
    RUN_STARTED,
    DATASET_PROFILE,
    PROBE_SET_INITIALIZED,
    PIPELINE_PHASE,
    EPOCH_END,
    BRANCH_CREATED,
    BRANCH_EVALUATED,
    BRANCH_SELECTED,
    SAMPLE_SNAPSHOT,
    SAMPLE_PREDICTION_SNAPSHOT,
    XAI_SNAPSHOT,
    PIPELINE_COMPLETE,
    RUN_FAILED,
    RUN_ABORTED,
)

#: Types that end a run: a reader seeing one knows the run is no longer running.
TERMINAL_EVENT_TYPES: frozenset[str] = frozenset({PIPELINE_COMPLETE, RUN_FAILED, RUN_ABORTED})

#: Called with each event after its line is written (the plugin manager's ``bnnr_on_event``).
EventObserver = Callable[[Event], object]


def utc_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO-8601 UTC with microseconds and ``+00:00``.

    A naive ``moment`` is taken to be UTC already.
    """
    return utc(moment).isoformat(timespec="microseconds")


# -------------------------------------------------------------------------------------------
# Writing
# -------------------------------------------------------------------------------------------


class EventLog:
    """Appends events to ``path``; use as a context manager or call :meth:`close`.

    :param path: the log file, usually :attr:`bnnr_core.runs.RunDirectory.events_path`.
        Created if missing; if it exists, the sequence continues after its last event.
    :param run_id: written into every event (the run directory's name).
    :param observer: called with each :class:`Event` after its line is written, while the log's
        lock is held, so observers see events in sequence order. An exception from it is logged
        to the ``bnnr`` logger and otherwise ignored: observing never stops a run.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        run_id: str,
        *,
        observer: EventObserver | None = None,
    ) -> None:
        self._path = Path(path)
        self._run_id = run_id
        self._observer = observer
        # Re-entrant: an observer may itself emit (e.g. a tracker reporting its own failure).
        self._lock = threading.RLock()
        try:
            existing = self._path.read_bytes()
        except FileNotFoundError:
            existing = b""
        self._sequence = max((e.sequence for e in _parse_log(existing).events), default=0)
        # A crash can leave a line without its newline; end it so the next line stays whole.
        self._needs_newline = bool(existing) and not existing.endswith(b"\n")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(self._path, flags, 0o666)

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    @property
    def run_id(self) -> str:
        """The run id written into every event."""
        return self._run_id

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last event written (0 for an empty log)."""
        return self._sequence

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd is None

    def emit(
        self, type: str, payload: Mapping[str, Any] | None = None, *, sync: bool = False
    ) -> Event:
        """Append one event and return it as written.

        The payload is stored as JSON: tuples become lists, numpy values Python numbers, and
        NaN/Infinity ``null`` with a note under ``payload["non_finite_values"]``. Large strings
        are accepted, but images belong in files under ``artifacts/``, referenced by path.

        :param type: the event type, one of :data:`EVENT_TYPES` for core events.
        :param payload: JSON-like data (default: ``{}``); the event holds a copy.
        :param sync: ``fsync`` the log after writing (always done for terminal events).
        :raises TypeError: if the payload holds something JSON cannot represent; nothing is
            written and no sequence number is used.
        :raises ValueError: if the log is closed.
        """
        if not isinstance(type, str) or not type:
            raise ValueError(f"event type must be a non-empty string, got {type!r}")
        if payload is None:
            payload = {}
        if not isinstance(payload, Mapping):
            raise TypeError(f"event payload must be a mapping, got {payload.__class__.__name__}")
        # Serialised before taking the lock, so a bad payload fails before anything is written.
        payload_text = jsonio.dumps(payload, indent=None)
        written_payload = json.loads(payload_text)
        with self._lock:
            fd = self._require_open()
            event = Event(
                schema_version=EVENT_SCHEMA_VERSION,
                sequence=self._sequence + 1,
                run_id=self._run_id,
                timestamp=utc_timestamp(),
                type=type,
                payload=written_payload,
            )
            self._write(fd, _encode_line(event, payload_text))
            self._sequence = event.sequence
            if sync or type in TERMINAL_EVENT_TYPES:
                os.fsync(fd)
            self._notify(event)
        return event

    def sync(self) -> None:
        """``fsync`` the log, e.g. at a phase boundary."""
        with self._lock:
            os.fsync(self._require_open())

    def close(self) -> None:
        """``fsync`` and close the log. Closing twice is harmless."""
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"event log {self._path} is closed")
        return self._fd

    def _write(self, fd: int, line: bytes) -> None:
        data = b"\n" + line if self._needs_newline else line
        view = memoryview(data)
        written = 0
        try:
            # One write normally takes the whole line; the loop covers short writes.
            while written < len(data):
                written += os.write(fd, view[written:])
        except BaseException:
            if written:
                self._needs_newline = True
            raise
        self._needs_newline = False

    def _notify(self, event: Event) -> None:
        if self._observer is None:
            return
        try:
            self._observer(event)
        except Exception:
            logger.exception(
                "event observer failed on event %d (%s); the run goes on",
                event.sequence,
                event.type,
            )


def _encode_line(event: Event, payload_text: str) -> bytes:
    envelope = jsonio.dumps(
        {
            "run_id": event.run_id,
            "schema_version": event.schema_version,
            "sequence": event.sequence,
            "timestamp": event.timestamp,
            "type": event.type,
        },
        indent=None,
    )
    # "payload" sorts before every envelope key, so splicing the payload text in front gives
    # the bytes of jsonio.dumps(to_dict(event)) without serialising the payload a second time.
    return ('{"payload":' + payload_text + "," + envelope[1:] + "\n").encode("utf-8")


# -------------------------------------------------------------------------------------------
# Reading
# -------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SkippedLine:
    """A complete line of the log that is not a readable event."""

    #: 1-based line number in the file.
    line_number: int
    #: Why it was skipped, e.g. ``"not valid JSON: ..."``.
    reason: str


@attrs.frozen(kw_only=True)
class EventLogReport:
    """What :func:`read_events_report` found in a log."""

    #: The readable events, in file order.
    events: tuple[Event, ...]
    #: Newline-terminated lines that were not events (corruption), in file order.
    skipped: tuple[SkippedLine, ...]
    #: Line number of an unterminated last line that is not a complete event (a line being
    #: written, or cut short by a crash), or ``None``. Not an error: it is simply not read.
    incomplete_last_line: int | None


def read_events_report(path: str | os.PathLike[str]) -> EventLogReport:
    """Read every event of a log, and say which lines could not be read.

    Blank lines are ignored. A last line without its newline is returned if it holds a complete
    event (the writer always ends lines with a newline, but other tools may not).

    :raises FileNotFoundError: if ``path`` does not exist.
    """
    return _parse_log(Path(path).read_bytes())


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """The readable events of a log, in file order (see :func:`read_events_report`)."""
    return list(read_events_report(path).events)


def _parse_log(data: bytes) -> EventLogReport:
    end = data.rfind(b"\n") + 1
    events, skipped = _parse_lines(data[:end], first_line_number=1)
    incomplete: int | None = None
    tail = data[end:]
    if tail.strip():
        tail_line_number = data.count(b"\n", 0, end) + 1
        parsed = _parse_line(tail)
        if isinstance(parsed, Event):
            events.append(parsed)
        else:
            incomplete = tail_line_number
    return EventLogReport(
        events=tuple(events), skipped=tuple(skipped), incomplete_last_line=incomplete
    )


def _parse_lines(data: bytes, *, first_line_number: int) -> tuple[list[Event], list[SkippedLine]]:
    """Parse newline-terminated lines."""
    events: list[Event] = []
    skipped: list[SkippedLine] = []
    for index, line in enumerate(data.split(b"\n")[:-1]):
        if not line.strip():
            continue
        parsed = _parse_line(line)
        if isinstance(parsed, Event):
            events.append(parsed)
        else:
            skipped.append(SkippedLine(line_number=first_line_number + index, reason=parsed))
    return events, skipped


def _parse_line(line: bytes) -> Event | str:
    """The event on ``line``, or why there is none."""
    try:
        # BNNR 0.7 wrote bare NaN/Infinity tokens; json.loads accepts them, so old logs read.
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return f"not valid JSON: {exc}"
    try:
        return read_document(Event, data, kind=EVENT_KIND, current=EVENT_SCHEMA_VERSION)
    except SchemaError as exc:
        return str(exc)


class EventTail:
    """Reads the events appended to a log since the last call, for live views of a run.

    Only complete, newline-terminated lines are consumed: a line still being written is read
    whole by a later call, so every event is returned exactly once. A missing file reads as
    empty. If the file shrinks or the bytes already read change (the log was replaced), reading
    restarts from its beginning and :attr:`resets` goes up by one, so the caller can drop what
    it built from the old file.
    """

    #: How many trailing bytes already read are re-checked to notice a replaced file. They end
    #: with the last line's timestamp and sequence, which differ between any two runs.
    _FINGERPRINT_BYTES = 256

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._offset = 0
        self._lines_read = 0
        self._fingerprint = b""
        #: Complete lines that were not readable events, since the last reset.
        self.skipped: list[SkippedLine] = []
        #: How many times the file was found replaced or truncated and read again from 0.
        self.resets = 0

    @property
    def path(self) -> Path:
        """The log being read."""
        return self._path

    @property
    def offset(self) -> int:
        """Byte offset just past the last line consumed."""
        return self._offset

    def read_new(self, *, final: bool = False) -> list[Event]:
        """Events whose lines were completed since the previous call.

        :param final: the writer has finished, so also return an unterminated last line if it
            holds a complete event.
        """
        try:
            handle = self._path.open("rb")
        except FileNotFoundError:
            return []
        with handle:
            if not self._still_same_file(handle):
                self._reset()
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        events, skipped = _parse_lines(data[:end], first_line_number=self._lines_read + 1)
        self._lines_read += data.count(b"\n", 0, end)
        consumed = end
        tail = data[end:]
        if final and tail.strip():
            parsed = _parse_line(tail)
            if isinstance(parsed, Event):
                events.append(parsed)
                consumed += len(tail)
                self._lines_read += 1
        self.skipped.extend(skipped)
        self._advance(data[:consumed])
        return events

    def _still_same_file(self, handle: BinaryIO) -> bool:
        if self._offset == 0:
            return True
        size = os.fstat(handle.fileno()).st_size
        if size < self._offset:
            return False
        handle.seek(self._offset - len(self._fingerprint))
        return handle.read(len(self._fingerprint)) == self._fingerprint

    def _advance(self, consumed: bytes) -> None:
        self._offset += len(consumed)
        if len(consumed) >= self._FINGERPRINT_BYTES:
            self._fingerprint = consumed[-self._FINGERPRINT_BYTES :]
        else:
            self._fingerprint = (self._fingerprint + consumed)[-self._FINGERPRINT_BYTES :]

    def _reset(self) -> None:
        self._offset = 0
        self._lines_read = 0
        self._fingerprint = b""
        self.skipped = []
        self.resets += 1
