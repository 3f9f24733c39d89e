"""The cadres' field app end to end: a phone-sized headless Chromium against a real API.

A cadre signs in with her token, loses the network, records 20 screening visits,
reloads the page while still offline (the service worker serves the app, the
IndexedDB outbox still holds the 20), gets the network back, and every visit is
accepted exactly once. A refused event shows the server's reason; the work list
shows her assigned warnings and guardianship gaps; English is one tap away.
Screenshots (phone-sized) land in ``tests/web/artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest

from streams.embedded.log import SqliteLog
from tests.api.conftest import Api, event
from tests.web.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT

if os.environ.get("JIAHE_REQUIRE_BROWSER") != "1":  # in CI a missing playwright is an error
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (no downloads)")
from playwright.sync_api import Page, expect  # noqa: E402

STATIC = ROOT / "api" / "field"
PHONE = {"width": 390, "height": 844}
COMMUNITY = "230102001001"  # in 道里区, cadre102's district
OUTSIDE = "230103001001"  # 南岗区: not hers
NOTE = "NOTE-秘密-右臂淤青"  # personal text: never in a URL, never in the console
GAP = {"child_ref": "c-field-1", "reason": "parents_migrant_workers"}


@pytest.fixture
def phone(playwright_driver: Any) -> Iterator[tuple[Any, Page, dict[str, list[str]]]]:
    """A phone-sized Chromium with a fresh profile; what it requested and logged."""
    profile = tempfile.mkdtemp(prefix="jiahe-field-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
        locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(20_000)
    seen: dict[str, list[str]] = {"urls": [], "console": [], "errors": []}
    context.on("request", lambda request: seen["urls"].append(request.url))
    page = context.pages[0] if context.pages else context.new_page()
    page.on("console", lambda msg: seen["console"].append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    try:
        yield context, page, seen
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def sign_in(page: Page, api: Api, user: str) -> None:
    page.goto(api.url + "/field/")
    page.fill("#token", api.tokens[user])
    page.click("#login-button")
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#who")).to_contain_text(user)


def wait_for_service_worker(page: Page) -> None:
    """The worker has cached the shell and controls the page (clients.claim)."""
    # Polled from here, not by wait_for_function: its polling evaluates a string in the
    # page, which the page's CSP (no 'unsafe-eval') refuses whenever it must poll.
    # Installing fetches the nine shell files; during a loaded full run on two cores the
    # wait once ran past 15 s, cause unseen. A minute leaves room, and a failure says
    # where the registration stood, which tells a failed install from a slow one.
    deadline = time.monotonic() + 60
    while not page.evaluate("navigator.serviceWorker.controller !== null"):
        assert time.monotonic() < deadline, (
            "the service worker never took control: " + service_worker_state(page))
        page.wait_for_timeout(100)
    assert page.evaluate("caches.has('jiahe-field-v1')")


def service_worker_state(page: Page) -> str:
    """Where the registration stands (installing, waiting, active), for a failure message."""
    return str(page.evaluate(
        "navigator.serviceWorker.getRegistration('/field/').then((r) => r === undefined"
        " ? 'not registered' : JSON.stringify({installing: r.installing?.state ?? null,"
        " waiting: r.waiting?.state ?? null, active: r.active?.state ?? null}))"))


def outbox_records(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("FieldOutbox.all()"))


def logged(api: Api, prefix: str) -> list[dict[str, Any]]:
    """Events of households named ``prefix…`` in the log, personal fields opened."""
    rows = api.sql("log.sqlite3", "SELECT body FROM events WHERE household_id LIKE ? "
                   "ORDER BY position", prefix + "%")
    log = SqliteLog(api.home / "log.sqlite3")
    try:
        return [log.keyring.open_event(json.loads(b))[0] for (b,) in rows]
    finally:
        log.close()


def test_app_is_served_installable_under_the_strict_policy(web_api: Api) -> None:
    assert httpx.get(web_api.url + "/field").headers.get("location") == "/field/"
    page = httpx.get(web_api.url + "/field/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    workspace = httpx.get(web_api.url + "/workspace/").headers["content-security-policy"]
    policy = page.headers["content-security-policy"]
    directives = {d.strip() for d in policy.split(";")}
    assert {d.strip() for d in workspace.split(";")} <= directives  # the workspace's, and:
    assert {"manifest-src 'self'", "worker-src 'self'"} <= directives
    for asset in ("app.js", "i18n.js", "outbox.js", "sw.js", "app.css", "icon.svg",
                  "icon-192.png", "icon-512.png"):
        response = httpx.get(f"{web_api.url}/field/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["content-security-policy"] == policy
    manifest = httpx.get(web_api.url + "/field/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    app = manifest.json()
    assert (app["start_url"], app["scope"], app["display"]) == ("/field/", "/field/",
                                                                 "standalone")
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in app["icons"]}
    assert httpx.get(web_api.url + "/field/..%2Fapp.py").status_code == 404
    assert httpx.get(web_api.url + "/field/field.py").status_code == 404
    schema = web_api.call("GET", "/openapi.json").json()
    assert "/v1/worklist" in schema["paths"] and "/field/" not in schema["paths"]
    html = (STATIC / "index.html").read_text()
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert re.findall(r"<form[^>]*>", html) and all(
        'method="post"' in f for f in re.findall(r"<form[^>]*>", html))  # never text in a URL
    source = "".join((STATIC / name).read_text() for name in ("app.js", "i18n.js",
                                                               "outbox.js", "sw.js"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "console."):
        assert sink not in source, sink


def test_dictionary_covers_both_languages() -> None:
    text = (STATIC / "i18n.js").read_text()
    zh_part, en_part = text.split("window.FIELD_I18N")[1].split("\n  en: {")
    zh, en = (set(re.findall(r'"([\w.\-]+)":', part)) for part in (zh_part, en_part))
    assert zh == en
    html = (STATIC / "index.html").read_text()
    assert set(re.findall(r'data-i18n="([^"]+)"', html)) <= zh
    # every vocabulary word of the catalog has a label, in both languages
    from events import catalog
    for prefix, words in (("indicator.", catalog.Indicator), ("channel.", catalog.Channel),
                          ("category.", catalog.Category)):
        assert {prefix + w for w in get_args(words)} <= zh
    flags = ("key_household", "rural", "intellectual_disability", "left_behind_children",
             "single_parent", "elderly_alone")  # DESIGN, catalog v2
    assert {"flag." + f for f in flags} <= zh


def test_twenty_visits_recorded_offline_survive_a_reload_and_arrive_once(
        web_api: Api, phone: tuple[Any, Page, dict[str, list[str]]]) -> None:
    context, page, seen = phone
    page.goto(web_api.url + "/field/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("家和 · 入户工作")
    shot(page, "field-01-login-zh.png")
    sign_in(page, web_api, "cadre102")
    wait_for_service_worker(page)

    context.set_offline(True)
    expect(page.locator("#net")).to_have_attribute("data-state", "offline")
    page.click("[data-view=visit]")
    form = page.locator("#form-visit")
    form.locator("input[name=org_unit]").fill(COMMUNITY)
    for n in range(20):
        form.locator("input[name=household_id]").fill(f"hh-field-{n:02d}")
        form.locator("input[value=economic_hardship]").check()
        if n % 5 == 0:
            form.locator("input[value=marital_conflict]").check()
        form.locator("textarea[name=notes]").fill(f"{NOTE} {n}")
        if n == 0:
            shot(page, "field-02-visit-form-zh.png")
        form.locator("button[type=submit]").click()
        expect(page.locator("#pending-count")).to_have_text(str(n + 1))
    expect(page.locator("#message")).to_contain_text("20")
    page.click("[data-view=outbox]")
    expect(page.locator("#outbox-list li[data-status=pending]")).to_have_count(20)
    records = outbox_records(page)
    stamped = {r["event_id"] for r in records}
    assert len(stamped) == 20
    for r in records:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}",
                            r["event_id"])
        assert r["event"]["occurred_at"].endswith("+08:00")  # the device's local offset
        assert r["event"]["actor"] == "cadre102"
    assert logged(web_api, "hh-field-") == []  # nothing reached the server

    # a reload without a network: the worker serves the app, IndexedDB kept the outbox
    page.reload()
    expect(page.locator("h1")).to_have_text("家和 · 入户工作")
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#net")).to_have_attribute("data-state", "offline")
    expect(page.locator("#pending-count")).to_have_text("20")
    expect(page.locator("#worklist-as-of")).to_have_attribute("data-cached", "true")
    expect(page.locator("#worklist-as-of")).to_contain_text("离线")
    page.click("[data-view=outbox]")
    expect(page.locator("#outbox-list li[data-status=pending]")).to_have_count(20)
    shot(page, "field-03-offline-outbox-zh.png")

    context.set_offline(False)
    expect(page.locator("#outbox-list li[data-status=accepted]")).to_have_count(20)
    expect(page.locator("#pending-count")).to_be_hidden()
    expect(page.locator("#message")).to_contain_text("接收 20")
    shot(page, "field-04-sent-zh.png")

    events = logged(web_api, "hh-field-")
    assert sorted(e["event_id"] for e in events) == sorted(stamped)  # each exactly once
    assert {e["type"] for e in events} == {"screening.visit_recorded"}
    assert sorted(e["data"]["notes"] for e in events) == sorted(f"{NOTE} {n}" for n in range(20))
    assert web_api.sql("log.sqlite3", "SELECT count(*) FROM dead_letters WHERE household_id "
                       "LIKE 'hh-field-%'") == [(0,)]
    # once the server has them, the device forgets the notes
    assert all("notes" not in r["event"]["data"] for r in outbox_records(page))
    # sending again sends nothing
    page.click("#outbox-send")
    expect(page.locator("#outbox-list li[data-status=accepted]")).to_have_count(20)
    assert len(logged(web_api, "hh-field-")) == 20

    assert not any(NOTE in url or "秘密" in url for url in seen["urls"])
    assert not any(NOTE in line for line in seen["console"])
    # no policy violation (the worker, the manifest), nothing but the offline fetches failed
    assert [line for line in seen["console"] if line.startswith("error")
            and "ERR_INTERNET_DISCONNECTED" not in line] == []
    assert seen["errors"] == []


def test_each_event_shows_its_answer(web_api: Api,
                                     phone: tuple[Any, Page, dict[str, list[str]]]) -> None:
    """Rejected with the server's reason (outside her scope), duplicate on a resend."""
    _, page, seen = phone
    sign_in(page, web_api, "cadre102")
    page.click("[data-view=petition]")
    form = page.locator("#form-petition")
    form.locator("input[name=household_id]").fill("hh-field-outside")
    form.locator("input[name=org_unit]").fill(OUTSIDE)
    form.locator("select[name=channel]").select_option("walk_in")
    form.locator("select[name=category]").select_option("property_rights")
    form.locator("button[type=submit]").click()
    page.click("[data-view=outbox]")
    refused = page.locator("#outbox-list li[data-status=rejected]")
    expect(refused).to_have_count(1)
    expect(refused.locator(".status")).to_have_text("被拒绝")
    expect(refused.locator(".reason")).to_contain_text("org_unit")
    [dead] = web_api.sql("log.sqlite3", "SELECT reason FROM dead_letters WHERE household_id = "
                         "'hh-field-outside'")
    assert dead[0] in refused.locator(".reason").inner_text()
    shot(page, "field-05-rejected-zh.png")

    page.click("[data-view=petition]")
    form.locator("input[name=household_id]").fill("hh-field-petition")
    form.locator("input[name=org_unit]").fill(COMMUNITY)
    form.locator("select[name=channel]").select_option("hotline_12338")
    form.locator("select[name=category]").select_option("domestic_violence")
    form.locator("input[name=urgent]").check()
    form.locator("button[type=submit]").click()
    page.click("[data-view=outbox]")
    expect(page.locator("#outbox-list li[data-status=accepted]")).to_have_count(1)
    [petition] = logged(web_api, "hh-field-petition")
    assert petition["data"] == {"channel": "hotline_12338", "category": "domestic_violence",
                                "urgent": True}
    # the answer was lost, say: the device sends it again, the server knows it
    page.evaluate("""async () => { const [r] = (await FieldOutbox.all()).filter(
        (r) => r.status === 'accepted'); r.status = 'pending'; await FieldOutbox.put(r); }""")
    page.click("#outbox-send")
    expect(page.locator("#outbox-list li[data-status=duplicate]")).to_have_count(1)
    assert len(logged(web_api, "hh-field-petition")) == 1
    # clearing keeps only what the server refused
    page.click("#outbox-clear")
    expect(page.locator("#outbox-list li")).to_have_count(1)
    expect(page.locator("#outbox-list li[data-status=rejected]")).to_have_count(1)
    assert seen["errors"] == []


def test_work_list_in_both_languages(web_api: Api,
                                     phone: tuple[Any, Page, dict[str, list[str]]]) -> None:
    _, page, seen = phone
    web_api.publish("cadre102", [
        event(COMMUNITY, "hh-field-red"),
        event(COMMUNITY, "hh-field-gap", "child.guardianship_gap_recorded", GAP,
              hours_ago=24 * 9),
        event(COMMUNITY, "hh-field-due", "household.registered",
              {"flags": ["key_household", "elderly_alone"]}, hours_ago=24 * 40),
    ])
    red = web_api.warning_for("hh-field-red")
    assigned = web_api.call("POST", f"/v1/alerts/{red}/assign", "chair102",
                            json={"assignee": "cadre102"})
    assert assigned.status_code == 200, assigned.text
    sign_in(page, web_api, "cadre102")
    warning = page.locator(f'#wl-warnings li[data-warning-id="{red}"]')
    expect(warning).to_contain_text("红色")
    expect(warning).to_contain_text("暴力伤害")
    expect(warning).to_contain_text("hh-field-red")
    gap = page.locator('#wl-gaps li[data-household="hh-field-gap"]')
    expect(gap).to_contain_text("c-field-1")
    expect(gap).to_contain_text("已逾期")
    due = page.locator('#wl-visits li[data-household="hh-field-due"]')
    expect(due).to_contain_text("重点户")  # a key household: a visit every 30 days
    expect(due).to_contain_text("已逾期")
    expect(due).to_contain_text("独居老人")
    expect(page.locator("#worklist-as-of")).to_have_attribute("data-cached", "false")
    shot(page, "field-06-worklist-zh.png")

    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Jiahe · Field work")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(warning).to_contain_text("Violence / injury")
    expect(gap).to_contain_text("Overdue")
    page.reload()
    expect(page.locator("h1")).to_have_text("Jiahe · Field work")  # remembered
    expect(page.locator("#worklist-as-of")).to_have_attribute("data-cached", "false")
    shot(page, "field-07-worklist-en.png")
    due.locator("button.record-visit").click()  # the visit form, filled in for it
    expect(page.locator("#form-visit input[name=household_id]")).to_have_value("hh-field-due")
    expect(page.locator("#form-visit input[name=org_unit]")).to_have_value(COMMUNITY)
    page.click("[data-view=register]")
    expect(page.locator("#form-register label.check")).to_have_count(6)
    expect(page.locator("#form-register")).to_contain_text("Left-behind children")
    shot(page, "field-08-register-en.png")
    page.click("#lang")
    expect(page.locator("#form-register")).to_contain_text("留守儿童")
    assert seen["errors"] == []


def test_registration_form(web_api: Api,
                           phone: tuple[Any, Page, dict[str, list[str]]]) -> None:
    """``household.registered`` with flags as checkboxes and notes, accepted."""
    _, page, _ = phone
    sign_in(page, web_api, "cadre102")
    page.click("[data-view=register]")
    form = page.locator("#form-register")
    form.locator("input[name=household_id]").fill("hh-field-registered")
    form.locator("input[name=org_unit]").fill(COMMUNITY)
    form.locator("input[value=key_household]").check()
    form.locator("input[value=left_behind_children]").check()
    form.locator("textarea[name=notes]").fill(NOTE)
    form.locator("button[type=submit]").click()
    page.click("[data-view=outbox]")
    record = page.locator("#outbox-list li").first
    expect(record).to_have_attribute("data-status", "accepted")
    expect(record).to_contain_text("家庭登记")
    [registered] = logged(web_api, "hh-field-registered")
    assert registered["type"] == "household.registered"
    assert registered["data"] == {"flags": ["key_household", "left_behind_children"],
                                  "notes": NOTE}
