"""An event the engine raises on is a dead letter for that event, never a stopped runtime.

FAULT INJECTION: the engine's rules never raise on valid input, so these tests use
:class:`FaultyEngine`, the real engine with the default pack whose ``apply`` raises for
one chosen household. Everything else (decoding, the step, the embedded processor, the
SQLite log) is real.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, Rejected, decode
from events.instants import parse_instant
from rules.engine import Engine, Outcome
from rules.pack import load_pack
from rules.replay import Replay
from rules.state import HouseholdState
from streams.clock import EventTimeClock
from streams.embedded.processor import EmbeddedProcessor
from streams.step import apply_batch
from tests.streams.test_step import Store, visit

BAD_HOUSEHOLD = "hh-bad"
FAULT = "injected fault"


class FaultyEngine(Engine):
    """FAULT INJECTION: the real engine, raising for every event of ``BAD_HOUSEHOLD``
    after it started to change the state (as a bug halfway through a rule would)."""

    def apply(self, state: HouseholdState, decoded: Decoded) -> Outcome:
        if decoded.household_id == BAD_HOUSEHOLD:
            state.seen[decoded.event.event_id] = decoded.fingerprint
            raise RuntimeError(FAULT)
        return super().apply(state, decoded)


def test_the_event_is_refused_with_the_exception_and_the_batch_goes_on() -> None:
    items = [visit("hh-1", 1), visit(BAD_HOUSEHOLD, 2), visit("hh-2", 3), visit(BAD_HOUSEHOLD, 4)]
    store = Store()
    result = apply_batch(items, decode, store.load, FaultyEngine(load_pack()))

    reason = f"engine error: RuntimeError: {FAULT}"
    assert [(r.item, r.stage, r.reason, r.household_id) for r in result.refusals] == [
        (items[1], "engine", reason, BAD_HOUSEHOLD),
        (items[3], "engine", reason, BAD_HOUSEHOLD),
    ]
    assert result.refusals[0].event_id == "00000000-0000-4000-8000-000000000002"
    counts = result.counts
    assert (counts.received, counts.processed, counts.duplicates, counts.rejected) == (4, 2, 0, 2)
    assert counts.reconciles
    # the other households as if the bad one had never been sent
    assert result.records == Replay(Engine(load_pack())).feed_all([items[0], items[2]])
    assert [item for item, _ in result.processed] == [items[0], items[2]]
    # what the engine changed before it raised is written back, like any change
    assert result.changed == {"hh-1", "hh-2", BAD_HOUSEHOLD}
    assert set(store.states[BAD_HOUSEHOLD].seen) == {
        "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000004"}


def test_the_embedded_processor_dead_letters_it_and_processes_the_rest(tmp_path: Path) -> None:
    good = [visit("hh-1", 1), visit("hh-2", 3)]
    bad = visit(BAD_HOUSEHOLD, 2)
    runtime = bootstrap_embedded(tmp_path / "home")
    try:
        runtime.publish([good[0], bad, good[1]], source="test")
        processor = EmbeddedProcessor(runtime.log, FaultyEngine(load_pack()))
        report = processor.run(EventTimeClock(parse_instant("2026-11-02T00:00:00+08:00")))
        db = runtime.log.db
        letters = db.execute("SELECT stage, reason, event_id, household_id, body "
                             "FROM dead_letters ORDER BY id").fetchall()
        lifecycle = [row[0] for row in db.execute(
            "SELECT household_id FROM lifecycle ORDER BY seq").fetchall()]
    finally:
        runtime.close()

    assert [letter[:4] for letter in letters] == [
        ("process", f"engine error: RuntimeError: {FAULT}",
         "00000000-0000-4000-8000-000000000002", BAD_HOUSEHOLD)]
    body = orjson.loads(letters[0][4])
    assert body.pop("recorded_at") and body == orjson.loads(bad)  # stamped by the log
    counts = report.counts
    assert (counts.received, counts.processed, counts.rejected) == (3, 2, 1)
    assert set(lifecycle) == {"hh-1", "hh-2"}


def test_an_item_the_decoder_raises_on_is_refused_at_decode() -> None:
    """FAULT INJECTION: decoders refuse bad input with a reason; one that raises instead
    (a bug) costs that item only."""
    items = [visit("hh-1", 1), b"boom", visit("hh-2", 3)]

    def raising_decode(item: bytes) -> Decoded | Rejected:
        if item == b"boom":
            raise ValueError("injected decoder fault")
        return decode(item)

    result = apply_batch(items, raising_decode, Store().load, Engine(load_pack()))

    assert [(r.item, r.stage, r.reason) for r in result.refusals] == [
        (b"boom", "decode", "decode error: ValueError: injected decoder fault")]
    assert (result.counts.received, result.counts.processed) == (3, 2)
    assert result.counts.reconciles
