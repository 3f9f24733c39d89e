"""Consumer checkpoints in the log file (``checkpoints`` table): the ``Checkpoints`` port."""

from __future__ import annotations

import sqlite3


class SqliteCheckpoints:
    """One position per named consumer; moved inside the transaction of its effects."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

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
