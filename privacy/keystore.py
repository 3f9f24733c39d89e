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

import orjson

from events.instants import format_instant, now_micros
from privacy.crypto import MASTER_KEY_FILE, Keyring, KeyringError, StoredKey
from privacy.dead_letters import (
    QUARANTINE_PREFIX,
    expired_quarantine_ids,
    open_dead_letter,
    quarantine_day,
    quarantine_id,
    retention_days,
)
from privacy.quarantine import DAY_US, generate_pair, open_quarantined, quarantine_envelope

KEYSTORE_FILE = "keys.sqlite3"
#: The ``purpose`` of a quarantine private key sealed under its day's data key.
PRIVATE_PURPOSE = "quarantine_private"

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
CREATE TABLE IF NOT EXISTS quarantine_pairs (
    day            INTEGER PRIMARY KEY,
    public         BLOB NOT NULL,
    sealed_private BLOB NOT NULL
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

    def stored_keys(self) -> list[StoredKey]:
        """Every stored (wrapped) key, by household: for ``jiahe verify``."""
        with self._lock:
            rows = self._db.execute("SELECT household_id, kid, wrapped, master_id "
                                    "FROM household_keys ORDER BY household_id").fetchall()
        return [StoredKey(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    def is_erased(self, household_id: str) -> bool:
        return self._one("SELECT 1 FROM erased_households WHERE household_id = ?",
                         (household_id,)) is not None

    def erasure_generation(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE key = 'erasure_generation'", ())[0])

    def quarantine_ids(self) -> list[str]:
        """The ids of the quarantine keys held (a range of the primary key: no scan)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT household_id FROM household_keys WHERE household_id >= ? "
                "AND household_id < ?", (QUARANTINE_PREFIX, QUARANTINE_PREFIX[:-1] + ";"),
            ).fetchall()
        return [row[0] for row in rows]

    def quarantine_pair(self, day: int) -> tuple[bytes, bytes] | None:
        """The day's (public key, sealed private key), or None."""
        row = self._one("SELECT public, sealed_private FROM quarantine_pairs WHERE day = ?",
                        (day,))
        return (bytes(row[0]), bytes(row[1])) if row else None

    def store_quarantine_pair(self, day: int, public: bytes, sealed_private: bytes) -> None:
        """Keep the day's pair unless another process stored one first (in the open
        transaction of the day's new quarantine key, if any: both durable at commit)."""
        with self._lock:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO quarantine_pairs(day, public, "
                             "sealed_private) VALUES (?, ?, ?)", (day, public, sealed_private))

    def drop_quarantine_pair(self, day: int) -> None:
        """Delete a purged day's pair (its private half is unreadable already)."""
        with self._lock:
            self._db.execute("PRAGMA secure_delete=ON")
            try:
                self._db.execute("DELETE FROM quarantine_pairs WHERE day = ?", (day,))
            finally:
                self._db.execute("PRAGMA secure_delete=OFF")

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

    def purge_quarantine(self, now_us: int | None = None, days: float | None = None) -> int:
        """Shred the quarantine keys of days past the retention period
        (``privacy.dead_letters``): the anonymous dead letters they sealed, on
        ``jiahe.dlq`` and in outboxes, then read as ``[erased]``. Returns how many."""
        expired = expired_quarantine_ids(
            self.store.quarantine_ids(), now_micros() if now_us is None else now_us,
            retention_days() if days is None else days)
        for key_id in expired:
            self.erase(key_id)
            day = quarantine_day(key_id)
            if day is not None:
                self.store.drop_quarantine_pair(day)
        return len(expired)

    def quarantine_public_keys(self, days: int, now_us: int | None = None) -> dict[int, bytes]:
        """The public quarantine keys of ``days`` days from today (``privacy.quarantine``),
        created where missing; for the file a Kafka worker seals its dead letters with.

        Each private half is sealed under its day's quarantine data key, so purging the
        day shreds it too. A day already purged gets no key.
        """
        today = (now_micros() if now_us is None else now_us) // DAY_US
        keys: dict[int, bytes] = {}
        try:
            for day in range(today, today + days):
                pair = self.store.quarantine_pair(day)
                if pair is None:
                    private, public = generate_pair()
                    sealed = self.seal_blob(quarantine_id(day), private, PRIVATE_PURPOSE)
                    if sealed is None:  # purged (erased) day
                        continue
                    self.store.store_quarantine_pair(day, public, orjson.dumps(sealed))
                    # another process may have stored the day's pair first: keep theirs
                    pair = self.store.quarantine_pair(day) or (public, b"")
                keys[day] = pair[0]
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return keys

    def quarantine_private(self, day: int) -> bytes | None:
        """The day's private quarantine key; None once the day was purged."""
        pair = self.store.quarantine_pair(day)
        if pair is None:
            return None
        return self.open_blob(orjson.loads(pair[1]))

    def open_dead_letter(self, stored: bytes) -> bytes | None:
        """A dead letter's input, however it was sealed (``privacy.dead_letters``): also
        the worker's quarantined ones. None once its household or its day was purged."""
        envelope = quarantine_envelope(stored)
        if envelope is None:
            return open_dead_letter(self, stored)
        private = self.quarantine_private(envelope["day"])
        return None if private is None else open_quarantined(private, envelope)

    def verify_keys(self) -> list[str]:
        """What ``jiahe verify`` finds wrong with the store, worded for a person.

        Every stored key must unwrap under the master key: a wrapped key that was
        edited or moved to another household or key id fails authentication, a wrong
        ``master.key`` fails them all. No erased household may still have a key.
        An empty store is fine and creates no master key.
        """
        problems: list[str] = []
        stored = self.store.stored_keys()
        for key in stored:
            try:
                self._unwrap(key)
            except KeyringError as exc:
                problems.append(f"key {key.kid} of household {key.household_id}: {exc}")
        holders = {key.household_id for key in stored}
        for household_id in self.store.erased_households():
            if household_id in holders:
                problems.append(f"household {household_id} is erased but its key is stored")
        return problems

    def close(self) -> None:
        self.store.rollback()  # keys of a batch that was never committed were never used
        self.store.close()


def kafka_keyring(home: Path) -> KafkaKeyring:
    """The Keyring of a Kafka-mode home: ``HOME/keys.sqlite3`` + ``HOME/master.key``.

    Synthetic nonces, so the same event sealed by two publishers of this home (the
    CLI and the API) is byte-identical and the worker counts the second as a duplicate.
    Opening it purges the quarantine keys of expired days (``purge_quarantine``).
    """
    home = Path(home)
    keyring = KafkaKeyring(SqliteKeyStore(home / KEYSTORE_FILE), home / MASTER_KEY_FILE)
    keyring.purge_quarantine()
    return keyring
