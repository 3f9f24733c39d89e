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

from events.instants import MICROS_PER_DAY, parse_instant, to_datetime
from events.orgunits import Level, OrgUnitError, district_of, level_of
from privacy.pseudonym import erased_label, household_key
from projections import ledger_common as lc

Row = dict[str, Any]
Record = Mapping[str, Any]


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


def _lifecycle_key(r: Record) -> tuple[str, str, str]:
    return (r["warning_id"], r["type"], r.get("to_level") or "")


def _lifecycle(records: Sequence[Record], now: int) -> list[Record]:
    return [r for r in _dedupe(records, _lifecycle_key, "seq") if parse_instant(r["at"]) <= now]


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
    raise_: Record
    acks: list[int] = field(default_factory=list)
    resolves: list[int] = field(default_factory=list)
    escalations: list[Record] = field(default_factory=list)


def _warnings(records: Sequence[Record]) -> dict[str, _Warning]:
    """Warnings with a raise among ``records``, each with its transitions."""
    found = {r["warning_id"]: _Warning(r) for r in records if r["type"] == lc.RAISED}
    for r in records:
        w = found.get(r["warning_id"])
        if w is None or r["type"] == lc.RAISED:
            continue
        at = parse_instant(r["at"])
        if r["type"] == lc.ACKNOWLEDGED:
            w.acks.append(at)
        elif r["type"] == lc.RESOLVED:
            w.resolves.append(at)
        elif r["type"] == lc.ESCALATED:
            w.escalations.append(r)
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
        resolved = min(w.resolves, default=None)
        latest = max(w.escalations, key=lambda r: (parse_instant(r["at"]), r["seq"]), default=None)
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
                "status": lc.warning_status(ack, resolved),
                "handling_level": latest["to_level"] if latest else raise_["handling_level"],
                "handling_org_unit": (latest or raise_)["handling_org_unit"],
                "escalations": len(w.escalations),
                "highest_handling_level": max(reached, key=lc.HANDLING_LEVELS.index),
                "minutes_to_acknowledge": lc.minutes_between(raised, ack),
                "minutes_to_resolve": lc.minutes_between(raised, resolved),
            }
        )
    return sorted(rows, key=lc.warning_sort_key)


def _open_by_household(records: Sequence[Record]) -> dict[str, list[str]]:
    """household_id → levels of its warnings raised and not resolved."""
    out: dict[str, list[str]] = defaultdict(list)
    for w in _warnings(records).values():
        if not w.resolves:
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

    A lifecycle record's district and level are its warning's (from the raise
    among all records, whatever ``as_of``), None when the raise is unknown.
    """
    now = _now(events, lifecycle, as_of)
    if now is None:
        return [], []
    ev_counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for ev in _events(events, now):
        ev_counts[(to_datetime(ev.us).date().isoformat(), district_of(ev.org_unit), ev.type)] += 1
    raises = {r["warning_id"]: r for r in lifecycle if r["type"] == lc.RAISED}
    lc_counts: dict[tuple[str, str | None, str | None, str], int] = defaultdict(int)
    for r in _lifecycle(lifecycle, now):
        raise_ = raises.get(r["warning_id"])
        day = to_datetime(parse_instant(r["at"])).date().isoformat()
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
