"""The chairs' workspace end to end: headless Chromium against a real API server.

Sample events go in through ``POST /v1/events`` with cadre tokens; the page is
used as a district chair would: sign in with her token, read the inbox in
Chinese, switch to English, acknowledge and resolve, watch a new warning
arrive live (SSE via fetch streaming), read ledgers, KPIs and the district
overview. Screenshots land in ``tests/web/artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from streams.embedded.log import SqliteLog
from tests.api.conftest import Api, event, wait_until
from tests.web.conftest import ARTIFACTS

if os.environ.get("JIAHE_REQUIRE_BROWSER") != "1":  # in CI a missing playwright is an error
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (no downloads)")
from playwright.sync_api import Page, expect  # noqa: E402

STATIC = "api/web/static"
XSS_HOUSEHOLD = '<img src=x onerror="window.__xss=1">hh-web-102-xss'
GAP = {"child_ref": "c-web-1", "reason": "parents_migrant_workers"}
PROPERTY = {"channel": "walk_in", "category": "property_rights", "urgent": False}


@pytest.fixture(scope="module")
def world(web_api: Api) -> dict[str, Any]:
    """Warnings of every level in 道里区 (230102) and two in 南岗区 (230103)."""
    web_api.publish("cadre102", [
        event("230102001001", "hh-web-102-red"),
        *[event("230102002001", "hh-web-102-rep", data=PROPERTY, hours_ago=h)
          for h in (72, 48, 24)],
        event("230102003001", "hh-web-102-med", "mediation.concluded",
              {"mediation_id": "m-web-1", "outcome": "failed"}),
        event("230102004001", XSS_HOUSEHOLD),
        event("230102005001", "hh-web-102-gap", "child.guardianship_gap_recorded", GAP,
              hours_ago=24 * 10),
    ])
    web_api.publish("cadre103", [
        event("230103002001", "hh-web-103-red"),
        event("230103003001", "hh-web-103-med", "mediation.concluded",
              {"mediation_id": "m-web-2", "outcome": "failed"}),
    ])
    wait_until(lambda: len(alerts(web_api, "chair102")) == 5, timeout=30)
    return {"w102": {r["household_id"]: r["warning_id"] for r in alerts(web_api, "chair102")},
            "w103": {r["household_id"]: r["warning_id"] for r in alerts(web_api, "chair103")}}


def alerts(api: Api, user: str, **params: str) -> list[dict[str, Any]]:
    response = api.call("GET", "/v1/alerts", user, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["alerts"])


def log_commands(api: Api, household: str, warning_id: str) -> list[dict[str, Any]]:
    """``warning.*`` command events for one warning in the event log."""
    sealed = [json.loads(b) for (b,) in api.sql(
        "log.sqlite3", "SELECT body FROM events WHERE household_id = ? ORDER BY position",
        household)]
    # personal fields (the resolution note) are sealed in the log: open with its keyring
    log = SqliteLog(api.home / "log.sqlite3")
    try:
        bodies = [log.keyring.open_event(b)[0] for b in sealed]
    finally:
        log.close()
    return [b for b in bodies if b["type"].startswith("warning.")
            and b["data"].get("warning_id") == warning_id]


def sign_in(page: Page, api: Api, user: str) -> None:
    page.goto(api.url + "/")
    page.fill("#token", api.tokens[user])
    page.click("#login-button")
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "on")


def inbox_households(page: Page) -> set[str]:
    return set(page.locator("#inbox-table tbody td.household").all_inner_texts())


def row(page: Page, warning_id: str) -> Any:
    return page.locator(f'#inbox-table tbody tr[data-warning-id="{warning_id}"]')


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_page_is_served_with_a_strict_policy(web_api: Api) -> None:
    first = httpx.get(web_api.url + "/", follow_redirects=False)
    assert first.status_code == 307 and first.headers["location"] == "/workspace/"
    page = httpx.get(web_api.url + "/workspace/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "i18n.js", "app.css"):
        assert httpx.get(f"{web_api.url}/workspace/{asset}").status_code == 200
    assert httpx.get(web_api.url + "/workspace/..%2Fapp.py").status_code == 404
    assert httpx.get(web_api.url + "/workspace/server.py").status_code == 404
    assert "/workspace/" not in web_api.call("GET", "/openapi.json").text
    assert httpx.get(web_api.url + "/v1/alerts").status_code == 401  # the API is unchanged
    from tests.web.conftest import ROOT
    source = (ROOT / STATIC / "app.js").read_text() + (ROOT / STATIC / "i18n.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in source, sink


def test_dictionary_covers_both_languages() -> None:
    from tests.web.conftest import ROOT
    text = (ROOT / STATIC / "i18n.js").read_text()
    zh_part, en_part = text.split("\n  en: {")
    zh, en = (set(re.findall(r'"([\w.\-]+)":', part)) for part in (zh_part, en_part))
    assert zh == en
    html = (ROOT / STATIC / "index.html").read_text()
    assert set(re.findall(r'data-i18n="([^"]+)"', html)) <= zh


def test_chair_works_her_inbox(web_api: Api, world: dict[str, Any], open_browser: Any) -> None:
    page = open_browser()
    page.goto(web_api.url + "/")
    # Chinese by default
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("家和 · 主席工作台")
    expect(page.locator("#login-button")).to_have_text("登录")
    shot(page, "01-login-zh.png")

    sign_in(page, web_api, "chair102")
    expect(page.locator("#who")).to_contain_text("道里区")
    expect(page.locator("#inbox-table tbody tr")).to_have_count(5)
    assert inbox_households(page) == set(world["w102"])
    districts = page.locator("#inbox-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.district)")
    assert set(districts) == {"230102000000"}
    assert "hh-web-103" not in page.inner_text("body")
    # data is text, never markup
    assert XSS_HOUSEHOLD in inbox_households(page)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#inbox-table img").count() == 0
    expect(row(page, world["w102"]["hh-web-102-red"])).to_contain_text("红色")
    expect(row(page, world["w102"]["hh-web-102-red"])).to_contain_text("暴力伤害")
    levels = page.locator("#inbox-table tbody tr .lvl").evaluate_all(
        "spans => spans.map(s => s.dataset.level)")
    assert levels == sorted(levels, key=["red", "orange", "yellow"].index)  # red first
    shot(page, "02-inbox-zh.png")

    # English, remembered across a reload (the token stays in this tab's sessionStorage)
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Jiahe · Chairs' workspace")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.evaluate("localStorage.getItem('jiahe.lang')") == "en"
    page.reload()
    expect(page.locator("h1")).to_have_text("Jiahe · Chairs' workspace")
    expect(page.locator("#inbox-table tbody tr")).to_have_count(5)
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    expect(page.locator("#who")).to_contain_text("Daoli")
    page.evaluate("window.__noReload = 1")

    # acknowledge from the page → a warning.acknowledged event in the log
    red = world["w102"]["hh-web-102-red"]
    row(page, red).locator("button.ack").click()
    expect(row(page, red)).to_have_attribute("data-status", "acknowledged")
    expect(row(page, red).locator("td.status")).to_have_text("Acknowledged")
    expect(row(page, red).locator("button.ack")).to_have_count(0)
    [acked] = [r for r in alerts(web_api, "chair102") if r["warning_id"] == red]
    assert acked["status"] == "acknowledged" and acked["acknowledged_at"]
    assert [(c["type"], c["data"]["by"]) for c in log_commands(web_api, "hh-web-102-red", red)] == [
        ("warning.acknowledged", "chair102")]

    # resolve with a note
    mediation = world["w102"]["hh-web-102-med"]
    row(page, mediation).locator("button.resolve").click()
    page.fill("#resolve-note", "已上门调解，双方达成协议")
    page.click("#resolve-confirm")
    expect(row(page, mediation)).to_have_attribute("data-status", "resolved")
    commands = log_commands(web_api, "hh-web-102-med", mediation)
    assert [(c["type"], c["data"].get("note")) for c in commands] == [
        ("warning.resolved", "已上门调解，双方达成协议")]

    # a new triggering event arrives live, without a reload; another district's never does
    web_api.publish("cadre103", [event("230103004001", "hh-web-103-live")])
    visit = {"indicators": ["injury_observed"], "notes": "右臂淤青"}
    web_api.publish("cadre102", [event("230102006001", "hh-web-102-live",
                                       "screening.visit_recorded", visit)])
    live_id = web_api.warning_for("hh-web-102-live")
    expect(row(page, live_id)).to_have_count(1, timeout=15_000)
    expect(row(page, live_id)).to_have_attribute("data-status", "open")
    expect(row(page, live_id)).to_contain_text("Violence / injury")
    expect(page.locator("#message")).to_contain_text("hh-web-102-live")
    assert page.evaluate("window.__noReload") == 1
    assert "hh-web-103-live" not in page.inner_text("body")
    expect(page.locator("#inbox-table tbody tr")).to_have_count(6)
    shot(page, "03-inbox-live-en.png")

    # an acknowledgement made elsewhere (the API) also arrives live
    gap = world["w102"]["hh-web-102-gap"]
    assert web_api.call("POST", f"/v1/alerts/{gap}/acknowledge", "chair102").status_code == 200
    expect(row(page, gap)).to_have_attribute("data-status", "acknowledged")

    # ledgers with district and as-of filters
    page.click("[data-view=ledgers]")
    expect(page.locator("#ledger-table tbody tr")).to_have_count(6)
    assert page.locator("#ledger-district option").evaluate_all(
        "os => os.map(o => o.value)") == ["", "230102000000"]
    page.select_option("#ledger-name", "households")
    expect(page.locator("#ledger-table")).to_have_attribute("data-ledger", "households")
    households = set(page.locator("#ledger-table tbody tr td:first-child").all_inner_texts())
    assert "hh-web-102-rep" in households and not any("103" in h for h in households)
    page.select_option("#ledger-name", "guardianship")
    expect(page.locator("#ledger-table tbody tr")).to_have_count(1)
    expect(page.locator("#ledger-table tbody")).to_contain_text("c-web-1")
    page.select_option("#ledger-name", "warnings")
    page.select_option("#ledger-district", "230102000000")
    two_days_ago = (datetime.now(UTC) + timedelta(hours=8) - timedelta(days=2)).strftime(
        "%Y-%m-%dT%H:%M")
    page.fill("#ledger-as-of", two_days_ago)
    page.click("#ledger-form button[type=submit]")
    # as of two days ago only the guardianship gap's warning (due 3 days ago) existed
    expect(page.locator("#ledger-table tbody tr")).to_have_count(1)
    expect(page.locator("#ledger-table tbody")).to_contain_text("hh-web-102-gap")
    shot(page, "04-ledger-en.png")

    # KPIs with SVG charts
    page.click("[data-view=kpis]")
    expect(page.locator("[data-kpi=warnings] .kpi-value")).to_have_text("6")
    assert page.locator("#chart-open svg rect.bar").count() >= 1
    assert page.locator("#chart-weekly svg rect.bar").count() >= 1
    shot(page, "05-kpis-en.png")

    # district overview: open warnings by district × level, her district only
    page.click("[data-view=overview]")
    open_rows = alerts(web_api, "chair102", status="open")
    rows = page.locator("#overview-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-district", "230102")
    for level in ("red", "orange", "yellow"):
        want = str(sum(1 for r in open_rows if r["level"] == level))
        expect(rows.first.locator(f"td[data-level={level}]")).to_have_text(want)
    shot(page, "06-overview-en.png")

    # back to Chinese
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("家和 · 主席工作台")
    expect(page.locator("#overview-table thead")).to_contain_text("红色")
    assert page.js_errors == []


def test_chair_of_another_district_sees_none_of_it(web_api: Api, world: dict[str, Any],
                                                  open_browser: Any) -> None:
    page = open_browser()
    sign_in(page, web_api, "chair103")
    expect(page.locator("#who")).to_contain_text("南岗区")
    mine = {r["warning_id"] for r in alerts(web_api, "chair103")}
    expect(page.locator("#inbox-table tbody tr")).to_have_count(len(mine))
    ids = set(page.locator("#inbox-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.warningId)"))
    assert ids == mine and not ids & set(world["w102"].values())
    assert "hh-web-102" not in page.inner_text("body")
    # live: her district's new warning arrives, 道里区's does not
    web_api.publish("cadre102", [event("230102007001", "hh-web-102-late")])
    web_api.publish("cadre103", [event("230103005001", "hh-web-103-late")])
    late = web_api.warning_for("hh-web-103-late")
    expect(row(page, late)).to_have_count(1, timeout=15_000)
    assert "hh-web-102" not in page.inner_text("body")
    # ledgers and overview stay in 南岗区
    page.click("[data-view=ledgers]")
    expect(page.locator("#ledger-table tbody tr").first).to_be_visible()
    assert "hh-web-102" not in page.inner_text("#ledger-table")
    assert set(page.locator("#ledger-table tbody tr td:nth-child(6)").all_inner_texts()) == {
        "南岗区"}
    page.click("[data-view=overview]")
    expect(page.locator("#overview-table tbody tr")).to_have_count(1)
    expect(page.locator("#overview-table tbody tr").first).to_have_attribute(
        "data-district", "230103")
    shot(page, "07-chair103-overview-zh.png")
    assert page.js_errors == []


def test_errors_are_shown_clearly(web_api: Api, world: dict[str, Any],
                                  open_browser: Any) -> None:
    page = open_browser()
    page.goto(web_api.url + "/")
    # 401: a wrong token
    page.fill("#token", "not-a-token")
    page.click("#login-button")
    expect(page.locator("#message")).to_have_attribute("data-kind", "error")
    expect(page.locator("#message")).to_contain_text("令牌无效")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('jiahe.token')") is None
    shot(page, "08-error-401-zh.png")
    # network failure
    page.route(re.compile(r".*/v1/kpis.*"), lambda route: route.abort())
    page.fill("#token", web_api.tokens["chair102"])
    page.click("#login-button")
    expect(page.locator("#message")).to_contain_text("网络错误")
    page.unroute(re.compile(r".*/v1/kpis.*"))
    # 403: an analyst may read KPIs but not the alert rows
    page.fill("#token", web_api.tokens["analyst"])
    page.click("#login-button")
    expect(page.locator("#message")).to_contain_text("无权访问")
    expect(page.locator("#inbox-table tbody tr")).to_have_count(0)
    # 403: a chair asking for another district's ledger (URL crafted by hand)
    page.click("#logout")
    assert page.evaluate("sessionStorage.getItem('jiahe.token')") is None
    sign_in(page, web_api, "chair102")
    status = page.evaluate("""async (token) => (await fetch('/v1/ledgers/warnings?district=230103',
        {headers: {Authorization: 'Bearer ' + token}})).status""", web_api.tokens["chair102"])
    assert status == 403
    page.evaluate("""() => { const s = document.getElementById('ledger-district');
        const o = document.createElement('option'); o.value = '230103000000'; s.append(o); }""")
    page.click("[data-view=ledgers]")
    page.select_option("#ledger-district", "230103000000")
    page.click("#ledger-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("无权访问")
    expect(page.locator("#ledger-table tbody tr")).to_have_count(0)


def test_a_slow_answer_to_an_earlier_ledger_choice_does_not_replace_a_later_one(
        web_api: Api, world: dict[str, Any], open_browser: Any) -> None:
    page = open_browser()
    sign_in(page, web_api, "chair102")
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r".*/v1/ledgers/warnings.*"), hold_the_first)
    page.click("[data-view=ledgers]")  # the view's first load: every warning of her scope
    two_days_ago = (datetime.now(UTC) + timedelta(hours=8) - timedelta(days=2)).strftime(
        "%Y-%m-%dT%H:%M")
    page.fill("#ledger-as-of", two_days_ago)
    page.click("#ledger-form button[type=submit]")
    expect(page.locator("#ledger-table tbody tr")).to_have_count(1)
    assert len(held) == 1
    with page.expect_response(re.compile(r".*/v1/ledgers/warnings.*")):
        held[0].continue_()
    page.wait_for_timeout(500)  # the answer's handler runs after the response arrives
    expect(page.locator("#ledger-table tbody tr")).to_have_count(1)
    expect(page.locator("#ledger-table tbody")).to_contain_text("hh-web-102-gap")


def test_city_admin_overview_covers_every_district(web_api: Api, world: dict[str, Any],
                                                   open_browser: Any) -> None:
    page = open_browser()
    sign_in(page, web_api, "admin")
    page.click("[data-view=overview]")
    rows = page.locator("#overview-table tbody tr")
    expect(rows).to_have_count(18)  # Harbin's 18 county-level units
    open_rows = alerts(web_api, "admin", status="open")
    for district in ("230102", "230103"):
        want = str(sum(1 for r in open_rows if r["district"].startswith(district)))
        expect(page.locator(f'#overview-table tr[data-district="{district}"] td.total')
               ).to_have_text(want)
    expect(page.locator('#overview-table tr[data-district="230184"] td.total')).to_have_text("0")
    shot(page, "09-admin-overview-zh.png")
    assert page.js_errors == []


def test_chair_assigns_a_warning(web_api: Api, world: dict[str, Any], open_browser: Any) -> None:
    """The assign dialog: a refused assignee is explained, an accepted one shows in the row
    and in everyone's inbox (``GET /v1/alerts`` reads the lifecycle record)."""
    page = open_browser()
    sign_in(page, web_api, "chair102")
    repeat = world["w102"]["hh-web-102-rep"]
    expect(row(page, repeat).locator("td.assignee")).to_have_text("—")
    # chair103 works in another district: the API refuses, the page says why
    row(page, repeat).locator("button.assign").click()
    page.fill("#assign-user", "chair103")
    page.click("#assign-confirm")
    expect(page.locator("#message")).to_have_attribute("data-kind", "error")
    expect(page.locator("#message")).to_contain_text("assignee")
    expect(row(page, repeat).locator("td.assignee")).to_have_text("—")

    row(page, repeat).locator("button.assign").click()
    page.fill("#assign-user", "cadre102")
    page.click("#assign-confirm")
    expect(row(page, repeat).locator("td.assignee")).to_have_text("cadre102")
    expect(page.locator("#message")).to_contain_text("cadre102")
    shot(page, "10-assigned-zh.png")
    [assigned] = [r for r in alerts(web_api, "admin") if r["warning_id"] == repeat]
    assert assigned["assignee"] == "cadre102" and assigned["status"] != "resolved"
    assert [(c["type"], c["data"]["assignee"]) for c in log_commands(
        web_api, "hh-web-102-rep", repeat) if c["type"] == "warning.assigned"] == [
        ("warning.assigned", "cadre102")]


def test_chair_reads_screening_coverage_by_district(web_api: Api, world: dict[str, Any],
                                                     open_browser: Any) -> None:
    """The coverage ledger (排查覆盖台账) and its sum by district, her district only."""
    key = {"flags": ["key_household"], "notes": "入户登记"}
    plain = {"flags": [], "notes": "入户登记"}
    web_api.publish("cadre102", [
        event("230102001001", "hh-cov-102-a", "household.registered", key, hours_ago=30),
        event("230102001001", "hh-cov-102-b", "household.registered", plain, hours_ago=30),
        event("230102002001", "hh-cov-102-c", "household.registered", plain, hours_ago=30),
        event("230102001001", "hh-cov-102-a", "screening.visit_recorded",
              {"indicators": [], "notes": "走访"}, hours_ago=2),
    ])
    web_api.publish("cadre103", [
        event("230103001001", "hh-cov-103-a", "household.registered", plain, hours_ago=30),
    ])
    rows = web_api.call("GET", "/v1/ledgers/coverage", "chair102").json()["rows"]
    assert [(r["community"], r["registered"], r["covered"], r["key_covered"]) for r in rows] == [
        ("230102001001", 2, 1, 1), ("230102002001", 1, 0, 0)]
    city = web_api.call("GET", "/v1/ledgers/coverage", "admin").json()["rows"]
    assert {r["district"] for r in city} == {"230102000000", "230103000000"}

    page = open_browser()
    sign_in(page, web_api, "chair102")
    page.click("[data-view=ledgers]")
    page.select_option("#ledger-name", "coverage")
    expect(page.locator("#ledger-table")).to_have_attribute("data-ledger", "coverage")
    expect(page.locator("#ledger-table tbody tr")).to_have_count(2)
    districts = page.locator("#coverage-district-table tbody tr")
    expect(districts).to_have_count(1)
    expect(districts.first).to_have_attribute("data-district", "230102000000")
    expect(districts.first).to_contain_text("道里区")
    expect(districts.first).to_contain_text("33.33%")
    expect(page.locator("#coverage-districts h3")).to_have_text("排查覆盖（按区县）")
    shot(page, "09-coverage-zh.png")
    page.select_option("#ledger-name", "warnings")
    expect(page.locator("#coverage-districts")).to_be_hidden()
