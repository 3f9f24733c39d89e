"""The live alert inbox as server-sent events: lifecycle records in the caller's scope.

Each stream reads the log's ``lifecycle`` table with its own read-only SQLite
connection (WAL lets it read while the processor writes), so a slow browser
never holds the runtime lock. The SSE ``id`` is the record's sequence number:
a reconnecting client sends ``Last-Event-ID`` and resumes exactly there.

Every query runs in a worker thread, never on the event loop, so that many streams
do not stall the API. The stream re-reads its user every ``RECHECK_S`` seconds and
closes (an ``event: closed`` with the reason) once the token is revoked, expired or
disabled, or the user's role or scope changed: a stream must not outlive the access
it was opened with.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from anyio import to_thread
from fastapi import HTTPException, Request

from access.users import User
from events.orgunits import district_of, is_within

KEEPALIVE_S = 15.0
RECHECK_S = 2.0
#: the largest position a client may name (SQLite's integers are 64-bit).
MAX_POSITION = 2**63 - 1
_POSITION = re.compile(r"[0-9]{1,19}")


def start_position(db: sqlite3.Connection, request: Request, after: int | None) -> int:
    """Last-Event-ID, else ``?after=``, else the current end (only what happens next).

    A ``Last-Event-ID`` that is not a sequence number (ASCII digits, at most
    ``MAX_POSITION``) is 422: resuming from a guess would skip or repeat alerts."""
    last = request.headers.get("last-event-id", "").strip()
    if last:
        if _POSITION.fullmatch(last) is None or int(last) > MAX_POSITION:
            raise HTTPException(422, "Last-Event-ID: must be the id of an event of this "
                                     f"stream (an integer from 0 to {MAX_POSITION})")
        return int(last)
    if after is not None:
        return after
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM lifecycle").fetchone()[0])


def open_log(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


async def alert_stream(db: sqlite3.Connection, request: Request, user: User, position: int,
                       recheck: Callable[[], User | None], poll_s: float = 0.25,
                       release: Callable[[], None] | None = None) -> AsyncIterator[bytes]:
    """``recheck``: the user of the stream's token now (None once it no longer works);
    ``release``: gives the stream's slot back (``api.limits``) when it ends."""
    raises: dict[str, dict[str, Any]] = {}
    quiet_since = checked = time.monotonic()
    try:
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            if time.monotonic() - checked >= RECHECK_S:
                checked = time.monotonic()
                if await to_thread.run_sync(recheck) != user:
                    yield (b"event: closed\ndata: " + orjson.dumps(
                        {"reason": "your access changed (token revoked, expired or "
                                   "disabled, or a new role or scope): reconnect"}) + b"\n\n")
                    return
            read, position, events = await to_thread.run_sync(
                _events_after, db, raises, user, position)
            for event in events:
                quiet_since = time.monotonic()
                yield event
            if time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keepalive\n\n"
            if not read:
                await asyncio.sleep(poll_s)
    finally:
        db.close()
        if release is not None:
            release()


def _events_after(db: sqlite3.Connection, raises: dict[str, dict[str, Any]], user: User,
                  position: int) -> tuple[int, int, list[bytes]]:
    """(records read, the new position, the SSE messages of those in ``user``'s scope):
    one batch, all of its database work in the calling (worker) thread."""
    rows = db.execute("SELECT seq, body FROM lifecycle WHERE seq > ? ORDER BY seq LIMIT 500",
                      (position,)).fetchall()
    events = []
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
        events.append(f"id: {seq}\nevent: {record['type']}\ndata: ".encode()
                      + orjson.dumps(payload) + b"\n\n")
    return len(rows), position, events


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
