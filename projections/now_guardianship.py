"""The guardianship ledger "now", from the ``guardianship_state`` and
``household_care`` pre-aggregates (``schema``), instead of grouping every
gap / restore / follow-up event (5.8 s for a page at 10M events).

Two statements, so that the expensive part — the directory rows of every
candidate, needed because the ledger is ordered by the household_id shown —
runs once: the page of (household, child) rows, then the care of just the
page's households (a literal key list: an IN subquery would recompute the page).
The row columns are ``ledger_sql.guardianship``'s; ``restored_us`` and
``overdue`` follow its SQL expressions exactly:

* restored_us: the latest restore of that child at or after the latest gap;
* overdue: gap + 7 days ≤ now, and no restore or follow-up of the household
  (any child) within [gap, gap + 7 days].

Exact like the raw path: the aggregates are max / set union, so re-sent rows
change nothing, and only an ``as_of`` that cuts nothing off comes here
(``projections.now.resolve``).
"""

from __future__ import annotations

from typing import Any

from projections import ledger_common as lc
from projections import ledger_sql
from projections.schema import BEFORE_ALL, GUARDIANSHIP_STATE, HOUSEHOLD_CARE
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]


def page_sql(district: str | None, limit: int | None, offset: int) -> str:
    """The page of (household, child) rows with a gap whose latest gap is in ``district``."""
    scope = "" if district is None else f" AND startsWith(org, {sql_string(district[:6])})"
    pairs = f"""(
  SELECT household_key, child, latest_gap.1 AS gap_us, latest_gap.3 AS org, restores
  FROM {GUARDIANSHIP_STATE} FINAL
  WHERE gap_us != {BEFORE_ALL}{scope}
)"""
    keys = f"(SELECT household_key FROM {pairs})"
    return f"""
SELECT g.household_key AS household_key, d.household_id AS household_id, d.present AS present,
       g.child AS child_ref, g.org AS org_unit, g.gap_us AS gap_us,
       arrayFilter(x -> x >= g.gap_us, g.restores) AS later_restores,
       if(empty(later_restores), NULL, arrayMax(later_restores)) AS restored_us
FROM {pairs} AS g
LEFT JOIN {ledger_sql._directory(keys)} AS d ON g.household_key = d.household_key
ORDER BY {ledger_sql._shown_id("d", "g.household_key")}, g.child{ledger_sql.page(limit, offset)}
{ledger_sql._SETTINGS}"""


def care_sql(keys: list[str] | None) -> str:
    """Care instants and latest follow-up of ``keys`` (None: every household)."""
    scope = "" if keys is None else f" WHERE household_key IN ({', '.join(map(sql_string, keys))})"
    return f"SELECT household_key, care, last_followup_us FROM {HOUSEHOLD_CARE} FINAL{scope}"


def rows(
    warehouse: Warehouse, now: int, district: str | None, limit: int | None, offset: int
) -> list[Row]:
    """``ledger_sql.guardianship``'s rows for ``now`` ≥ the latest instant in the data."""
    page = warehouse.query(page_sql(district, limit, offset)).dicts()
    if not page:
        return []
    keys = sorted({r["household_key"] for r in page})
    care = {
        key: (list(instants), last)
        for key, instants, last in warehouse.query(
            care_sql(keys if limit is not None else None)
        ).rows
    }
    due = lc.GUARDIANSHIP_FOLLOWUP_MICROS
    for r in page:
        instants, last = care.get(r["household_key"], ([], BEFORE_ALL))
        gap = int(r["gap_us"])
        r["last_followup_us"] = None if last == BEFORE_ALL else last
        r["overdue"] = gap + due <= now and not any(gap <= x <= gap + due for x in instants)
    return page


__all__ = ["care_sql", "page_sql", "rows"]
