"""The embedded event log: an append-only SQLite file with checkpoints and a DLQ.

One file holds everything the embedded runtime must not lose: accepted events
in log order (``position``; ``event_id`` unique), rejected input with its
reason (dead letters), lifecycle records, per-household rule state, and
consumer checkpoints. The processor moves its checkpoint in the same
transaction as its effects, so a crash at any point resumes exactly.

Personal fields are sealed before they are appended (``events.crypto``): the
log holds one wrapped data key per household (``household_keys``), the
households erased by crypto-shredding (``erased_households``) and the sealed
fields found unreadable on read (``crypto_problems``: event and field, never
the text). The master key that wraps the data keys is a file outside the
database (``master.key`` next to it, mode 0600), so a copy of the log alone
leaks no personal text. ``SqliteLog`` is the keyring's ``KeyStore``.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from events.codec import Decoded, Rejected, decode
from events.crypto import ERASED, MASTER_KEY_FILE, Keyring, Problem, StoredKey
from events.instants import format_instant, now_micros

log = logging.getLogger(__name__)

#: SQLite page cache per connection (``PRAGMA cache_size``), in MiB.
PAGE_CACHE_MIB = 128
#: meta key of the erasure counter: a keyring reloads its cached keys when it moves.
ERASURE_GENERATION_KEY = "erasure.generation"

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
    -- NULL for a district-level record (rules.surge): it has no household
    household_id TEXT,
    warning_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    body         BLOB NOT NULL,
    -- hash chain (streams/tamper.py): hash = sha256(prev_hash || canonical record)
    prev_hash    TEXT,
    hash         TEXT
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
-- one data key per household, wrapped (AES-GCM) under master.key (events/crypto.py)
CREATE TABLE IF NOT EXISTS household_keys (
    household_id TEXT PRIMARY KEY,
    kid          TEXT NOT NULL UNIQUE,
    wrapped      BLOB NOT NULL,
    master_id    TEXT NOT NULL
);
-- crypto-shredded households: their key is gone, later personal fields are dropped
CREATE TABLE IF NOT EXISTS erased_households (
    household_id TEXT PRIMARY KEY,
    erased_at    TEXT NOT NULL
);
-- sealed fields that could not be opened (tampered or corrupted): never the text
CREATE TABLE IF NOT EXISTS crypto_problems (
    event_id     TEXT NOT NULL,
    field        TEXT NOT NULL,
    household_id TEXT NOT NULL,
    reason       TEXT NOT NULL,
    found_at     TEXT NOT NULL,
    PRIMARY KEY (event_id, field)
);
"""


def _lifecycle_household_nullable(db: sqlite3.Connection) -> None:
    """Logs made before district-level (surge) records said household_id NOT NULL: rebuild once.

    SQLite cannot drop a NOT NULL in place; the rows move unchanged (same seq,
    body and hash chain) into the table ``SCHEMA`` now creates.
    """

    def strict() -> bool:
        columns = db.execute("PRAGMA table_info(lifecycle)").fetchall()
        return any(name == "household_id" and notnull for _, name, _, notnull, *_ in columns)

    if not strict():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if strict():  # another process may have migrated while this one waited
            db.execute("ALTER TABLE lifecycle RENAME TO lifecycle_strict_household")
            ddl = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS lifecycle") :]
            db.execute(ddl[: ddl.index(");") + 2])
            db.execute("INSERT INTO lifecycle SELECT * FROM lifecycle_strict_household")
            db.execute("DROP TABLE lifecycle_strict_household")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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

    def __init__(self, path: Path, master_key: Path | None = None) -> None:
        """Open (or create) the log; ``master_key`` defaults to ``master.key`` next to it.

        The master key file is created (0600) with the first sealed field, and
        only while the log holds no wrapped key (``events.crypto.load_master_key``).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_MIB * 1024}")
        self.db.executescript(SCHEMA)
        _lifecycle_household_nullable(self.db)
        self.master_key_path = master_key or path.parent / MASTER_KEY_FILE
        self.keyring = Keyring(self, self.master_key_path)

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

    @contextmanager
    def _sealing_transaction(self) -> Iterator[None]:
        """A publishing transaction: data keys it creates live or die with it.

        Cached keys are reloaded first if a household was erased since (maybe by
        another process: the write lock is held, so the generation read is current).
        """
        try:
            with self.transaction():
                self.keyring.refresh()
                yield
        except BaseException:
            self.keyring.rollback()
            raise
        self.keyring.commit()

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
        with self._sealing_transaction():
            statuses = [self._append_one(item, source, counts) for item in items]
        return counts, statuses

    def _publish_batch(self, batch: list[bytes | str], source: str, counts: PublishCounts) -> None:
        with self._sealing_transaction():
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
            return "accepted"
        known = self.db.execute(
            "SELECT fingerprint FROM events WHERE event_id = ?", (item.event_id,)
        ).fetchone()
        if known and known[0] == item.fingerprint:
            counts.duplicates += 1
            return "duplicate"
        counts.rejected += 1
        reason = "event_id: already in the log with different content (conflict)"
        # the sealed body: a dead letter holds no clear personal text either
        self._dead_letter("ingest", source, reason, item.event_id, item.household_id, sealed)
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
    def page_cache(self, mib: int) -> Iterator[None]:
        """Bound SQLite's page cache to ``mib`` MiB for the duration, then restore it.

        For a caller that shares the process with a bigger user of memory (the
        processor projecting into chdb inline): pages dropped from this cache
        are re-read from the OS page cache, not from disk.
        """
        previous = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute(f"PRAGMA cache_size=-{mib * 1024}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA cache_size={int(previous)}")

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
        """Stored states of these households (absent: none stored).

        Chunks of 5,000 ids: one statement for a whole batch of the processor
        (SQLite ≥ 3.32 allows 32,766 parameters), as it reloads evicted states.
        """
        ids = list(household_ids)
        out: dict[str, bytes] = {}
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
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

    def due_times(self, until: int) -> list[int]:
        """The stored next deadlines ≤ ``until``, earliest first (one per household)."""
        rows = self.db.execute(
            "SELECT next_due FROM household_state WHERE next_due IS NOT NULL "
            "AND next_due <= ? ORDER BY next_due",
            (until,),
        ).fetchall()
        return [row[0] for row in rows]

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Append lifecycle records, hash-chained; returns their sequence numbers.

        Call inside the batch transaction: records, chain links and the chain
        head commit together with the effects they describe.
        """
        from streams.tamper import append_lifecycle

        return append_lifecycle(self.db, records)


    # -- keys (events.crypto.KeyStore) --------------------------------------------

    def key_of_household(self, household_id: str) -> StoredKey | None:
        row = self.db.execute(
            "SELECT household_id, kid, wrapped, master_id FROM household_keys "
            "WHERE household_id = ?",
            (household_id,),
        ).fetchone()
        return StoredKey(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def key_by_kid(self, kid: str) -> StoredKey | None:
        row = self.db.execute(
            "SELECT household_id, kid, wrapped, master_id FROM household_keys WHERE kid = ?",
            (kid,),
        ).fetchone()
        return StoredKey(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def store_key(self, key: StoredKey) -> None:
        """Keep a new wrapped key (inside the publishing transaction)."""
        self.db.execute(
            "INSERT INTO household_keys(household_id, kid, wrapped, master_id) "
            "VALUES (?, ?, ?, ?)",
            (key.household_id, key.kid, key.wrapped, key.master_id),
        )

    def key_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM household_keys").fetchone()[0])

    def is_erased(self, household_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM erased_households WHERE household_id = ?", (household_id,)
        ).fetchone()
        return row is not None

    def erasure_generation(self) -> int:
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = ?", (ERASURE_GENERATION_KEY,)
        ).fetchone()
        return int(bytes(row[0]).decode()) if row else 0

    def erased_households(self) -> list[str]:
        rows = self.db.execute(
            "SELECT household_id FROM erased_households ORDER BY household_id"
        ).fetchall()
        return [row[0] for row in rows]

    # -- erasure (crypto-shredding) -------------------------------------------------

    def erase_household(self, household_id: str) -> dict[str, Any]:
        """Shred the household's data key and mark it erased; returns what was done.

        Idempotent. The wrapped key is overwritten with zeros, then deleted with
        ``secure_delete`` on (freed space is zeroed), and the WAL is truncated so
        no old page copy keeps it. Its events stay (their sealed fields now read
        "[erased]"); the input of its dead letters is replaced by "[erased]".
        """
        self.db.execute("PRAGMA secure_delete=ON")
        try:
            with self.transaction():
                already = self.is_erased(household_id)
                stored = self.key_of_household(household_id)
                if stored is not None:
                    self.db.execute(
                        "UPDATE household_keys SET wrapped = zeroblob(?) WHERE household_id = ?",
                        (len(stored.wrapped), household_id),
                    )
                    self.db.execute(
                        "DELETE FROM household_keys WHERE household_id = ?", (household_id,)
                    )
                self.db.execute(
                    "INSERT OR IGNORE INTO erased_households(household_id, erased_at) "
                    "VALUES (?, ?)",
                    (household_id, format_instant(now_micros())),
                )
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (ERASURE_GENERATION_KEY, str(self.erasure_generation() + 1).encode()),
                )
                redacted = self.db.execute(
                    "UPDATE dead_letters SET body = ? WHERE household_id = ? AND body != ?",
                    (ERASED.encode(), household_id, ERASED.encode()),
                ).rowcount
                kept = self.db.execute(
                    "SELECT COUNT(*) FROM events WHERE household_id = ?", (household_id,)
                ).fetchone()[0]
            self.keyring.forget(household_id)
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.db.execute("PRAGMA secure_delete=OFF")
        return {
            "household_id": household_id,
            "already_erased": already,
            "key_deleted": stored is not None,
            "events_kept": int(kept),
            "dead_letters_redacted": int(redacted),
            # busy: another connection holds the WAL; old frames may survive until it closes
            "wal_checkpoint_complete": busy == 0,
        }

    # -- unreadable sealed fields -------------------------------------------------

    def record_crypto_problems(self, problems: Sequence[Problem]) -> None:
        """Keep (and log) sealed fields that could not be opened: event and field, no text."""
        for problem in problems:
            log.warning("unreadable personal field: %s", problem)
        rows = [
            (p.event_id, p.field, p.household_id, p.reason, format_instant(now_micros()))
            for p in problems
        ]
        sql = (
            "INSERT INTO crypto_problems(event_id, field, household_id, reason, found_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(event_id, field) DO UPDATE SET "
            "reason = excluded.reason, found_at = excluded.found_at"
        )
        if self.db.in_transaction:
            self.db.executemany(sql, rows)
        else:
            with self.transaction():
                self.db.executemany(sql, rows)

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
        rows = self.db.execute(
            "SELECT event_id, household_id, field, reason FROM crypto_problems "
            "ORDER BY event_id, field"
        ).fetchall()
        return [Problem(*row) for row in rows]
