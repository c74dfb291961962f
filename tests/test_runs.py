"""Run directories and run.log (bnnr_core.runs)."""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bnnr_core.runs import RunDirectory, create_run_dir, run_dir_name, run_logging

MOMENT = datetime(2026, 12, 4, 19, 47, 42, 538_000, tzinfo=timezone.utc)
BASE = "run_20261204_194742"
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (?P<level>[A-Z]+) (?P<message>.*)$"
)


def test_run_dir_has_the_contract_layout(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path / "reports", now=MOMENT)
    assert run.path == tmp_path / "reports" / BASE
    assert run.run_id == BASE
    assert run.artifacts.is_dir()
    assert run.run_log.is_file()
    assert run.run_log.read_bytes() == b""
    assert run.events_path == run.path / "events.jsonl"
    assert run.report_path == run.path / "report.json"
    assert run.checkpoints == run.path / "checkpoints"
    assert not run.checkpoints.exists()
    assert sorted(p.name for p in run.path.iterdir()) == ["artifacts", "run.log"]
    assert run.ensure_checkpoints().is_dir()


def test_run_dir_name_is_utc() -> None:
    paris_winter = timezone(timedelta(hours=1))
    assert run_dir_name(MOMENT.astimezone(paris_winter)) == BASE
    assert run_dir_name(MOMENT.replace(tzinfo=None)) == BASE  # naive means UTC
    assert re.fullmatch(r"run_\d{8}_\d{6}", run_dir_name())


def test_existing_run_dir_can_be_opened_by_path(tmp_path: Path) -> None:
    created = create_run_dir(tmp_path, now=MOMENT)
    reopened = RunDirectory(path=str(created.path))
    assert reopened == created
    assert reopened.events_path == created.events_path


def test_runs_in_the_same_second_get_numbered_names(tmp_path: Path) -> None:
    names = [create_run_dir(tmp_path, now=MOMENT).run_id for _ in range(3)]
    assert names == [BASE, f"{BASE}_2", f"{BASE}_3"]


def test_concurrent_runs_in_the_same_second_from_threads_get_distinct_dirs(tmp_path: Path) -> None:
    count = 24
    start = threading.Barrier(count)
    results: list[RunDirectory] = []
    lock = threading.Lock()

    def create() -> None:
        start.wait()
        run = create_run_dir(tmp_path, now=MOMENT)
        with lock:
            results.append(run)

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = {run.run_id for run in results}
    assert names == {BASE} | {f"{BASE}_{n}" for n in range(2, count + 1)}
    assert all(run.artifacts.is_dir() and run.run_log.is_file() for run in results)


def _create_in_child(
    report_dir: str, start: threading.Barrier, queue: multiprocessing.Queue[str]
) -> None:
    start.wait()
    for _ in range(5):
        queue.put(create_run_dir(report_dir, now=MOMENT).run_id)


def test_concurrent_runs_from_processes_get_distinct_dirs(tmp_path: Path) -> None:
    # spawn, not fork: forking a multi-threaded pytest process (xdist) can deadlock.
    context = multiprocessing.get_context("spawn")
    processes_count = 4
    start = context.Barrier(processes_count)
    queue: multiprocessing.Queue[str] = context.Queue()
    processes = [
        context.Process(target=_create_in_child, args=(str(tmp_path), start, queue))
        for _ in range(processes_count)
    ]
    for process in processes:
        process.start()
    names = [queue.get(timeout=30) for _ in range(processes_count * 5)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(set(names)) == len(names) == 20
    assert {path.name for path in tmp_path.iterdir()} == set(names)


def test_run_logging_writes_utc_lines_and_detaches_after(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, now=MOMENT)
    logger = logging.getLogger("bnnr")
    level_before, handlers_before = logger.level, list(logger.handlers)
    with run_logging(run) as handler:
        assert handler in logger.handlers
        logging.getLogger("bnnr.training").info("epoch %d done", 3)  # children propagate
        logger.debug("too detailed for INFO")
        logger.warning("loss is NaN")
    logger.error("after the run")
    lines = run.run_log.read_text(encoding="utf-8").splitlines()
    matches = [LOG_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(m["level"], m["message"]) for m in matches if m] == [
        ("INFO", "epoch 3 done"),
        ("WARNING", "loss is NaN"),
    ]
    assert logger.handlers == handlers_before
    assert logger.level == level_before


def test_run_logging_at_debug_and_after_an_exception(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, now=MOMENT)
    logger = logging.getLogger("bnnr")
    handlers_before = list(logger.handlers)
    with pytest.raises(RuntimeError), run_logging(run, level=logging.DEBUG):
        logger.debug("batch 1")
        raise RuntimeError("training crashed")
    assert logger.handlers == handlers_before
    assert run.run_log.read_text(encoding="utf-8").rstrip().endswith(" DEBUG batch 1")
