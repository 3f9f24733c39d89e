"""A durable local outbox for field apps: validated events wait here until Kafka has them.

Field apps work offline for hours and then publish in bursts, so an event must be safe on
disk the moment ``publish`` says "accepted", whether or not a broker is reachable. The
outbox is one SQLite file:

* **WAL + ``synchronous=FULL``**: a committed enqueue survives a process crash *and* a power
  loss (FULL fsyncs the WAL on every commit; NORMAL would only survive a process crash).
* **One global sequence** (``INTEGER PRIMARY KEY AUTOINCREMENT``): strictly increasing and
  never reused, even after rows are deleted. Delivering in sequence order keeps every
  household's events in enqueue order, which is all Kafka ordering needs (key = household).
* **A high-water mark, not per-row flags**: ``mark_sent(up_to_seq)`` records "everything up
  to here is acknowledged". The sender only ever advances it over a *contiguous* prefix of
  acknowledged records, so nothing behind the mark can be unsent, and a crash between
  broker acknowledgement and ``mark_sent`` only causes exact re-sends (the consumer dedupes
  by ``event_id``), never loss.
* **Sent rows are kept** so that a re-delivered event is recognised as a duplicate (same
  ``event_id`` and fingerprint) or a conflict (same id, different content) for as long as
  the outbox remembers it; :meth:`Outbox.prune_sent` trims history when disk matters more.
* **Rejected input is kept too** (``dead_letters``): the design says invalid input is
  rejected, never dropped. It waits here, like events, until the DLQ topic has it.

The outbox knows nothing about Kafka; :mod:`sdk.publisher` drives it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from events.catalog import PERSONAL_FIELDS
from events.codec import Decoded, Rejected, unknown_fields
from events.errors import JiaheError
from privacy.crypto import ERASED

__all__ = [
    "CONFLICT",
    "DeadLetter",
    "EnqueueOutcome",
    "Outbox",
    "OutboxCounts",
    "OutboxError",
    "OutboxRecord",
    "canonical_json",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    household_id   TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    fingerprint    TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    enqueued_at    REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    reason       TEXT    NOT NULL,
    raw          BLOB    NOT NULL,
    event_id     TEXT,
    household_id TEXT,
    rejected_at  REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO marks (name, value) VALUES ('events_sent', 0), ('dead_letters_sent', 0);
"""

#: Dead-letter reason for an ``event_id`` reused with different content.
CONFLICT = "event_id: already used by an event with different content (conflict)"
#: Ids per ``IN (...)`` lookup, well under SQLite's bound-parameter limit.
_IN_CHUNK = 500
#: SQLite waits this long for another process's write lock before raising "locked".
_BUSY_TIMEOUT_S = 30.0


_ERASED = ERASED.encode()


def _erased_payload(payload: bytes) -> bytes:
    """The stored event with its personal fields and fields outside the catalog erased."""
    raw = orjson.loads(payload)
    data = raw.get("data")
    top, extra = unknown_fields(raw)
    for name in top:
        raw[name] = ERASED
    if isinstance(data, dict):
        for name in (*PERSONAL_FIELDS.get(str(raw.get("type")), ()), *extra):
            if name in data and data[name] not in (None, ""):
                data[name] = ERASED
    return canonical_json(raw)


class OutboxError(JiaheError, RuntimeError):
    """The outbox file cannot be used as asked (corrupt, wrong file, impossible mark)."""


def canonical_json(raw: dict[str, object]) -> bytes:
    """The bytes that go on the wire: sorted keys, no whitespace (orjson).

    Canonical so that a re-send of the same event is byte-identical, which is what makes
    duplicates harmless for a consumer that dedupes by ``event_id``.
    """
    return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One stored event, ready to be produced as-is."""

    seq: int
    event_id: str
    household_id: str
    event_type: str
    schema_version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input waiting for the DLQ topic."""

    seq: int
    reason: str
    raw: bytes
    event_id: str | None
    household_id: str | None


@dataclass(frozen=True, slots=True)
class EnqueueOutcome:
    """What happened to one item given to :meth:`Outbox.enqueue`, in input order.

    ``status`` is ``accepted`` (stored, ``seq`` set), ``duplicate`` (same ``event_id`` and
    fingerprint already stored: ignored, as the design asks) or ``conflict`` (same
    ``event_id``, different content: refused and kept as a dead letter, ``reason`` set).
    """

    status: Literal["accepted", "duplicate", "conflict"]
    event_id: str
    seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """Row counts: ``pending`` events still to send, ``sent`` acknowledged ones kept."""

    events: int
    sent: int
    pending: int
    dead_letters: int
    dead_letters_pending: int
    last_seq: int


class Outbox:
    """A durable, ordered queue of validated events (and dead letters) in one SQLite file.

    Safe to share between threads of one process (calls are serialised) and between
    processes (SQLite locking); two concurrent *senders* would only cause exact re-sends.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                check_same_thread=False,
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: journal_mode=WAL refused (got {mode!r})")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection; committed data is already durable, so this is tidiness."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Serialise callers of this object; SQLite serialises other processes."""
        with self._lock:
            yield self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all-or-nothing, takes the write lock up front."""
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------------ events

    def enqueue(
        self, items: Iterable[Decoded], rejected: Iterable[Rejected] = ()
    ) -> list[EnqueueOutcome]:
        """Store validated events in the given order, atomically; one outcome per item.

        ``rejected`` input from the same batch is kept as dead letters in the same
        transaction, and so is every conflict, so that a crash can never leave a batch
        half-counted. Either everything of the call is committed (fsynced) or nothing is.
        Repeats inside one call are recognised like repeats of earlier calls.
        """
        batch = list(items)  # a failing iterator fails here, before anything is written
        outcomes: list[EnqueueOutcome] = []
        rows: list[tuple[int, str, str, str, int, str, bytes, float]] = []
        dead: list[tuple[str, bytes, str | None, str | None, float]] = []
        now = time.time()
        with self._write() as db:
            known = self._fingerprints(db, [item.event_id for item in batch])
            # Explicit seqs, assigned under the write lock: one executemany instead of a
            # round trip per row, and still never reusing a seq (sqlite_sequence).
            next_seq = self._last_seq("outbox") + 1
            for item in batch:
                stored = known.get(item.event_id)
                if stored is None:
                    raw = item.raw
                    rows.append((
                        next_seq, item.event_id, item.household_id, str(raw["type"]),
                        int(raw["schema_version"]), item.fingerprint, canonical_json(raw), now,
                    ))
                    known[item.event_id] = item.fingerprint
                    outcomes.append(EnqueueOutcome("accepted", item.event_id, next_seq))
                    next_seq += 1
                elif stored == item.fingerprint:
                    outcomes.append(EnqueueOutcome("duplicate", item.event_id))
                else:
                    outcomes.append(EnqueueOutcome("conflict", item.event_id, reason=CONFLICT))
                    dead.append((CONFLICT, (item.source or canonical_json(item.raw)), item.event_id,
                                 item.household_id, now))
            db.executemany(
                "INSERT INTO outbox (seq, event_id, household_id, event_type, schema_version,"
                " fingerprint, payload, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            dead.extend(
                (r.reason, bytes(r.raw), r.event_id, r.household_id, now) for r in rejected
            )
            self._insert_dead(db, dead)
        return outcomes

    @staticmethod
    def _fingerprints(db: sqlite3.Connection, event_ids: list[str]) -> dict[str, str]:
        """Stored fingerprints of those ids that are already in the outbox."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            part = unique[start:start + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            found.update(db.execute(
                f"SELECT event_id, fingerprint FROM outbox WHERE event_id IN ({marks})", part
            ).fetchall())
        return found

    def pending(self, limit: int = 10_000) -> list[OutboxRecord]:
        """The oldest unsent events, in sequence order (at most ``limit``)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, event_id, household_id, event_type, schema_version, payload"
                " FROM outbox WHERE seq > (SELECT value FROM marks WHERE name = 'events_sent')"
                " ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [OutboxRecord(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def mark_sent(self, up_to_seq: int) -> None:
        """Record that every event with ``seq <= up_to_seq`` is acknowledged by the broker.

        Idempotent and monotonic (an older mark never moves it back), so a late or repeated
        call from a retry is harmless. A mark beyond the last stored event is a bug in the
        caller and raises rather than silently skipping future events.
        """
        self._advance("events_sent", "outbox", up_to_seq)

    def sent_up_to(self) -> int:
        """The current high-water mark (0 when nothing was ever sent)."""
        return self._mark("events_sent")

    def prune_sent(self, keep_last: int = 0) -> int:
        """Delete acknowledged events except the newest ``keep_last``; returns rows deleted.

        Pruned events are no longer recognised as duplicates here (the consumer still
        dedupes by ``event_id``); the sequence keeps increasing (AUTOINCREMENT).
        """
        with self._write() as db:
            mark = self._mark("events_sent")
            cur = db.execute(
                "DELETE FROM outbox WHERE seq <= ? AND seq NOT IN"
                " (SELECT seq FROM outbox WHERE seq <= ? ORDER BY seq DESC LIMIT ?)",
                (mark, mark, max(0, int(keep_last))),
            )
            return int(cur.rowcount)

    # ------------------------------------------------------------------ dead letters

    def add_dead_letters(self, items: Iterable[Rejected]) -> int:
        """Keep rejected input durably until the DLQ topic has it; returns how many."""
        now = time.time()
        rows = [(r.reason, bytes(r.raw), r.event_id, r.household_id, now) for r in items]
        if rows:
            with self._write() as db:
                self._insert_dead(db, rows)
        return len(rows)

    @staticmethod
    def _insert_dead(
        db: sqlite3.Connection, rows: list[tuple[str, bytes, str | None, str | None, float]]
    ) -> None:
        db.executemany(
            "INSERT INTO dead_letters (reason, raw, event_id, household_id, rejected_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def pending_dead_letters(self, limit: int = 10_000) -> list[DeadLetter]:
        """The oldest dead letters not yet in the DLQ topic, in order."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, reason, raw, event_id, household_id FROM dead_letters"
                " WHERE seq > (SELECT value FROM marks WHERE name = 'dead_letters_sent')"
                " ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def mark_dead_letters_sent(self, up_to_seq: int) -> None:
        """Like :meth:`mark_sent`, for the dead letters."""
        self._advance("dead_letters_sent", "dead_letters", up_to_seq)

    # ------------------------------------------------------------------ erasure

    def erase_household(self, household_id: str) -> tuple[int, int]:
        """For ``jiahe erase``: events of the household keep their place and their stored
        fingerprint (a re-send is still a duplicate) but their personal fields and fields
        outside the catalog read ``[erased]``; its dead letters, and those that name it
        without a household id, become ``[erased]``. The old bytes are zeroed
        (``secure_delete``) and the WAL truncated. Returns (events, dead letters) changed.
        """
        quoted = orjson.dumps(household_id)
        with self._write() as db:
            db.execute("PRAGMA secure_delete = ON")
            rows = db.execute(
                "SELECT seq, payload FROM outbox WHERE household_id = ?", (household_id,)
            ).fetchall()
            changed = [(erased, seq) for seq, payload in rows
                       if (erased := _erased_payload(bytes(payload))) != bytes(payload)]
            db.executemany("UPDATE outbox SET payload = ? WHERE seq = ?", changed)
            dead = db.execute(
                "UPDATE dead_letters SET raw = ? WHERE raw != ? AND (household_id = ? OR "
                "instr(raw, ?) > 0)", (_ERASED, _ERASED, household_id, quoted),
            ).rowcount
        with self._transaction() as db:
            db.execute("PRAGMA secure_delete = OFF")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(changed), int(dead)

    # ------------------------------------------------------------------ counts & marks

    def counts(self) -> OutboxCounts:
        """Where things stand, for reports and tests (one consistent read)."""
        with self._transaction() as db:
            db.execute("BEGIN")
            try:
                sent_mark = self._mark("events_sent")
                dl_mark = self._mark("dead_letters_sent")
                last_seq = self._last_seq("outbox")
                events, pending = db.execute(
                    "SELECT count(*), count(*) FILTER (WHERE seq > ?) FROM outbox", (sent_mark,),
                ).fetchone()
                dead, dead_pending = db.execute(
                    "SELECT count(*), count(*) FILTER (WHERE seq > ?) FROM dead_letters",
                    (dl_mark,),
                ).fetchone()
            finally:
                db.execute("COMMIT")
        return OutboxCounts(
            events=int(events), sent=int(events) - int(pending), pending=int(pending),
            dead_letters=int(dead), dead_letters_pending=int(dead_pending),
            last_seq=last_seq,
        )

    def _last_seq(self, table: str) -> int:
        """The largest seq ever assigned in table (survives pruning: AUTOINCREMENT)."""
        with self._transaction() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return int(row[0]) if row else 0

    def _mark(self, name: str) -> int:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def _advance(self, name: str, table: str, up_to_seq: int) -> None:
        with self._write() as db:
            last = self._last_seq(table)
            if up_to_seq > last:
                raise OutboxError(
                    f"mark {name}={up_to_seq} is beyond the last stored seq {last}"
                )
            db.execute(
                "UPDATE marks SET value = max(value, ?) WHERE name = ?", (int(up_to_seq), name)
            )
