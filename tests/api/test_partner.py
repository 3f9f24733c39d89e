"""A partner agency's user: its referrals and its own subscriptions, nothing else.

It never sees a warning, a ledger, a KPI, a work list or the live stream (403), and
among subscriptions only its own: a chair's deliveries are warnings."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

FORBIDDEN = [
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/stream"),
    ("GET", "/v1/alerts/w-ffffffffffffffff/history"),
    ("POST", "/v1/alerts/w-ffffffffffffffff/acknowledge"),
    ("GET", "/v1/ledgers/warnings"),
    ("GET", "/v1/ledgers/households"),
    ("GET", "/v1/ledgers/guardianship"),
    ("GET", "/v1/ledgers/coverage"),
    ("GET", "/v1/ledgers/referrals"),
    ("GET", "/v1/kpis"),
    ("GET", "/v1/worklist"),
    ("POST", "/v1/events"),
    ("GET", "/v1/silences"),
    ("GET", "/v1/households/hh-x/consent"),
]


@pytest.mark.parametrize("user", ["police102", "police-city"])
@pytest.mark.parametrize(("method", "path"), FORBIDDEN)
def test_a_partner_is_forbidden_everything_but_referrals(api: Api, user: str, method: str,
                                                         path: str) -> None:
    response = api.call(method, path, user, json=[] if path == "/v1/events" else None)
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == "role 'partner' may not use this endpoint"


def test_a_partner_keeps_its_own_subscriptions(api: Api) -> None:
    chair = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": "http://127.0.0.1:9/chair", "secret": "c" * 16})
    assert chair.status_code == 201, chair.text
    chair_id = chair.json()["id"]
    mine = api.call("POST", "/v1/subscriptions", "police102", json={
        "org_unit": "230102000000", "channel": "email", "address": "police@example.org"})
    assert mine.status_code == 201, mine.text
    mine_id = mine.json()["id"]
    hook = api.call("POST", "/v1/subscriptions", "police102", json={
        "org_unit": "230102001000", "url": "http://127.0.0.1:9/police", "secret": "p" * 16})
    assert hook.status_code == 201, hook.text
    # its scope still holds: not another district
    assert api.call("POST", "/v1/subscriptions", "police102", json={
        "org_unit": "230103000000", "url": "http://127.0.0.1:9/x", "secret": "p" * 16}
    ).status_code == 403
    listed = {s["id"] for s in api.call("GET", "/v1/subscriptions", "police102"
                                        ).json()["subscriptions"]}
    assert {mine_id, hook.json()["id"]} <= listed and chair_id not in listed
    assert all(s["owner"] == "police102" for s in api.call(
        "GET", "/v1/subscriptions", "police102").json()["subscriptions"])
    for method, path in (("GET", f"/v1/subscriptions/{chair_id}/dead-letters"),
                         ("POST", f"/v1/subscriptions/{chair_id}/redeliver"),
                         ("DELETE", f"/v1/subscriptions/{chair_id}")):
        assert api.call(method, path, "police102").status_code == 404
    assert api.call("GET", f"/v1/subscriptions/{mine_id}/dead-letters", "police102"
                    ).json()["count"] == 0
    assert api.call("DELETE", f"/v1/subscriptions/{mine_id}", "police102").status_code == 204
    # the chair's subscription is untouched; a subscription is its author's: the chair
    # does not see the partner's, a city admin does, without its URL
    chair_view = {s["id"] for s in api.call("GET", "/v1/subscriptions", "chair102"
                                            ).json()["subscriptions"]}
    assert chair_id in chair_view and hook.json()["id"] not in chair_view
    admin_view = {s["id"]: s for s in api.call("GET", "/v1/subscriptions", "admin"
                                               ).json()["subscriptions"]}
    assert admin_view[hook.json()["id"]]["url"] is None


def test_a_partner_subscription_carries_its_agency(api: Api) -> None:
    created = api.call("POST", "/v1/subscriptions", "court102", json={
        "org_unit": "230102000000", "url": "http://127.0.0.1:9/court", "secret": "k" * 16})
    assert created.status_code == 201, created.text
    assert created.json()["agency"] == "court"
    kafka = api.call("POST", "/v1/subscriptions", "court102", json={
        "org_unit": "230102000000", "channel": "kafka"})
    assert kafka.status_code == 422
    assert "partner subscribes by webhook or email" in kafka.text
    chair = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": "http://127.0.0.1:9/c2", "secret": "k" * 16})
    assert "agency" not in chair.json()
