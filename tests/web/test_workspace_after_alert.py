"""The work after an alert in the chairs' workspace: headless Chromium against a real API.

A district chair assesses a warning (研判), sends a referral (联动) after recording the
household's consent for the agency (the form shows that there is none and will not send
on basis consent until there is), reads the warning's timeline and the referral ledger
(联动台账), reopens a resolved warning, and reads the timeliness charts. A command the
contract refuses shows the server's reason, in Chinese and in English. No personal text
(notes, reasons) ever reaches a URL or the console, and the page raises no CSP violation.
Screenshots land in ``tests/web/artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from access.users import UserStore
from streams.embedded.log import SqliteLog
from tests.api.conftest import Api, event, wait_until
from tests.web.test_workspace import alerts, row, shot, sign_in

if os.environ.get("JIAHE_REQUIRE_BROWSER") != "1":  # in CI a missing playwright is an error
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (no downloads)")
from playwright.sync_api import Page, expect  # noqa: E402

ASSESS_NOTE = "当事人称长期遭受丈夫殴打"
REFERRAL_NOTE = "请辖区派出所今晚上门核实"
REOPEN_REASON = "当事人再次来电求助"
PERSONAL = (ASSESS_NOTE, REFERRAL_NOTE, REOPEN_REASON)


@pytest.fixture(scope="module")
def world(web_api: Api) -> dict[str, str]:
    """Three red warnings in 道里区 (230102): one to assess and refer, one to reopen, one
    for the English walk-through."""
    households = ("hh-aa-102-a", "hh-aa-102-b", "hh-aa-102-c")
    web_api.publish("cadre102", [event(f"23010200{i}001", hh) for i, hh in
                                 enumerate(households, start=1)])
    wait_until(lambda: {r["household_id"] for r in alerts(web_api, "chair102")}
               >= set(households), timeout=30)
    return {r["household_id"]: r["warning_id"] for r in alerts(web_api, "chair102")}


def partner_token(api: Api) -> str:
    """A partner of the police in 道里区, added beside the running server's users."""
    store = UserStore.at_home(api.home)
    try:
        return store.add("police102", "partner", "230102000000", "police")
    finally:
        store.close()


def watch(page: Page) -> dict[str, list[str]]:
    """Every console message (any level) and every request URL the page makes."""
    seen: dict[str, list[str]] = {"console": [], "urls": []}
    page.on("console", lambda msg: seen["console"].append(msg.text))
    page.on("request", lambda request: seen["urls"].append(request.url))
    return seen


def assert_nothing_personal_leaked(page: Any, seen: dict[str, list[str]]) -> None:
    """``page`` comes from ``open_browser``, which hangs the errors it saw on it."""
    seen["urls"].append(page.url)
    for text in PERSONAL:
        for where in ("console", "urls"):
            assert not any(text in item for item in seen[where]), (text, where)
    # uncaught errors and console errors, CSP violations ("Refused to …") included; Chromium
    # also logs each non-2xx answer, and the refusals above were asked for
    refused = "the server responded with a status of 409"
    assert [e for e in page.js_errors if refused not in e] == []


def referral_events(api: Api, household: str) -> list[dict[str, Any]]:
    """The household's ``referral.sent`` events as the log holds them, opened with its keys."""
    bodies = [json.loads(b) for (b,) in api.sql(
        "log.sqlite3", "SELECT body FROM events WHERE household_id = ? ORDER BY position",
        household)]
    log = SqliteLog(api.home / "log.sqlite3")
    try:
        opened = [log.keyring.open_event(b)[0] for b in bodies]
    finally:
        log.close()
    sent = [b for b in opened if b["type"] == "referral.sent"]
    # the note is personal: sealed in the stored body, never in clear
    raw = [b for b in bodies if b["type"] == "referral.sent"]
    assert all(REFERRAL_NOTE not in json.dumps(b, ensure_ascii=False) for b in raw)
    return sent


def timeline(page: Page) -> list[str]:
    return list(page.locator("#history-list li").evaluate_all(
        "items => items.map(i => i.dataset.type)"))


def test_chair_assesses_refers_with_consent_and_reads_the_timeline(
        web_api: Api, world: dict[str, str], open_browser: Any) -> None:
    page = open_browser()
    seen = watch(page)
    sign_in(page, web_api, "chair102")
    warning = world["hh-aa-102-a"]
    expect(row(page, warning)).to_have_attribute("data-status", "open")
    expect(row(page, warning).locator("td.risk")).to_have_text("—")

    # 研判: high risk with a note; an unacknowledged warning is acknowledged first
    row(page, warning).locator("button.assess").click()
    expect(page.locator("#assess-dialog")).to_be_visible()
    expect(page.locator("#assess-dialog h3")).to_have_text("研判预警")
    page.check("#assess-form input[name=risk][value=high]")
    page.fill("#assess-note", ASSESS_NOTE)
    page.click("#assess-confirm")
    expect(page.locator("#assess-dialog")).to_be_hidden()
    expect(row(page, warning).locator("td.risk")).to_have_text("高")
    expect(row(page, warning)).to_have_attribute("data-status", "acknowledged")
    expect(page.locator("#message")).to_have_attribute("data-kind", "info")
    [assessed] = [r for r in alerts(web_api, "chair102") if r["warning_id"] == warning]
    assert assessed["risk"] == "high" and assessed["status"] == "acknowledged"

    # the same risk again changes nothing: the server refuses, the page shows its reason
    row(page, warning).locator("button.assess").click()
    expect(page.locator("#assess-form input[value=high]")).to_be_checked()
    page.click("#assess-confirm")
    reason = page.locator("#assess-dialog .dialog-message")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("操作未执行")
    expect(reason).to_contain_text("already high")  # the server's own words
    expect(page.locator("#message")).to_contain_text("already high")
    shot(page, "after-01-assess-409-zh.png")
    page.click("#assess-cancel")

    # 联动: the form shows there is no consent for the police, and will not send on consent
    row(page, warning).locator("button.refer").click()
    dialog = page.locator("#referral-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#consent-box")).to_have_attribute("data-consent", "no")
    expect(page.locator("#consent-status")).to_have_text("尚未同意向公安提供信息")
    expect(page.locator("#referral-blocked")).to_be_visible()
    expect(page.locator("#referral-confirm")).to_be_disabled()
    expect(page.locator("#consent-record")).to_be_disabled()  # not before the chair attests
    shot(page, "after-02-referral-no-consent-zh.png")
    # emergency needs no consent; back to consent, the block returns
    page.select_option("#referral-basis", "emergency")
    expect(page.locator("#referral-confirm")).to_be_enabled()
    page.select_option("#referral-basis", "consent")
    expect(page.locator("#referral-confirm")).to_be_disabled()
    # record the consent, then send
    page.check("#consent-attest")
    page.click("#consent-record")
    expect(page.locator("#consent-box")).to_have_attribute("data-consent", "yes")
    expect(page.locator("#consent-list")).to_contain_text("公安")
    expect(page.locator("#referral-confirm")).to_be_enabled()
    expect(page.locator("#referral-blocked")).to_be_hidden()
    consent = web_api.call("GET", "/v1/households/hh-aa-102-a/consent", "chair102").json()
    assert consent["agencies"] == ["police"]
    page.fill("#referral-note", REFERRAL_NOTE)
    shot(page, "after-03-referral-consent-zh.png")
    page.click("#referral-confirm")
    expect(dialog).to_be_hidden()
    expect(page.locator("#message")).to_contain_text("公安")
    [sent] = referral_events(web_api, "hh-aa-102-a")
    assert sent["data"] | {"referral_id": "?"} == {
        "referral_id": "?", "agency": "police", "basis": "consent", "warning_id": warning,
        "note": REFERRAL_NOTE}
    # the police of 道里区 accept it (a partner acts through the API, not the workspace)
    referral_id = sent["data"]["referral_id"]
    assert web_api.call("POST", f"/v1/referrals/{referral_id}/accept",
                        headers={"Authorization": f"Bearer {partner_token(web_api)}"}
                        ).status_code == 200

    # the warning's timeline: its lifecycle records and the referral, in order
    row(page, warning).locator("button.history").click()
    expect(page.locator("#history-list li")).to_have_count(5)
    assert timeline(page) == ["warning.raised", "warning.acknowledged", "warning.assessed",
                              "referral.sent", "referral.accepted"]
    expect(page.locator('#history-list li[data-type="warning.assessed"]')).to_contain_text("高")
    sent_item = page.locator('#history-list li[data-type="referral.sent"]')
    expect(sent_item).to_contain_text("发出转介")
    expect(sent_item).to_contain_text("公安")
    expect(sent_item).to_contain_text("当事人同意")
    expect(page.locator('#history-list li[data-type="referral.accepted"]')).to_contain_text(
        "机构已接收")
    expect(page.locator('#history-summary dd[data-field="risk"]')).to_have_text("高")
    assert ASSESS_NOTE not in page.inner_text("#history-dialog")  # records carry no notes
    shot(page, "after-04-history-zh.png")
    page.click("#history-close")

    # 联动台账
    page.click("[data-view=referrals]")
    rows = page.locator("#referral-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-referral-id", referral_id)
    expect(rows.first).to_have_attribute("data-status", "accepted")
    for text in ("hh-aa-102-a", "道里区", "公安", "当事人同意", "已接收", warning):
        expect(rows.first).to_contain_text(text)
    expect(rows.first.locator("td.overdue")).to_have_text("否")
    expect(rows.first.locator("td.answered_at")).not_to_have_text("—")
    expect(rows.first.locator("td.minutes_to_answer")).to_have_text(re.compile(r"^\d+$"))
    headers = page.locator("#referral-table thead th").evaluate_all(
        "ths => ths.map(th => th.title)")
    assert headers == ["referral_id", "household_id", "district", "agency", "basis",
                       "warning_id", "sent_at", "answered_at", "status", "outcome",
                       "minutes_to_answer", "overdue"]
    assert REFERRAL_NOTE not in page.inner_text("body")  # chairs never see a referral's note
    page.select_option("#referral-status", "sent")
    expect(rows).to_have_count(0)
    page.select_option("#referral-status", "")
    expect(rows).to_have_count(1)
    shot(page, "after-05-referral-ledger-zh.png")
    # the ledger's warning id opens the same timeline
    rows.first.locator("button.history-link").click()
    expect(page.locator("#history-list li")).to_have_count(5)
    page.click("#history-close")
    assert_nothing_personal_leaked(page, seen)


def test_chair_reopens_and_reads_it_in_english(web_api: Api, world: dict[str, str],
                                               open_browser: Any) -> None:
    page = open_browser()
    seen = watch(page)
    sign_in(page, web_api, "chair102")
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Jiahe · Chairs' workspace")

    # a warning resolved elsewhere arrives live as resolved; the chair reopens it
    warning = world["hh-aa-102-b"]
    assert web_api.call("POST", f"/v1/alerts/{warning}/resolve", "chair102",
                        json={"note": "调解结束"}).status_code == 200
    expect(row(page, warning)).to_have_attribute("data-status", "resolved")
    expect(row(page, warning).locator("button.assess")).to_have_count(0)
    row(page, warning).locator("button.reopen").click()
    expect(page.locator("#reopen-dialog h3")).to_have_text("Reopen warning")
    page.fill("#reopen-reason", REOPEN_REASON)
    page.click("#reopen-confirm")
    expect(page.locator("#reopen-dialog")).to_be_hidden()
    expect(row(page, warning)).to_have_attribute("data-status", "open")
    expect(row(page, warning).locator("td.status")).to_have_text("Open")
    [reopened] = [r for r in alerts(web_api, "chair102") if r["warning_id"] == warning]
    assert reopened["status"] == "open" and reopened["reopened"] == 1
    row(page, warning).locator("button.history").click()
    expect(page.locator('#history-list li[data-type="warning.reopened"]')).to_contain_text(
        "Reopened")
    assert timeline(page)[-2:] == ["warning.resolved", "warning.reopened"]
    expect(page.locator('#history-summary dd[data-field="reopened"]')).to_have_text("1")
    shot(page, "after-06-reopened-history-en.png")
    page.click("#history-close")

    # a consent withdrawn elsewhere while the form is open: the server refuses, with its reason
    warning = world["hh-aa-102-c"]
    assert web_api.call("POST", "/v1/households/hh-aa-102-c/consent", "chair102",
                        json={"action": "record", "agencies": ["shelter"]}).status_code == 200
    row(page, warning).locator("button.refer").click()
    page.select_option("#referral-agency", "shelter")
    expect(page.locator("#consent-box")).to_have_attribute("data-consent", "yes")
    expect(page.locator("#consent-status")).to_have_text("standing consent for Shelter")
    expect(page.locator("#referral-confirm")).to_be_enabled()
    assert web_api.call("POST", "/v1/households/hh-aa-102-c/consent", "chair102",
                        json={"action": "withdraw", "agencies": ["shelter"]}).status_code == 200
    page.click("#referral-confirm")
    reason = page.locator("#referral-dialog .dialog-message")
    expect(reason).to_contain_text("Not done: no standing consent")
    expect(page.locator("#message")).to_contain_text("no standing consent")
    # the form reads the consent again and blocks the send
    expect(page.locator("#consent-box")).to_have_attribute("data-consent", "no")
    expect(page.locator("#referral-confirm")).to_be_disabled()
    shot(page, "after-07-referral-409-en.png")
    # on basis legal duty it goes out without consent
    page.select_option("#referral-basis", "legal_duty")
    page.click("#referral-confirm")
    expect(page.locator("#referral-dialog")).to_be_hidden()
    assert [e["data"]["basis"] for e in referral_events(web_api, "hh-aa-102-c")] == [
        "legal_duty"]

    # the referral ledger in English
    page.click("[data-view=referrals]")
    expect(page.locator("#view-referrals h2")).to_have_text("Referral ledger")
    shelter = page.locator("#referral-table tbody tr", has_text="hh-aa-102-c")
    expect(shelter).to_have_count(1)
    for text in ("Shelter", "Legal duty", "Sent", "Daoli"):
        expect(shelter).to_contain_text(text)
    shot(page, "after-08-referral-ledger-en.png")
    assert_nothing_personal_leaked(page, seen)


def test_timeliness_charts(web_api: Api, world: dict[str, str], open_browser: Any) -> None:
    """The timeliness figures of ``GET /v1/kpis`` as accessible bar charts, in both languages."""
    # a warning acknowledged at once: acknowledged within its SLA (due and within)
    web_api.publish("cadre102", [event("230102004001", "hh-aa-102-t", hours_ago=0.5)])
    wait_until(lambda: any(r["household_id"] == "hh-aa-102-t"
                           for r in alerts(web_api, "chair102")), timeout=30)
    quick = web_api.warning_for("hh-aa-102-t")
    assert web_api.call("POST", f"/v1/alerts/{quick}/acknowledge", "chair102").status_code == 200
    kpis = web_api.call("GET", "/v1/kpis", "chair102").json()
    assert kpis.get("timeliness"), "GET /v1/kpis carries no timeliness figures"
    page = open_browser()
    sign_in(page, web_api, "chair102")
    page.click("[data-view=kpis]")
    figures = page.locator("#timeliness-charts figure")
    expect(figures.first).to_be_visible()
    assert figures.count() >= 4
    charts = page.locator("#timeliness-charts svg[role=img]")
    assert charts.count() == figures.count()
    # each chart says what it shows to a screen reader, its bars name their group
    for label in charts.evaluate_all("svgs => svgs.map(s => s.getAttribute('aria-label'))"):
        assert label and ":" in label
    assert "道里区" in page.inner_text("#timeliness-charts")
    # the bars say what the API says: the district's share, then its handling levels
    acked = kpis["timeliness"]["districts"]["230102000000"]["acknowledged_within_sla"]
    bars = page.locator('#timeliness-charts figure[data-figure="acknowledged_within_sla"] g.fig')
    assert bars.evaluate_all("gs => gs.map(g => g.dataset.label)") == [
        "道里区", "社区", "街道", "区县", "市"]
    assert float(bars.first.get_attribute("data-value") or "nan") == acked["share"]
    expect(bars.first).to_contain_text(f"({acked['within']}/{acked['due']})")
    assert acked["due"] >= 1
    expect(page.locator("#timeliness h3")).to_have_text("时效与完整性")
    shot(page, "after-09-timeliness-zh.png")
    page.click("#lang")
    expect(page.locator("#timeliness h3")).to_have_text("Timeliness and completeness")
    assert "Daoli" in page.inner_text("#timeliness-charts")
    shot(page, "after-10-timeliness-en.png")
    assert page.js_errors == []
