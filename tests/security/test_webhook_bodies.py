"""Webhook bodies name a household by its pseudonymous key, unless the subscription was
allowed personal data."""

from __future__ import annotations

from pathlib import Path

from alerts.egress import EgressGuard
from alerts.routing import Grouping
from privacy.pseudonym import deployment_secret, household_key
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE, PSEUDONYM_SECRET
from tests.api.conftest import Receiver
from tests.security.webhooks import SECRET, home_with, raised, worker_for

HOUSEHOLD = "hh-王某某-13800000000"


def _key(tmp_path: Path, household: str) -> str:
    log = SqliteLog(tmp_path / LOG_FILE)
    try:
        return household_key(deployment_secret() or log.secret(PSEUDONYM_SECRET), household)
    finally:
        log.close()


def test_a_webhook_body_carries_the_household_key_unless_personal_data_is_allowed(
        tmp_path: Path) -> None:
    home_with(tmp_path, raised("w-1", HOUSEHOLD))
    receiver = Receiver()
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]))
    try:
        plain = store.create("chair", "230102000000", "red", None, receiver.url + "/plain",
                             SECRET)
        personal = store.create("chair", "230102000000", "red", None,
                                receiver.url + "/personal", SECRET, personal_data=True)
        assert not plain.personal_data and personal.public()["personal_data"] is True
        assert [s.personal_data for s in store.all()] == [False, True]
        worker.enqueue_new()
        assert worker.dispatch_due() == 2
    finally:
        worker.stop()
        store.close()
        receiver.close()
    [pseudonymous] = receiver.at("/plain")
    assert HOUSEHOLD.encode() not in pseudonymous.body
    assert "household_id" not in pseudonymous.body.decode()
    body = pseudonymous.json()
    key = _key(tmp_path, HOUSEHOLD)
    assert body["warning"]["household_key"] == key == body["record"]["household_key"]
    assert body["warning"]["warning_id"] == "w-1" and body["warning"]["level"] == "red"
    [named] = receiver.at("/personal")
    assert named.json()["warning"]["household_id"] == HOUSEHOLD
    assert named.json()["record"]["household_id"] == HOUSEHOLD


def test_a_grouped_webhook_body_is_pseudonymous_too(tmp_path: Path) -> None:
    home_with(tmp_path, raised("w-a", HOUSEHOLD), raised("w-b", "hh-other"))
    receiver = Receiver()
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]))
    worker.grouping = Grouping(wait_s=0, interval_s=60)
    try:
        store.create("chair", "230102000000", "red", None, receiver.url + "/grouped", SECRET)
        worker.enqueue_new()
        assert worker.dispatch_due() == 2
    finally:
        worker.stop()
        store.close()
        receiver.close()
    [post] = receiver.at("/grouped")
    assert HOUSEHOLD.encode() not in post.body and b"hh-other" not in post.body
    keys = [a["warning"]["household_key"] for a in post.json()["alerts"]]
    assert keys == [_key(tmp_path, HOUSEHOLD), _key(tmp_path, "hh-other")]
