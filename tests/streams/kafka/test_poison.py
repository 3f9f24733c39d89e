"""No record can stop a worker: poison on the real broker becomes dead letters.

Three kinds of poison in one ``jiahe.events`` stream, between the sample stream's lines:

* a record batch the broker accepted but no client can read: five events compressed
  with lz4 whose frame says it carries a content checksum, and the checksum is wrong
  (Kafka's broker does not verify that checksum, librdkafka, cramjam and lz4 do). It
  must become ONE dead letter naming the batch's offsets, and the worker reads on; a
  restarted worker does not meet it again (no crash loop);
* input that does not decode (the sample's malformed lines): one dead letter each;
* an event the engine raises on. FAULT INJECTION: the workers here run
  ``tests.streams.kafka.faulty_worker``, the real worker whose engine raises for one
  household (the rules never raise on valid input); the event is a dead letter with
  the exception, and every other household's records equal a replay.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lz4.frame
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from rules.engine import Engine
from rules.pack import load_pack
from streams.kafka.batch import BatchProcessor, Incoming
from streams.kafka.settings import Topics
from streams.kafka.unreadable import UnreadableBatch
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.faulty_worker import FAULT, FAULTY_HOUSEHOLD
from tests.streams.kafka.test_worker import (
    AS_OF,
    BAD_LINES,
    Workers,
    assert_same,
    committed,
    expected_from,
    publish,
    read_all,
    wait_for_records,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.kafka_fixtures import KafkaBroker

POISONED_HOUSEHOLD = "hh-poisoned-batch"


def event(household: str, n: int) -> bytes:
    """A valid visit with an injury: the default pack raises a warning on it."""
    return orjson.dumps({
        "event_id": str(uuid.UUID(int=n)), "type": "screening.visit_recorded",
        "schema_version": 1, "occurred_at": f"2026-11-01T{9 + n % 10:02d}:00:00+08:00",
        "org_unit": "230102001001", "household_id": household,
        "data": {"indicators": ["injury_observed"], "notes": "poison " * 20},
    })


def corrupt_lz4(payload: Any) -> bytes:
    """An lz4 frame announcing a content checksum, with that checksum wrong."""
    frame = bytearray(lz4.frame.compress(bytes(payload), content_checksum=True,
                                         block_linked=False))
    frame[-1] ^= 0xFF
    return bytes(frame)


def publish_unreadable_batch(bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch
                             ) -> tuple[int, int, int]:
    """Five events of one household as one corrupt lz4 batch: (partition, first, last)."""
    import kafka.record.default_records as records

    with monkeypatch.context() as patch:
        patch.setattr(records, "lz4_encode", corrupt_lz4)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=200,
                                 compression_type="lz4")
        try:
            futures = [producer.send(topic, key=POISONED_HOUSEHOLD.encode(),
                                     value=event(POISONED_HOUSEHOLD, 100 + n))
                       for n in range(5)]
            producer.flush()
            metas = [f.get(timeout=30) for f in futures]
        finally:
            producer.close()
    partitions = {m.partition for m in metas}
    offsets = [m.offset for m in metas]
    assert len(partitions) == 1 and offsets == list(range(offsets[0], offsets[0] + 5))
    return partitions.pop(), offsets[0], offsets[-1]


def end_offsets(bootstrap: str, topic: str) -> int:
    """Records appended to ``topic`` so far (all partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


class FaultyWorkers(Workers):
    """Worker subprocesses running ``tests.streams.kafka.faulty_worker`` (FAULT INJECTION)."""

    module = "tests.streams.kafka.faulty_worker"


@pytest.fixture
def pool(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
         ) -> Iterator[FaultyWorkers]:
    create_topic_set(kafka_broker.bootstrap, Topics.with_prefix(kafka_topic_prefix), 6)
    workers = FaultyWorkers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path)
    try:
        yield workers
    finally:
        workers.stop()


def test_poison_becomes_dead_letters_and_the_worker_reads_on(
    pool: FaultyWorkers, sample_stream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = Topics.with_prefix(pool.prefix)
    lines = [line for line in sample_stream.read_bytes().splitlines() if line.strip()]
    good = lines + BAD_LINES
    fault = event(FAULTY_HOUSEHOLD, 1)
    publish(pool.bootstrap, topics.events, good[:3000])
    partition, first, last = publish_unreadable_batch(pool.bootstrap, topics.events,
                                                      monkeypatch)
    publish(pool.bootstrap, topics.events, [fault, *good[3000:]])
    total = len(good) + 1 + 5
    assert end_offsets(pool.bootstrap, topics.events) == total

    # What the worker emits: the replay of the good lines, as if the poison was not there.
    expected = expected_from(good, AS_OF)
    pool.start("w1", "--as-of", AS_OF)
    got = wait_for_records(pool, replace(expected, lines=[b""] * total))
    assert_same(got, expected)
    pool.assert_alive()

    letters = {stage: [m for m in read_all(pool.bootstrap, topics.dlq)
                       if dict(m.headers)["stage"] == stage.encode()]
               for stage in ("decompress", "engine", "decode")}
    [unreadable] = letters["decompress"]
    headers = dict(unreadable.headers)
    assert headers["source"] == f"{topics.events}/{partition}@{first}-{last}".encode()
    assert unreadable.value == b"" and unreadable.key is None
    reason = headers["reason"].decode()
    assert f"offsets {first}-{last} (lz4)" in reason and "contentChecksum" in reason, reason
    [faulted] = [m for m in letters["engine"] if pool.open_letter(m.value) == fault]
    assert faulted.key == FAULTY_HOUSEHOLD.encode()
    assert dict(faulted.headers)["reason"] == f"engine error: RuntimeError: {FAULT}".encode()
    # the rest is the replay's: malformed lines (decode) and conflicting re-sends (engine)
    others = [m for m in letters["decode"] + letters["engine"] if m is not faulted]
    assert {pool.open_letter(m.value) for m in others} == expected.rejected
    dead_letters = len(read_all(pool.bootstrap, topics.dlq))

    # A restarted worker starts after what was committed: no poison is met twice.
    pool.stop()
    done = committed(pool.bootstrap, pool.group)
    assert done == total
    pool.start("w2", "--as-of", AS_OF)
    deadline = time.monotonic() + 90
    while "assigned partitions" not in (pool.tmp / "w2.log").read_text():
        pool.assert_alive()
        assert time.monotonic() < deadline, pool.logs()
        time.sleep(0.5)
    time.sleep(5)
    pool.assert_alive()
    assert len(read_all(pool.bootstrap, topics.dlq)) == dead_letters
    assert committed(pool.bootstrap, pool.group) == total


def test_an_unreadable_batch_is_one_dead_letter_naming_its_offsets() -> None:
    """The worker's side of a stand-in message (streams.kafka.unreadable), broker-free."""
    visit = event("hh-1", 1)
    marker = UnreadableBatch(11, 15, "record batch at offsets 11-15 (zstd) could not be read")
    messages = [Incoming("t.events", 2, 10, b"hh-1", visit),
                Incoming("t.events", 2, 15, None, marker),
                Incoming("t.events", 2, 16, b"hh-1", event("hh-1", 2))]
    result = BatchProcessor(Engine(load_pack())).process(messages, lambda h, p: None)

    [letter] = result.dead_letters
    assert letter.key is None and letter.value == b""
    assert dict(letter.headers) == {"reason": marker.reason.encode(),
                                    "source": b"t.events/2@11-15", "stage": b"decompress"}
    counts = result.counts
    assert (counts.received, counts.processed, counts.rejected) == (3, 2, 1)
    assert counts.reconciles
    assert result.positions == {2: 17}


def test_a_value_like_the_marker_from_a_producer_is_an_ordinary_record() -> None:
    """Only the consumer makes stand-ins: empty bytes from a producer are bad input."""
    messages = [Incoming("t.events", 0, 3, b"k", b"")]
    result = BatchProcessor(Engine(load_pack())).process(messages, lambda h, p: None)
    [letter] = result.dead_letters
    assert dict(letter.headers)["stage"] == b"decode"
    assert dict(letter.headers)["source"] == b"t.events/0@3"
