"""Randomized but plausible test data in exactly the processor's output shapes.

Events are accepted envelopes (``offset`` = processing order, which is not
time order: field apps sync late); lifecycle records follow DESIGN's
"Lifecycle output" with ``seq``. Instants sit on a coarse grid (whole days,
quarter days, sometimes +1 µs) so that window edges — 30/90 days, 7 days,
equal instants broken by offset — are hit exactly and often.

Every free-text field carries ``PERSONAL_MARK`` so tests can prove it never
reaches the warehouse.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

from events.instants import (
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    format_instant,
    parse_instant,
    to_datetime,
)
from events.orgunits import HARBIN_DISTRICTS, Level, ancestor_at

PERSONAL_MARK = "PERSONAL-TEXT-张三"
T0 = parse_instant("2026-01-01T08:00:00+08:00")
CST = timezone(timedelta(hours=8))
SLA_HOURS = {"red": 24, "orange": 72, "yellow": 168}
RULES = {
    "screening.visit_recorded": [("violence-injury", "red"), ("vulnerable-person-harm", "red")],
    "petition.received": [("repeat-petitions", "orange"), ("violence-injury", "red")],
    "mediation.concluded": [("mediation-failed", "yellow")],
    "child.guardianship_gap_recorded": [("guardianship-no-followup", "yellow")],
}
INDICATORS = [
    "marital_conflict",
    "threats",
    "domestic_violence_signs",
    "injury_observed",
    "sexual_violence_signs",
    "child_neglect",
    "guardianship_gap",
    "intellectual_disability",
    "economic_hardship",
    "alcohol_abuse",
    "isolation",
]
REGISTERED = "household.registered"
TRANSFERRED = "household.transferred"
FLAGS = ["key_household", "rural", "intellectual_disability", "single_parent"]
TYPES = {
    "screening.visit_recorded": 5,
    "petition.received": 4,
    "followup.recorded": 3,
    "child.guardianship_gap_recorded": 2,
    "child.guardianship_restored": 1,
    "mediation.opened": 1,
    "mediation.concluded": 1,
    "case.resolved": 1,
}


def cst(us: int) -> str:
    """ISO 8601 with a +08:00 offset, as Harbin's field apps send it."""
    return to_datetime(us).astimezone(CST).isoformat()


@dataclass
class Dataset:
    events: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    edges: set[int] = field(default_factory=set)

    def until(self, as_of: int) -> Dataset:
        """Only what was known at ``as_of`` (events by occurred_at, records by at)."""
        return Dataset(
            [e for e in self.events if parse_instant(e["occurred_at"]) <= as_of],
            [r for r in self.lifecycle if parse_instant(r["at"]) <= as_of],
        )

    def as_of_candidates(self, rng: random.Random, count: int) -> list[int]:
        edges = sorted(self.edges)
        return sorted(rng.sample(edges, min(count, len(edges))))


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        districts = self.rng.sample(sorted(HARBIN_DISTRICTS), 3)
        self.communities = [f"{d}{s:03d}{c:03d}" for d in districts for s in (1, 2) for c in (1, 2)]
        self.data = Dataset()
        self.pending_lifecycle: list[tuple[int, int, dict[str, Any]]] = []

    def instant(self) -> int:
        day = self.rng.randint(0, 150)
        return (
            T0
            + day * MICROS_PER_DAY
            + self.rng.choice([0, 0, 6, 12]) * MICROS_PER_HOUR
            + (1 if self.rng.random() < 0.1 else 0)
        )

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def payload(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        child = rng.choice(["c1", "c2"])
        makers: dict[str, Callable[[], dict[str, Any]]] = {
            "screening.visit_recorded": lambda: {
                "indicators": rng.sample(INDICATORS, rng.randint(0, 3)),
                "notes": f"{PERSONAL_MARK} visit notes",
            },
            "petition.received": lambda: {
                "channel": rng.choice(["hotline_12338", "walk_in", "letter", "online"]),
                "category": rng.choice(["marriage_family_dispute", "domestic_violence", "other"]),
                "urgent": rng.random() < 0.3,
            },
            "followup.recorded": lambda: {"action": rng.choice(["home_visit", "phone_call"])},
            "child.guardianship_gap_recorded": lambda: {
                "child_ref": child,
                "reason": f"{PERSONAL_MARK} migrant",
            },
            "child.guardianship_restored": lambda: {"child_ref": child},
            "mediation.opened": lambda: {"mediation_id": f"m{rng.randint(1, 5)}"},
            "mediation.concluded": lambda: {
                "mediation_id": f"m{rng.randint(1, 5)}",
                "outcome": rng.choice(["reconciled", "failed"]),
            },
            "case.resolved": lambda: {
                "resolution": rng.choice(["resolved_locally", "resolved_locally", "referred"])
            },
        }
        return makers[kind]()

    def envelope(
        self, household: str, org_unit: str, kind: str, us: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        if self.rng.random() < 0.2:
            data["app_build"] = "2.3.1"  # a field outside the catalog: ignored
        return {
            "event_id": self.uuid(),
            "type": kind,
            "schema_version": 1,
            "occurred_at": cst(us),
            "recorded_at": None if self.rng.random() < 0.3 else format_instant(us + 5_000_000),
            "org_unit": org_unit,
            "household_id": household,
            "actor": None if self.rng.random() < 0.2 else f"cadre-{self.rng.randint(1, 9)}",
            "data": data,
        }

    def household(self, household: str, size: int) -> None:
        home = self.rng.choice(self.communities)
        self.register(household, home)
        for _ in range(size):
            kind = self.rng.choices(list(TYPES), weights=list(TYPES.values()))[0]
            org = home if self.rng.random() < 0.85 else self.rng.choice(self.communities)
            us = self.instant()
            event = self.envelope(household, org, kind, us, self.payload(kind))
            self.data.events.append(event)
            self.data.edges.update({us, us - 1, us + 1, us + 7 * MICROS_PER_DAY})
            self.data.edges.update(us + d * MICROS_PER_DAY for d in (30, 90, 180))
            if kind in RULES and self.rng.random() < 0.35:
                self.warning(event, us)

    def register(self, household: str, home: str) -> None:
        """Catalog v2: most households registered (some twice, some from another
        community — a later one is then ignored), some transferred, validly or not.
        Log order is shuffled later, so the ownership fold meets every order."""
        rng = self.rng
        moves: list[tuple[str, str, dict[str, Any]]] = []
        if rng.random() < 0.7:
            for _ in range(rng.choice([1, 1, 1, 2])):
                flags = rng.sample(FLAGS, rng.randint(0, 2))
                org = home if rng.random() < 0.8 else rng.choice(self.communities)
                moves.append((REGISTERED, org, {"flags": flags, "notes": f"{PERSONAL_MARK}"}))
        if rng.random() < 0.25:
            org = home if rng.random() < 0.8 else rng.choice(self.communities)
            to = rng.choice(self.communities)
            if rng.random() < 0.1:  # a street is no community: the transfer changes nothing
                to = to[:9] + "000"
            moves.append((TRANSFERRED, org, {"to_org_unit": to, "reason": "moved"}))
        for kind, org, data in moves:
            us = self.instant()
            self.data.events.append(self.envelope(household, org, kind, us, data))
            self.data.edges.update({us, us - 1})
            self.data.edges.update(us + d * MICROS_PER_DAY for d in (30, 180))

    def warning(self, trigger: dict[str, Any], raised: int) -> None:
        rng = self.rng
        rule_id, level = rng.choice(RULES[trigger["type"]])
        household, org_unit = trigger["household_id"], trigger["org_unit"]
        text = f"{rule_id}:{household}:{trigger['event_id']}"
        warning_id = "w-" + hashlib.sha256(text.encode()).hexdigest()[:16]
        self.emit(
            raised,
            {
                "type": "warning.raised",
                "warning_id": warning_id,
                "rule_id": rule_id,
                "household_id": household,
                "level": level,
                "org_unit": org_unit,
                "handling_level": "community",
                "handling_org_unit": org_unit,
            },
        )
        sla = SLA_HOURS[level] * MICROS_PER_HOUR
        delay = rng.randint(1, 5 * SLA_HOURS[level] * 60) * 60_000_000
        ack = raised + delay if rng.random() < 0.6 else None
        current, due, horizon = Level.COMMUNITY, raised + sla, T0 + 160 * MICROS_PER_DAY
        while current < Level.CITY and (ack is None or ack > due) and due < horizon:
            nxt = Level(current + 1)
            self.emit(
                due,
                {
                    "type": "warning.escalated",
                    "warning_id": warning_id,
                    "household_id": household,
                    "from_level": current.label,
                    "to_level": nxt.label,
                    "handling_org_unit": ancestor_at(org_unit, nxt),
                },
            )
            self.data.edges.add(due)
            current, due = nxt, due + sla
        resolved = None
        if rng.random() < 0.5:
            resolved = (ack or raised) + rng.randint(0, 20) * MICROS_PER_DAY // 4
        for kind, at in (("warning.acknowledged", ack), ("warning.resolved", resolved)):
            if at is None:
                continue
            self.emit(at, {"type": kind, "warning_id": warning_id, "household_id": household})
            data: dict[str, Any] = {"warning_id": warning_id, "by": "chair-1"}
            if kind == "warning.resolved":
                data["note"] = f"{PERSONAL_MARK} resolution note"
            self.data.events.append(self.envelope(household, org_unit, kind, at, data))
            self.data.edges.update({at, at - 1})

    def emit(self, at: int, record: dict[str, Any]) -> None:
        record["at"] = format_instant(at)
        self.pending_lifecycle.append((at, len(self.pending_lifecycle), record))

    def finish(self) -> Dataset:
        self.rng.shuffle(self.data.events)  # log order is not time order
        for offset, event in enumerate(self.data.events, start=1):
            event["offset"] = offset
        for seq, (_, _, record) in enumerate(sorted(self.pending_lifecycle), start=1):
            record["seq"] = seq
            self.data.lifecycle.append(record)
        return self.data


def make_dataset(seed: int, households: int = 30, max_events: int = 16) -> Dataset:
    gen = _Gen(seed)
    for n in range(households):
        name = "户-O'Hara-0" if n == 0 else f"HH-{seed}-{n:03d}"  # quote + non-ASCII id
        gen.household(name, gen.rng.randint(1, max_events))
    return gen.finish()
