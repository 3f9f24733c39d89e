"""Reminders for red warnings (``alerts.routing.due_repeats``) follow the warning's
current cycle: a reopened red warning is reminded of again until it is acknowledged
again, with reminder names of its own cycle."""

from __future__ import annotations

from pathlib import Path

import orjson

from alerts.routing import due_repeats
from alerts.subscriptions import SubscriptionStore

INTERVAL_US = 60_000_000
T0 = 1_800_000_000_000_000


def _deliver(store: SubscriptionStore, sub_id: str, transition: str, at_us: int,
             level: str = "red") -> None:
    body = orjson.dumps({"transition": transition, "record": {"type": transition},
                         "warning": {"warning_id": "w-1", "level": level}})
    assert store.enqueue(sub_id, "w-1", transition, body)
    store.db.execute("UPDATE deliveries SET enqueued_us = ? WHERE transition = ?",
                     (at_us, transition))


def _due(store: SubscriptionStore, now: int) -> list[str]:
    return [r.transition for r in due_repeats(store, now, INTERVAL_US)]


def test_reminders_stop_at_acknowledgement_and_resume_after_a_reopening(
    tmp_path: Path
) -> None:
    store = SubscriptionStore.at_home(tmp_path)
    sub = store.create("chair", "230102000000", "yellow", None, "mailto:chair@example.org",
                       "k" * 16, channel="email")
    _deliver(store, sub.id, "warning.raised", T0)
    assert _due(store, T0 + INTERVAL_US - 1) == []
    assert _due(store, T0 + 2 * INTERVAL_US) == ["warning.repeat:2"]
    _deliver(store, sub.id, "warning.acknowledged", T0 + 3 * INTERVAL_US)
    _deliver(store, sub.id, "warning.resolved", T0 + 4 * INTERVAL_US)
    assert _due(store, T0 + 9 * INTERVAL_US) == []
    reopened = T0 + 10 * INTERVAL_US
    _deliver(store, sub.id, "warning.reopened#1", reopened)
    assert _due(store, reopened + INTERVAL_US // 2) == []  # a whole interval after the reopening
    assert _due(store, reopened + INTERVAL_US) == ["warning.repeat:1#1"]
    assert _due(store, reopened + 3 * INTERVAL_US) == ["warning.repeat:3#1"]
    _deliver(store, sub.id, "warning.acknowledged#1", reopened + 4 * INTERVAL_US)
    assert _due(store, reopened + 9 * INTERVAL_US) == []
    _deliver(store, sub.id, "warning.resolved#1", reopened + 5 * INTERVAL_US)
    second = reopened + 6 * INTERVAL_US
    _deliver(store, sub.id, "warning.reopened#2", second)
    assert _due(store, second + 2 * INTERVAL_US) == ["warning.repeat:2#2"]
    store.close()


def test_a_reopened_cycle_resolved_without_acknowledgement_is_not_reminded(
    tmp_path: Path
) -> None:
    store = SubscriptionStore.at_home(tmp_path)
    sub = store.create("chair", "230102000000", "yellow", None, "mailto:chair@example.org",
                       "k" * 16, channel="email")
    _deliver(store, sub.id, "warning.raised", T0)
    _deliver(store, sub.id, "warning.resolved", T0 + 1)
    _deliver(store, sub.id, "warning.reopened#1", T0 + 2)
    _deliver(store, sub.id, "warning.resolved#1", T0 + 3)
    assert _due(store, T0 + 5 * INTERVAL_US) == []
    store.close()


def test_yellow_warnings_are_never_reminded(tmp_path: Path) -> None:
    store = SubscriptionStore.at_home(tmp_path)
    sub = store.create("chair", "230102000000", "yellow", None, "mailto:chair@example.org",
                       "k" * 16, channel="email")
    _deliver(store, sub.id, "warning.raised", T0, level="yellow")
    assert _due(store, T0 + 5 * INTERVAL_US) == []
    store.close()
