"""In-memory index of each household's next deadline, per partition.

Why: the wall-clock timer must find the households whose deadline has come without
reading every state in the table each tick. The table stays the truth; this index is
rebuilt from it whenever partitions are assigned and kept current as states are written.
One heap per partition lets the worker fire only partitions it owns (and, with an
event-time clock, only those it has caught up on). Heap entries are invalidated lazily:
an entry counts only while it matches the household's current ``(due, partition)``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

#: A partition's heap is compacted when it holds more than this many entries and more
#: than twice as many as there are live deadlines in the whole index.
COMPACT_AT = 1024


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._current: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._current)

    def update(self, household_id: str, partition: int, next_due: int | None) -> None:
        """Record the household's next deadline (None: nothing pending)."""
        if next_due is None:
            self._current.pop(household_id, None)
            return
        entry = (next_due, partition)
        if self._current.get(household_id) == entry:
            return
        self._current[household_id] = entry
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (next_due, household_id))
        if len(heap) > COMPACT_AT and len(heap) > 2 * len(self._current):
            self._compact(partition)

    def _compact(self, partition: int) -> None:
        """Drop the stale entries of one partition's heap.

        Without this, a household whose next deadline moves later (a new warning, a
        later gap) leaves its old entry behind until that old time comes: in a live
        worker that is days, and the heap grew with every event in a soak.
        """
        heap = [(due, household_id) for due, household_id in self._heaps[partition]
                if self._current.get(household_id) == (due, partition)]
        heapq.heapify(heap)
        self._heaps[partition] = heap

    def replace_partition(
        self, partition: int, items: Iterable[tuple[str, int | None]]
    ) -> None:
        """Forget what was known about ``partition`` and load (household, next due) pairs."""
        self.drop_partition(partition)
        heap: list[tuple[int, str]] = []
        for household_id, due in items:
            if due is not None:
                self._current[household_id] = (due, partition)
                heap.append((due, household_id))
        heapq.heapify(heap)
        self._heaps[partition] = heap

    def drop_partition(self, partition: int) -> None:
        for _, household_id in self._heaps.pop(partition, []):
            entry = self._current.get(household_id)
            if entry is not None and entry[1] == partition:
                del self._current[household_id]

    def partitions(self) -> set[int]:
        return set(self._heaps)

    def pop_due(self, partition: int, limit: int) -> list[str]:
        """Households of ``partition`` with a deadline due ≤ ``limit``, removed from the index.

        The caller fires them and calls :meth:`update` with their new next deadline.
        """
        heap = self._heaps.get(partition)
        due_now: list[str] = []
        while heap and heap[0][0] <= limit:
            due, household_id = heapq.heappop(heap)
            if self._current.get(household_id) == (due, partition):
                del self._current[household_id]
                due_now.append(household_id)
        return due_now

    def earliest(self) -> int | None:
        """The earliest pending deadline known (for status output)."""
        return min((due for due, _ in self._current.values()), default=None)
