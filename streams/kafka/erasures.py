"""Keep erased households out of the worker's warehouse directory.

``jiahe erase HH --bootstrap`` shreds the household's key and publishes a marker to the
compacted erasures topic (``streams.kafka.erasure_topic``). A worker with a warehouse follows
that topic and deletes the household's directory row, so its ledgers show
``erased:<household_key>`` while every count stays — as the embedded runtime does
after each projection. A worker rebuilding the warehouse from the topics (a fresh
app id) reads every marker at start, so a rebuilt warehouse is erased too.

The topic is read by a background task (never in the fetch loop: a slow broker must
not pause processing); the deletes run between batches, where nothing else writes
to the warehouse. A row re-written by a later event of an erased household is
deleted again right after that batch's flush.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from projections.warehouse.sqlbase import SqlWarehouse
from streams.kafka.admin import EVENTS_TOPIC
from streams.kafka.erasure_topic import ERASURES_TOPIC, read_erasures

if TYPE_CHECKING:
    from projections.warehouse.base import Warehouse

log = logging.getLogger(__name__)


def erasures_topic_for(events_topic: str) -> str:
    """The erasures topic beside an events topic (same prefix)."""
    return events_topic.removesuffix(EVENTS_TOPIC) + ERASURES_TOPIC


class ErasureWatcher:
    """Erased household ids, refreshed from the erasures topic every ``interval_s``."""

    def __init__(self, bootstrap: str, topic: str, interval_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.interval_s = interval_s
        self.erased: set[str] = set()
        self._applied: set[str] = set()
        self._next = 0.0
        self._task: asyncio.Task[None] | None = None

    def poll(self) -> None:
        """Start a background read of the topic when one is due and none is running."""
        now = time.monotonic()
        if now < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = now + self.interval_s
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            markers = await asyncio.to_thread(read_erasures, self.bootstrap, self.topic, 30.0)
        except Exception as exc:  # kafka-python raises many types; try again next time
            log.warning("could not read erasure markers from %s: %r", self.topic, exc)
            return
        self.erased.update(markers)

    def due(self, written: Iterable[str] = ()) -> set[str]:
        """Households whose directory row must be deleted now: newly erased ones, and
        erased ones among the households just ``written`` to the warehouse."""
        return (self.erased - self._applied) | (self.erased & set(written))

    def keep_erased(self, warehouse: Warehouse, households: set[str]) -> None:
        """Delete those households' directory rows (blocking: run it in a thread)."""
        for household_id in sorted(households):
            warehouse.erase_household(household_id)
        new = households - self._applied
        if new and isinstance(warehouse, SqlWarehouse):
            # the delete above only hides the rows: rewrite the parts without them, once
            warehouse.purge_erased(new)
        if new:
            log.info("erased households kept out of the warehouse: %d",
                     len(self._applied | households))
        self._applied |= households
