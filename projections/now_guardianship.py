"""The guardianship ledger "now", from the ``guardianship_state`` and
``household_care`` pre-aggregates (``schema``), instead of grouping every
gap / restore / follow-up event (5.8 s for a page at 10M events).

Two statements, so that the expensive part — the directory rows of every
candidate, needed because the ledger is ordered by the household_id shown —
runs once: the page of (household, child) rows, then the care of just the
page's households (a literal key list: an IN subquery would recompute the page).
A district's page (what a dashboard asks) reads its candidates — the pairs with
a gap in the district, ``guardianship_districts`` — in page order with their
directory rows, then the latest gap of the first few by key (a later gap
elsewhere moves a pair out), instead of merging every pair of the city.
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

from collections.abc import Hashable
from typing import Any

from projections import ledger_common as lc
from projections import ledger_sql
from projections.now import page_of_candidates
from projections.schema import (
    BEFORE_ALL,
    GUARDIANSHIP_DISTRICTS,
    GUARDIANSHIP_STATE,
    HOUSEHOLD_CARE,
)
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


def candidates_sql(district: str, limit: int) -> str:
    """The first ``limit`` (household, child) pairs with a gap in ``district`` (one
    index range of ``guardianship_districts``) in ledger order, with their directory
    row: a superset of the district's rows in the same order."""
    pairs = (
        f"(SELECT household_key, child FROM {GUARDIANSHIP_DISTRICTS} "
        f"WHERE district_key = {sql_string(district)})"
    )
    keys = f"(SELECT household_key FROM {pairs})"
    return f"""
SELECT c.household_key AS household_key, c.child AS child_ref,
       d.household_id AS household_id, d.present AS present
FROM (SELECT DISTINCT household_key, child FROM {pairs}) AS c
LEFT JOIN {ledger_sql._directory(keys)} AS d ON c.household_key = d.household_key
ORDER BY {ledger_sql._shown_id("d", "c.household_key")}, c.child LIMIT {int(limit)}
{ledger_sql._SETTINGS}"""


def pairs_sql(district: str, keys: list[str]) -> str:
    """``page_sql``'s columns (but the directory's) for the pairs of households ``keys``
    whose latest gap is in ``district`` (merged by GROUP BY: a few keys)."""
    literal = ", ".join(sql_string(k) for k in keys)
    return f"""
SELECT household_key, child AS child_ref, max(latest_gap) AS latest, latest.1 AS gap_us,
       latest.3 AS org_unit, groupUniqArrayArray(restores) AS all_restores,
       arrayFilter(x -> x >= gap_us, all_restores) AS later_restores,
       if(empty(later_restores), NULL, arrayMax(later_restores)) AS restored_us
FROM {GUARDIANSHIP_STATE} WHERE household_key IN ({literal})
GROUP BY household_key, child
HAVING gap_us != {BEFORE_ALL} AND startsWith(org_unit, {sql_string(district[:6])})"""


def _district_page(warehouse: Warehouse, district: str, limit: int, offset: int) -> list[Row]:
    """A page of the district's rows: candidates in page order, checked a few at a
    time (a later gap elsewhere moves a pair out) until the page is full or the
    candidates run out — exactly the ledger's slice."""

    def rows_of(candidates: list[Row]) -> dict[Hashable, Row]:
        keys = sorted({c["household_key"] for c in candidates})
        rows = warehouse.query(pairs_sql(district, keys)).dicts()
        return {(r["household_key"], r["child_ref"]): r for r in rows}

    return page_of_candidates(
        lambda n: warehouse.query(candidates_sql(district, n)).dicts(),
        rows_of, lambda c: (c["household_key"], c["child_ref"]), limit, offset)


def care_sql(keys: list[str] | None) -> str:
    """Care instants and latest follow-up of ``keys`` (None: every household).

    Keys are merged by GROUP BY, not FINAL: FINAL merges every row of the granules
    the keys touch (~half the table for 50 random keys) before filtering, GROUP BY
    only the rows of those keys (5× faster); the aggregates are the same."""
    if keys is None:
        return f"SELECT household_key, care, last_followup_us FROM {HOUSEHOLD_CARE} FINAL"
    return (
        "SELECT household_key, groupUniqArrayArray(care) AS care, "
        f"max(last_followup_us) AS last_followup_us FROM {HOUSEHOLD_CARE} "
        f"WHERE household_key IN ({', '.join(map(sql_string, keys))}) GROUP BY household_key"
    )


def rows(
    warehouse: Warehouse, now: int, district: str | None, limit: int | None, offset: int
) -> list[Row]:
    """``ledger_sql.guardianship``'s rows for ``now`` ≥ the latest instant in the data."""
    if district is not None and limit is not None:
        page = _district_page(warehouse, district, limit, offset)
    else:
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


__all__ = ["candidates_sql", "care_sql", "page_sql", "pairs_sql", "rows"]
