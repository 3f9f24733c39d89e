"""The delivery loop without a server: re-reading lifecycle records never repeats a delivery."""

from __future__ import annotations

import time
from pathlib import Path

from alerts.delivery import CHECKPOINT, DeliveryWorker, verify_signature
from alerts.subscriptions import SubscriptionStore
from rules.transitions import transition_of
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE
from tests.api.conftest import LOOPBACK_EGRESS, Receiver

RAISED = {"type": "warning.raised", "warning_id": "w-1", "rule_id": "violence-injury",
          "household_id": "hh-1", "level": "red", "org_unit": "230102001001",
          "handling_level": "community", "handling_org_unit": "230102001001",
          "at": "2026-11-01T00:00:00Z"}
ESCALATED = {"type": "warning.escalated", "warning_id": "w-1", "household_id": "hh-1",
             "from_level": "community", "to_level": "street",
             "handling_org_unit": "230102001000", "at": "2026-11-02T00:00:00Z"}


def test_redelivery_after_checkpoint_loss_sends_nothing_twice(tmp_path: Path,
                                                              receiver: Receiver) -> None:
    log = SqliteLog(tmp_path / LOG_FILE)
    with log.transaction():
        log.append_lifecycle([RAISED, ESCALATED])
    store = SubscriptionStore.at_home(tmp_path, LOOPBACK_EGRESS)
    store.create("chair", "230102000000", "orange", None, receiver.url + "/unit", "k" * 16)
    store.create("other", "230103000000", "yellow", None, receiver.url + "/unit-other",
                 "k" * 16)
    worker = DeliveryWorker(tmp_path, store, max_attempts=2, backoff_s=0)
    try:
        assert worker.enqueue_new() == 2
        assert worker.dispatch_due() == 2
        with log.transaction():  # a crash before the checkpoint moved: records are re-read
            log.set_checkpoint(CHECKPOINT, 0)
        worker._warnings.clear()
        assert worker.enqueue_new() == 0
        assert worker.dispatch_due() == 0
    finally:
        worker.stop()
    got = receiver.at("/unit")
    assert [r.json()["transition"] for r in got] == ["warning.raised",
                                                     "warning.escalated:street"]
    assert got[1].json()["warning"]["level"] == "red"  # looked up from the raise record
    assert verify_signature("k" * 16, got[0].headers["X-Jiahe-Signature"], got[0].body,
                            time.time())
    assert receiver.at("/unit-other") == []
    assert transition_of(ESCALATED) == "warning.escalated:street"
    store.close()
    log.close()


def test_a_reassignment_is_delivered_and_its_resend_is_not(tmp_path: Path,
                                                           receiver: Receiver) -> None:
    assigned = {"type": "warning.assigned", "warning_id": "w-1", "household_id": "hh-1",
                "assignee": "li", "at": "2026-11-02T00:00:00Z"}
    reassigned = {**assigned, "assignee": "wang", "at": "2026-11-03T00:00:00Z"}
    log = SqliteLog(tmp_path / LOG_FILE)
    with log.transaction():
        log.append_lifecycle([RAISED, assigned, reassigned])
    store = SubscriptionStore.at_home(tmp_path, LOOPBACK_EGRESS)
    store.create("chair", "230102000000", "yellow", None, receiver.url + "/assign", "k" * 16)
    worker = DeliveryWorker(tmp_path, store, max_attempts=2, backoff_s=0)
    try:
        assert worker.enqueue_new() == 3
        assert worker.dispatch_due() == 3
        with log.transaction():  # the Kafka mirror or a crash may bring a record again
            log.append_lifecycle([reassigned])
        assert worker.enqueue_new() == 0
    finally:
        worker.stop()
    got = [r.json() for r in receiver.at("/assign")]
    assert [g["transition"] for g in got] == [
        "warning.raised", "warning.assigned:li@2026-11-02T00:00:00Z",
        "warning.assigned:wang@2026-11-03T00:00:00Z"]
    store.close()
    log.close()
