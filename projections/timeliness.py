"""Timeliness and completeness figures (EWARS-style), computed in the warehouse.

Per district, as known at T (``as_of``; None: the latest instant in the data),
counts only. Every share is ``within / due`` rounded to 4 decimals (None when
nothing is due); *due* counts what has been decided by T — answered, or its time
ran out — so that what is still within its time counts neither way.

* ``acknowledged_within_sla`` — warnings raised ≤ T (district of the raise's org
  unit). The *response* is the first acknowledgement or resolution ≤ T (a
  resolution ends the clock as an acknowledgement does: escalation stops for
  both). A warning is at handling level L from the instant it entered L (the
  raise, or its escalation to L) until its response; the SLA of its level
  (red 24 h, orange 72 h, yellow 168 h) runs from that entry. It is *within*
  when responded at the level it was then at, at most SLA after entering it
  (``response ≤ entry + SLA``, the instant itself included: DESIGN's deadline
  fires only after an event at its due time). It is *due* when responded ≤ T,
  or when the SLA of the level it is at has run out (``entry + SLA ≤ T``).
  ``by_level[L]``: the warnings that were at L — due when they left L by
  escalation, responded at L, or are at L with its SLA run out; within when
  responded at L in time. The first cycle only: acknowledgements after a
  reopening are a new cycle's (the ledger's ``reopened`` counts those).
* ``assessed_within_48h`` — warnings raised ≤ T: *within* when the first
  ``warning.assessed`` is at most 48 h after the raise; *due* when within or
  raise + 48 h ≤ T. ``by_level[L]``: by the handling level at the decisive
  instant (the assessment if within, else raise + 48 h) — the latest of the
  raise, escalations and reopenings at or before it.
* ``referrals_answered_within_72h`` — the referral ledger's rows at T (district:
  the household owner's at T): *within* when accepted or declined at most 72 h
  after being sent; *due* when answered ≤ T or sent + 72 h ≤ T (the deadline of
  ``referral-unanswered``). ``by_agency``.
* ``guardianship_followed_up_within_7d`` — every ``child.guardianship_gap_recorded``
  ≤ T (district of its org unit): *within* when a ``followup.recorded`` or
  ``child.guardianship_restored`` of the household has occurred_at in
  [gap, gap + 7 d] (and ≤ T) — the window of ``guardianship-no-followup``;
  *due* when within or gap + 7 d ≤ T.
* ``petitions`` — ``petition.received`` ≤ T (district of the event): total,
  ``by_channel`` and ``by_category``.
* ``screening_coverage`` — the coverage ledger at T summed over the district's
  communities: registered, covered, key_registered, key_covered, coverage.

``scope_org_unit`` keeps what lies within a reader's unit (the raise's, the
owner's, the event's or the community's org unit, as above); ``district`` one
district. ``reference.timeliness`` computes the same in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from events.instants import MICROS_PER_HOUR, format_instant
from events.orgunits import district_of
from projections import ledger_common as lc
from projections import ledger_sql, ledgers, referrals
from projections import now as now_path
from projections.kpis import scope_prefix
from projections.schema import EVENTS, HOUSEHOLD_CARE, WARNING_TRANSITIONS
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

SLA_HOURS = {"red": 24, "orange": 72, "yellow": 168}
ASSESS_WITHIN_HOURS = 48
FIGURES = (
    "acknowledged_within_sla",
    "assessed_within_48h",
    "referrals_answered_within_72h",
    "guardianship_followed_up_within_7d",
    "petitions",
    "screening_coverage",
)
_HANDLING = "['community', 'street', 'district', 'city']"
_LEVEL_INDEXES = "[1, 2, 3, 4]"


def share(within: int, due: int) -> float | None:
    return round(within / due, 4) if due else None


def figure(due: int, within: int) -> Row:
    return {"due": due, "within": within, "share": share(within, due)}


def _prefix(scope_org_unit: str | None, district: str | None) -> str:
    """The code prefix every counted unit must start with ('' for all): the narrower of
    the reader's scope (``kpis.scope_prefix``) and the district."""
    prefixes = [
        scope_prefix(scope_org_unit) if scope_org_unit is not None else "",
        district[:6] if district is not None else "",
    ]
    return max(prefixes, key=len)


def warnings_sql(as_of: int, prefix: str) -> str:
    """Per district of the raise: the acknowledgement and assessment counts."""
    t = int(as_of)
    raised, esc = sql_string(lc.RAISED), sql_string(lc.ESCALATED)
    ack, resolved = sql_string(lc.ACKNOWLEDGED), sql_string(lc.RESOLVED)
    assessed, reopened = sql_string("warning.assessed"), sql_string("warning.reopened")
    window = ASSESS_WITHIN_HOURS * MICROS_PER_HOUR
    sla = (
        f"multiIf(w_level = 'red', {SLA_HOURS['red'] * MICROS_PER_HOUR}, "
        f"w_level = 'orange', {SLA_HOURS['orange'] * MICROS_PER_HOUR}, "
        f"{SLA_HOURS['yellow'] * MICROS_PER_HOUR})"
    )
    entered = (
        f"indexOf({_HANDLING}, multiIf(type = {raised}, ifNull(handling_level, ''), "
        f"type = {esc}, ifNull(to_level, ''), 'community'))"
    )
    ids = (
        f"(SELECT warning_id FROM {WARNING_TRANSITIONS} WHERE type = {raised} "
        f"AND toUnixTimestamp64Micro(at) <= {t}"
        + ("" if not prefix else f" AND startsWith(ifNull(org_unit, ''), {sql_string(prefix)})")
        + ")"
    )
    return f"""
SELECT concat(substring(w_org, 1, 6), '000000') AS district,
  countIf(ack_due) AS ack_due, countIf(ack_within) AS ack_within,
  sumForEach(ack_due_levels) AS ack_due_levels,
  sumForEach(ack_within_levels) AS ack_within_levels,
  countIf(asm_due) AS asm_due, countIf(asm_within) AS asm_within,
  sumForEach(asm_due_levels) AS asm_due_levels,
  sumForEach(asm_within_levels) AS asm_within_levels
FROM (
  SELECT warning_id,
    anyIf(org_unit, type = {raised}) AS w_org,
    anyIf(level, type = {raised}) AS w_level,
    minIf(us, type = {raised}) AS r_us,
    {sla} AS sla,
    minIfOrNull(us, type IN ({ack}, {resolved})) AS resp,
    minIfOrNull(us, type = {assessed}) AS assess,
    arraySort(groupArrayIf((us, seq, {entered}), type IN ({raised}, {esc}))) AS cycle_one,
    arraySort(groupArrayIf((us, seq, {entered}), type IN ({raised}, {esc}, {reopened})))
      AS moves,
    arrayFilter(h -> h.1 <= ifNull(resp, {t}), cycle_one) AS entries,
    length(entries) AS k,
    entries[k].1 AS entry,
    resp IS NOT NULL AND resp <= entry + sla AS ack_within,
    resp IS NOT NULL OR entry + sla <= {t} AS ack_due,
    arrayMap(lv -> toUInt64(arrayExists(
      i -> entries[i].3 = lv AND (i < k OR ack_due), arrayEnumerate(entries))),
      {_LEVEL_INDEXES}) AS ack_due_levels,
    arrayMap(lv -> toUInt64(ack_within AND entries[k].3 = lv), {_LEVEL_INDEXES})
      AS ack_within_levels,
    assess IS NOT NULL AND assess <= r_us + {window} AS asm_within,
    asm_within OR r_us + {window} <= {t} AS asm_due,
    if(asm_within, assess, r_us + {window}) AS decisive,
    arrayLast(h -> h.1 <= decisive, moves).3 AS asm_level,
    arrayMap(lv -> toUInt64(asm_due AND asm_level = lv), {_LEVEL_INDEXES}) AS asm_due_levels,
    arrayMap(lv -> toUInt64(asm_within AND asm_level = lv), {_LEVEL_INDEXES})
      AS asm_within_levels
  FROM (
    SELECT *, toUnixTimestamp64Micro(at) AS us FROM {WARNING_TRANSITIONS} FINAL
    WHERE warning_id IN {ids} AND toUnixTimestamp64Micro(at) <= {t})
  GROUP BY warning_id
  HAVING countIf(type = {raised}) > 0 AND k > 0
)
GROUP BY district"""


def referrals_sql(as_of: int, prefix: str, owners_now: bool) -> str:
    """Per district (the owner's) and agency: referrals due and answered in time."""
    t, limit = int(as_of), referrals.ANSWER_WITHIN_MICROS
    district = prefix[:6] + "000000" if len(prefix) >= 6 else None
    rows = referrals.select_sql(as_of, district, owners_now)
    scope = "" if not prefix else f" WHERE startsWith(org_unit, {sql_string(prefix)})"
    return f"""
SELECT concat(substring(org_unit, 1, 6), '000000') AS district, agency,
  countIf(answered_us IS NOT NULL OR sent_us + {limit} <= {t}) AS due,
  countIf(answered_us IS NOT NULL AND answered_us - sent_us <= {limit}) AS within
FROM ({rows}){scope}
GROUP BY district, agency
{ledger_sql._SETTINGS}"""


def _distinct_events(as_of: int, types: str, columns: str, where: str = "") -> str:
    """One row per event (``columns`` of it) of ``types`` with occurred_at ≤ as_of. A
    re-sent event repeats its row but for ``offset``, so any row of its id is the one
    FINAL would keep — and grouping the few rows of these types beats FINAL over all."""
    return f"""(
    SELECT event_id, {", ".join(f"any({c}) AS {c}" for c in columns.split(", "))}
    FROM (
      SELECT event_id, household_key, toString(org_unit) AS org_unit,
        toUnixTimestamp64Micro(occurred_at) AS us
      FROM {EVENTS}
      WHERE type IN {types} AND toUnixTimestamp64Micro(occurred_at) <= {int(as_of)}{where})
    GROUP BY event_id)"""


def guardianship_sql(as_of: int, prefix: str) -> str:
    """Per district of the gap: gaps due and followed up within 7 days."""
    t, days = int(as_of), lc.GUARDIANSHIP_FOLLOWUP_MICROS
    gap = f"({sql_string(lc.GAP)})"
    scope = "" if not prefix else f" AND startsWith(org_unit, {sql_string(prefix)})"
    gaps = _distinct_events(as_of, gap, "household_key, org_unit, us", scope)
    households = f"(SELECT household_key FROM {EVENTS} WHERE type IN {gap}{scope})"
    # the care instants (restores and follow-ups) of those households: their
    # ``household_care`` rows, the instants after T left out below
    cares = f"""(
    SELECT household_key, arrayFilter(x -> x <= {t}, groupUniqArrayArray(care)) AS care
    FROM {HOUSEHOLD_CARE} WHERE household_key IN {households}
    GROUP BY household_key)"""
    return f"""
SELECT concat(substring(g.org_unit, 1, 6), '000000') AS district,
  countIf(cared OR g.us + {days} <= {t}) AS due, countIf(cared) AS within
FROM (
  SELECT g.org_unit AS org_unit, g.us AS us,
    arrayExists(x -> x >= g.us AND x <= g.us + {days}, c.care) AS cared
  FROM {gaps} AS g
  LEFT JOIN {cares} AS c ON g.household_key = c.household_key
) AS g
GROUP BY district
{ledger_sql._SETTINGS}"""


def petitions_sql(as_of: int, prefix: str) -> str:
    """Petitions per district, channel and category: distinct event ids (a re-sent
    event repeats its id and its coded fields), read without FINAL."""
    scope = "" if not prefix else f" AND startsWith(org_unit, {sql_string(prefix)})"
    return f"""
SELECT toString(district) AS district, ifNull(toString(channel), '') AS channel,
  ifNull(toString(category), '') AS category, uniqExact(event_id) AS n
FROM {EVENTS}
WHERE type = {sql_string(lc.PETITION)}
  AND toUnixTimestamp64Micro(occurred_at) <= {int(as_of)}{scope}
GROUP BY district, channel, category"""


def _levels(due: Iterable[int], within: Iterable[int]) -> Row:
    return {
        level: figure(int(d), int(w))
        for level, d, w in zip(lc.HANDLING_LEVELS, due, within, strict=True)
    }


def empty_district() -> Row:
    return {
        "acknowledged_within_sla": {**figure(0, 0), "by_level": _levels([0] * 4, [0] * 4)},
        "assessed_within_48h": {**figure(0, 0), "by_level": _levels([0] * 4, [0] * 4)},
        "referrals_answered_within_72h": {**figure(0, 0), "by_agency": {}},
        "guardianship_followed_up_within_7d": figure(0, 0),
        "petitions": {"total": 0, "by_channel": {}, "by_category": {}},
        "screening_coverage": {
            "registered": 0, "covered": 0, "key_registered": 0, "key_covered": 0,
            "coverage": 0.0,
        },
    }


def timeliness(
    warehouse: Warehouse,
    as_of_us: int | None,
    district: str | None,
    *,
    scope_org_unit: str | None = None,
) -> Row:
    """The figures of the module doc per district: ``{"as_of", "districts": {code: …}}``
    (districts with something to count, in code order)."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of_us)
    out: Row = {"as_of": None if as_of_us is None else format_instant(as_of_us),
                "districts": {}}
    if now is None:
        return out
    prefix = _prefix(scope_org_unit, code)
    found: dict[str, Row] = {}

    def at(d: str) -> Row:
        return found.setdefault(d, empty_district())

    for r in warehouse.query(warnings_sql(now, prefix)).dicts():
        row = at(r["district"])
        row["acknowledged_within_sla"] = {
            **figure(int(r["ack_due"]), int(r["ack_within"])),
            "by_level": _levels(r["ack_due_levels"], r["ack_within_levels"]),
        }
        row["assessed_within_48h"] = {
            **figure(int(r["asm_due"]), int(r["asm_within"])),
            "by_level": _levels(r["asm_due_levels"], r["asm_within_levels"]),
        }
    for r in warehouse.query(referrals_sql(now, prefix, orphans is not None)).dicts():
        part = at(r["district"])["referrals_answered_within_72h"]
        due, within = int(r["due"]), int(r["within"])
        part["by_agency"][r["agency"]] = figure(due, within)
        part.update(figure(part["due"] + due, part["within"] + within))
    for r in warehouse.query(guardianship_sql(now, prefix)).dicts():
        at(r["district"])["guardianship_followed_up_within_7d"] = figure(
            int(r["due"]), int(r["within"]))
    for r in warehouse.query(petitions_sql(now, prefix)).dicts():
        part = at(r["district"])["petitions"]
        n = int(r["n"])
        part["total"] += n
        for key, value in (("by_channel", r["channel"]), ("by_category", r["category"])):
            part[key][value] = part[key].get(value, 0) + n
    for c in ledgers.coverage_ledger(warehouse, as_of_us, code):
        if not c["community"].startswith(prefix):
            continue
        part = at(district_of(c["community"]))["screening_coverage"]
        for key in ("registered", "covered", "key_registered", "key_covered"):
            part[key] += c[key]
        part["coverage"] = lc.coverage_ratio(part["covered"], part["registered"])
    out["districts"] = {d: _sorted(found[d]) for d in sorted(found)}
    return out


def _sorted(row: Row) -> Row:
    """Maps in key order (stable JSON for a chart)."""
    refs = row["referrals_answered_within_72h"]
    refs["by_agency"] = dict(sorted(refs["by_agency"].items()))
    for key in ("by_channel", "by_category"):
        row["petitions"][key] = dict(sorted(row["petitions"][key].items()))
    return row


__all__ = ["FIGURES", "empty_district", "figure", "share", "timeliness"]
