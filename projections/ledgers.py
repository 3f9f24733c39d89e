"""The ledgers of DESIGN.md, computed by SQL on any Warehouse.

``as_of`` (microseconds) filters events by occurred_at ≤ as_of and lifecycle
records by at ≤ as_of; ``None`` means no filter, and the "now" of windows is
then the largest occurred_at / at in the warehouse. ``reference.py`` is the
executable specification these functions are tested against.

Paging: ``limit``/``offset`` (keyword-only; default all rows) select a slice of
the ledger in its documented order — the SQL sorts and cuts before rows reach
Python, so a dashboard's page costs a page of conversion, not the district's.
"""

from __future__ import annotations

from typing import Any

from events.instants import parse_instant
from events.orgunits import district_of
from privacy.pseudonym import erased_label
from projections import followups, ledger_sql, now_coverage, now_guardianship
from projections import ledger_common as lc
from projections import now as now_path
from projections.followups import open_warning_of_rule, warning_history
from projections.referrals import referral_ledger, referral_row, standing_consent
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import sql_string

Row = dict[str, Any]
__all__ = [
    "coverage_ledger",
    "guardianship_ledger",
    "household_ledger",
    "open_warning_of_rule",
    "referral_ledger",
    "referral_row",
    "resolve_now",
    "standing_consent",
    "warning_history",
    "warning_ledger",
    "warning_row",
]


def resolve_now(warehouse: Warehouse, as_of: int | None) -> int | None:
    """``as_of`` itself, or the latest instant in the data (None when empty)."""
    return as_of if as_of is not None else now_path.latest_instant(warehouse)


def _household_id(row: Row) -> str | None:
    """The id from the directory; ``erased:<key>`` once erased; None for a district surge.

    A surge warning (``rules.surge``) belongs to a district, not a household: its
    lifecycle rows carry the empty key and no directory row.
    """
    if row["household_key"] == "":
        return None
    present: bool = bool(row["present"])
    return str(row["household_id"]) if present else erased_label(row["household_key"])


def _fetch(warehouse: Warehouse, sql: str) -> list[Row]:
    return warehouse.query(sql).dicts()


def warning_ledger(
    warehouse: Warehouse,
    as_of: int | None = None,
    district: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """预警信息台账: one row per warning raised ≤ as_of."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of)
    if now is None:
        return []
    facts = None
    if orphans is not None:
        prefix = None if code is None else code[:6]
        if orphans:  # the slower, exact merge; paged below like the raw path
            facts = now_path.warning_facts(prefix, orphans)
        else:  # the facts hold just the page already
            facts = now_path.warning_facts(prefix, orphans, ledger_sql.page(limit, offset))
            limit, offset = None, 0
    sql = ledger_sql.warnings(now, code, limit=limit, offset=offset, facts=facts)
    rows = [_warning_row(r) for r in _fetch(warehouse, sql)]
    return sorted(_followed(warehouse, rows, now), key=lc.warning_sort_key)


def _followed(warehouse: Warehouse, rows: list[Row], as_of: int) -> list[Row]:
    """The rows with ``risk`` and ``reopened``; a reopened warning's transition
    columns recomputed from its whole history (``projections.followups``)."""
    found = followups.facts(warehouse, as_of, [r["warning_id"] for r in rows])
    return [
        followups.patch(r, found.get(r["warning_id"]), parse_instant(r["raised_at"]))
        for r in rows
    ]


def _warning_row(r: Row) -> Row:
    raised, ack, resolved = r["raised_us"], r["ack_us"], r["resolved_us"]
    return {
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


def warning_row(warehouse: Warehouse, warning_id: str) -> Row | None:
    """The row ``warning_ledger(warehouse)`` holds for ``warning_id`` (None: no such
    warning raised), read by its id from the ``warning_state`` pre-aggregate — a few
    granules, not the ledger (for acknowledge / resolve). The same facts as the
    ledger's "now" path, restricted to that warning, then its directory row by key
    (two statements: one would compute the facts twice)."""
    facts = now_path.warning_facts(None, True, warning_id=warning_id)
    found = _fetch(warehouse, f"SELECT * FROM {facts}")
    if not found:
        return None
    f = found[0]
    key = f["w_key"]
    directory = warehouse.query(
        f"SELECT household_id, present FROM {ledger_sql._directory(f'({sql_string(key)})')}"
    ).rows
    household_id, present = directory[0] if directory else ("", 0)
    row = _warning_row(
        {
            "warning_id": f["warning_id"],
            "rule_id": f["w_rule"],
            "level": f["w_level"],
            "household_key": key,
            "household_id": household_id,
            "present": present,
            "org_unit": f["w_org"],
            "raised_us": f["raised_us"],
            "ack_us": f["ack_us"],
            "resolved_us": f["resolved_us"],
            "escalations": f["escalations"],
            "handling_level": f["w_handling"],
            "handling_org_unit": f["w_handling_org"],
            "highest_handling_level": f["w_highest"],
        }
    )
    return _followed(warehouse, [row], followups.END_OF_TIME)[0]


def household_ledger(
    warehouse: Warehouse,
    as_of: int | None = None,
    district: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """家庭风险台账: one row per household with an event ≤ as_of."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of)
    if now is None:
        return []
    rows = []
    sources = None
    found: list[Row] | None = None
    if orphans is not None and code is not None and limit is not None:
        # now, a district's page: candidates in page order, checked a few at a time
        found = now_path.household_page(warehouse, now, code, limit, offset)
    elif orphans is not None and (limit is not None or offset):
        # now, a page: pick its keys from the sort columns, then compute just those
        page = ledger_sql.page(limit, offset)
        keys = [r[0] for r in warehouse.query(now_path.household_page_sql(code, page)).rows]
        if not keys:
            return []
        sources = now_path.household_sources(now, code, orphans, page_keys=keys)
        limit, offset = None, 0
    elif orphans is not None:
        sources = now_path.household_sources(now, code, orphans)
    if found is None:
        sql = ledger_sql.households(now, code, limit=limit, offset=offset, now_sources=sources)
        found = _fetch(warehouse, sql)
    for r in found:
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
        flags = [str(f) for f in r["flags"]]
        last = r["last_screening_us"]
        due = None if last is None else int(last) + lc.cadence_micros(flags)
        row["registered"] = bool(r["registered"])
        row["flags"] = flags
        row["next_visit_due"] = lc.iso(due)
        row["visit_overdue"] = due is not None and due < now
        rows.append(row)
    return sorted(rows, key=lc.household_sort_key)


def coverage_ledger(
    warehouse: Warehouse,
    as_of: int | None = None,
    district: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """排查覆盖台账: one row per community owning a registered household ≤ as_of,
    ordered by community; ``limit``/``offset`` page it (a city has ~10⁴ communities)."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of)
    if now is None:
        return []
    ledger_sql.page(limit, offset)  # refuses negative bounds on either path
    # orphan transitions concern warnings only: "now" reads the pre-aggregate
    if orphans is None:
        sql = ledger_sql.coverage(ledger_sql.coverage_facts(now, code), now)
        counts = _fetch(warehouse, sql + ledger_sql.page(limit, offset))
    else:
        counts = _fetch(warehouse, now_coverage.counts_sql(code, now))
        rare = []
        if now_coverage.has_rare(counts):
            rare = _fetch(warehouse, ledger_sql.coverage(now_coverage.rare_facts(code), now))
        counts = now_coverage.merge_counts(counts, rare)
        counts = counts[offset:] if limit is None else counts[offset:offset + limit]
    return [
        {
            "community": r["community"],
            "district": district_of(r["community"]),
            "registered": int(r["registered"]),
            "covered": int(r["covered"]),
            "key_registered": int(r["key_registered"]),
            "key_covered": int(r["key_covered"]),
            "coverage": lc.coverage_ratio(int(r["covered"]), int(r["registered"])),
        }
        for r in counts
    ]


def guardianship_ledger(
    warehouse: Warehouse,
    as_of: int | None = None,
    district: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """监护缺失儿童台账: one row per (household, child) with a gap ≤ as_of."""
    code = lc.district_code(district)
    now, orphans = now_path.resolve(warehouse, as_of)
    if now is None:
        return []
    if orphans is None:  # a past as_of: the exact raw path
        found = _fetch(warehouse, ledger_sql.guardianship(now, code, limit=limit, offset=offset))
    else:  # now: the pre-aggregates (orphan transitions concern warnings only)
        found = now_guardianship.rows(warehouse, now, code, limit, offset)
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
        for r in found
    ]
    return sorted(rows, key=lc.guardianship_sort_key)
