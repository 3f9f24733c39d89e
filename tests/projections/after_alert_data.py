"""Test data with every catalog v2 type after an alert, in the processor's shapes.

``datagen``'s households and warnings, and then: assessments (some twice, some
with the same instant as a reopening), reopenings of resolved warnings (some at
the very instant of the resolution, some twice) followed by a new escalation,
acknowledgement and resolution, consent recorded and withdrawn, and referrals
sent (with or without a warning), accepted, declined, closed, or left
unanswered past 72 hours. Events carry the commands, lifecycle records follow
the shapes of DESIGN "Lifecycle records added". Answers fall exactly on the
72-hour edge now and then, and every instant that matters is an ``as_of`` edge.
"""

from __future__ import annotations

from typing import Any

from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR, parse_instant
from events.orgunits import Level, ancestor_at
from tests.projections.datagen import PERSONAL_MARK, SLA_HOURS, Dataset, _Gen

AGENCIES = ["police", "court", "civil_affairs", "legal_aid", "shelter"]
RISKS = ["low", "medium", "high"]
ANSWER_US = 72 * MICROS_PER_HOUR


class AfterAlertGen(_Gen):
    """``datagen._Gen`` whose warnings are assessed, reopened and referred."""

    def warning(self, trigger: dict[str, Any], raised: int) -> None:
        before = len(self.pending_lifecycle)
        super().warning(trigger, raised)
        records = [r for _, _, r in self.pending_lifecycle[before:]]
        raise_ = records[0]
        self.follow_up(raise_, raised, records[1:])

    def command(self, household: str, org: str, kind: str, at: int, data: dict[str, Any]) -> None:
        self.data.events.append(self.envelope(household, org, kind, at, dict(data)))
        self.data.edges.update({at, at - 1})

    def follow_up(self, raise_: dict[str, Any], raised: int, later: list[dict[str, Any]]) -> None:
        rng = self.rng
        wid, household, org = raise_["warning_id"], raise_["household_id"], raise_["org_unit"]
        at_of = {r["type"]: parse_instant(r["at"]) for r in later}
        self.edges_of_raise(raised)
        risk = None
        if rng.random() < 0.5:  # assessed (研判), some within 48 h, some later
            at = raised + rng.choice([0, 6, 24, 48, 48, 60, 120]) * MICROS_PER_HOUR
            risk = rng.choice(RISKS)
            self.assess(wid, household, org, at, risk)
            if rng.random() < 0.3:
                other = rng.choice([r for r in RISKS if r != risk])
                self.assess(wid, household, org, at + rng.choice([0, 1, 12]) * MICROS_PER_HOUR,
                            other)
                risk = other
        resolved = at_of.get("warning.resolved")
        if resolved is not None and rng.random() < 0.5:
            self.reopen_cycle(raise_, resolved, cycles=rng.choice([1, 1, 2]))
        if rng.random() < 0.3:
            self.refer(household, org, raised + rng.randint(0, 8) * MICROS_PER_DAY // 4, wid)

    def edges_of_raise(self, raised: int) -> None:
        self.data.edges.update(raised + h * MICROS_PER_HOUR for h in (24, 48, 72, 168))

    def assess(self, wid: str, household: str, org: str, at: int, risk: str) -> None:
        self.emit(at, {"type": "warning.assessed", "warning_id": wid,
                       "household_id": household, "risk": risk})
        self.command(household, org, "warning.assessed", at,
                     {"warning_id": wid, "by": "chair-1", "risk": risk,
                      "note": f"{PERSONAL_MARK} assessment"})

    def reopen_cycle(self, raise_: dict[str, Any], resolved: int, cycles: int) -> None:
        rng = self.rng
        wid, household, org = raise_["warning_id"], raise_["household_id"], raise_["org_unit"]
        sla = SLA_HOURS[raise_["level"]] * MICROS_PER_HOUR
        for _ in range(cycles):
            at = resolved + rng.choice([0, 0, 1, 3, 10]) * MICROS_PER_DAY
            self.emit(at, {"type": "warning.reopened", "warning_id": wid,
                           "household_id": household, "handling_org_unit": org})
            self.command(household, org, "warning.reopened", at,
                         {"warning_id": wid, "by": "chair-1",
                          "reason": f"{PERSONAL_MARK} came back"})
            self.data.edges.update({at + sla, at + sla - 1})
            ack = at + rng.choice([2, 30, 100]) * MICROS_PER_HOUR if rng.random() < 0.6 else None
            if ack is None or ack > at + sla:  # not acknowledged in time: up again
                street = ancestor_at(org, Level.STREET)
                self.emit(at + sla, {"type": "warning.escalated", "warning_id": wid,
                                     "household_id": household, "from_level": "community",
                                     "to_level": "street", "handling_org_unit": street})
            if ack is not None:
                self.emit(ack, {"type": "warning.acknowledged", "warning_id": wid,
                                "household_id": household})
                self.command(household, org, "warning.acknowledged", ack,
                             {"warning_id": wid, "by": "chair-2"})
            if rng.random() < 0.6:
                resolved = (ack or at) + rng.randint(0, 8) * MICROS_PER_DAY // 4
                self.emit(resolved, {"type": "warning.resolved", "warning_id": wid,
                                     "household_id": household})
                self.command(household, org, "warning.resolved", resolved,
                             {"warning_id": wid, "by": "chair-2",
                              "note": f"{PERSONAL_MARK} again"})
            else:
                return

    def refer(self, household: str, org: str, sent: int, wid: str | None) -> None:
        rng = self.rng
        agency = rng.choice(AGENCIES)
        basis = rng.choice(["consent", "emergency", "legal_duty"])
        if basis == "consent":
            self.command(household, org, "consent.recorded", sent - MICROS_PER_HOUR,
                         {"agencies": [agency, rng.choice(AGENCIES)], "by": "chair-1"})
        referral_id = self.uuid()
        base = {"referral_id": referral_id, "household_id": household, "agency": agency}
        self.emit(sent, {"type": "referral.sent", **base, "basis": basis,
                         "warning_id": wid if rng.random() < 0.7 else None})
        self.command(household, org, "referral.sent", sent,
                     {"referral_id": referral_id, "agency": agency, "basis": basis,
                      **({"warning_id": wid} if wid else {}),
                      "note": f"{PERSONAL_MARK} referral"})
        self.data.edges.update({sent + ANSWER_US, sent + ANSWER_US + 1})
        roll = rng.random()
        if roll < 0.25:  # never answered
            return
        answered = sent + rng.choice([1, 24, 72, 72, 100, 200]) * MICROS_PER_HOUR
        kind = "referral.accepted" if roll < 0.75 else "referral.declined"
        self.emit(answered, {"type": kind, **base})
        answer: dict[str, Any] = {"referral_id": referral_id, "by": f"{agency}-1"}
        if kind == "referral.declined":
            answer["reason"] = f"{PERSONAL_MARK} no capacity"
        self.command(household, org, kind, answered, answer)
        if kind == "referral.accepted" and rng.random() < 0.5:
            closed = answered + rng.randint(1, 20) * MICROS_PER_DAY
            outcome = rng.choice(["service_provided", "no_service", "withdrawn"])
            self.emit(closed, {"type": "referral.closed", **base, "outcome": outcome})
            self.command(household, org, "referral.closed", closed,
                         {"referral_id": referral_id, "by": f"{agency}-1", "outcome": outcome})
        if rng.random() < 0.3:
            self.command(household, org, "consent.withdrawn", answered + MICROS_PER_HOUR,
                         {"agencies": [agency], "by": "chair-1"})

    def household(self, household: str, size: int) -> None:
        super().household(household, size)
        if self.rng.random() < 0.3:  # a referral about no warning
            home = next(e["org_unit"] for e in self.data.events
                        if e["household_id"] == household)
            self.refer(household, home, self.instant(), None)


def make_after_alert_dataset(seed: int, households: int = 40, max_events: int = 14) -> Dataset:
    gen = AfterAlertGen(seed)
    for n in range(households):
        name = "户-O'Hara-0" if n == 0 else f"HH-{seed}-{n:03d}"
        gen.household(name, gen.rng.randint(1, max_events))
    return gen.finish()
