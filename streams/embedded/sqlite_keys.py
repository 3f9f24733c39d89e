"""Wrapped household keys, erasure markers and unreadable-field records in the log file.

``SqliteKeys`` is the embedded log's key store (``privacy.crypto.KeyStore``, and
``streams.ports.ErasableKeyStore``): keys live in ``household_keys``, erasure
markers in ``erased_households``, the erasure counter in ``meta``. A key is
stored inside the publishing transaction, so it commits with the first data it
sealed. ``SqliteCryptoProblems`` keeps the sealed fields found unreadable
(event and field, never the text).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from events.instants import format_instant, now_micros
from privacy.crypto import Problem, StoredKey
from streams.embedded.sqlite_db import joined_transaction, shredding, transaction

log = logging.getLogger("streams.embedded.log")

#: meta key of the erasure counter: a keyring reloads its cached keys when it moves.
ERASURE_GENERATION_KEY = "erasure.generation"
#: Household ids per ``IN (…)`` statement of :meth:`SqliteKeys.read_ahead`.
READ_AHEAD_CHUNK = 5000


class SqliteKeys:
    """The key store over the log's connection (its writes join the caller's transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        #: Keys read ahead for one publishing transaction (None: no read-ahead in force).
        self._ahead: dict[str, StoredKey | None] | None = None

    @contextmanager
    def read_ahead(self, household_ids: Iterable[str]) -> Iterator[None]:
        """Inside a transaction: read these households' keys in one statement up front.

        A key ring that holds fewer keys than the log has households asks for most of
        them again, one ``SELECT`` per event; a batch's households read together cost
        a fraction of that. The rows read stay exact while the block runs: the caller
        holds the write lock, and the keys it stores or shreds meanwhile update them.
        """
        ids = list(dict.fromkeys(household_ids))
        ahead: dict[str, StoredKey | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), READ_AHEAD_CHUNK):
            chunk = ids[start : start + READ_AHEAD_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT household_id, kid, wrapped, master_id FROM household_keys "
                f"WHERE household_id IN ({marks})", chunk,
            ):
                ahead[row[0]] = StoredKey(row[0], row[1], bytes(row[2]), row[3])
        self._ahead = ahead
        try:
            yield
        finally:
            self._ahead = None

    def key_of_household(self, household_id: str) -> StoredKey | None:
        ahead = self._ahead
        if ahead is not None and household_id in ahead:
            return ahead[household_id]
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
        if self._ahead is not None:
            self._ahead[key.household_id] = key

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

    def shred(self, household_id: str) -> tuple[bool, bool]:
        """Inside a transaction: zero and delete the key, mark the household erased.

        Returns (already_erased, key_deleted). The zeroed row is deleted so that,
        with ``secure_delete`` on (:func:`~streams.embedded.sqlite_db.shredding`),
        no page keeps the wrapped key.
        """
        already = self.is_erased(household_id)
        stored = self.key_of_household(household_id)
        if self._ahead is not None:
            self._ahead[household_id] = None
        if stored is not None:
            self.db.execute(
                "UPDATE household_keys SET wrapped = zeroblob(?) WHERE household_id = ?",
                (len(stored.wrapped), household_id),
            )
            self.db.execute("DELETE FROM household_keys WHERE household_id = ?", (household_id,))
        self.db.execute(
            "INSERT OR IGNORE INTO erased_households(household_id, erased_at) VALUES (?, ?)",
            (household_id, format_instant(now_micros())),
        )
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (ERASURE_GENERATION_KEY, str(self.erasure_generation() + 1).encode()),
        )
        return already, stored is not None

    def erase(self, household_id: str) -> dict[str, Any]:
        """Shred the household's key in a transaction of its own (keys only; idempotent).

        ``SqliteLog.erase_household`` does this and more (dead letters) in one transaction.
        """
        with shredding(self.db) as checkpoint, transaction(self.db):
            already, deleted = self.shred(household_id)
        return {"household_id": household_id, "already_erased": already,
                "key_deleted": deleted, "wal_checkpoint_complete": checkpoint[0]}


class SqliteCryptoProblems:
    """Sealed fields that failed to open, one row per (event, field), latest reason kept."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

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
        with joined_transaction(self.db):
            self.db.executemany(sql, rows)

    def crypto_problems(self) -> list[Problem]:
        rows = self.db.execute(
            "SELECT event_id, household_id, field, reason FROM crypto_problems "
            "ORDER BY event_id, field"
        ).fetchall()
        return [Problem(*row) for row in rows]
