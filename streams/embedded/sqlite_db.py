"""The one SQLite file behind the embedded log: schema, connection, transactions, tuning.

Every SQLite adapter of ``streams.embedded`` (events, lifecycle, state,
checkpoints, dead letters, keys) works on the connection opened here, so a
single :func:`transaction` spans all of them: the processor's effects and its
checkpoint commit together. The schema is the on-disk format of existing homes;
tables are only ever added (``CREATE TABLE IF NOT EXISTS``) or migrated in place.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: SQLite page cache per connection (``PRAGMA cache_size``), in MiB.
PAGE_CACHE_MIB = 128

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
    -- hash chain (privacy/audit.py): hash = sha256(prev_hash || canonical record)
    prev_hash    TEXT,
    hash         TEXT
);
CREATE INDEX IF NOT EXISTS lifecycle_by_warning ON lifecycle(warning_id, type);
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
-- one data key per household, wrapped (AES-GCM) under master.key (privacy/crypto.py)
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


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the log file: WAL, full fsync per commit, schema up to date.

    ``isolation_level=None``: transactions are explicit (:func:`transaction`), so
    a read outside one never holds a lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_MIB * 1024}")
    db.executescript(SCHEMA)
    _lifecycle_household_nullable(db)
    return db


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


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic unit: everything written inside commits together or not at all.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so reads inside see the
    current state and the commit cannot fail on a lock upgrade.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def joined_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The caller's open transaction if there is one, else a transaction of its own."""
    if db.in_transaction:
        yield db
    else:
        with transaction(db):
            yield db


@contextmanager
def shredding(db: sqlite3.Connection) -> Iterator[list[bool]]:
    """For deleting secrets: freed pages are zeroed, and the WAL is truncated afterwards.

    Yields a list that receives one flag once the block is done: True if the WAL
    checkpoint completed (False while another connection holds the WAL, so old
    frames may survive until it closes).
    """
    db.execute("PRAGMA secure_delete=ON")
    done: list[bool] = []
    try:
        yield done
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        done.append(busy == 0)
    finally:
        db.execute("PRAGMA secure_delete=OFF")


def secret(db: sqlite3.Connection, key: str) -> bytes:
    """A random secret created once per home (e.g. the pseudonym key), kept in ``meta``."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row:
        return bytes(row[0])
    value = secrets.token_bytes(32)
    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
    return bytes(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


@contextmanager
def page_cache(db: sqlite3.Connection, mib: int) -> Iterator[None]:
    """Bound SQLite's page cache to ``mib`` MiB for the duration, then restore it.

    For a caller that shares the process with a bigger user of memory (the
    processor projecting into chdb inline): pages dropped from this cache
    are re-read from the OS page cache, not from disk.
    """
    previous = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size=-{mib * 1024}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size={int(previous)}")


@contextmanager
def relaxed_sync(db: sqlite3.Connection) -> Iterator[None]:
    """For derived effects only (processing, projection): no fsync per commit.

    Everything they write is re-derivable from the log, and WAL mode keeps
    the file consistent after a crash; accepted input (``publish``) is
    always committed with a full fsync.
    """
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        with fewer_checkpoints(db):  # state rows are rewritten batch after batch
            yield
    finally:
        db.execute("PRAGMA synchronous=FULL")


#: WAL pages past which a commit copies the WAL back into the database, for long runs
#: of large commits (SQLite's default, restored after them: 1000). At a city's history
#: (10M events, 1M households) a state or index page is rewritten by many batches
#: between two checkpoints and copied back once (first 3M events of the 10M-event
#: sample against 20,000 pages: processing -5% CPU, BENCHMARKS.md), at up to ~800 MB
#: of WAL meanwhile.
BULK_WAL_PAGES = 200_000
#: WAL bytes left on disk after a run of large commits: past this, the run ends with
#: a checkpoint that truncates the WAL (skipped while another connection reads it).
KEPT_WAL_BYTES = 64 * 1024 * 1024


@contextmanager
def fewer_checkpoints(db: sqlite3.Connection) -> Iterator[None]:
    """Fewer, larger WAL checkpoints for a run of large commits (durability unchanged).

    Every commit of a batch writes more than the default 1,000 pages, so each one
    would also copy the WAL back and fsync the database file; a page rewritten by
    several batches (an index leaf, a state row) is then copied once per checkpoint
    instead of once per batch. Each commit still fsyncs the WAL as before.
    """
    db.execute(f"PRAGMA wal_autocheckpoint={BULK_WAL_PAGES}")
    try:
        yield
    finally:
        db.execute("PRAGMA wal_autocheckpoint=1000")
        if not db.in_transaction and wal_bytes(db) > KEPT_WAL_BYTES:
            truncate_wal(db)


def wal_bytes(db: sqlite3.Connection) -> int:
    """The size of the main database's WAL file (0: none, or an in-memory database)."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    try:
        return os.path.getsize(f"{path}-wal") if path else 0
    except FileNotFoundError:
        return 0


def truncate_wal(db: sqlite3.Connection) -> bool:
    """Copy the WAL back into the database and truncate it, without waiting.

    False when another connection is reading or writing (the WAL then stays as it
    is and is reused from its start once a later checkpoint completes).
    """
    timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
    db.execute("PRAGMA busy_timeout=0")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:  # locked by another connection
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout={int(timeout)}")
    return bool(busy == 0)
