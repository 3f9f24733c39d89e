"""The ledgers in plain Python over lists of dicts: the executable specification.

No I/O, no SQL — written to be read next to DESIGN.md. The warehouse's SQL
ledgers (``ledgers.py``) must return exactly the same rows; the contract tests
check it on randomized data.

Inputs are what the warehouse receives: accepted events (validated envelopes
with ``offset``) and lifecycle records (with ``seq``), possibly re-sent. A
re-sent event (same event_id) counts once, keeping the highest offset; a
re-sent lifecycle record (same warning_id, type, to_level) counts once,
keeping the highest seq — the warehouse's ReplacingMergeTree rule.

``erased`` lists household_ids whose directory row was deleted; they show as
``erased:<household_key>``, which needs the ``pseudonym_secret``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.instants import MICROS_PER_DAY, local_date, parse_instant
from events.orgunits import Level, OrgUnitError, district_of, level_of
from privacy.pseudonym import erased_label, household_key
from projections import ledger_common as lc

Row = dict[str, Any]
Record = Mapping[str, Any]
ASSESSED = "warning.assessed"
REOPENED = "warning.reopened"


@dataclass(frozen=True, slots=True)
class _Ev:
    household_id: str
    type: str
    org_unit: str
    us: int
    offset: int
    data: Mapping[str, Any]


def _dedupe(items: Iterable[Record], key: Any, version: str) -> list[Record]:
    kept: dict[Any, Record] = {}
    for item in items:
        k = key(item)
        if k not in kept or item[version] >= kept[k][version]:
            kept[k] = item
    return list(kept.values())


def _events(events: Sequence[Record], now: int) -> list[_Ev]:
    out = []
    for e in _dedupe(events, lambda e: e["event_id"], "offset"):
        us = parse_instant(e["occurred_at"])
        if us <= now:
            data = e.get("data") or {}
            out.append(_Ev(e["household_id"], e["type"], e["org_unit"], us, e["offset"], data))
    return out


def _lifecycle_key(r: Record) -> tuple[Any, ...]:
    """A record's identity: a re-sent record has the same; a reopened warning's second
    acknowledgement, resolution or escalation, or a later assessment, does not."""
    return (
        r["warning_id"], r["type"], r.get("to_level") or "", parse_instant(r["at"]),
        r.get("risk") or "", r.get("to_org_unit") or "",
    )


def _is_referral(r: Record) -> bool:
    return str(r["type"]).startswith("referral.")


def _lifecycle(records: Sequence[Record], now: int) -> list[Record]:
    """The warnings' records ≤ now, re-sent ones once (referral records apart)."""
    warnings = [r for r in records if not _is_referral(r)]
    return [r for r in _dedupe(warnings, _lifecycle_key, "seq") if parse_instant(r["at"]) <= now]


def _referral_records(records: Sequence[Record], now: int) -> list[Record]:
    """The referral records ≤ now, one per (household, referral, type), highest seq."""
    found = _dedupe(
        (r for r in records if _is_referral(r)),
        lambda r: (r["household_id"], r["referral_id"], r["type"]),
        "seq",
    )
    return [r for r in found if parse_instant(r["at"]) <= now]


def _now(events: Sequence[Record], records: Sequence[Record], as_of: int | None) -> int | None:
    if as_of is not None:
        return as_of
    instants = [parse_instant(e["occurred_at"]) for e in events]
    instants += [parse_instant(r["at"]) for r in records]
    return max(instants) if instants else None


class _Names:
    """household_id as a ledger shows it."""

    def __init__(self, erased: Collection[str], secret: bytes | None) -> None:
        if erased and not secret:
            raise ValueError("showing erased households needs the pseudonym secret")
        self._erased = set(erased)
        self._secret = secret or b""

    def __call__(self, household_id: str) -> str:
        if household_id in self._erased:
            return erased_label(household_key(self._secret, household_id))
        return household_id


def _in_district(org_unit: str, district: str | None) -> bool:
    return district is None or district_of(org_unit) == district


@dataclass
class _Warning:
    """A warning's records folded in log (seq) order.

    ``acks`` are every acknowledgement (the first is ``acknowledged_at``); the
    *cycle* is what follows the latest reopening (the whole life if none): status and
    ``resolved_at`` are the cycle's. Handling is the latest of the raise, its
    escalations and its reopenings (a reopening: community, at the unit it names).
    """

    raise_: Record
    acks: list[int] = field(default_factory=list)
    resolves: list[int] = field(default_factory=list)
    escalations: list[Record] = field(default_factory=list)
    cycle_acked: bool = False
    cycle_resolved: int | None = None
    reopened: int = 0
    risk: str | None = None
    handling: tuple[str, str] = ("", "")


def _warnings(records: Sequence[Record]) -> dict[str, _Warning]:
    """Warnings with a raise among ``records``, each with its transitions."""
    found = {r["warning_id"]: _Warning(r) for r in records if r["type"] == lc.RAISED}
    for raised in found.values():
        raised.handling = (raised.raise_["handling_level"], raised.raise_["handling_org_unit"])
    for r in sorted(records, key=lambda r: r["seq"]):
        w = found.get(r["warning_id"])
        if w is None or r["type"] == lc.RAISED:
            continue
        at = parse_instant(r["at"])
        if r["type"] == lc.ACKNOWLEDGED:
            w.acks.append(at)
            w.cycle_acked = True
        elif r["type"] == lc.RESOLVED:
            w.resolves.append(at)
            w.cycle_resolved = at
        elif r["type"] == lc.ESCALATED:
            w.escalations.append(r)
            w.handling = (r["to_level"], r["handling_org_unit"])
        elif r["type"] == REOPENED:
            w.reopened += 1
            w.cycle_acked, w.cycle_resolved = False, None
            w.handling = ("community", r["handling_org_unit"])
        elif r["type"] == ASSESSED:
            w.risk = r["risk"]
    return found


def warning_ledger(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    erased: Collection[str] = (),
    pseudonym_secret: bytes | None = None,
) -> list[Row]:
    """预警信息台账 — one row per warning raised ≤ now."""
    now = _now(events, lifecycle, as_of)
    if now is None:
        return []
    district, name = lc.district_code(district), _Names(erased, pseudonym_secret)
    rows = []
    for warning_id, w in _warnings(_lifecycle(lifecycle, now)).items():
        raise_ = w.raise_
        if not _in_district(raise_["org_unit"], district):
            continue
        raised = parse_instant(raise_["at"])
        ack = min(w.acks, default=None)
        resolved = w.cycle_resolved
        reached = [raise_["handling_level"]] + [r["to_level"] for r in w.escalations]
        rows.append(
            {
                "warning_id": warning_id,
                "rule_id": raise_["rule_id"],
                "level": raise_["level"],
                "household_id": name(raise_["household_id"]),
                "org_unit": raise_["org_unit"],
                "district": district_of(raise_["org_unit"]),
                "raised_at": lc.iso(raised),
                "acknowledged_at": lc.iso(ack),
                "resolved_at": lc.iso(resolved),
                "status": lc.warning_status(1 if w.cycle_acked else None, resolved),
                "handling_level": w.handling[0],
                "handling_org_unit": w.handling[1],
                "escalations": len(w.escalations),
                "highest_handling_level": max(reached, key=lc.HANDLING_LEVELS.index),
                "minutes_to_acknowledge": lc.minutes_between(raised, ack),
                "minutes_to_resolve": lc.minutes_between(raised, resolved),
                "risk": w.risk,
                "reopened": w.reopened,
            }
        )
    return sorted(rows, key=lc.warning_sort_key)


def _open_by_household(records: Sequence[Record]) -> dict[str, list[str]]:
    """household_id → levels of its warnings raised and not resolved (a reopened one:
    not resolved since its latest reopening)."""
    out: dict[str, list[str]] = defaultdict(list)
    for w in _warnings(records).values():
        if w.cycle_resolved is None:
            out[w.raise_["household_id"]].append(w.raise_["level"])
    return out


def _is_community(code: Any) -> bool:
    try:
        return isinstance(code, str) and level_of(code) is Level.COMMUNITY
    except OrgUnitError:
        return False


@dataclass(frozen=True, slots=True)
class _Owned:
    """A household's ownership as of the end of its events (DESIGN "Ownership")."""

    owner: str
    registered: bool
    flags: tuple[str, ...]
    #: L of ``screening-overdue``; None unless registered.
    last_screening: int | None


def _ownership(evs: Sequence[_Ev]) -> _Owned:
    """Ownership over a household's events in processing (offset) order.

    Written from DESIGN's sentences, apart from the engine's version, so that the
    two check each other: the first event sets the owner; the first registration
    sets it to its org unit (whatever came before) and the flags; a later one must
    carry the owner and only replaces the flags; a transfer must carry the owner
    and a different ``to_org_unit`` (a community code), which becomes the owner.
    Anything else changes nothing. L is the latest occurred_at of the valid registrations and of the
    visits processed after the first one.
    """
    owner: str | None = None
    registered, flags, last = False, (), None
    for e in sorted(evs, key=lambda e: e.offset):
        if owner is None:
            owner = e.org_unit
        if e.type == lc.REGISTERED and (not registered or e.org_unit == owner):
            owner, registered = e.org_unit, True
            flags = tuple(e.data.get("flags") or ())
            last = e.us if last is None else max(last, e.us)
        elif e.type == lc.TRANSFERRED:
            to = e.data.get("to_org_unit")
            if e.org_unit == owner and _is_community(to) and to != owner:
                owner = to
        elif e.type == lc.VISIT and registered:
            last = e.us if last is None else max(last, e.us)
    assert owner is not None, "a household is seen through at least one event"
    return _Owned(owner, registered, flags, last)


def household_ledger(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    erased: Collection[str] = (),
    pseudonym_secret: bytes | None = None,
) -> list[Row]:
    """家庭风险台账 — one row per household with an event ≤ now."""
    now = _now(events, lifecycle, as_of)
    if now is None:
        return []
    district, name = lc.district_code(district), _Names(erased, pseudonym_secret)
    by_household: dict[str, list[_Ev]] = defaultdict(list)
    for ev in _events(events, now):
        by_household[ev.household_id].append(ev)
    open_levels = _open_by_household(_lifecycle(lifecycle, now))
    rows = []
    for household_id, evs in by_household.items():
        owned = _ownership(evs)
        org_unit = owned.owner
        if not _in_district(org_unit, district):
            continue
        levels = open_levels.get(household_id, [])
        petitions = [e.us for e in evs if e.type == lc.PETITION]
        row: Row = {
            "household_id": name(household_id),
            "org_unit": org_unit,
            "district": district_of(org_unit),
            "open_warnings": len(levels),
            "highest_open_level": max(levels, key=lc.WARNING_LEVELS.index, default=None),
            "indicators": sorted(
                {i for e in evs if e.type == lc.VISIT for i in e.data.get("indicators") or ()}
            ),
            "last_visit_at": lc.iso(max((e.us for e in evs if e.type == lc.VISIT), default=None)),
            "last_followup_at": lc.iso(
                max((e.us for e in evs if e.type == lc.FOLLOWUP), default=None)
            ),
        }
        for days in lc.PETITION_WINDOWS_DAYS:
            start = now - days * MICROS_PER_DAY
            row[f"petitions_{days}d"] = sum(1 for us in petitions if start <= us <= now)
        row["first_seen_at"] = lc.iso(min(e.us for e in evs))
        due = (
            None
            if owned.last_screening is None
            else owned.last_screening + lc.cadence_micros(owned.flags)
        )
        row["registered"] = owned.registered
        row["flags"] = sorted(owned.flags)
        row["next_visit_due"] = lc.iso(due)
        row["visit_overdue"] = due is not None and due < now
        rows.append(row)
    return sorted(rows, key=lc.household_sort_key)


def coverage_ledger(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    erased: Collection[str] = (),
    pseudonym_secret: bytes | None = None,
) -> list[Row]:
    """排查覆盖台账 — one row per community owning a registered household ≤ now.

    Covered: a visit with occurred_at in [now − C, now], C by the household's flags
    as of now (any visit of the household, registered or not at the time). Erased
    households still count: the ledger names none.
    """
    now = _now(events, lifecycle, as_of)
    if now is None:
        return []
    district = lc.district_code(district)
    by_household: dict[str, list[_Ev]] = defaultdict(list)
    for ev in _events(events, now):
        by_household[ev.household_id].append(ev)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for evs in by_household.values():
        owned = _ownership(evs)
        if not owned.registered or not _in_district(owned.owner, district):
            continue
        key = lc.KEY_FLAG in owned.flags
        since = now - lc.cadence_micros(owned.flags)
        covered = any(e.type == lc.VISIT and since <= e.us for e in evs)
        c = counts[owned.owner]
        c[0] += 1
        c[1] += covered
        c[2] += key
        c[3] += key and covered
    rows = [
        {
            "community": community,
            "district": district_of(community),
            "registered": registered,
            "covered": covered,
            "key_registered": key_registered,
            "key_covered": key_covered,
            "coverage": lc.coverage_ratio(covered, registered),
        }
        for community, (registered, covered, key_registered, key_covered) in counts.items()
    ]
    return sorted(rows, key=lc.coverage_sort_key)


def guardianship_ledger(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    erased: Collection[str] = (),
    pseudonym_secret: bytes | None = None,
) -> list[Row]:
    """监护缺失儿童台账 — one row per (household, child_ref) with a gap ≤ now."""
    now = _now(events, lifecycle, as_of)
    if now is None:
        return []
    district, name = lc.district_code(district), _Names(erased, pseudonym_secret)
    evs = _events(events, now)
    gaps: dict[tuple[str, str], _Ev] = {}
    for ev in evs:
        if ev.type == lc.GAP:
            key = (ev.household_id, ev.data.get("child_ref") or "")
            if key not in gaps or (ev.us, ev.offset) > (gaps[key].us, gaps[key].offset):
                gaps[key] = ev
    rows = []
    for (household_id, child_ref), gap in gaps.items():
        if not _in_district(gap.org_unit, district):
            continue
        own = [e for e in evs if e.household_id == household_id]
        restored = max(
            (
                e.us
                for e in own
                if e.type == lc.RESTORED
                and (e.data.get("child_ref") or "") == child_ref
                and e.us >= gap.us
            ),
            default=None,
        )
        due = gap.us + lc.GUARDIANSHIP_FOLLOWUP_MICROS
        cared = any(e.type in (lc.FOLLOWUP, lc.RESTORED) and gap.us <= e.us <= due for e in own)
        rows.append(
            {
                "household_id": name(household_id),
                "child_ref": child_ref,
                "org_unit": gap.org_unit,
                "district": district_of(gap.org_unit),
                "gap_recorded_at": lc.iso(gap.us),
                "restored_at": lc.iso(restored),
                "last_followup_at": lc.iso(
                    max((e.us for e in own if e.type == lc.FOLLOWUP), default=None)
                ),
                "overdue": due <= now and not cared,
            }
        )
    return sorted(rows, key=lc.guardianship_sort_key)


def daily_counts(
    events: Sequence[Record], lifecycle: Sequence[Record], as_of: int | None = None
) -> tuple[list[Row], list[Row]]:
    """Reference for ``analytics.daily_counts``: (event rows, lifecycle rows).

    Days are Harbin days (``local_date``), as users read them.

    A lifecycle record's district and level are its warning's (from the raise
    among all records, whatever ``as_of``), None when the raise is unknown.
    """
    now = _now(events, lifecycle, as_of)
    if now is None:
        return [], []
    ev_counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for ev in _events(events, now):
        ev_counts[(local_date(ev.us).isoformat(), district_of(ev.org_unit), ev.type)] += 1
    raises = {r["warning_id"]: r for r in lifecycle if r["type"] == lc.RAISED}
    lc_counts: dict[tuple[str, str | None, str | None, str], int] = defaultdict(int)
    # the ``lifecycle`` table's rows: one per (warning, type, to_level), the latest kept
    kept = _dedupe(
        (r for r in lifecycle if not _is_referral(r)),
        lambda r: (r["warning_id"], r["type"], r.get("to_level") or ""),
        "seq",
    )
    for r in kept:
        if parse_instant(r["at"]) > now:
            continue
        raise_ = raises.get(r["warning_id"])
        day = local_date(parse_instant(r["at"])).isoformat()
        district = district_of(raise_["org_unit"]) if raise_ else None
        lc_counts[(day, district, raise_["level"] if raise_ else None, r["type"])] += 1
    ev_rows = [
        {"day": d, "district": dist, "type": t, "events": n}
        for (d, dist, t), n in ev_counts.items()
    ]
    lc_rows = [
        {"day": d, "district": dist, "level": lvl, "type": t, "records": n}
        for (d, dist, lvl, t), n in lc_counts.items()
    ]
    ev_rows.sort(key=lambda r: (r["day"], r["district"], r["type"]))
    lc_rows.sort(
        key=lambda r: tuple(
            "" if r[k] is None else r[k] for k in ("day", "district", "level", "type")
        )
    )
    return ev_rows, lc_rows


REFERRAL_ANSWER_MICROS = 72 * 60 * 60 * 1_000_000


def referral_ledger(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    erased: Collection[str] = (),
    pseudonym_secret: bytes | None = None,
) -> list[Row]:
    """联动台账 — one row per referral sent ≤ now: org_unit and district are the
    household's owner's as of now; the answer (accepted / declined) and the close
    ≤ now; overdue: unanswered and sent + 72 h < now."""
    now = _now(events, lifecycle, as_of)
    if now is None:
        return []
    district, name = lc.district_code(district), _Names(erased, pseudonym_secret)
    by_household: dict[str, list[_Ev]] = defaultdict(list)
    for ev in _events(events, now):
        by_household[ev.household_id].append(ev)
    records: dict[tuple[str, str], dict[str, Record]] = defaultdict(dict)
    for r in _referral_records(lifecycle, now):
        records[(r["household_id"], r["referral_id"])][r["type"]] = r
    rows = []
    for (household_id, referral_id), kinds in records.items():
        sent_record = kinds.get("referral.sent")
        if sent_record is None or household_id not in by_household:
            continue
        owner = _ownership(by_household[household_id]).owner
        if not _in_district(owner, district):
            continue
        sent = parse_instant(sent_record["at"])
        answer = kinds.get("referral.accepted") or kinds.get("referral.declined")
        answered = None if answer is None else parse_instant(answer["at"])
        closed = kinds.get("referral.closed")
        if closed is not None:
            status = "closed"
        elif answer is not None:
            status = "accepted" if answer["type"] == "referral.accepted" else "declined"
        else:
            status = "sent"
        rows.append(
            {
                "referral_id": referral_id,
                "household_id": name(household_id),
                "org_unit": owner,
                "district": district_of(owner),
                "agency": sent_record["agency"],
                "basis": sent_record["basis"],
                "warning_id": sent_record.get("warning_id"),
                "sent_at": lc.iso(sent),
                "answered_at": lc.iso(answered),
                "status": status,
                "outcome": None if closed is None else closed["outcome"],
                "minutes_to_answer": lc.minutes_between(sent, answered),
                "overdue": answered is None and sent + REFERRAL_ANSWER_MICROS < now,
            }
        )
    return sorted(
        rows,
        key=lambda r: (parse_instant(r["sent_at"]), r["referral_id"], r["household_id"]),
    )


_SLA_HOURS = {"red": 24, "orange": 72, "yellow": 168}
_HOUR = 60 * 60 * 1_000_000


def _share(within: int, due: int) -> dict[str, Any]:
    return {"due": due, "within": within, "share": round(within / due, 4) if due else None}


def _scope(unit: str, prefix: str) -> bool:
    return unit.startswith(prefix)


def _blank_district() -> dict[str, Any]:
    levels = {lv: [0, 0] for lv in lc.HANDLING_LEVELS}
    return {
        "ack": [0, 0], "ack_levels": levels, "asm": [0, 0],
        "asm_levels": {lv: [0, 0] for lv in lc.HANDLING_LEVELS},
        "ref": defaultdict(lambda: [0, 0]), "gap": [0, 0],
        "petitions": [0, defaultdict(int), defaultdict(int)],
        "coverage": [0, 0, 0, 0],
    }


def timeliness(
    events: Sequence[Record],
    lifecycle: Sequence[Record],
    as_of: int | None = None,
    district: str | None = None,
    *,
    scope_prefix: str = "",
) -> dict[str, Any]:
    """Reference for ``projections.timeliness.timeliness`` (its module doc defines each
    figure), written from those sentences over the records ≤ now. ``scope_prefix``: the
    code prefix of the reader's scope ('' for all)."""
    now = _now(events, lifecycle, as_of)
    out: dict[str, Any] = {
        "as_of": None if as_of is None else lc.iso(as_of), "districts": {}}
    if now is None:
        return out
    code = lc.district_code(district)
    prefix = max(scope_prefix, code[:6] if code else "", key=len)
    found: dict[str, dict[str, Any]] = defaultdict(_blank_district)
    records = _lifecycle(lifecycle, now)
    by_warning: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_warning[r["warning_id"]].append(r)
    for rows in by_warning.values():
        raise_ = next((r for r in rows if r["type"] == lc.RAISED), None)
        if raise_ is None or not _scope(raise_["org_unit"], prefix):
            continue
        d = found[district_of(raise_["org_unit"])]
        raised = parse_instant(raise_["at"])
        sla = _SLA_HOURS[raise_["level"]] * _HOUR
        ordered = sorted(rows, key=lambda r: (parse_instant(r["at"]), r["seq"]))
        responses = [parse_instant(r["at"]) for r in ordered
                     if r["type"] in (lc.ACKNOWLEDGED, lc.RESOLVED)]
        response = min(responses, default=None)
        until = now if response is None else response
        # the levels it entered before its response: the raise, then each escalation
        entries = [(raised, raise_["handling_level"])] + [
            (parse_instant(r["at"]), r["to_level"]) for r in ordered
            if r["type"] == lc.ESCALATED and parse_instant(r["at"]) <= until
        ]
        entry, level = entries[-1]
        within = response is not None and response <= entry + sla
        due = response is not None or entry + sla <= now
        d["ack"][0] += due
        d["ack"][1] += within
        for i, (_, lv) in enumerate(entries):
            last = i == len(entries) - 1
            d["ack_levels"][lv][0] += (not last) or due
            d["ack_levels"][lv][1] += last and within
        assessments = [parse_instant(r["at"]) for r in ordered if r["type"] == ASSESSED]
        first = min(assessments, default=None)
        limit = raised + 48 * _HOUR
        a_within = first is not None and first <= limit
        a_due = a_within or limit <= now
        decisive = first if a_within and first is not None else limit
        handling = raise_["handling_level"]
        for r in ordered:  # the handling level at the decisive instant
            if parse_instant(r["at"]) > decisive:
                break
            if r["type"] == lc.ESCALATED:
                handling = r["to_level"]
            elif r["type"] == REOPENED:
                handling = "community"
        d["asm"][0] += a_due
        d["asm"][1] += a_within
        d["asm_levels"][handling][0] += a_due
        d["asm_levels"][handling][1] += a_within
    for row in referral_ledger(events, lifecycle, now):
        if not _scope(row["org_unit"], prefix):
            continue
        sent = parse_instant(row["sent_at"])
        answered = None if row["answered_at"] is None else parse_instant(row["answered_at"])
        counts = found[row["district"]]["ref"][row["agency"]]
        counts[0] += answered is not None or sent + REFERRAL_ANSWER_MICROS <= now
        counts[1] += answered is not None and answered - sent <= REFERRAL_ANSWER_MICROS
    evs = _events(events, now)
    care: dict[str, list[int]] = defaultdict(list)
    for e in evs:
        if e.type in (lc.FOLLOWUP, lc.RESTORED):
            care[e.household_id].append(e.us)
    for e in evs:
        if e.type == lc.GAP and _scope(e.org_unit, prefix):
            window = e.us + lc.GUARDIANSHIP_FOLLOWUP_MICROS
            cared = any(e.us <= c <= window for c in care[e.household_id])
            gap = found[district_of(e.org_unit)]["gap"]
            gap[0] += cared or window <= now
            gap[1] += cared
        if e.type == lc.PETITION and _scope(e.org_unit, prefix):
            petitions = found[district_of(e.org_unit)]["petitions"]
            petitions[0] += 1
            petitions[1][e.data.get("channel") or ""] += 1
            petitions[2][e.data.get("category") or ""] += 1
    for c in coverage_ledger(events, lifecycle, now, code):
        if _scope(c["community"], prefix):
            sums = found[c["district"]]["coverage"]
            for i, key in enumerate(("registered", "covered", "key_registered", "key_covered")):
                sums[i] += c[key]
    for name in sorted(found):
        d = found[name]
        refs = {agency: _share(w, n) for agency, (n, w) in sorted(d["ref"].items())}
        registered, covered, key_registered, key_covered = d["coverage"]
        out["districts"][name] = {
            "acknowledged_within_sla": {
                **_share(d["ack"][1], d["ack"][0]),
                "by_level": {lv: _share(w, n) for lv, (n, w) in d["ack_levels"].items()},
            },
            "assessed_within_48h": {
                **_share(d["asm"][1], d["asm"][0]),
                "by_level": {lv: _share(w, n) for lv, (n, w) in d["asm_levels"].items()},
            },
            "referrals_answered_within_72h": {
                **_share(sum(w for _, w in d["ref"].values()),
                         sum(n for n, _ in d["ref"].values())),
                "by_agency": refs,
            },
            "guardianship_followed_up_within_7d": _share(d["gap"][1], d["gap"][0]),
            "petitions": {
                "total": d["petitions"][0],
                "by_channel": dict(sorted(d["petitions"][1].items())),
                "by_category": dict(sorted(d["petitions"][2].items())),
            },
            "screening_coverage": {
                "registered": registered, "covered": covered,
                "key_registered": key_registered, "key_covered": key_covered,
                "coverage": lc.coverage_ratio(covered, registered),
            },
        }
    return out
