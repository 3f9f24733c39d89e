"""Resource limits of the HTTP face: request bodies and server-sent-event streams.

A body is capped while it is read, by counting the bytes the server hands over,
not by trusting ``Content-Length``: a declared size that lies, or a chunked body
with none, is cut at the same limit. The cap is checked before any endpoint parses
the body, so a huge JSON document is never built in memory.

Each open SSE stream holds a database connection and a polling task; a cap per
user and in total keeps one client (or a leaked token) from exhausting them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.errors import JiaheError

#: every endpoint's body cap, and ingest's (a batch of up to 5,000 events).
MAX_BODY_BYTES = 1024 * 1024
MAX_INGEST_BYTES = 5 * 1024 * 1024
INGEST_PATH = "/v1/events"
#: open SSE streams per user, and in all.
MAX_STREAMS_PER_USER = 3
MAX_STREAMS = 100
#: the largest ``offset`` of a paged list: past any ledger, and within the 64-bit
#: integers SQLite and ClickHouse take (a larger one would fail in the query).
MAX_OFFSET = 2**53


def body_limit(scope: Scope) -> int:
    """The cap of this request's body: ingest's for ``POST /v1/events``."""
    if scope.get("method") == "POST" and scope.get("path") == INGEST_PATH:
        return MAX_INGEST_BYTES
    return MAX_BODY_BYTES


class BodyTooLarge(JiaheError, HTTPException):
    """Raised from ``receive`` when the body passes its cap: an ``HTTPException`` so that
    FastAPI answers it as such (413) wherever the body is being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (the limit of "
                              "this endpoint)")


class BodyLimit:
    """ASGI middleware: 413 for a body over :func:`body_limit`, declared or counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > limit:
            await _refuse(send, BodyTooLarge(limit))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside an endpoint (e.g. by a middleware)
            if not started:
                await _refuse(send, exc)


async def _refuse(send: Send, exc: HTTPException) -> None:
    body = orjson.dumps({"detail": exc.detail})
    await send({"type": "http.response.start", "status": exc.status_code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class StreamSlots:
    """Counts open SSE streams per user and in all (thread-safe: endpoints run in a pool)."""

    def __init__(self, per_user: int = MAX_STREAMS_PER_USER, total: int = MAX_STREAMS) -> None:
        self.per_user = per_user
        self.total = total
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, user: str) -> Callable[[], None]:
        """A slot for ``user``, or 429; returns the slot's release (idempotent)."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                raise HTTPException(429, f"too many open streams (at most {self.total})",
                                    headers={"Retry-After": "30"})
            if self._open.get(user, 0) >= self.per_user:
                raise HTTPException(429, f"too many open streams for this user (at most "
                                         f"{self.per_user}): close one first",
                                    headers={"Retry-After": "30"})
            self._open[user] = self._open.get(user, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(user, 0) - 1
                if left > 0:
                    self._open[user] = left
                else:
                    self._open.pop(user, None)

        return release

    def open_count(self, user: str | None = None) -> int:
        with self._lock:
            return sum(self._open.values()) if user is None else self._open.get(user, 0)


class SlotStream(StreamingResponse):
    """A streaming response that gives its slot back however the stream ends (finished,
    disconnected, cancelled, or never started)."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
