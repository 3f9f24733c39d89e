"""A small, naive, independent model of DESIGN.md's default rule pack.

Written from DESIGN.md ("The default rule pack — exact semantics"), not from
``rules/engine.py``. It keeps nothing but the list of inputs each household
received (events and clock advances) and recomputes every lifecycle record from
that full list on every question: slow, obviously right, easy to read.

Readings of DESIGN.md where it is not explicit (kept deliberately simple):

* When one event triggers several rules, warnings are raised in the order of
  the rules table (violence-injury, repeat-petitions, escalating-dispute,
  vulnerable-person-harm, guardianship-no-followup, mediation-failed).
* An ignored duplicate and a rejected conflict are not "processed": they fire
  no deadline and change nothing.
* ``guardianship-no-followup`` looks at follow-ups and restorations of the
  household (any child_ref), as the table says.
* After a warning reaches city level the next escalation deadline may still be
  scheduled, but firing it changes nothing.
* ``warning.assigned`` (added after DESIGN's table, same command rules as an
  acknowledgement): an open warning of the household gets a record each time its
  assignee changes; it never stops escalation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HOUR = 3_600_000_000
DAY = 24 * HOUR
LEVELS = ["community", "street", "district", "city"]
SLA = {"red": 24 * HOUR, "orange": 72 * HOUR, "yellow": 168 * HOUR}
RULE_LEVEL = {
    "violence-injury": "red",
    "repeat-petitions": "orange",
    "escalating-dispute": "orange",
    "vulnerable-person-harm": "red",
    "guardianship-no-followup": "yellow",
    "mediation-failed": "yellow",
}
HARM = {"domestic_violence_signs", "sexual_violence_signs", "injury_observed", "child_neglect"}


def iso(us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return moment.isoformat().replace("+00:00", "Z")


def warning_id(rule_id: str, household_id: str, trigger_event_id: str) -> str:
    digest = hashlib.sha256(f"{rule_id}:{household_id}:{trigger_event_id}".encode())
    return "w-" + digest.hexdigest()[:16]


def handling_org(org: str, level: int) -> str:
    return [org, org[:9] + "000", org[:6] + "000000", org[:4] + "00000000"][level]


@dataclass(frozen=True)
class Ev:
    """A valid event as the model sees it (``at`` in microseconds)."""

    event_id: str
    type: str
    at: int
    org_unit: str
    household_id: str
    data: dict[str, Any]

    def content(self) -> tuple[Any, ...]:
        return (self.type, self.at, self.org_unit, self.household_id, repr(sorted(
            self.data.items())))


@dataclass
class _W:
    wid: str
    rule: str
    level: str
    org: str
    handling: int = 0
    acked: bool = False
    closed: bool = False
    assignee: str | None = None


@dataclass
class _Sim:
    household_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    processed: list[Ev] = field(default_factory=list)
    deadlines: list[tuple[int, int, str, Any]] = field(default_factory=list)
    created: int = 0
    warnings: dict[str, _W] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    #: DESIGN "Ownership": the first processed event's org unit (no v1 event moves it).
    owner: str | None = None

    # ---------------------------------------------------------------- deadlines
    def schedule(self, due: int, kind: str, payload: Any) -> None:
        self.deadlines.append((due, self.created, kind, payload))
        self.created += 1

    def fire(self, limit: int, inclusive: bool) -> None:
        while True:
            ready = [d for d in self.deadlines if d[0] < limit or (inclusive and d[0] == limit)]
            if not ready:
                return
            first = min(ready, key=lambda d: (d[0], d[1]))
            self.deadlines.remove(first)
            due, _, kind, payload = first
            if kind == "esc":
                self.escalate(payload, due)
            else:
                self.gap_due(payload, due)

    def escalate(self, wid: str, due: int) -> None:
        w = self.warnings[wid]
        if w.closed or w.acked or w.handling >= 3:
            return
        w.handling += 1
        self.records.append({
            "type": "warning.escalated", "warning_id": wid, "household_id": self.household_id,
            "from_level": LEVELS[w.handling - 1], "to_level": LEVELS[w.handling],
            "handling_org_unit": handling_org(w.org, w.handling), "at": iso(due),
        })
        self.schedule(due + SLA[w.level], "esc", wid)

    def gap_due(self, gap: Ev, due: int) -> None:
        covered = any(
            e.type in ("followup.recorded", "child.guardianship_restored")
            and gap.at <= e.at <= gap.at + 7 * DAY
            for e in self.processed
        )
        if not covered:
            self.raise_("guardianship-no-followup", gap, due)

    # ---------------------------------------------------------------- warnings
    def raise_(self, rule: str, trigger: Ev, at: int) -> None:
        if any(w.rule == rule and not w.closed for w in self.warnings.values()):
            return
        wid = warning_id(rule, self.household_id, trigger.event_id)
        level = RULE_LEVEL[rule]
        handling = self.owner or trigger.org_unit
        self.warnings[wid] = _W(wid, rule, level, handling)
        self.order.append(wid)
        self.records.append({
            "type": "warning.raised", "warning_id": wid, "rule_id": rule,
            "household_id": self.household_id, "level": level, "org_unit": trigger.org_unit,
            "handling_level": "community", "handling_org_unit": handling, "at": iso(at),
        })
        self.schedule(at + SLA[level], "esc", wid)

    def transition(self, kind: str, wid: str, at: int) -> None:
        self.records.append(
            {"type": kind, "warning_id": wid, "household_id": self.household_id, "at": iso(at)}
        )

    # ---------------------------------------------------------------- events
    def event(self, ev: Ev) -> str:
        if ev.event_id in self.seen:
            return "duplicate" if self.seen[ev.event_id] == ev.content() else "rejected"
        self.fire(ev.at, inclusive=False)
        self.seen[ev.event_id] = ev.content()
        if self.owner is None:
            self.owner = ev.org_unit
        self.processed.append(ev)
        t, d = ev.at, ev.data
        if ev.type == "warning.acknowledged":
            w = self.warnings.get(d["warning_id"])
            if w is not None and not w.closed and not w.acked:
                w.acked = True
                self.transition("warning.acknowledged", w.wid, t)
        elif ev.type == "warning.assigned":
            w = self.warnings.get(d["warning_id"])
            if w is not None and not w.closed and w.assignee != d["assignee"]:
                w.assignee = d["assignee"]
                self.records.append({
                    "type": "warning.assigned", "warning_id": w.wid,
                    "household_id": self.household_id, "assignee": w.assignee, "at": iso(t),
                })
        elif ev.type == "warning.resolved":
            w = self.warnings.get(d["warning_id"])
            if w is not None and not w.closed:
                w.closed = True
                self.transition("warning.resolved", w.wid, t)
        elif ev.type == "case.resolved":
            for wid in self.order:
                w = self.warnings[wid]
                if not w.closed:
                    w.closed = True
                    self.transition("warning.resolved", wid, t)
        elif ev.type == "child.guardianship_gap_recorded":
            self.schedule(t + 7 * DAY, "gap", ev)
        for rule in RULE_LEVEL:
            if self.triggers(rule, ev):
                self.raise_(rule, ev, t)
        return "processed"

    def triggers(self, rule: str, ev: Ev) -> bool:
        t, d = ev.at, ev.data
        visit = ev.type == "screening.visit_recorded"
        petition = ev.type == "petition.received"
        indicators = set(d.get("indicators", ())) if visit else set()
        if rule == "violence-injury":
            if visit:
                return bool(indicators & {"injury_observed", "sexual_violence_signs"})
            if petition:
                return d["category"] == "sexual_assault" or (
                    d["category"] == "domestic_violence" and d["urgent"] is True
                )
            return False
        if rule == "repeat-petitions":
            if not petition:
                return False
            n = sum(
                1 for e in self.processed
                if e.type == "petition.received" and t - 30 * DAY <= e.at <= t
            )
            return n >= 3
        if rule == "escalating-dispute":
            if "threats" not in indicators:
                return False
            n = sum(1 for e in self.processed if _dispute(e) and t - 60 * DAY <= e.at <= t)
            return n >= 2
        if rule == "vulnerable-person-harm":
            if not indicators & HARM:
                return False
            return any(
                e.type == "screening.visit_recorded"
                and "intellectual_disability" in e.data.get("indicators", ())
                for e in self.processed  # this visit is already in processed
            )
        if rule == "mediation-failed":
            return ev.type == "mediation.concluded" and d["outcome"] == "failed"
        return False  # guardianship-no-followup: deadline-driven only


def _dispute(e: Ev) -> bool:
    if e.type == "screening.visit_recorded":
        return "marital_conflict" in e.data.get("indicators", ())
    if e.type == "petition.received":
        return e.data["category"] in ("marriage_family_dispute", "domestic_violence")
    return False


class Model:
    """Inputs per household; every answer recomputed from the full input list."""

    def __init__(self) -> None:
        self.inputs: dict[str, list[tuple[str, Any]]] = {}

    def _replay(self, household_id: str) -> tuple[_Sim, list[str]]:
        sim = _Sim(household_id)
        statuses: list[str] = []
        for kind, value in self.inputs.get(household_id, []):
            if kind == "event":
                statuses.append(sim.event(value))
            else:
                sim.fire(value, inclusive=True)
        return sim, statuses

    def apply(self, ev: Ev) -> str:
        """Record an event; return its status (processed / duplicate / rejected)."""
        self.inputs.setdefault(ev.household_id, []).append(("event", ev))
        return self._replay(ev.household_id)[1][-1]

    def advance(self, household_id: str, until: int) -> None:
        self.inputs.setdefault(household_id, []).append(("advance", until))

    def records(self, household_id: str) -> list[dict[str, Any]]:
        return self._replay(household_id)[0].records

    def open_warnings(self, household_id: str) -> list[str]:
        sim = self._replay(household_id)[0]
        return [wid for wid in sim.order if not sim.warnings[wid].closed]

    def all_warnings(self, household_id: str) -> list[str]:
        return list(self._replay(household_id)[0].order)
