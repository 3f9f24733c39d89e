"""Per-household rule state and its due index (``household_state``): the ``StateStore`` port."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

#: Ids per ``IN (…)`` statement: one statement for a whole batch of the processor
#: (SQLite ≥ 3.32 allows 32,766 parameters), as it reloads evicted states.
LOAD_CHUNK = 5000


class SqliteStates:
    """One row per household: the encoded state and its next deadline (indexed)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def load_states(self, household_ids: Iterable[str]) -> dict[str, bytes]:
        """Stored states of these households (absent: none stored)."""
        ids = list(household_ids)
        out: dict[str, bytes] = {}
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start : start + LOAD_CHUNK]
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
