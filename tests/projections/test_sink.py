"""WarehouseSink: batch, flush, and keep the batch when a flush fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from projections.sink import WarehouseSink
from projections.warehouse.base import QueryResult, Warehouse


class RecordingWarehouse:
    """Collects writes; ``fail`` makes the next writes raise (a warehouse outage)."""

    def __init__(self) -> None:
        self.events: list[list[Mapping[str, Any]]] = []
        self.lifecycle: list[list[Mapping[str, Any]]] = []
        self.fail_events = False
        self.fail_lifecycle = False

    def ensure_schema(self) -> None: ...

    def write_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self.fail_events:
            raise ConnectionError("warehouse down")
        self.events.append(list(events))

    def write_lifecycle(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.fail_lifecycle:
            raise ConnectionError("warehouse down")
        self.lifecycle.append(list(records))

    def query(self, sql: str) -> QueryResult:
        return QueryResult((), [])

    def erase_household(self, household_id: str) -> None: ...

    def reset(self) -> None: ...

    def compact(self) -> None: ...

    def release_memory(self) -> None: ...

    def close(self) -> None: ...


def test_recording_warehouse_satisfies_the_protocol() -> None:
    assert isinstance(RecordingWarehouse(), Warehouse)


def test_rows_wait_for_flush() -> None:
    wh = RecordingWarehouse()
    sink = WarehouseSink(wh, max_rows=10)
    sink.add_event({"event_id": "e1"})
    sink.add_lifecycle({"seq": 1})
    assert sink.pending == 2 and wh.events == [] and wh.lifecycle == []
    assert sink.flush() == 2
    assert sink.pending == 0
    assert wh.events == [[{"event_id": "e1"}]] and wh.lifecycle == [[{"seq": 1}]]
    assert sink.flush() == 0 and len(wh.events) == 1


def test_a_full_batch_flushes_by_itself() -> None:
    wh = RecordingWarehouse()
    sink = WarehouseSink(wh, max_rows=3)
    for n in range(7):
        sink.add_event({"event_id": f"e{n}"})
    assert [len(batch) for batch in wh.events] == [3, 3]
    assert sink.pending == 1


def test_a_failed_flush_raises_and_keeps_the_batch() -> None:
    wh = RecordingWarehouse()
    sink = WarehouseSink(wh, max_rows=100)
    sink.add_event({"event_id": "e1"})
    sink.add_lifecycle({"seq": 1})
    wh.fail_events = True
    with pytest.raises(ConnectionError):
        sink.flush()
    assert sink.pending == 2
    wh.fail_events = False
    wh.fail_lifecycle = True
    with pytest.raises(ConnectionError):
        sink.flush()
    assert sink.pending == 1  # the events part was written and is not re-sent
    wh.fail_lifecycle = False
    assert sink.flush() == 1
    assert wh.events == [[{"event_id": "e1"}]] and wh.lifecycle == [[{"seq": 1}]]


def test_an_automatic_flush_that_fails_keeps_the_new_row() -> None:
    wh = RecordingWarehouse()
    wh.fail_events = True
    sink = WarehouseSink(wh, max_rows=2)
    sink.add_event({"event_id": "e1"})
    with pytest.raises(ConnectionError):
        sink.add_event({"event_id": "e2"})
    assert sink.pending == 2
    wh.fail_events = False
    sink.flush()
    assert wh.events == [[{"event_id": "e1"}, {"event_id": "e2"}]]


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WarehouseSink(RecordingWarehouse(), max_rows=0)
