"""``StateStore``: states round-trip by household; the due index finds deadlines ≤ a time."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import StateStore, Transactional
from tests.streams.contracts.base import Contract


class TransactionalStates(StateStore, Transactional, Protocol):
    """States are saved inside the batch transaction, as the processor saves them."""


class StateStoreContract(Contract[TransactionalStates]):
    def save(self, store: TransactionalStates, *rows: tuple[str, bytes, int | None]) -> None:
        with store.transaction():
            store.save_states(rows)

    def test_states_round_trip_and_absent_households_are_left_out(
        self, adapter: TransactionalStates
    ) -> None:
        self.save(adapter, ("hh-1", b"\x00one", None), ("hh-2", b"two", 50))
        assert adapter.load_states(["hh-2", "hh-1", "hh-9"]) == {"hh-1": b"\x00one",
                                                                  "hh-2": b"two"}
        assert adapter.load_states([]) == {}

    def test_a_save_replaces_the_state_and_its_deadline(
        self, adapter: TransactionalStates
    ) -> None:
        self.save(adapter, ("hh-1", b"old", 10))
        self.save(adapter, ("hh-1", b"new", 30))
        assert adapter.load_states(["hh-1"]) == {"hh-1": b"new"}
        assert adapter.households_due(20) == [] and adapter.due_times(30) == [30]

    def test_the_due_index_holds_deadlines_up_to_and_including_until(
        self, adapter: TransactionalStates
    ) -> None:
        self.save(adapter, ("hh-c", b"c", 10), ("hh-a", b"a", 30), ("hh-b", b"b", 20),
                  ("hh-d", b"d", 40), ("hh-e", b"e", None))
        assert adapter.households_due(5) == []
        assert adapter.households_due(30) == ["hh-a", "hh-b", "hh-c"]  # by household
        assert adapter.due_times(30) == [10, 20, 30]  # earliest first
        assert adapter.due_times(10**18) == [10, 20, 30, 40]

    def test_no_deadline_takes_a_household_out_of_the_due_index(
        self, adapter: TransactionalStates
    ) -> None:
        self.save(adapter, ("hh-1", b"s", 10))
        self.save(adapter, ("hh-1", b"s", None))
        assert adapter.households_due(100) == [] and adapter.due_times(100) == []
        assert adapter.load_states(["hh-1"]) == {"hh-1": b"s"}

    def test_a_whole_batch_of_households_loads_at_once(
        self, adapter: TransactionalStates
    ) -> None:
        ids = [f"hh-{n:05d}" for n in range(12_000)]
        self.save(adapter, *((h, h.encode(), None) for h in ids))
        loaded = adapter.load_states(reversed(ids))
        assert len(loaded) == len(ids) and loaded["hh-11999"] == b"hh-11999"


class TestSqliteStateStore(StateStoreContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryStateStore(StateStoreContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
