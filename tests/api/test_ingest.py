"""Ingest: a result per event, idempotency, scope, 413 and malformed bodies."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, event


def test_openapi_is_served(api: Api) -> None:
    spec = api.call("GET", "/openapi.json").json()
    assert "/v1/events" in spec["paths"] and "/v1/alerts" in spec["paths"]


def test_results_per_event(api: Api) -> None:
    good = event("230102001001", "hh-ingest-1", kind="followup.recorded",
                 data={"action": "phone_call"})
    bad_type = {**event("230102001001", "hh-ingest-2"), "type": "nope"}
    outside = event("230103001001", "hh-ingest-3")
    command = event("230102001001", "hh-ingest-4", kind="warning.acknowledged",
                    data={"warning_id": "w-0000000000000000", "by": "x"})
    body = api.publish("cadre102", [good, bad_type, outside, command, 42], strict=False,
                       status=403)  # the outside event: not the caller's to write
    statuses = [(r["status"], r.get("reason", "")) for r in body["results"]]
    assert statuses[0] == ("accepted", "")
    assert statuses[1][0] == "rejected" and "unknown event type" in statuses[1][1]
    assert statuses[2] == ("rejected", "org_unit: outside your org unit")
    assert statuses[3][0] == "rejected" and "/v1/alerts" in statuses[3][1]
    assert statuses[4][0] == "rejected"
    assert (body["received"], body["accepted"], body["rejected"]) == (5, 1, 4)
    # the out-of-scope event never reached the log
    assert not api.sql("log.sqlite3", "SELECT 1 FROM events WHERE event_id = ?",
                       outside["event_id"])
    again = api.publish("cadre102", [good], strict=False)
    assert again["results"][0]["status"] == "duplicate"
    conflict = {**good, "data": {"action": "home_visit"}}
    result = api.publish("cadre102", [conflict], strict=False)["results"][0]
    assert result["status"] == "rejected" and "conflict" in result["reason"]


def test_ingest_raises_warnings_inline(api: Api) -> None:
    api.publish("chair102", [event("230102001002", "hh-ingest-red")])
    warning_id = api.warning_for("hh-ingest-red")
    alerts = api.call("GET", "/v1/alerts", "chair102").json()["alerts"]
    assert warning_id in {a["warning_id"] for a in alerts}


def test_too_many_events_is_413(api: Api) -> None:
    events = [event("230102001001", f"hh-many-{i}") for i in range(5_001)]
    assert api.call("POST", "/v1/events", "cadre102", json=events).status_code == 413


def test_too_large_body_is_413(api: Api) -> None:
    blob = b"[" + b" " * (5 * 1024 * 1024 + 10) + b"]"
    response = api.call("POST", "/v1/events", "cadre102", content=blob,
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_malformed_bodies_are_4xx(api: Api) -> None:
    for content in (b"{not json", b'{"event_id": "x"}', b"", b"\xff\xfe", b"null"):
        response = api.call("POST", "/v1/events", "cadre102", content=content,
                            headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (content, response.text)
    assert api.publish("cadre102", [])["received"] == 0


def test_analyst_may_not_ingest(api: Api) -> None:
    one = [event("230102001001", f"hh-{uuid.uuid4()}")]
    assert api.call("POST", "/v1/events", "analyst", json=one).status_code == 403
