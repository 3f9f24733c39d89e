"""The warehouse port: what projections need from an analytical store.

Two adapters implement it — chdb in-process (the embedded runtime) and a
ClickHouse server through clickhouse-connect (the Kafka runtime). Both run the
same DDL (``projections.schema``) and the same ledger SQL
(``projections.ledger_sql``); an adapter only executes statements and moves
Arrow batches, so a ledger computed on either is the same by construction and
is checked by ``tests/projections/warehouse_contract.py``.

Writes are idempotent (ReplacingMergeTree + FINAL, see ``projections.schema``):
at-least-once delivery may re-send any row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Column names and row tuples of a query (what ``jiahe sql`` prints)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@runtime_checkable
class Warehouse(Protocol):
    """An analytical store for accepted events and lifecycle records."""

    def ensure_schema(self) -> None:
        """Create missing tables and views; safe to call on every start."""

    def write_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Insert accepted events (validated envelopes with ``offset``); idempotent.

        ``events`` is read once, in order: a generator may parse them on the way.
        """

    def write_lifecycle(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Insert lifecycle records (DESIGN's dicts with ``seq``); idempotent."""

    def query(self, sql: str) -> QueryResult:
        """Run one read statement and return all rows."""

    def erase_household(self, household_id: str) -> None:
        """Delete the household's directory row: ledgers then show it as erased."""

    def reset(self) -> None:
        """Drop all data (keep the schema), before a rebuild from the log."""

    def release_memory(self) -> None:
        """Return memory freed by past writes to the OS (for a process that shares it)."""

    def compact(self) -> None:
        """Merge what a bulk write left in parts, so the dashboard's reads stay fast."""

    def close(self) -> None:
        """Release the connection; the object is unusable afterwards."""
