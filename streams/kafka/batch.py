"""One fetched batch of ``jiahe.events`` messages turned into effects, without any I/O.

Why pure: the worker must apply effects in a strict order (lifecycle records and dead
letters acknowledged by the broker, warehouse flushed, *then* state written, *then*
offsets committed). Computing a batch without touching Kafka keeps that order the only
thing the faust side has to get right, makes a re-processed batch produce the very same
records (the engine is deterministic and starts from the stored state), and lets the
computation be tested without a broker.

What a batch means to the rules (decode, load each state once, apply, count) is the
step the embedded processor shares, :mod:`streams.step`; this module adds Kafka's side
of it: tombstones and sealed personal fields in; dead letters with their headers,
positions and warehouse rows out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from events.codec import Decoded, Rejected
from privacy.quarantine import QuarantineSealer
from privacy.sealed import decode_sealed
from rules.engine import Engine, Record
from rules.replay import Counts
from rules.state import HouseholdState
from rules.transitions import subject_of, transition_of
from streams.kafka.surges import SurgeObservations
from streams.kafka.unreadable import UnreadableBatch
from streams.step import add_counts, apply_batch

#: Loads a household's stored state (None when never seen); called at most once per
#: household and batch, with the partition the household's events arrive on.
StateLoader = Callable[[str, int], HouseholdState | None]
Header = tuple[str, bytes]
MAX_REASON_BYTES = 2000
TOMBSTONE = "event: empty message (tombstone)"


class MessageLike(Protocol):
    """The parts of a consumed Kafka message the computation needs (faust's Message has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class BodySealer(Protocol):
    """Turns a refused input into what ``jiahe.dlq`` may hold, and says how
    (``privacy.quarantine.QuarantineSealer``: ``quarantine`` or ``withheld``)."""

    def seal(self, body: bytes) -> tuple[bytes, str]: ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """A plain :class:`MessageLike` (tests, tools)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Rejected input for ``jiahe.dlq``: original key, value sealed, why in the headers."""

    key: bytes | None
    value: bytes
    headers: list[Header]


@dataclass(slots=True)
class Touched:
    """A household whose state must be written back, and the partition it lives on."""

    partition: int
    state: HouseholdState


@dataclass
class BatchResult:
    """Everything one batch causes, in production order."""

    records: list[Record] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    touched: dict[str, Touched] = field(default_factory=dict)
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    #: Partition -> the offset after the last message seen (the next to read).
    positions: dict[int, int] = field(default_factory=dict)
    #: What the processed events mean to surge rules, for the surge topic (None: no
    #: surge rules, or nothing processed); ``streams.kafka.surges``.
    surge: bytes | None = None


def record_id(record: Record) -> str:
    """Consumer-side dedupe key: (warning, transition) — ``rules.transitions``.

    ``w-1:warning.raised:``, ``w-1:warning.escalated:street``,
    ``w-1:warning.assigned:li@2026-11-01T00:00:00Z`` (each assignment its own); a
    referral's records, which name no warning, by household and referral (a
    ``referral_id`` is unique per household): ``referral/h-1/r-1:referral.sent:``."""
    transition = transition_of(record)
    return f"{subject_of(record)}:{transition if ':' in transition else transition + ':'}"


def lifecycle_message(record: Record) -> tuple[bytes, bytes, list[Header]]:
    """Key, value and headers of a record on ``jiahe.warnings`` (value = DESIGN's dict).

    The key is the household; a district surge's records name none and are keyed by
    their warning, so that its raise and resolution share a partition (in order)."""
    household = record["household_id"]
    return (
        (household if household is not None else record["warning_id"]).encode(),
        orjson.dumps(record),
        [("record_id", record_id(record).encode())],
    )


def dead_letter(message: MessageLike, reason: str, stage: str, sealer: BodySealer
                ) -> DeadLetter:
    """Keep the input sealed; ``source`` says where it came from, ``stage`` who refused.

    Refused input is what no validation vouches for, and a foreign producer sends it
    clear: its bytes go to the topic only sealed with the day's quarantine public key
    (header ``sealed: quarantine``), or, with none, as digest and length (``withheld``).
    A batch the consumer could not read (:mod:`streams.kafka.unreadable`) is one letter
    with an empty value, stage ``decompress`` and its offsets in ``source`` (``@3-7``)."""
    source = f"{message.topic}/{message.partition}@{message.offset}"
    if isinstance(message.value, UnreadableBatch):
        stage = "decompress"
        source = f"{message.topic}/{message.partition}@{message.value.first}-{message.value.last}"
    headers: list[Header] = [
        ("reason", reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore").encode()),
        ("source", source.encode()),
        ("stage", stage.encode()),
    ]
    value = bytes(message.value or b"")
    if value:
        value, how = sealer.seal(value)
        headers.append(("sealed", how.encode()))
    return DeadLetter(message.key, value, headers)


class BatchProcessor:
    """The shared step (:mod:`streams.step`) over messages: Kafka's decoding and outputs.

    Tombstones and sealed personal fields are this topic's own input; states are
    loaded once per household and batch from the partition its first message came on.
    """

    def __init__(self, engine: Engine, sealer: BodySealer | None = None) -> None:
        self.engine = engine
        #: Without a sealer, dead letters' bodies are withheld (never written clear).
        self.sealer = sealer if sealer is not None else QuarantineSealer(None)

    def process(self, messages: Sequence[MessageLike], load: StateLoader) -> BatchResult:
        result = BatchResult()
        touched = result.touched

        def load_state(household_id: str, message: MessageLike) -> HouseholdState:
            state = load(household_id, message.partition) or HouseholdState()
            touched[household_id] = Touched(message.partition, state)
            return state

        surges = SurgeObservations(self.engine.pack) if self.engine.pack.surges else None
        step = apply_batch(messages, _decode, load_state, self.engine, surges)
        result.surge = surges.message() if surges is not None else None
        result.records = step.records
        result.counts = step.counts
        result.dead_letters = [dead_letter(r.item, r.reason, r.stage, self.sealer)
                               for r in step.refusals]
        result.event_rows = [
            {**raw, "offset": message.offset} for message, raw in step.processed
        ]
        positions = result.positions
        for message in messages:
            positions[message.partition] = message.offset + 1
        return result


def _decode(message: MessageLike) -> Decoded | Rejected:
    """Publishers seal personal fields (privacy.keystore); the rules never read them."""
    if message.value is None:
        return Rejected(TOMBSTONE, b"")
    if isinstance(message.value, UnreadableBatch):
        return Rejected(message.value.reason, b"")
    return decode_sealed(message.value)


def merge_counts(total: Counts, part: Counts) -> None:
    """Add one batch's counters to the worker's running totals.

    Reasons are not accumulated: they carry input values, and a long-lived worker
    would collect them without bound (each dead letter keeps its own in its headers).
    """
    add_counts(total, part, reasons=False)
