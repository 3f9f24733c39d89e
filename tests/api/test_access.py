"""The authorization matrix: every endpoint × role × in-scope / out-of-scope org unit.

A chair of 道里区 (230102) must never read or act on 南岗区 (230103): she gets
403 or 404, and no response to her ever contains a 230103 warning or household.
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
    return {"w102": api.warning_for("hh-m-102"), "w103": api.warning_for("hh-m-103"),
            "s102": subs["chair102"], "s103": subs["chair103"]}


def _request(api: Api, world: dict[str, Any], method: str, path: str, user: str | None,
             own: bool) -> Any:
    """Call an endpoint as chair102 would on her own (own) or on 230103's objects."""
    tag = "102" if own else "103"
    path = path.format(w=world["w" + tag], s=world["s" + tag])
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
    return api.call(method, path, user, **kw)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401(api: Api, world: dict[str, Any], method: str, path: str) -> None:
    assert _request(api, world, method, path, None, own=True).status_code == 401
    bad = api.client.request(method, api.url + path.format(w="x", s="x"),
                             headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


ROLE_ALLOWED = {
    "cadre102": {"/v1/events", "/v1/alerts/{w}/assign", "/v1/worklist"},
    "analyst": {"/v1/kpis"},
}


@pytest.mark.parametrize("user", ["cadre102", "analyst"])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_roles(api: Api, world: dict[str, Any], user: str, method: str, path: str) -> None:
    response = _request(api, world, method, path, user, own=True)
    if path in ROLE_ALLOWED[user]:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403, response.text
    assert "hh-m-" not in response.text and world["w102"] not in response.text


# Out of scope: reads are filtered (200 without data), writes and single items 403/404.
OUT_OF_SCOPE = {
    "/v1/events": 403,  # per-event rejection, checked below
    "/v1/subscriptions": 403,  # POST
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
    for secret in (world["w103"], world["s103"], "hh-m-103", "hh-g-103", "230103"):
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
