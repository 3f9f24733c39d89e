"""Ingest authorization by owner (DESIGN "Ingest"), over real HTTP on the embedded runtime.

A caller may write about a household only if their scope covers its current owner
(never seen: the event's ``org_unit``); city-level roles cover every household. A
refusal is 403 with the usual per-event body, and the event is kept as a dead letter.
"""

from __future__ import annotations

from typing import Any

from rules.ownership import NOT_OWNER_FORBIDDEN, OUTSIDE_FORBIDDEN
from tests.api.conftest import Api, event

OURS = "230102001001"  # a 道里区 community (cadre102, chair102)
THEIRS = "230103001001"  # a 南岗区 community (chair103)


def _post(api: Api, user: str, events: list[Any]) -> tuple[int, dict[str, Any]]:
    response = api.call("POST", "/v1/events", user, json=events)
    return response.status_code, dict(response.json())


def _warning_status(api: Api, warning_id: str) -> list[str]:
    return [t for (t,) in api.sql("log.sqlite3", "SELECT type FROM lifecycle WHERE "
                                  "warning_id = ? ORDER BY seq", warning_id)]


def _ledger_households(api: Api, user: str) -> set[str]:
    rows = api.call("GET", "/v1/ledgers/households", user).json()["rows"]
    return {r["household_id"] for r in rows}


def _dead_letter(api: Api, event_id: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in api.sql(   # type: ignore[misc]
        "log.sqlite3", "SELECT stage, source, reason FROM dead_letters WHERE event_id = ?",
        event_id)]


def test_a_cadre_cannot_close_another_districts_household(api: Api) -> None:
    """The attack: case.resolved for a 230103 household, claiming a 230102 community."""
    api.publish("chair103", [event(THEIRS, "hh-own-103")])  # red warning, 南岗区
    warning_id = api.warning_for("hh-own-103")
    assert _warning_status(api, warning_id) == ["warning.raised"]

    attack = event(OURS, "hh-own-103", "case.resolved", {"resolution": "resolved_locally"})
    status, body = _post(api, "cadre102", [attack])
    assert status == 403, body
    assert body["results"] == [{"index": 0, "event_id": attack["event_id"],
                                "status": "rejected", "reason": NOT_OWNER_FORBIDDEN}]
    assert (body["received"], body["accepted"], body["duplicate"], body["rejected"]) \
        == (1, 0, 0, 1)
    assert "230103" not in body["detail"]  # the owner is not disclosed
    assert _dead_letter(api, attack["event_id"]) == [
        ("ingest", "http:cadre102", NOT_OWNER_FORBIDDEN)]
    assert not api.sql("log.sqlite3", "SELECT 1 FROM events WHERE event_id = ?",
                       attack["event_id"])

    # …and the follow-up visit that used to move the household is refused too
    visit = event(OURS, "hh-own-103", "screening.visit_recorded",
                  {"indicators": [], "notes": ""})
    assert _post(api, "cadre102", [visit])[0] == 403
    assert _warning_status(api, warning_id) == ["warning.raised"]  # still open
    assert "hh-own-103" in _ledger_households(api, "chair103")
    assert "hh-own-103" not in _ledger_households(api, "chair102")
    assert api.sql("log.sqlite3", "SELECT owner FROM household_owner WHERE household_id = ?",
                   "hh-own-103") == [(THEIRS,)]


def test_the_owner_side_and_a_city_admin_may_write(api: Api) -> None:
    api.publish("chair103", [event(THEIRS, "hh-own-city")])
    warning_id = api.warning_for("hh-own-city")
    # the owner's own district, whatever community the event names
    ok = event(THEIRS, "hh-own-city", "followup.recorded", {"action": "phone_call"})
    assert api.publish("chair103", [ok])["accepted"] == 1
    close = event(THEIRS, "hh-own-city", "case.resolved", {"resolution": "resolved_locally"})
    assert api.publish("admin", [close])["accepted"] == 1
    assert _warning_status(api, warning_id)[-1] == "warning.resolved"


def test_a_never_seen_household_is_judged_by_its_org_unit(api: Api) -> None:
    outside = event(THEIRS, "hh-own-new-out")
    inside = event(OURS, "hh-own-new-in", "followup.recorded", {"action": "phone_call"})
    status, body = _post(api, "cadre102", [inside, outside])
    assert status == 403
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [
        ("accepted", None), ("rejected", OUTSIDE_FORBIDDEN)]
    assert _dead_letter(api, outside["event_id"]) == [
        ("ingest", "http:cadre102", OUTSIDE_FORBIDDEN)]
    # now seen and owned by 230102: the owner decides, not the org_unit the event claims
    elsewhere = event(THEIRS, "hh-own-new-in", "followup.recorded", {"action": "home_visit"})
    assert api.publish("cadre102", [elsewhere])["accepted"] == 1
    assert _post(api, "chair103", [event(THEIRS, "hh-own-new-in")])[0] == 403


def test_a_batch_is_judged_in_order(api: Api) -> None:
    """A first event places the household; the next one in the same batch is judged by it."""
    first = event(OURS, "hh-own-batch", "followup.recorded", {"action": "phone_call"})
    second = event(THEIRS, "hh-own-batch", "followup.recorded", {"action": "home_visit"})
    status, body = _post(api, "chair103", [first, second])
    assert status == 403
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [
        ("rejected", OUTSIDE_FORBIDDEN), ("accepted", None)]
    assert api.sql("log.sqlite3", "SELECT owner FROM household_owner WHERE household_id = ?",
                   "hh-own-batch") == [(THEIRS,)]


def test_an_allowed_batch_is_still_200(api: Api) -> None:
    body = api.publish("cadre102", [event(OURS, "hh-own-200", "followup.recorded",
                                          {"action": "phone_call"})])
    assert "detail" not in body


def test_a_transfer_hands_the_household_over(api: Api) -> None:
    """Only the owner's side may move a household; afterwards the new side owns it."""
    register = event(OURS, "hh-own-move", "household.registered",
                     {"flags": ["rural"], "notes": ""})
    api.publish("cadre102", [register])
    elsewhere = event(THEIRS, "hh-own-move", "household.registered", {"flags": [], "notes": ""})
    assert _post(api, "chair103", [elsewhere])[1]["results"][0]["reason"] \
        == NOT_OWNER_FORBIDDEN
    move = event(OURS, "hh-own-move", "household.transferred",
                 {"to_org_unit": THEIRS, "reason": "moved"})
    visit = event(OURS, "hh-own-move", "followup.recorded", {"action": "home_visit"})
    status, body = _post(api, "cadre102", [move, visit])  # one batch, judged in order
    assert status == 403
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [
        ("accepted", None), ("rejected", NOT_OWNER_FORBIDDEN)]
    assert api.sql("log.sqlite3", "SELECT owner, registered FROM household_owner "
                   "WHERE household_id = 'hh-own-move'") == [(THEIRS, 1)]
    assert api.publish("chair103", [event(THEIRS, "hh-own-move", "followup.recorded",
                                          {"action": "phone_call"})])["accepted"] == 1


def test_commands_on_warnings_follow_the_owner(api: Api) -> None:
    """A warning raised while the household was ours: once it belongs to 南岗区, 道里区 can
    no longer act on it (a command is an event about the household too)."""
    api.publish("chair102", [event(OURS, "hh-own-cmd")])
    warning_id = api.warning_for("hh-own-cmd")
    api.publish("cadre102", [event(OURS, "hh-own-cmd", "household.transferred",
                                   {"to_org_unit": THEIRS, "reason": "administrative"})])
    response = api.call("POST", f"/v1/alerts/{warning_id}/resolve", "chair102", json={})
    assert response.status_code in (403, 404), response.text
    if response.status_code == 403:
        assert response.json()["detail"] == NOT_OWNER_FORBIDDEN
        assert api.sql("log.sqlite3", "SELECT reason FROM dead_letters WHERE source = "
                       "'http:chair102' AND household_id = 'hh-own-cmd'") \
            == [(NOT_OWNER_FORBIDDEN,)]
    assert "warning.resolved" not in _warning_status(api, warning_id)
