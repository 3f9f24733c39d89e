"""``Transactional``: a batch's effects and its checkpoint commit together or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import (
    Checkpoints,
    DeadLetters,
    EventLog,
    LifecycleLog,
    StateStore,
    Transactional,
)
from tests.streams.contracts.base import Contract, record, visit_line


class Log(EventLog, LifecycleLog, StateStore, Checkpoints, DeadLetters, Transactional, Protocol):
    """Everything the embedded processor writes in one batch."""


class Crash(Exception):
    pass


class TransactionContract(Contract[Log]):
    def batch(self, log: Log, n: int) -> None:
        log.append_lifecycle([record(n)])
        log.dead_letter("process", "log", f"r-{n}", None, None, b"x")
        log.save_states([(f"hh-{n}", b"state", n)])
        log.set_checkpoint("processor", n)

    def test_a_committed_batch_is_seen_whole(self, adapter: Log) -> None:
        with adapter.transaction():
            self.batch(adapter, 1)
        assert adapter.end_seq() == 1 and adapter.checkpoint("processor") == 1
        assert adapter.dead_letter_counts() == {"process": 1}
        assert adapter.load_states(["hh-1"]) == {"hh-1": b"state"}

    def test_a_batch_that_raises_leaves_nothing_behind(self, adapter: Log) -> None:
        with adapter.transaction():
            self.batch(adapter, 1)
        with pytest.raises(Crash), adapter.transaction():
            self.batch(adapter, 2)
            raise Crash
        assert adapter.end_seq() == 1 and adapter.checkpoint("processor") == 1
        assert adapter.dead_letter_counts() == {"process": 1}
        assert adapter.load_states(["hh-2"]) == {} and adapter.households_due(10) == ["hh-1"]
        with adapter.transaction():  # the seq of the lost record is given again
            assert adapter.append_lifecycle([record(3)]) == [2]

    def test_a_publish_interrupted_mid_batch_keeps_only_the_batches_appended(
        self, adapter: Log
    ) -> None:
        def crashing(*items: str) -> Iterator[str]:
            yield from items
            raise Crash

        with pytest.raises(Crash):
            adapter.publish(crashing(visit_line("hh-1", "a"), "{not json"), "test")
        assert adapter.end_position() == 0 and adapter.dead_letter_counts() == {}
        with pytest.raises(Crash):
            adapter.publish(crashing(visit_line("hh-1", "b"), "{bad"), "test", batch_size=1)
        assert adapter.end_position() == 1 and adapter.dead_letter_counts() == {"ingest": 1}


class TestSqliteTransactions(TransactionContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryTransactions(TransactionContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
