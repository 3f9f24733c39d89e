"""In-memory adapters of the ports in ``streams.ports``: a test double and reference implementation.

Nothing here is durable and nothing is shared between processes: these adapters
exist to state the ports' behaviour in the plainest code (the contract suites in
``tests/streams/contracts`` run against them and against the SQLite adapters),
and to let a test exercise a caller without a file. They keep the SQLite log's
observable behaviour, including what is not obvious: a duplicate takes no
position, a conflict is a dead letter, checkpoints are last-write-wins.

The adapters of one :class:`MemoryLog` share one :class:`MemoryTables`, and
``MemoryLog.transaction()`` restores a snapshot of it when the block raises, so
a failed batch leaves nothing behind, as with SQLite. Lifecycle records are not
hash-chained here (the chain is an on-disk tamper-evidence, ``privacy.audit``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from events.codec import Decoded, Rejected, decode
from events.instants import format_instant, now_micros
from privacy.crypto import StoredKey
from streams.ports import LogEntry, PublishCounts

CONFLICT = "event_id: already in the log with different content (conflict)"


@dataclass
class DeadLetterRow:
    stage: str
    source: str
    reason: str
    event_id: str | None
    household_id: str | None
    body: bytes


@dataclass
class MemoryTables:
    """Everything one in-memory log holds (what a transaction snapshots)."""

    #: position - 1 → (event_id, household_id, fingerprint, body)
    events: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    event_index: dict[str, int] = field(default_factory=dict)
    lifecycle: list[bytes] = field(default_factory=list)
    states: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)


class MemoryCheckpoints:
    """``Checkpoints``: a dict of positions, 0 for a consumer never seen."""

    def __init__(self, tables: MemoryTables | None = None) -> None:
        self.tables = tables or MemoryTables()

    def checkpoint(self, consumer: str) -> int:
        return self.tables.checkpoints.get(consumer, 0)

    def set_checkpoint(self, consumer: str, position: int) -> None:
        self.tables.checkpoints[consumer] = position


class MemoryDeadLetters:
    """``DeadLetters``: a list of rows, grouped on read."""

    def __init__(self, tables: MemoryTables | None = None) -> None:
        self.tables = tables or MemoryTables()

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        self.tables.dead_letters.append(
            DeadLetterRow(stage, source, reason, event_id, household_id, body))

    def dead_letter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.tables.dead_letters:
            counts[row.stage] = counts.get(row.stage, 0) + 1
        return dict(sorted(counts.items()))

    def dead_letter_reasons(self, limit: int = 20) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for row in self.tables.dead_letters:
            counts[row.reason] = counts.get(row.reason, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


class MemoryStates:
    """``StateStore``: state and next deadline per household; the due index is a scan."""

    def __init__(self, tables: MemoryTables | None = None) -> None:
        self.tables = tables or MemoryTables()

    def load_states(self, household_ids: Iterable[str]) -> dict[str, bytes]:
        states = self.tables.states
        return {h: states[h][0] for h in household_ids if h in states}

    def save_states(self, rows: Iterable[tuple[str, bytes, int | None]]) -> None:
        for household_id, state, next_due in rows:
            self.tables.states[household_id] = (bytes(state), next_due)

    def _due(self, until: int) -> list[tuple[str, int]]:
        return [(h, due) for h, (_, due) in self.tables.states.items()
                if due is not None and due <= until]

    def households_due(self, until: int) -> list[str]:
        return sorted(h for h, _ in self._due(until))

    def due_times(self, until: int) -> list[int]:
        return sorted(due for _, due in self._due(until))


class MemoryLifecycle:
    """``LifecycleLog``: records as JSON bytes; seq = index + 1."""

    def __init__(self, tables: MemoryTables | None = None) -> None:
        self.tables = tables or MemoryTables()

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        first = len(self.tables.lifecycle) + 1
        self.tables.lifecycle.extend(orjson.dumps(record) for record in records)
        return list(range(first, first + len(records)))

    def read_lifecycle(self, after: int, limit: int) -> list[LogEntry]:
        start = max(after, 0)
        rows = self.tables.lifecycle[start : start + limit]
        return [LogEntry(start + i + 1, body) for i, body in enumerate(rows)]

    def end_seq(self) -> int:
        return len(self.tables.lifecycle)


class MemoryEvents:
    """``EventLog``: validated input in order, deduplicated by ``event_id``.

    Personal fields are kept as given (no keyring): sealing is the SQLite log's.
    """

    def __init__(self, tables: MemoryTables | None = None,
                 dead_letters: MemoryDeadLetters | None = None) -> None:
        self.tables = tables or MemoryTables()
        self.dead_letters = dead_letters or MemoryDeadLetters(self.tables)

    def publish(
        self,
        lines: Iterable[bytes | str],
        source: str,
        batch_size: int = 5000,
        on_batch: Any = None,
    ) -> PublishCounts:
        counts = PublishCounts()
        batch: list[bytes | str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= batch_size:
                self._publish_batch(batch, source, counts, on_batch)
                batch = []
        if batch:
            self._publish_batch(batch, source, counts, on_batch)
        return counts

    def _publish_batch(self, batch: list[bytes | str], source: str, counts: PublishCounts,
                       on_batch: Any) -> None:
        with _rolled_back_on_error(self.tables):
            for line in batch:
                if isinstance(line, str | bytes) and not line.strip():
                    continue  # blank lines in a JSONL file are not input
                self._append_one(decode(line), source, counts)
        if on_batch:
            on_batch(len(batch))

    def publish_decoded(
        self, items: Sequence[Decoded | Rejected], source: str
    ) -> tuple[PublishCounts, list[str]]:
        counts = PublishCounts()
        with _rolled_back_on_error(self.tables):
            statuses = [self._append_one(item, source, counts) for item in items]
        return counts, statuses

    def _append_one(self, item: Decoded | Rejected, source: str, counts: PublishCounts) -> str:
        counts.received += 1
        if isinstance(item, Rejected):
            counts.rejected += 1
            self.dead_letters.dead_letter("ingest", source, item.reason, item.event_id,
                                          item.household_id, item.raw)
            return "rejected: " + item.reason
        body = dict(item.raw)
        if body.get("recorded_at") is None:
            body["recorded_at"] = format_instant(now_micros())
        known = self.tables.event_index.get(item.event_id)
        if known is None:
            self.tables.event_index[item.event_id] = len(self.tables.events)
            self.tables.events.append(
                (item.event_id, item.household_id, item.fingerprint, orjson.dumps(body)))
            counts.accepted += 1
            return "accepted"
        if self.tables.events[known][2] == item.fingerprint:
            counts.duplicates += 1
            return "duplicate"
        counts.rejected += 1
        self.dead_letters.dead_letter("ingest", source, CONFLICT, item.event_id,
                                      item.household_id, orjson.dumps(body))
        return "rejected: " + CONFLICT

    def read_events(self, after: int, limit: int) -> list[LogEntry]:
        start = max(after, 0)
        rows = self.tables.events[start : start + limit]
        return [LogEntry(start + i + 1, body, fingerprint)
                for i, (_, _, fingerprint, body) in enumerate(rows)]

    def end_position(self) -> int:
        return len(self.tables.events)


@contextmanager
def _rolled_back_on_error(tables: MemoryTables) -> Iterator[None]:
    """Restore ``tables`` as they were if the block raises (a transaction's atomicity)."""
    snapshot = copy.deepcopy(tables.__dict__)
    try:
        yield
    except BaseException:
        tables.__dict__.update(snapshot)
        raise


class MemoryLog:
    """All the log's ports over one :class:`MemoryTables`, with ``transaction()``."""

    def __init__(self) -> None:
        self.tables = MemoryTables()
        self.dead_letters = MemoryDeadLetters(self.tables)
        self.events = MemoryEvents(self.tables, self.dead_letters)
        self.lifecycle = MemoryLifecycle(self.tables)
        self.states = MemoryStates(self.tables)
        self.checkpoints = MemoryCheckpoints(self.tables)
        # The ports' methods, as on SqliteLog.
        self.publish = self.events.publish
        self.publish_decoded = self.events.publish_decoded
        self.read_events = self.events.read_events
        self.end_position = self.events.end_position
        self.append_lifecycle = self.lifecycle.append_lifecycle
        self.read_lifecycle = self.lifecycle.read_lifecycle
        self.end_seq = self.lifecycle.end_seq
        self.load_states = self.states.load_states
        self.save_states = self.states.save_states
        self.households_due = self.states.households_due
        self.due_times = self.states.due_times
        self.checkpoint = self.checkpoints.checkpoint
        self.set_checkpoint = self.checkpoints.set_checkpoint
        self.dead_letter = self.dead_letters.dead_letter
        self.dead_letter_counts = self.dead_letters.dead_letter_counts
        self.dead_letter_reasons = self.dead_letters.dead_letter_reasons

    @contextmanager
    def transaction(self) -> Iterator[MemoryTables]:
        """Everything written inside is undone if the block raises."""
        with _rolled_back_on_error(self.tables):
            yield self.tables


class MemoryKeyStore:
    """``ErasableKeyStore``: wrapped keys by household and by kid, erasure markers.

    The first key stored for a household is kept, and none is stored for an erased
    household (as the Kafka runtime's ``SqliteKeyStore`` does).
    """

    def __init__(self) -> None:
        self._by_household: dict[str, StoredKey] = {}
        self._erased: set[str] = set()
        self._generation = 0

    def key_of_household(self, household_id: str) -> StoredKey | None:
        return self._by_household.get(household_id)

    def key_by_kid(self, kid: str) -> StoredKey | None:
        return next((k for k in self._by_household.values() if k.kid == kid), None)

    def store_key(self, key: StoredKey) -> None:
        if key.household_id not in self._erased:
            self._by_household.setdefault(key.household_id, key)

    def key_count(self) -> int:
        return len(self._by_household)

    def is_erased(self, household_id: str) -> bool:
        return household_id in self._erased

    def erasure_generation(self) -> int:
        return self._generation

    def erased_households(self) -> list[str]:
        return sorted(self._erased)

    def erase(self, household_id: str) -> dict[str, Any]:
        already = household_id in self._erased
        deleted = self._by_household.pop(household_id, None) is not None
        self._erased.add(household_id)
        self._generation += 1
        return {"household_id": household_id, "already_erased": already,
                "key_deleted": deleted}
