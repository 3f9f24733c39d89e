"""The embedded runtime: log, processor, projection — no loss, no duplicates, same results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, decode
from events.instants import parse_instant
from projections.ledgers import guardianship_ledger, household_ledger, warning_ledger
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.clock import EventTimeClock
from streams.embedded.processor import EmbeddedProcessor
from streams.embedded.runtime import BARE_BATCH_SIZE, BATCH_SIZE, EmbeddedRuntime
from tests.corpus.bad_inputs import CORPUS
from tests.helpers import T0
from tests.rules.after_alert import after_alert_story
from tests.rules.households import v2_story

AS_OF = parse_instant("2026-11-25T00:00:00+08:00")


def replay_records(path: Path, as_of: int | None) -> list[dict[str, Any]]:
    runner = Replay(Engine(load_pack()))
    records = runner.feed_all(path.read_bytes().splitlines())
    return records + runner.finish(as_of)


def log_records(runtime: EmbeddedRuntime) -> list[dict[str, Any]]:
    return [orjson.loads(e.body) for e in runtime.log.read_lifecycle(0, 10**9)]


def all_ledgers(runtime: EmbeddedRuntime, as_of: int | None = None) -> dict[str, Any]:
    wh = runtime.warehouse
    return {
        "warnings": warning_ledger(wh, as_of=as_of),
        "households": household_ledger(wh, as_of=as_of),
        "guardianship": guardianship_ledger(wh, as_of=as_of),
    }


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    rt = bootstrap_embedded(tmp_path / "home", batch_size=500, flush_rows=500)
    yield rt
    rt.close()


def test_publish_counts_reconcile_and_rejects_are_kept_with_reason(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    counts = runtime.publish(lines, source="test")
    assert counts.received == len(lines)
    assert counts.received == counts.accepted + counts.duplicates + counts.rejected
    assert counts.rejected > 0 and counts.duplicates > 0
    kept = runtime.log.db.execute("SELECT COUNT(*), MIN(LENGTH(reason)) FROM dead_letters")
    total, shortest_reason = kept.fetchone()
    assert total == counts.rejected
    assert shortest_reason > 5


def test_republishing_the_same_file_accepts_nothing_new(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    first = runtime.publish(lines, source="test")
    second = runtime.publish(lines, source="test")
    assert second.accepted == 0
    assert second.duplicates == first.accepted + first.duplicates
    assert runtime.log.end_position() == first.accepted


def test_blank_lines_are_not_input(runtime: EmbeddedRuntime) -> None:
    counts = runtime.publish([b"", b"   "], source="test")
    assert counts.received == 0


def test_processor_output_equals_the_replay_of_the_same_file(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
    report = runtime.process(EventTimeClock(AS_OF))
    assert report.counts.reconciles
    assert log_records(runtime) == replay_records(sample_stream, AS_OF)


def v2_stream_file(directory: Path) -> Path:
    """Households of catalog v2 (registrations, transfers moving open warnings, screening
    deadlines firing and resolved by visits) with v2 shape errors among them."""
    bad = [e.raw for e in CORPUS if e.kind_id.startswith(("registered-", "transferred-"))]
    lines = [line.encode() for line in v2_story(T0)]
    path = directory / "v2.jsonl"
    path.write_bytes(b"\n".join([*lines[:5], *bad, *lines[5:]]) + b"\n")
    return path


def test_processor_output_equals_the_replay_of_a_v2_stream(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    stream = v2_stream_file(tmp_path)
    counts = runtime.publish(stream.read_bytes().splitlines(), source="test")
    assert counts.rejected == 24
    report = runtime.process(EventTimeClock(AS_OF))
    assert report.counts.reconciles
    records = log_records(runtime)
    assert records == replay_records(stream, AS_OF)
    kinds = {(r["type"], r.get("rule_id")) for r in records}
    assert {("warning.transferred", None), ("warning.raised", "screening-overdue"),
            ("warning.resolved", None), ("warning.raised", "vulnerable-person-harm")} <= kinds


#: The corpus kinds of the work after an alert (commands on warnings, referrals, consent).
AFTER_ALERT_KINDS = ("assessed-", "reopened-", "referral-", "consent-")
#: Every type of catalog v2.
V2_TYPES = {"household.registered", "household.transferred", "warning.assessed",
            "warning.reopened", "referral.sent", "referral.accepted", "referral.declined",
            "referral.closed", "consent.recorded", "consent.withdrawn"}


def after_alert_stream_file(directory: Path) -> Path:
    """Every v2 type: the households of ``v2_story`` and the work after an alert (its
    assessments, reopenings, referrals and consents, notices among them), with the v2
    shape errors of the corpus between them."""
    bad = [e.raw for e in CORPUS
           if e.kind_id.startswith(AFTER_ALERT_KINDS) and e.expected is not None]
    lines = [line.encode() for line in [*v2_story(T0), *after_alert_story(T0)]]
    assert {orjson.loads(x)["type"] for x in lines} >= V2_TYPES
    path = directory / "after-alert.jsonl"
    path.write_bytes(b"\n".join([*lines[:30], *bad, *lines[30:]]) + b"\n")
    return path


def test_processor_output_equals_the_replay_of_a_stream_with_every_v2_type(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    stream = after_alert_stream_file(tmp_path)
    counts = runtime.publish(stream.read_bytes().splitlines(), source="test")
    assert counts.rejected == 45
    report = runtime.process(EventTimeClock(AS_OF))
    assert report.counts.reconciles and report.counts.notices >= 10
    records = log_records(runtime)
    assert records == replay_records(stream, AS_OF)
    kinds = {r["type"] for r in records}
    assert {"warning.assessed", "warning.reopened", "referral.sent", "referral.accepted",
            "referral.declined", "referral.closed"} <= kinds
    assert {("warning.raised", "referral-unanswered"), ("warning.raised", "referral-declined")
            } <= {(r["type"], r.get("rule_id")) for r in records}


def test_a_crash_mid_batch_resumes_exactly_where_the_last_commit_left_off(
    runtime: EmbeddedRuntime, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
    original = runtime.log.append_lifecycle
    calls = {"n": 0}

    def crash_on_fourth_batch(records: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash inside the batch transaction")
        return original(records)

    monkeypatch.setattr(runtime.log, "append_lifecycle", crash_on_fourth_batch)
    with pytest.raises(RuntimeError):
        EmbeddedProcessor(runtime.log, runtime.engine, batch_size=500).run(EventTimeClock(AS_OF))
    committed = runtime.log.checkpoint("processor")
    assert 0 < committed < runtime.log.end_position()
    monkeypatch.setattr(runtime.log, "append_lifecycle", original)
    EmbeddedProcessor(runtime.log, runtime.engine, batch_size=500).run(EventTimeClock(AS_OF))
    assert log_records(runtime) == replay_records(sample_stream, AS_OF)


def test_the_log_settles_duplicates_so_stored_states_keep_no_event_ids(
    tmp_path: Path, sample_stream: Path
) -> None:
    """A repeated id is counted (or dead-lettered) when published and never reaches the
    processor, whose engine then keeps no seen ids; the records are still Replay's,
    which checks every id itself."""
    rt = bootstrap_embedded(tmp_path / "home")
    try:
        published = rt.publish(sample_stream.read_bytes().splitlines(), "test")
        assert published.duplicates > 0
        report = rt.process(EventTimeClock(AS_OF), project=False)
        assert report.counts.duplicates == 0 and report.counts.processed == published.accepted
        states = [orjson.loads(blob) for (blob,) in
                  rt.log.db.execute("SELECT state FROM household_state")]
        assert states and all(state["s"] == {} and "z" not in state for state in states)
        assert log_records(rt) == replay_records(sample_stream, AS_OF)
    finally:
        rt.close()


def test_by_default_processing_without_a_warehouse_commits_larger_batches(
    tmp_path: Path, sample_stream: Path
) -> None:
    """No warehouse insert is held in memory then; a batch size given is every batch's."""
    lines = sample_stream.read_bytes().splitlines()
    assert BATCH_SIZE < len(lines) < BARE_BATCH_SIZE
    default = bootstrap_embedded(tmp_path / "default")
    pinned = bootstrap_embedded(tmp_path / "pinned", batch_size=2_000)
    try:
        for rt in (default, pinned):
            rt.publish(lines, "test")
        assert default.process(EventTimeClock(AS_OF), project=False).batches == 1
        assert pinned.process(EventTimeClock(AS_OF), project=False).batches == 3
        assert log_records(default) == log_records(pinned)
    finally:
        default.close()
        pinned.close()


def test_processing_in_several_runs_as_the_log_grows_equals_one_pass(
    tmp_path: Path, sample_stream: Path
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    growing = bootstrap_embedded(tmp_path / "growing", batch_size=300)
    for start in range(0, len(lines), 1_000):
        growing.publish(lines[start : start + 1_000], source="test")
        # deadlines fire only at the end of input, as in a single pass
        if start + 1_000 >= len(lines):
            growing.process(EventTimeClock(AS_OF), project=False)
    one_pass = bootstrap_embedded(tmp_path / "one", batch_size=5_000)
    one_pass.publish(lines, source="test")
    one_pass.process(EventTimeClock(AS_OF), project=False)
    try:
        assert log_records(growing) == log_records(one_pass)
    finally:
        growing.close()
        one_pass.close()


def test_a_failed_warehouse_flush_aborts_the_batch_and_a_rerun_completes_it(
    runtime: EmbeddedRuntime, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
    warehouse = runtime.warehouse
    original = warehouse.write_events
    calls = {"n": 0}

    def fail_second_flush(rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("warehouse unavailable")
        original(rows)

    monkeypatch.setattr(warehouse, "write_events", fail_second_flush)
    with pytest.raises(ConnectionError):
        runtime.process(EventTimeClock(AS_OF))
    first_batch_end = runtime.log.read_events(0, 500)[-1].position
    # the failed batch committed nothing: not its state, records, nor any checkpoint
    assert runtime.log.checkpoint("processor") == first_batch_end
    assert runtime.log.checkpoint("warehouse.events") == first_batch_end
    monkeypatch.setattr(warehouse, "write_events", original)
    runtime.process(EventTimeClock(AS_OF))
    assert runtime.pending_projection() == (0, 0)
    assert log_records(runtime) == replay_records(sample_stream, AS_OF)
    incremental = all_ledgers(runtime, AS_OF)
    runtime.rebuild()
    assert all_ledgers(runtime, AS_OF) == incremental
    count = warehouse.query("SELECT count() FROM events FINAL").rows[0][0]
    assert count == runtime.log.end_position()


def test_a_rebuild_inserts_events_in_rounds_read_a_few_rows_at_a_time(
    runtime: EmbeddedRuntime, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round's insert may be large; the stored rows it holds come ``project_rows`` at a
    time. A round whose insert fails moves no checkpoint; a later rebuild completes."""
    runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
    runtime.process(EventTimeClock(AS_OF), project=False)
    runtime.project_rows = 300
    runtime.project_event_rows = 900
    warehouse, log = runtime.warehouse, runtime.log
    insert_sizes: list[int] = []
    read_limits: list[int] = []
    fail = {"second": True}
    write_events, read_events = warehouse.write_events, log.read_events

    def counted_write(rows: Any) -> None:
        listed = list(rows)
        if len(insert_sizes) == 1 and fail["second"]:
            raise ConnectionError("warehouse unavailable")
        insert_sizes.append(len(listed))
        write_events(listed)

    def counted_read(after: int, limit: int) -> Any:
        read_limits.append(limit)
        return read_events(after, limit)

    monkeypatch.setattr(warehouse, "write_events", counted_write)
    monkeypatch.setattr(log, "read_events", counted_read)
    with pytest.raises(ConnectionError):
        runtime.rebuild()
    first_round_end = read_events(0, runtime.project_event_rows)[-1].position
    assert runtime.log.checkpoint("warehouse.events") == first_round_end
    assert max(read_limits) == runtime.project_rows

    fail["second"] = False
    insert_sizes.clear()
    runtime.rebuild()
    events = runtime.log.end_position()
    assert events > 2 * runtime.project_event_rows
    assert insert_sizes[:-1] == [runtime.project_event_rows] * (len(insert_sizes) - 1)
    assert sum(insert_sizes) == events
    assert warehouse.query("SELECT count() FROM events FINAL").rows[0][0] == events
    monkeypatch.undo()
    rebuilt = all_ledgers(runtime, AS_OF)
    runtime.project_event_rows = runtime.project_rows
    runtime.rebuild()
    assert all_ledgers(runtime, AS_OF) == rebuilt


def test_ledgers_built_incrementally_equal_a_rebuild_from_the_log(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    for start in range(0, len(lines), 2_000):
        runtime.publish(lines[start : start + 2_000], source="test")
        runtime.process(EventTimeClock(AS_OF) if start + 2_000 >= len(lines)
                        else EventTimeClock(parse_instant("2000-01-01T00:00:00Z")))
        runtime.project()
    incremental = all_ledgers(runtime)
    assert incremental["warnings"] and incremental["households"]
    assert incremental["guardianship"]
    runtime.rebuild()
    assert all_ledgers(runtime) == incremental


def _active_parts(runtime: EmbeddedRuntime) -> dict[str, int]:
    from projections import schema
    from projections.warehouse.sqlbase import SqlWarehouse

    assert isinstance(runtime.warehouse, SqlWarehouse)
    parts = runtime.warehouse.active_parts()
    return {table: parts.get(table, 0) for table in schema.COMPACTED_AFTER_BULK}


def test_a_bulk_write_ends_with_the_kpi_tables_in_one_part(
    runtime: EmbeddedRuntime, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many inserts leave the KPI pre-aggregates in parts that every city-KPI read would
    merge again (FINAL); a run that wrote ``compact_after_rows`` or more merges them,
    a smaller one leaves that to the background merges (a compaction costs seconds)."""
    compactions: list[str] = []
    compact = runtime.warehouse.compact

    def counted_compact() -> None:  # the real compaction, counted
        compactions.append("compact")
        compact()

    monkeypatch.setattr(runtime.warehouse, "compact", counted_compact)
    lines = sample_stream.read_bytes().splitlines()
    runtime.publish(lines[:1_000], source="test")
    runtime.compact_after_rows = 10**9
    runtime.process(EventTimeClock(AS_OF))
    assert compactions == []
    runtime.compact_after_rows = 1_000
    runtime.publish(lines[1_000:], source="test")
    runtime.process(EventTimeClock(AS_OF))
    assert compactions == ["compact"]
    runtime.rebuild()
    assert compactions == ["compact", "compact"]
    assert _active_parts(runtime) == {table: 1 for table in _active_parts(runtime)}


def test_a_ledger_as_of_a_past_instant_ignores_what_happened_later(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
    runtime.process(EventTimeClock(AS_OF))
    runtime.project()
    midpoint = parse_instant("2026-10-01T00:00:00+08:00")
    past = warning_ledger(runtime.warehouse, as_of=midpoint)
    assert past
    assert all(row["raised_at"] <= "2026-09-30T16:00:00Z" for row in past)
    now = {row["warning_id"]: row for row in warning_ledger(runtime.warehouse)}
    assert len(now) > len(past)


def test_no_personal_text_reaches_the_warehouse(
    runtime: EmbeddedRuntime, sample_stream: Path
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    runtime.publish(lines, source="test")
    runtime.process(EventTimeClock(AS_OF))
    runtime.project()
    notes = set()
    for line in lines:
        decoded = decode(line)
        if isinstance(decoded, Decoded):
            data = decoded.raw.get("data", {})
            for field in ("notes", "note", "reason"):
                if isinstance(data.get(field), str) and len(data[field]) > 6:
                    notes.add(data[field])
    assert notes
    dump = orjson.dumps(
        runtime.warehouse.query("SELECT * FROM events").rows, default=str
    ).decode()
    leaked = [text for text in notes if text in dump]
    assert not leaked


def test_free_text_after_an_alert_is_sealed_in_the_log_and_kept_out_of_the_warehouse(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    """Assessment notes, reopening and decline reasons, referral notes: personal text."""
    stream = after_alert_stream_file(tmp_path)
    runtime.publish(stream.read_bytes().splitlines(), source="test")
    runtime.process(EventTimeClock(AS_OF))
    runtime.project()
    texts = {"she fears him", "call before visiting", "outside our remit", "no capacity",
             "it happened again"}
    assert texts <= set(stream.read_text().replace('"', "\n").splitlines())
    stored = b"".join(body for (body,) in runtime.log.db.execute("SELECT body FROM events"))
    dump = orjson.dumps(runtime.warehouse.query("SELECT * FROM events").rows, default=str)
    assert [t for t in texts if t.encode() in stored or t.encode() in dump] == []
