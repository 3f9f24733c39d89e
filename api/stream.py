"""The live alert inbox as server-sent events: lifecycle records in the caller's scope.

Each stream reads the log's ``lifecycle`` table with its own read-only SQLite
connection (WAL lets it read while the processor writes), so a slow browser
never holds the runtime lock. The SSE ``id`` is the record's sequence number:
a reconnecting client sends ``Last-Event-ID`` and resumes exactly there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request

from access.users import User
from events.orgunits import district_of, is_within

KEEPALIVE_S = 15.0


def start_position(db: sqlite3.Connection, request: Request, after: int | None) -> int:
    """Last-Event-ID, else ``?after=``, else the current end (only what happens next)."""
    last = request.headers.get("last-event-id", "")
    if last.isdigit():
        return int(last)
    if after is not None:
        return after
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM lifecycle").fetchone()[0])


def open_log(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


async def alert_stream(db: sqlite3.Connection, request: Request, user: User, position: int,
                       poll_s: float = 0.25) -> AsyncIterator[bytes]:
    raises: dict[str, dict[str, Any]] = {}
    quiet_since = time.monotonic()
    try:
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            rows = db.execute("SELECT seq, body FROM lifecycle WHERE seq > ? ORDER BY seq "
                              "LIMIT 500", (position,)).fetchall()
            for seq, body in rows:
                position = seq
                record = orjson.loads(body)
                raised = _raise_of(db, raises, record)
                if raised is None or not is_within(raised["org_unit"], user.org_unit):
                    continue
                payload = {"record": record, "warning": {
                    k: raised[k] for k in ("warning_id", "rule_id", "level", "org_unit",
                                           "household_id")} | {
                    "district": district_of(raised["org_unit"])}}
                quiet_since = time.monotonic()
                yield (f"id: {seq}\nevent: {record['type']}\ndata: ".encode()
                       + orjson.dumps(payload) + b"\n\n")
            if time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keepalive\n\n"
            if not rows:
                await asyncio.sleep(poll_s)
    finally:
        db.close()


def _raise_of(db: sqlite3.Connection, cache: dict[str, dict[str, Any]],
              record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``warning.raised`` record of the warning ``record`` is about; None for a
    record about no warning (a referral's answer, a referral sent without one)."""
    warning_id = record.get("warning_id")
    if not warning_id:
        return None
    if record["type"] == "warning.raised":
        cache[warning_id] = record
    elif warning_id not in cache:
        row = db.execute("SELECT body FROM lifecycle WHERE warning_id = ? AND "
                         "type = 'warning.raised' LIMIT 1", (warning_id,)).fetchone()
        if row is None:
            return None
        cache[warning_id] = orjson.loads(row[0])
    return cache[warning_id]
