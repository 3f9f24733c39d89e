"""The pure rule engine: (household state, event) → lifecycle records.

No I/O and no clock: time comes from the events' ``occurred_at`` and from the
``until`` instant a runtime passes to ``advance``. Given the same events in the
same order it produces the same records and warning IDs in every runtime.
Semantics are DESIGN.md's "default rule pack — exact semantics" and "Catalog v2"
(ownership, transfers, cadences, auto-resolution, commands on warnings, referrals and
consent); the engine is generic over ``rules.pack.RulePack``.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from events.catalog import EventFacts
from events.codec import Decoded
from events.instants import EPOCH, MICROS_PER_DAY
from events.orgunits import Level, ancestor_at
from rules.ownership import REGISTERED, TRANSFERRED, OwnerStep, next_owner
from rules.pack import Rule, RulePack, Signal
from rules.referrals import CONSENT_EVENTS, REFERRAL_EVENTS, consent_step, referent, referral_step
from rules.state import (
    CADENCE,
    ESCALATION,
    RULE_DEADLINE,
    Cadence,
    HouseholdState,
    OpenWarning,
    ResolvedWarning,
)

Record = dict[str, Any]
Status = Literal["processed", "duplicate", "rejected"]
LEVEL_LABELS = [level.label for level in Level]
TOP_LEVEL = int(Level.CITY)
#: A resolved warning may be reopened until this long after it was resolved.
REOPEN_WINDOW_US = 30 * MICROS_PER_DAY


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
    if signal.flags_any:
        flags = frozenset(signal.flags_any)
        checks.append(lambda e: not flags.isdisjoint(e.data["flags"]))  # type: ignore[attr-defined]
    return lambda e: all(check(e) for check in checks)


class Engine:
    """Applies a rule pack to one household's events, one at a time.

    ``unique_ids``: the input is known to hold each ``event_id`` once, because the
    log in front of the engine refuses a repeated id when it is published (the
    embedded log's unique index: a duplicate is counted there, a conflict
    dead-lettered there). The engine then keeps no seen ids: a state stays the size
    of what the rules need, about half of it at ten events per household.
    """

    def __init__(self, pack: RulePack, *, unique_ids: bool = False) -> None:
        self.pack = pack
        self.unique_ids = unique_ids
        self._signals_by_type: dict[str, list[tuple[str, Predicate]]] = {}
        for name, signal in pack.signals.items():
            self._signals_by_type.setdefault(signal.type, []).append((name, _compile(signal)))
        self._when_rules = [rule for rule in pack.rules if rule.when]
        self._deadline_rules = [rule for rule in pack.rules if rule.deadline]
        self._cadence_rules = [rule for rule in pack.rules if rule.cadence]
        self._rules = {rule.id: rule for rule in pack.rules}
        self._sla = {level: pack.sla_us(level) for level in ("red", "orange", "yellow")}
        self._windowed = pack.windowed_signals
        self._flagged = pack.flag_signals
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    # -- events -------------------------------------------------------------

    def apply(self, state: HouseholdState, decoded: Decoded) -> Outcome:
        """Process one valid event of ``state``'s household.

        Every event of every runtime passes through here, so the common case
        makes no call it can skip: deadlines are fired only when one is due
        before the event, the plan is one dict lookup, and state is touched
        only when the plan says the event leaves something in it.
        """
        event = decoded.event
        event_id = event.event_id
        if not self.unique_ids:
            known = state.seen.add_if_new(event_id, decoded.fingerprint)
            if known is not None:
                if known == decoded.fingerprint:
                    return Outcome("duplicate")
                return Outcome(
                    "rejected",
                    reason="event_id: already processed with different content (conflict)",
                )
        at = decoded.occurred_us
        household_id = event.household_id
        outcome = Outcome("processed")
        records = outcome.records
        due = state.next_due
        if due is not None and due < at:
            self._fire(state, household_id, at, inclusive=False, out=records)
        kind = event.type
        if kind in _HOUSEHOLD_EVENTS:
            step = next_owner(state.owner, state.registered, kind, event.org_unit, event.data)
            state.owner = step.owner
            if step.notice is not None:  # processed, and changes nothing else
                outcome.notices.append(step.notice)
                return outcome
            self._belong(state, step, event, at, records)
        elif state.owner is None:  # next_owner's step for any other first event
            state.owner = event.org_unit
        if kind in _CHECKED:  # the contract's conditions first: a notice changes nothing
            notice = self._checked(state, event, at, records)
            if notice is not None:
                outcome.notices.append(notice)
                return outcome
        key = _shape(event)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan_for(event)
        if plan.remembers:
            self._remember(state, plan, at, event)
        if kind in _COMMANDS:
            self._command(state, event, at, outcome)
        if state._open:
            for rule_id in plan.resolves:
                self._auto_resolve(state, rule_id, household_id, at, records)
        if plan.answers:
            self._answer(state, plan.answers, event, at, records)
        for rule in plan.candidates:
            if self._triggers(state, rule, at):
                self._raise(state, rule, household_id, event_id, event.org_unit, at, records)
        return outcome

    def advance(self, state: HouseholdState, household_id: str, until: int) -> list[Record]:
        """Fire every deadline due at or before ``until`` (the clock reached it)."""
        records: list[Record] = []
        self._fire(state, household_id, until, inclusive=True, out=records)
        return records

    def _plan_for(self, event: EventFacts) -> _Plan:
        """What an event of this shape does to state; ``apply`` memoizes it by shape.

        Signals depend only on the type and a few vocabulary fields (``_shape``),
        so the set of distinct shapes is small and matching costs one dict lookup.
        """
        matched = frozenset(
            name
            for name, predicate in self._signals_by_type.get(event.type, ())
            if predicate(event)
        )
        windowed = tuple(sorted(matched & self._windowed))
        flags = tuple(sorted(matched & self._flagged))
        deadlines = tuple(
            rule
            for rule in self._deadline_rules
            if rule.deadline is not None and rule.deadline.after in matched
        )
        # A registration may change C (its flags) even when it does not set L.
        registration = event.type == REGISTERED
        cadences = tuple(
            (rule, sets_last)
            for rule in self._cadence_rules
            if rule.cadence is not None
            and ((sets_last := not matched.isdisjoint(rule.cadence.after)) or registration)
        )
        return _Plan(
            windowed=windowed,
            flags=flags,
            deadlines=deadlines,
            candidates=tuple(
                rule for rule in self._when_rules if not matched.isdisjoint(rule.when)
            ),
            cadences=cadences,
            resolves=tuple(
                rule.id for rule in self.pack.rules
                if rule.deadline is None and not matched.isdisjoint(rule.resolved_by)
            ),
            answers=tuple(
                rule.id for rule in self._deadline_rules
                if not matched.isdisjoint(rule.resolved_by)
            ),
            remembers=bool(windowed or flags or deadlines or cadences),
        )

    def _remember(self, state: HouseholdState, plan: _Plan, at: int, event: EventFacts) -> None:
        if plan.windowed:
            series = state.series
            for name in plan.windowed:
                timestamps = series.get(name)
                if timestamps is None:
                    series[name] = [at]
                else:
                    insort(timestamps, at)
        for name in plan.flags:
            state.flags.add(name)
        for rule in plan.deadlines:
            assert rule.deadline is not None
            payload = (rule.id, event.event_id, at, event.org_unit)
            state.schedule(at + rule.deadline.delay_us, RULE_DEADLINE, payload)
        if plan.cadences and state.registered:
            for rule, sets_last in plan.cadences:
                self._reschedule(state, rule, sets_last, at, event)

    def _reschedule(
        self, state: HouseholdState, rule: Rule, sets_last: bool, at: int, event: EventFacts
    ) -> None:
        """A registered household's one deadline of a cadence rule, at L + C.

        L moves only forward (the latest occurred_at; on a tie the first processed
        event stays the trigger); the deadline is replaced only when L or C changed.
        """
        spec = rule.cadence
        assert spec is not None
        current = state.cadences.get(rule.id)
        if sets_last and (current is None or at > current.last):
            last, trigger, org_unit = at, event.event_id, event.org_unit
        elif current is not None:
            last, trigger, org_unit = current.last, current.trigger_event_id, current.org_unit
        else:
            return  # a registration that does not count towards L: no L yet
        due = last + spec.delay_us(state.household_flags or frozenset())
        if current is not None and current.last == last and current.due == due:
            return
        state.unschedule(CADENCE, rule.id)
        state.schedule(due, CADENCE, (rule.id,))
        state.cadences[rule.id] = Cadence(last, trigger, org_unit, due)

    def _triggers(self, state: HouseholdState, rule: Rule, at: int) -> bool:
        """The rule's requirements, given that the event matched one of its ``when``."""
        require = rule.require
        if require.ever and state.flags.isdisjoint(require.ever):
            return False
        if require.count is not None:
            count = require.count
            series = state.series
            since = at - count.window_us
            total = 0
            for name in count.of:
                total += _count_between(series.get(name), since, at)
            if total < count.at_least:
                return False
        return True

    # -- ownership (属地) ----------------------------------------------------

    def _belong(
        self, state: HouseholdState, step: OwnerStep, event: EventFacts, at: int,
        out: list[Record],
    ) -> None:
        """A valid registration or transfer: the flags, and open warnings follow a move."""
        if event.type == REGISTERED:
            state.household_flags = frozenset(event.data["flags"])  # type: ignore[attr-defined]
        if step.moved_from is not None and step.owner is not None and state._open:
            self._move_open(state, step.owner, event.household_id, at, out)

    @staticmethod
    def _move_open(
        state: HouseholdState, owner: str, household_id: str, at: int, out: list[Record]
    ) -> None:
        """Each open warning, in raise order, to ``owner``'s ancestor at its handling level.

        A warning is recorded as transferred only where its handling org unit changes (a
        district-level warning stays put when the household moves within the district);
        every one is handled from the new owner upwards from now on. Escalation
        deadlines do not change.
        """
        for warning in state.open.values():
            level = warning.handling_level
            before = _handling_unit(warning.org_unit, level)
            after = _handling_unit(owner, level)
            warning.org_unit = owner
            if before != after:
                out.append(
                    _tagged(
                        {
                            "type": "warning.transferred",
                            "warning_id": warning.warning_id,
                            "household_id": household_id,
                            "from_org_unit": before,
                            "to_org_unit": after,
                            "at": _format_at(at),
                        },
                        warning,
                    )
                )

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
            outcome.notices.append(_missing(state, kind, warning_id))
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
                _transition("warning.acknowledged", warning, event.household_id, at)
            )

    def _checked(
        self, state: HouseholdState, event: EventFacts, at: int, out: list[Record]
    ) -> str | None:
        """Commands on warnings, referrals and consent: the notice when the event breaks
        one of the contract's conditions (it then changes nothing at all), else None once
        its effects and records are in ``state`` and ``out``."""
        kind = event.type
        data = event.data
        if kind in REFERRAL_EVENTS:
            notice, record = referral_step(
                state, kind, event.event_id, event.household_id, data, _format_at(at)
            )
            if record is not None:
                out.append(record)
            return notice
        if kind in CONSENT_EVENTS:
            consent_step(state, kind, data)
            return None
        if kind == ASSESSED:
            return self._assess(state, event.household_id, data, at, out)
        return self._reopen(state, event.household_id, data, at, out)

    @staticmethod
    def _assess(
        state: HouseholdState, household_id: str, data: Any, at: int, out: list[Record]
    ) -> str | None:
        """研判 on an open warning: acknowledged first if it was not, then the risk. The
        same risk as its last assessment (a reopening keeps it) changes nothing at all."""
        warning_id: str = data["warning_id"]
        warning = state._open.get(warning_id) if state._open else None
        if warning is None:
            return _missing(state, ASSESSED, warning_id)
        risk: str = data["risk"]
        if warning.risk == risk:
            return f"{ASSESSED} for {warning_id}: same risk as its last assessment; nothing changed"
        if not warning.acknowledged:
            warning.acknowledged = True
            out.append(_transition("warning.acknowledged", warning, household_id, at))
        warning.risk = risk
        out.append(
            _tagged(
                {
                    "type": ASSESSED,
                    "warning_id": warning_id,
                    "household_id": household_id,
                    "risk": risk,
                    "at": _format_at(at),
                },
                warning,
            )
        )
        return None

    def _reopen(
        self, state: HouseholdState, household_id: str, data: Any, at: int, out: list[Record]
    ) -> str | None:
        """A resolved warning, at most 30 days after it was resolved and while no other
        warning of its rule is open, is open again: unacknowledged, at community level at
        the household's owner, its old escalation deadlines void, the next at t + SLA.

        It keeps its raise instant, assignee and last risk, and joins the end of the open
        warnings (a later ``case.resolved`` or transfer takes it last)."""
        warning_id: str = data["warning_id"]
        if state._open and warning_id in state._open:
            return f"{REOPENED} for {warning_id}: warning is open; nothing changed"
        resolved = state._resolved.get(warning_id) if state._resolved else None
        if resolved is None:
            if state._closed and warning_id in state._closed:
                # Closed in a state stored before resolved warnings were kept.
                return (f"{REOPENED} for {warning_id}: resolved before reopening was kept;"
                        " nothing changed")
            return _missing(state, REOPENED, warning_id)
        if at < resolved.resolved_at:
            return f"{REOPENED} for {warning_id}: before it was resolved; nothing changed"
        if at > resolved.resolved_at + REOPEN_WINDOW_US:
            return (f"{REOPENED} for {warning_id}: more than 30 days after it was resolved;"
                    " nothing changed")
        if state.open_of_rule(resolved.rule_id) is not None:
            return (f"{REOPENED} for {warning_id}: another warning of its rule is open;"
                    " nothing changed")
        owner = state.owner
        assert owner is not None  # set by this very event at the latest
        del state.resolved[warning_id]
        if not state._resolved:
            state._resolved = None
        state.closed.discard(warning_id)
        if not state._closed:
            state._closed = None
        warning = OpenWarning(
            warning_id, resolved.rule_id, resolved.level, owner, 0, False, resolved.raised_at,
            resolved.assignee, resolved.risk, resolved.reopened + 1,
        )
        state.open[warning_id] = warning
        state.unschedule(ESCALATION, warning_id)
        state.schedule(at + self._sla[warning.level], ESCALATION, (warning_id,))
        out.append(
            _tagged(
                {
                    "type": REOPENED,
                    "warning_id": warning_id,
                    "household_id": household_id,
                    "handling_org_unit": owner,
                    "at": _format_at(at),
                },
                warning,
            )
        )
        return None

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
            _tagged(
                {
                    "type": "warning.assigned",
                    "warning_id": warning.warning_id,
                    "household_id": event.household_id,
                    "assignee": assignee,
                    "at": _format_at(at),
                },
                warning,
            )
        )

    def _auto_resolve(
        self, state: HouseholdState, rule_id: str, household_id: str, at: int, out: list[Record]
    ) -> None:
        """A ``resolved_by`` signal: the rule's open warning is resolved, never before it was
        raised (a late-recorded visit cannot resolve a warning before it existed)."""
        warning = state.open_of_rule(rule_id)
        if warning is not None:
            self._close(state, warning.warning_id, household_id, max(at, warning.raised_at), out)

    def _answer(
        self, state: HouseholdState, rule_ids: tuple[str, ...], event: EventFacts, at: int,
        out: list[Record],
    ) -> None:
        """A ``resolved_by`` signal of a deadline rule answers that rule's trigger when the
        event refers to it (a referral's answer refers to its ``referral.sent``): the
        pending deadline is void, and the warning it raised, if open, is resolved (at the
        later of the event's time and the warning's raise instant)."""
        trigger = referent(state, event.data)
        if trigger is None:
            return
        household_id = event.household_id
        for rule_id in rule_ids:
            state.unschedule(RULE_DEADLINE, rule_id, trigger)
            warning_id = warning_id_for(rule_id, household_id, trigger)
            warning = state._open.get(warning_id) if state._open else None
            if warning is not None:
                self._close(state, warning_id, household_id, max(at, warning.raised_at), out)

    def _close(
        self, state: HouseholdState, warning_id: str, household_id: str, at: int, out: list[Record]
    ) -> None:
        """Resolved: kept with what a reopening needs (``ResolvedWarning``)."""
        warning = state.open.pop(warning_id)
        state.closed.add(warning_id)
        state.resolved[warning_id] = ResolvedWarning(
            warning.rule_id, warning.level, warning.raised_at, at, warning.assignee,
            warning.risk, warning.reopened,
        )
        out.append(_transition("warning.resolved", warning, household_id, at))

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
        # Handled at the household's owner; ``org_unit`` stays the trigger's.
        handling = state.owner or org_unit
        state.open[warning_id] = OpenWarning(
            warning_id, rule.id, rule.level, handling, 0, False, at
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
                "handling_org_unit": handling,
                "at": _format_at(at),
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
            elif kind == CADENCE:
                self._cadence_due(state, payload[0], household_id, due, out)

    def _escalate(
        self, state: HouseholdState, warning_id: str, household_id: str, due: int, out: list[Record]
    ) -> None:
        warning = state.open.get(warning_id)
        if warning is None or warning.acknowledged or warning.handling_level >= TOP_LEVEL:
            return
        before = warning.handling_level
        warning.handling_level = before + 1
        out.append(
            _tagged(
                {
                    "type": "warning.escalated",
                    "warning_id": warning_id,
                    "household_id": household_id,
                    "from_level": LEVEL_LABELS[before],
                    "to_level": LEVEL_LABELS[before + 1],
                    "handling_org_unit": _handling_unit(warning.org_unit, before + 1),
                    "at": _format_at(due),
                },
                warning,
            )
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


    def _cadence_due(
        self, state: HouseholdState, rule_id: str, household_id: str, due: int, out: list[Record]
    ) -> None:
        rule = self._rules.get(rule_id)
        cadence = state.cadences.get(rule_id)
        if rule is None or rule.cadence is None or cadence is None or cadence.due != due:
            return  # the pack changed since the deadline was scheduled
        self._raise(state, rule, household_id, cadence.trigger_event_id, cadence.org_unit, due, out)


_HOUSEHOLD_EVENTS = frozenset({REGISTERED, TRANSFERRED})
ASSESSED = "warning.assessed"
REOPENED = "warning.reopened"
#: Events whose conditions are checked before anything else (``Engine._checked``).
_CHECKED = frozenset({ASSESSED, REOPENED, *REFERRAL_EVENTS, *CONSENT_EVENTS})
_COMMANDS = frozenset(
    {"case.resolved", "warning.acknowledged", "warning.assigned", "warning.resolved"}
)


@dataclass(frozen=True, slots=True)
class _Plan:
    windowed: tuple[str, ...]
    flags: tuple[str, ...]
    deadlines: tuple[Rule, ...]
    candidates: tuple[Rule, ...]
    #: Cadence rules the event may reschedule, each with whether it can set L.
    cadences: tuple[tuple[Rule, bool], ...]
    #: Rules whose open warning the event resolves (``resolved_by``).
    resolves: tuple[str, ...]
    #: Deadline rules whose trigger the event may answer (``resolved_by``; ``_answer``).
    answers: tuple[str, ...]
    #: Whether the event leaves anything in state (a timestamp, a flag, a deadline).
    remembers: bool


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
    if kind == REGISTERED:
        return (kind, tuple(data["flags"]))
    return (kind,)


def _count_between(series: list[int] | None, low: int, high: int) -> int:
    """How many timestamps lie in [low, high] (both ends inclusive)."""
    if not series:
        return 0
    return bisect_right(series, high) - bisect_left(series, low)


def _transition(kind: str, warning: OpenWarning, household_id: str, at: int) -> Record:
    return _tagged(
        {
            "type": kind,
            "warning_id": warning.warning_id,
            "household_id": household_id,
            "at": _format_at(at),
        },
        warning,
    )


def _tagged(record: Record, warning: OpenWarning) -> Record:
    """A record of a reopened warning carries ``reopened`` (how many times it was): its
    acknowledgement, escalations and resolution after a reopening are new transitions,
    not re-sends of the first ones (``rules.transitions``). A warning never reopened
    writes the records it always wrote."""
    if warning.reopened:
        record["reopened"] = warning.reopened
    return record


def _missing(state: HouseholdState, kind: str, warning_id: str) -> str:
    """The notice for a command naming no open warning of the household."""
    why = "is closed" if state._closed and warning_id in state._closed else (
        "is unknown for this household")
    return f"{kind} for {warning_id}: warning {why}; nothing changed"


@functools.lru_cache(maxsize=65_536)
def _handling_unit(org_unit: str, level: int) -> str:
    """``ancestor_at``, memoized: a city has a few thousand communities and four levels,
    and every escalation asks again."""
    return ancestor_at(org_unit, Level(level))


#: ``events.instants.EPOCH`` without its time zone (see ``_format_at``).
_NAIVE_EPOCH = EPOCH.replace(tzinfo=None)


def _format_at(micros: int) -> str:
    """``format_instant(micros)``, the very same text, a third cheaper.

    Every lifecycle record carries one instant. ``format_instant`` writes an
    aware UTC datetime (``…+00:00``) and replaces the offset by ``Z``; a naive
    datetime at the same wall time writes the same digits with no offset to
    look up or replace, so appending ``Z`` gives the same string.
    """
    return (_NAIVE_EPOCH + timedelta(0, 0, micros)).isoformat() + "Z"
