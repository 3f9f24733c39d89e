"""The webhook receiver is down for an hour of stream time, then comes back.

A real HTTP receiver (``http.server`` in a thread, 127.0.0.1) first answers 503, then
stops listening altogether (connection refused), then listens again on the same port.
Meanwhile an hour of events (``occurred_at`` one minute apart, 60 of them, each raising
a red warning; a third of the warnings acknowledged) is ingested through the embedded
API server.

How "an hour" maps onto the test's wall clock: the hour of stream time is ingested in 12
bursts (5 minutes of stream time each) one second apart, and the acknowledgements follow,
so the outage lasts ≈ 20 s of wall time: 1 s of wall time stands for ≈ 3 minutes. The
delivery backoff is scaled by the same factor (≈ 180): ``--webhook-backoff 0.05`` is a
real 9 s, and 12 attempts span 0.05 × (2¹¹ − 1) ≈ 100 s of wall time ≈ 5 real hours.

What a user expects, and what is asserted:

* retries that outlast the outage: every (warning_id, transition) is delivered exactly
  once after the receiver is back, every signature verifies, nothing is dead-lettered;
* the default retry budget (5 attempts from 1 s, ≈ 15 s; scaled here to 0.005 s) cannot
  outlast an hour: then every alert of the outage is dead-lettered with its attempts and
  last error (never silently lost), none is delivered twice, and alerts raised after the
  receiver is back are delivered normally.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from alerts.delivery import transition_of, verify_signature
from tests.api.conftest import USERS, Api, serve_api

SECRET = "an-outage-webhook-secret"
HOUSEHOLDS = 60
BURSTS = 12
#: Reminders and alert grouping off: one alert per (warning_id, transition).
ENV = {"JIAHE_REPEAT_RED_MINUTES": "0", "JIAHE_GROUP_INTERVAL_S": "0"}


class FlakyReceiver:
    """A webhook receiver that can answer 503, refuse connections, or work (200)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.answered: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.listen()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = 503 if receiver.mode == "503" else 200
                with receiver.lock:
                    receiver.answered.append((code, dict(self.headers), body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def listen(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self) -> None:
        """Stop listening: the sender gets connection refused, as from a host that is down."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [orjson.loads(body) for code, _, body in self.answered if code == 200]

    def all_valid(self) -> bool:
        with self.lock:
            return all(_valid(headers, body) for _, headers, body in self.answered)

    def close(self) -> None:
        if self.server is not None:
            self.refuse()


def _valid(headers: dict[str, str], body: bytes) -> bool:
    return verify_signature(SECRET, headers["X-Jiahe-Signature"], body, time.time())


@contextmanager
def receiver() -> Iterator[FlakyReceiver]:
    r = FlakyReceiver()
    try:
        yield r
    finally:
        r.close()


def red_petition(household: str, org_unit: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "type": "petition.received", "schema_version": 1,
        "occurred_at": at.isoformat(timespec="seconds"), "org_unit": org_unit,
        "household_id": household, "actor": "cadre-outage",
        "data": {"channel": "hotline_12338", "category": "sexual_assault", "urgent": False},
    }


def an_hour_of_events(tag: str) -> list[dict[str, Any]]:
    """60 red petitions, one a minute, ending five minutes ago (district 230102)."""
    end = datetime.now(UTC) - timedelta(minutes=5)
    return [red_petition(f"hh-outage-{tag}-{i:02d}", f"230102{1 + i % 8:03d}{1 + i % 10:03d}",
                         end - timedelta(minutes=HOUSEHOLDS - 1 - i))
            for i in range(HOUSEHOLDS)]


def ride_out_the_outage(api: Api, hook: FlakyReceiver, tag: str) -> set[tuple[str, str]]:
    """Receiver down (503, then refused) while an hour is ingested; back up at the end.

    Returns every (warning_id, transition) of the tagged households."""
    response = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": hook.url, "secret": SECRET})
    assert response.status_code == 201, response.text
    events = an_hour_of_events(tag)
    span = (datetime.fromisoformat(events[-1]["occurred_at"])
            - datetime.fromisoformat(events[0]["occurred_at"]))
    assert span >= timedelta(minutes=59)
    hook.mode = "503"
    per_burst = HOUSEHOLDS // BURSTS
    for burst in range(BURSTS):
        if burst == BURSTS // 2:
            hook.refuse()
        api.publish("chair102", events[burst * per_burst:(burst + 1) * per_burst])
        time.sleep(1.0)
    for event in events[::3]:
        warning_id = api.warning_for(event["household_id"])
        answer = api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
        assert answer.status_code in (200, 202), answer.text
    deadline = time.monotonic() + 30
    keys = lifecycle_keys(api, tag)
    while len(keys) < HOUSEHOLDS + len(events[::3]):  # acknowledgements are processed async
        assert time.monotonic() < deadline, keys
        time.sleep(0.2)
        keys = lifecycle_keys(api, tag)
    hook.mode = "up"
    hook.listen()
    return keys


def lifecycle_keys(api: Api, tag: str) -> set[tuple[str, str]]:
    rows = api.sql("log.sqlite3", "SELECT body FROM lifecycle WHERE household_id LIKE ?",
                   f"hh-outage-{tag}-%")
    return {(r["warning_id"], transition_of(r)) for r in (orjson.loads(b) for (b,) in rows)}


def delivered_keys(hook: FlakyReceiver) -> Counter[tuple[str, str]]:
    return Counter((d["warning"]["warning_id"], d["transition"]) for d in hook.delivered())


def dead_letters(api: Api) -> list[tuple[Any, ...]]:
    return api.sql("alerts.sqlite3",
                   "SELECT warning_id, transition, attempts, last_error FROM dead_letters")


def settle(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not settled in time"
        time.sleep(0.1)
    time.sleep(1.5)  # a redelivery or a late dead letter would show up now


def test_retries_that_outlast_an_hour_deliver_every_alert_once(tmp_path: Path) -> None:
    args = ("--webhook-max-attempts", "12", "--webhook-backoff", "0.05",
            "--webhook-poll", "0.05", "--tick", "0.3")
    with receiver() as hook, serve_api(tmp_path, USERS, args, ENV) as api:
        started = time.monotonic()
        expected = ride_out_the_outage(api, hook, "long")
        outage = time.monotonic() - started
        settle(lambda: set(delivered_keys(hook)) >= expected, 120)
        got = delivered_keys(hook)
        attempts_503 = sum(code == 503 for code, _, _ in hook.answered)
        print(f"[webhook outage] {outage:.1f} s wall for 1 h of stream time; "
              f"{len(expected)} alerts, {attempts_503} refused with 503, "
              f"delivered in {time.monotonic() - started - outage:.1f} s after recovery")
        assert set(got) == expected and max(got.values()) == 1, got
        assert hook.all_valid()
        assert attempts_503 > 0
        assert dead_letters(api) == []


def test_default_retries_dead_letter_an_hours_alerts_visibly_and_never_twice(
    tmp_path: Path,
) -> None:
    args = ("--webhook-max-attempts", "5", "--webhook-backoff", "0.005",
            "--webhook-poll", "0.05", "--tick", "0.3")
    with receiver() as hook, serve_api(tmp_path, USERS, args, ENV) as api:
        expected = ride_out_the_outage(api, hook, "short")
        settle(lambda: {(w, t) for w, t, _, _ in dead_letters(api)} | set(delivered_keys(hook))
               >= expected, 60)
        dead = dead_letters(api)
        dead_keys = Counter((w, t) for w, t, _, _ in dead)
        got = delivered_keys(hook)
        assert max(dead_keys.values()) == 1
        assert not set(dead_keys) & set(got), "an alert both dead-lettered and delivered"
        assert set(dead_keys) | set(got) == expected
        assert len(dead_keys) >= len(expected) - 5, (len(dead_keys), len(expected))
        assert all(attempts == 5 and error for _, _, attempts, error in dead)
        assert {error for _, _, _, error in dead} >= {"HTTP 503", "connection refused"}

        after = an_hour_of_events("after")[-1:]
        api.publish("chair102", after)
        warning_id = api.warning_for(after[0]["household_id"])
        settle(lambda: (warning_id, "warning.raised") in delivered_keys(hook), 30)
        assert delivered_keys(hook)[(warning_id, "warning.raised")] == 1
        assert hook.all_valid()
        print(f"[webhook outage, default retries] {len(dead_keys)} of {len(expected)} alerts "
              f"dead-lettered (errors {Counter(e.split(':')[0] for *_, e in dead)}), "
              "delivery resumed after recovery")
