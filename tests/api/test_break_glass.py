"""Break-glass over HTTP: a chair opens one household outside her scope, with a reason.

A real API server (``conftest.serve_api``) and a real webhook receiver: the grant
is audited, the chairs subscribed to the household's place are told (and nobody
else), reads under the grant are allowed and audited with the reason, and an
expired grant opens nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from alerts.delivery import verify_signature
from events.instants import MICROS_PER_HOUR, now_micros, parse_instant
from tests.api.conftest import DELIVERY_ARGS, Api, Receiver, event, serve_api, wait_until

SECRET = "a-break-glass-secret-of-some-length"
HOUSEHOLD = "hh-bg-1"
HOME = "230102001001"  # a community of 道里区
REASON = "victim called the 南岗区 hotline; checking for earlier warnings"
USERS: dict[str, tuple[str, ...]] = {
    "chair102": ("chair", "230102000000"),
    "chair-street": ("chair", "230102001000"),
    "chair-other-street": ("chair", "230102002000"),
    "chair103": ("chair", "230103000000"),
    "chair104": ("chair", "230104000000"),
    "admin": ("city_admin", "230100000000"),
    "cadre102": ("cadre", "230102001001"),
    "analyst": ("analyst", "230100000000"),
    "police-city": ("partner", "230100000000", "police"),
}


@pytest.fixture(scope="module")
def bg(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("bg-home"), USERS, DELIVERY_ARGS) as api:
        for user, path, org_unit in (("chair102", "/bg-102", "230102000000"),
                                     ("chair-street", "/bg-street", "230102001000"),
                                     ("chair-other-street", "/bg-other", "230102002000"),
                                     ("chair103", "/bg-103", "230103000000"),
                                     ("admin", "/bg-admin", "230100000000"),
                                     ("police-city", "/bg-police", "230100000000")):
            response = api.call("POST", "/v1/subscriptions", user, json={
                "org_unit": org_unit, "url": receiver.url + path, "secret": SECRET,
                "min_level": "red"})
            assert response.status_code == 201, response.text
        api.publish("chair102", [event(HOME, HOUSEHOLD)])  # a red warning
        wait_until(lambda: len(receiver.at("/bg-102")) >= 1)
        yield api


def _grant(api: Api, user: str, household: str = HOUSEHOLD, reason: str = REASON) -> Any:
    return api.call("POST", "/v1/break-glass", user,
                    json={"household_id": household, "reason": reason})


def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    rows = api.sql("users.sqlite3", "SELECT user, detail FROM audit WHERE action = ? "
                   "ORDER BY id", action)
    return [{"user": user, **orjson.loads(detail)} for user, detail in rows]


def _notices(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.at(path) if r.json()["transition"] ==
            "break_glass.granted"]


def test_outside_the_scope_nothing_is_readable_without_a_grant(bg: Api) -> None:
    assert bg.call("GET", f"/v1/households/{HOUSEHOLD}/alerts", "chair103").status_code == 404
    mine = bg.call("GET", f"/v1/households/{HOUSEHOLD}/alerts", "chair102")
    assert mine.status_code == 200 and mine.json()["count"] == 1


def test_who_may_ask_and_what_is_refused(bg: Api) -> None:
    for user in ("cadre102", "analyst", "police-city"):
        assert _grant(bg, user).status_code == 403, user
    assert _grant(bg, "chair103", "hh-never-seen").status_code == 404
    for reason in ("", "   ", "x" * 1001):
        assert _grant(bg, "chair103", reason=reason).status_code == 422, repr(reason)
    inside = _grant(bg, "chair102")  # her own district: nothing to open
    assert inside.status_code == 409 and "within your scope" in inside.json()["detail"]
    assert _grant(bg, "admin").status_code == 409  # the city covers every household
    assert _audit(bg, "break_glass.grant") == []


def test_a_grant_opens_the_household_audits_reads_and_notifies_its_chairs(
    bg: Api, receiver: Receiver
) -> None:
    before = now_micros()
    response = _grant(bg, "chair103")
    assert response.status_code == 201, response.text
    grant = response.json()
    expires = parse_instant(grant["expires_at"])
    assert before + 4 * MICROS_PER_HOUR <= expires <= now_micros() + 4 * MICROS_PER_HOUR
    assert grant["household_id"] == HOUSEHOLD and grant["owner_org_unit"] == HOME
    assert grant["status"] == "live" and grant["reason"] == REASON

    [granted] = _audit(bg, "break_glass.grant")
    assert granted["user"] == "chair103" and granted["reason"] == REASON
    assert granted["grant_id"] == grant["grant_id"]

    rows = bg.call("GET", f"/v1/households/{HOUSEHOLD}/alerts", "chair103")
    assert rows.status_code == 200 and rows.json()["count"] == 1
    assert rows.json()["alerts"][0]["household_id"] == HOUSEHOLD
    [read] = _audit(bg, "break_glass.read")
    assert read == {"user": "chair103", "grant_id": grant["grant_id"],
                    "household_id": HOUSEHOLD, "read": "households.alerts",
                    "reason": REASON}
    # one household only: another household of 道里区 stays closed
    bg.publish("chair102", [event(HOME, "hh-bg-2")])
    assert bg.call("GET", "/v1/households/hh-bg-2/alerts", "chair103").status_code == 404

    # the chairs whose subscriptions cover the household are told, with the reason
    wait_until(lambda: bool(_notices(receiver, "/bg-street")))
    wait_until(lambda: bool(_notices(receiver, "/bg-102")))
    for path in ("/bg-102", "/bg-street"):
        [received] = [r for r in receiver.at(path)
                      if r.json()["transition"] == "break_glass.granted"]
        assert verify_signature(SECRET, received.headers["X-Jiahe-Signature"], received.body,
                                time.time())
        notice = received.json()["notice"]
        assert notice["grant_id"] == grant["grant_id"] and notice["user"] == "chair103"
        # by its pseudonymous key: the subscription was not allowed personal data
        assert "household_id" not in notice and HOUSEHOLD.encode() not in received.body
        assert notice["household_key"] == bg.household_key(HOUSEHOLD)
        assert notice["reason"] == REASON
        assert notice["expires_at"] == grant["expires_at"]
    time.sleep(0.5)  # any stray delivery would have happened by now
    # not the grantee's own district, not another street, not the city admin, not a partner
    for path in ("/bg-103", "/bg-other", "/bg-admin", "/bg-police"):
        assert _notices(receiver, path) == [], path
    assert len(_notices(receiver, "/bg-102")) == 1  # once

    # who sees the grant listed: the grantee and the chairs of the household's place
    for user, count in (("chair103", 1), ("chair102", 1), ("chair-street", 1),
                        ("chair104", 0), ("chair-other-street", 0)):
        listed = bg.call("GET", "/v1/break-glass", user)
        assert listed.status_code == 200 and listed.json()["count"] == count, user
    later = bg.call("GET", "/v1/break-glass", "chair102",
                    params={"since": "2099-01-01T00:00:00+08:00"})
    assert later.json()["count"] == 0


def test_the_households_other_reads_honour_the_grant_and_commands_do_not(bg: Api) -> None:
    """History, consent and referrals of the opened household are readable under the grant
    (each read audited with the reason); commands stay refused (a grant opens reads)."""
    warning_id = bg.warning_for(HOUSEHOLD)
    sent = bg.call("POST", "/v1/referrals", "chair102", json={
        "household_id": HOUSEHOLD, "agency": "police", "basis": "emergency"})
    assert sent.status_code == 200, sent.text
    reads_before = len(_audit(bg, "break_glass.read"))
    history = bg.call("GET", f"/v1/alerts/{warning_id}/history", "chair103")
    assert history.status_code == 200 and history.json()["warning"]["warning_id"] == warning_id
    consent = bg.call("GET", f"/v1/households/{HOUSEHOLD}/consent", "chair103")
    assert consent.status_code == 200
    referrals = bg.call("GET", "/v1/referrals", "chair103")
    assert [r["household_id"] for r in referrals.json()["rows"]] == [HOUSEHOLD]
    reads = _audit(bg, "break_glass.read")[reads_before:]
    assert {r["reason"] for r in reads} == {REASON} and len(reads) == 3
    assert {r["read"] for r in reads} == {"alerts.history", "consent.read", "referrals.list"}
    # without a grant, another chair sees none of it
    assert bg.call("GET", f"/v1/alerts/{warning_id}/history", "chair104").status_code == 404
    assert bg.call("GET", "/v1/referrals", "chair104").json()["rows"] == []
    # a grant opens reads, not commands
    assess = bg.call("POST", f"/v1/alerts/{warning_id}/assess", "chair103",
                     json={"risk": "high"})
    assert assess.status_code == 404
    refer = bg.call("POST", "/v1/referrals", "chair103", json={
        "household_id": HOUSEHOLD, "agency": "court", "basis": "emergency"})
    assert refer.status_code == 404


def test_an_expired_grant_opens_nothing(bg: Api) -> None:
    response = _grant(bg, "chair104", reason="follow-up of a referral from 道外区")
    assert response.status_code == 201
    grant_id = response.json()["grant_id"]
    assert bg.call("GET", f"/v1/households/{HOUSEHOLD}/alerts", "chair104").status_code == 200
    reads = len(_audit(bg, "break_glass.read"))
    # the clock moves past the expiry: the grant ends now instead of in 4 hours
    _expire(bg, grant_id)
    assert bg.call("GET", f"/v1/households/{HOUSEHOLD}/alerts", "chair104").status_code == 404
    assert len(_audit(bg, "break_glass.read")) == reads  # nothing read, nothing audited
    listed = bg.call("GET", "/v1/break-glass", "chair104").json()["grants"]
    assert [g["status"] for g in listed] == ["expired"]


def _expire(api: Api, grant_id: str) -> None:
    """Move the grant's expiry to just now (the store the server reads; SQLite WAL)."""
    db = sqlite3.connect(api.home / "users.sqlite3")
    try:
        with db:
            db.execute("UPDATE break_glass SET expires_us = ? WHERE id = ?",
                       (now_micros() - 1, grant_id))
    finally:
        db.close()
