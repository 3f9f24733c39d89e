"""The processor's bounded state cache changes memory, never output.

A cache of 10 households evicts on every batch of the 800-household sample
stream, so every later event of a household goes through a reload from
``household_state``; the lifecycle records (with their hash chain), the stored
states and the dead letters must equal those of a cache that never evicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.instants import parse_instant
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.clock import EventTimeClock
from streams.embedded.log import SqliteLog
from streams.embedded.processor import (
    DEFAULT_STATE_CACHE,
    STATE_CACHE_ENV,
    EmbeddedProcessor,
    state_cache_setting,
)
from streams.embedded.runtime import EmbeddedRuntime

AS_OF = parse_instant("2026-11-25T00:00:00+08:00")
TINY = 10
UNBOUNDED = 10**9
BATCH = 200


def outputs(log: SqliteLog) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the processor writes, in a comparable form."""
    db = log.db
    return {
        "lifecycle": db.execute(
            "SELECT seq, household_id, warning_id, type, body, prev_hash, hash "
            "FROM lifecycle ORDER BY seq").fetchall(),
        "household_state": db.execute(
            "SELECT household_id, state, next_due FROM household_state "
            "ORDER BY household_id").fetchall(),
        "dead_letters": db.execute(
            "SELECT reason, event_id, household_id, body FROM dead_letters "
            "WHERE stage = 'process' ORDER BY id").fetchall(),
        "checkpoints": db.execute("SELECT * FROM checkpoints ORDER BY consumer").fetchall(),
    }


def published(home: Path, lines: list[bytes]) -> EmbeddedRuntime:
    runtime = bootstrap_embedded(home, batch_size=BATCH)
    runtime.publish(lines, source="test")
    return runtime


@pytest.mark.parametrize(
    "clock",
    [EventTimeClock(AS_OF), EventTimeClock(AS_OF, live=True)],
    ids=["deadlines at the end", "deadlines after every batch"],
)
def test_a_tiny_cache_writes_exactly_what_an_unbounded_one_writes(
    tmp_path: Path, sample_stream: Path, clock: EventTimeClock
) -> None:
    lines = sample_stream.read_bytes().splitlines()
    results = {}
    for cache in (TINY, UNBOUNDED):
        runtime = published(tmp_path / str(cache), lines)
        try:
            processor = EmbeddedProcessor(
                runtime.log, runtime.engine, batch_size=BATCH, state_cache=cache)
            report = processor.run(clock)
            results[cache] = (report.as_dict(), outputs(runtime.log))
        finally:
            runtime.close()
    tiny_report, tiny_out = results[TINY]
    full_report, full_out = results[UNBOUNDED]
    assert len(full_out["household_state"]) > 20 * TINY  # the tiny cache really evicted
    assert full_out["lifecycle"], "the sample stream raises warnings"
    assert tiny_out == full_out
    assert tiny_report == full_report


def test_the_cache_holds_at_most_its_bound_between_batches(
    tmp_path: Path, sample_stream: Path
) -> None:
    runtime = published(tmp_path / "home", sample_stream.read_bytes().splitlines())
    try:
        processor = EmbeddedProcessor(
            runtime.log, runtime.engine, batch_size=BATCH, state_cache=TINY)
        sizes: list[int] = []
        processor.run(EventTimeClock(AS_OF), progress=lambda _: sizes.append(len(processor.states)))
        stored = runtime.log.db.execute("SELECT count(*) FROM household_state").fetchone()[0]
    finally:
        runtime.close()
    assert len(sizes) > 10
    assert max(sizes) == TINY
    assert len(processor.states) == TINY
    assert stored > 20 * TINY


def test_evicted_states_are_reloaded_in_one_query_per_batch(
    tmp_path: Path, sample_stream: Path
) -> None:
    runtime = published(tmp_path / "home", sample_stream.read_bytes().splitlines())
    loads: list[int] = []
    real_load = runtime.log.load_states

    def counting_load(household_ids: Any) -> dict[str, bytes]:
        ids = list(household_ids)
        loads.append(len(ids))
        return real_load(ids)

    runtime.log.load_states = counting_load  # type: ignore[method-assign]
    try:
        processor = EmbeddedProcessor(
            runtime.log, runtime.engine, batch_size=BATCH, state_cache=TINY)
        report = processor.run(EventTimeClock(AS_OF))
    finally:
        runtime.close()
    assert report.batches > 1
    # one call per batch at most (plus the deadlines fired at the end)
    assert 0 < len(loads) <= report.batches + 1
    assert sum(loads) > len(loads)  # each call carries a batch's misses, not one household


def test_a_crash_with_a_tiny_cache_resumes_to_the_replay_of_the_file(
    tmp_path: Path, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash drops the cache with the transaction; the next run reloads what was committed."""
    lines = sample_stream.read_bytes().splitlines()
    runtime = published(tmp_path / "home", lines)
    original = runtime.log.append_lifecycle
    calls = {"n": 0}

    def crash_on_sixth_batch(records: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("simulated crash inside the batch transaction")
        return original(records)

    try:
        monkeypatch.setattr(runtime.log, "append_lifecycle", crash_on_sixth_batch)
        with pytest.raises(RuntimeError):
            EmbeddedProcessor(runtime.log, runtime.engine, batch_size=BATCH,
                              state_cache=TINY).run(EventTimeClock(AS_OF))
        assert 0 < runtime.log.checkpoint("processor") < runtime.log.end_position()
        monkeypatch.setattr(runtime.log, "append_lifecycle", original)
        EmbeddedProcessor(runtime.log, runtime.engine, batch_size=BATCH,
                          state_cache=TINY).run(EventTimeClock(AS_OF))
        got = [orjson.loads(e.body) for e in runtime.log.read_lifecycle(0, 10**9)]
    finally:
        runtime.close()
    replay = Replay(Engine(load_pack()))
    want = replay.feed_all(lines) + replay.finish(AS_OF)
    assert got == want


def test_the_cache_size_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(STATE_CACHE_ENV, raising=False)
    assert state_cache_setting() == DEFAULT_STATE_CACHE
    monkeypatch.setenv(STATE_CACHE_ENV, "2500")
    assert state_cache_setting() == 2500
    assert state_cache_setting(40) == 40


@pytest.mark.parametrize("raw", ["lots", "0", "-5"])
def test_a_bad_cache_size_is_refused_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(STATE_CACHE_ENV, raw)
    with pytest.raises(ValueError, match="state cache|JIAHE_STATE_CACHE"):
        state_cache_setting()
