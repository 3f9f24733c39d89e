"""The "now" read path: per-warning facts from the ``warning_state`` pre-aggregate.

A dashboard mostly asks "what is the state now". Then no record is cut off by
``as_of``, so the per-warning facts the ledger and the KPIs need are exactly the
aggregate the materialized view keeps (``schema.WARNING_STATE_AGGREGATE``):
reading it costs one index range per district instead of grouping every
lifecycle row. A past ``as_of`` ("what did the district know at T") keeps the
raw path (``ledger_sql.warning_facts``), which is exact for any instant.

"Now" means ``as_of`` is None or not before the latest instant in the data:
such an ``as_of`` cuts nothing off either, so the result is the same.

Exactness of the fast path — the facts must equal ``ledger_sql.warning_facts``:

* FINAL merges each (district, warning)'s rows; every aggregate is idempotent
  (min / max / set union), so re-sent rows change nothing, like FINAL on the
  raw table.
* A transition written while its raise was unknown has district '' and would
  stay apart under FINAL; when any such row exists the facts are grouped by
  warning_id instead (slower, still exact). Normally there are none: the sink
  writes a raise before its transitions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from events.instants import MICROS_PER_DAY
from projections import ledger_common as lc
from projections import ledger_sql, reopened
from projections.schema import (
    BEFORE_ALL,
    HOUSEHOLD_BY_KEY,
    HOUSEHOLD_OWNER,
    HOUSEHOLD_STATE,
    NEVER,
    WARNING_KPIS,
    WARNING_STATE,
)
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

_HANDLING = "['community', 'street', 'district', 'city']"
_SEVERITY = "['yellow', 'orange', 'red']"


def latest_instant(warehouse: Warehouse) -> int | None:
    """The largest occurred_at / at in the warehouse (None when empty)."""
    bounds = [v for v in warehouse.query(ledger_sql.data_bounds()).rows[0] if v is not None]
    return max(bounds) if bounds else None


def has_orphans(warehouse: Warehouse) -> bool:
    """Transitions kept without their warning's district (see module doc)."""
    sql = f"SELECT count() FROM {WARNING_STATE} WHERE district_key = ''"
    return bool(warehouse.query(sql).rows[0][0])


def _districts(prefix: str | None) -> str:
    """The index range of a scope: its district (a city or None: every district)."""
    if prefix is None or len(prefix) < 6:
        return "1"
    return f"district_key = {sql_string(prefix[:6] + '000000')}"


def warning_facts(
    prefix: str | None, orphans: bool, page: str = "", warning_id: str | None = None
) -> str:
    """``ledger_sql.warning_facts`` for now, from the pre-aggregate (same columns).

    ``page`` (``ledger_sql.page``): only the warnings of that page of the ledger
    order — their ids are picked from the two sort columns first, so the other
    columns are read and computed for a page, not for the whole district.
    ``warning_id``: that warning only, its rows of every district ('' orphans
    included) merged — a few granules: the id is the key's second column, and
    each district's range is sorted by it."""
    districts = _districts(prefix)
    scope = "" if prefix is None else f" AND startsWith(org_unit, {sql_string(prefix)})"
    if page and not orphans:
        districts += f""" AND warning_id IN (
    SELECT warning_id FROM {WARNING_STATE} FINAL
    WHERE {districts} AND raised_us != {NEVER}{scope}
    ORDER BY raised_us, warning_id{page})"""
    rows = f"({districts}) OR district_key = ''"
    if warning_id is not None:
        rows, orphans = f"warning_id = {sql_string(warning_id)}", True
    if orphans:
        source = f"""(
    SELECT warning_id, min(raised_us) AS raised_us, min(ack_us) AS ack_us,
      min(resolved_us) AS resolved_us, max(rule_id) AS rule_id, max(level) AS level,
      max(household_key) AS household_key, max(org_unit) AS org_unit,
      max(raised_handling) AS raised_handling, max(raised_handling_org) AS raised_handling_org,
      groupUniqArrayArray(esc_levels) AS esc_levels, max(latest_esc) AS latest_esc
    FROM {WARNING_STATE} WHERE {rows}
    GROUP BY warning_id)"""
    else:
        source = f"(SELECT * FROM {WARNING_STATE} FINAL WHERE {districts})"
    return f"""(
  SELECT warning_id, nullIf(rule_id, '') AS w_rule, nullIf(level, '') AS w_level,
    household_key AS w_key, nullIf(org_unit, '') AS w_org, raised_us,
    if(ack_us = {NEVER}, NULL, ack_us) AS ack_us,
    if(resolved_us = {NEVER}, NULL, resolved_us) AS resolved_us,
    length(esc_levels) AS escalations,
    if(escalations > 0, nullIf(latest_esc.3, ''), nullIf(raised_handling, '')) AS w_handling,
    if(escalations > 0, nullIf(latest_esc.4, ''), nullIf(raised_handling_org, ''))
      AS w_handling_org,
    {_HANDLING}[greatest(indexOf({_HANDLING}, raised_handling),
                         arrayMax(arrayMap(x -> indexOf({_HANDLING}, x),
                                           arrayPushBack(esc_levels, ''))))] AS w_highest
  FROM {source}
  WHERE raised_us != {NEVER}{scope}
)"""


def kpi_rows(prefix: str, orphans: bool) -> str:
    """Per warning under ``prefix``, what the KPIs count, as numbers: ``k_district``
    (its first six digits are the org unit's; one value per district), ``raised_us``,
    ``k_ack`` / ``k_resolved`` (the first acknowledgement and resolution; NEVER: not
    yet), ``k_level`` (rank of its level in the severity order, 0: none) and
    ``k_esc_rank`` (rank of its highest handling level if escalated, else 0). A
    reopened warning's open counts are corrected apart (``reopened.kpi_corrections``).

    A city or district scope without orphan rows reads the numeric ``warning_kpis``
    pre-aggregate (its district key carries the org unit's first six digits);
    otherwise the rows are ``warning_facts``' converted (strings and arrays merged:
    ~4× slower over all warnings)."""
    if not orphans and len(prefix) <= 6:
        scope = (
            _districts(prefix)
            if len(prefix) == 6
            else f"startsWith(district_key, {sql_string(prefix)})"
        )
        return f"""(
  SELECT district_key AS k_district, raised_us, ack_us AS k_ack,
    resolved_us AS k_resolved, level_rank AS k_level,
    if(escalated = 1, highest_rank, 0) AS k_esc_rank
  FROM {WARNING_KPIS} FINAL
  WHERE {scope} AND raised_us != {NEVER}
)"""
    return f"""(
  SELECT substring(w_org, 1, 6) AS k_district, raised_us, ifNull(ack_us, {NEVER}) AS k_ack,
    ifNull(resolved_us, {NEVER}) AS k_resolved,
    indexOf({_SEVERITY}, ifNull(w_level, '')) AS k_level,
    if(escalations > 0, indexOf({_HANDLING}, ifNull(w_highest, '')), 0) AS k_esc_rank
  FROM {warning_facts(prefix, orphans)}
)"""


def _instant_or_null(column: str) -> str:
    return f"if({column} = {BEFORE_ALL}, NULL, {column})"


def _owners(keys: str | None) -> str:
    """Per household of ``keys`` (None: all), its ownership columns (``h_org``,
    ``h_registered``, ``h_flags``, ``h_last_screening``: ``ledger_sql.ownership``)
    folded from the ``household_owner`` pre-aggregate."""
    scope = "" if keys is None else f" WHERE household_key IN {keys}"
    return f"""(
  SELECT household_key, {ledger_sql.ownership("first.2", "moves", "visits")}
  FROM (
    SELECT household_key, min(first) AS first, groupUniqArrayArray(moves) AS moves,
      groupUniqArrayArray(visits) AS visits
    FROM {HOUSEHOLD_OWNER}{scope}
    GROUP BY household_key)
)"""


def _district_households(district: str) -> str:
    """Households with an event in ``district`` or moved there (one index range;
    repeats allowed): every household the district may own."""
    return (
        f"(SELECT household_key FROM {HOUSEHOLD_STATE} WHERE district_key = {sql_string(district)})"
    )


def household_page_sql(district: str | None, page: str) -> str:
    """The household keys of a page of the ledger order (household_id shown), read
    from the two columns that decide it — the owner (folded for a district's
    candidates) and the directory — so the page's other columns are computed for its
    keys only."""
    keys = None if district is None else _district_households(district)
    households = f"(SELECT DISTINCT household_key FROM {HOUSEHOLD_STATE})"
    if keys is not None and district is not None:
        households = f"""(
  SELECT household_key FROM {_owners(keys)}
  WHERE startsWith(h_org, {sql_string(district[:6])}))"""
    return f"""
SELECT h.household_key AS household_key
FROM {households} AS h
LEFT JOIN {ledger_sql._directory(keys)} AS d ON h.household_key = d.household_key
ORDER BY {ledger_sql._shown_id("d", "h.household_key")}{page}
{ledger_sql._SETTINGS}"""


def _open_warnings_of(now: int, keys: str) -> str:
    """Open warnings per household of the literal key set ``keys``: the raises of
    those households first (a column scan), then every row of those warnings,
    whatever their district ('' orphans included), merged by warning_id; the ever
    reopened ones from their history (``projections.reopened``)."""
    return f"""(
  SELECT o_key AS household_key, count() AS open_warnings, max(o_severity) AS severity
  FROM (
    SELECT warning_id, w_key AS o_key, indexOf({_SEVERITY}, w_level) AS o_severity
    FROM (
      SELECT warning_id, max(household_key) AS w_key, max(level) AS w_level,
             min(raised_us) AS raised, min(resolved_us) AS resolved
      FROM {WARNING_STATE}
      WHERE warning_id IN (
        SELECT warning_id FROM {WARNING_STATE} WHERE household_key IN {keys})
        AND warning_id NOT IN {reopened.REOPENED_IDS}
      GROUP BY warning_id)
    WHERE raised != {NEVER} AND resolved = {NEVER}
    UNION ALL
    SELECT * FROM {reopened.open_of_households(now, keys)}
  )
  GROUP BY o_key
)"""


def household_sources(
    now: int, district: str | None, orphans: bool, page_keys: list[str] | None = None
) -> tuple[str, str, str | None]:
    """(household facts, open warnings, directory keys) for ``ledger_sql.households``.

    A district's households are those with an event there or moved there (one index
    range of ``household_state``); their rows of other districts are merged in, and
    their owner (``household_owner``) decides — exactly the raw ledger's rule.
    ``page_keys``: just these households (a page picked by ``household_page_sql``;
    not empty)."""
    windows = ", ".join(
        f"length(arrayFilter(p -> p.1 >= {now - days * MICROS_PER_DAY}, m.petitions)) "
        f"AS petitions_{days}d"
        for days in lc.PETITION_WINDOWS_DAYS
    )
    keys: str | None = None
    scope = ""
    if page_keys is not None:
        keys = "(" + ", ".join(sql_string(k) for k in page_keys) + ")"
        scope = f" WHERE household_key IN {keys}"
    elif district is not None:
        keys = _district_households(district)
        scope = f" WHERE household_key IN {keys}"
    merged = f"""(
    SELECT household_key, max(latest) AS latest, min(first_us) AS first_us,
      max(last_visit_us) AS last_visit_us, max(last_followup_us) AS last_followup_us,
      groupUniqArrayArray(indicators) AS indicators, groupUniqArrayArray(petitions) AS petitions
    FROM {HOUSEHOLD_STATE}{scope}
    GROUP BY household_key)"""
    in_district = (
        "" if district is None else f" WHERE startsWith(o.h_org, {sql_string(district[:6])})"
    )
    facts = f"""(
  SELECT m.household_key AS household_key, o.h_org AS h_org,
    o.h_registered AS h_registered, o.h_flags AS h_flags,
    o.h_last_screening AS h_last_screening, arraySort(m.indicators) AS h_indicators,
    {_instant_or_null("m.last_visit_us")} AS last_visit_us,
    {_instant_or_null("m.last_followup_us")} AS last_followup_us,
    {windows}, m.first_us AS first_seen_us
  FROM {merged} AS m
  INNER JOIN {_owners(keys)} AS o ON m.household_key = o.household_key{in_district}
)"""
    if page_keys is not None and keys is not None:
        return facts, _open_warnings_of(now, keys), keys
    open_scope = "" if keys is None else f" AND w_key IN {keys}"
    open_warnings = f"""(
  SELECT o_key AS household_key, count() AS open_warnings, max(o_severity) AS severity
  FROM (
    SELECT warning_id, w_key AS o_key, indexOf({_SEVERITY}, ifNull(w_level, '')) AS o_severity
    FROM {warning_facts(None, orphans)}
    WHERE resolved_us IS NULL AND warning_id NOT IN {reopened.REOPENED_IDS}{open_scope}
    UNION ALL
    SELECT * FROM {reopened.open_of_households(now, keys)}
  )
  GROUP BY o_key
)"""
    return facts, open_warnings, keys


def household_candidates_sql(district: str, limit: int) -> str:
    """The first ``limit`` households with an event in ``district`` (one index range of
    ``household_state``) in ledger order — by the household_id shown — with their
    directory row (household_key, household_id, present). A superset of the
    district's ledger in the same order: whether each one's latest event is in
    ``district`` is checked for these few only (``household_rows_sql``)."""
    keys = _district_households(district)
    return f"""
SELECT c.household_key AS household_key, d.household_id AS household_id, d.present AS present
FROM (SELECT DISTINCT household_key FROM {keys}) AS c
LEFT JOIN {ledger_sql._directory(keys)} AS d ON c.household_key = d.household_key
ORDER BY {ledger_sql._shown_id("d", "c.household_key")} LIMIT {int(limit)}
{ledger_sql._SETTINGS}"""


def household_rows_sql(now: int, district: str | None, keys: list[str]) -> str:
    """The household ledger's columns (but the directory's) for the households
    ``keys`` (not empty) whose owner is in ``district``: their rows of every
    district merged by key in ``household_by_key``, and their open warnings."""
    literal = "(" + ", ".join(sql_string(k) for k in keys) + ")"
    windows = ", ".join(
        f"length(arrayFilter(p -> p.1 >= {now - days * MICROS_PER_DAY}, all_petitions)) "
        f"AS petitions_{days}d"
        for days in lc.PETITION_WINDOWS_DAYS
    )
    in_district = (
        "" if district is None else f" WHERE startsWith(w.h_org, {sql_string(district[:6])})"
    )
    return f"""
SELECT h.household_key AS household_key, w.h_org AS org_unit, h.h_indicators AS indicators,
  h.last_visit_us AS last_visit_us, h.last_followup_us AS last_followup_us,
  {", ".join(f"h.petitions_{n}d AS petitions_{n}d" for n in lc.PETITION_WINDOWS_DAYS)},
  h.first_seen_us AS first_seen_us, w.h_registered AS registered, w.h_flags AS flags,
  w.h_last_screening AS last_screening_us,
  o.open_warnings AS open_warnings, o.severity AS severity
FROM (
  SELECT household_key,
    arraySort(groupUniqArrayArray(indicators)) AS h_indicators,
    {_instant_or_null("max(last_visit_us)")} AS last_visit_us,
    {_instant_or_null("max(last_followup_us)")} AS last_followup_us,
    groupUniqArrayArray(petitions) AS all_petitions, {windows}, min(first_us) AS first_seen_us
  FROM {HOUSEHOLD_BY_KEY} WHERE household_key IN {literal}
  GROUP BY household_key
) AS h
INNER JOIN {_owners(literal)} AS w ON h.household_key = w.household_key
LEFT JOIN {_open_warnings_of(now, literal)} AS o ON h.household_key = o.household_key{in_district}
{ledger_sql._SETTINGS}"""


def household_page(
    warehouse: Warehouse, now: int, district: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """A page of the district's household ledger "now": ``ledger_sql.households``' rows.

    Candidates come in ledger order from the district's index range; the first few
    are checked (their latest event may lie in another district) until the page is
    full or the candidates run out, so the result is exactly the ledger's slice."""

    def rows_of(candidates: list[Row]) -> dict[Hashable, Row]:
        keys = [c["household_key"] for c in candidates]
        rows = warehouse.query(household_rows_sql(now, district, keys)).dicts()
        return {r["household_key"]: r for r in rows}

    return page_of_candidates(
        lambda n: warehouse.query(household_candidates_sql(district, n)).dicts(),
        rows_of, lambda c: c["household_key"], limit, offset)


def page_of_candidates(
    candidates_of: Callable[[int], list[Row]],
    rows_of: Callable[[list[Row]], dict[Hashable, Row]],
    key_of: Callable[[Row], Hashable],
    limit: int,
    offset: int,
) -> list[Row]:
    """Rows ``[offset, offset + limit)`` of a district page "now", exactly.

    ``candidates_of(n)`` gives the first ``n`` candidates in ledger order (entities
    with an event or gap in the district); ``rows_of`` keeps those whose latest state
    still lies in the district, as their rows by ``key_of``. Some candidates moved
    away, so when the page is short and more candidates exist, read four times as
    many and check again."""
    want = offset + limit
    if limit == 0:
        return []
    n = want + want // 2 + 8  # a margin for candidates that moved away
    while True:
        candidates = candidates_of(n)
        if not candidates:
            return []
        found = rows_of(candidates)
        rows = [{**c, **found[key]} for c in candidates if (key := key_of(c)) in found]
        if len(rows) >= want or len(candidates) < n:
            return rows[offset:want]
        n *= 4


def resolve(warehouse: Warehouse, as_of: int | None) -> tuple[int | None, bool | None]:
    """(the ledgers' "now", whether the pre-aggregates serve it — then the value says
    whether orphan rows need the slower merge; None: use the raw path). The
    pre-aggregates serve only an ``as_of`` that cuts nothing off."""
    latest = latest_instant(warehouse)
    now = as_of if as_of is not None else latest
    if latest is None or now is None or now < latest:
        return now, None
    return now, has_orphans(warehouse)


__all__ = [
    "has_orphans",
    "household_candidates_sql",
    "household_page",
    "household_page_sql",
    "household_rows_sql",
    "household_sources",
    "kpi_rows",
    "latest_instant",
    "resolve",
    "warning_facts",
]
