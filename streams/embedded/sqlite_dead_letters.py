"""Refused input with its reason (``dead_letters`` table): the ``DeadLetters`` port.

Input refused at ingest is stored sealed (``privacy.dead_letters``): under the key of
the household it names, else under the quarantine key, whose bodies are purged
(replaced by ``[purged]``, the row and its reason stay) once older than the retention
period. The purge runs inside the first dead-letter write of a process and then at
most hourly, and on :meth:`SqliteDeadLetters.purge_expired`. Bodies refused by a later
stage come from the log itself, whose personal fields are sealed already: kept as
they are (sealing them there could create a key inside a transaction the key ring
does not follow).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import orjson

from events.instants import format_instant, now_micros
from privacy.crypto import ERASED, Keyring, KeyringError
from privacy.dead_letters import (
    MAX_HOUSEHOLD_ID,
    PURGED,
    open_dead_letter,
    retention_days,
    seal_dead_letter,
    sealed_envelope,
)

_DAY_US = 86_400_000_000
#: Seconds between two purges of expired quarantined bodies by one process.
PURGE_INTERVAL_S = 3600.0
#: Rows whose input names no household: sealed under the quarantine key.
_QUARANTINED = (
    f"(household_id IS NULL OR length(household_id) NOT BETWEEN 1 AND {MAX_HOUSEHOLD_ID})"
)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """What a listing shows of a dead letter: the reason and metadata, never the body."""

    id: int
    stage: str
    source: str
    reason: str
    event_id: str | None
    household_id: str | None
    received_at: str
    sealed: bool


class SqliteDeadLetters:
    """Append-only rows (stage, source, reason, ids, input bytes, time received)."""

    def __init__(self, db: sqlite3.Connection, keyring: Keyring | None = None,
                 retention: float | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self.retention_days = retention_days() if retention is None else retention
        self._next_purge = 0.0

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        """Keep input that a stage refused (call inside a transaction).

        At ``ingest`` the caller's transaction is a sealing one (``SqliteEvents``):
        a key created here commits or rolls back with it.
        """
        if self.keyring is not None and stage == "ingest":
            body = seal_dead_letter(self.keyring, household_id, bytes(body))
        self.db.execute(
            "INSERT INTO dead_letters(stage, source, reason, event_id, household_id, body, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stage, source, reason, event_id, household_id, body, format_instant(now_micros())),
        )
        if time.monotonic() >= self._next_purge:
            self.purge_expired()

    def purge_expired(self, now_us: int | None = None) -> int:
        """Replace the body of quarantined dead letters older than the retention period
        by ``[purged]`` (freed pages zeroed); returns how many (call inside a transaction).
        """
        self._next_purge = time.monotonic() + PURGE_INTERVAL_S
        now = now_micros() if now_us is None else now_us
        cutoff = format_instant(now - int(self.retention_days * _DAY_US))
        secure = int(self.db.execute("PRAGMA secure_delete").fetchone()[0])
        self.db.execute("PRAGMA secure_delete = ON")
        try:
            cursor = self.db.execute(
                f"UPDATE dead_letters SET body = ? WHERE {_QUARANTINED} AND stage = 'ingest' "
                "AND received_at < ? AND body != ?",
                (PURGED, cutoff, PURGED),
            )
        finally:
            self.db.execute(f"PRAGMA secure_delete = {secure}")
        return int(cursor.rowcount)

    def letters(self, limit: int = 100) -> list[DeadLetterRow]:
        """The newest dead letters, without their bodies."""
        rows = self.db.execute(
            "SELECT id, stage, source, reason, event_id, household_id, received_at, body "
            "FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,),
        ).fetchall()
        return [DeadLetterRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6],
                              sealed_envelope(bytes(r[7])) is not None) for r in rows]

    def unsealed_body(self, letter_id: int) -> bytes | None:
        """The input of one dead letter, for the holder of the key store; None if erased.

        Raises ``KeyringError`` without a key ring, or for a tampered body.
        """
        if self.keyring is None:
            raise KeyringError("dead letters are opened with the log's key ring")
        row = self.db.execute(
            "SELECT body FROM dead_letters WHERE id = ?", (letter_id,)
        ).fetchone()
        if row is None:
            raise KeyError(letter_id)
        self.keyring.refresh()
        return open_dead_letter(self.keyring, bytes(row[0]))

    def dead_letter_counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT stage, COUNT(*) FROM dead_letters GROUP BY stage ORDER BY stage"
        ).fetchall()
        return {stage: int(count) for stage, count in rows}

    def dead_letter_reasons(self, limit: int = 20) -> list[tuple[str, int]]:
        rows = self.db.execute(
            "SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason "
            "ORDER BY n DESC, reason LIMIT ?",
            (limit,),
        ).fetchall()
        return [(reason, int(n)) for reason, n in rows]

    def redact(self, household_id: str) -> int:
        """Replace the input of the household's dead letters by "[erased]"; returns how many.

        For erasure: its own dead letters (sealed under its key, or clear ones kept by an
        older version), and those quarantined whose input names it (opened with the
        quarantine key and searched for the household id). Call before its key is
        shredded, inside a transaction.
        """
        cursor = self.db.execute(
            "UPDATE dead_letters SET body = ? WHERE household_id = ? AND body != ?",
            (ERASED.encode(), household_id, ERASED.encode()),
        )
        named = self._quarantined_naming(household_id)
        self.db.executemany(
            "UPDATE dead_letters SET body = ? WHERE id = ?",
            [(ERASED.encode(), letter_id) for letter_id in named],
        )
        return int(cursor.rowcount) + len(named)

    def _quarantined_naming(self, household_id: str) -> list[int]:
        """Ids of quarantined dead letters whose input holds the household id as a JSON
        string (or is clear and holds it: input kept by an older version)."""
        needle = orjson.dumps(household_id)
        found = []
        rows = self.db.execute(
            f"SELECT id, body FROM dead_letters WHERE {_QUARANTINED} AND body != ? "
            "AND body != ?", (PURGED, ERASED.encode()),
        )
        for letter_id, body in rows.fetchall():
            stored = bytes(body)
            if sealed_envelope(stored) is None or self.keyring is None:
                clear: bytes | None = stored
            else:
                try:
                    clear = open_dead_letter(self.keyring, stored)
                except KeyringError:
                    continue  # tampered: `jiahe verify` names it; nothing to search
            if clear is not None and needle in clear:
                found.append(int(letter_id))
        return found
