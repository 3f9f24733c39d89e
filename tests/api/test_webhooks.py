"""Webhook delivery against a real receiver: signature, once-only, retries, dead letters."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from tests.api.conftest import MAX_ATTEMPTS, Api, Receiver, event, wait_until

SECRET = "a-webhook-secret-of-some-length"


def _subscribe(api: Api, receiver: Receiver, path: str, org_unit: str, **extra: Any) -> str:
    response = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": org_unit, "url": receiver.url + path, "secret": SECRET, **extra})
    assert response.status_code == 201, response.text
    assert "secret" not in response.json()
    return str(response.json()["id"])


def _valid(received: Any) -> bool:
    """A receiver's check, written from the documented format alone:
    ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, t within 5 minutes."""
    fields = dict(item.split("=", 1) for item in received.headers["X-Jiahe-Signature"].split(","))
    signed = fields["t"].encode() + b"." + received.body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return (abs(time.time() - int(fields["t"])) <= 300
            and hmac.compare_digest(fields["v1"], expected))


def test_delivered_once_with_valid_signature(api: Api, receiver: Receiver) -> None:
    sub = _subscribe(api, receiver, "/once", "230102004000", min_level="orange")
    api.publish("chair102", [event("230102004001", "hh-hook-1"),
                             event("230102001001", "hh-hook-elsewhere")])
    wait_until(lambda: len(receiver.at("/once")) >= 1)
    warning_id = api.warning_for("hh-hook-1")
    api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
    wait_until(lambda: len(receiver.at("/once")) >= 2)
    time.sleep(0.5)  # any redelivery would have happened by now
    got = receiver.at("/once")
    assert [r.json()["transition"] for r in got] == ["warning.raised", "warning.acknowledged"]
    assert all(_valid(r) for r in got)
    first = got[0].json()
    assert first["subscription_id"] == sub
    assert first["warning"]["warning_id"] == warning_id and first["warning"]["level"] == "red"


def test_filters_by_level_and_rule(api: Api, receiver: Receiver) -> None:
    _subscribe(api, receiver, "/mediation-only", "230102006000", rule_ids=["mediation-failed"])
    api.publish("chair102", [event("230102006001", "hh-hook-filter")])
    api.publish("chair102", [event("230102006001", "hh-hook-med", "mediation.concluded",
                                   {"mediation_id": "m-1", "outcome": "failed"})])
    wait_until(lambda: len(receiver.at("/mediation-only")) >= 1)
    time.sleep(0.5)
    got = receiver.at("/mediation-only")
    assert [r.json()["warning"]["rule_id"] for r in got] == ["mediation-failed"]


def test_retries_until_the_receiver_recovers(api: Api, receiver: Receiver) -> None:
    receiver.plan["/flaky"] = [500, 500]
    _subscribe(api, receiver, "/flaky", "230102002000")
    api.publish("chair102", [event("230102002001", "hh-hook-2")])
    wait_until(lambda: len(receiver.at("/flaky")) >= 3)
    time.sleep(0.5)
    got = receiver.at("/flaky")
    assert len(got) == 3 and len({r.body for r in got}) == 1 and all(_valid(r) for r in got)
    rows = api.sql("alerts.sqlite3", "SELECT status, attempts FROM deliveries d "
                   "JOIN subscriptions s ON s.id = d.subscription_id WHERE s.url LIKE '%/flaky'")
    assert rows == [("delivered", 3)]


def test_dead_letter_after_max_attempts(api: Api, receiver: Receiver) -> None:
    receiver.plan["/down"] = [500] * 100
    sub = _subscribe(api, receiver, "/down", "230102003000")
    api.publish("chair102", [event("230102003001", "hh-hook-3")])
    warning_id = api.warning_for("hh-hook-3")

    def dead() -> list[tuple[Any, ...]]:
        return api.sql("alerts.sqlite3", "SELECT warning_id, transition, attempts, last_error "
                       "FROM dead_letters WHERE subscription_id = ?", sub)

    wait_until(lambda: bool(dead()))
    time.sleep(1.0)  # no attempt after the dead letter
    assert dead() == [(warning_id, "warning.raised", MAX_ATTEMPTS, "HTTP 500")]
    assert len(receiver.at("/down")) == MAX_ATTEMPTS

    listed = api.call("GET", f"/v1/subscriptions/{sub}/dead-letters", "chair102").json()
    assert listed["count"] == 1
    assert listed["dead_letters"][0]["warning_id"] == warning_id
    assert listed["dead_letters"][0]["last_error"] == "HTTP 500"

    receiver.plan["/down"] = []  # the receiver is fixed: the chair re-drives the alert
    redriven = api.call("POST", f"/v1/subscriptions/{sub}/redeliver", "chair102")
    assert redriven.status_code == 200 and redriven.json() == {"requeued": 1}
    wait_until(lambda: len(receiver.at("/down")) == MAX_ATTEMPTS + 1)
    time.sleep(0.5)  # delivered once, not again
    assert len(receiver.at("/down")) == MAX_ATTEMPTS + 1
    assert _valid(receiver.at("/down")[-1])
    assert api.call("GET", f"/v1/subscriptions/{sub}/dead-letters",
                    "chair102").json()["count"] == 0
    assert api.call("POST", f"/v1/subscriptions/{sub}/redeliver",
                    "chair102").json() == {"requeued": 0}


def test_escalation_is_delivered(api: Api, receiver: Receiver) -> None:
    """A red warning raised 30 h ago is past its 24 h SLA: the wall clock escalates it."""
    _subscribe(api, receiver, "/escalations", "230102007000")
    api.publish("chair102", [event("230102007001", "hh-hook-late", hours_ago=30)])
    wait_until(lambda: len(receiver.at("/escalations")) >= 2)
    got = [r.json() for r in receiver.at("/escalations")]
    assert [g["transition"] for g in got] == ["warning.raised", "warning.escalated:street"]
    assert got[1]["record"]["handling_org_unit"] == "230102007000"
