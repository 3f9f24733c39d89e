"""The worker's deadline index stays as large as the live deadlines, not the event count."""

from __future__ import annotations

from streams.kafka.due_index import COMPACT_AT, DueIndex


def test_a_deadline_that_keeps_moving_later_does_not_grow_the_heap() -> None:
    index = DueIndex()
    for step in range(50 * COMPACT_AT):
        index.update("hh-moving", 0, 1_000_000 + step)
    index.update("hh-still", 0, 5)
    heap_size = len(index._heaps[0])  # noqa: SLF001 - the size is the point of the test
    assert heap_size <= COMPACT_AT + 1
    assert len(index) == 2


def test_compaction_keeps_every_live_deadline_and_drops_only_stale_ones() -> None:
    index = DueIndex()
    for household in range(10):
        index.update(f"hh-{household}", household % 3, 100 + household)
    for step in range(3 * COMPACT_AT):  # stale entries for hh-0, forcing compactions
        index.update("hh-0", 0, 10_000 + step)
    due = sorted(index.pop_due(0, 1_000) + index.pop_due(1, 1_000) + index.pop_due(2, 1_000))
    assert due == sorted(f"hh-{h}" for h in range(1, 10))
    assert index.pop_due(0, 10_000 + 3 * COMPACT_AT) == ["hh-0"]
    assert len(index) == 0
