"""A field app's publisher in live mode refuses an event dated more than ten minutes
after its receipt (``events.freshness``): reported with the reason and kept as a dead
letter, never queued for ``jiahe.events``; the same event replayed from a file (not
live) is history and is kept. ``flush=False``: nothing here touches the network."""

from __future__ import annotations

from pathlib import Path

from events.freshness import FROM_THE_FUTURE, MAX_FUTURE_MINUTES
from events.instants import MICROS_PER_MINUTE, format_instant, now_micros
from sdk.publisher import Publisher
from tests.sdk.test_publisher import event


def _dated(us: int, i: int) -> dict[str, object]:
    return {**event("hh-live", i), "occurred_at": format_instant(us)}


def test_live_publishing_refuses_events_from_the_future(tmp_path: Path) -> None:
    now = now_micros()
    soon = _dated(now + (MAX_FUTURE_MINUTES - 1) * MICROS_PER_MINUTE, 1)
    ahead = _dated(now + (MAX_FUTURE_MINUTES + 5) * MICROS_PER_MINUTE, 2)
    with Publisher("127.0.0.1:1", tmp_path / "live.sqlite3", live=True) as live:
        result = live.publish([soon, ahead], flush=False)
        assert (result.accepted, result.rejected) == (1, 1)
        assert result.rejections[0].index == 2  # 1-based, as line numbers
        assert result.rejections[0].reason.startswith(FROM_THE_FUTURE)
        counts = live.outbox.counts()
        assert counts.pending == 1 and counts.dead_letters_pending == 1
    with Publisher("127.0.0.1:1", tmp_path / "file.sqlite3") as replayed:
        result = replayed.publish([soon, ahead], flush=False)
        assert (result.accepted, result.rejected) == (2, 0)
