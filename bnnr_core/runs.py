"""Run directories: ``report_dir/run_YYYYMMDD_HHMMSS/`` and the ``run.log`` inside.

The name's time is **UTC**, like every timestamp BNNR writes (events, ``run.log``): local time
repeats an hour when daylight saving ends, so names would no longer sort in start order, and a
team spread over time zones would read different clocks. Two runs started in the same second
get ``run_..._2``, ``run_..._3``, ...: each name is claimed by an atomic ``mkdir``, so this holds
across threads and processes.

Layout (see the artifact contract)::

    run_20261204_194742/
        events.jsonl     (RunDirectory.events_path, written by bnnr_core.events.EventLog)
        report.json      (RunDirectory.report_path)
        run.log          (RunDirectory.run_log, written through run_logging)
        artifacts/       (RunDirectory.artifacts)
        checkpoints/     (RunDirectory.checkpoints, created when the first checkpoint is saved)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import attrs

from bnnr_core.clock import utc
from bnnr_core.errors import BnnrError

#: Every run directory's name starts with this, followed by :data:`RUN_DIR_TIME_FORMAT`.
RUN_DIR_PREFIX = "run_"
#: ``strftime`` format of the UTC start time in a run directory's name.
RUN_DIR_TIME_FORMAT = "%Y%m%d_%H%M%S"
#: Format of a ``run.log`` line: ``2026-12-04T19:47:42.538+00:00 INFO message``.
RUN_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

# Far beyond any real use; it only keeps a broken file system from looping forever.
_MAX_RUNS_PER_SECOND = 10_000


@attrs.frozen(kw_only=True)
class RunDirectory:
    """The files of one run. Build one with :func:`create_run_dir`, or ``RunDirectory(path=...)``
    for an existing run (resume, report, dashboard export)."""

    #: The run directory itself.
    path: Path = attrs.field(converter=Path)

    @property
    def run_id(self) -> str:
        """The directory's name, e.g. ``run_20261204_194742``; written into every event."""
        return self.path.name

    @property
    def artifacts(self) -> Path:
        """``artifacts/``: images and other files that events and reports refer to."""
        return self.path / "artifacts"

    @property
    def run_log(self) -> Path:
        """``run.log``: the human-readable log of the run."""
        return self.path / "run.log"

    @property
    def events_path(self) -> Path:
        """``events.jsonl``: the event log."""
        return self.path / "events.jsonl"

    @property
    def report_path(self) -> Path:
        """``report.json``: the run report, written when the run ends."""
        return self.path / "report.json"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: model checkpoints; not created until :meth:`ensure_checkpoints`."""
        return self.path / "checkpoints"

    def ensure_checkpoints(self) -> Path:
        """Create ``checkpoints/`` if needed and return it."""
        self.checkpoints.mkdir(exist_ok=True)
        return self.checkpoints


def run_dir_name(now: datetime | None = None) -> str:
    """``run_YYYYMMDD_HHMMSS`` for ``now`` (default: the current time) in UTC.

    A naive ``now`` is taken to be UTC already.
    """
    return RUN_DIR_PREFIX + utc(now).strftime(RUN_DIR_TIME_FORMAT)


def create_run_dir(
    report_dir: str | os.PathLike[str], *, now: datetime | None = None
) -> RunDirectory:
    """Create a new run directory under ``report_dir`` (created if missing).

    The directory holds ``artifacts/`` and an empty ``run.log`` when this returns.

    :param now: the run's start time (default: now); see :func:`run_dir_name`.
    :raises BnnrError: if every name for that second is taken.
    """
    root = Path(report_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = run_dir_name(now)
    for attempt in range(1, _MAX_RUNS_PER_SECOND + 1):
        candidate = root / (base if attempt == 1 else f"{base}_{attempt}")
        try:
            # mkdir either creates the directory or fails: the name is claimed atomically.
            candidate.mkdir()
        except FileExistsError:
            continue
        run = RunDirectory(path=candidate)
        run.artifacts.mkdir()
        run.run_log.touch()
        return run
    raise BnnrError(
        f"{root} already holds {_MAX_RUNS_PER_SECOND} runs named {base}*; "
        "choose another report directory"
    )


class _UtcIsoFormatter(logging.Formatter):
    """Times as ISO-8601 UTC with milliseconds, matching the events' clock."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        return moment.isoformat(timespec="milliseconds")


@contextmanager
def run_logging(run_dir: RunDirectory, level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Copy the ``bnnr`` logger's records at ``level`` and above into ``run_dir.run_log``.

    The handler is attached for the ``with`` block only. If the logger's effective level would
    drop such records, it is lowered for the block and restored afterwards. Every run active in
    the process receives every ``bnnr`` record: the logger is process-wide.

    :yields: the file handler (e.g. to flush it).
    """
    bnnr_logger = logging.getLogger("bnnr")
    handler = logging.FileHandler(run_dir.run_log, mode="a", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(_UtcIsoFormatter(RUN_LOG_FORMAT))
    previous_level = bnnr_logger.level
    if bnnr_logger.getEffectiveLevel() > level:
        bnnr_logger.setLevel(level)
    bnnr_logger.addHandler(handler)
    try:
        yield handler
    finally:
        bnnr_logger.removeHandler(handler)
        handler.close()
        bnnr_logger.setLevel(previous_level)
