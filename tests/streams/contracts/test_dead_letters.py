"""``DeadLetters``: every refusal is kept; counts by stage, reasons by frequency."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import DeadLetters, Transactional
from tests.streams.contracts.base import Contract


class TransactionalDeadLetters(DeadLetters, Transactional, Protocol):
    """Dead letters are written inside the transaction of the batch that refused them."""


class DeadLettersContract(Contract[TransactionalDeadLetters]):
    def test_no_dead_letters_at_first(self, adapter: TransactionalDeadLetters) -> None:
        assert adapter.dead_letter_counts() == {} and adapter.dead_letter_reasons() == []

    def test_counts_by_stage_and_reasons_most_frequent_first(
        self, adapter: TransactionalDeadLetters
    ) -> None:
        with adapter.transaction():
            for stage, reason in [("process", "b: late"), ("ingest", "c: bad"),
                                  ("ingest", "c: bad"), ("ingest", "a: odd"),
                                  ("process", "c: bad"), ("ingest", "b: late")]:
                adapter.dead_letter(stage, "test", reason, None, None, b"input")
        assert adapter.dead_letter_counts() == {"ingest": 4, "process": 2}
        assert list(adapter.dead_letter_counts()) == ["ingest", "process"]
        # ties by reason
        assert adapter.dead_letter_reasons() == [("c: bad", 3), ("b: late", 2), ("a: odd", 1)]
        assert adapter.dead_letter_reasons(limit=2) == [("c: bad", 3), ("b: late", 2)]

    def test_the_same_input_refused_twice_is_kept_twice(
        self, adapter: TransactionalDeadLetters
    ) -> None:
        for _ in range(2):
            with adapter.transaction():
                adapter.dead_letter("ingest", "test", "x: bad", "e-1", "hh-1", b"same")
        assert adapter.dead_letter_counts() == {"ingest": 2}


class TestSqliteDeadLetters(DeadLettersContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryDeadLetters(DeadLettersContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
