"""Accepted input in log order (``events`` table): the ``EventLog`` port.

Personal fields are sealed before they are appended (``privacy.crypto``); the
fingerprint stays the one of the clear content, so a re-sent event is still
recognised as a duplicate. Rejected input and conflicts go to the dead letters,
in the same transaction as the batch they came with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import orjson

from events.codec import Decoded, Rejected, decode
from events.instants import format_instant, now_micros
from privacy.crypto import Keyring
from streams.embedded.sqlite_db import fewer_checkpoints, transaction
from streams.ports import DeadLetters, LogEntry, PublishCounts

CONFLICT = "event_id: already in the log with different content (conflict)"
#: Reads the keys of these households ahead, for the duration of the block.
ReadAhead = Callable[[Iterable[str]], AbstractContextManager[None]]
#: Batches between two checks of whether keys are worth reading ahead (a ``COUNT``).
READ_AHEAD_CHECK_EVERY = 20
#: Appended events handed to ``on_append`` at a time inside a transaction (it folds them
#: in log order, so the hand-over size changes nothing but the memory held meanwhile).
APPEND_HANDOVER = 5000


class SqliteEvents:
    """Appends (validated, sealed, deduplicated by ``event_id``) and reads by position."""

    def __init__(self, db: sqlite3.Connection, keyring: Keyring, dead_letters: DeadLetters,
                 on_append: Callable[[Sequence[Decoded]], None] | None = None,
                 read_ahead: ReadAhead | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self.dead_letters = dead_letters
        #: called with the events a transaction appended, in log order, before it commits
        #: (the owner directory)
        self.on_append = on_append
        #: reads a batch's household keys in one statement (``SqliteKeys.read_ahead``)
        self.read_ahead = read_ahead
        self._appended: list[Decoded] = []

    @contextmanager
    def _sealing_transaction(self) -> Iterator[None]:
        """A publishing transaction: data keys it creates live or die with it.

        Cached keys are reloaded first if a household was erased since (maybe by
        another process: the write lock is held, so the generation read is current).
        """
        self._appended = []
        try:
            with transaction(self.db):
                self.keyring.refresh()
                yield
                if self.on_append is not None and self._appended:
                    self.on_append(self._appended)
        except BaseException:
            self.keyring.rollback()
            raise
        finally:
            self._appended = []
        self.keyring.commit()

    def publish(
        self,
        lines: Iterable[bytes | str],
        source: str,
        batch_size: int = 5000,
        on_batch: Any = None,
    ) -> PublishCounts:
        """Validate and append input; rejected input goes to the dead letters with its reason."""
        with fewer_checkpoints(self.db):
            return self._publish(lines, source, batch_size, on_batch)

    def _publish(self, lines: Iterable[bytes | str], source: str, batch_size: int,
                 on_batch: Any) -> PublishCounts:
        counts = PublishCounts()
        batch: list[bytes | str] = []
        batches = 0
        ahead = False
        for line in lines:
            batch.append(line)
            if len(batch) >= batch_size:
                if not ahead and batches % READ_AHEAD_CHECK_EVERY == 0:  # keys only grow
                    ahead = self._keys_outgrow_keyring()
                self._publish_batch(batch, source, counts, ahead)
                batches += 1
                if on_batch:
                    on_batch(len(batch))
                batch = []
        if batch:
            self._publish_batch(batch, source, counts, ahead or self._keys_outgrow_keyring())
            if on_batch:
                on_batch(len(batch))
        return counts

    def _keys_outgrow_keyring(self) -> bool:
        """Whether the log holds more household keys than the key ring caches.

        Then most events of a batch miss the key ring's cache and its keys are read
        ahead, one statement per batch; below it (a town, a test) nearly every key is
        cached and reading ahead would only re-read them.
        """
        return (self.read_ahead is not None
                and self.keyring.store.key_count() >= self.keyring.CACHE_LIMIT)

    def publish_decoded(
        self, items: Sequence[Decoded | Rejected], source: str
    ) -> tuple[PublishCounts, list[str]]:
        """Append already-decoded input; returns counts and a status per item."""
        counts = PublishCounts()
        with self._sealing_transaction():
            statuses = [self._append_one(item, source, counts) for item in items]
        return counts, statuses

    def _publish_batch(self, batch: list[bytes | str], source: str, counts: PublishCounts,
                       read_ahead: bool = False) -> None:
        # blank lines in a JSONL file are not input
        items: Iterable[Decoded | Rejected] = (
            decode(line) for line in batch
            if not (isinstance(line, str | bytes) and not line.strip()))
        read_ahead_keys = self.read_ahead if read_ahead else None
        if read_ahead_keys is not None:
            items = list(items)  # their households first; else one event alive at a time
        with self._sealing_transaction(), ExitStack() as stack:
            if read_ahead_keys is not None:
                stack.enter_context(read_ahead_keys(
                    item.household_id for item in items if isinstance(item, Decoded)))
            for item in items:
                self._append_one(item, source, counts)

    def _append_one(self, item: Decoded | Rejected, source: str, counts: PublishCounts) -> str:
        counts.received += 1
        if isinstance(item, Rejected):
            counts.rejected += 1
            self.dead_letters.dead_letter("ingest", source, item.reason, item.event_id,
                                          item.household_id, item.raw)
            return "rejected: " + item.reason
        # Personal fields sealed (or "[erased]" for an erased household); the
        # fingerprint stays the one of the clear content, so duplicates still match.
        body = self.keyring.seal_event(item.raw)
        if body.get("recorded_at") is None:
            body["recorded_at"] = format_instant(now_micros())
        sealed = orjson.dumps(body)
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO events(event_id, household_id, fingerprint, body) "
            "VALUES (?, ?, ?, ?)",
            (item.event_id, item.household_id, item.fingerprint, sealed),
        )
        if cursor.rowcount == 1:
            counts.accepted += 1
            appended = self._appended
            appended.append(item)
            if len(appended) >= APPEND_HANDOVER and self.on_append is not None:
                self.on_append(appended)
                self._appended = []
            return "accepted"
        known = self.db.execute(
            "SELECT fingerprint FROM events WHERE event_id = ?", (item.event_id,)
        ).fetchone()
        if known and known[0] == item.fingerprint:
            counts.duplicates += 1
            return "duplicate"
        counts.rejected += 1
        # the sealed body: a dead letter holds no clear personal text either
        self.dead_letters.dead_letter("ingest", source, CONFLICT, item.event_id,
                                      item.household_id, sealed)
        return "rejected: " + CONFLICT

    def read_events(self, after: int, limit: int) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT position, body, fingerprint FROM events WHERE position > ? "
            "ORDER BY position LIMIT ?",
            (after, limit),
        ).fetchall()
        return [LogEntry(position, body, fp) for position, body, fp in rows]

    def end_position(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    def count_of_household(self, household_id: str) -> int:
        """How many events the household has in the log."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM events WHERE household_id = ?", (household_id,)
        ).fetchone()
        return int(row[0])
