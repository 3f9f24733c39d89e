"""The surge desk (``streams.kafka.surges``) without a broker: observations of batches
from several partitions, in any order and re-sent, give the records of ``jiahe replay``;
no day closes before every partition's clock mark has passed it.
"""

from __future__ import annotations

import random

import orjson

from events.codec import decode
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.kafka.surges import SurgeDesk, SurgeObservations, marks_message
from tests.rules.test_surge import SURGE_PACK_PATH
from tests.rules.test_surge_runtime import AS_OF, scenario

PARTITIONS = 3
PACK = load_pack(SURGE_PACK_PATH)


def replayed_surges(lines: list[str]) -> list[dict[str, object]]:
    replay = Replay(Engine(PACK))
    records = replay.feed_all(lines) + replay.finish(AS_OF)
    return [r for r in records if r["household_id"] is None]


def observations(lines: list[str]) -> bytes | None:
    """What a worker's batch of these (processed) events sends to the surge topic."""
    batch = SurgeObservations(PACK)
    for line in lines:
        decoded = decode(line)
        batch.observe(decoded.event, decoded.occurred_us)  # type: ignore[union-attr]
    return batch.message()


def batches(lines: list[str], seed: int) -> list[bytes]:
    """The lines spread over partitions, cut into batches, each maybe sent twice."""
    rng = random.Random(seed)
    by_partition: list[list[str]] = [[] for _ in range(PARTITIONS)]
    for line in lines:
        by_partition[rng.randrange(PARTITIONS)].append(line)
    out = []
    for part in by_partition:
        for start in range(0, len(part), 5):
            message = observations(part[start:start + 5])
            assert message is not None
            out += [message, message] if rng.random() < 0.3 else [message]
    rng.shuffle(out)
    return out


def test_the_desk_writes_the_records_of_jiahe_replay_whatever_the_partitions_and_resends():
    lines = scenario()
    expected = replayed_surges(lines)
    assert len(expected) == 4
    for seed in range(5):
        desk = SurgeDesk(PACK, PARTITIONS)
        for offset, message in enumerate(batches(lines, seed)):
            desk.apply(message, offset)
        desk.apply(marks_message({p: AS_OF for p in range(PARTITIONS)}), 10_000)
        assert desk.close() == expected, seed


def test_no_day_closes_before_every_partition_has_a_mark_past_it():
    lines = scenario()
    desk = SurgeDesk(PACK, PARTITIONS)
    desk.apply(observations(lines), 0)
    desk.apply(marks_message({0: AS_OF, 1: AS_OF}), 1)
    assert desk.limit() is None and desk.close() == []
    desk.apply(marks_message({2: AS_OF}), 2)
    assert desk.limit() == AS_OF
    assert desk.close() == replayed_surges(lines)
    assert desk.close() == []  # each close once


def test_the_lowest_mark_is_the_clock_and_marks_never_go_back():
    desk = SurgeDesk(PACK, 2)
    desk.apply(marks_message({0: 500, 1: 300}), 0)
    desk.apply(marks_message({1: 200}), 1)
    assert desk.limit() == 300


def test_the_state_round_trips_and_goes_on_where_it_stopped():
    lines = scenario()
    messages = batches(lines, 7)
    half = len(messages) // 2
    desk = SurgeDesk(PACK, PARTITIONS)
    for offset, message in enumerate(messages[:half]):
        desk.apply(message, offset)
    again = SurgeDesk(PACK, PARTITIONS, desk.to_bytes())
    assert again.offset == half
    for offset, message in enumerate(messages[half:], start=half):
        again.apply(message, offset)
    again.apply(marks_message({p: AS_OF for p in range(PARTITIONS)}), len(messages))
    assert again.close() == replayed_surges(lines)
    assert orjson.loads(again.to_bytes())["offset"] == len(messages) + 1


def test_a_value_that_is_no_message_is_skipped():
    desk = SurgeDesk(PACK, 1)
    desk.apply(b"{not json", 0)
    desk.apply(b"[]", 1)
    assert desk.offset == 2 and desk.limit() is None
