"""Referrals (联动) over HTTP (embedded runtime): chairs send them, partner agencies read
and answer theirs. A partner sees only its agency's referrals for households its org
unit covers, with the note unsealed for it alone; anything else is 404 to it."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.api.conftest import Api, event
from tests.api.test_stream import _read_events

NOTE = "父亲酗酒-referral-note-3b9d"


def _household(api: Api, household: str, community: str = "230102001001") -> None:
    api.publish("admin", [event(community, household, "followup.recorded",
                                {"action": "home_visit"})])


def _send(api: Api, user: str, **body: Any) -> dict[str, Any]:
    response = api.call("POST", "/v1/referrals", user, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _rows(api: Api, user: str, query: str = "") -> dict[str, dict[str, Any]]:
    response = api.call("GET", "/v1/referrals" + query, user)
    assert response.status_code == 200, response.text
    return {r["referral_id"]: r for r in response.json()["rows"]}


def test_a_consent_based_referral_needs_standing_consent(api: Api) -> None:
    household = "hh-ref-consent"
    _household(api, household)
    body = {"household_id": household, "agency": "police", "basis": "consent"}
    refused = api.call("POST", "/v1/referrals", "chair102", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"].startswith("no standing consent of the household for "
                                               "police")
    assert api.call("POST", f"/v1/households/{household}/consent", "chair102",
                    json={"action": "record", "agencies": ["police"]}).status_code == 200
    sent = _send(api, "chair102", **body)
    assert sent["referral"]["status"] == "sent" and sent["referral"]["basis"] == "consent"
    # consent for police is not consent for the court
    court = api.call("POST", "/v1/referrals", "chair102", json=body | {"agency": "court"})
    assert court.status_code == 409
    assert api.call("POST", f"/v1/households/{household}/consent", "chair102",
                    json={"action": "withdraw", "agencies": ["police"]}).status_code == 200
    assert api.call("POST", "/v1/referrals", "chair102", json=body).status_code == 409
    # emergency and legal duty need no consent
    for basis in ("emergency", "legal_duty"):
        assert _send(api, "chair102", **body | {"basis": basis})["referral"]["basis"] == basis


def test_a_named_warning_must_be_the_households(api: Api) -> None:
    _household(api, "hh-ref-w1")
    api.publish("admin", [event("230102001001", "hh-ref-w2")])
    other = api.warning_for("hh-ref-w2")
    body = {"household_id": "hh-ref-w1", "agency": "police", "basis": "emergency"}
    for warning_id in (other, "w-ffffffffffffffff"):
        refused = api.call("POST", "/v1/referrals", "chair102",
                           json=body | {"warning_id": warning_id})
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == "warning_id: no such warning of this household"
    sent = _send(api, "chair102", **body | {"household_id": "hh-ref-w2", "warning_id": other})
    assert sent["referral"]["warning_id"] == other


def test_sending_is_for_chairs_in_scope(api: Api) -> None:
    _household(api, "hh-ref-scope")
    body = {"household_id": "hh-ref-scope", "agency": "police", "basis": "emergency"}
    for user, code in (("chair103", 404), ("cadre102", 403), ("analyst", 403),
                       ("police102", 403)):
        assert api.call("POST", "/v1/referrals", user, json=body).status_code == code, user
    unknown = api.call("POST", "/v1/referrals", "admin", json=body | {"household_id": "hh-no"})
    assert unknown.status_code == 404


def test_partners_read_only_their_agencys_referrals_in_their_scope(api: Api) -> None:
    _household(api, "hh-ref-read-102")
    _household(api, "hh-ref-read-103", "230103001001")
    police102 = _send(api, "chair102", household_id="hh-ref-read-102", agency="police",
                      basis="emergency", note=NOTE)["referral_id"]
    court102 = _send(api, "chair102", household_id="hh-ref-read-102", agency="court",
                     basis="legal_duty", note="court-note")["referral_id"]
    police103 = _send(api, "chair103", household_id="hh-ref-read-103", agency="police",
                      basis="emergency", note="note-103")["referral_id"]
    police = _rows(api, "police102")
    assert police102 in police and court102 not in police and police103 not in police
    assert all(r["agency"] == "police" and r["org_unit"].startswith("230102")
               for r in police.values())
    assert police[police102]["note"] == NOTE  # unsealed for the partner
    assert police[police102]["household_id"] == "hh-ref-read-102"
    court = _rows(api, "court102")
    assert court102 in court and police102 not in court
    assert court[court102]["note"] == "court-note"
    city = _rows(api, "police-city")
    assert {police102, police103} <= set(city) and court102 not in city
    assert city[police103]["note"] == "note-103"
    # chairs: their scope, every agency, never a note
    response = api.call("GET", "/v1/referrals", "chair102")
    assert NOTE not in response.text and "court-note" not in response.text
    chair = {r["referral_id"]: r for r in response.json()["rows"]}
    assert {police102, court102} <= set(chair) and police103 not in chair
    assert all("note" not in r for r in chair.values())
    assert police103 in _rows(api, "admin") and police103 not in _rows(api, "chair-street")
    # the partner's reads are audited with whether notes were shown
    audited = api.sql("users.sqlite3", "SELECT detail FROM audit WHERE user = 'police102' "
                      "AND action = 'referrals.list'")
    assert audited and '"notes":true' in audited[-1][0]
    for user in ("cadre102", "analyst"):
        assert api.call("GET", "/v1/referrals", user).status_code == 403


def test_paging_and_filters(api: Api) -> None:
    _household(api, "hh-ref-page")
    for _ in range(3):
        _send(api, "chair102", household_id="hh-ref-page", agency="health",
              basis="emergency")
    everything = api.call("GET", "/v1/referrals?status=sent", "chair102").json()
    assert everything["total"] >= 3 and all(r["status"] == "sent" for r in everything["rows"])
    page = api.call("GET", "/v1/referrals?status=sent&limit=2&offset=1", "chair102").json()
    assert page["count"] == 2 and page["rows"] == everything["rows"][1:3]
    assert page["next_offset"] == (3 if everything["total"] > 3 else None)
    for query in ("?status=lost", "?limit=0", "?offset=-1", "?as_of=yesterday"):
        assert api.call("GET", "/v1/referrals" + query, "chair102").status_code == 422, query
    past = api.call("GET", "/v1/referrals?as_of=2020-01-01T00:00:00%2B08:00", "chair102")
    assert past.status_code == 200 and past.json()["total"] == 0


def test_a_partner_accepts_then_closes(api: Api) -> None:
    _household(api, "hh-ref-accept")
    referral = _send(api, "chair102", household_id="hh-ref-accept", agency="police",
                     basis="emergency")["referral_id"]
    for user, code in (("court102", 404), ("chair102", 403), ("admin", 403),
                       ("cadre102", 403)):
        assert api.call("POST", f"/v1/referrals/{referral}/accept", user
                        ).status_code == code, user
    early = api.call("POST", f"/v1/referrals/{referral}/close", "police102",
                     json={"outcome": "service_provided"})
    assert early.status_code == 409
    assert early.json()["detail"] == ("referral is sent: only an accepted referral can be "
                                      "closed")
    accepted = api.call("POST", f"/v1/referrals/{referral}/accept", "police102")
    assert accepted.status_code == 200, accepted.text
    row = accepted.json()["referral"]
    assert row["status"] == "accepted" and row["answered_at"] is not None
    again = api.call("POST", f"/v1/referrals/{referral}/accept", "police-city")
    assert again.status_code == 409
    assert again.json()["detail"] == "referral already accepted: only a sent referral can be " \
                                     "accepted"
    declined = api.call("POST", f"/v1/referrals/{referral}/decline", "police102",
                        json={"reason": "too late"})
    assert declined.status_code == 409
    closed = api.call("POST", f"/v1/referrals/{referral}/close", "police102",
                      json={"outcome": "service_provided"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["referral"]["status"] == "closed"
    assert closed.json()["referral"]["outcome"] == "service_provided"
    twice = api.call("POST", f"/v1/referrals/{referral}/close", "police102",
                     json={"outcome": "no_service"})
    assert twice.status_code == 409
    assert _rows(api, "chair102")[referral]["status"] == "closed"


def test_a_partner_declines_with_a_sealed_reason(api: Api) -> None:
    _household(api, "hh-ref-decline")
    referral = _send(api, "chair102", household_id="hh-ref-decline", agency="civil_affairs",
                     basis="emergency")["referral_id"]
    api_user = "police102"  # another agency: 404, never 403 (it must not learn it exists)
    assert api.call("POST", f"/v1/referrals/{referral}/decline", api_user,
                    json={"reason": "x"}).status_code == 404
    assert api.call("POST", "/v1/referrals/no-such-referral/accept", api_user
                    ).status_code == 404


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "fbi",
                       "basis": "emergency"}, "agency"),
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "police"}, "basis"),
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "police",
                       "basis": "whim"}, "basis"),
    ("/v1/referrals", {"agency": "police", "basis": "emergency"}, "household_id"),
    ("/v1/referrals", {"household_id": "", "agency": "police", "basis": "emergency"},
     "household_id"),
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "police",
                       "basis": "emergency", "warning_id": ""}, "warning_id"),
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "police",
                       "basis": "emergency", "referral_id": "mine"}, "referral_id"),
    ("/v1/referrals", {"household_id": "hh-ref-bad", "agency": "police",
                       "basis": "emergency", "note": "x" * 20_001}, "note"),
])
def test_bad_referral_bodies_are_422(api: Api, path: str, body: Any, says: str) -> None:
    _household(api, "hh-ref-bad")
    response = api.call("POST", path, "chair102", json=body)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])


@pytest.mark.parametrize(("action", "body", "says"), [
    ("decline", {}, "reason"),
    ("decline", {"reason": ""}, "reason"),
    ("close", {}, "outcome"),
    ("close", {"outcome": "great"}, "outcome"),
    ("close", {"outcome": "no_service", "by": "someone"}, "by"),
])
def test_bad_answer_bodies_are_422(api: Api, action: str, body: Any, says: str) -> None:
    response = api.call("POST", f"/v1/referrals/any/{action}", "police102", json=body)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])


def test_the_live_stream_carries_on_past_referral_records(api: Api) -> None:
    """Referral records about no warning are not the inbox's: the stream skips them
    (and a referral sent about a warning shows as that warning's record, no note)."""
    _household(api, "hh-ref-sse")
    api.publish("admin", [event("230102001001", "hh-ref-sse-w")])
    warning = api.warning_for("hh-ref-sse-w")
    referral = _send(api, "chair102", household_id="hh-ref-sse", agency="police",
                     basis="emergency")["referral_id"]
    assert api.call("POST", f"/v1/referrals/{referral}/accept", "police102"
                    ).status_code == 200
    _send(api, "chair102", household_id="hh-ref-sse-w", agency="court", basis="legal_duty",
          warning_id=warning, note=NOTE)
    api.publish("admin", [event("230102001001", "hh-ref-sse-after")])
    got: list[dict[str, Any]] = []
    _read_events(api, "chair102", "?after=0", "hh-ref-sse-after", got, threading.Event())
    assert got[-1]["warning"]["household_id"] == "hh-ref-sse-after"
    mine = [g["record"]["type"] for g in got if g["warning"]["warning_id"] == warning]
    assert mine == ["warning.raised", "referral.sent"]
    assert not [g for g in got if g["record"].get("referral_id") == referral]
    assert all(NOTE not in json.dumps(g) for g in got)
