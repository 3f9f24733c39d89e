"""Batch-then-flush delivery of events and lifecycle records to a warehouse.

Modelled on quixstreams' BatchingSink: rows accumulate in memory and reach
the warehouse in few large inserts (ClickHouse wants thousands of rows per
insert, not one). The caller moves its checkpoint only after ``flush()``
returned: a failed flush raises and keeps every row that was not written, so
the next flush retries them; anything re-sent is absorbed by the warehouse's
idempotent writes. Not thread-safe: one sink per consumer loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.warehouse.base import Warehouse


class WarehouseSink:
    """Buffers rows; flushes by itself once ``max_rows`` are pending."""

    def __init__(self, warehouse: Warehouse, max_rows: int = 5000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        self.warehouse = warehouse
        self.max_rows = max_rows
        self._events: list[Mapping[str, Any]] = []
        self._lifecycle: list[Mapping[str, Any]] = []

    @property
    def pending(self) -> int:
        """Rows added and not yet written."""
        return len(self._events) + len(self._lifecycle)

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Queue an accepted event; may flush (and then may raise, keeping the row)."""
        self._events.append(event)
        self._flush_if_full()

    def add_lifecycle(self, record: Mapping[str, Any]) -> None:
        """Queue a lifecycle record; may flush (and then may raise, keeping the row)."""
        self._lifecycle.append(record)
        self._flush_if_full()

    def flush(self) -> int:
        """Write everything pending; returns the number of rows written.

        Events go first, then lifecycle records (in production order, so a
        raise reaches the warehouse no later than its transitions). Each part
        is dropped from the batch only once written; on error the exception
        propagates and the unwritten part stays pending.
        """
        written = 0
        if self._events:
            self.warehouse.write_events(self._events)
            written += len(self._events)
            self._events = []
        if self._lifecycle:
            self.warehouse.write_lifecycle(self._lifecycle)
            written += len(self._lifecycle)
            self._lifecycle = []
        return written

    def _flush_if_full(self) -> None:
        if self.pending >= self.max_rows:
            self.flush()
