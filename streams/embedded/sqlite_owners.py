"""Each household's owner (``household_owner``): the ``OwnerDirectory`` port.

The table is the fold of ``rules.ownership.next_owner`` over the log in position
order, kept in the same transaction as each append (``SqliteEvents`` calls
:meth:`SqliteOwners.observe` with the events a transaction appended, before it
commits). Ownership depends only on a household's own events and the log's order
is the processing order, so the directory equals the engine's owner once the
engine has processed the same events; the ingest guard reads it before anything
is appended.

A log made before the table existed gets it built from its events when it is
first opened (:meth:`SqliteOwners.migrate`), in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from events.codec import Decoded
from rules.ownership import NEVER_SEEN, REGISTERED, TRANSFERRED, Standing, next_owner
from streams.embedded.sqlite_db import transaction

TABLE = """
CREATE TABLE household_owner (
    household_id TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    registered   INTEGER NOT NULL
) WITHOUT ROWID
"""
#: Events read per round while a migration folds an existing log.
MIGRATION_CHUNK = 20_000

#: The event types that can move a household once placed (``rules.ownership``).
MOVES = frozenset({REGISTERED, TRANSFERRED})
_PLACE = ("INSERT OR IGNORE INTO household_owner(household_id, owner, registered) "
          "VALUES (?, ?, 0)")
_UPSERT = ("INSERT INTO household_owner(household_id, owner, registered) VALUES (?, ?, ?) "
           "ON CONFLICT(household_id) DO UPDATE SET owner = excluded.owner, "
           "registered = excluded.registered")


def _has_table(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'household_owner'").fetchone() is not None


class SqliteOwners:
    """Owner and registration per household, one row each; folded as events are appended."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def migrate(self) -> int:
        """Create the table if the log has none, folding every event already in it.

        Returns how many events were folded (0 when the table existed). Another
        process may be migrating the same file: the check is repeated under the
        write lock, so the table is built once.
        """
        if _has_table(self.db):
            return 0
        with transaction(self.db):
            if _has_table(self.db):
                return 0
            self.db.execute(TABLE)
            return self._fold_log()

    def _fold_log(self) -> int:
        standings: dict[str, Standing] = {}
        folded, position = 0, 0
        while True:
            rows = self.db.execute(
                "SELECT position, household_id, body FROM events WHERE position > ? "
                "ORDER BY position LIMIT ?", (position, MIGRATION_CHUNK)).fetchall()
            if not rows:
                break
            for _, household_id, body in rows:
                # type, org_unit and to_org_unit are never sealed: the body is read as is
                event = orjson.loads(body)
                was = standings.get(household_id, NEVER_SEEN)
                step = next_owner(was.owner, was.registered, event.get("type", ""),
                                  event.get("org_unit", ""), event.get("data") or {})
                standings[household_id] = Standing(step.owner, step.registered)
            folded += len(rows)
            position = rows[-1][0]
        self.db.executemany(_UPSERT, ((h, s.owner, int(s.registered))
                                      for h, s in standings.items()))
        return folded

    def owner_of(self, household_id: str) -> str | None:
        return self.standing_of(household_id).owner

    def standing_of(self, household_id: str) -> Standing:
        row = self.db.execute("SELECT owner, registered FROM household_owner "
                              "WHERE household_id = ?", (household_id,)).fetchone()
        return NEVER_SEEN if row is None else Standing(row[0], bool(row[1]))

    def observe(self, items: Sequence[Decoded]) -> None:
        """Fold the events a transaction appended, in log order (inside that transaction).

        Events that cannot move a placed household only place a new one: they go in
        runs of one ``executemany``; a registration or transfer is folded on its own.
        """
        places: list[tuple[str, str]] = []
        for item in items:
            event = item.event
            if event.type in MOVES:
                if places:
                    self.db.executemany(_PLACE, places)
                    places = []
                self.fold(item.household_id, event.type, event.org_unit, event.data)
            else:
                places.append((item.household_id, event.org_unit))
        if places:
            self.db.executemany(_PLACE, places)

    def fold(self, household_id: str, event_type: str, org_unit: str,
             data: Mapping[str, Any]) -> None:
        if event_type not in MOVES:
            # next_owner of any other type: the first event places the household, later
            # ones change nothing; one statement, as every append pays it
            self.db.execute(_PLACE, (household_id, org_unit))
            return
        was = self.standing_of(household_id)
        step = next_owner(was.owner, was.registered, event_type, org_unit, data)
        if (step.owner, step.registered) != (was.owner, was.registered):
            self.db.execute(_UPSERT, (household_id, step.owner, int(step.registered)))
