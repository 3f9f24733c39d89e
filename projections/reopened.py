"""Reopened warnings in every count of open warnings.

The v1 sources of a warning's status cannot tell a reopened warning's: ``lifecycle``
keeps one row per (warning, type, to_level), so a second acknowledgement or
resolution replaces the first, and the pre-aggregates keep the *first*
acknowledgement and resolution, which a reopening undoes. So each count of open or
unresolved warnings (the KPIs, the household ledger's ``open_warnings``) takes the
few warnings ever reopened (``schema.WARNING_FOLLOWUPS``) from their complete history
in ``warning_transitions`` — instead of their usual rows, or, for the KPIs' numeric
pre-aggregate (whose city-wide read must not touch a string column), as a correction
of its counters (``kpi_corrections_sql``) — with the semantics of the warning ledger
(``projections.followups``, ``reference.warning_ledger``), as of T:

* ``ack_us``: the first acknowledgement ≤ T (time to acknowledge measures the
  answer to the raise; a reopening does not undo it);
* ``first_resolved_us``: the first resolution ≤ T (what the pre-aggregates keep);
* ``cycle_ack_us`` / ``resolved_us``: the acknowledgement / resolution of the
  current cycle — the records after the latest reopening ≤ T (log order); NULL
  when the cycle has none, so the warning is open or acknowledged again;
* escalations and the highest handling level reached, over all cycles.

"Ever reopened" is decided on the whole warehouse, not as of T: a warning reopened
after T has, in ``lifecycle``, rows of its second cycle that replaced those of its
first, so even its status before the reopening must come from its history.
"""

from __future__ import annotations

from projections import ledger_common as lc
from projections.schema import NEVER, WARNING_FOLLOWUPS, WARNING_TRANSITIONS
from projections.warehouse.rows import sql_string

REOPENED = "warning.reopened"
_HANDLING = "['community', 'street', 'district', 'city']"
_SEVERITY = "['yellow', 'orange', 'red']"

#: The ids of every warning ever reopened (a small keyed table).
REOPENED_IDS = f"(SELECT warning_id FROM {WARNING_FOLLOWUPS} WHERE first_reopen_us != {NEVER})"

#: One row when any warning was ever reopened, none otherwise.
ANY_REOPENED = f"SELECT 1 FROM {WARNING_FOLLOWUPS} WHERE first_reopen_us != {NEVER} LIMIT 1"

#: The columns ``cycle_facts`` gives, in the order a UNION with v1 facts needs.
COLUMNS = (
    "warning_id", "w_key", "w_level", "w_org", "raised_us", "ack_us", "cycle_ack_us",
    "resolved_us", "escalations", "w_highest",
)


def cycle_facts(as_of: int, prefix: str | None = None, keys: str | None = None) -> str:
    """Per warning ever reopened and raised ≤ ``as_of``, whose raise's org unit starts
    with ``prefix`` and whose household is in ``keys`` (a subquery or literal set;
    None: any): ``COLUMNS`` as of ``as_of``."""
    t = int(as_of)
    raised, ack = sql_string(lc.RAISED), sql_string(lc.ACKNOWLEDGED)
    resolved, esc = sql_string(lc.RESOLVED), sql_string(lc.ESCALATED)
    reopened = sql_string(REOPENED)
    having = [f"countIf(type = {raised}) > 0"]
    if prefix:
        having.append(f"startsWith(ifNull(w_org, ''), {sql_string(prefix)})")
    if keys is not None:
        having.append(f"w_key IN {keys}")
    return f"""(
  SELECT warning_id,
    anyIf(household_key, type = {raised}) AS w_key,
    anyIf(level, type = {raised}) AS w_level,
    anyIf(org_unit, type = {raised}) AS w_org,
    minIf(us, type = {raised}) AS raised_us,
    minIfOrNull(us, type = {ack}) AS ack_us,
    minIfOrNull(us, type = {resolved}) AS first_resolved_us,
    maxIf(seq, type = {reopened}) AS c_last_reopen,
    arrayFilter(x -> x.1 > c_last_reopen, groupArrayIf((seq, us), type = {ack})) AS c_acks,
    if(empty(c_acks), NULL, arraySort(c_acks)[1].2) AS cycle_ack_us,
    arrayFilter(x -> x.1 > c_last_reopen, groupArrayIf((seq, us), type = {resolved}))
      AS c_resolves,
    if(empty(c_resolves), NULL, arraySort(c_resolves)[-1].2) AS resolved_us,
    countIf(type = {esc}) AS escalations,
    {_HANDLING}[greatest(
      maxIf(indexOf({_HANDLING}, ifNull(handling_level, '')), type = {raised}),
      maxIf(indexOf({_HANDLING}, ifNull(to_level, '')), type = {esc}))] AS w_highest
  FROM (
    SELECT *, toUnixTimestamp64Micro(at) AS us FROM {WARNING_TRANSITIONS} FINAL
    WHERE warning_id IN {REOPENED_IDS} AND toUnixTimestamp64Micro(at) <= {t})
  GROUP BY warning_id
  HAVING {" AND ".join(having)}
)"""


def kpi_corrections_sql(now: int, prefix: str) -> str:
    """Per level, what the KPIs' open and unresolved counters must gain (or lose) for
    the reopened warnings under ``prefix`` now: their current cycle's status minus the
    status their first acknowledgement and first resolution give (what the numeric
    pre-aggregate counted)."""
    return f"""
SELECT ifNull(w_level, '') AS level,
  toInt64(countIf(cycle_ack_us IS NULL AND resolved_us IS NULL))
    - toInt64(countIf(ack_us IS NULL AND first_resolved_us IS NULL)) AS d_open,
  toInt64(countIf(resolved_us IS NULL)) - toInt64(countIf(first_resolved_us IS NULL))
    AS d_unresolved
FROM {cycle_facts(now, prefix)}
GROUP BY level"""


def open_of_households(as_of: int, keys: str | None = None) -> str:
    """Per reopened warning open ≤ ``as_of`` (its cycle not resolved), of a household in
    ``keys``: (warning_id, o_key, o_severity) — the household ledger's open-warning rows."""
    return f"""(
  SELECT warning_id, w_key AS o_key,
    indexOf({_SEVERITY}, ifNull(w_level, '')) AS o_severity
  FROM {cycle_facts(as_of, keys=keys)}
  WHERE resolved_us IS NULL
)"""


__all__ = [
    "ANY_REOPENED", "COLUMNS", "REOPENED_IDS", "cycle_facts", "kpi_corrections_sql",
    "open_of_households",
]
