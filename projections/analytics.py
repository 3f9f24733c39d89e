"""Analytics queries on the warehouse (daily aggregates; KPIs come later).

Days are Harbin calendar days (UTC+8; ``schema.LOCAL_DAY_ZONE``): users read a day as a
local day. The instants in the warehouse stay UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections import schema
from projections.warehouse.base import Warehouse

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """``events``: day, district, type, events; ``lifecycle``: day, district, level, type,
    records. Days as ``YYYY-MM-DD``; rows sorted by every key column."""

    events: list[Row]
    lifecycle: list[Row]


def _where(column: str, as_of: int | None) -> str:
    if as_of is None:
        return ""
    return f"WHERE {column} <= fromUnixTimestamp64Micro(toInt64({int(as_of)}), 'UTC')"


def _rows(warehouse: Warehouse, sql: str, keys: tuple[str, ...]) -> list[Row]:
    rows = warehouse.query(sql).dicts()
    for row in rows:
        row["day"] = row["day"].isoformat()
    return sorted(rows, key=lambda r: tuple("" if r[k] is None else r[k] for k in keys))


def daily_counts(warehouse: Warehouse, as_of: int | None = None) -> DailyCounts:
    """Events per day/district/type and lifecycle records per day/district/level/type."""
    events = _rows(
        warehouse,
        schema.daily_event_counts_select(_where("occurred_at", as_of)),
        ("day", "district", "type"),
    )
    lifecycle = _rows(
        warehouse,
        schema.daily_lifecycle_counts_select(_where("at", as_of)),
        ("day", "district", "level", "type"),
    )
    return DailyCounts(events, lifecycle)


__all__ = ["DailyCounts", "daily_counts"]
