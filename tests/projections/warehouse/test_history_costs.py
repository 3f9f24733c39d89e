"""Writes whose cost follows what they write, not the warehouse's history.

* A write of records of warnings raised in earlier batches looks their raise
  attributes up by key (``warning_raises``): the rows it reads are bounded by the ids
  it asks for, however many warnings the warehouse holds.
* ``compact`` after a bulk write merges what the write added rather than rewriting
  the whole table, and background merges join the rest once the table is quiet; the
  ledgers read the same before, after and meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.warehouse import synthetic_lifecycle
from projections import schema
from projections.warehouse.chdb_backend import ChdbWarehouse
from projections.warehouse.rows import RaiseInfo
from projections.warehouse.sqlbase import known_raises_sql
from tests.projections.datagen import Dataset, make_dataset
from tests.projections.warehouse_contract import CONTRACT_SECRET, LEDGERS, expected, load

#: ``warning_raises``' granule (schema.WARNING_RAISES_AGGREGATE).
GRANULE = 256


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[ChdbWarehouse]:
    warehouse = ChdbWarehouse(tmp_path / "wh", CONTRACT_SECRET)
    warehouse.ensure_schema()
    try:
        yield warehouse
    finally:
        warehouse.close()


def rows_read(wh: ChdbWarehouse, sql: str) -> int:
    """Rows the engine plans to read for ``sql`` after its primary key analysis."""
    return sum(int(row[3]) for row in wh.query(f"EXPLAIN ESTIMATE {sql}").rows)


def test_a_raise_lookup_reads_rows_for_the_ids_asked_not_the_history(
    wh: ChdbWarehouse,
) -> None:
    history = synthetic_lifecycle(40_000)  # raised and acknowledged, 80k records
    for i in range(0, len(history), 20_000):
        wh.write_lifecycle(history[i : i + 20_000])
    wh.compact((schema.WARNING_RAISES,))
    parts = wh.active_parts()[schema.WARNING_RAISES]
    old = {r["warning_id"]: r for r in history[::8000]}  # raises, spread over the history
    assert len(old) == 10 and all(r["type"] == "warning.raised" for r in old.values())
    read = rows_read(wh, known_raises_sql(old))
    assert read <= 2 * len(old) * GRANULE * parts  # a key may straddle two granules
    assert read * 5 < 40_000  # a fifth of the warnings at most
    found = wh._known_raises(set(old))
    assert found == {w: RaiseInfo(r["rule_id"], r["level"], r["org_unit"])
                     for w, r in old.items()}


def test_later_records_of_old_warnings_carry_their_raise(wh: ChdbWarehouse) -> None:
    data = make_dataset(41, households=40)
    raises = [r for r in data.lifecycle if r["type"] == "warning.raised"]
    later = [r for r in data.lifecycle if r["type"] != "warning.raised"]
    assert raises and later
    load(wh, Dataset(data.events, raises))
    load(wh, Dataset([], later), batch=7)  # every batch names warnings of earlier ones
    for name in ("warnings", "households"):
        assert LEDGERS[name][0](wh) == expected(data, name), name


def part_rows(wh: ChdbWarehouse, table: str) -> list[int]:
    return wh._part_rows().get(table, [])


def test_compaction_after_a_small_bulk_write_merges_only_what_it_added(
    wh: ChdbWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history sits in one large part; a bulk write adds small ones. ``compact``
    merges those with a plain OPTIMIZE (the merge selector joins parts of similar
    size), never with OPTIMIZE … FINAL, which rewrites the whole table."""
    data = make_dataset(42, households=300)
    cut = len(data.events) * 9 // 10
    load(wh, Dataset(data.events[:cut], data.lifecycle), batch=500)
    wh.compact()  # the history's load: merged whole
    assert all(len(part_rows(wh, t)) == 1 for t in schema.COMPACTED_AFTER_BULK)
    wh.COMPACT_WHOLE_BELOW_ROWS = 0  # as on a warehouse past a million rows a table
    wh._execute("SYSTEM STOP MERGES")
    try:
        load(wh, Dataset(data.events[cut:], []), batch=40)  # the bulk write, in parts
        before = {t: part_rows(wh, t) for t in schema.COMPACTED_AFTER_BULK}
    finally:
        wh._execute("SYSTEM START MERGES")
    added = {t for t, rows in before.items() if len(rows) > 2 and sum(rows[1:]) < rows[0]}
    assert added, before
    statements: list[str] = []
    execute = wh._execute

    def recorded(sql: str) -> None:
        statements.append(sql)
        execute(sql)

    monkeypatch.setattr(wh, "_execute", recorded)
    wh.compact()
    for table in added - set(schema.MERGED_WHOLE_AFTER_BULK):
        assert f"OPTIMIZE TABLE {table}" in statements, table
        assert f"OPTIMIZE TABLE {table} FINAL" not in statements, table
        assert len(part_rows(wh, table)) <= 2, (table, part_rows(wh, table))
    assert added - set(schema.MERGED_WHOLE_AFTER_BULK)
    for table in schema.MERGED_WHOLE_AFTER_BULK:  # city-wide reads take these whole
        assert len(part_rows(wh, table)) <= 1, (table, part_rows(wh, table))
    for name, (sql_ledger, _) in LEDGERS.items():
        assert sql_ledger(wh) == expected(data, name), name


def test_background_merges_join_a_quiet_tables_parts(wh: ChdbWarehouse) -> None:
    """What ``compact`` leaves in two parts is merged whole in the background once the
    table has had no insert for ``MERGE_WHEN_QUIET_S``."""
    wh.MERGE_WHEN_QUIET_S = 2
    wh.ensure_schema()  # the table setting, as on a start
    data = make_dataset(44, households=100)
    half = len(data.events) // 2
    load(wh, Dataset(data.events[:half], []), batch=1000)
    wh._merge_whole(schema.COMPACTED_AFTER_BULK)
    load(wh, Dataset(data.events[half:], data.lifecycle), batch=1000)
    several = [t for t in schema.COMPACTED_AFTER_BULK if len(part_rows(wh, t)) > 1]
    assert several
    deadline = time.monotonic() + 60
    while any(len(part_rows(wh, t)) > 1 for t in several):
        assert time.monotonic() < deadline, {t: part_rows(wh, t) for t in several}
        time.sleep(0.5)
    for name, (sql_ledger, _) in LEDGERS.items():
        assert sql_ledger(wh) == expected(data, name), name


def test_compaction_merges_a_table_mostly_written_by_the_bulk_write_whole(
    wh: ChdbWarehouse,
) -> None:
    """A rebuild or first load wrote most of the table: merging it whole costs about
    what was written, and leaves it in one part."""
    data = make_dataset(43, households=200)
    wh.COMPACT_WHOLE_BELOW_ROWS = 0
    wh._execute("SYSTEM STOP MERGES")
    try:
        load(wh, data, batch=60)
    finally:
        wh._execute("SYSTEM START MERGES")
    wh.compact()
    assert all(len(part_rows(wh, t)) == 1 for t in schema.COMPACTED_AFTER_BULK)
    for name, (sql_ledger, _) in LEDGERS.items():
        assert sql_ledger(wh) == expected(data, name), name
