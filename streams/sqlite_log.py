"""The embedded event log: an append-only SQLite file with checkpoints and a DLQ.

One file holds everything the embedded runtime must not lose: accepted events
in log order (``position``; ``event_id`` unique), rejected input with its
reason (dead letters), lifecycle records, per-household rule state, and
consumer checkpoints. The processor moves its checkpoint in the same
transaction as its effects, so a crash at any point resumes exactly.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from events.codec import Decoded, Rejected, decode
from events.instants import format_instant, now_micros

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    -- no AUTOINCREMENT: an ignored duplicate must not leave a gap; rows are never deleted
    position     INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    household_id TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    body         BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    stage        TEXT NOT NULL,
    source       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    event_id     TEXT,
    household_id TEXT,
    body         BLOB NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lifecycle (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    household_id TEXT NOT NULL,
    warning_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    body         BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS household_state (
    household_id TEXT PRIMARY KEY,
    state        BLOB NOT NULL,
    next_due     INTEGER
);
CREATE INDEX IF NOT EXISTS household_state_next_due ON household_state(next_due)
    WHERE next_due IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


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


class SqliteLog:
    """The embedded runtime's durable store (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA cache_size=-131072")  # 128 MiB of page cache
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: effects and checkpoint commit together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------

    def secret(self, key: str) -> bytes:
        """A random secret created once per home (e.g. the pseudonym key)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return bytes(self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    # -- publishing ---------------------------------------------------------

    def publish(
        self,
        lines: Iterable[bytes | str],
        source: str,
        batch_size: int = 5000,
        on_batch: Any = None,
    ) -> PublishCounts:
        """Validate and append input; rejected input goes to the dead letters with its reason."""
        counts = PublishCounts()
        batch: list[bytes | str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= batch_size:
                self._publish_batch(batch, source, counts)
                if on_batch:
                    on_batch(len(batch))
                batch = []
        if batch:
            self._publish_batch(batch, source, counts)
            if on_batch:
                on_batch(len(batch))
        return counts

    def publish_decoded(
        self, items: Sequence[Decoded | Rejected], source: str
    ) -> tuple[PublishCounts, list[str]]:
        """Append already-decoded input; returns counts and a status per item."""
        counts = PublishCounts()
        with self.transaction():
            statuses = [self._append_one(item, source, counts) for item in items]
        return counts, statuses

    def _publish_batch(self, batch: list[bytes | str], source: str, counts: PublishCounts) -> None:
        with self.transaction():
            for line in batch:
                if isinstance(line, str | bytes) and not line.strip():
                    continue  # blank lines in a JSONL file are not input
                self._append_one(decode(line), source, counts)

    def _append_one(self, item: Decoded | Rejected, source: str, counts: PublishCounts) -> str:
        counts.received += 1
        if isinstance(item, Rejected):
            counts.rejected += 1
            self._dead_letter("ingest", source, item.reason, item.event_id, item.household_id,
                              item.raw)
            return "rejected: " + item.reason
        body = dict(item.raw)
        if body.get("recorded_at") is None:
            body["recorded_at"] = format_instant(now_micros())
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO events(event_id, household_id, fingerprint, body) "
            "VALUES (?, ?, ?, ?)",
            (item.event_id, item.household_id, item.fingerprint, orjson.dumps(body)),
        )
        if cursor.rowcount == 1:
            counts.accepted += 1
            return "accepted"
        known = self.db.execute(
            "SELECT fingerprint FROM events WHERE event_id = ?", (item.event_id,)
        ).fetchone()
        if known and known[0] == item.fingerprint:
            counts.duplicates += 1
            return "duplicate"
        counts.rejected += 1
        reason = "event_id: already in the log with different content (conflict)"
        self._dead_letter("ingest", source, reason, item.event_id, item.household_id,
                          orjson.dumps(item.raw))
        return "rejected: " + reason

    def _dead_letter(
        self,
        stage: str,
        source: str,
        reason: str,
        event_id: str | None,
        household_id: str | None,
        body: bytes,
    ) -> None:
        self.db.execute(
            "INSERT INTO dead_letters(stage, source, reason, event_id, household_id, body, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stage, source, reason, event_id, household_id, body, format_instant(now_micros())),
        )

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        """Keep input that a later stage refused (call inside a transaction)."""
        self._dead_letter(stage, source, reason, event_id, household_id, body)

    # -- reading ------------------------------------------------------------

    def read_events(self, after: int, limit: int) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT position, body, fingerprint FROM events WHERE position > ? "
            "ORDER BY position LIMIT ?",
            (after, limit),
        ).fetchall()
        return [LogEntry(position, body, fp) for position, body, fp in rows]

    def read_lifecycle(self, after: int, limit: int) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT seq, body FROM lifecycle WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [LogEntry(seq, body) for seq, body in rows]

    @contextmanager
    def relaxed_sync(self) -> Iterator[None]:
        """For derived effects only (processing, projection): no fsync per commit.

        Everything they write is re-derivable from the log, and WAL mode keeps
        the file consistent after a crash; accepted input (``publish``) is
        always committed with a full fsync.
        """
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Fewer, larger WAL checkpoints: state rows are rewritten batch after batch.
        self.db.execute("PRAGMA wal_autocheckpoint=20000")
        try:
            yield
        finally:
            self.db.execute("PRAGMA wal_autocheckpoint=1000")
            self.db.execute("PRAGMA synchronous=FULL")

    def end_position(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    def end_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM lifecycle").fetchone()
        return int(row[0])

    def checkpoint(self, consumer: str) -> int:
        row = self.db.execute(
            "SELECT position FROM checkpoints WHERE consumer = ?", (consumer,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_checkpoint(self, consumer: str, position: int) -> None:
        """Move a checkpoint (call inside the transaction that holds the effects)."""
        self.db.execute(
            "INSERT INTO checkpoints(consumer, position) VALUES (?, ?) "
            "ON CONFLICT(consumer) DO UPDATE SET position = excluded.position",
            (consumer, position),
        )

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

    # -- rule state ---------------------------------------------------------

    def load_states(self, household_ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(household_ids)
        out: dict[str, bytes] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for household_id, blob in self.db.execute(
                f"SELECT household_id, state FROM household_state WHERE household_id IN ({marks})",
                chunk,
            ):
                out[household_id] = bytes(blob)
        return out

    def save_states(self, rows: Iterable[tuple[str, bytes, int | None]]) -> None:
        """Upsert (household_id, state, next_due) — inside the batch transaction."""
        self.db.executemany(
            "INSERT INTO household_state(household_id, state, next_due) VALUES (?, ?, ?) "
            "ON CONFLICT(household_id) DO UPDATE SET state = excluded.state, "
            "next_due = excluded.next_due",
            rows,
        )

    def households_due(self, until: int) -> list[str]:
        rows = self.db.execute(
            "SELECT household_id FROM household_state WHERE next_due IS NOT NULL "
            "AND next_due <= ? ORDER BY household_id",
            (until,),
        ).fetchall()
        return [row[0] for row in rows]

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Append lifecycle records; returns their sequence numbers."""
        if not records:
            return []
        first = self.end_seq() + 1
        self.db.executemany(
            "INSERT INTO lifecycle(seq, household_id, warning_id, type, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                (first + i, r["household_id"], r["warning_id"], r["type"], orjson.dumps(r))
                for i, r in enumerate(records)
            ),
        )
        return list(range(first, first + len(records)))

