"""A chair's commands after an alert over HTTP (embedded runtime): assess (研判), reopen,
a warning's history, and consent. Each becomes one event; a command the contract refuses
answers 409 with the reason and records nothing; a body that is not one answers 422."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, event

COMMUNITY = "230102001001"


def _raise(api: Api, household: str, hours_ago: float = 1.0) -> str:
    """A red warning (a sexual-assault petition) for a household of 230102001001."""
    api.publish("admin", [event(COMMUNITY, household, hours_ago=hours_ago)])
    return api.warning_for(household)


def _records(api: Api, warning_id: str) -> list[str]:
    return [t for (t,) in api.sql("log.sqlite3", "SELECT type FROM lifecycle "
                                  "WHERE warning_id = ? ORDER BY seq", warning_id)]


def _events(api: Api, household: str) -> int:
    return int(api.sql("log.sqlite3", "SELECT count(*) FROM events WHERE household_id = ?",
                       household)[0][0])


def test_assess_acknowledges_first_then_records_the_risk(api: Api) -> None:
    warning = _raise(api, "hh-assess-1")
    response = api.call("POST", f"/v1/alerts/{warning}/assess", "chair102",
                        json={"risk": "high", "note": "邻居-assessment-note-91c2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event_id"] and body["warning"]["risk"] == "high"
    assert body["warning"]["status"] == "acknowledged"
    assert _records(api, warning) == ["warning.raised", "warning.acknowledged",
                                      "warning.assessed"]
    # the note is personal: sealed in the log, never in the answer
    assert "assessment-note-91c2" not in response.text
    bodies = api.sql("log.sqlite3", "SELECT body FROM events WHERE household_id = ?",
                     "hh-assess-1")
    assert not any(b"assessment-note-91c2" in bytes(b) for (b,) in bodies)
    again = api.call("POST", f"/v1/alerts/{warning}/assess", "admin", json={"risk": "high"})
    assert again.status_code == 409, again.text
    assert again.json()["detail"] == "assessment unchanged: the warning's risk is already high"
    lower = api.call("POST", f"/v1/alerts/{warning}/assess", "chair102",
                     json={"risk": "medium"})
    assert lower.status_code == 200, lower.text
    assert lower.json()["warning"]["risk"] == "medium"
    assert _records(api, warning)[-1] == "warning.assessed"
    assert _records(api, warning).count("warning.acknowledged") == 1


def test_assess_refusals(api: Api) -> None:
    warning = _raise(api, "hh-assess-2")
    assert api.call("POST", f"/v1/alerts/{warning}/resolve", "chair102",
                    json={"note": "done"}).status_code == 200
    before = _events(api, "hh-assess-2")
    resolved = api.call("POST", f"/v1/alerts/{warning}/assess", "chair102",
                        json={"risk": "low"})
    assert resolved.status_code == 409
    assert resolved.json()["detail"] == "warning is resolved: reopen it before assessing it"
    assert _events(api, "hh-assess-2") == before  # nothing recorded
    for user, code in (("chair103", 404), ("cadre102", 403), ("analyst", 403),
                       ("police102", 403)):
        answer = api.call("POST", f"/v1/alerts/{warning}/assess", user, json={"risk": "low"})
        assert answer.status_code == code, (user, answer.text)
    unknown = api.call("POST", "/v1/alerts/w-ffffffffffffffff/assess", "admin",
                       json={"risk": "low"})
    assert unknown.status_code == 404


def test_reopen_a_resolved_warning(api: Api) -> None:
    warning = _raise(api, "hh-reopen-1")
    assert api.call("POST", f"/v1/alerts/{warning}/assess", "chair102",
                    json={"risk": "high"}).status_code == 200
    open_ = api.call("POST", f"/v1/alerts/{warning}/reopen", "chair102",
                     json={"reason": "still at risk"})
    assert open_.status_code == 409, open_.text
    assert open_.json()["detail"] == ("warning is acknowledged: only a resolved warning can "
                                      "be reopened")
    assert api.call("POST", f"/v1/alerts/{warning}/resolve", "chair102",
                    json={"note": "calm"}).status_code == 200
    response = api.call("POST", f"/v1/alerts/{warning}/reopen", "chair102",
                        json={"reason": "他又回来了-reopen-reason-5e1"})
    assert response.status_code == 200, response.text
    row = response.json()["warning"]
    assert row["status"] == "open" and row["reopened"] == 1
    assert row["handling_level"] == "community" and row["handling_org_unit"] == COMMUNITY
    assert row["risk"] == "high"  # a reopening keeps the last assessment
    assert _records(api, warning)[-1] == "warning.reopened"
    assert "reopen-reason-5e1" not in response.text
    # same risk as before the reopening: unchanged
    same = api.call("POST", f"/v1/alerts/{warning}/assess", "chair102", json={"risk": "high"})
    assert same.status_code == 409


def test_reopen_more_than_30_days_after_resolution_is_refused(api: Api) -> None:
    household = "hh-reopen-late"
    warning = _raise(api, household, hours_ago=41 * 24)
    api.publish("admin", [event(COMMUNITY, household, "case.resolved",
                                {"resolution": "resolved_locally"}, hours_ago=40 * 24)])
    response = api.call("POST", f"/v1/alerts/{warning}/reopen", "admin",
                        json={"reason": "again"})
    assert response.status_code == 409, response.text
    assert response.json()["detail"].startswith("too late to reopen: the warning was resolved")


def test_reopen_while_another_warning_of_the_rule_is_open_is_refused(api: Api) -> None:
    household = "hh-reopen-twice"
    first = _raise(api, household, hours_ago=72)
    api.publish("admin", [event(COMMUNITY, household, "case.resolved",
                                {"resolution": "resolved_locally"}, hours_ago=48),
                          event(COMMUNITY, household, hours_ago=24)])
    raised = api.sql("log.sqlite3", "SELECT warning_id FROM lifecycle WHERE household_id = ? "
                     "AND type = 'warning.raised' ORDER BY seq", household)
    assert len(raised) == 2 and raised[0][0] == first
    response = api.call("POST", f"/v1/alerts/{first}/reopen", "chair102",
                        json={"reason": "again"})
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == ("another warning of rule violence-injury is open for "
                                         "this household: act on that one")


def test_history_is_the_warnings_timeline_with_its_referrals(api: Api) -> None:
    household = "hh-history"
    warning = _raise(api, household)
    assert api.call("POST", f"/v1/alerts/{warning}/assess", "chair102",
                    json={"risk": "medium"}).status_code == 200
    sent = api.call("POST", "/v1/referrals", "chair102", json={
        "household_id": household, "agency": "police", "basis": "emergency",
        "warning_id": warning, "note": "history-note-77"})
    assert sent.status_code == 200, sent.text
    response = api.call("GET", f"/v1/alerts/{warning}/history", "chair102")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warning"]["warning_id"] == warning and body["warning"]["risk"] == "medium"
    assert [r["type"] for r in body["history"]] == [
        "warning.raised", "warning.acknowledged", "warning.assessed", "referral.sent"]
    assert body["history"][2]["risk"] == "medium"
    assert body["history"][3]["referral_id"] == sent.json()["referral_id"]
    assert "history-note-77" not in response.text  # a chair never reads a referral's note
    assert api.call("GET", f"/v1/alerts/{warning}/history", "chair103").status_code == 404
    assert api.call("GET", f"/v1/alerts/{warning}/history", "police102").status_code == 403
    assert api.call("GET", "/v1/alerts/w-ffffffffffffffff/history", "admin").status_code == 404


def test_consent_is_recorded_and_withdrawn_per_agency(api: Api) -> None:
    household = "hh-consent"
    api.publish("cadre102", [event(COMMUNITY, household, "followup.recorded",
                                   {"action": "phone_call"})])
    path = f"/v1/households/{household}/consent"
    assert api.call("GET", path, "chair102").json() == {"household_id": household,
                                                        "agencies": []}
    recorded = api.call("POST", path, "chair102",
                        json={"action": "record", "agencies": ["police", "court"]})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["agencies"] == ["court", "police"]
    withdrawn = api.call("POST", path, "admin",
                         json={"action": "withdraw", "agencies": ["court"]})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["agencies"] == ["police"]
    assert api.call("GET", path, "chair-street").json()["agencies"] == ["police"]
    for user, code in (("chair103", 404), ("cadre102", 403), ("police102", 403)):
        assert api.call("GET", path, user).status_code == code, user
        assert api.call("POST", path, user, json={"action": "record", "agencies": ["police"]}
                        ).status_code == code, user
    assert api.call("GET", "/v1/households/hh-never-seen/consent", "admin").status_code == 404


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/v1/alerts/{w}/assess", {"risk": "extreme"}, "risk"),
    ("/v1/alerts/{w}/assess", {}, "risk"),
    ("/v1/alerts/{w}/assess", {"risk": "low", "riks": "high"}, "riks"),
    ("/v1/alerts/{w}/assess", {"risk": "low", "note": "x" * 20_001}, "note"),
    ("/v1/alerts/{w}/assess", ["low"], "body"),
    ("/v1/alerts/{w}/reopen", {}, "reason"),
    ("/v1/alerts/{w}/reopen", {"reason": ""}, "reason"),
    ("/v1/alerts/{w}/reopen", {"reason": 7}, "reason"),
    ("/v1/households/{h}/consent", {"action": "erase", "agencies": ["police"]}, "action"),
    ("/v1/households/{h}/consent", {"action": "record", "agencies": []}, "agencies"),
    ("/v1/households/{h}/consent", {"action": "record", "agencies": ["fbi"]}, "agencies"),
    ("/v1/households/{h}/consent", {"action": "record"}, "agencies"),
])
def test_bad_bodies_are_422_with_the_field(api: Api, path: str, body: Any, says: str
                                          ) -> None:
    warning = _raise(api, "hh-bad-bodies")
    url = path.format(w=warning, h="hh-bad-bodies")
    before = _events(api, "hh-bad-bodies")
    response = api.call("POST", url, "chair102", json=body)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])
    assert _events(api, "hh-bad-bodies") == before
    not_json = api.call("POST", url, "chair102", content=b"{risk",
                        headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422


def test_commands_are_not_ingested_as_events(api: Api) -> None:
    """Role-checked commands cannot be forged through POST /v1/events."""
    items = [
        event(COMMUNITY, "hh-forged", "referral.accepted", {"referral_id": "r-1", "by": "x"}),
        event(COMMUNITY, "hh-forged", "consent.recorded", {"agencies": ["police"], "by": "x"}),
        event(COMMUNITY, "hh-forged", "warning.assessed",
              {"warning_id": "w-1", "by": "x", "risk": "low"}),
    ]
    body = api.publish("admin", items, strict=False)
    assert body["rejected"] == 3, body
    reasons = [r["reason"] for r in body["results"]]
    assert reasons[0].startswith("type: referrals go through /v1/referrals")
    assert reasons[1].startswith("type: consent goes through /v1/households/")
    assert reasons[2].startswith("type: warning commands go through")
