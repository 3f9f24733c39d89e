"""Inline projection shares the process with chdb: the state cache gets less memory.

The default cache is smaller with a warehouse sink; an explicit size or
``$JIAHE_STATE_CACHE`` still decides. What a smaller cache changes is memory
only (tests/streams/embedded/test_processor_state_cache.py proves the output identical).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import bootstrap_embedded
from events.instants import parse_instant
from projections.sink import WarehouseSink
from streams.clock import EventTimeClock
from streams.embedded.log import PAGE_CACHE_MIB
from streams.embedded.processor import (
    DEFAULT_STATE_CACHE,
    INLINE_PAGE_CACHE_MIB,
    INLINE_STATE_CACHE,
    STATE_CACHE_ENV,
    EmbeddedProcessor,
    state_cache_setting,
)
from streams.embedded.runtime import EmbeddedRuntime

AS_OF = parse_instant("2026-11-25T00:00:00+08:00")


class _NoWarehouse:
    """Stands in for a warehouse: the processor only hands it to the sink."""

    def write_events(self, rows: Any) -> None:
        raise AssertionError("not flushed in these tests")

    write_lifecycle = write_events

    def release_memory(self) -> None:
        """Called after each flush; nothing to release here."""


def _processor(home: Path, sink: bool, state_cache: int | None = None) -> EmbeddedProcessor:
    runtime = bootstrap_embedded(home)
    options: dict[str, Any] = {"state_cache": state_cache}
    if sink:
        options["sink"] = WarehouseSink(_NoWarehouse(), max_rows=10**9)  # type: ignore[arg-type]
    try:
        return EmbeddedProcessor(runtime.log, runtime.engine, **options)
    finally:
        runtime.close()


def test_a_warehouse_sink_gets_the_smaller_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STATE_CACHE_ENV, raising=False)
    assert INLINE_STATE_CACHE < DEFAULT_STATE_CACHE
    assert _processor(tmp_path / "a", sink=False).state_cache == DEFAULT_STATE_CACHE
    assert _processor(tmp_path / "b", sink=True).state_cache == INLINE_STATE_CACHE


def test_the_argument_and_the_environment_still_decide_with_a_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_CACHE_ENV, "2500")
    assert _processor(tmp_path / "a", sink=True).state_cache == 2500
    assert _processor(tmp_path / "b", sink=True, state_cache=40).state_cache == 40


def test_the_setting_falls_back_to_the_given_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_CACHE_ENV, raising=False)
    assert state_cache_setting(default=123) == 123
    assert state_cache_setting(7, default=123) == 7


def test_the_page_cache_is_bounded_for_the_duration_then_restored(tmp_path: Path) -> None:
    runtime = bootstrap_embedded(tmp_path / "home")
    try:
        pragma = "PRAGMA cache_size"
        before = runtime.log.db.execute(pragma).fetchone()[0]
        with runtime.log.page_cache(32):
            assert runtime.log.db.execute(pragma).fetchone()[0] == -32 * 1024
        assert runtime.log.db.execute(pragma).fetchone()[0] == before == -PAGE_CACHE_MIB * 1024
    finally:
        runtime.close()


class _Recording(WarehouseSink):
    """A sink that remembers SQLite's page-cache size at each flush and writes nothing."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        super().__init__(_NoWarehouse(), max_rows=10**9)  # type: ignore[arg-type]
        self.runtime = runtime
        self.cache_sizes: list[int] = []

    def flush(self) -> int:
        pragma = self.runtime.log.db.execute("PRAGMA cache_size").fetchone()[0]
        self.cache_sizes.append(pragma)
        self._events, self._lifecycle = [], []
        return 0


def test_inline_projection_runs_with_the_smaller_page_cache(tmp_path: Path) -> None:
    runtime = bootstrap_embedded(tmp_path / "home")
    try:
        sink = _Recording(runtime)
        EmbeddedProcessor(runtime.log, runtime.engine, sink=sink).run(EventTimeClock(None))
        after = runtime.log.db.execute("PRAGMA cache_size").fetchone()[0]
    finally:
        runtime.close()
    assert sink.cache_sizes == [-INLINE_PAGE_CACHE_MIB * 1024]  # the final flush
    assert after == -PAGE_CACHE_MIB * 1024


def _outputs_with_due_window(home: Path, lines: list[bytes], window: int) -> tuple[Any, ...]:
    runtime = bootstrap_embedded(home, batch_size=200)
    try:
        runtime.publish(lines, source="test")
        processor = EmbeddedProcessor(runtime.log, runtime.engine, batch_size=200)
        processor.due_window = window
        report = processor.run(EventTimeClock(AS_OF))
        db = runtime.log.db
        return (
            report.as_dict(),
            db.execute("SELECT seq, body, prev_hash, hash FROM lifecycle ORDER BY seq").fetchall(),
            db.execute("SELECT * FROM household_state ORDER BY household_id").fetchall(),
        )
    finally:
        runtime.close()


def test_deadlines_due_at_the_end_fire_identically_in_windows(
    tmp_path: Path, sample_stream: Path
) -> None:
    """Small windows commit many times; the records, their order and hash chain match."""
    lines = sample_stream.read_bytes().splitlines()
    one_pass = _outputs_with_due_window(tmp_path / "one", lines, 10**9)
    windowed = _outputs_with_due_window(tmp_path / "windowed", lines, 3)
    assert one_pass[0]["records_from_deadlines_at_end"] > 10  # the windows really split
    assert windowed == one_pass
