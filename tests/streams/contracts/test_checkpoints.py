"""``Checkpoints``: 0 until set, then the last position set, per consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import Checkpoints, Transactional
from tests.streams.contracts.base import Contract


class TransactionalCheckpoints(Checkpoints, Transactional, Protocol):
    """Checkpoints move inside the transaction of their effects."""


class CheckpointsContract(Contract[TransactionalCheckpoints]):
    def move(self, store: TransactionalCheckpoints, consumer: str, position: int) -> None:
        with store.transaction():
            store.set_checkpoint(consumer, position)

    def test_a_consumer_never_seen_is_at_zero(self, adapter: TransactionalCheckpoints) -> None:
        assert adapter.checkpoint("processor") == 0

    def test_each_consumer_keeps_its_own_position(self, adapter: TransactionalCheckpoints
                                                  ) -> None:
        self.move(adapter, "processor", 40)
        self.move(adapter, "warehouse.events", 25)
        self.move(adapter, "processor", 90)
        assert adapter.checkpoint("processor") == 90
        assert adapter.checkpoint("warehouse.events") == 25
        assert adapter.checkpoint("warehouse.lifecycle") == 0

    def test_the_last_position_set_wins_even_backwards(
        self, adapter: TransactionalCheckpoints
    ) -> None:
        """A rebuild of the warehouse sets its consumers back to 0."""
        self.move(adapter, "warehouse.events", 70)
        self.move(adapter, "warehouse.events", 0)
        assert adapter.checkpoint("warehouse.events") == 0


class TestSqliteCheckpoints(CheckpointsContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryCheckpoints(CheckpointsContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
