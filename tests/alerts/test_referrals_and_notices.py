"""Routing beyond warnings, without a server: referral records to the addressed agency,
break-glass notices to the chairs of the household's place, and what their mails say.

The HTTP end to end (real server, real receiver and SMTP server) is in
``tests/api/test_partner_subscriptions.py`` and ``tests/api/test_break_glass.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from access.break_glass import BreakGlass
from access.users import User, UserStore
from alerts.channels.email import render
from alerts.delivery import DeliveryWorker
from alerts.notices import NOTICE, notify_break_glass, referral_body
from alerts.routing import Silence, silenced_by
from alerts.subscriptions import Subscription, SubscriptionStore
from events.instants import now_micros
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE
from tests.api.conftest import LOOPBACK_EGRESS, Receiver
from tests.helpers import T0, envelope, line

HOME = "230102001001"
SENT = {"type": "referral.sent", "referral_id": "ref:1", "household_id": "hh-1",
        "agency": "police", "basis": "emergency", "warning_id": None,
        "at": "2026-11-01T00:00:00Z"}
ACCEPTED = {"type": "referral.accepted", "referral_id": "ref:1", "household_id": "hh-1",
            "agency": "police", "at": "2026-11-01T05:00:00Z"}
RAISED = {"type": "warning.raised", "warning_id": "w-1", "rule_id": "violence-injury",
          "household_id": "hh-1", "level": "red", "org_unit": HOME,
          "handling_level": "community", "handling_org_unit": HOME,
          "at": "2026-11-01T00:00:00Z"}
WARNING = {"warning_id": "w-1", "rule_id": "violence-injury", "level": "red",
           "org_unit": HOME, "district": "230102000000", "household_id": "hh-1"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (the one the API tests use)."""
    peer = Receiver()
    yield peer
    peer.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SubscriptionStore]:
    subs = SubscriptionStore.at_home(tmp_path, LOOPBACK_EGRESS)
    yield subs
    subs.close()


def _sub(agency: str | None, org_unit: str = "230102000000",
         channel: str = "webhook") -> Subscription:
    return Subscription("s", "someone", org_unit, "yellow", None, channel, "http://x", "k",
                        agency)


def test_an_agency_subscription_takes_its_referrals_in_scope_and_never_a_warning() -> None:
    police = _sub("police")
    assert police.takes_referral("police", HOME)
    assert not police.takes_referral("court", HOME)  # another agency's
    assert not police.takes_referral("police", "230103001001")  # outside its org unit
    assert not police.takes_referral("police", None)  # a household never seen
    assert not _sub("police", channel="kafka").takes_referral("police", HOME)
    assert not police.matches(WARNING)  # never a warning, whatever its level or place
    chair = _sub(None)
    assert chair.matches(WARNING) and not chair.takes_referral("police", HOME)
    assert _sub("police").public()["agency"] == "police"
    assert "agency" not in chair.public()


def test_referral_records_reach_only_the_addressed_agency(tmp_path: Path,
                                                          store: SubscriptionStore,
                                                          receiver: Receiver) -> None:
    log = SqliteLog(tmp_path / LOG_FILE)
    log.publish([line(envelope("petition.received", "hh-1", T0, {
        "channel": "walk_in", "category": "other", "urgent": False}, HOME))], "test")
    with log.transaction():
        log.append_lifecycle([RAISED, SENT, ACCEPTED, {**SENT, "household_id": "hh-unknown",
                                                       "referral_id": "ref-2"}])
    police = store.create("police102", "230102000000", "yellow", None,
                          receiver.url + "/unit-police", "k" * 16, agency="police",
                          personal_data=True)  # the body as stored, household id and all
    store.create("court102", "230102000000", "yellow", None, receiver.url + "/unit-court",
                 "k" * 16, agency="court")
    store.create("police103", "230103000000", "yellow", None,
                 receiver.url + "/unit-police103", "k" * 16, agency="police")
    store.create("chair102", "230102000000", "yellow", None, receiver.url + "/unit-chair",
                 "k" * 16)
    worker = DeliveryWorker(tmp_path, store, max_attempts=2, backoff_s=0)
    try:
        assert worker.enqueue_new() == 3  # police: sent + accepted; the chair: the raise
        assert worker.dispatch_due() == 3
        assert worker.enqueue_new() == 0
    finally:
        worker.stop()
        log.close()
    got = [r.json() for r in receiver.at("/unit-police")]
    assert [g["transition"] for g in got] == ["referral.sent", "referral.accepted"]
    assert got[0]["subscription_id"] == police.id
    assert got[0]["referral"] == {"referral_id": "ref:1", "agency": "police",
                                  "household_id": "hh-1", "org_unit": HOME,
                                  "district": "230102000000"}
    assert got[0]["record"] == SENT
    assert receiver.at("/unit-court") == [] and receiver.at("/unit-police103") == []
    assert [r.json()["transition"] for r in receiver.at("/unit-chair")] == ["warning.raised"]


def test_a_dead_referral_delivery_keeps_an_id_with_colons(store: SubscriptionStore) -> None:
    sub = store.create("police102", "230102000000", "yellow", None, "http://127.0.0.1:9/x",
                       "k" * 16, agency="police")
    assert store.enqueue(sub.id, "ref:1", "referral.sent", referral_body(sub.id, SENT, HOME))
    [due] = store.due(now_micros())
    assert store.mark_failed(due, "HTTP 500", max_attempts=1, next_attempt_us=0)
    [dead] = store.dead_letters(sub.id)
    assert (dead["warning_id"], dead["transition"]) == ("ref:1", "referral.sent")


def test_the_break_glass_notice_goes_to_chairs_covering_the_household(
    tmp_path: Path, store: SubscriptionStore
) -> None:
    users = UserStore.at_home(tmp_path)
    try:
        for name, role, unit, agency in (
                ("chair102", "chair", "230102000000", None),
                ("chair-street", "chair", "230102001000", None),
                ("chair-other", "chair", "230102002000", None),
                ("admin", "city_admin", "230100000000", None),
                ("police", "partner", "230100000000", "police")):
            users.add(name, role, unit, agency)
            store.create(name, unit, "red", ["violence-injury"], f"http://127.0.0.1:9/{name}",
                         "k" * 16, agency=agency)
        grant = BreakGlass.of(users).grant(User("chair103", "chair", "230103000000"),
                                           "hh-1", HOME, "a reason", now_micros())
        shown = grant.public(now_micros())
        assert notify_break_glass(store, users, shown) == 2  # whatever their filters
        assert notify_break_glass(store, users, shown) == 0  # once per subscription
    finally:
        users.close()
    db = sqlite3.connect(tmp_path / "alerts.sqlite3")
    try:
        rows = db.execute("SELECT s.owner, d.warning_id, d.transition, d.body FROM deliveries d "
                          "JOIN subscriptions s ON s.id = d.subscription_id ORDER BY s.owner"
                          ).fetchall()
    finally:
        db.close()
    assert [(owner, wid, kind) for owner, wid, kind, _ in rows] == [
        ("chair-street", grant.id, NOTICE), ("chair102", grant.id, NOTICE)]
    notice = orjson.loads(rows[0][3])["notice"]
    assert notice["reason"] == "a reason" and notice["household_id"] == "hh-1"
    assert notice["user"] == "chair103"


def test_mails_carry_neither_household_nor_free_text() -> None:
    mail = render(referral_body("s", ACCEPTED, HOME), "duty@police.example")
    text = mail.get_content()
    assert "ref:1" in text and "police" in text and "accepted" in text
    assert "hh-1" not in text and "hh-1" not in str(mail["Subject"])
    assert "/v1/referrals" in text
    notice = {"grant_id": "bg-1", "user": "chair103", "role": "chair",
              "scope": "230103000000", "household_id": "hh-1", "owner_org_unit": HOME,
              "district": "230102000000", "reason": "王某某 called the hotline",
              "granted_at": "2026-11-01T00:00:00Z", "expires_at": "2026-11-01T04:00:00Z"}
    body = orjson.dumps({"subscription_id": "s", "transition": NOTICE, "notice": notice})
    mail = render(body, "chair@fulian.example")
    text = mail.get_content()
    assert "bg-1" in text and "chair103" in text and "2026-11-01T04:00:00Z" in text
    assert "hh-1" not in text and "王某某" not in text and "/v1/break-glass" in text


def test_an_old_store_gains_the_agency_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "alerts.sqlite3")
    db.execute("CREATE TABLE subscriptions (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
               "org_unit TEXT NOT NULL, min_level TEXT NOT NULL, rule_ids TEXT, "
               "channel TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, "
               "created_at TEXT NOT NULL)")
    db.execute("INSERT INTO subscriptions VALUES ('old', 'chair', '230102000000', 'red', "
               "NULL, 'webhook', 'http://x', 'k', '2026-01-01T00:00:00Z')")
    db.commit()
    db.close()
    store = SubscriptionStore.at_home(tmp_path, LOOPBACK_EGRESS)
    try:
        [old] = store.all()
        assert old.id == "old" and old.agency is None and not old.personal_data
        assert store.create("p", "230102000000", "yellow", None, "http://127.0.0.1:9/y", "k",
                            agency="court").agency == "court"
    finally:
        store.close()


def test_after_a_reopening_a_resolution_is_still_never_silenced() -> None:
    """Transitions of a reopened warning end in ``#n`` (rules.transitions); a silence
    still never holds back its resolution, and mails name what happened."""
    silence = Silence("x", "chair", "230102000000", None, None, None, 0, 1 << 62)
    assert silenced_by([silence], WARNING, "warning.acknowledged#1") is silence
    assert silenced_by([silence], WARNING, "warning.resolved#1") is None
    assert silenced_by([silence], WARNING, "warning.resolved") is None
    body = orjson.dumps({"subscription_id": "s", "transition": "warning.resolved#1",
                         "warning": WARNING, "record": {"at": "2026-11-01T00:00:00Z"}})
    assert "resolved (after reopening 1)" in render(body, "a@b.example").get_content()
    assessed = orjson.dumps({**orjson.loads(body),
                             "transition": "warning.assessed:high@2026-11-01T00:00:00Z"})
    assert "assessed: risk high" in render(assessed, "a@b.example").get_content()
