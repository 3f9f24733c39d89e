"""The authorization matrix: every endpoint × role × in-scope / out-of-scope org unit.

A chair of 道里区 (230102) must never read or act on 南岗区 (230103): she gets
403 or 404, and no response to her ever contains a 230103 warning or household.
A partner agency (police of 道里区) may read and answer its referrals and keep its
own subscriptions; every other endpoint is 403 to it, and nothing it gets names a
warning.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, event

ENDPOINTS = [
    ("GET", "/v1/alerts"),
    ("GET", "/v1/ledgers/warnings"),
    ("GET", "/v1/ledgers/households"),
    ("GET", "/v1/ledgers/guardianship"),
    ("GET", "/v1/kpis"),
    ("GET", "/v1/subscriptions"),
    ("GET", "/v1/worklist"),
    ("POST", "/v1/events"),
    ("POST", "/v1/subscriptions"),
    ("POST", "/v1/alerts/{w}/acknowledge"),
    ("POST", "/v1/alerts/{w}/resolve"),
    ("POST", "/v1/alerts/{w}/assign"),
    ("GET", "/v1/subscriptions/{s}/dead-letters"),
    ("POST", "/v1/subscriptions/{s}/redeliver"),
    ("DELETE", "/v1/subscriptions/{s}"),
    ("POST", "/v1/alerts/{w}/assess"),
    ("POST", "/v1/alerts/{w}/reopen"),
    ("GET", "/v1/alerts/{w}/history"),
    ("GET", "/v1/ledgers/coverage"),
    ("GET", "/v1/ledgers/referrals"),
    ("GET", "/v1/referrals"),
    ("POST", "/v1/referrals"),
    ("POST", "/v1/referrals/{r}/accept"),
    ("POST", "/v1/referrals/{r}/decline"),
    ("POST", "/v1/referrals/{r}/close"),
    ("GET", "/v1/households/{h}/consent"),
    ("POST", "/v1/households/{h}/consent"),
]


@pytest.fixture(scope="module")
def world(api: Api) -> dict[str, Any]:
    """One red warning and one guardianship gap in each district, one subscription each."""
    gap = {"child_ref": "c-1", "reason": "parents_absent"}
    api.publish("admin", [
        event("230102001001", "hh-m-102"), event("230103001001", "hh-m-103"),
        event("230102001001", "hh-g-102", "child.guardianship_gap_recorded", gap),
        event("230103001001", "hh-g-103", "child.guardianship_gap_recorded", gap),
    ])
    subs = {}
    for chair, org in (("chair102", "230102000000"), ("chair103", "230103000000")):
        response = api.call("POST", "/v1/subscriptions", chair, json={
            "org_unit": org, "url": "http://127.0.0.1:9/none", "secret": "s" * 16})
        assert response.status_code == 201, response.text
        subs[chair] = response.json()["id"]
    referrals = {}
    for chair, tag in (("chair102", "102"), ("chair103", "103")):
        api.publish("admin", [event(f"230{tag}001001", f"hh-r-{tag}", "followup.recorded",
                                    {"action": "home_visit"})])
        response = api.call("POST", "/v1/referrals", chair, json={
            "household_id": f"hh-r-{tag}", "agency": "police", "basis": "emergency"})
        assert response.status_code == 200, response.text
        referrals[tag] = response.json()["referral_id"]
    return {"w102": api.warning_for("hh-m-102"), "w103": api.warning_for("hh-m-103"),
            "s102": subs["chair102"], "s103": subs["chair103"],
            "r102": referrals["102"], "r103": referrals["103"]}


def _request(api: Api, world: dict[str, Any], method: str, path: str, user: str | None,
             own: bool) -> Any:
    """Call an endpoint as chair102 would on her own (own) or on 230103's objects."""
    tag = "102" if own else "103"
    path = path.format(w=world["w" + tag], s=world["s" + tag], r=world["r" + tag],
                       h=f"hh-r-{tag}")
    kw: dict[str, Any] = {}
    if path == "/v1/events":
        kw["json"] = [event(f"230{tag}001001", f"hh-matrix-{tag}", "followup.recorded",
                            {"action": "phone_call"})]
    elif path == "/v1/subscriptions" and method == "POST":
        kw["json"] = {"org_unit": f"230{tag}000000", "url": "http://127.0.0.1:9/x",
                      "secret": "s" * 16}
    elif path.endswith("/resolve"):
        kw["json"] = {"note": "matrix"}
    elif path.endswith("/assign"):
        kw["json"] = {"assignee": "chair102"}
    elif path.endswith("/assess"):
        kw["json"] = {"risk": "low"}
    elif path.endswith(("/reopen", "/decline")):
        kw["json"] = {"reason": "matrix"}
    elif path.endswith("/close"):
        kw["json"] = {"outcome": "no_service"}
    elif path == "/v1/referrals" and method == "POST":
        kw["json"] = {"household_id": f"hh-r-{tag}", "agency": "court", "basis": "emergency"}
    elif path.endswith("/consent") and method == "POST":
        kw["json"] = {"action": "record", "agencies": ["police"]}
    return api.call(method, path, user, **kw)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401(api: Api, world: dict[str, Any], method: str, path: str) -> None:
    assert _request(api, world, method, path, None, own=True).status_code == 401
    bad = api.client.request(method, api.url + path.format(w="x", s="x", r="x", h="x"),
                             headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


ROLE_ALLOWED = {
    "cadre102": {"/v1/events", "/v1/alerts/{w}/assign", "/v1/worklist"},
    "analyst": {"/v1/kpis"},
    # its referrals (200, or 409 once answered: authorised either way), its subscriptions
    "police102": {"/v1/referrals", "/v1/subscriptions", "/v1/referrals/{r}/accept",
                  "/v1/referrals/{r}/decline", "/v1/referrals/{r}/close"},
}
#: a partner passes the role check on these, but chair102's subscription is not its own
PARTNER_NOT_OWN = {"/v1/subscriptions/{s}/dead-letters", "/v1/subscriptions/{s}/redeliver",
                   "/v1/subscriptions/{s}"}


@pytest.mark.parametrize("user", ["cadre102", "analyst", "police102"])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_roles(api: Api, world: dict[str, Any], user: str, method: str, path: str) -> None:
    response = _request(api, world, method, path, user, own=True)
    if user == "police102" and path == "/v1/referrals" and method == "POST":
        assert response.status_code == 403, response.text  # sending is a chair's
    elif path in ROLE_ALLOWED[user]:
        assert response.status_code in (200, 201, 409), response.text
    elif user == "police102" and path in PARTNER_NOT_OWN:
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 403, response.text
    assert "hh-m-" not in response.text and world["w102"] not in response.text


def test_a_partner_never_reaches_another_agency_or_scope(api: Api, world: dict[str, Any]
                                                          ) -> None:
    """police102's referral list holds 230102's police referrals only; a 230103 referral
    (or another agency's) is 404 to every answer; court sees none of police's."""
    rows = api.call("GET", "/v1/referrals", "police102").json()["rows"]
    assert world["r102"] in {r["referral_id"] for r in rows}
    assert all(r["agency"] == "police" and r["org_unit"].startswith("230102") for r in rows)
    for action, body in (("accept", None), ("decline", {"reason": "x"}),
                         ("close", {"outcome": "withdrawn"})):
        for user in ("police102", "court102"):
            answer = api.call("POST", f"/v1/referrals/{world['r103']}/{action}", user,
                              json=body)
            assert answer.status_code == 404, (user, action, answer.text)
        other = api.call("POST", f"/v1/referrals/{world['r102']}/{action}", "court102",
                         json=body)
        assert other.status_code == 404, (action, other.text)
    court = api.call("GET", "/v1/referrals", "court102").text
    assert world["r102"] not in court and world["r103"] not in court


# Out of scope: reads are filtered (200 without data), writes and single items 403/404.
OUT_OF_SCOPE = {
    "/v1/events": 403,  # per-event rejection, checked below
    "/v1/subscriptions": 403,  # POST
    "/v1/referrals": 404,  # POST: a household outside her scope is "no such household"
    "/v1/alerts/{w}/assess": 404,
    "/v1/alerts/{w}/reopen": 404,
    "/v1/referrals/{r}/accept": 403,  # a partner's command, whatever the scope
    "/v1/referrals/{r}/decline": 403,
    "/v1/referrals/{r}/close": 403,
    "/v1/households/{h}/consent": 404,  # GET and POST
    "/v1/alerts/{w}/history": 404,
    "/v1/alerts/{w}/acknowledge": 404,
    "/v1/alerts/{w}/resolve": 404,
    "/v1/alerts/{w}/assign": 404,
    "/v1/subscriptions/{s}/dead-letters": 404,
    "/v1/subscriptions/{s}/redeliver": 404,
    "/v1/subscriptions/{s}": 404,
}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_chair_never_sees_or_acts_outside(api: Api, world: dict[str, Any], method: str,
                                          path: str) -> None:
    response = _request(api, world, method, path, "chair102", own=False)
    expected = OUT_OF_SCOPE.get(path, 200) if method != "GET" or "{" in path else 200
    assert response.status_code == expected, response.text
    for secret in (world["w103"], world["s103"], world["r103"], "hh-m-103", "hh-g-103",
                   "hh-r-103", "230103"):
        assert secret not in response.text, (path, secret)
    if path == "/v1/events":
        assert response.json()["results"][0]["reason"] == "org_unit: outside your org unit"
    # chair103's objects are untouched
    assert api.call("GET", "/v1/subscriptions", "chair103").json()["count"] >= 1


def test_out_of_scope_district_filter_is_403(api: Api, world: dict[str, Any]) -> None:
    for path in ("/v1/alerts", "/v1/ledgers/warnings", "/v1/ledgers/households"):
        assert api.call("GET", path + "?district=230103", "chair102").status_code == 403
        assert api.call("GET", path + "?district=230102", "chair102").status_code == 200
        assert api.call("GET", path + "?district=abc", "chair102").status_code == 422


def test_in_scope_reads(api: Api, world: dict[str, Any]) -> None:
    for name in ("warnings", "households", "guardianship"):
        mine = api.call("GET", f"/v1/ledgers/{name}", "chair102").json()["rows"]
        assert mine and all(r["org_unit"].startswith("230102") for r in mine)
        everything = api.call("GET", f"/v1/ledgers/{name}", "admin").json()["rows"]
        assert {r["org_unit"][:6] for r in everything} >= {"230102", "230103"}
    alerts = api.call("GET", "/v1/alerts?status=open&level=red", "chair102").json()["alerts"]
    assert world["w102"] in {a["warning_id"] for a in alerts}
    assert api.call("GET", "/v1/alerts?level=purple", "chair102").status_code == 422


def test_unknown_warning_is_404(api: Api, world: dict[str, Any]) -> None:
    for user in ("chair102", "admin"):
        response = api.call("POST", "/v1/alerts/w-ffffffffffffffff/acknowledge", user)
        assert response.status_code == 404


def test_kpis_are_aggregates(api: Api, world: dict[str, Any]) -> None:
    for user in ("analyst", "chair102", "admin"):
        response = api.call("GET", "/v1/kpis", user)
        assert response.status_code == 200
        assert "hh-" not in response.text and "w-" not in response.text
    scoped = api.call("GET", "/v1/kpis", "chair102").json()
    city = api.call("GET", "/v1/kpis", "analyst").json()
    assert 0 < scoped["warnings"] < city["warnings"]
    assert set(scoped["weekly_raised_by_district"]) == {"230102000000"}
    assert {"230102000000", "230103000000"} <= set(city["weekly_raised_by_district"])
    assert api.call("GET", "/v1/kpis?as_of=yesterday", "analyst").status_code == 422
