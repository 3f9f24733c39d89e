"""The live processor's check for due deadlines after each batch, without scanning its cache.

After every batch the processor fires what the clock has reached. It finds the due
households in the stored due index plus the states the batch changed (not stored
yet): every other cached state is stored exactly as it is in memory. These tests
hold that this finds exactly what a scan of the whole cache finds, batch after batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import bootstrap_embedded
from events.instants import parse_instant
from streams.clock import EventTimeClock
from streams.embedded.processor import EmbeddedProcessor, _Batch

AS_OF = parse_instant("2026-11-25T00:00:00+08:00")
BATCH = 200


class ScanCheckingProcessor(EmbeddedProcessor):
    """Compares, at every deadline check, the households due with a scan of the cache."""

    checks: list[tuple[int, int]]

    def _fire_into(self, batch: _Batch, limit: int | None) -> None:
        if limit is not None:
            scanned = {h for h, s in self.states.items()
                       if s.next_due is not None and s.next_due <= limit}
            stored = set(self.log.households_due(limit))
            # what the batch changed is all the due index may not know yet
            assert scanned - stored <= batch.dirty
            found = stored | {h for h in batch.dirty
                              if (d := self.states[h].next_due) is not None and d <= limit}
            # stored ∖ cached: due households evicted from the cache (they load)
            assert found & set(self.states) == scanned
            self.checks.append((len(scanned), len(found)))
        super()._fire_into(batch, limit)


@pytest.mark.parametrize("cache", [10, 10**9], ids=["tiny cache", "unbounded cache"])
def test_the_due_index_and_the_batch_find_what_a_scan_of_the_cache_finds(
    tmp_path: Path, sample_stream: Path, cache: int
) -> None:
    runtime = bootstrap_embedded(tmp_path, batch_size=BATCH)
    try:
        runtime.publish(sample_stream.read_bytes().splitlines(), source="test")
        processor = ScanCheckingProcessor(runtime.log, runtime.engine, batch_size=BATCH,
                                          state_cache=cache)
        processor.checks = []
        report: Any = processor.run(EventTimeClock(AS_OF, live=True))
    finally:
        runtime.close()
    assert report.batches >= 25 and len(processor.checks) > report.batches
    # deadlines really were due mid-log, so the comparison was not between empty sets
    assert sum(scanned for scanned, _ in processor.checks) > 0
    assert sum(report.records.values()) > 0
