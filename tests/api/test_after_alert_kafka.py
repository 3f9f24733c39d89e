"""The after-alert commands on the Kafka runtime, against a real broker: each family
(warning commands, consent, referrals and a partner's answer) answers 202 "published",
the worker applies it, and the API's mirror shows the change, a referral's note
unsealed for the partner through the API's key store. The contract's refusals still
answer 409 from the mirrored state before anything is published."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, Receiver, event
from tests.api.test_kafka_mode import (  # noqa: F401 - the module's broker/worker/API fixture
    KafkaApi,
    eventually,
    kafka_api,
    read_topic,
)

NOTE = "孩子在学校说-kafka-referral-note-1d4e"
SECRET = "a-kafka-notice-secret-of-some-length"
HOUSEHOLD = "hh-k-after"


def _published(response: Any) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "published" and body["event_id"]
    return str(body["event_id"])


def _warning(api: Api, warning_id: str) -> dict[str, Any] | None:
    rows = api.call("GET", "/v1/alerts", "chair102").json()["alerts"]
    return next((r for r in rows if r["warning_id"] == warning_id), None)


def _referral(api: Api, user: str, referral_id: str) -> dict[str, Any] | None:
    rows = api.call("GET", "/v1/referrals", user).json()["rows"]
    return next((r for r in rows if r["referral_id"] == referral_id), None)


def test_each_command_family_is_published_and_applied(kafka_api: KafkaApi  # noqa: F811
                                                      ) -> None:
    api = kafka_api.api
    api.publish("chair102", [event("230102003001", HOUSEHOLD)])
    row = eventually(lambda: next((r for r in api.call("GET", "/v1/alerts", "chair102")
                                   .json()["alerts"] if r["household_id"] == HOUSEHOLD),
                                  None), "the warning")
    warning_id = row["warning_id"]

    # a warning command: assess
    _published(api.call("POST", f"/v1/alerts/{warning_id}/assess", "chair102",
                        json={"risk": "high", "note": "kafka-assess-note"}))
    assessed = eventually(lambda: (w := _warning(api, warning_id)) and w["risk"] == "high"
                          and w, "the assessment")
    assert assessed["status"] == "acknowledged"
    unchanged = api.call("POST", f"/v1/alerts/{warning_id}/assess", "chair102",
                         json={"risk": "high"})
    assert unchanged.status_code == 409  # judged on the mirrored state, nothing published

    # resolve, then reopen
    assert api.call("POST", f"/v1/alerts/{warning_id}/resolve", "chair102",
                    json={"note": "ok"}).status_code == 202
    eventually(lambda: (w := _warning(api, warning_id)) and w["status"] == "resolved",
               "the resolution")
    _published(api.call("POST", f"/v1/alerts/{warning_id}/reopen", "chair102",
                        json={"reason": "kafka-reopen-reason"}))
    reopened = eventually(lambda: (w := _warning(api, warning_id)) and w["status"] == "open"
                          and w, "the reopening")
    assert reopened["reopened"] == 1

    # consent
    consent = f"/v1/households/{HOUSEHOLD}/consent"
    _published(api.call("POST", consent, "chair102",
                        json={"action": "record", "agencies": ["police"]}))
    eventually(lambda: api.call("GET", consent, "chair102").json()["agencies"] == ["police"],
               "the consent")

    # a referral on consent, and the partner's answer
    sent = api.call("POST", "/v1/referrals", "chair102", json={
        "household_id": HOUSEHOLD, "agency": "police", "basis": "consent",
        "warning_id": warning_id, "note": NOTE})
    _published(sent)
    referral_id = sent.json()["referral_id"]
    seen = eventually(lambda: _referral(api, "police102", referral_id), "the referral")
    assert seen["status"] == "sent" and seen["note"] == NOTE
    assert NOTE not in api.call("GET", "/v1/referrals", "chair102").text
    assert _referral(api, "court102", referral_id) is None
    _published(api.call("POST", f"/v1/referrals/{referral_id}/accept", "police102"))
    eventually(lambda: (r := _referral(api, "chair102", referral_id))
               and r["status"] == "accepted", "the acceptance")
    again = api.call("POST", f"/v1/referrals/{referral_id}/accept", "police102")
    assert again.status_code == 409

    history = api.call("GET", f"/v1/alerts/{warning_id}/history", "chair102").json()
    types = [r["type"] for r in history["history"]]
    assert "warning.assessed" in types and "warning.reopened" in types
    assert "referral.sent" in types

    # the personal text went over the wire sealed
    for message in read_topic(kafka_api.bootstrap, kafka_api.topics.events):
        for text in (NOTE, "kafka-assess-note", "kafka-reopen-reason"):
            assert text.encode() not in message.value


def test_partner_and_break_glass_notices_are_delivered_on_kafka(
    kafka_api: KafkaApi, receiver: Receiver  # noqa: F811
) -> None:
    """The delivery loop reads the mirrored records on this runtime: a partner's webhook
    gets its agency's referral records, and the chairs of the household's place get the
    break-glass notice when a chair of another district opens it."""
    api = kafka_api.api
    household = "hh-k-notices"
    for user, path in (("police102", "/k-police102"), ("court102", "/k-court102"),
                       ("chair102", "/k-chair102")):
        created = api.call("POST", "/v1/subscriptions", user, json={
            "org_unit": "230102000000", "url": receiver.url + path, "secret": SECRET})
        assert created.status_code == 201, created.text
    api.publish("chair102", [event("230102003001", household)])
    eventually(lambda: any(r["household_id"] == household for r in api.call(
        "GET", "/v1/alerts", "chair102").json()["alerts"]), "the warning")
    sent = api.call("POST", "/v1/referrals", "chair102", json={
        "household_id": household, "agency": "police", "basis": "emergency", "note": NOTE})
    referral_id = _published(sent) and sent.json()["referral_id"]
    eventually(lambda: receiver.at("/k-police102"), "the partner's delivery")
    delivered = receiver.at("/k-police102")[0]
    assert delivered.json()["transition"] == "referral.sent"
    assert delivered.json()["referral"]["referral_id"] == referral_id
    assert NOTE.encode() not in delivered.body

    grant = api.call("POST", "/v1/break-glass", "chair103",
                     json={"household_id": household, "reason": "kafka break-glass check"})
    assert grant.status_code == 201, grant.text
    eventually(lambda: [r for r in receiver.at("/k-chair102")
                        if r.json()["transition"] == "break_glass.granted"], "the notice")
    notice = next(r.json()["notice"] for r in receiver.at("/k-chair102")
                  if r.json()["transition"] == "break_glass.granted")
    assert notice["grant_id"] == grant.json()["grant_id"] and notice["user"] == "chair103"
    assert receiver.at("/k-court102") == []  # another agency's partner: nothing
