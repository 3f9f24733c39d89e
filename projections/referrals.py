"""联动台账 — the referral ledger — and the consent a household stands on, in SQL.

One row per referral sent ≤ as_of (DESIGN "Ledgers added or changed"): its
``referral.sent`` record, the answer (``referral.accepted`` / ``referral.declined``)
and the close known at as_of, and the household's owner as of as_of (its
community ``org_unit`` — for scoping — and ``district``). The owner is folded
with ``ledger_sql.ownership``, the household ledger's own rule, for the households
with a referral only: from the raw events for a past as_of, from the
``household_owner`` pre-aggregate for now. ``reference.referral_ledger`` is the
executable specification.

A referral is answered once and closed once (the engine refuses the rest), so
its records are one row per (household, referral, type) in ``referral_records``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.instants import MICROS_PER_HOUR, parse_instant
from events.orgunits import district_of
from privacy.pseudonym import erased_label
from projections import ledger_common as lc
from projections import ledger_sql
from projections import now as now_path
from projections.schema import DIRECTORY, EVENTS, HOUSEHOLD_STATE, REFERRAL_RECORDS
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

SENT = "referral.sent"
ACCEPTED = "referral.accepted"
DECLINED = "referral.declined"
CLOSED = "referral.closed"
#: A referral unanswered this long after it was sent is overdue (``referral-unanswered``).
ANSWER_WITHIN_HOURS = 72
ANSWER_WITHIN_MICROS = ANSWER_WITHIN_HOURS * MICROS_PER_HOUR
CONSENT_RECORDED = "consent.recorded"
CONSENT_WITHDRAWN = "consent.withdrawn"


def referral_facts(as_of: int, keys: str | None = None) -> str:
    """Per referral sent ≤ as_of (of the households ``keys``, None: all): what its
    records ≤ as_of say. ``answered_us`` / ``closed_us`` NULL while unknown."""
    sent, closed = sql_string(SENT), sql_string(CLOSED)
    answers = f"({sql_string(ACCEPTED)}, {sql_string(DECLINED)})"
    scope = "" if keys is None else f" AND household_key IN {keys}"
    return f"""(
  SELECT household_key, referral_id,
    anyIf(agency, type = {sent}) AS r_agency,
    anyIf(basis, type = {sent}) AS r_basis,
    anyIf(warning_id, type = {sent}) AS r_warning,
    minIf(us, type = {sent}) AS sent_us,
    minIfOrNull(us, type IN {answers}) AS answered_us,
    argMinIf(toString(type), us, type IN {answers}) AS answer,
    minIfOrNull(us, type = {closed}) AS closed_us,
    anyIf(outcome, type = {closed}) AS r_outcome
  FROM (
    SELECT *, toUnixTimestamp64Micro(at) AS us FROM {REFERRAL_RECORDS} FINAL
    WHERE at <= fromUnixTimestamp64Micro(toInt64({int(as_of)}), 'UTC'){scope})
  GROUP BY household_key, referral_id
  HAVING countIf(type = {sent}) > 0
)"""


def _owners_raw(as_of: int, keys: str) -> str:
    """Owner (``h_org``) as of as_of of the households ``keys``, from their events."""
    moves = f"groupArrayIf({ledger_sql.MOVE_OF_ROW}, type IN {ledger_sql.MOVE_TYPES})"
    return f"""(
  SELECT household_key,
    {ledger_sql.ownership("min((off, toString(org_unit))).2", moves, ledger_sql.NO_VISITS)}
  FROM {ledger_sql._events(as_of, keys=keys)}
  GROUP BY household_key
)"""


def referrals_sql(
    as_of: int,
    district: str | None,
    owners_now: bool,
    *,
    limit: int | None = None,
    offset: int = 0,
    referral_id: str | None = None,
) -> str:
    """The ledger's rows in ledger order (sent instant, referral_id, household);
    ``owners_now``: the owner from the pre-aggregate (as_of cuts nothing off)."""
    keys = facts = None
    if referral_id is not None:
        only = f"referral_id = {sql_string(referral_id)}"
        keys = f"(SELECT household_key FROM {REFERRAL_RECORDS} WHERE {only})"
        facts = f"(SELECT * FROM {referral_facts(as_of, keys)} WHERE {only})"
    return f"""{select_sql(as_of, district, owners_now, keys, facts)}
ORDER BY r.sent_us, r.referral_id, {ledger_sql._shown_id("d", "r.household_key")}
{ledger_sql.page(limit, offset)}
{ledger_sql._SETTINGS}"""


def select_sql(
    as_of: int, district: str | None, owners_now: bool, keys: str | None = None,
    facts: str | None = None,
) -> str:
    """The ledger's rows, unordered (a subquery for the timeliness figures).

    A district's rows need a household the district may own: one with an event there
    or moved there (``household_state``'s district range now; the events ≤ as_of for a
    past as_of), so only those households' owners are folded."""
    if keys is None:
        keys = f"(SELECT household_key FROM {REFERRAL_RECORDS})"
        if district is not None and owners_now:
            keys = (f"(SELECT household_key FROM {REFERRAL_RECORDS} WHERE household_key IN "
                    f"(SELECT household_key FROM {HOUSEHOLD_STATE} "
                    f"WHERE district_key = {sql_string(district[:6] + '000000')}))")
        elif district is not None:
            candidates = ledger_sql._event_keys(as_of, district[:6] + "000000")
            keys = (f"(SELECT household_key FROM {REFERRAL_RECORDS} "
                    f"WHERE household_key IN {candidates})")
    facts = facts or referral_facts(as_of, keys)
    owners = now_path._owners(keys) if owners_now else _owners_raw(as_of, keys)
    in_district = (
        "" if district is None else f" AND startsWith(o.h_org, {sql_string(district[:6])})"
    )
    return f"""
SELECT r.household_key AS household_key, d.household_id AS household_id, d.present AS present,
  r.referral_id AS referral_id, o.h_org AS org_unit, r.r_agency AS agency,
  r.r_basis AS basis, r.r_warning AS warning_id, r.sent_us AS sent_us,
  r.answered_us AS answered_us, r.answer AS answer, r.closed_us AS closed_us,
  r.r_outcome AS outcome
FROM {facts} AS r
INNER JOIN {owners} AS o ON r.household_key = o.household_key
LEFT JOIN {ledger_sql._directory(keys)} AS d ON r.household_key = d.household_key
WHERE 1{in_district}"""


def referral_status(answer: str | None, answered: int | None, closed: int | None) -> str:
    """sent → accepted | declined → closed (DESIGN's four states)."""
    if closed is not None:
        return "closed"
    if answered is None or answer is None:
        return "sent"
    return "accepted" if answer == ACCEPTED else "declined"


def is_overdue(sent: int, answered: int | None, now: int) -> bool:
    """Unanswered and sent_at + 72 h < as_of."""
    return answered is None and sent + ANSWER_WITHIN_MICROS < now


def referral_sort_key(row: Row) -> tuple[Any, ...]:
    return (parse_instant(row["sent_at"]), row["referral_id"], row["household_id"])


def _shown(r: Row) -> str:
    return str(r["household_id"]) if r["present"] else erased_label(r["household_key"])


def _row(r: Row, now: int) -> Row:
    sent, answered, closed = int(r["sent_us"]), r["answered_us"], r["closed_us"]
    return {
        "referral_id": r["referral_id"],
        "household_id": _shown(r),
        "org_unit": r["org_unit"],
        "district": district_of(r["org_unit"]),
        "agency": r["agency"],
        "basis": r["basis"],
        "warning_id": r["warning_id"],
        "sent_at": lc.iso(sent),
        "answered_at": lc.iso(answered),
        "status": referral_status(r["answer"] or None, answered, closed),
        "outcome": r["outcome"] if closed is not None else None,
        "minutes_to_answer": lc.minutes_between(sent, answered),
        "overdue": is_overdue(sent, answered, now),
    }


def referral_ledger(
    warehouse: Warehouse,
    as_of: int | None = None,
    district: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """联动台账: one row per referral sent ≤ as_of, owner's district ``district``."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of)
    if now is None:
        return []
    sql = referrals_sql(now, code, orphans is not None, limit=limit, offset=offset)
    return [_row(r, now) for r in warehouse.query(sql).dicts()]


def referral_row(warehouse: Warehouse, referral_id: str) -> Row | None:
    """The referral's ledger row now (None: never sent). A referral id is chosen by its
    sender (a uuid from the API); were one used by two households, the first sent."""
    now, orphans = now_path.resolve(warehouse, None)
    if now is None:
        return None
    sql = referrals_sql(now, None, orphans is not None, limit=1, referral_id=referral_id)
    rows = warehouse.query(sql).dicts()
    return _row(rows[0], now) if rows else None


def fold_consent(steps: list[tuple[str, list[str]]]) -> frozenset[str]:
    """Standing consent after consent events in log order: recorded adds its agencies,
    withdrawn removes its agencies."""
    standing: set[str] = set()
    for kind, agencies in steps:
        change: Callable[[str], None] = (
            standing.add if kind == CONSENT_RECORDED else standing.discard
        )
        for agency in agencies:
            change(agency)
    return frozenset(standing)


def standing_consent(warehouse: Warehouse, household_id: str) -> frozenset[str]:
    """Agencies the household has a standing consent for now: its consent events in log
    order (``offset``) from ``events``, found by its directory row (an erased household
    has none, and no consent to refer it on)."""
    key = f"(SELECT household_key FROM {DIRECTORY} WHERE household_id = {sql_string(household_id)})"
    rows = warehouse.query(
        f"SELECT toString(type) AS t, CAST(agencies, 'Array(String)') AS a FROM {EVENTS} FINAL "
        f"WHERE household_key IN {key} "
        f"AND type IN ({sql_string(CONSENT_RECORDED)}, {sql_string(CONSENT_WITHDRAWN)}) "
        "ORDER BY `offset`"
    ).rows
    return fold_consent([(str(t), [str(x) for x in a]) for t, a in rows])
