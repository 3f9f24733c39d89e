"""``jiahe replay`` (``app.replay.replay_lines``): an event the engine raises on is a
dead letter (``--rejects-out``, with its reason) and the replay goes on, as in the
processors (``streams.step``).

FAULT INJECTION: ``FaultyEngine`` (tests.streams.test_step_engine_faults) is the real
engine with the default pack, raising for one household; the rest is real.
"""

from __future__ import annotations

import io

import orjson

from app.replay import replay_lines
from events.instants import parse_instant
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from tests.streams.test_step import visit
from tests.streams.test_step_engine_faults import BAD_HOUSEHOLD, FAULT, FaultyEngine

AS_OF = parse_instant("2026-11-02T00:00:00+08:00")


def _replay(engine: Engine, lines: list[bytes]) -> tuple[Replay, bytes, list[dict[str, object]]]:
    runner, out, rejects = Replay(engine), io.BytesIO(), io.BytesIO()
    replay_lines(runner, lines, out, AS_OF, rejects)
    return runner, out.getvalue(), [orjson.loads(x) for x in rejects.getvalue().splitlines()]


def test_an_engine_fault_is_a_dead_letter_for_that_event_and_the_replay_goes_on() -> None:
    good = [visit("hh-1", 1), visit("hh-2", 3)]
    bad = visit(BAD_HOUSEHOLD, 2)
    runner, written, rejects = _replay(FaultyEngine(load_pack()), [good[0], bad, good[1]])

    assert rejects == [{"line": 2, "reason": f"engine error: RuntimeError: {FAULT}",
                        "raw": bad.decode()}]
    counts = runner.counts
    assert (counts.received, counts.processed, counts.rejected) == (3, 2, 1)
    assert counts.reconciles
    # the other households' records, exactly as without the faulty event
    _, expected, none = _replay(Engine(load_pack()), good)
    assert written == expected != b"" and none == []


def test_a_replay_without_rejects_out_still_goes_on() -> None:
    runner = Replay(FaultyEngine(load_pack()))
    out = io.BytesIO()
    replay_lines(runner, [visit(BAD_HOUSEHOLD, 1), visit("hh-1", 2)], out, AS_OF)
    assert (runner.counts.processed, runner.counts.rejected) == (1, 1)
    assert {orjson.loads(x)["household_id"] for x in out.getvalue().splitlines()} == {"hh-1"}
