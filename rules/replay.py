"""Running the engine over a sequence of events for many households.

``Replay`` keeps one ``HouseholdState`` per household, counts every input so
that received = processed + duplicates + rejected, and at the end of input
fires the deadlines due up to ``as_of`` across households in time order (ties
by household id, then creation order). It is the engine alone: no log, no
warehouse, no clock — the caller passes ``as_of``.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field

from events.codec import Decoded, Rejected, decode
from rules.engine import Engine, Outcome, Record
from rules.state import HouseholdState
from rules.surge import SurgeTracker

CROSS_HOUSEHOLD_REUSE = "event_id: already used by another household (conflict)"


@dataclass
class Counts:
    """Reconciling counters: ``received == processed + duplicates + rejected``."""

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    notices: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: Notices (processed events that changed nothing) by kind (``notice_kind``).
    notice_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, status: str, reason: str | None = None) -> None:
        self.received += 1
        if status == "processed":
            self.processed += 1
        elif status == "duplicate":
            self.duplicates += 1
        else:
            self.rejected += 1
            self.reasons[_reason_kind(reason or "unknown")] += 1

    def note(self, notices: list[str]) -> None:
        """Count one event's notices, in total and by kind."""
        if notices:
            self.notices += len(notices)
            self.notice_reasons.update(notice_kind(n) for n in notices)

    @property
    def reconciles(self) -> bool:
        return self.received == self.processed + self.duplicates + self.rejected

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "processed": self.processed,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "notices": self.notices,
            "rejected_by_reason": dict(self.reasons.most_common()),
            "notices_by_reason": dict(self.notice_reasons.most_common()),
        }


_WARNING_ID = re.compile(r" for w-[0-9a-f]+")


def notice_kind(notice: str) -> str:
    """A notice without the warning it names: the kinds are few, the warnings many."""
    return _WARNING_ID.sub("", notice)


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary (the full reason stays with the rejected input)."""
    first = reason.split(";")[0]
    return first if len(first) <= 120 else first[:117] + "..."


class Replay:
    """The engine over many households, fed in log order."""

    def __init__(
        self, engine: Engine, states: MutableMapping[str, HouseholdState] | None = None
    ) -> None:
        self.engine = engine
        self.states: MutableMapping[str, HouseholdState] = {} if states is None else states
        self.counts = Counts()
        self.max_occurred: int | None = None
        #: event_id → the household that used it first.
        self.owners: dict[str, str] = {}
        #: District surge rules (``kind: surge``), only when the pack has some.
        self.surges = SurgeTracker(engine.pack) if engine.pack.surges else None

    def feed_line(self, line: bytes | str) -> tuple[Decoded | Rejected, Outcome | None]:
        """Decode and apply one JSONL line; a rejected line yields no outcome."""
        decoded = decode(line)
        if isinstance(decoded, Rejected):
            self.counts.add("rejected", decoded.reason)
            return decoded, None
        return decoded, self.feed(decoded)

    def feed(self, decoded: Decoded) -> Outcome:
        event = decoded.event
        household_id = event.household_id
        owner = self.owners.setdefault(event.event_id, household_id)
        if owner != household_id:
            # The engine dedupes per household (DESIGN); a file replay, like the
            # embedded log and the SDK outbox, also refuses an id another household
            # already used, so every entry classifies such input alike.
            outcome = Outcome("rejected", reason=CROSS_HOUSEHOLD_REUSE)
            self.counts.add("rejected", outcome.reason)
            return outcome
        state = self.states.get(household_id)
        if state is None:
            state = self.states[household_id] = HouseholdState()
        outcome = self.engine.apply(state, decoded)
        self.counts.add(outcome.status, outcome.reason)
        self.counts.note(outcome.notices)
        if outcome.status == "processed":
            at = decoded.occurred_us
            if self.max_occurred is None or at > self.max_occurred:
                self.max_occurred = at
            if self.surges is not None:
                self.surges.observe(event, at)
        return outcome

    def feed_all(self, lines: Iterable[bytes | str]) -> list[Record]:
        records: list[Record] = []
        for line in lines:
            _, outcome = self.feed_line(line)
            if outcome is not None:
                records.extend(outcome.records)
        return records

    def finish(self, as_of: int | None = None) -> list[Record]:
        """End of input: fire every pending deadline due ≤ ``as_of`` (default: latest event).

        Then, with surge rules, every day close ≤ ``as_of``: only now, after all
        input, so that a surge depends on which events occurred, never on the
        order they arrived in.
        """
        limit = self.max_occurred if as_of is None else as_of
        if limit is None:
            return []
        records = fire_due(self.engine, self.states, limit)
        if self.surges is not None:
            records.extend(self.surges.close_until(limit))
        return records


def fire_due(
    engine: Engine, states: MutableMapping[str, HouseholdState], limit: int
) -> list[Record]:
    """Fire deadlines due ≤ ``limit`` for all households in global time order."""
    heap = [
        (due, household_id)
        for household_id, state in states.items()
        if (due := state.next_due) is not None and due <= limit
    ]
    heapq.heapify(heap)
    records: list[Record] = []
    while heap:
        due, household_id = heapq.heappop(heap)
        state = states[household_id]
        records.extend(engine.advance(state, household_id, due))
        following = state.next_due
        if following is not None and following <= limit:
            heapq.heappush(heap, (following, household_id))
    return records
