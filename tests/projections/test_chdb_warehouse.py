"""The warehouse contract on ChdbWarehouse, plus chdb-specific behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import ledgers
from projections.warehouse.base import Warehouse
from projections.warehouse.chdb_backend import ChdbWarehouse
from tests.projections.datagen import make_dataset
from tests.projections.warehouse_contract import CONTRACT_SECRET, WarehouseContract, load


class TestChdbWarehouseContract(WarehouseContract):
    @pytest.fixture
    def warehouse(self, tmp_path: Path) -> Iterator[Warehouse]:
        wh = ChdbWarehouse(tmp_path / "warehouse", CONTRACT_SECRET)
        try:
            yield wh
        finally:
            wh.close()


def test_data_survives_reopening_the_directory(tmp_path: Path) -> None:
    data = make_dataset(21)
    wh = ChdbWarehouse(tmp_path / "wh", CONTRACT_SECRET)
    wh.ensure_schema()
    load(wh, data)
    before = ledgers.warning_ledger(wh)
    wh.close()
    again = ChdbWarehouse(tmp_path / "wh", CONTRACT_SECRET)
    try:
        again.ensure_schema()
        assert ledgers.warning_ledger(again) == before != []
    finally:
        again.close()


def test_in_memory_warehouse(tmp_path: Path) -> None:
    wh = ChdbWarehouse(None, CONTRACT_SECRET)
    try:
        wh.ensure_schema()
        load(wh, make_dataset(22, households=3))
        assert ledgers.household_ledger(wh)
    finally:
        wh.close()


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        ChdbWarehouse(None, b"")
