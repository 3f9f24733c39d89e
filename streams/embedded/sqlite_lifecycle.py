"""Lifecycle records, hash-chained (``lifecycle`` table): the ``LifecycleLog`` port."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from privacy.audit import append_lifecycle
from streams.ports import LogEntry


class SqliteLifecycle:
    """Records in ``seq`` order; each row carries its link of the chain (``privacy.audit``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def append_lifecycle(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Append lifecycle records, hash-chained; returns their sequence numbers.

        Call inside the batch transaction: records, chain links and the chain
        head commit together with the effects they describe.
        """
        return append_lifecycle(self.db, records)

    def read_lifecycle(self, after: int, limit: int) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT seq, body FROM lifecycle WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [LogEntry(seq, body) for seq, body in rows]

    def end_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM lifecycle").fetchone()
        return int(row[0])
