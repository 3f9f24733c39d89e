"""Warehouse schema: one DDL for every backend (chdb and a ClickHouse server).

Three tables and two views:

* ``events`` — one row per accepted event (analytics fact). Holds only the
  pseudonymous ``household_key`` and the catalog's coded fields; free text
  (``data.notes`` of visits, ``data.note`` of warning.resolved) is never
  written, nor is the command's ``by``.
* ``lifecycle`` — one row per lifecycle record. Non-raise records carry the
  warning's rule_id/level/org_unit/district too (copied from its raise at
  write time) so that analysts can group by district and level without a
  join; an escalation's handling_level is its to_level.
* ``household_directory`` — household_key → household_id, kept apart so that
  analysts' tables never contain the id (see ``projections.pseudonym``).
* views ``daily_event_counts`` and ``daily_lifecycle_counts`` (UTC days).

Idempotency: all tables are ReplacingMergeTree and every read uses FINAL. A
replay after a crash re-sends the same rows but not necessarily in the same
batches (the sink's batch boundaries depend on when it crashed), so insert
deduplication tokens — which drop only byte-identical blocks, and on a plain
MergeTree only within ``non_replicated_deduplication_window`` — would miss
them; replacing on the natural key removes duplicates whatever the batching.
The version column (``offset`` / ``seq``) makes the surviving row
deterministic. Keys: events by ``event_id``; lifecycle by (warning_id, type,
to_level) — a warning is raised, acknowledged and resolved at most once and
reaches each level at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

EVENTS = "events"
LIFECYCLE = "lifecycle"
DIRECTORY = "household_directory"
DAILY_EVENT_COUNTS = "daily_event_counts"
DAILY_LIFECYCLE_COUNTS = "daily_lifecycle_counts"
TABLES: tuple[str, ...] = (EVENTS, LIFECYCLE, DIRECTORY)

_TS = pa.timestamp("us", tz="UTC")
_LC_NULL_STR = "LowCardinality(Nullable(String))"


@dataclass(frozen=True, slots=True)
class Column:
    """A column's SQL type and the Arrow type rows are shipped in."""

    name: str
    sql_type: str
    arrow_type: pa.DataType


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "String", pa.string()),
    Column("type", "LowCardinality(String)", pa.string()),
    Column("schema_version", "UInt16", pa.uint16()),
    Column("occurred_at", "DateTime64(6, 'UTC')", _TS),
    Column("recorded_at", "Nullable(DateTime64(6, 'UTC'))", _TS),
    Column("org_unit", "LowCardinality(String)", pa.string()),
    Column("street", "LowCardinality(String)", pa.string()),
    Column("district", "LowCardinality(String)", pa.string()),
    Column("household_key", "String", pa.string()),
    Column("actor", "Nullable(String)", pa.string()),
    Column("indicators", "Array(LowCardinality(String))", pa.list_(pa.string())),
    Column("channel", _LC_NULL_STR, pa.string()),
    Column("category", _LC_NULL_STR, pa.string()),
    Column("urgent", "Nullable(Bool)", pa.bool_()),
    Column("action", _LC_NULL_STR, pa.string()),
    Column("outcome", _LC_NULL_STR, pa.string()),
    Column("mediation_id", "Nullable(String)", pa.string()),
    Column("child_ref", "Nullable(String)", pa.string()),
    Column("resolution", _LC_NULL_STR, pa.string()),
    Column("warning_id", "Nullable(String)", pa.string()),
    Column("offset", "UInt64", pa.uint64()),
)

LIFECYCLE_COLUMNS: tuple[Column, ...] = (
    Column("seq", "UInt64", pa.uint64()),
    Column("type", "LowCardinality(String)", pa.string()),
    Column("warning_id", "String", pa.string()),
    Column("rule_id", _LC_NULL_STR, pa.string()),
    Column("household_key", "String", pa.string()),
    Column("level", _LC_NULL_STR, pa.string()),
    Column("org_unit", _LC_NULL_STR, pa.string()),
    Column("district", _LC_NULL_STR, pa.string()),
    Column("handling_level", _LC_NULL_STR, pa.string()),
    Column("handling_org_unit", _LC_NULL_STR, pa.string()),
    Column("from_level", _LC_NULL_STR, pa.string()),
    Column("to_level", _LC_NULL_STR, pa.string()),
    Column("at", "DateTime64(6, 'UTC')", _TS),
)

DIRECTORY_COLUMNS: tuple[Column, ...] = (
    Column("household_key", "String", pa.string()),
    Column("household_id", "String", pa.string()),
)

TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    EVENTS: EVENT_COLUMNS,
    LIFECYCLE: LIFECYCLE_COLUMNS,
    DIRECTORY: DIRECTORY_COLUMNS,
}

_ENGINES: dict[str, str] = {
    EVENTS: "ReplacingMergeTree(`offset`) ORDER BY event_id",
    LIFECYCLE: "ReplacingMergeTree(seq) ORDER BY (warning_id, type, ifNull(to_level, ''))",
    DIRECTORY: "ReplacingMergeTree ORDER BY household_key",
}


def quote_ident(name: str) -> str:
    """Backquote an identifier (``offset`` is a keyword)."""
    return "`" + name.replace("`", "``") + "`"


def column_list(table: str) -> str:
    return ", ".join(quote_ident(c.name) for c in TABLE_COLUMNS[table])


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in TABLE_COLUMNS[table]])


def create_table(table: str) -> str:
    cols = ",\n  ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in TABLE_COLUMNS[table])
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n) ENGINE = {_ENGINES[table]}"


def daily_event_counts_select(where: str = "") -> str:
    """Events per UTC day, district and type (the view body; ``where`` for as_of)."""
    return (
        f"SELECT toDate(occurred_at) AS day, district, type, count() AS events "
        f"FROM {EVENTS} FINAL {where} GROUP BY day, district, type"
    )


def daily_lifecycle_counts_select(where: str = "") -> str:
    """Lifecycle records per UTC day, warning district, warning level and type."""
    return (
        f"SELECT toDate(at) AS day, district, level, type, count() AS records "
        f"FROM {LIFECYCLE} FINAL {where} GROUP BY day, district, level, type"
    )


def ddl() -> list[str]:
    """Every statement ``ensure_schema`` runs, in order; each is idempotent."""
    statements = [create_table(t) for t in TABLES]
    statements.append(
        f"CREATE VIEW IF NOT EXISTS {DAILY_EVENT_COUNTS} AS {daily_event_counts_select()}"
    )
    statements.append(
        f"CREATE VIEW IF NOT EXISTS {DAILY_LIFECYCLE_COUNTS} AS {daily_lifecycle_counts_select()}"
    )
    return statements
