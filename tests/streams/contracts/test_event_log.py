"""``EventLog``: order, positions, duplicates by event_id, refused input kept with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import orjson

from events.codec import Decoded, Rejected, decode
from streams.embedded.log import SqliteLog
from streams.memory import MemoryLog
from streams.ports import DeadLetters, EventLog
from tests.streams.contracts.base import Contract, visit_line


class LogWithDeadLetters(EventLog, DeadLetters, Protocol):
    """Refused input is visible through the dead letters of the same log."""


def event_ids(log: EventLog, after: int = 0, limit: int = 100) -> list[str]:
    return [orjson.loads(e.body)["event_id"] for e in log.read_events(after, limit)]


def decoded(text: str) -> Decoded:
    item = decode(text)
    assert isinstance(item, Decoded)
    return item


class EventLogContract(Contract[LogWithDeadLetters]):
    def test_an_empty_log_ends_at_position_zero(self, adapter: LogWithDeadLetters) -> None:
        assert adapter.end_position() == 0
        assert adapter.read_events(0, 10) == []

    def test_positions_start_at_one_and_follow_the_input_order(
        self, adapter: LogWithDeadLetters
    ) -> None:
        lines = [visit_line(f"hh-{n}", f"e-{n}") for n in (3, 1, 2)]
        counts = adapter.publish(lines, "test")
        assert counts.as_dict() == {"received": 3, "accepted": 3, "duplicates": 0,
                                    "rejected": 0}
        entries = adapter.read_events(0, 10)
        assert [e.position for e in entries] == [1, 2, 3]
        assert event_ids(adapter) == [decoded(text).event_id for text in lines]
        assert [e.fingerprint for e in entries] == [decoded(text).fingerprint for text in lines]
        assert adapter.end_position() == 3

    def test_reads_page_by_position_after_and_limit(self, adapter: LogWithDeadLetters) -> None:
        adapter.publish([visit_line("hh-1", f"e-{n}") for n in range(5)], "test")
        assert [e.position for e in adapter.read_events(2, 2)] == [3, 4]
        assert [e.position for e in adapter.read_events(4, 10)] == [5]
        assert adapter.read_events(5, 10) == []

    def test_a_duplicate_is_counted_and_takes_no_position(
        self, adapter: LogWithDeadLetters
    ) -> None:
        a, b, c = (visit_line("hh-1", eid) for eid in ("a", "b", "c"))
        adapter.publish([a, b], "test")
        counts = adapter.publish([a, c], "test")
        assert (counts.accepted, counts.duplicates, counts.rejected) == (1, 1, 0)
        assert [e.position for e in adapter.read_events(0, 10)] == [1, 2, 3]
        assert event_ids(adapter) == [decoded(x).event_id for x in (a, b, c)]
        assert adapter.dead_letter_counts() == {}

    def test_same_event_id_with_other_content_is_a_conflict_kept_as_a_dead_letter(
        self, adapter: LogWithDeadLetters
    ) -> None:
        first = visit_line("hh-1", "a")
        other = visit_line("hh-1", "a", at="2026-03-02T08:00:00Z")
        adapter.publish([first], "test")
        counts = adapter.publish([other], "test")
        assert (counts.received, counts.accepted, counts.rejected) == (1, 0, 1)
        assert adapter.end_position() == 1
        assert adapter.read_events(0, 1)[0].fingerprint == decoded(first).fingerprint
        assert adapter.dead_letter_counts() == {"ingest": 1}
        (reason, n), = adapter.dead_letter_reasons()
        assert "conflict" in reason and n == 1

    def test_invalid_input_is_a_dead_letter_and_blank_lines_are_not_input(
        self, adapter: LogWithDeadLetters
    ) -> None:
        counts = adapter.publish(["{not json", "", "   ", visit_line("hh-1", "a")], "test")
        assert counts.as_dict() == {"received": 2, "accepted": 1, "duplicates": 0,
                                    "rejected": 1}
        assert adapter.dead_letter_counts() == {"ingest": 1}
        assert adapter.end_position() == 1

    def test_each_batch_is_reported_after_it_is_appended(
        self, adapter: LogWithDeadLetters
    ) -> None:
        sizes: list[tuple[int, int]] = []
        lines = [visit_line("hh-1", f"e-{n}") for n in range(5)]
        adapter.publish(lines, "test", batch_size=2,
                        on_batch=lambda n: sizes.append((n, adapter.end_position())))
        assert sizes == [(2, 2), (2, 4), (1, 5)]

    def test_publish_decoded_gives_a_status_per_item_in_order(
        self, adapter: LogWithDeadLetters
    ) -> None:
        a = decoded(visit_line("hh-1", "a"))
        conflict = decoded(visit_line("hh-1", "a", at="2026-03-02T08:00:00Z"))
        invalid = Rejected("org_unit: unknown", b"{}", "x", "hh-2")
        counts, statuses = adapter.publish_decoded([a, a, conflict, invalid], "http:test")
        assert statuses[:2] == ["accepted", "duplicate"]
        assert statuses[2].startswith("rejected: ") and "conflict" in statuses[2]
        assert statuses[3] == "rejected: org_unit: unknown"
        assert counts.as_dict() == {"received": 4, "accepted": 1, "duplicates": 1,
                                    "rejected": 2}
        assert adapter.dead_letter_counts() == {"ingest": 2}

    def test_recorded_at_is_stamped_on_events_that_lack_it(
        self, adapter: LogWithDeadLetters
    ) -> None:
        adapter.publish([visit_line("hh-1", "a")], "test")
        body = orjson.loads(adapter.read_events(0, 1)[0].body)
        assert isinstance(body["recorded_at"], str) and body["recorded_at"]


class TestSqliteEventLog(EventLogContract):
    def make_adapter(self, tmp_path: Path) -> SqliteLog:
        return SqliteLog(tmp_path / "log.sqlite3")


class TestMemoryEventLog(EventLogContract):
    def make_adapter(self, tmp_path: Path) -> MemoryLog:
        return MemoryLog()
