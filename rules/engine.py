"""The pure rule engine: (household state, event) → lifecycle records.

No I/O and no clock: time comes from the events' ``occurred_at`` and from the
``until`` instant a runtime passes to ``advance``. Given the same events in the
same order it produces the same records and warning IDs in every runtime.
Semantics are DESIGN.md's "default rule pack — exact semantics"; the engine is
generic over ``rules.pack.RulePack``.
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from events.catalog import EventFacts
from events.codec import Decoded
from events.instants import format_instant
from events.orgunits import Level, ancestor_at
from rules.pack import Rule, RulePack, Signal
from rules.state import ESCALATION, RULE_DEADLINE, HouseholdState, OpenWarning

Record = dict[str, Any]
Status = Literal["processed", "duplicate", "rejected"]
LEVEL_LABELS = [level.label for level in Level]
TOP_LEVEL = int(Level.CITY)


def warning_id_for(rule_id: str, household_id: str, trigger_event_id: str) -> str:
    """DESIGN.md's deterministic id: the same trigger always names the same warning."""
    digest = hashlib.sha256(f"{rule_id}:{household_id}:{trigger_event_id}".encode()).hexdigest()
    return "w-" + digest[:16]


@dataclass(slots=True)
class Outcome:
    """What one event did: its status, the records it caused, and any notices."""

    status: Status
    records: list[Record] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    reason: str | None = None


Predicate = Callable[[EventFacts], bool]


def _compile(signal: Signal) -> Predicate:
    """A fast predicate for one signal (its type is checked by the caller)."""
    checks: list[Predicate] = []
    if signal.indicators_any:
        wanted = frozenset(signal.indicators_any)
        checks.append(lambda e: not wanted.isdisjoint(e.data["indicators"]))  # type: ignore[attr-defined]
    if signal.category_in:
        categories = frozenset(signal.category_in)
        checks.append(lambda e: e.data["category"] in categories)  # type: ignore[attr-defined]
    if signal.channel_in:
        channels = frozenset(signal.channel_in)
        checks.append(lambda e: e.data["channel"] in channels)  # type: ignore[attr-defined]
    if signal.outcome_in:
        outcomes = frozenset(signal.outcome_in)
        checks.append(lambda e: e.data["outcome"] in outcomes)  # type: ignore[attr-defined]
    if signal.urgent is not None:
        urgent = signal.urgent
        checks.append(lambda e: e.data["urgent"] is urgent)  # type: ignore[attr-defined]
    return lambda e: all(check(e) for check in checks)


class Engine:
    """Applies a rule pack to one household's events, one at a time."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self._signals_by_type: dict[str, list[tuple[str, Predicate]]] = {}
        for name, signal in pack.signals.items():
            self._signals_by_type.setdefault(signal.type, []).append((name, _compile(signal)))
        self._when_rules = [rule for rule in pack.rules if rule.when]
        self._deadline_rules = [rule for rule in pack.rules if rule.deadline]
        self._rules = {rule.id: rule for rule in pack.rules}
        self._sla = {level: pack.sla_us(level) for level in ("red", "orange", "yellow")}
        self._windowed = pack.windowed_signals
        self._flagged = pack.flag_signals
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    # -- events -------------------------------------------------------------

    def apply(self, state: HouseholdState, decoded: Decoded) -> Outcome:
        """Process one valid event of ``state``'s household."""
        event = decoded.event
        known = state.seen.get(event.event_id)
        if known is not None:
            if known == decoded.fingerprint:
                return Outcome("duplicate")
            return Outcome(
                "rejected", reason="event_id: already processed with different content (conflict)"
            )
        at = decoded.occurred_us
        outcome = Outcome("processed")
        self._fire(state, event.household_id, at, inclusive=False, out=outcome.records)
        state.seen[event.event_id] = decoded.fingerprint
        plan = self._plan(event)
        self._remember(state, plan, at, event)
        if event.type in _COMMANDS:
            self._command(state, event, at, outcome)
        for rule in plan.candidates:
            if self._triggers(state, rule, at):
                self._raise(
                    state,
                    rule,
                    event.household_id,
                    event.event_id,
                    event.org_unit,
                    at,
                    outcome.records,
                )
        return outcome

    def advance(self, state: HouseholdState, household_id: str, until: int) -> list[Record]:
        """Fire every deadline due at or before ``until`` (the clock reached it)."""
        records: list[Record] = []
        self._fire(state, household_id, until, inclusive=True, out=records)
        return records

    def _plan(self, event: EventFacts) -> _Plan:
        """What an event of this shape does to state; memoized by the fields signals read.

        Signals depend only on the type and a few vocabulary fields, so the set
        of distinct shapes is small and matching costs one dict lookup.
        """
        key = _shape(event)
        plan = self._plans.get(key)
        if plan is None:
            matched = frozenset(
                name
                for name, predicate in self._signals_by_type.get(event.type, ())
                if predicate(event)
            )
            plan = _Plan(
                windowed=tuple(sorted(matched & self._windowed)),
                flags=tuple(sorted(matched & self._flagged)),
                deadlines=tuple(
                    rule
                    for rule in self._deadline_rules
                    if rule.deadline is not None and rule.deadline.after in matched
                ),
                candidates=tuple(
                    rule for rule in self._when_rules if not matched.isdisjoint(rule.when)
                ),
            )
            self._plans[key] = plan
        return plan

    def _remember(self, state: HouseholdState, plan: _Plan, at: int, event: EventFacts) -> None:
        for name in plan.windowed:
            insort(state.series.setdefault(name, []), at)
        for name in plan.flags:
            state.flags.add(name)
        for rule in plan.deadlines:
            assert rule.deadline is not None
            payload = (rule.id, event.event_id, at, event.org_unit)
            state.schedule(at + rule.deadline.delay_us, RULE_DEADLINE, payload)

    def _triggers(self, state: HouseholdState, rule: Rule, at: int) -> bool:
        """The rule's requirements, given that the event matched one of its ``when``."""
        require = rule.require
        if require.ever and state.flags.isdisjoint(require.ever):
            return False
        if require.count is not None:
            count = require.count
            total = sum(
                _count_between(state.series.get(name), at - count.window_us, at)
                for name in count.of
            )
            if total < count.at_least:
                return False
        return True

    # -- commands -----------------------------------------------------------

    def _command(self, state: HouseholdState, event: EventFacts, at: int, outcome: Outcome) -> None:
        kind = event.type
        if kind == "case.resolved":
            for warning_id in list(state.open):
                self._close(state, warning_id, event.household_id, at, outcome.records)
            return
        if kind not in ("warning.acknowledged", "warning.assigned", "warning.resolved"):
            return
        warning_id = event.data["warning_id"]  # type: ignore[attr-defined]
        warning = state.open.get(warning_id)
        if warning is None:
            why = "is closed" if warning_id in state.closed else "is unknown for this household"
            outcome.notices.append(f"{kind} for {warning_id}: warning {why}; nothing changed")
            return
        if kind == "warning.resolved":
            self._close(state, warning_id, event.household_id, at, outcome.records)
        elif kind == "warning.assigned":
            self._assign(warning, event, at, outcome)
        elif warning.acknowledged:
            outcome.notices.append(
                f"{kind} for {warning_id}: already acknowledged; nothing changed"
            )
        else:
            warning.acknowledged = True
            outcome.records.append(
                _transition("warning.acknowledged", warning_id, event.household_id, at)
            )

    @staticmethod
    def _assign(warning: OpenWarning, event: EventFacts, at: int, outcome: Outcome) -> None:
        """Hand an open warning to a person; unlike acknowledgement, escalation goes on.

        Assigning says who should act, not that anyone has: the warning keeps
        climbing until it is acknowledged. Assigning to the current assignee
        again changes nothing (reported, like a repeated acknowledgement).
        """
        assignee: str = event.data["assignee"]
        if warning.assignee == assignee:
            outcome.notices.append(
                f"warning.assigned for {warning.warning_id}: already assigned to that person;"
                " nothing changed"
            )
            return
        warning.assignee = assignee
        outcome.records.append(
            {
                "type": "warning.assigned",
                "warning_id": warning.warning_id,
                "household_id": event.household_id,
                "assignee": assignee,
                "at": format_instant(at),
            }
        )

    def _close(
        self, state: HouseholdState, warning_id: str, household_id: str, at: int, out: list[Record]
    ) -> None:
        del state.open[warning_id]
        state.closed.add(warning_id)
        out.append(_transition("warning.resolved", warning_id, household_id, at))

    # -- warnings and deadlines ---------------------------------------------

    def _raise(
        self,
        state: HouseholdState,
        rule: Rule,
        household_id: str,
        trigger_event_id: str,
        org_unit: str,
        at: int,
        out: list[Record],
    ) -> None:
        if state.open_of_rule(rule.id) is not None:
            return
        warning_id = warning_id_for(rule.id, household_id, trigger_event_id)
        state.open[warning_id] = OpenWarning(
            warning_id, rule.id, rule.level, org_unit, 0, False, at
        )
        state.schedule(at + self._sla[rule.level], ESCALATION, (warning_id,))
        out.append(
            {
                "type": "warning.raised",
                "warning_id": warning_id,
                "rule_id": rule.id,
                "household_id": household_id,
                "level": rule.level,
                "org_unit": org_unit,
                "handling_level": LEVEL_LABELS[0],
                "handling_org_unit": org_unit,
                "at": format_instant(at),
            }
        )

    def _fire(
        self,
        state: HouseholdState,
        household_id: str,
        limit: int,
        inclusive: bool,
        out: list[Record],
    ) -> None:
        heap = state.deadlines
        while heap and (heap[0][0] <= limit if inclusive else heap[0][0] < limit):
            due, _seq, kind, payload = heapq.heappop(heap)
            if kind == ESCALATION:
                self._escalate(state, payload[0], household_id, due, out)
            elif kind == RULE_DEADLINE:
                self._deadline_rule(state, payload, household_id, due, out)

    def _escalate(
        self, state: HouseholdState, warning_id: str, household_id: str, due: int, out: list[Record]
    ) -> None:
        warning = state.open.get(warning_id)
        if warning is None or warning.acknowledged or warning.handling_level >= TOP_LEVEL:
            return
        before = warning.handling_level
        warning.handling_level = before + 1
        out.append(
            {
                "type": "warning.escalated",
                "warning_id": warning_id,
                "household_id": household_id,
                "from_level": LEVEL_LABELS[before],
                "to_level": LEVEL_LABELS[before + 1],
                "handling_org_unit": ancestor_at(warning.org_unit, Level(before + 1)),
                "at": format_instant(due),
            }
        )
        if warning.handling_level < TOP_LEVEL:
            state.schedule(due + self._sla[warning.level], ESCALATION, (warning_id,))

    def _deadline_rule(
        self,
        state: HouseholdState,
        payload: tuple[Any, ...],
        household_id: str,
        due: int,
        out: list[Record],
    ) -> None:
        rule_id, trigger_event_id, started, org_unit = payload
        rule = self._rules.get(rule_id)
        if rule is None or rule.deadline is None:
            return  # the pack changed since the deadline was scheduled
        for name in rule.deadline.unless_any:
            if _count_between(state.series.get(name), started, due):
                return
        self._raise(state, rule, household_id, trigger_event_id, org_unit, due, out)


_COMMANDS = frozenset(
    {"case.resolved", "warning.acknowledged", "warning.assigned", "warning.resolved"}
)


@dataclass(frozen=True, slots=True)
class _Plan:
    windowed: tuple[str, ...]
    flags: tuple[str, ...]
    deadlines: tuple[Rule, ...]
    candidates: tuple[Rule, ...]


def _shape(event: EventFacts) -> tuple[Any, ...]:
    """The fields any signal may read (see ``rules.pack.Signal``)."""
    data = event.data  # type: ignore[attr-defined]
    kind = event.type
    if kind == "screening.visit_recorded":
        return (kind, tuple(data["indicators"]))
    if kind == "petition.received":
        return (kind, data["category"], data["channel"], data["urgent"])
    if kind == "mediation.concluded":
        return (kind, data["outcome"])
    return (kind,)


def _count_between(series: list[int] | None, low: int, high: int) -> int:
    """How many timestamps lie in [low, high] (both ends inclusive)."""
    if not series:
        return 0
    return bisect_right(series, high) - bisect_left(series, low)


def _transition(kind: str, warning_id: str, household_id: str, at: int) -> Record:
    return {
        "type": kind,
        "warning_id": warning_id,
        "household_id": household_id,
        "at": format_instant(at),
    }
