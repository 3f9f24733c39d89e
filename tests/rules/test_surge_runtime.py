"""Surge rules in the runtimes: ``jiahe replay``, the embedded processor, its log.

The embedded processor evaluates day closes as its clock reaches them and
commits the surge state with each batch, so a restarted processor goes on
where the last one stopped; with the event-time clock it writes exactly what
``jiahe replay`` writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from app.bootstrap import bootstrap_embedded
from app.verify import verify_home
from cli.main import main
from events.instants import now_micros, parse_instant
from projections import reference
from projections.ledgers import household_ledger, warning_ledger
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.clock import EventTimeClock, WallClock
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import EmbeddedRuntime
from tests.rules.test_surge import (
    CLOSE,
    DAOLI_DISTRICT,
    DAY,
    NANGANG,
    RULE,
    SURGE_PACK_PATH,
    history,
    in_window,
    petitions,
)

AS_OF = CLOSE + 20 * DAY


def scenario() -> list[str]:
    """A Daoli surge at CLOSE that resolves a week later; Nangang surges 10 days on."""
    later = CLOSE + 10 * DAY
    return (
        history(4) + in_window(12)
        + history(5, org=NANGANG, per_week=3)
        + petitions(14, later - 20 * 3_600_000_000, later - 3_600_000_000, NANGANG)
    )


def replayed(lines: list[str], as_of: int) -> list[dict]:
    replay = Replay(Engine(load_pack(SURGE_PACK_PATH)))
    return replay.feed_all(lines) + replay.finish(as_of)


def logged(runtime: EmbeddedRuntime) -> list[dict]:
    return [orjson.loads(e.body) for e in runtime.log.read_lifecycle(0, 10**6)]


@pytest.fixture
def runtime(tmp_path: Path):
    rt = bootstrap_embedded(tmp_path / "home", pack=SURGE_PACK_PATH, batch_size=7)
    yield rt
    rt.close()


def test_the_embedded_processor_writes_what_jiahe_replay_writes(runtime):
    lines = scenario()
    runtime.publish(lines, "test")
    runtime.process(EventTimeClock(AS_OF), project=False)
    records = logged(runtime)
    assert records == replayed(lines, AS_OF)
    surges = [r for r in records if r["household_id"] is None]
    assert [(r["type"], r.get("org_unit")) for r in surges] == [
        ("warning.raised", DAOLI_DISTRICT),
        ("warning.resolved", None),
        ("warning.raised", "230103000000"),
        ("warning.resolved", None),
    ]


def test_a_restarted_processor_goes_on_from_the_committed_surge_state(runtime, tmp_path):
    lines = scenario()
    early = [x for x in lines if orjson.loads(x)["occurred_at"] <= "2026-05-01"]
    late = [x for x in lines if x not in early]
    assert early and late
    runtime.publish(early, "test")
    runtime.process(EventTimeClock(CLOSE + DAY), project=False)
    runtime.close()
    again = bootstrap_embedded(tmp_path / "home", pack=SURGE_PACK_PATH, batch_size=7)
    try:
        again.publish(late, "test")
        again.process(EventTimeClock(AS_OF), project=False)
        surges = [r for r in logged(again) if r["household_id"] is None]
    finally:
        again.close()
    assert surges == [r for r in replayed(lines, AS_OF) if r["household_id"] is None]
    assert len(surges) == 4  # nothing evaluated twice, nothing skipped


def test_with_the_wall_clock_a_backlog_is_judged_as_it_arrives_not_on_its_first_batch(runtime):
    """Read in time order, 7 events a batch: each batch closes only the days its data reached."""
    lines = sorted(scenario(), key=lambda x: parse_instant(orjson.loads(x)["occurred_at"]))
    runtime.publish(lines, "test")
    runtime.process(WallClock(), project=False)
    surges = [r for r in logged(runtime) if r["household_id"] is None]
    expected = [r for r in replayed(lines, now_micros()) if r["household_id"] is None]
    assert surges == expected and len(surges) == 4


def test_the_default_pack_keeps_no_surge_state(tmp_path):
    rt = bootstrap_embedded(tmp_path / "home")
    try:
        rt.publish(scenario(), "test")
        rt.process(EventTimeClock(AS_OF), project=False)
        stored = rt.log.db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE '%surge%'")
        assert stored.fetchone()[0] == 0
        assert all(r["household_id"] is not None for r in logged(rt))
    finally:
        rt.close()


def test_jiahe_replay_with_the_example_pack_writes_the_surge_records(tmp_path):
    source = tmp_path / "events.jsonl"
    lines = scenario()
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "warnings.jsonl"
    result = CliRunner().invoke(main, [
        "--home", str(tmp_path / "home"), "replay", str(source), "--warnings-out", str(out),
        "--pack", str(SURGE_PACK_PATH), "--as-of", "2026-05-21T00:00:00+08:00",
    ])
    assert result.exit_code == 0, result.output
    written = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert written == replayed(lines, AS_OF)
    assert sum(1 for r in written if r["household_id"] is None) == 4


def test_a_log_made_before_district_records_is_migrated_once_and_keeps_its_rows(tmp_path):
    path = tmp_path / "log.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE lifecycle (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "household_id TEXT NOT NULL, warning_id TEXT NOT NULL, type TEXT NOT NULL, "
        "body BLOB NOT NULL, prev_hash TEXT, hash TEXT);"
        "INSERT INTO lifecycle VALUES (1, 'h1', 'w-1', 'warning.raised', x'7b7d', NULL, 'abc');"
    )
    db.commit()
    db.close()
    log = SqliteLog(path)
    try:
        columns = {row[1]: row[3] for row in log.db.execute("PRAGMA table_info(lifecycle)")}
        assert columns["household_id"] == 0  # nullable now
        rows = log.db.execute("SELECT * FROM lifecycle").fetchall()
        assert rows == [(1, "h1", "w-1", "warning.raised", b"{}", None, "abc")]
    finally:
        log.close()
    SqliteLog(path).close()  # a second open finds nothing to do


def test_the_warehouse_takes_surge_warnings_without_a_fake_household(runtime, tmp_path):
    """The SQL ledgers equal the reference ledgers; no household row, key or directory entry."""
    runtime.publish(scenario(), "test")
    runtime.process(EventTimeClock(AS_OF))
    events = [
        {**orjson.loads(e.body), "offset": e.position} for e in runtime.log.read_events(0, 10**6)
    ]
    lifecycle = [
        {**orjson.loads(e.body), "seq": e.position} for e in runtime.log.read_lifecycle(0, 10**6)
    ]
    households = household_ledger(runtime.warehouse, as_of=AS_OF)
    assert households == reference.household_ledger(events, lifecycle, as_of=AS_OF)
    assert all(h["household_id"] for h in households)
    directory = runtime.warehouse.query("SELECT household_id FROM household_directory").rows
    assert ("",) not in directory and (None,) not in directory

    warnings = warning_ledger(runtime.warehouse, as_of=AS_OF)
    assert warnings == reference.warning_ledger(events, lifecycle, as_of=AS_OF)
    assert all(w["household_id"] is None for w in warnings if w["rule_id"] == RULE)
    surges = [w for w in warnings if w["rule_id"] == RULE]
    facts = [(w["org_unit"], w["handling_level"], w["status"], w["escalations"]) for w in surges]
    assert facts == [
        (DAOLI_DISTRICT, "district", "resolved", 0), ("230103000000", "district", "resolved", 0),
    ]
    runtime.close()
    report = verify_home(tmp_path / "home")
    assert report.warehouse is not None and report.warehouse.compared == len(lifecycle)
    assert not report.warehouse.problems and not report.lifecycle.problems
