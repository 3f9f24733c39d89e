"""A real API server (uvicorn in a subprocess: it owns chdb) and a real webhook receiver.

The test process never opens the warehouse; it reads ``log.sqlite3``,
``users.sqlite3`` and ``alerts.sqlite3`` directly, which SQLite (WAL) allows
alongside the server.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.users import UserStore
from alerts.egress import ALLOW_ENV, EgressGuard
from privacy.pseudonym import deployment_secret, household_key
from streams.embedded.runtime import PSEUDONYM_SECRET

ROOT = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 3

#: name → (role, org unit[, agency]): a partner (another agency) carries its agency.
USERS: dict[str, tuple[str, ...]] = {
    "cadre102": ("cadre", "230102001001"),
    "chair102": ("chair", "230102000000"),
    "chair-street": ("chair", "230102001000"),  # a street chair of 道里区
    "chair103": ("chair", "230103000000"),
    "admin": ("city_admin", "230100000000"),
    "analyst": ("analyst", "230100000000"),
    "police102": ("partner", "230102000000", "police"),  # 道里区's police
    "court102": ("partner", "230102000000", "court"),
    "police-city": ("partner", "230100000000", "police"),  # the city's police
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event(org_unit: str, household: str, kind: str = "petition.received",
          data: dict[str, Any] | None = None, hours_ago: float = 1.0) -> dict[str, Any]:
    """A hand-built event; the default is an urgent-free sexual_assault petition → red."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return {
        "event_id": str(uuid.uuid4()), "type": kind, "schema_version": 1,
        "occurred_at": at.isoformat(timespec="seconds"), "org_unit": org_unit,
        "household_id": household, "actor": "cadre-test",
        "data": data if data is not None else
        {"channel": "hotline_12338", "category": "sexual_assault", "urgent": False},
    }


@dataclass
class Api:
    url: str
    home: Path
    tokens: dict[str, str] = field(repr=False)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def call(self, method: str, path: str, user: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return self.client.request(method, self.url + path, headers=headers, **kw)

    def publish(self, user: str, events: list[Any], strict: bool = True,
                status: int = 200) -> dict[str, Any]:
        """POST events; ``strict``: every one must be accepted (no silent rejection).

        ``status`` 403: some event is about a household outside the caller's scope.
        """
        response = self.call("POST", "/v1/events", user, json=events)
        assert response.status_code == status, response.text
        body = dict(response.json())
        if strict:
            assert body["accepted"] == len(events), body
        return body

    def sql(self, file: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.home / file)
        try:
            return db.execute(statement, args).fetchall()
        finally:
            db.close()

    def household_key(self, household: str) -> str:
        """The pseudonymous key by which webhooks name ``household`` (the home's secret)."""
        [(secret,)] = self.sql("log.sqlite3", "SELECT value FROM meta WHERE key = ?",
                               PSEUDONYM_SECRET)
        return household_key(deployment_secret() or bytes(secret), household)

    def warning_for(self, household: str) -> str:
        rows = self.sql("log.sqlite3", "SELECT warning_id FROM lifecycle WHERE household_id = ? "
                        "AND type = 'warning.raised'", household)
        assert rows, f"no warning for {household}"
        return str(rows[0][0])


#: The tests' receivers listen on the loopback, which webhooks may reach only when allowed.
LOOPBACK_ALLOWED = {ALLOW_ENV: "127.0.0.1"}
#: The same allow-list for a store or worker built without a server.
LOOPBACK_EGRESS = EgressGuard(["127.0.0.1"])

#: Fast delivery settings for the webhook/e-mail tests.
DELIVERY_ARGS = ("--webhook-max-attempts", str(MAX_ATTEMPTS), "--webhook-backoff", "0.1",
                 "--webhook-poll", "0.05", "--tick", "0.3")


@contextmanager
def serve_api(
    home: Path,
    users: Mapping[str, tuple[str, ...]],
    server_args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> Iterator[Api]:
    """A real API server (uvicorn subprocess) on ``home`` with ``users``; stopped after.

    Webhooks may reach the loopback (``LOOPBACK_ALLOWED``) unless ``env`` says otherwise.
    Its log must end without a traceback: bad input is never a 500.
    """
    store = UserStore.at_home(home)
    tokens = {name: store.add(name, *spec) for name, spec in users.items()}
    store.close()
    port = free_port()
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.server", "--home", str(home), "--host", "127.0.0.1",
         "--port", str(port), *server_args],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **LOOPBACK_ALLOWED, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((home / "server.log").read_text())
        time.sleep(0.2)
    try:
        yield Api(url, home, tokens)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    server_log = (home / "server.log").read_text()
    assert "Traceback" not in server_log, server_log


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("api-home"), USERS, DELIVERY_ARGS) as server:
        yield server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP webhook receiver; ``plan[path]`` lists status codes to answer, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plan: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    codes = receiver.plan.get(self.path, [])
                    code = codes.pop(0) if codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def wait_until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
