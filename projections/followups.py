"""What happened to a warning after its raise beyond v1: assessments (研判) and reopenings.

The warning ledger's v1 columns come from ``lifecycle`` (raw, or the pre-aggregates
for now). That table keeps one row per (warning, type, to_level), so a reopened
warning's second acknowledgement, resolution or escalation replaces its first; the
complete history is ``warning_transitions`` (``projections.schema``). This module
reads it for the few warnings that were assessed or reopened and gives, as of T:

* ``risk``: the last assessment's risk (by log order), None if never assessed;
* ``reopened``: how many ``warning.reopened`` records;

and, for a warning reopened at any time (its v1 columns may be built from replaced
rows), all of its transition columns again, with the reopen honoured:

* ``acknowledged_at``: the first acknowledgement (time to acknowledge measures the
  answer to the raise; a reopening does not undo it);
* status and ``resolved_at`` belong to the current cycle — the records after the
  latest reopen ≤ T: resolved if a resolution follows it (then ``resolved_at`` is
  that one), acknowledged if an acknowledgement does, else open;
* handling level and unit: the latest (by log order) of the raise, its escalations
  and its reopenings (a reopening puts it back at community, at the owner);
* escalations (count) and the highest handling level reached, over all cycles.

``reference.warning_ledger`` states the same in Python. The patch is applied to
ledger rows by ``patch``; the SQL groups only the assessed or reopened warnings
(a page's, or all of them for a whole ledger).
"""

from __future__ import annotations

from typing import Any

from privacy.pseudonym import erased_label
from projections import ledger_common as lc
from projections import ledger_sql
from projections.referrals import SENT
from projections.schema import (
    DIRECTORY,
    NEVER,
    REFERRAL_RECORDS,
    WARNING_FOLLOWUPS,
    WARNING_TRANSITIONS,
)
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

ASSESSED = "warning.assessed"
REOPENED = "warning.reopened"
#: The most ids a page's lookup names literally; a longer ledger reads every
#: assessed or reopened warning instead.
_LITERAL_IDS = 2000
#: "Now" for the keyed reads (a warning's row): later than any record.
END_OF_TIME = 1 << 62


def facts_sql(as_of: int, warning_ids: list[str] | None = None) -> str:
    """Per warning with an assessment or a reopening (among ``warning_ids``, None: all):
    the columns ``patch`` reads, from its records ≤ as_of."""
    t = int(as_of)
    ack, resolved = sql_string(lc.ACKNOWLEDGED), sql_string(lc.RESOLVED)
    assessed, reopened = sql_string(ASSESSED), sql_string(REOPENED)
    raised, esc = sql_string(lc.RAISED), sql_string(lc.ESCALATED)
    followed = (
        f"(SELECT warning_id FROM {WARNING_TRANSITIONS} WHERE type IN ({assessed}, {reopened}))"
    )
    # A page's ids are read by the primary key, and the few followed up kept after
    # grouping; a whole ledger first finds the followed-up warnings (one column scan).
    scope, having = f"warning_id IN {followed}", ""
    if warning_ids is not None:
        scope = "warning_id IN (" + ", ".join(sql_string(w) for w in warning_ids) + ")"
        having = f"\nHAVING countIf(type IN ({assessed}, {reopened})) > 0"
    handling = "['community', 'street', 'district', 'city']"
    return f"""
SELECT warning_id,
  argMaxIf(risk, seq, type = {assessed} AND us <= {t}) AS f_risk,
  countIf(type = {assessed} AND us <= {t}) AS f_assessments,
  countIf(type = {reopened} AND us <= {t}) AS f_reopened,
  countIf(type = {reopened}) AS f_reopened_ever,
  maxIf(seq, type = {reopened} AND us <= {t}) AS f_last_reopen,
  minIfOrNull(us, type = {ack} AND us <= {t}) AS f_first_ack,
  notEmpty(arrayFilter(s -> s > f_last_reopen,
    groupArrayIf(seq, type = {ack} AND us <= {t}))) AS f_cycle_acked,
  arrayFilter(x -> x.1 > f_last_reopen,
    groupArrayIf((seq, us), type = {resolved} AND us <= {t})) AS f_resolves,
  if(empty(f_resolves), NULL, arraySort(f_resolves)[-1].2) AS f_cycle_resolved,
  countIf(type = {esc} AND us <= {t}) AS f_escalations,
  argMaxIf((if(type = {reopened}, 'community',
                if(type = {esc}, ifNull(to_level, ''), ifNull(handling_level, ''))),
            ifNull(handling_org_unit, '')),
           seq, type IN ({raised}, {esc}, {reopened}) AND us <= {t}) AS f_handling,
  f_handling.1 AS f_handling_level, f_handling.2 AS f_handling_org,
  {handling}[greatest(
    maxIf(indexOf({handling}, ifNull(handling_level, '')), type = {raised} AND us <= {t}),
    maxIf(indexOf({handling}, ifNull(to_level, '')), type = {esc} AND us <= {t}))]
    AS f_highest
FROM (
  SELECT *, toUnixTimestamp64Micro(at) AS us FROM {WARNING_TRANSITIONS} FINAL WHERE {scope})
GROUP BY warning_id{having}"""


def facts(warehouse: Warehouse, as_of: int, warning_ids: list[str] | None) -> dict[str, Row]:
    """``facts_sql``'s rows by warning id; ``warning_ids`` is a page's (or None).

    A page first asks the ``warning_followups`` pre-aggregate, by key, which of its
    warnings were followed up at all (most pages: none, or only assessed ones). An
    assessed warning never reopened whose last assessment is ≤ ``as_of`` is answered
    from it; the history is read only for the others (reopened, or assessed after a
    past ``as_of``)."""
    if warning_ids is not None and not warning_ids:
        return {}
    if warning_ids is None or len(warning_ids) > _LITERAL_IDS:
        rows = warehouse.query(facts_sql(as_of, None)).dicts()
        return {r["warning_id"]: r for r in rows}
    out: dict[str, Row] = {}
    history: list[str] = []
    for r in warehouse.query(_followed_sql(warning_ids)).dicts():
        if r["first_reopen"] == NEVER and r["last_assessed"] <= as_of:
            out[r["warning_id"]] = {"warning_id": r["warning_id"], "f_risk": r["risk"],
                                    "f_assessments": 1, "f_reopened": 0,
                                    "f_reopened_ever": 0}
        else:
            history.append(r["warning_id"])
    if history:
        out.update((r["warning_id"], r)
                   for r in warehouse.query(facts_sql(as_of, history)).dicts())
    return out


def _followed_sql(warning_ids: list[str]) -> str:
    """Which of ``warning_ids`` were assessed or reopened, from the pre-aggregate."""
    ids = ", ".join(sql_string(w) for w in warning_ids)
    return f"""
SELECT warning_id, min(first_reopen_us) AS first_reopen,
  max(latest_assessment).2 AS risk, max(last_assessed_us) AS last_assessed
FROM {WARNING_FOLLOWUPS} WHERE warning_id IN ({ids})
GROUP BY warning_id"""


def patch(row: Row, f: Row | None, raised_us: int) -> Row:
    """``row`` (a warning ledger row with the v1 columns) with ``risk`` and ``reopened``
    added, and its transition columns recomputed when it was ever reopened."""
    if f is None:
        return {**row, "risk": None, "reopened": 0}
    out = {**row, "risk": f["f_risk"] if f["f_assessments"] else None,
           "reopened": int(f["f_reopened"])}
    if not f["f_reopened_ever"]:
        return out
    ack, resolved = f["f_first_ack"], f["f_cycle_resolved"]
    cycle_ack = 1 if f["f_cycle_acked"] else None
    level, unit = f["f_handling_level"], f["f_handling_org"]
    out.update(
        acknowledged_at=lc.iso(ack),
        resolved_at=lc.iso(resolved),
        status=lc.warning_status(cycle_ack, resolved),
        handling_level=level or None,
        handling_org_unit=unit or None,
        escalations=int(f["f_escalations"]),
        highest_handling_level=f["f_highest"] or None,
        minutes_to_acknowledge=lc.minutes_between(raised_us, ack),
        minutes_to_resolve=lc.minutes_between(raised_us, resolved),
    )
    return out


_HISTORY_FIELDS: dict[str, tuple[str, ...]] = {
    "warning.raised": ("rule_id", "level", "org_unit", "handling_level", "handling_org_unit"),
    "warning.escalated": ("from_level", "to_level", "handling_org_unit"),
    "warning.transferred": ("from_org_unit", "to_org_unit"),
    "warning.assessed": ("risk",),
    "warning.reopened": ("handling_org_unit",),
    "referral.sent": ("agency", "basis", "warning_id"),
    "referral.accepted": ("agency",),
    "referral.declined": ("agency",),
    "referral.closed": ("agency", "outcome"),
}


def warning_history(warehouse: Warehouse, warning_id: str) -> list[Row]:
    """The warning's lifecycle records and the records of the referrals sent about it,
    in log order: each ``{"type", "at" (ISO), …}`` with the record's fields (DESIGN's
    lifecycle tables; ``household_id`` as the ledgers show it). Empty: no such warning."""
    wid = sql_string(warning_id)
    sent = sql_string(SENT)
    sql = f"""
SELECT h.*, d.household_id AS household_id, d.present AS present FROM (
  SELECT seq, toString(type) AS type, '' AS referral_id, household_key,
    rule_id, level, org_unit, handling_level, handling_org_unit, from_level, to_level,
    risk, from_org_unit, to_org_unit, CAST(NULL, 'Nullable(String)') AS agency,
    CAST(NULL, 'Nullable(String)') AS basis, CAST(NULL, 'Nullable(String)') AS outcome,
    toUnixTimestamp64Micro(at) AS us
  FROM {WARNING_TRANSITIONS} FINAL WHERE warning_id = {wid}
  UNION ALL
  SELECT seq, toString(type), referral_id, household_key, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, toString(agency), basis, outcome,
    toUnixTimestamp64Micro(at)
  FROM {REFERRAL_RECORDS} FINAL
  WHERE (household_key, referral_id) IN (
    SELECT household_key, referral_id FROM {REFERRAL_RECORDS}
    WHERE type = {sent} AND warning_id = {wid})
) AS h
LEFT JOIN {ledger_sql._directory()} AS d ON h.household_key = d.household_key
ORDER BY h.seq, h.type
{ledger_sql._SETTINGS}"""
    out = []
    for r in warehouse.query(sql).dicts():
        kind = r["type"]
        record: Row = {"type": kind, "at": lc.iso(r["us"])}
        if kind.startswith("referral."):
            record["referral_id"] = r["referral_id"]
        else:
            record["warning_id"] = warning_id
        record["household_id"] = (
            r["household_id"] if r["present"] else erased_label(r["household_key"])
        )
        for name in _HISTORY_FIELDS.get(kind, ()):
            record[name] = warning_id if name == "warning_id" else r[name]
        out.append(record)
    return out


def open_warning_of_rule(warehouse: Warehouse, household_id: str, rule_id: str) -> bool:
    """Whether the household has an open warning of ``rule_id`` now — raised, and not
    resolved since its latest reopening: the condition a reopening checks."""
    raised, resolved = sql_string(lc.RAISED), sql_string(lc.RESOLVED)
    keys = (
        f"(SELECT household_key FROM {DIRECTORY} "
        f"WHERE household_id = {sql_string(household_id)})"
    )
    sql = f"""
SELECT count() FROM (
  SELECT warning_id, maxIf(seq, type = {sql_string(REOPENED)}) AS last_reopen,
    notEmpty(arrayFilter(s -> s > last_reopen, groupArrayIf(seq, type = {resolved}))) AS closed
  FROM {WARNING_TRANSITIONS} FINAL
  WHERE warning_id IN (
    SELECT warning_id FROM {WARNING_TRANSITIONS}
    WHERE type = {raised} AND rule_id = {sql_string(rule_id)} AND household_key IN {keys})
  GROUP BY warning_id
  HAVING NOT closed
)"""
    return bool(warehouse.query(sql).rows[0][0])
