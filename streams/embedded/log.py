"""The embedded event log: one SQLite file, composed of one adapter per port.

One file holds everything the embedded runtime must not lose: accepted events
in log order (``position``; ``event_id`` unique), rejected input with its
reason (dead letters), lifecycle records, per-household rule state, and
consumer checkpoints. The processor moves its checkpoint in the same
transaction as its effects, so a crash at any point resumes exactly.

Each concern is an adapter of a port of ``streams.ports`` over the one shared
connection (``sqlite_events``, ``sqlite_lifecycle``, ``sqlite_state``,
``sqlite_checkpoints``, ``sqlite_dead_letters``, ``sqlite_keys``, ``sqlite_owners``; schema and
transactions in ``sqlite_db``), so :meth:`SqliteLog.transaction` spans them all.
``SqliteLog`` keeps the flat API its callers use and adds what crosses concerns
(erasure, the check of sealed fields).

Personal fields are sealed before they are appended (``privacy.crypto``): the
log holds one wrapped data key per household (``household_keys``), the
households erased by crypto-shredding (``erased_households``) and the sealed
fields found unreadable on read (``crypto_problems``: event and field, never
the text). The master key that wraps the data keys is a file outside the
database (``master.key`` next to it, mode 0600), so a copy of the log alone
leaks no personal text. ``SqliteLog`` (through ``SqliteKeys``) is the keyring's
``KeyStore``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from events.codec import Decoded, Rejected
from privacy.crypto import MASTER_KEY_FILE, Keyring, Problem, StoredKey
from rules.ownership import Standing
from streams.embedded import sqlite_db
from streams.embedded.sqlite_checkpoints import SqliteCheckpoints
from streams.embedded.sqlite_db import PAGE_CACHE_MIB, SCHEMA
from streams.embedded.sqlite_dead_letters import SqliteDeadLetters
from streams.embedded.sqlite_events import SqliteEvents
from streams.embedded.sqlite_keys import (
    ERASURE_GENERATION_KEY,
    SqliteCryptoProblems,
    SqliteKeys,
)
from streams.embedded.sqlite_lifecycle import SqliteLifecycle
from streams.embedded.sqlite_owners import SqliteOwners
from streams.embedded.sqlite_state import SqliteStates
from streams.ports import LogEntry, PublishCounts

__all__ = [
    "ERASURE_GENERATION_KEY",
    "PAGE_CACHE_MIB",
    "SCHEMA",
    "LogEntry",
    "PublishCounts",
    "SqliteLog",
]


class SqliteLog:
    """The embedded runtime's durable store (see the module docstring).

    Implements ``streams.ports``: ``EventLog``, ``LifecycleLog``, ``StateStore``,
    ``Checkpoints``, ``DeadLetters``, ``OwnerDirectory``, ``Transactional`` and
    ``privacy.crypto.KeyStore``; the adapters themselves are ``events``, ``lifecycle``,
    ``states``, ``checkpoints``, ``dead_letters``, ``owners`` and ``keys``.
    """

    def __init__(self, path: Path, master_key: Path | None = None) -> None:
        """Open (or create) the log; ``master_key`` defaults to ``master.key`` next to it.

        The master key file is created (0600) with the first sealed field, and
        only while the log holds no wrapped key (``privacy.crypto.load_master_key``).
        """
        self.path = path
        self.db = sqlite_db.connect(path)
        self.master_key_path = master_key or path.parent / MASTER_KEY_FILE
        self.keys = SqliteKeys(self.db)
        self.keyring = Keyring(self.keys, self.master_key_path)
        self.dead_letters = SqliteDeadLetters(self.db, self.keyring)
        self.owners = SqliteOwners(self.db)
        self.owners.migrate()  # a log from before owners: built from its events, once
        self.events = SqliteEvents(self.db, self.keyring, self.dead_letters,
                                   on_append=self.owners.observe,
                                   read_ahead=self.keys.read_ahead)
        self.lifecycle = SqliteLifecycle(self.db)
        self.states = SqliteStates(self.db)
        self.checkpoints = SqliteCheckpoints(self.db)
        self.problems = SqliteCryptoProblems(self.db)

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One atomic unit: effects and checkpoint commit together or not at all."""
        return sqlite_db.transaction(self.db)

    def page_cache(self, mib: int) -> AbstractContextManager[None]:
        """Bound SQLite's page cache to ``mib`` MiB for the duration (``sqlite_db.page_cache``)."""
        return sqlite_db.page_cache(self.db, mib)

    def relaxed_sync(self) -> AbstractContextManager[None]:
        """No fsync per commit, for derived effects only (``sqlite_db.relaxed_sync``)."""
        return sqlite_db.relaxed_sync(self.db)

    def secret(self, key: str) -> bytes:
        """A random secret created once per home (e.g. the pseudonym key)."""
        return sqlite_db.secret(self.db, key)

    # -- EventLog -----------------------------------------------------------

    def publish(
        self,
        lines: Iterable[bytes | str],
        source: str,
        batch_size: int = 5000,
        on_batch: Any = None,
    ) -> PublishCounts:
        """Validate and append input; rejected input goes to the dead letters with its reason."""
        return self.events.publish(lines, source, batch_size, on_batch)

    def publish_decoded(
        self, items: Sequence[Decoded | Rejected], source: str
    ) -> tuple[PublishCounts, list[str]]:
        """Append already-decoded input; returns counts and a status per item."""
        return self.events.publish_decoded(items, source)

    def read_events(self, after: int, limit: int) -> list[LogEntry]:
        return self.events.read_events(after, limit)

    def end_position(self) -> int:
        return self.events.end_position()

    # -- LifecycleLog -------------------------------------------------------

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Append lifecycle records, hash-chained (inside the batch transaction)."""
        return self.lifecycle.append_lifecycle(records)

    def read_lifecycle(self, after: int, limit: int) -> list[LogEntry]:
        return self.lifecycle.read_lifecycle(after, limit)

    def end_seq(self) -> int:
        return self.lifecycle.end_seq()

    # -- StateStore ---------------------------------------------------------

    def load_states(self, household_ids: Iterable[str]) -> dict[str, bytes]:
        """Stored states of these households (absent: none stored)."""
        return self.states.load_states(household_ids)

    def save_states(self, rows: Iterable[tuple[str, bytes, int | None]]) -> None:
        """Upsert (household_id, state, next_due) — inside the batch transaction."""
        self.states.save_states(rows)

    def households_due(self, until: int) -> list[str]:
        return self.states.households_due(until)

    def due_times(self, until: int) -> list[int]:
        """The stored next deadlines ≤ ``until``, earliest first (one per household)."""
        return self.states.due_times(until)

    # -- Checkpoints --------------------------------------------------------

    def checkpoint(self, consumer: str) -> int:
        return self.checkpoints.checkpoint(consumer)

    def set_checkpoint(self, consumer: str, position: int) -> None:
        """Move a checkpoint (call inside the transaction that holds the effects)."""
        self.checkpoints.set_checkpoint(consumer, position)

    # -- DeadLetters --------------------------------------------------------

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        """Keep input that a later stage refused (call inside a transaction)."""
        self.dead_letters.dead_letter(stage, source, reason, event_id, household_id, body)

    def dead_letter_counts(self) -> dict[str, int]:
        return self.dead_letters.dead_letter_counts()

    def dead_letter_reasons(self, limit: int = 20) -> list[tuple[str, int]]:
        return self.dead_letters.dead_letter_reasons(limit)

    # -- KeyStore (privacy.crypto) ------------------------------------------

    def key_of_household(self, household_id: str) -> StoredKey | None:
        return self.keys.key_of_household(household_id)

    def key_by_kid(self, kid: str) -> StoredKey | None:
        return self.keys.key_by_kid(kid)

    def store_key(self, key: StoredKey) -> None:
        """Keep a new wrapped key (inside the publishing transaction)."""
        self.keys.store_key(key)

    def key_count(self) -> int:
        return self.keys.key_count()

    def is_erased(self, household_id: str) -> bool:
        return self.keys.is_erased(household_id)

    def erasure_generation(self) -> int:
        return self.keys.erasure_generation()

    def erased_households(self) -> list[str]:
        return self.keys.erased_households()

    # -- OwnerDirectory -----------------------------------------------------

    def owner_of(self, household_id: str) -> str | None:
        """The household's owner as of the last event appended (None: never seen)."""
        return self.owners.owner_of(household_id)

    def standing_of(self, household_id: str) -> Standing:
        return self.owners.standing_of(household_id)

    # -- erasure (crypto-shredding) -----------------------------------------

    def erase_household(self, household_id: str) -> dict[str, Any]:
        """Shred the household's data key and mark it erased; returns what was done.

        Idempotent. The wrapped key is overwritten with zeros, then deleted with
        ``secure_delete`` on (freed space is zeroed), and the WAL is truncated so
        no old page copy keeps it. Its events stay (their sealed fields now read
        "[erased]"); the input of its dead letters is replaced by "[erased]".
        """
        with sqlite_db.shredding(self.db) as checkpoint:
            with self.transaction():
                already, deleted = self.keys.shred(household_id)
                redacted = self.dead_letters.redact(household_id)
                kept = self.events.count_of_household(household_id)
            self.keyring.forget(household_id)
        return {
            "household_id": household_id,
            "already_erased": already,
            "key_deleted": deleted,
            "events_kept": kept,
            "dead_letters_redacted": redacted,
            # False: another connection holds the WAL; old frames may survive until it closes
            "wal_checkpoint_complete": checkpoint[0],
        }

    # -- unreadable sealed fields -------------------------------------------

    def record_crypto_problems(self, problems: Sequence[Problem]) -> None:
        """Keep (and log) sealed fields that could not be opened: event and field, no text."""
        self.problems.record_crypto_problems(problems)

    def check_sealed_fields(self, batch: int = 5000) -> list[Problem]:
        """Open every sealed field once; record and return those that fail authentication.

        Run by ``jiahe verify`` (not by the processor, which never needs clear text):
        an edited, moved or foreign ciphertext is named by event and field.
        """
        self.keyring.refresh()
        found: list[Problem] = []
        position = 0
        while entries := self.read_events(position, batch):
            for entry in entries:
                _, unreadable = self.keyring.open_event(orjson.loads(entry.body))
                found.extend(p for p in unreadable if "erased" not in p.reason)
            position = entries[-1].position
        if found:
            self.record_crypto_problems(found)
        return found

    def crypto_problems(self) -> list[Problem]:
        return self.problems.crypto_problems()
