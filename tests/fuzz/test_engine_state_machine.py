"""The rule engine against the naive model of DESIGN.md (tests/fuzz/model.py).

A hypothesis state machine sends the same random events to ``rules.engine.Engine``
(through the codec, one ``HouseholdState`` per household, as every runtime does)
and to the model, for three households: visits with random indicator subsets,
petitions, mediations, follow-ups, guardianship gaps and restorations,
case.resolved, acknowledgements, assignments and resolutions naming raised (or
unknown, or other households') warnings, exact duplicates, conflicting re-uses of an id,
time jumps, late events, and clock advances. After every step the lifecycle
records of each household must be identical.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, decode
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from rules.state import HouseholdState
from streams.clock import EventTimeClock
from tests.fuzz.model import DAY, HOUR, Ev, Model, iso

T0 = 1_772_352_000_000_000  # 2026-03-01T08:00:00Z
UNIT = 12 * HOUR  # coarse steps make window edges and deadline ties likely
HOUSEHOLDS = ["hh-a", "hh-b", "hh-c"]
ORGS = ["230102001001", "230102001002", "230103002001"]
INDICATORS = [
    "marital_conflict", "threats", "domestic_violence_signs", "injury_observed",
    "sexual_violence_signs", "child_neglect", "guardianship_gap", "intellectual_disability",
    "economic_hardship", "alcohol_abuse", "isolation",
]
CATEGORIES = [
    "marriage_family_dispute", "domestic_violence", "sexual_assault", "child_rights",
    "property_rights", "other",
]
OUTCOMES = ["reconciled", "agreement", "failed", "referred"]
ACTIONS = ["home_visit", "phone_call", "legal_aid", "psych_counselling", "police_referral",
           "shelter"]
ASSIGNEES = ["cadre-1", "cadre-2"]
_NS = uuid.UUID("0b7f6d1c-2f0e-4d3a-8c39-5a3b1d9e2f10")
_ENGINE = Engine(load_pack())

households = st.sampled_from(HOUSEHOLDS)
#: Spans DESIGN.md measures: windows (30 d, 60 d), the gap deadline (7 d), SLAs (24/72/168 h).
SPANS = [7 * DAY, 30 * DAY, 60 * DAY, 24 * HOUR, 72 * HOUR, 0]
#: When an event happens: an offset from the cursor in units (late events are negative),
#: or exactly a DESIGN span before/after an earlier event (window edges, deadline ties).
offsets = st.one_of(
    st.integers(min_value=-30, max_value=4),
    st.tuples(st.integers(min_value=0, max_value=10**6), st.sampled_from(SPANS),
              st.sampled_from([1, 1, -1])),
)
epsilons = st.sampled_from([0, 0, 0, 0, 1, -1])
orgs = st.sampled_from(ORGS)


class EngineVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.states: dict[str, HouseholdState] = {hh: HouseholdState() for hh in HOUSEHOLDS}
        self.records: dict[str, list[dict[str, Any]]] = {hh: [] for hh in HOUSEHOLDS}
        self.sent: list[tuple[Ev, str]] = []
        self.cursor = T0
        self.counter = 0
        self.trace: list[str] = []

    @initialize()
    def start(self) -> None:
        self.cursor = T0

    # ------------------------------------------------------------------ plumbing

    def _line(self, ev: Ev, recorded_at: str | None = None) -> str:
        obj: dict[str, Any] = {
            "event_id": ev.event_id, "type": ev.type, "schema_version": 1,
            "occurred_at": iso(ev.at), "org_unit": ev.org_unit,
            "household_id": ev.household_id, "data": ev.data,
        }
        if recorded_at is not None:
            obj["recorded_at"] = recorded_at
        return json.dumps(obj)

    def _send(self, ev: Ev, recorded_at: str | None = None) -> None:
        line = self._line(ev, recorded_at)
        decoded = decode(line)
        assert isinstance(decoded, Decoded), (line, decoded)
        outcome = _ENGINE.apply(self.states[ev.household_id], decoded)
        self.records[ev.household_id].extend(outcome.records)
        status = self.model.apply(ev)
        self.trace.append(f"send {line}")
        assert outcome.status == status, (status, outcome)
        self.sent.append((ev, line))

    def _when(self, offset: Any, eps: int) -> int:
        if isinstance(offset, int):
            return self.cursor + offset * UNIT + eps
        pick, span, sign = offset
        if not self.sent:
            return self.cursor + eps
        return self.sent[pick % len(self.sent)][0].at + sign * span + eps

    def _new(self, type_: str, hh: str, offset: Any, eps: int, org: str,
             data: dict[str, Any]) -> None:
        self.counter += 1
        at = self._when(offset, eps)
        event_id = str(uuid.uuid5(_NS, f"e{self.counter}"))
        self._send(Ev(event_id, type_, at, org, hh, data))

    def _known_warnings(self) -> list[tuple[str, str]]:
        return [(hh, wid) for hh in HOUSEHOLDS for wid in self.model.all_warnings(hh)]

    # ------------------------------------------------------------------ time

    @rule(units=st.integers(min_value=0, max_value=40))
    def time_jump(self, units: int) -> None:
        self.cursor += units * UNIT
        self.trace.append(f"cursor += {units} units")

    @rule(hh=households, units=st.integers(min_value=-10, max_value=30), eps=epsilons,
          all_households=st.booleans())
    def advance(self, hh: str, units: int, eps: int, all_households: bool) -> None:
        until = self.cursor + units * UNIT + eps
        for target in HOUSEHOLDS if all_households else [hh]:
            self.records[target].extend(_ENGINE.advance(self.states[target], target, until))
            self.model.advance(target, until)
            self.trace.append(f"advance {target} until {iso(until)}")

    # ------------------------------------------------------------------ events

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          indicators=st.sets(st.sampled_from(INDICATORS), max_size=4))
    def visit(self, hh: str, offset: Any, eps: int, org: str, indicators: set[str]) -> None:
        data = {"indicators": sorted(indicators), "notes": ""}
        self._new("screening.visit_recorded", hh, offset, eps, org, data)

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          category=st.sampled_from(CATEGORIES), urgent=st.booleans())
    def petition(self, hh: str, offset: Any, eps: int, org: str, category: str,
                 urgent: bool) -> None:
        data = {"channel": "hotline_12338", "category": category, "urgent": urgent}
        self._new("petition.received", hh, offset, eps, org, data)

    @rule(hh=households, org=orgs, spacing=st.sampled_from([0, 10 * DAY, 15 * DAY, 30 * DAY]),
          eps=epsilons, category=st.sampled_from(CATEGORIES), count=st.integers(2, 3))
    def petition_series(self, hh: str, org: str, spacing: int, eps: int, category: str,
                        count: int) -> None:
        """Petitions spaced so that the 30-day window edge is hit exactly (± 1 µs)."""
        start = self.cursor
        for i in range(count):
            self.counter += 1
            at = start + i * spacing + (eps if i == count - 1 else 0)
            event_id = str(uuid.uuid5(_NS, f"e{self.counter}"))
            data = {"channel": "letter", "category": category, "urgent": False}
            self._send(Ev(event_id, "petition.received", at, org, hh, data))

    @rule(hh=households, org=orgs, eps=epsilons, gap_days=st.sampled_from([0, 30, 60]),
          first_is_petition=st.booleans(), signal=st.booleans())
    def dispute_pair(self, hh: str, org: str, eps: int, gap_days: int,
                     first_is_petition: bool, signal: bool) -> None:
        """A dispute signal, then a threats visit exactly 60 days (± 1 µs) or less later."""
        self.counter += 1
        first = str(uuid.uuid5(_NS, f"e{self.counter}"))
        if first_is_petition:
            data: dict[str, Any] = {"channel": "online", "category": "domestic_violence",
                                    "urgent": False}
            self._send(Ev(first, "petition.received", self.cursor, org, hh, data))
        else:
            data = {"indicators": ["marital_conflict"]}
            self._send(Ev(first, "screening.visit_recorded", self.cursor, org, hh, data))
        self.counter += 1
        second = str(uuid.uuid5(_NS, f"e{self.counter}"))
        indicators = ["marital_conflict", "threats"] if signal else ["threats"]
        self._send(Ev(second, "screening.visit_recorded", self.cursor + gap_days * DAY + eps,
                      org, hh, {"indicators": indicators}))

    @rule(hh=households, org=orgs, back=st.integers(min_value=-20, max_value=20),
          harm=st.sampled_from(["domestic_violence_signs", "child_neglect", "isolation"]),
          together=st.booleans())
    def vulnerable(self, hh: str, org: str, back: int, harm: str, together: bool) -> None:
        """intellectual_disability on one visit, a harm sign on another, in either time order."""
        self.counter += 1
        first = str(uuid.uuid5(_NS, f"e{self.counter}"))
        indicators = ["intellectual_disability"] + ([harm] if together else [])
        self._send(Ev(first, "screening.visit_recorded", self.cursor, org, hh,
                      {"indicators": sorted(indicators)}))
        self.counter += 1
        second = str(uuid.uuid5(_NS, f"e{self.counter}"))
        self._send(Ev(second, "screening.visit_recorded", self.cursor + back * UNIT, org, hh,
                      {"indicators": [harm]}))

    @rule(hh=households, offset=offsets, org=orgs, outcome=st.sampled_from(OUTCOMES))
    def mediation(self, hh: str, offset: Any, org: str, outcome: str) -> None:
        self._new("mediation.opened", hh, offset, -1, org, {"mediation_id": "m-1"})
        self._new("mediation.concluded", hh, offset, 0, org,
                  {"mediation_id": "m-1", "outcome": outcome})

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          action=st.sampled_from(ACTIONS))
    def followup(self, hh: str, offset: Any, eps: int, org: str, action: str) -> None:
        self._new("followup.recorded", hh, offset, eps, org, {"action": action})

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          child=st.sampled_from(["c-1", "c-2"]))
    def gap(self, hh: str, offset: Any, eps: int, org: str, child: str) -> None:
        self._new("child.guardianship_gap_recorded", hh, offset, eps, org,
                  {"child_ref": child, "reason": "parents away"})

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          child=st.sampled_from(["c-1", "c-2"]))
    def restored(self, hh: str, offset: Any, eps: int, org: str, child: str) -> None:
        self._new("child.guardianship_restored", hh, offset, eps, org, {"child_ref": child})

    @rule(hh=households, offset=offsets, org=orgs,
          resolution=st.sampled_from(["resolved_locally", "referred", "closed_no_action"]))
    def case_resolved(self, hh: str, offset: Any, org: str, resolution: str) -> None:
        self._new("case.resolved", hh, offset, 0, org, {"resolution": resolution})

    @rule(pick=st.integers(min_value=0, max_value=10**6), offset=offsets, eps=epsilons,
          resolve=st.booleans(), mismatch=st.booleans(), unknown=st.booleans())
    def command(self, pick: int, offset: Any, eps: int, resolve: bool, mismatch: bool,
                unknown: bool) -> None:
        known = self._known_warnings()
        if unknown or not known:
            hh, wid = HOUSEHOLDS[pick % len(HOUSEHOLDS)], "w-0000000000000000"
        else:
            hh, wid = known[pick % len(known)]
            if mismatch:
                hh = HOUSEHOLDS[(HOUSEHOLDS.index(hh) + 1) % len(HOUSEHOLDS)]
        data: dict[str, Any] = {"warning_id": wid, "by": "chair-1"}
        if resolve:
            data["note"] = "done"
        kind = "warning.resolved" if resolve else "warning.acknowledged"
        self._new(kind, hh, offset, eps, ORGS[0], data)

    @rule(hh=households, pick=st.integers(min_value=0, max_value=10**6), offset=offsets,
          eps=epsilons, resolve=st.booleans())
    def command_open(self, hh: str, pick: int, offset: Any, eps: int, resolve: bool) -> None:
        """Acknowledge or resolve one of the household's open warnings (the usual case)."""
        open_ = self.model.open_warnings(hh)
        if not open_:
            return
        data = {"warning_id": open_[pick % len(open_)], "by": "cadre-2"}
        kind = "warning.resolved" if resolve else "warning.acknowledged"
        self._new(kind, hh, offset, eps, ORGS[1], data)

    @rule(pick=st.integers(min_value=0, max_value=10**6), offset=offsets, eps=epsilons,
          assignee=st.sampled_from(ASSIGNEES), mismatch=st.booleans(), unknown=st.booleans(),
          open_only=st.booleans())
    def assign(self, pick: int, offset: Any, eps: int, assignee: str, mismatch: bool,
               unknown: bool, open_only: bool) -> None:
        """Assign a warning (often an open one; two assignees so repeats happen)."""
        known = self._known_warnings()
        if open_only:
            known = [(hh, wid) for hh in HOUSEHOLDS for wid in self.model.open_warnings(hh)]
        if unknown or not known:
            hh, wid = HOUSEHOLDS[pick % len(HOUSEHOLDS)], "w-0000000000000000"
        else:
            hh, wid = known[pick % len(known)]
            if mismatch and not open_only:
                hh = HOUSEHOLDS[(HOUSEHOLDS.index(hh) + 1) % len(HOUSEHOLDS)]
        data = {"warning_id": wid, "by": "chair-1", "assignee": assignee}
        self._new("warning.assigned", hh, offset, eps, ORGS[0], data)

    @rule(hh=households, offset=offsets, eps=epsilons, org=orgs,
          extra=st.sets(st.sampled_from(["marital_conflict", "threats", "injury_observed",
                                         "intellectual_disability"]), max_size=2),
          petition_category=st.sampled_from(["marriage_family_dispute", "domestic_violence"]),
          as_petition=st.booleans())
    def dispute_signal(self, hh: str, offset: Any, eps: int, org: str, extra: set[str],
                       petition_category: str, as_petition: bool) -> None:
        """Dispute signals and threats, so escalating-dispute windows get exercised."""
        if as_petition:
            data: dict[str, Any] = {"channel": "walk_in", "category": petition_category,
                                    "urgent": False}
            self._new("petition.received", hh, offset, eps, org, data)
        else:
            data = {"indicators": sorted({"threats", "marital_conflict"} | extra)}
            self._new("screening.visit_recorded", hh, offset, eps, org, data)

    # ------------------------------------------------------------------ re-sends

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(min_value=0, max_value=10**6), restamp=st.booleans())
    def duplicate(self, pick: int, restamp: bool) -> None:
        ev, _ = self.sent[pick % len(self.sent)]
        self._send(ev, recorded_at=iso(self.cursor + DAY) if restamp else None)

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(min_value=0, max_value=10**6))
    def conflict(self, pick: int) -> None:
        ev, _ = self.sent[pick % len(self.sent)]
        changed = Ev(ev.event_id, ev.type, ev.at + HOUR, ev.org_unit, ev.household_id, ev.data)
        self._send(changed)

    @rule(hh=households)
    def persist_and_reload(self, hh: str) -> None:
        """Runtimes store the state as bytes between batches; nothing may change."""
        self.states[hh] = HouseholdState.from_bytes(self.states[hh].to_bytes())

    # ------------------------------------------------------------------ end of run

    def teardown(self) -> None:
        """The same events as one file: ``jiahe replay`` and the embedded processor.

        Without the intermediate clock advances, every deadline fires at the end
        (as_of = latest occurred_at); the model gets the same single advance.
        """
        lines = [line for _, line in self.sent]
        if not lines:
            return
        events = [ev for ev, _ in self.sent]
        model = Model()
        for ev in events:
            model.apply(ev)
        limit = max(ev.at for ev in {e.event_id: e for e in reversed(events)}.values())
        replay = Replay(_ENGINE)
        records = replay.feed_all(lines) + replay.finish()
        assert replay.max_occurred == limit
        with tempfile.TemporaryDirectory() as home:
            runtime = bootstrap_embedded(Path(home))
            try:
                runtime.publish(lines, "state-machine")
                runtime.process(EventTimeClock(), project=False)
                embedded = [orjson.loads(e.body) for e in runtime.log.read_lifecycle(0, 10**6)]
            finally:
                runtime.close()
        for hh in HOUSEHOLDS:
            model.advance(hh, limit)
            want = model.records(hh)
            got = [r for r in records if r["household_id"] == hh]
            assert got == want, f"replay vs model for {hh}:\n{got}\n{want}"
            got = [r for r in embedded if r["household_id"] == hh]
            assert got == want, f"embedded processor vs model for {hh}:\n{got}\n{want}"

    # ------------------------------------------------------------------ the check

    @invariant()
    def same_lifecycle_records(self) -> None:
        for hh in HOUSEHOLDS:
            expected = self.model.records(hh)
            got = self.records[hh]
            if got != expected:
                first = next(
                    (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                    min(len(got), len(expected)),
                )
                raise AssertionError(
                    f"{hh}: engine and model differ at record {first}\n"
                    f"engine: {got[first:first + 3]}\nmodel:  {expected[first:first + 3]}"
                )


EngineVersusModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)
TestEngineVersusModel = EngineVersusModel.TestCase
