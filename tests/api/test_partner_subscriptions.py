"""Partner agencies subscribe to their referrals: webhook and e-mail, real peers.

A partner (role ``partner``, an agency, an org unit) subscribes with
``POST /v1/subscriptions`` and receives the referral lifecycle records addressed to
its agency for households its subscription covers — and nothing else: never a
warning (not even the ones its referrals cause), never another agency's referral,
never a break-glass notice. A chair's subscription never gets referral records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from alerts.delivery import verify_signature
from tests.api.conftest import (
    DELIVERY_ARGS,
    Api,
    Receiver,
    event,
    free_port,
    serve_api,
    wait_until,
)
from tests.api.test_email import Mailbox

SECRET = "a-partner-secret-of-some-length"
HOME = "230102001001"  # a community of 道里区
NOTE = "王某某 is waiting at the 道里区 station"
USERS: dict[str, tuple[str, ...]] = {
    "chair102": ("chair", "230102000000"),
    "chair103": ("chair", "230103000000"),
    "police102": ("partner", "230102000000", "police"),
    "police103": ("partner", "230103000000", "police"),
    "police-city": ("partner", "230100000000", "police"),
    "court102": ("partner", "230102000000", "court"),
}
REFERRAL_TYPES = ("referral.sent", "referral.accepted", "referral.declined", "referral.closed")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def partners(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver,
             mailbox: tuple[Mailbox, int]) -> Iterator[Api]:
    _, port = mailbox
    with serve_api(tmp_path_factory.mktemp("partner-home"), USERS, DELIVERY_ARGS,
                   {"JIAHE_SMTP": f"127.0.0.1:{port}",
                    "JIAHE_REPEAT_RED_MINUTES": "0"}) as api:
        for user, path, org_unit in (("police102", "/p-police102", "230102000000"),
                                     ("police103", "/p-police103", "230103000000"),
                                     ("police-city", "/p-police-city", "230100000000"),
                                     ("court102", "/p-court102", "230102000000"),
                                     ("chair102", "/p-chair102", "230102000000")):
            _subscribe(api, user, org_unit, url=receiver.url + path, secret=SECRET)
        _subscribe(api, "police102", "230102000000", channel="email",
                   address="duty@police.example")
        yield api


def _subscribe(api: Api, user: str, org_unit: str, **target: Any) -> dict[str, Any]:
    response = api.call("POST", "/v1/subscriptions", user, json={"org_unit": org_unit,
                                                                 **target})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _refer(api: Api, household: str, agency: str, **extra: Any) -> str:
    response = api.call("POST", "/v1/referrals", "chair102", json={
        "household_id": household, "agency": agency, "basis": "emergency", "note": NOTE,
        **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["referral_id"])


def _ok(api: Api, user: str, path: str, body: dict[str, Any] | None = None) -> None:
    response = api.call("POST", path, user, json=body or {})
    assert response.status_code == 200, response.text


def _transitions(receiver: Receiver, path: str) -> list[str]:
    return [r.json()["transition"] for r in receiver.at(path)]


def test_a_partner_gets_its_agencys_referral_records_and_nothing_else(
    partners: Api, receiver: Receiver
) -> None:
    household = "hh-partner-1"
    partners.publish("chair102", [event(HOME, household)])  # a red warning in 道里区
    wait_until(lambda: "warning.raised" in _transitions(receiver, "/p-chair102"))
    to_police = _refer(partners, household, "police")
    _ok(partners, "police102", f"/v1/referrals/{to_police}/accept")
    _ok(partners, "police102", f"/v1/referrals/{to_police}/close",
        {"outcome": "service_provided"})
    to_court = _refer(partners, household, "court")
    _ok(partners, "court102", f"/v1/referrals/{to_court}/decline",
        {"reason": "not our jurisdiction"})  # the referral-declined rule raises a warning

    expected_police = ["referral.sent", "referral.accepted", "referral.closed"]
    for path in ("/p-police102", "/p-police-city"):  # the district's and the city's police
        wait_until(lambda path=path: len(receiver.at(path)) >= 3)
    wait_until(lambda: len(receiver.at("/p-court102")) >= 2)
    wait_until(lambda: _transitions(receiver, "/p-chair102").count("warning.raised") >= 2)
    time.sleep(0.6)  # any stray delivery would have happened by now

    for path in ("/p-police102", "/p-police-city"):
        got = receiver.at(path)
        assert _transitions(receiver, path) == expected_police, path
        for received in got:
            body = received.json()
            assert verify_signature(SECRET, received.headers["X-Jiahe-Signature"],
                                    received.body, time.time())
            assert "warning" not in body
            assert body["referral"] == {"referral_id": to_police, "agency": "police",
                                        "household_key": partners.household_key(household),
                                        "org_unit": HOME, "district": "230102000000"}
            assert household.encode() not in received.body  # no personal data allowed
            assert body["record"]["referral_id"] == to_police
            assert NOTE not in received.body.decode()  # the note stays sealed in the log
    assert _transitions(receiver, "/p-court102") == ["referral.sent", "referral.declined"]
    assert receiver.at("/p-police103") == []  # police of another district
    chair = _transitions(receiver, "/p-chair102")
    assert not set(chair) & set(REFERRAL_TYPES)  # a chair's subscription: warnings only
    raised = [r.json()["warning"]["rule_id"] for r in receiver.at("/p-chair102")
              if r.json()["transition"] == "warning.raised"]
    assert "referral-declined" in raised


def test_a_partners_mail_names_the_referral_without_household_or_note(
    partners: Api, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    household = "hh-partner-mail"
    partners.publish("chair102", [event(HOME, household, "followup.recorded",
                                        {"action": "phone_call"})])
    referral = _refer(partners, household, "police")
    wait_until(lambda: any(referral in m.text for m in box.to("duty@police.example")))
    [mail] = [m for m in box.to("duty@police.example") if referral in m.text]
    assert "referral" in str(mail.message["Subject"])
    assert "police" in mail.text and "sent" in mail.text
    assert household not in mail.text and NOTE not in mail.text
    assert household not in str(mail.message["Subject"])


def test_partners_subscribe_by_webhook_or_mail_and_see_only_their_own(
    partners: Api, receiver: Receiver
) -> None:
    kafka = partners.call("POST", "/v1/subscriptions", "police102",
                          json={"org_unit": "230102000000", "channel": "kafka"})
    assert kafka.status_code == 422
    outside = partners.call("POST", "/v1/subscriptions", "police102", json={
        "org_unit": "230103000000", "url": receiver.url + "/x", "secret": SECRET})
    assert outside.status_code == 403
    mine = partners.call("GET", "/v1/subscriptions", "police102").json()["subscriptions"]
    assert {s["owner"] for s in mine} == {"police102"}
    assert {s["agency"] for s in mine} == {"police"}
    assert {s["channel"] for s in mine} == {"webhook", "email"}
