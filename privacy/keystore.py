"""The household key store of the Kafka runtime: one SQLite file under the publisher's home.

On the embedded runtime the wrapped data keys live inside the log (``SqliteLog``). On
Kafka the log is the topics, which are append-only and replicated: a key written there
could never be shredded. So the publishers (``jiahe publish --bootstrap``, the SDK, the
API on Kafka) seal personal fields *before* anything leaves the machine, with keys kept
here, wrapped by the same ``master.key`` scheme (``privacy.crypto``). Shredding a key
here is what makes a household's sealed bytes in every topic, replica and backup
unreadable.

The store is shared by processes of one home (SQLite locking; every write is its own
short transaction), and keeps the erasure markers so that a publisher drops later
personal fields of an erased household on arrival, as the embedded log does.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from events.instants import format_instant, now_micros
from privacy.crypto import MASTER_KEY_FILE, Keyring, StoredKey

KEYSTORE_FILE = "keys.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS household_keys (
    household_id TEXT PRIMARY KEY,
    kid          TEXT NOT NULL UNIQUE,
    wrapped      BLOB NOT NULL,
    master_id    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erased_households (
    household_id TEXT PRIMARY KEY,
    erased_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('erasure_generation', 0);
"""


class SqliteKeyStore:
    """Wrapped household keys and erasure markers (implements ``privacy.crypto.KeyStore``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def key_of_household(self, household_id: str) -> StoredKey | None:
        row = self._one("SELECT household_id, kid, wrapped, master_id FROM household_keys "
                        "WHERE household_id = ?", (household_id,))
        return StoredKey(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def key_by_kid(self, kid: str) -> StoredKey | None:
        row = self._one("SELECT household_id, kid, wrapped, master_id FROM household_keys "
                        "WHERE kid = ?", (kid,))
        return StoredKey(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def store_key(self, key: StoredKey) -> None:
        """Keep a new key unless another process stored one for the household first.

        Refused for an erased household (a publisher that raced the erasure must not
        bring a key back): the Keyring then finds no key and seals nothing.
        """
        with self._lock:
            # Keys of one sealing batch share one transaction (one fsync), committed by
            # commit() before the sealed data is stored anywhere.
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO household_keys(household_id, kid, wrapped, master_id) "
                "SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM erased_households WHERE household_id = ?)",
                (key.household_id, key.kid, key.wrapped, key.master_id, key.household_id),
            )

    def commit(self) -> None:
        """Make the keys stored since the last commit durable (synchronous=FULL)."""
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    def rollback(self) -> None:
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def key_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM household_keys", ())[0])

    def is_erased(self, household_id: str) -> bool:
        return self._one("SELECT 1 FROM erased_households WHERE household_id = ?",
                         (household_id,)) is not None

    def erasure_generation(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE key = 'erasure_generation'", ())[0])

    def erased_households(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT household_id FROM erased_households ORDER BY household_id").fetchall()
        return [row[0] for row in rows]

    def erase(self, household_id: str) -> dict[str, Any]:
        """Shred the household's key (zeroed, deleted, WAL truncated) and mark it erased.

        Idempotent; returns ``already_erased``, ``key_deleted`` and
        ``wal_checkpoint_complete`` (False while another process holds the file open,
        so an old WAL frame may still hold the wrapped key until it closes).
        """
        with self._lock:
            db = self._db
            if db.in_transaction:  # keys this process created and used: keep them
                db.execute("COMMIT")
            db.execute("PRAGMA secure_delete=ON")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    already = self.is_erased(household_id)
                    stored = self.key_of_household(household_id)
                    if stored is not None:
                        db.execute("UPDATE household_keys SET wrapped = zeroblob(?) "
                                   "WHERE household_id = ?", (len(stored.wrapped), household_id))
                        db.execute("DELETE FROM household_keys WHERE household_id = ?",
                                   (household_id,))
                    db.execute("INSERT OR IGNORE INTO erased_households(household_id, erased_at)"
                               " VALUES (?, ?)", (household_id, format_instant(now_micros())))
                    db.execute("UPDATE meta SET value = value + 1 "
                               "WHERE key = 'erasure_generation'")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                db.execute("PRAGMA secure_delete=OFF")
        return {"household_id": household_id, "already_erased": already,
                "key_deleted": stored is not None, "wal_checkpoint_complete": busy == 0}


class KafkaKeyring(Keyring):
    """A Keyring over its own :class:`SqliteKeyStore` (closed with it)."""

    store: SqliteKeyStore

    def __init__(self, store: SqliteKeyStore, master_key_path: Path) -> None:
        super().__init__(store, master_key_path, synthetic_nonce=True)

    def commit(self) -> None:
        """Keys created since the last commit are durable before anything sealed is kept."""
        self.store.commit()
        super().commit()

    def rollback(self) -> None:
        self.store.rollback()
        super().rollback()

    def erase(self, household_id: str) -> dict[str, Any]:
        """Shred the household's key (see :meth:`SqliteKeyStore.erase`) and forget it here."""
        done = self.store.erase(household_id)
        self.forget(household_id)
        return done

    def close(self) -> None:
        self.store.rollback()  # keys of a batch that was never committed were never used
        self.store.close()


def kafka_keyring(home: Path) -> KafkaKeyring:
    """The Keyring of a Kafka-mode home: ``HOME/keys.sqlite3`` + ``HOME/master.key``.

    Synthetic nonces, so the same event sealed by two publishers of this home (the
    CLI and the API) is byte-identical and the worker counts the second as a duplicate.
    """
    home = Path(home)
    return KafkaKeyring(SqliteKeyStore(home / KEYSTORE_FILE), home / MASTER_KEY_FILE)
