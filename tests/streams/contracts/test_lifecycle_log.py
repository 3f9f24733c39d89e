"""``LifecycleLog``: records come back in append order, with increasing sequence numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import orjson

from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import LifecycleLog, Transactional
from tests.streams.contracts.base import Contract, record


class TransactionalLifecycle(LifecycleLog, Transactional, Protocol):
    """Appends are made inside a transaction, as the processor makes them."""


class LifecycleLogContract(Contract[TransactionalLifecycle]):
    def test_an_empty_log_ends_at_seq_zero(self, adapter: TransactionalLifecycle) -> None:
        assert adapter.end_seq() == 0
        assert adapter.read_lifecycle(0, 10) == []
        with adapter.transaction():
            assert adapter.append_lifecycle([]) == []

    def test_appends_return_consecutive_seqs_from_one(
        self, adapter: TransactionalLifecycle
    ) -> None:
        with adapter.transaction():
            assert adapter.append_lifecycle([record(1), record(2)]) == [1, 2]
        with adapter.transaction():
            assert adapter.append_lifecycle([record(3)]) == [3]
        assert adapter.end_seq() == 3

    def test_reads_give_the_records_in_order_paged_by_seq(
        self, adapter: TransactionalLifecycle
    ) -> None:
        records = [record(n, household_id=None if n == 2 else f"hh-{n}") for n in range(5)]
        with adapter.transaction():
            adapter.append_lifecycle(records)
        entries = adapter.read_lifecycle(0, 10)
        assert [e.position for e in entries] == [1, 2, 3, 4, 5]
        assert [orjson.loads(e.body) for e in entries] == records
        assert [e.position for e in adapter.read_lifecycle(3, 1)] == [4]
        assert adapter.read_lifecycle(5, 10) == []


class TestSqliteLifecycleLog(LifecycleLogContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryLifecycleLog(LifecycleLogContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
