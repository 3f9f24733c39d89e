"""``GET /v1/worklist``: a cadre's day of work, in her scope, with no free text.

Three sections: registered households overdue or due for a visit within 7 days
(key households first), unresolved warnings assigned to her, and guardianship
gaps nobody has followed up yet. A real API server on its own home.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import Api, event, serve_api

MINE, NEIGHBOUR = "230102001001", "230102002001"
USERS = {
    "cadre-a": ("cadre", MINE),
    "cadre-b": ("cadre", NEIGHBOUR),
    "chair102": ("chair", "230102000000"),
    "analyst": ("analyst", "230100000000"),
}
SECRET = "左手腕有新伤，称摔倒"  # a note: it must never come back in a work list
GAP = {"child_ref": "c-wl", "reason": "parents_migrant_workers"}
VISIT = {"indicators": ["economic_hardship"], "notes": SECRET}


def registered(org: str, household: str, flags: list[str], days_ago: float) -> dict[str, Any]:
    return event(org, household, "household.registered", {"flags": flags, "notes": SECRET},
                 hours_ago=24 * days_ago)


@pytest.fixture(scope="module")
def wl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("worklist-home"), USERS, ("--tick", "0")) as api:
        yield api


def worklist(api: Api, user: str = "cadre-a", **params: Any) -> dict[str, Any]:
    response = api.call("GET", "/v1/worklist", user, params=params)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    return dict(response.json())


def test_only_field_roles_with_a_token(wl: Api) -> None:
    assert wl.call("GET", "/v1/worklist").status_code == 401
    assert wl.call("GET", "/v1/worklist", "analyst").status_code == 403
    assert wl.call("GET", "/v1/worklist", "cadre-a", params={"limit": 0}).status_code == 422
    assert wl.call("GET", "/v1/worklist", "cadre-a", params={"limit": 1001}).status_code == 422
    empty = worklist(wl, "cadre-b")
    assert empty["user"] == {"name": "cadre-b", "role": "cadre", "org_unit": NEIGHBOUR}
    assert empty["horizon_days"] == 7
    for section in ("visits", "warnings", "guardianship"):
        assert empty[section] == {"total": 0, "rows": []}


def test_guardianship_gaps_awaiting_follow_up(wl: Api) -> None:
    wl.publish("cadre-a", [
        event(MINE, "hh-wl-gap-old", "child.guardianship_gap_recorded", GAP, hours_ago=24 * 10),
        event(MINE, "hh-wl-gap-new", "child.guardianship_gap_recorded", GAP, hours_ago=24 * 2),
        event(MINE, "hh-wl-gap-seen", "child.guardianship_gap_recorded", GAP, hours_ago=24 * 3),
        event(MINE, "hh-wl-gap-seen", "followup.recorded", {"action": "home_visit"},
              hours_ago=24 * 1),
        event(MINE, "hh-wl-gap-back", "child.guardianship_gap_recorded", GAP, hours_ago=24 * 4),
        event(MINE, "hh-wl-gap-back", "child.guardianship_restored", {"child_ref": "c-wl"},
              hours_ago=24 * 2),
    ])
    wl.publish("cadre-b", [event(NEIGHBOUR, "hh-wl-gap-other",
                                 "child.guardianship_gap_recorded", GAP, hours_ago=24 * 9)])
    rows = worklist(wl)["guardianship"]["rows"]
    assert [(r["household_id"], r["overdue"]) for r in rows] == [
        ("hh-wl-gap-old", True), ("hh-wl-gap-new", False)]  # earliest due first
    old = rows[0]
    assert old["child_ref"] == "c-wl" and old["org_unit"] == MINE
    due = datetime.fromisoformat(old["followup_due"]) - datetime.fromisoformat(
        old["gap_recorded_at"])
    assert due == timedelta(days=7)
    assert "reason" not in old
    # the neighbour sees only hers
    other = worklist(wl, "cadre-b")["guardianship"]["rows"]
    assert [r["household_id"] for r in other] == ["hh-wl-gap-other"]
    # the chair of the district sees both communities'
    chair = {r["household_id"] for r in worklist(wl, "chair102")["guardianship"]["rows"]}
    assert chair == {"hh-wl-gap-old", "hh-wl-gap-new", "hh-wl-gap-other"}


def test_warnings_assigned_to_the_caller(wl: Api) -> None:
    wl.publish("cadre-a", [event(MINE, "hh-wl-red-1"), event(MINE, "hh-wl-red-2"),
                           event(MINE, "hh-wl-red-3")])
    first, second, third = (wl.warning_for(f"hh-wl-red-{n}") for n in (1, 2, 3))
    for warning, assignee in ((first, "cadre-a"), (second, "cadre-a"), (third, "chair102")):
        response = wl.call("POST", f"/v1/alerts/{warning}/assign", "chair102",
                           json={"assignee": assignee})
        assert response.status_code == 200, response.text
    section = worklist(wl)["warnings"]
    assert section["total"] == 2
    assert {r["warning_id"] for r in section["rows"]} == {first, second}
    assert {r["rule_id"] for r in section["rows"]} == {"violence-injury"}
    assert all(r["status"] == "open" and r["level"] == "red" for r in section["rows"])
    # acknowledged stays on the list, resolved leaves it
    assert wl.call("POST", f"/v1/alerts/{first}/acknowledge", "chair102").status_code == 200
    assert wl.call("POST", f"/v1/alerts/{second}/resolve", "chair102",
                   json={"note": SECRET}).status_code == 200
    rows = worklist(wl)["warnings"]["rows"]
    assert [(r["warning_id"], r["status"]) for r in rows] == [(first, "acknowledged")]
    assert worklist(wl, "cadre-b")["warnings"]["rows"] == []
    assert worklist(wl, "chair102")["warnings"]["rows"][0]["warning_id"] == third


def test_limit_cuts_each_section_and_keeps_the_total(wl: Api) -> None:
    whole = worklist(wl)
    assert whole["guardianship"]["total"] == 2
    cut = worklist(wl, limit=1)
    assert cut["limit"] == 1
    assert cut["guardianship"]["total"] == 2
    assert cut["guardianship"]["rows"] == whole["guardianship"]["rows"][:1]


def test_reads_are_audited(wl: Api) -> None:
    worklist(wl, "cadre-b", limit=5)
    rows = wl.sql("users.sqlite3",
                  "SELECT user, action, detail FROM audit WHERE action = 'worklist'")
    assert ("cadre-b", "worklist", '{"limit":5}') in rows


def test_visits_due_key_households_first(wl: Api) -> None:
    """Needs ``household.registered`` in the catalog and the household ledger's v2 columns:
    C = 30 days for key households, 180 days for the others."""
    wl.publish("cadre-a", [
        registered(MINE, "hh-wl-key-due", ["key_household"], days_ago=27),  # due in 3 d
        registered(MINE, "hh-wl-key-late", ["key_household", "rural"], days_ago=45),  # overdue
        registered(MINE, "hh-wl-plain-late", [], days_ago=200),  # overdue by 20 d
        registered(MINE, "hh-wl-plain-soon", ["elderly_alone"], days_ago=175),  # due in 5 d
        registered(MINE, "hh-wl-plain-later", [], days_ago=20),  # due in 160 d
        registered(MINE, "hh-wl-key-visited", ["key_household"], days_ago=40),
        event(MINE, "hh-wl-key-visited", "screening.visit_recorded", VISIT, hours_ago=24 * 5),
        event(MINE, "hh-wl-unregistered", "screening.visit_recorded", VISIT,
              hours_ago=24 * 400),
    ])
    wl.publish("cadre-b", [registered(NEIGHBOUR, "hh-wl-other-late", [], days_ago=300)])
    section = worklist(wl)["visits"]
    assert [(r["household_id"], r["key_household"], r["visit_overdue"])
            for r in section["rows"]] == [
        ("hh-wl-key-late", True, True),
        ("hh-wl-key-due", True, False),
        ("hh-wl-plain-late", False, True),
        ("hh-wl-plain-soon", False, False),
    ]
    assert section["total"] == 4
    late = section["rows"][0]
    assert late["flags"] == ["key_household", "rural"] and late["org_unit"] == MINE
    registered_at = datetime.now(UTC) - timedelta(days=45)
    due = datetime.fromisoformat(late["next_visit_due"])
    assert abs(due - (registered_at + timedelta(days=30))) < timedelta(minutes=10)
    assert [r["household_id"] for r in worklist(wl, "cadre-b")["visits"]["rows"]] == [
        "hh-wl-other-late"]
