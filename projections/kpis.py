"""The dashboard's KPIs, computed in the warehouse (one SQL statement).

What ``app.services.Services.kpis`` used to compute in Python from every row of
the warning ledger: counts by level and status, escalations by the highest
level reached, the median time to acknowledge, repeat households, warnings
raised per ISO week and district, and the share of cases resolved locally —
for the warnings whose (raise's) org unit lies within the reader's org unit,
as known at ``as_of``. Only counts leave the warehouse: no household id, no
warning id, no unit below the reader's scope except the district keys of the
weekly trend (which are the reader's own district or the districts under a
city scope).

The per-warning facts are the warning ledger's own (``ledger_sql.warning_facts``
for a past ``as_of``, the pre-aggregate ``projections.now`` for now), so a KPI
can never disagree with the ledger it summarises; resolutions come from the
``case_resolutions`` copy of the case.resolved events.
"""

from __future__ import annotations

from typing import Any

from events.instants import MICROS_PER_DAY, format_instant
from events.orgunits import Level, level_of
from projections import ledger_common as lc
from projections import ledger_sql, reopened
from projections import now as now_path
from projections.schema import CASE_RESOLUTIONS, HOUSEHOLD_WARNINGS, NEVER
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

#: Digits of a code that its descendants share, by the code's level.
_PREFIX_DIGITS = {Level.CITY: 4, Level.DISTRICT: 6, Level.STREET: 9, Level.COMMUNITY: 12}
LOCAL_RESOLUTION = "resolved_locally"


def scope_prefix(org_unit: str) -> str:
    """The code prefix of everything within ``org_unit`` (``events.orgunits.is_within``)."""
    return org_unit[: _PREFIX_DIGITS[level_of(org_unit)]]


def _per_level(column: str) -> str:
    return ", ".join(
        f"sum(h.{column}_{level}) AS {column}_{level}" for level in lc.WARNING_LEVELS
    )


def _week(district: str, raised_us: str) -> str:
    """'<district>|<ISO year>-W<ISO week>' of a raise instant (the trend chart's key)."""
    at = f"fromUnixTimestamp64Micro({raised_us}, 'UTC')"
    return (
        f"concat({district}, '|', toString(toISOYear({at})), '-W', "
        f"leftPad(toString(toISOWeek({at})), 2, '0'))"
    )


def _counts() -> tuple[str, str]:
    per_level = ",\n    ".join(
        f"countIf(w_level = {sql_string(level)} AND cycle_ack_us IS NULL "
        "AND resolved_us IS NULL) "
        f"AS open_{level},\n    "
        f"countIf(w_level = {sql_string(level)} AND resolved_us IS NULL) AS unresolved_{level}"
        for level in lc.WARNING_LEVELS
    )
    escalated = ",\n    ".join(
        f"countIf(escalations > 0 AND w_highest = {sql_string(level)}) AS escalated_{level}"
        for level in lc.HANDLING_LEVELS
    )
    return per_level, escalated


def _cases(as_of: int, prefix: str) -> str:
    return f"""(
  SELECT count() AS cases_resolved,
         countIf(resolution = {sql_string(LOCAL_RESOLUTION)}) AS resolved_locally
  FROM {CASE_RESOLUTIONS} FINAL
  WHERE {_district_range(prefix)} AND startsWith(org_unit, {sql_string(prefix)})
    AND occurred_us <= {int(as_of)}
) AS c"""


def _facts_with_cycles(as_of: int, prefix: str) -> str:
    """``ledger_sql.warning_facts`` with ``cycle_ack_us``, the warnings ever reopened
    taken from their history (``projections.reopened``)."""
    columns = ", ".join(reopened.COLUMNS)
    return f"""(
    SELECT {columns} FROM (
      SELECT *, ack_us AS cycle_ack_us FROM {ledger_sql.warning_facts(as_of, prefix)}
      WHERE warning_id NOT IN {reopened.REOPENED_IDS})
    UNION ALL
    SELECT {columns} FROM {reopened.cycle_facts(as_of, prefix)}
  )"""


def kpis_sql(as_of: int, prefix: str, facts: str | None = None) -> str:
    """One row: the warning KPIs next to the local-resolution counts.

    The raw facts (a past ``as_of``) are expensive, so they are computed once and
    folded per household (repeat households need that grouping) then summed. The
    pre-aggregated facts (``facts``: ``projections.now.kpi_rows``, now) are read in
    one pass (``_now_sql``), with repeat households from their own pre-aggregate."""
    per_level, escalated = _counts()
    district = "concat(substring(w_org, 1, 6), '000000')"
    if facts is not None:
        return _now_sql(as_of, prefix, facts)
    return f"""
SELECT * EXCEPT (weekly) FROM (
  SELECT sum(h.n) AS warnings, {_per_level("open")}, {_per_level("unresolved")},
    {", ".join(f"sum(h.escalated_{lv}) AS escalated_{lv}" for lv in lc.HANDLING_LEVELS)},
    countIf(h.n > 1) AS repeat_households,
    sum(h.acks) AS acks,
    quantileExactLowArray(0.5)(h.ack_delays) AS ack_low,
    quantileExactHighArray(0.5)(h.ack_delays) AS ack_high,
    sumMap(h.weeks, arrayMap(x -> toUInt64(1), h.weeks)) AS weekly,
    tupleElement(weekly, 1) AS weekly_keys, tupleElement(weekly, 2) AS weekly_counts
  FROM (
    SELECT w_key, count() AS n,
    {per_level},
    {escalated},
    countIf(ack_us IS NOT NULL) AS acks,
    groupArrayIf(assumeNotNull(ack_us) - raised_us, ack_us IS NOT NULL) AS ack_delays,
    groupArray({_week(district, "raised_us")}) AS weeks
    FROM {_facts_with_cycles(as_of, prefix)}
    GROUP BY w_key
  ) AS h
) AS k
CROSS JOIN {_cases(as_of, prefix)}"""


def iso_week_index(micros: str) -> str:
    """SQL: the number of the ISO week (Monday to Sunday, UTC) holding the instant
    ``micros``, counted from the week of Monday 1969-12-29 (floor division: earlier
    instants too) — cheaper to group by than the label."""
    week, shifted = 7 * MICROS_PER_DAY, f"({micros} + {3 * MICROS_PER_DAY})"
    return f"intDiv({shifted} - if({shifted} < 0, {week - 1}, 0), {week})"


def iso_week_label(index: str) -> str:
    """SQL: '<ISO year>-W<ISO week>' of an ``iso_week_index`` (``_week``'s label)."""
    monday = f"addDays(toDate32('1970-01-01'), {index} * 7 - 3)"
    return (
        f"concat(toString(toISOYear({monday})), '-W', "
        f"leftPad(toString(toISOWeek({monday})), 2, '0'))"
    )


def _now_sql(as_of: int, prefix: str, rows: str) -> str:
    """The KPIs over per-warning rows of numbers (``projections.now.kpi_rows``) in one
    pass: counters per (district, ISO week) — also the weekly trend — summed, the
    median from merged quantile states. Repeat households are read from the
    ``household_warnings`` pre-aggregate (one index range of the scope)."""
    never = NEVER
    counters = [
        *(
            (f"open_{lv}", f"k_level = {i} AND k_ack = {never} AND k_resolved = {never}")
            for i, lv in enumerate(lc.WARNING_LEVELS, start=1)
        ),
        *(
            (f"unresolved_{lv}", f"k_level = {i} AND k_resolved = {never}")
            for i, lv in enumerate(lc.WARNING_LEVELS, start=1)
        ),
        *(
            (f"escalated_{lv}", f"k_esc_rank = {i}")
            for i, lv in enumerate(lc.HANDLING_LEVELS, start=1)
        ),
        ("acks", f"k_ack != {never}"),
    ]
    delay = f"k_ack - raised_us, k_ack != {never}"
    week = f"concat(substring(g_district, 1, 6), '000000', '|', {iso_week_label('g_week')})"
    return f"""
SELECT * FROM (
  SELECT sum(n) AS warnings, {", ".join(f"sum({name}) AS {name}" for name, _ in counters)},
    quantileExactLowIfMerge(0.5)(q_low) AS ack_low,
    quantileExactHighIfMerge(0.5)(q_high) AS ack_high,
    groupArray({week}) AS weekly_keys, groupArray(n) AS weekly_counts
  FROM (
    SELECT k_district AS g_district, {iso_week_index("raised_us")} AS g_week,
      count() AS n, {", ".join(f"countIf({cond}) AS {name}" for name, cond in counters)},
      quantileExactLowIfState(0.5)({delay}) AS q_low,
      quantileExactHighIfState(0.5)({delay}) AS q_high
    FROM {rows}
    GROUP BY g_district, g_week
  )
) AS k
CROSS JOIN (
  SELECT countIf(first_warning != last_warning) AS repeat_households
  FROM {HOUSEHOLD_WARNINGS} FINAL WHERE scope_key = {sql_string(prefix)}
) AS r
CROSS JOIN {_cases(as_of, prefix)}
{_FINAL_SETTINGS}"""


#: FINAL over overlapping parts (a replay's, or live inserts not yet merged) by default
#: splits the key ranges into layers to merge them in parallel; on these small tables
#: on two cores the split tends to cost more than it saves (city KPIs with unmerged
#: parts, old and new alternating in one process, five runs on a loaded machine: 0 to
#: −35% at p50, never slower). Exact either way: only how the merge is scheduled changes.
_FINAL_SETTINGS = "SETTINGS split_intersecting_parts_ranges_into_layers_final = 0"


def _district_range(prefix: str) -> str:
    """The index range of the scope's district in ``case_resolutions`` (a city: all)."""
    if len(prefix) < 6:
        return "1"
    return f"district_key = {sql_string(prefix[:6] + '000000')}"


def _correct_for_reopened(warehouse: Warehouse, row: Row, now: int, prefix: str) -> None:
    """The pre-aggregates count a reopened warning by its first acknowledgement and
    resolution; move it to the counters of its current cycle (``projections.reopened``).
    Only the open and unresolved counters differ: the time to acknowledge measures the
    first answer, and escalations count over all cycles, in both."""
    if not warehouse.query(reopened.ANY_REOPENED).rows:  # the usual case: ~2 ms, not ~20
        return
    for r in warehouse.query(reopened.kpi_corrections_sql(now, prefix)).dicts():
        level = r["level"]
        if level in lc.WARNING_LEVELS:
            row[f"open_{level}"] = int(row.get(f"open_{level}") or 0) + int(r["d_open"])
            row[f"unresolved_{level}"] = (
                int(row.get(f"unresolved_{level}") or 0) + int(r["d_unresolved"]))


def _median_minutes(row: Row) -> float | None:
    """``statistics.median`` of the per-warning minutes: the two middle delays (equal
    for an odd count), each rounded like the ledger's ``minutes_to_acknowledge``."""
    if not row["acks"]:
        return None
    low = lc.minutes_between(0, int(row["ack_low"]))
    high = lc.minutes_between(0, int(row["ack_high"]))
    assert low is not None and high is not None
    return low if row["acks"] % 2 else (low + high) / 2


def _weekly(keys: list[str], counts: list[int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, n in zip(keys, counts, strict=True):
        district, week = key.split("|", 1)
        out.setdefault(district, {})[week] = int(n)
    return {d: dict(sorted(weeks.items())) for d, weeks in sorted(out.items())}


def kpis(warehouse: Warehouse, scope_org_unit: str, as_of: int | None) -> Row:
    """The KPIs for a reader whose scope is ``scope_org_unit``, as known at ``as_of``
    (None: everything in the warehouse). Same keys and values as the Python
    computation over the warning ledger that ``Services.kpis`` did."""
    prefix = scope_prefix(scope_org_unit)
    now, orphans = now_path.resolve(warehouse, as_of)
    facts = None if orphans is None else now_path.kpi_rows(prefix, orphans)
    row: Row = {} if now is None else warehouse.query(kpis_sql(now, prefix, facts)).dicts()[0]
    if facts is not None and now is not None and row:
        _correct_for_reopened(warehouse, row, now, prefix)
    levels = lc.WARNING_LEVELS
    weekly_keys, weekly_counts = row.get("weekly_keys") or [], row.get("weekly_counts") or []
    cases = int(row.get("cases_resolved") or 0)
    return {
        "scope": scope_org_unit,
        "as_of": format_instant(as_of) if as_of is not None else None,
        "warnings": int(row.get("warnings") or 0),
        "open_by_level": {lv: int(row.get(f"open_{lv}") or 0) for lv in levels},
        "unresolved_by_level": {lv: int(row.get(f"unresolved_{lv}") or 0) for lv in levels},
        "escalated_to": {
            lv: int(row[f"escalated_{lv}"])
            for lv in lc.HANDLING_LEVELS
            if row.get(f"escalated_{lv}")
        },
        "median_minutes_to_acknowledge": _median_minutes(row) if row else None,
        "repeat_households": int(row.get("repeat_households") or 0),
        "weekly_raised_by_district": _weekly(list(weekly_keys), list(weekly_counts)),
        "cases_resolved": cases,
        "share_resolved_locally": round(int(row["resolved_locally"]) / cases, 4)
        if cases
        else None,
    }


__all__ = ["iso_week_index", "iso_week_label", "kpis", "kpis_sql", "scope_prefix"]
