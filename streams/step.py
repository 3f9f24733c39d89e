"""One batch of incoming events through the rules: the step both runtimes share.

The embedded processor (SQLite log entries) and the Kafka worker (consumed messages)
differ in how they read, decode and store, and in how they make a batch's effects
durable; they do not differ in what a batch *means*. That meaning is here, once:

* every item is decoded; one that does not decode is refused at stage ``decode`` (and
  so is one the decoder raises on, with the exception's type and message);
* a household's state is loaded once per batch, when its first event comes;
* each decoded event goes through :meth:`rules.engine.Engine.apply` in input order;
  the engine's rejections are refused at stage ``engine``; a processed event adds its
  lifecycle records, marks its household changed and feeds the surge tracker;
* an event the engine raises on (a bug, not a rule) is refused at stage ``engine`` with
  the exception's type and message, and the batch goes on: one event must not stop a
  runtime. Whatever the engine changed in the state before it raised stays (it is
  written back like any change), so both runtimes keep the same state; the event's
  records, if it made any, are dropped;
* every item is counted once: ``received == processed + duplicates + rejected``.

No I/O and no clock: decoding, loading and the surge tracker are passed in, and the
result says what to write. The engine and the tracker are deterministic, so the same
items from the same stored states give the same result, which is what makes a
re-processed batch (after a crash before its commit) emit the very same records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from events.codec import Decoded, Rejected
from rules.engine import Engine, Record
from rules.replay import Counts
from rules.state import HouseholdState
from rules.surge import SurgeTracker

log = logging.getLogger(__name__)
#: What a runtime hands in: a consumed message, a log entry's index in its batch, bytes.
Item = TypeVar("Item")
Stage = Literal["decode", "engine"]
#: Turns one item into an event or a reason to refuse it.
Decoder = Callable[[Item], Decoded | Rejected]
#: The state of a household, called once per household and batch, on its first event
#: (with the item that carries it: where the household lives, for a partitioned store),
#: before that event is applied: the stored state, or a fresh :class:`HouseholdState`
#: for a household never seen. The engine changes it in place, so the caller holds
#: what to write back.
StateLoader = Callable[[str, Item], HouseholdState]


@dataclass(frozen=True, slots=True)
class Refusal(Generic[Item]):
    """An item to dead-letter: which one, who refused it (``stage``) and why."""

    item: Item
    stage: Stage
    reason: str
    event_id: str | None
    household_id: str | None


@dataclass(slots=True)
class StepResult(Generic[Item]):
    """What one batch causes, each list in input order."""

    records: list[Record] = field(default_factory=list)
    refusals: list[Refusal[Item]] = field(default_factory=list)
    #: Households whose state a processed event changed (duplicates and rejections
    #: change nothing).
    changed: set[str] = field(default_factory=set)
    #: The processed items, each with its event as validated (``Decoded.raw``).
    processed: list[tuple[Item, dict[str, Any]]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    #: The latest ``occurred_at`` of a processed event (None when none was processed).
    max_occurred: int | None = None


def apply_batch(
    items: Iterable[Item],
    decode: Decoder[Item],
    load: StateLoader[Item],
    engine: Engine,
    surges: SurgeTracker | None = None,
) -> StepResult[Item]:
    """Decode, load and apply ``items`` (see the module docstring for the rules).

    One pass, item by item: a decoded event is dropped as soon as it is applied, so
    a batch never holds all its events at once (thousands of short-lived objects
    that would otherwise survive into the garbage collector's older generations).
    """
    result: StepResult[Item] = StepResult()
    states: dict[str, HouseholdState] = {}
    records = result.records
    refusals = result.refusals
    changed = result.changed
    processed = result.processed
    counts = result.counts
    apply = engine.apply
    max_occurred: int | None = None
    for item in items:
        try:
            event = decode(item)
        except Exception as exc:  # decoders refuse bad input; a raise is their bug
            log.error("decoding an item: %r", exc, exc_info=True)
            event = Rejected(f"decode error: {type(exc).__name__}: {exc}", b"")
        if isinstance(event, Rejected):
            counts.add("rejected", event.reason)
            refusals.append(
                Refusal(item, "decode", event.reason, event.event_id, event.household_id)
            )
            continue
        household_id = event.household_id
        state = states.get(household_id)
        if state is None:
            state = states[household_id] = load(household_id, item)
        try:
            outcome = apply(state, event)
        except Exception as exc:
            reason = engine_error(exc)
            log.error("event %s: %s", event.event_id, reason, exc_info=True)
            counts.add("rejected", reason)
            refusals.append(Refusal(item, "engine", reason, event.event_id, household_id))
            changed.add(household_id)
            continue
        counts.add(outcome.status, outcome.reason)
        counts.note(outcome.notices)
        if outcome.status == "rejected":
            refusals.append(
                Refusal(item, "engine", outcome.reason or "", event.event_id, household_id)
            )
        elif outcome.status == "processed":
            changed.add(household_id)
            records.extend(outcome.records)
            processed.append((item, event.raw))
            if surges is not None:
                surges.observe(event.event, event.occurred_us)
            if max_occurred is None or event.occurred_us > max_occurred:
                max_occurred = event.occurred_us
    result.max_occurred = max_occurred
    return result


def engine_error(exc: Exception) -> str:
    """The refusal reason of an event the engine raised on: ``engine error: KeyError: 'x'``."""
    return f"engine error: {type(exc).__name__}: {exc}"


def add_counts(total: Counts, part: Counts, *, reasons: bool) -> None:
    """Add one batch's counters to running totals, with the rejection reasons or not."""
    total.received += part.received
    total.processed += part.processed
    total.duplicates += part.duplicates
    total.rejected += part.rejected
    total.notices += part.notices
    total.notice_reasons.update(part.notice_reasons)
    if reasons:
        total.reasons.update(part.reasons)
