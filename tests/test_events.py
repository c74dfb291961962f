"""The event log: writing, resuming, reading and tailing events.jsonl (bnnr_core.events)."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnr_core import events, jsonio
from bnnr_core.events import (
    EVENT_SCHEMA_VERSION,
    Event,
    EventLog,
    EventTail,
    read_events,
    read_events_report,
)
from bnnr_core.schema import to_dict

RUN_ID = "run_20261204_194742"

#: The event types of the artifact contract (docs: artifacts-and-run-output), plus the two
#: terminal types BNNR 0.7 lacked.
CONTRACT_TYPES = [
    "run_started",
    "dataset_profile",
    "probe_set_initialized",
    "pipeline_phase",
    "epoch_end",
    "branch_created",
    "branch_evaluated",
    "branch_selected",
    "sample_snapshot",
    "sample_prediction_snapshot",
    "xai_snapshot",
    "pipeline_complete",
    "run_failed",
    "run_aborted",
]


def _reject_constant(token: str) -> Any:
    raise AssertionError(f"non-JSON token {token} in the log")


def write_events(path: Path, count: int, *, start_payload: int = 0) -> list[Event]:
    with EventLog(path, RUN_ID) as log:
        return [
            log.emit("epoch_end", {"epoch": start_payload + i, "loss": 0.5 / (i + 1)})
            for i in range(count)
        ]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


# -- the contract ---------------------------------------------------------------------------------


def test_event_types_cover_the_contract_and_terminal_types() -> None:
    assert list(events.EVENT_TYPES) == CONTRACT_TYPES
    assert (
        frozenset({"pipeline_complete", "run_failed", "run_aborted"}) == events.TERMINAL_EVENT_TYPES
    )
    assert EVENT_SCHEMA_VERSION == "2.1"


def test_emitted_events_have_the_envelope_of_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, RUN_ID) as log:
        first = log.emit("run_started", {"task": "classification"})
        second = log.emit("pipeline_complete")
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.payload == {}
    for event in (first, second):
        assert event.schema_version == "2.1"
        assert event.run_id == RUN_ID
        moment = datetime.fromisoformat(event.timestamp)
        assert event.timestamp.endswith("+00:00")
        assert moment.utcoffset() == timedelta(0)
    line = json.loads(lines_of(path)[0])
    assert sorted(line) == ["payload", "run_id", "schema_version", "sequence", "timestamp", "type"]


# -- writing --------------------------------------------------------------------------------------


def test_many_events_round_trip_and_each_line_is_the_sorted_dump(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    payloads: list[dict[str, Any]] = [
        {
            "epoch": i,
            "metrics": {"accuracy": i / 7, "loss": 1.0 - i / 300},
            "names": ["ä", "b"],
            "ok": i % 2 == 0,
        }
        for i in range(300)
    ]
    with EventLog(path, RUN_ID) as log:
        written = [
            log.emit(CONTRACT_TYPES[i % len(CONTRACT_TYPES)], payload)
            for i, payload in enumerate(payloads)
        ]
    assert read_events(path) == written
    assert [event.payload for event in written] == payloads
    raw_lines = lines_of(path)
    assert raw_lines[-1] == b""  # every line, the last included, ends with a newline
    for raw, event in zip(raw_lines, written, strict=False):
        assert raw.decode("utf-8") == jsonio.dumps(to_dict(event), indent=None)


def test_non_finite_values_become_null_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, RUN_ID) as log:
        event = log.emit(
            "dataset_profile", {"imbalance_ratio": math.inf, "scores": [1.0, math.nan]}
        )
    line = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    assert line["payload"]["imbalance_ratio"] is None
    assert line["payload"]["scores"] == [1.0, None]
    assert line["payload"]["non_finite_values"] == [
        {"path": "$.imbalance_ratio", "value": "Infinity"},
        {"path": "$.scores[1]", "value": "NaN"},
    ]
    assert event.payload == line["payload"]  # observers and readers see what the file holds


def test_event_holds_a_json_copy_of_the_payload(tmp_path: Path) -> None:
    payload: dict[str, Any] = {"pair": (1, 2), "nested": {"a": [1]}}
    with EventLog(tmp_path / "events.jsonl", RUN_ID) as log:
        event = log.emit("branch_created", payload)
    payload["nested"]["a"].append(2)
    assert event.payload == {"pair": [1, 2], "nested": {"a": [1]}}


def test_long_base64_like_strings_are_written_not_rejected(tmp_path: Path) -> None:
    blob = "iVBORw0KGgo" + "A" * 100_000
    with EventLog(tmp_path / "events.jsonl", RUN_ID) as log:
        log.emit("xai_snapshot", {"image": blob})
    assert read_events(tmp_path / "events.jsonl")[0].payload == {"image": blob}


@pytest.mark.parametrize(
    "payload",
    [{"model": object()}, {"ok": 1, "bad": {1: "int key"}}, ["not", "a", "mapping"], {"s": {1, 2}}],
)
def test_unserialisable_payload_raises_type_error_and_writes_nothing(
    tmp_path: Path, payload: Any
) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[Event] = []
    with EventLog(path, RUN_ID, observer=seen.append) as log:
        log.emit("run_started", {"a": 1})
        before = path.read_bytes()
        with pytest.raises(TypeError):
            log.emit("epoch_end", payload)
        assert path.read_bytes() == before
        assert log.emit("epoch_end", {"a": 2}).sequence == 2  # no sequence number was used up
    assert [event.sequence for event in seen] == [1, 2]


def test_event_type_must_be_a_non_empty_string(tmp_path: Path) -> None:
    with (
        EventLog(tmp_path / "events.jsonl", RUN_ID) as log,
        pytest.raises(ValueError, match="event type"),
    ):
        log.emit("", {})


def test_concurrent_appends_keep_lines_whole_and_sequences_unique(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    per_thread = 2000
    start = threading.Barrier(2)

    with EventLog(path, RUN_ID) as log:

        def append(name: str) -> None:
            start.wait()
            for i in range(per_thread):
                log.emit("epoch_end", {"thread": name, "i": i, "pad": name * (i % 50)})

        threads = [threading.Thread(target=append, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    rows = [json.loads(line) for line in raw.splitlines()]  # every line is one whole object
    assert [row["sequence"] for row in rows] == list(range(1, 2 * per_thread + 1))
    for name in ("a", "b"):
        assert [row["payload"]["i"] for row in rows if row["payload"]["thread"] == name] == list(
            range(per_thread)
        )


def test_fsync_on_terminal_events_and_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    log = EventLog(tmp_path / "events.jsonl", RUN_ID)
    log.emit("epoch_end", {})
    assert synced == []
    log.emit("epoch_end", {}, sync=True)
    assert len(synced) == 1
    for terminal in ("pipeline_complete", "run_failed", "run_aborted"):
        log.emit(terminal, {})
    assert len(synced) == 4
    log.sync()
    assert len(synced) == 5
    log.close()
    assert len(synced) == 6


def test_closed_log_refuses_events_and_closing_twice_is_harmless(tmp_path: Path) -> None:
    with EventLog(tmp_path / "events.jsonl", RUN_ID) as log:
        log.emit("run_started", {})
    assert log.closed
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.emit("epoch_end", {})


# -- observers ------------------------------------------------------------------------------------


def test_observer_sees_each_event_after_its_line_is_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[tuple[Event, list[Event]]] = []
    with EventLog(
        path, RUN_ID, observer=lambda event: seen.append((event, read_events(path)))
    ) as log:
        written = [log.emit("epoch_end", {"i": i}) for i in range(3)]
    assert [event for event, _ in seen] == written
    for event, on_disk in seen:
        assert on_disk[-1] == event


def test_failing_observer_is_logged_and_does_not_break_emit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken_observer(event: Event) -> None:
        calls.append(event.sequence)
        raise RuntimeError("tracker is down")

    path = tmp_path / "events.jsonl"
    with (
        caplog.at_level(logging.ERROR, logger="bnnr"),
        EventLog(path, RUN_ID, observer=broken_observer) as log,
    ):
        log.emit("run_started", {})
        log.emit("pipeline_complete", {})
    assert calls == [1, 2]
    assert [event.sequence for event in read_events(path)] == [1, 2]
    failures = [record for record in caplog.records if record.name == "bnnr"]
    assert len(failures) == 2
    assert "event observer failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert "tracker is down" in str(failures[0].exc_info[1])


# -- resume ---------------------------------------------------------------------------------------


def test_reopening_a_log_continues_its_sequence(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 3)
    with EventLog(path, RUN_ID) as log:
        assert log.last_sequence == 3
        assert log.emit("run_started", {"resumed": True}).sequence == 4
    assert [event.sequence for event in read_events(path)] == [1, 2, 3, 4]


def test_resume_after_a_crash_mid_line_keeps_the_new_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 3)
    complete = path.read_bytes()
    fourth_line = complete.split(b"\n")[2]
    path.write_bytes(complete + fourth_line[:25])  # the crash cut line 4 short
    with EventLog(path, RUN_ID) as log:
        assert log.emit("run_started", {"resumed": True}).sequence == 4
    report = read_events_report(path)
    assert [event.sequence for event in report.events] == [1, 2, 3, 4]
    assert report.events[-1].payload == {"resumed": True}
    assert [skipped.line_number for skipped in report.skipped] == [4]  # the fragment, kept
    assert path.read_bytes().startswith(complete + fourth_line[:25] + b"\n")


def test_resume_after_a_complete_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with EventLog(path, RUN_ID) as log:
        log.emit("epoch_end", {"epoch": 99})
    report = read_events_report(path)
    assert [event.sequence for event in report.events] == [1, 2, 3]
    assert report.skipped == ()


# -- reading --------------------------------------------------------------------------------------


def test_log_cut_at_every_byte_of_its_last_line_reads_all_complete_lines(tmp_path: Path) -> None:
    source = tmp_path / "full.jsonl"
    written = write_events(source, 3)
    data = source.read_bytes()
    last_line_start = data.rstrip(b"\n").rfind(b"\n") + 1
    cut_path = tmp_path / "events.jsonl"
    for cut in range(last_line_start, len(data) + 1):
        cut_path.write_bytes(data[:cut])
        # Only the newline missing: the event is complete, and read_events returns it.
        expected = written if cut >= len(data) - 1 else written[:2]
        report = read_events_report(cut_path)
        assert list(report.events) == expected, cut
        assert report.skipped == ()
        fragment = last_line_start < cut < len(data) - 1
        assert report.incomplete_last_line == (3 if fragment else None), cut

        tail = EventTail(cut_path)
        # The tail reader takes only newline-terminated lines ...
        assert tail.read_new() == (written if cut == len(data) else written[:2]), cut
        # ... and reads the rest of the line whole once the writer has finished it.
        cut_path.write_bytes(data)
        assert tail.read_new() == ([] if cut == len(data) else written[2:]), cut
        assert tail.read_new() == []


def test_corrupt_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    source = tmp_path / "full.jsonl"
    good = write_events(source, 3)
    line_1, line_2, line_3 = source.read_bytes().splitlines()
    missing_field = json.dumps(
        {"schema_version": "2.1", "type": "epoch_end", "payload": {}}
    ).encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                line_1,
                b'{"payload": {"half',
                line_2,
                b"",
                b"[1, 2]",
                missing_field,
                b"\xff\xfe",
                line_3,
            ]
        )
        + b"\n"
    )
    report = read_events_report(path)
    assert list(report.events) == good
    assert [skipped.line_number for skipped in report.skipped] == [2, 5, 6, 7]
    reasons = [skipped.reason for skipped in report.skipped]
    assert reasons[0].startswith("not valid JSON")
    assert "expected a JSON object" in reasons[1]
    assert "required field missing @ $.sequence" in reasons[2]
    assert report.incomplete_last_line is None
    assert read_events(path) == good


def test_readers_accept_unknown_keys_newer_versions_and_legacy_nan(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    newer = {
        "schema_version": "2.9",
        "sequence": 1,
        "run_id": RUN_ID,
        "timestamp": "2026-12-04T19:47:42.538682+00:00",
        "type": "epoch_end",
        "payload": {"epoch": 1},
        "trace_id": "abc",
    }
    legacy = (
        '{"schema_version": "2.1", "sequence": 2, "run_id": "r", "timestamp": "t", '
        '"type": "dataset_profile", "payload": {"imbalance_ratio": Infinity}}'
    )
    path.write_text(json.dumps(newer) + "\n" + legacy + "\n", encoding="utf-8")
    first, second = read_events(path)
    assert first.schema_version == "2.9"
    assert first.payload == {"epoch": 1}
    assert second.payload["imbalance_ratio"] == math.inf


def test_old_event_version_without_upgrade_is_reported_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    old = {
        "schema_version": "1.0",
        "sequence": 1,
        "run_id": "r",
        "timestamp": "t",
        "type": "x",
        "payload": {},
    }
    path.write_text(json.dumps(old) + "\n", encoding="utf-8")
    report = read_events_report(path)
    assert report.events == ()
    assert "schema_version '1.0'" in report.skipped[0].reason


def test_read_events_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "events.jsonl")


# -- tailing --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=12))
def test_tail_fed_arbitrary_chunks_returns_every_event_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[float]
) -> None:
    directory = tmp_path_factory.mktemp("tail")
    written = write_events(directory / "full.jsonl", 6)
    data = (directory / "full.jsonl").read_bytes()
    boundaries = sorted({int(cut * len(data)) for cut in cuts} | {len(data)})
    path = directory / "events.jsonl"
    tail = EventTail(path)
    received: list[Event] = []
    with path.open("wb") as growing:
        position = 0
        for boundary in boundaries:
            growing.write(data[position:boundary])
            growing.flush()
            position = boundary
            received.extend(tail.read_new())
            complete_lines = data[:boundary].count(b"\n")
            assert received == written[:complete_lines]
    assert received == written
    assert tail.offset == len(data)


def test_tail_of_a_missing_file_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []
    written = write_events(path, 2)
    assert tail.read_new() == written


def test_tail_restarts_when_the_file_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 5)
    tail = EventTail(path)
    assert len(tail.read_new()) == 5
    path.unlink()
    replacement = write_events(path, 2, start_payload=100)
    assert tail.read_new() == replacement
    assert tail.resets == 1


def test_tail_restarts_when_the_file_is_replaced_by_a_longer_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 2)
    tail = EventTail(path)
    assert len(tail.read_new()) == 2
    other = tmp_path / "other.jsonl"
    replacement = write_events(other, 6, start_payload=100)
    os.replace(other, path)
    assert tail.read_new() == replacement
    assert tail.resets == 1


def test_tail_does_not_restart_when_the_same_bytes_are_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = write_events(path, 4)
    data = path.read_bytes()
    first_two = len(b"".join(line + b"\n" for line in data.splitlines()[:2]))
    path.write_bytes(data[:first_two])
    tail = EventTail(path)
    assert tail.read_new() == written[:2]
    jsonio.write_bytes_atomic(path, data)  # e.g. a copy of the same log
    assert tail.read_new() == written[2:]
    assert tail.resets == 0


def test_tail_final_read_returns_an_unterminated_complete_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = write_events(path, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    tail = EventTail(path)
    assert tail.read_new() == written[:1]
    assert tail.read_new(final=True) == written[1:]
    assert tail.read_new(final=True) == []


def test_tail_reports_corrupt_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = write_events(path, 2)
    first, second = path.read_bytes().splitlines()
    path.write_bytes(first + b"\nnot json\n" + second + b"\n")
    tail = EventTail(path)
    assert tail.read_new() == written
    assert [skipped.line_number for skipped in tail.skipped] == [2]
