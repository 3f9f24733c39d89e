"""The warehouse's lifecycle table must hold exactly the log's records.

Compared as (warning_id, type, to_level, at) for every record the warehouse
has been sent (seq ≤ its checkpoint); differences are named.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from app.bootstrap import bootstrap_embedded
from events.instants import format_instant, parse_instant
from privacy.audit import compare_warehouse
from projections.warehouse.sqlbase import SqlWarehouse
from streams.embedded.runtime import EmbeddedRuntime
from tests.privacy.audit.tools import verify


@contextmanager
def warehouse_of(home: Path) -> Iterator[tuple[EmbeddedRuntime, SqlWarehouse]]:
    runtime = bootstrap_embedded(home)
    try:
        warehouse = runtime.warehouse
        assert isinstance(warehouse, SqlWarehouse)
        yield runtime, warehouse
    finally:
        runtime.close()


def record(runtime: EmbeddedRuntime, seq: int) -> dict[str, object]:
    entry = runtime.log.read_lifecycle(seq - 1, 1)[0]
    return {**orjson.loads(entry.body), "seq": entry.position}


def test_a_deleted_warehouse_row_is_named(home: Path) -> None:
    with warehouse_of(home) as (runtime, warehouse):
        gone = record(runtime, 12)
        warehouse._execute(
            f"ALTER TABLE lifecycle DELETE WHERE warning_id = '{gone['warning_id']}' "
            f"AND type = '{gone['type']}' AND ifNull(to_level, '') = "
            f"'{gone.get('to_level') or ''}' SETTINGS mutations_sync = 1"
        )
    result = verify(home)
    assert result.exit_code == 1
    assert f"warehouse: missing {gone['type']}" in result.output
    assert f"of {gone['warning_id']}" in result.output and "(log seq 12)" in result.output
    assert "PROBLEM lifecycle:" not in result.output  # the log itself is intact


def test_a_changed_warehouse_row_is_named_with_both_instants(home: Path) -> None:
    with warehouse_of(home) as (runtime, warehouse):
        changed = record(runtime, 20)
        # A replacing row with a higher version: what FINAL reads from now on.
        warehouse.write_lifecycle([{**changed, "seq": 10**9, "at": "2020-01-01T00:00:00Z"}])
    result = verify(home)
    assert result.exit_code == 1
    assert f"of {changed['warning_id']} differs: at " in result.output
    assert "(seq 20), 2020-01-01T00:00:00Z in the warehouse" in result.output


def test_a_row_only_in_the_warehouse_is_named(home: Path) -> None:
    with warehouse_of(home) as (runtime, warehouse):
        base = record(runtime, 1)
        warehouse.write_lifecycle([{**base, "seq": 10**9, "warning_id": "w-forged00000000"}])
    result = verify(home)
    assert result.exit_code == 1
    assert "of w-forged00000000 at" in result.output
    assert "is not in the log (warehouse seq 1000000000)" in result.output


def test_records_not_yet_projected_are_not_differences() -> None:
    records = {1: {"warning_id": "w-1", "type": "warning.raised", "at": "2026-03-01T00:00:00Z"},
               2: {"warning_id": "w-1", "type": "warning.resolved",
                   "at": "2026-03-02T00:00:00Z"}}
    from events.instants import parse_instant

    rows = [("w-1", "warning.raised", None, parse_instant("2026-03-01T00:00:00Z"), 1)]
    report = compare_warehouse(records, projected_upto=1, rows=rows)
    assert report.ok and report.compared == 1 and report.pending == 1
    assert format_instant(rows[0][3]) == "2026-03-01T00:00:00Z"


def test_rows_flushed_before_their_checkpoint_committed_are_not_differences() -> None:
    """project() flushes, then moves its checkpoint: a crash in between re-sends, harmlessly."""
    from events.instants import parse_instant

    records = {1: {"warning_id": "w-1", "type": "warning.raised", "at": "2026-03-01T00:00:00Z"},
               2: {"warning_id": "w-1", "type": "warning.resolved",
                   "at": "2026-03-02T00:00:00Z"}}
    rows = [("w-1", "warning.raised", None, parse_instant("2026-03-01T00:00:00Z"), 1),
            ("w-1", "warning.resolved", None, parse_instant("2026-03-02T00:00:00Z"), 2)]
    report = compare_warehouse(records, projected_upto=1, rows=rows)
    assert report.ok, report.problems


def test_a_referrals_records_are_compared_with_the_warehouses_referral_records() -> None:
    sent = {"type": "referral.sent", "referral_id": "r-1", "household_id": "h1",
            "agency": "police", "basis": "emergency", "warning_id": None,
            "at": "2026-03-01T00:00:00Z"}
    records = {1: sent, 2: {**sent, "household_id": "h2"}}
    at = parse_instant("2026-03-01T00:00:00Z")
    both = [("r-1", "referral.sent", None, at, 1), ("r-1", "referral.sent", None, at, 2)]
    assert compare_warehouse(records, projected_upto=2, rows=both).ok
    report = compare_warehouse(records, projected_upto=2, rows=both[:1])
    assert report.problems == ["warehouse: missing referral.sent of r-1 at "
                               "2026-03-01T00:00:00Z (log seq 1)"]


def test_of_a_reopened_warnings_repeated_transitions_the_latest_is_expected() -> None:
    ack = {"type": "warning.acknowledged", "warning_id": "w-1", "household_id": "h1",
           "at": "2026-03-01T00:00:00Z"}
    again = {**ack, "at": "2026-03-05T00:00:00Z", "reopened": 1}
    row = ("w-1", "warning.acknowledged", None, parse_instant(again["at"]), 3)
    records = {1: ack, 3: again}
    report = compare_warehouse(records, projected_upto=3, rows=[row])
    assert report.ok and report.compared == 2
    # the second not projected yet: the warehouse may hold either
    assert compare_warehouse(records, projected_upto=1, rows=[row]).ok
    old = ("w-1", "warning.acknowledged", None, parse_instant(ack["at"]), 1)
    assert compare_warehouse(records, projected_upto=1, rows=[old]).ok
    assert not compare_warehouse(records, projected_upto=3, rows=[old]).ok
