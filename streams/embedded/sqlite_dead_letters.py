"""Refused input with its reason (``dead_letters`` table): the ``DeadLetters`` port."""

from __future__ import annotations

import sqlite3

from events.instants import format_instant, now_micros
from privacy.crypto import ERASED


class SqliteDeadLetters:
    """Append-only rows (stage, source, reason, ids, input bytes, time received)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def dead_letter(self, stage: str, source: str, reason: str, event_id: str | None,
                    household_id: str | None, body: bytes) -> None:
        """Keep input that a stage refused (call inside a transaction)."""
        self.db.execute(
            "INSERT INTO dead_letters(stage, source, reason, event_id, household_id, body, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stage, source, reason, event_id, household_id, body, format_instant(now_micros())),
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

    def redact(self, household_id: str) -> int:
        """Replace the input of the household's dead letters by "[erased]"; returns how many.

        For erasure: a dead letter may hold input that was never sealed (it was invalid).
        """
        cursor = self.db.execute(
            "UPDATE dead_letters SET body = ? WHERE household_id = ? AND body != ?",
            (ERASED.encode(), household_id, ERASED.encode()),
        )
        return int(cursor.rowcount)
