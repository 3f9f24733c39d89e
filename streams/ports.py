"""The runtimes' ports: what the processors and the application need from storage.

One small protocol per concern, with the exact signatures of ``SqliteLog`` (the
embedded runtime's adapter, ``streams.embedded``), so callers depend on a concern
rather than on SQLite. ``streams.memory`` is a reference implementation of the
same ports; ``tests/streams/contracts`` holds one suite per port that every
adapter passes.

Atomicity is a property of the adapter's ``transaction()`` (:class:`Transactional`):
every write made inside it commits or rolls back with the others. Writes that
say "inside a transaction" rely on the caller to open one; reads see the writes
of the open transaction.

The Kafka runtime's per-partition state table (:class:`PartitionedStates`) and
the key stores (:class:`KeyStore`, :class:`ErasableKeyStore`) are ports too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from events.codec import Decoded, Rejected
from privacy.crypto import KeyStore
from rules.ownership import Standing

__all__ = [
    "Checkpoints",
    "DeadLetters",
    "ErasableKeyStore",
    "EventLog",
    "KeyStore",
    "LifecycleLog",
    "LogEntry",
    "OwnerDirectory",
    "PartitionedStates",
    "PublishCounts",
    "Send",
    "StateStore",
    "Transactional",
]


@dataclass
class PublishCounts:
    """What happened to published input: received = accepted + duplicates + rejected."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


class LogEntry(NamedTuple):
    """One row of the log (a tuple: a batch builds thousands of them)."""

    position: int
    body: bytes
    fingerprint: str = ""


class Transactional(Protocol):
    """A store whose writes can be grouped into one atomic unit."""

    def transaction(self) -> AbstractContextManager[Any]:
        """Everything written inside commits together, or nothing does (on any exception).

        Not re-entrant: one transaction at a time per store.
        """
        ...


class EventLog(Protocol):
    """Accepted input in log order; what was refused goes to the dead letters."""

    def publish(
        self,
        lines: Iterable[bytes | str],
        source: str,
        batch_size: int = 5000,
        on_batch: Any = None,
    ) -> PublishCounts:
        """Validate and append raw input lines, in their order; blank lines are skipped.

        Each batch of ``batch_size`` lines is its own transaction (``on_batch`` is
        called with its size after the commit). An ``event_id`` already in the log
        with the same fingerprint is a duplicate (nothing appended); with another
        fingerprint it is a conflict, dead-lettered (stage ``ingest``) like invalid
        input. ``recorded_at`` is stamped on events that lack it.
        """
        ...

    def publish_decoded(
        self, items: Sequence[Decoded | Rejected], source: str
    ) -> tuple[PublishCounts, list[str]]:
        """Append already-decoded input in one transaction, as :meth:`publish` would.

        Returns the counts and one status per item, in order: ``accepted``,
        ``duplicate`` or ``rejected: <reason>``.
        """
        ...

    def read_events(self, after: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` events with position > ``after``, in increasing position order.

        Positions start at 1 and have no gaps (a duplicate takes none).
        """
        ...

    def end_position(self) -> int:
        """The position of the last event appended; 0 for an empty log."""
        ...


class LifecycleLog(Protocol):
    """Lifecycle records (warnings raised, escalated, resolved…) in append order."""

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Append records in their order; returns their sequence numbers (increasing).

        Call inside a transaction: the records commit with the effects they describe.
        """
        ...

    def read_lifecycle(self, after: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` records with seq > ``after``, in seq order (body: the JSON record)."""
        ...

    def end_seq(self) -> int:
        """The seq of the last record appended; 0 when there is none."""
        ...


class StateStore(Protocol):
    """Per-household rule state (opaque bytes) with the household's next deadline."""

    def load_states(self, household_ids: Iterable[str]) -> dict[str, bytes]:
        """The stored states of these households; a household with none is absent."""
        ...

    def save_states(self, rows: Iterable[tuple[str, bytes, int | None]]) -> None:
        """Upsert (household_id, state, next_due); call inside the batch transaction.

        ``next_due`` None takes the household out of the due index.
        """
        ...

    def households_due(self, until: int) -> list[str]:
        """Households whose next deadline is ≤ ``until``, ordered by household_id."""
        ...

    def due_times(self, until: int) -> list[int]:
        """The stored next deadlines ≤ ``until``, earliest first (one per household)."""
        ...


class Checkpoints(Protocol):
    """Named consumers' positions, moved with the effects they cover."""

    def checkpoint(self, consumer: str) -> int:
        """The consumer's last position; 0 for a consumer never seen."""
        ...

    def set_checkpoint(self, consumer: str, position: int) -> None:
        """Set the position (last write wins; call inside the transaction of the effects)."""
        ...


class DeadLetters(Protocol):
    """Input refused at some stage, kept with its reason (never silently dropped)."""

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        """Keep one refused input (call inside a transaction). Every call adds a row."""
        ...

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters per stage, keys in stage order."""
        ...

    def dead_letter_reasons(self, limit: int = 20) -> list[tuple[str, int]]:
        """(reason, count), most frequent first, ties by reason; at most ``limit`` rows."""
        ...


class OwnerDirectory(Protocol):
    """Each household's current owner (DESIGN "Ownership"), for the ingest guard.

    The fold of ``rules.ownership.next_owner`` over each household's events in log
    order: ownership depends only on a household's own events, so this equals the
    engine's owner once the engine has processed the same events.
    """

    def owner_of(self, household_id: str) -> str | None:
        """The household's owner; None for a household never seen."""
        ...

    def standing_of(self, household_id: str) -> Standing:
        """Owner and registration together (``rules.ownership.NEVER_SEEN`` if never seen)."""
        ...


class ErasableKeyStore(KeyStore, Protocol):
    """A :class:`KeyStore` that can crypto-shred a household.

    ``privacy.crypto.KeyStore`` (what a ``Keyring`` needs): ``key_of_household``,
    ``key_by_kid``, ``store_key``, ``key_count``, ``is_erased``, ``erasure_generation``.
    """

    def erase(self, household_id: str) -> dict[str, Any]:
        """Delete the household's key and mark it erased, atomically; idempotent.

        Returns at least ``household_id``, ``already_erased`` and ``key_deleted``.
        The erasure generation moves on every call, so keyrings drop their caches.
        """
        ...

    def erased_households(self) -> list[str]:
        """Every erased household, in household_id order."""
        ...


#: ``producer.send(topic, key, value, partition, timestamp, headers)`` of faust/aiokafka.
Send = Callable[..., Awaitable[Awaitable[Any]]]


class PartitionedStates(Protocol):
    """The Kafka worker's state table: bytes by key, partition by partition."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The value stored for ``key`` in ``partition``; None when absent."""
        ...

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) stored for ``partition`` (empty values are deletions)."""
        ...

    async def write(self, send: Send, writes: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Store (partition, key, value) writes; the changelog is sent and acked first.

        If sending fails nothing is stored locally: the changelog is never behind.
        """
        ...
