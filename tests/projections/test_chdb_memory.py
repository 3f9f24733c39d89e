"""chdb's share of the processor's memory: releasing freed pages, the directory cache.

Both settings change only how much memory the process keeps, never what the
warehouse answers: a warehouse that forgets its written directory keys after
every few households gives the same ledgers as one that remembers them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import ledgers
from projections.warehouse.chdb_backend import ChdbWarehouse
from projections.warehouse.sqlbase import SqlWarehouse
from tests.projections.datagen import make_dataset
from tests.projections.warehouse_contract import CONTRACT_SECRET, count, load


def test_freed_memory_is_released_on_request_and_the_warehouse_still_answers(
    tmp_path: Path,
) -> None:
    """The processor calls this after every flush (chdb's jemalloc purge)."""
    wh = ChdbWarehouse(tmp_path / "wh", CONTRACT_SECRET)
    try:
        wh.ensure_schema()
        data = make_dataset(32, households=30)
        load(wh, data, batch=50)
        wh.release_memory()
        assert count(wh, "events") == len(data.events)
    finally:
        wh.close()


def test_the_directory_cache_is_smaller_than_the_generic_one() -> None:
    assert ChdbWarehouse.DIRECTORY_CACHE_LIMIT < SqlWarehouse.DIRECTORY_CACHE_LIMIT


def _ledgers(path: Path) -> tuple[object, ...]:
    wh = ChdbWarehouse(path, CONTRACT_SECRET)
    try:
        wh.ensure_schema()
        load(wh, make_dataset(31, households=40), batch=13)
        return (
            ledgers.warning_ledger(wh),
            ledgers.household_ledger(wh),
            count(wh, "household_directory"),
        )
    finally:
        wh.close()


def test_forgetting_written_directory_keys_changes_no_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remembered = _ledgers(tmp_path / "all")
    monkeypatch.setattr(ChdbWarehouse, "DIRECTORY_CACHE_LIMIT", 3)
    forgetful = _ledgers(tmp_path / "tiny")
    assert remembered[0] and remembered[1]
    assert remembered[2] == 40
    assert forgetful == remembered
