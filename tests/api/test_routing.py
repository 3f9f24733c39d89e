"""Routing: silences (recorded, not sent; resolutions still delivered) and the repeat interval.

A real API server with a short repeat interval for unacknowledged red warnings
(``$JIAHE_REPEAT_RED_MINUTES``) and the real webhook receiver of ``conftest``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.routing import Silence, SilenceStore, silenced_by
from alerts.subscriptions import SubscriptionStore
from tests.api.conftest import LOOPBACK_EGRESS, Api, Receiver, event, wait_until
from tests.api.test_email import running_api

SECRET = "a-webhook-secret-of-some-length"
REPEAT_S = 1.2


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("routing-home"),
                     JIAHE_REPEAT_RED_MINUTES=str(REPEAT_S / 60)) as api:
        yield api


def _subscribe(api: Api, receiver: Receiver, path: str, org_unit: str) -> str:
    response = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": org_unit, "url": receiver.url + path, "secret": SECRET})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _silence(api: Api, user: str = "chair102", **body: Any) -> Any:
    return api.call("POST", "/v1/silences", user, json=body)


def _transitions(receiver: Receiver, path: str) -> list[str]:
    return [r.json()["transition"] for r in receiver.at(path)]


def test_silenced_alert_is_recorded_not_sent_and_its_resolution_is_delivered(
    routed: Api, receiver: Receiver
) -> None:
    response = _silence(routed, matcher={"org_unit": "230102005000", "level": "red"},
                        duration_minutes=30, comment="known case, handled offline")
    assert response.status_code == 201, response.text
    silence = response.json()
    assert silence["author"] == "chair102" and silence["status"] == "active"
    sub = _subscribe(routed, receiver, "/silenced", "230102005000")
    routed.publish("chair102", [event("230102005001", "hh-silenced")])
    warning_id = routed.warning_for("hh-silenced")

    def rows() -> list[tuple[Any, ...]]:
        return routed.sql("alerts.sqlite3", "SELECT transition, status, attempts FROM "
                          "deliveries WHERE subscription_id = ? AND transition NOT LIKE "
                          "'warning.repeat:%' ORDER BY id", sub)

    wait_until(lambda: bool(rows()))
    assert rows() == [("warning.raised", "silenced", 0)]
    response = routed.call("POST", f"/v1/alerts/{warning_id}/resolve", "chair102",
                           json={"note": "家访已处理"})
    assert response.status_code == 200, response.text
    wait_until(lambda: len(receiver.at("/silenced")) >= 1)
    time.sleep(REPEAT_S + 0.5)
    assert _transitions(receiver, "/silenced") == ["warning.resolved"]
    assert rows() == [("warning.raised", "silenced", 0), ("warning.resolved", "delivered", 1)]
    # reminders of a silenced red warning are silenced too
    repeats = routed.sql("alerts.sqlite3", "SELECT DISTINCT status FROM deliveries WHERE "
                         "subscription_id = ? AND transition LIKE 'warning.repeat:%'", sub)
    assert repeats in ([], [("silenced",)])


def test_a_silence_matches_only_its_rule_and_scope(routed: Api, receiver: Receiver) -> None:
    assert _silence(routed, matcher={"org_unit": "230102008000", "rule_id": "mediation-failed"},
                    duration_minutes=30).status_code == 201
    _subscribe(routed, receiver, "/other-rule", "230102008000")
    routed.publish("chair102", [event("230102008001", "hh-not-silenced")])  # violence-injury
    wait_until(lambda: len(receiver.at("/other-rule")) >= 1)
    assert _transitions(receiver, "/other-rule")[0] == "warning.raised"


def test_silence_api_scope_expiry_and_delete(routed: Api) -> None:
    created = _silence(routed, matcher={"org_unit": "230102009000"},
                       expires_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat())
    assert created.status_code == 201, created.text
    silence_id = created.json()["id"]
    assert created.json()["matcher"] == {"org_unit": "230102009000", "rule_id": None,
                                         "level": None}
    # another district's chair neither sees nor removes it, nor silences outside her scope
    listed = routed.call("GET", "/v1/silences", "chair103").json()
    assert silence_id not in [s["id"] for s in listed["silences"]]
    assert routed.call("DELETE", f"/v1/silences/{silence_id}", "chair103").status_code == 404
    outside = _silence(routed, "chair103", matcher={"org_unit": "230102000000"},
                       duration_minutes=5)
    assert outside.status_code in (403, 404)
    assert routed.call("GET", "/v1/silences", "analyst").status_code == 403
    assert routed.call("GET", "/v1/silences").status_code == 401
    # bad bodies
    for body in ({"matcher": {"org_unit": "230102000000"}},
                 {"matcher": {"org_unit": "230102000000"}, "duration_minutes": 5,
                  "expires_at": "2099-01-01T00:00:00+08:00"},
                 {"matcher": {"org_unit": "230102000000"},
                  "expires_at": "2020-01-01T00:00:00+08:00"},
                 {"matcher": {"org_unit": "230102000000"}, "expires_at": "2099-01-01T00:00"},
                 {"matcher": {"org_unit": "230102000000", "level": "purple"},
                  "duration_minutes": 5}):
        assert _silence(routed, **body).status_code == 422, body
    mine = [s["id"] for s in routed.call("GET", "/v1/silences", "chair102").json()["silences"]]
    assert silence_id in mine
    assert routed.call("DELETE", f"/v1/silences/{silence_id}", "chair102").status_code == 204
    active = routed.call("GET", "/v1/silences", "chair102").json()["silences"]
    assert silence_id not in [s["id"] for s in active]
    everything = routed.call("GET", "/v1/silences?all=true", "admin").json()["silences"]
    assert [s["status"] for s in everything if s["id"] == silence_id] == ["expired"]


def test_unacknowledged_red_warning_is_repeated_until_acknowledged(
    routed: Api, receiver: Receiver
) -> None:
    _subscribe(routed, receiver, "/repeat", "230102006000")
    routed.publish("chair102", [
        event("230102006001", "hh-repeat"),  # red
        event("230102006001", "hh-yellow", "mediation.concluded",
              {"mediation_id": "m-1", "outcome": "failed"}),  # yellow: never repeated
    ])
    wait_until(lambda: "warning.repeat:2" in _transitions(receiver, "/repeat"), timeout=20)
    warning_id = routed.warning_for("hh-repeat")
    response = routed.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
    assert response.status_code == 200, response.text
    wait_until(lambda: "warning.acknowledged" in _transitions(receiver, "/repeat"))
    settled = _transitions(receiver, "/repeat")
    time.sleep(2 * REPEAT_S + 0.5)
    assert _transitions(receiver, "/repeat") == settled  # nothing after the acknowledgement
    red = [r.json() for r in receiver.at("/repeat")
           if r.json()["warning"]["warning_id"] == warning_id]
    transitions = [r["transition"] for r in red]
    assert transitions[0] == "warning.raised" and transitions[-1] == "warning.acknowledged"
    repeats = transitions[1:-1]
    assert len(repeats) == len(set(repeats)) >= 2  # one per slot, never twice
    assert all(t.startswith("warning.repeat:") for t in repeats)
    assert red[1]["record"]["repeat"] == int(repeats[0].split(":")[1])
    yellow = [r.json()["transition"] for r in receiver.at("/repeat")
              if r.json()["warning"]["rule_id"] == "mediation-failed"]
    assert yellow == ["warning.raised"]


def test_silenced_by_never_holds_a_resolution(tmp_path: Path) -> None:
    store = SubscriptionStore.at_home(tmp_path)
    silences = SilenceStore.of(store)
    s = silences.create("chair", "230102000000", "violence-injury", None, expires_us=2_000,
                        now=1_000)
    warning = {"org_unit": "230102001001", "rule_id": "violence-injury", "level": "red"}
    active = silences.active(1_500)
    assert [x.id for x in active] == [s.id] and silences.active(2_000) == []
    assert silenced_by(active, warning, "warning.raised") == s
    assert silenced_by(active, warning, "warning.escalated:street") == s
    assert silenced_by(active, warning, "warning.resolved") is None
    assert silenced_by(active, {**warning, "org_unit": "230103001001"}, "warning.raised") is None
    assert silenced_by(active, {**warning, "rule_id": "x"}, "warning.raised") is None
    silences.expire(s.id, now=1_200)
    assert silences.active(1_500) == []
    assert isinstance(silences.get(s.id), Silence)
    store.close()


def _raised(warning_id: str, rule_id: str, level: str, org_unit: str) -> dict[str, Any]:
    return {"type": "warning.raised", "warning_id": warning_id, "rule_id": rule_id,
            "household_id": f"hh-{warning_id}", "level": level, "org_unit": org_unit,
            "handling_level": "community", "handling_org_unit": org_unit,
            "at": "2026-11-01T00:00:00Z"}


def test_grouping_by_district_and_rule_with_wait_and_interval(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The worker alone: one POST per (district, rule) group per flush; rows stay individual."""
    from alerts.delivery import DeliveryWorker, verify_signature
    from alerts.routing import Grouping
    from streams.embedded.log import SqliteLog
    from streams.embedded.runtime import LOG_FILE

    log = SqliteLog(tmp_path / LOG_FILE)
    store = SubscriptionStore.at_home(tmp_path, LOOPBACK_EGRESS)
    store.create("city", "230100000000", "yellow", None, receiver.url + "/grouped", "k" * 16)
    worker = DeliveryWorker(tmp_path, store, max_attempts=3, backoff_s=0)
    worker.grouping = Grouping(wait_s=0.4, interval_s=1.5)

    def posts() -> list[dict[str, Any]]:
        got = receiver.at("/grouped")
        assert all(verify_signature("k" * 16, r.headers["X-Jiahe-Signature"], r.body,
                                    time.time()) for r in got)
        return [r.json() for r in got]

    def shape(post: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
        return (post["group"]["district"], post["group"]["rule_id"],
                [(a["warning"]["warning_id"], a["transition"]) for a in post["alerts"]])

    try:
        with log.transaction():
            log.append_lifecycle([
                _raised("w-a", "violence-injury", "red", "230102001001"),
                _raised("w-b", "violence-injury", "red", "230102002001"),
                _raised("w-c", "mediation-failed", "yellow", "230102001001"),
                _raised("w-d", "violence-injury", "red", "230103001001"),
            ])
        assert worker.enqueue_new() == 4
        assert worker.dispatch_due() == 0  # group wait: nothing yet
        time.sleep(0.45)
        assert worker.dispatch_due() == 4
        assert sorted(shape(p) for p in posts()) == [
            ("230102000000", "mediation-failed", [("w-c", "warning.raised")]),
            ("230102000000", "violence-injury", [("w-a", "warning.raised"),
                                                 ("w-b", "warning.raised")]),
            ("230103000000", "violence-injury", [("w-d", "warning.raised")]),
        ]
        # within the group interval: new alerts of a group wait for its next flush
        receiver.plan["/grouped"] = [500]
        with log.transaction():
            log.append_lifecycle([
                {"type": "warning.acknowledged", "warning_id": "w-a", "household_id": "hh-w-a",
                 "at": "2026-11-01T01:00:00Z"},
                _raised("w-e", "violence-injury", "red", "230102003001"),
            ])
        assert worker.enqueue_new() == 2
        assert worker.dispatch_due() == 0
        time.sleep(1.7)
        assert worker.dispatch_due() == 2  # the first POST got a 500: retried together
        later = posts()[3:]
        assert [shape(p) for p in later] == [
            ("230102000000", "violence-injury", [("w-a", "warning.acknowledged"),
                                                 ("w-e", "warning.raised")])] * 2
        rows = store.db.execute("SELECT status, attempts FROM deliveries WHERE warning_id IN "
                                "('w-a', 'w-e') ORDER BY id").fetchall()
        assert rows == [("delivered", 1), ("delivered", 2), ("delivered", 2)]
    finally:
        worker.stop()
        store.close()
        log.close()
