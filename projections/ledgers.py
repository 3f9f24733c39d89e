"""The three ledgers of DESIGN.md, computed by SQL on any Warehouse.

``as_of`` (microseconds) filters events by occurred_at ≤ as_of and lifecycle
records by at ≤ as_of; ``None`` means no filter, and the "now" of windows is
then the largest occurred_at / at in the warehouse. ``reference.py`` is the
executable specification these functions are tested against.
"""

from __future__ import annotations

from typing import Any

from events.orgunits import district_of
from projections import ledger_common as lc
from projections import ledger_sql
from projections.pseudonym import erased_label
from projections.warehouse.base import Warehouse

Row = dict[str, Any]


def resolve_now(warehouse: Warehouse, as_of: int | None) -> int | None:
    """``as_of`` itself, or the latest instant in the data (None when empty)."""
    if as_of is not None:
        return as_of
    bounds = [v for v in warehouse.query(ledger_sql.data_bounds()).rows[0] if v is not None]
    return max(bounds) if bounds else None


def _household_id(row: Row) -> str:
    present: bool = bool(row["present"])
    return str(row["household_id"]) if present else erased_label(row["household_key"])


def _fetch(warehouse: Warehouse, sql: str) -> list[Row]:
    return warehouse.query(sql).dicts()


def warning_ledger(
    warehouse: Warehouse, as_of: int | None = None, district: str | None = None
) -> list[Row]:
    """预警信息台账: one row per warning raised ≤ as_of."""
    now = resolve_now(warehouse, as_of)
    if now is None:
        return []
    rows = []
    for r in _fetch(warehouse, ledger_sql.warnings(now, lc.district_code(district))):
        raised, ack, resolved = r["raised_us"], r["ack_us"], r["resolved_us"]
        rows.append(
            {
                "warning_id": r["warning_id"],
                "rule_id": r["rule_id"],
                "level": r["level"],
                "household_id": _household_id(r),
                "org_unit": r["org_unit"],
                "district": district_of(r["org_unit"]),
                "raised_at": lc.iso(raised),
                "acknowledged_at": lc.iso(ack),
                "resolved_at": lc.iso(resolved),
                "status": lc.warning_status(ack, resolved),
                "handling_level": r["handling_level"],
                "handling_org_unit": r["handling_org_unit"],
                "escalations": int(r["escalations"]),
                "highest_handling_level": r["highest_handling_level"],
                "minutes_to_acknowledge": lc.minutes_between(raised, ack),
                "minutes_to_resolve": lc.minutes_between(raised, resolved),
            }
        )
    return sorted(rows, key=lc.warning_sort_key)


def household_ledger(
    warehouse: Warehouse, as_of: int | None = None, district: str | None = None
) -> list[Row]:
    """家庭风险台账: one row per household with an event ≤ as_of."""
    now = resolve_now(warehouse, as_of)
    if now is None:
        return []
    rows = []
    for r in _fetch(warehouse, ledger_sql.households(now, lc.district_code(district))):
        severity = int(r["severity"] or 0)
        row: Row = {
            "household_id": _household_id(r),
            "org_unit": r["org_unit"],
            "district": district_of(r["org_unit"]),
            "open_warnings": int(r["open_warnings"] or 0),
            "highest_open_level": lc.WARNING_LEVELS[severity - 1] if severity else None,
            "indicators": list(r["indicators"]),
            "last_visit_at": lc.iso(r["last_visit_us"]),
            "last_followup_at": lc.iso(r["last_followup_us"]),
        }
        for days in lc.PETITION_WINDOWS_DAYS:
            row[f"petitions_{days}d"] = int(r[f"petitions_{days}d"])
        row["first_seen_at"] = lc.iso(r["first_seen_us"])
        rows.append(row)
    return sorted(rows, key=lc.household_sort_key)


def guardianship_ledger(
    warehouse: Warehouse, as_of: int | None = None, district: str | None = None
) -> list[Row]:
    """监护缺失儿童台账: one row per (household, child) with a gap ≤ as_of."""
    now = resolve_now(warehouse, as_of)
    if now is None:
        return []
    rows = [
        {
            "household_id": _household_id(r),
            "child_ref": r["child_ref"],
            "org_unit": r["org_unit"],
            "district": district_of(r["org_unit"]),
            "gap_recorded_at": lc.iso(r["gap_us"]),
            "restored_at": lc.iso(r["restored_us"]),
            "last_followup_at": lc.iso(r["last_followup_us"]),
            "overdue": bool(r["overdue"]),
        }
        for r in _fetch(warehouse, ledger_sql.guardianship(now, lc.district_code(district)))
    ]
    return sorted(rows, key=lc.guardianship_sort_key)
