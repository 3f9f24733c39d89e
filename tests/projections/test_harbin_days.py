"""Daily aggregates count Harbin days (UTC+8), the days users read, in every runtime.

An event at 2026-03-01T17:30Z happened at 01:30 on 2 March in Harbin: it counts on
2026-03-02, in the warehouse, in its reference, and through the embedded runtime. A
warehouse made when days were UTC days gets the new definition on its next start.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from app.bootstrap import bootstrap_embedded
from events.instants import local_date, parse_instant
from projections import analytics, reference
from projections.warehouse.chdb_backend import ChdbWarehouse
from streams.clock import EventTimeClock
from tests.helpers import ORG, petition, visit

SECRET = b"harbin-days-test-secret"
LATE_EVENING_UTC = "2026-03-01T17:30:00Z"  # 01:30 on 2 March in Harbin
AFTERNOON_UTC = "2026-03-01T15:59:59Z"  # 23:59:59 on 1 March in Harbin
LINES = [
    visit("h-days-1", LATE_EVENING_UTC, ["injury_observed"]),  # raises a red warning then
    petition("h-days-2", AFTERNOON_UTC),
]


def _events() -> list[dict[str, object]]:
    rows = [orjson.loads(line) for line in LINES]
    for offset, row in enumerate(rows, start=1):
        row["offset"] = offset
    return rows


def _days(rows: list[dict[str, object]]) -> dict[tuple[object, object], object]:
    return {(r["day"], r["type"]): r.get("events", r.get("records")) for r in rows}


def test_an_instant_is_placed_on_its_harbin_day() -> None:
    assert local_date(parse_instant(LATE_EVENING_UTC)).isoformat() == "2026-03-02"
    assert local_date(parse_instant(AFTERNOON_UTC)).isoformat() == "2026-03-01"
    assert local_date(parse_instant("2026-03-01T16:00:00Z")).isoformat() == "2026-03-02"


def test_the_warehouse_and_its_reference_count_harbin_days(tmp_path: Path) -> None:
    events = _events()
    raised = {"type": "warning.raised", "warning_id": "w-1", "rule_id": "violence-injury",
              "household_id": "h-days-1", "level": "red", "org_unit": ORG,
              "handling_level": "community", "handling_org_unit": ORG,
              "at": LATE_EVENING_UTC, "seq": 1}
    wh = ChdbWarehouse(tmp_path / "wh", SECRET)
    try:
        wh.ensure_schema()
        wh.write_events(events)
        wh.write_lifecycle([raised])
        got = analytics.daily_counts(wh)
    finally:
        wh.close()
    ref_events, ref_lifecycle = reference.daily_counts(events, [raised])
    assert got.events == ref_events
    assert got.lifecycle == ref_lifecycle
    assert _days(got.events) == {("2026-03-02", "screening.visit_recorded"): 1,
                                 ("2026-03-01", "petition.received"): 1}
    assert _days(got.lifecycle) == {("2026-03-02", "warning.raised"): 1}


def test_a_warehouse_made_with_utc_days_is_given_harbin_days(tmp_path: Path) -> None:
    wh = ChdbWarehouse(tmp_path / "wh", SECRET)
    try:
        wh.ensure_schema()
        wh.write_events(_events())
        # the definition a warehouse of an earlier version holds
        wh._execute("DROP VIEW daily_event_counts")
        wh._execute("CREATE VIEW daily_event_counts AS SELECT toDate(occurred_at) AS day, "
                    "district, type, count() AS events FROM events FINAL "
                    "GROUP BY day, district, type")
        stale = wh.query("SELECT day, type FROM daily_event_counts ORDER BY type").rows
        assert [(str(d), t) for d, t in stale][0] == ("2026-03-01", "petition.received")
        assert [(str(d), t) for d, t in stale][1] == ("2026-03-01", "screening.visit_recorded")
        wh.ensure_schema()  # the next start
        rows = wh.query("SELECT day, type, events FROM daily_event_counts ORDER BY type").rows
    finally:
        wh.close()
    assert [(str(d), t, n) for d, t, n in rows] == [
        ("2026-03-01", "petition.received", 1),
        ("2026-03-02", "screening.visit_recorded", 1),
    ]


def test_the_embedded_runtime_counts_harbin_days(tmp_path: Path) -> None:
    runtime = bootstrap_embedded(tmp_path / "home")
    try:
        runtime.publish(LINES, "test")
        runtime.process(EventTimeClock())
        counts = analytics.daily_counts(runtime.warehouse)
    finally:
        runtime.close()
    assert _days(counts.events) == {("2026-03-02", "screening.visit_recorded"): 1,
                                    ("2026-03-01", "petition.received"): 1}
    assert _days(counts.lifecycle) == {("2026-03-02", "warning.raised"): 1}
