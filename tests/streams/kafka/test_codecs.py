"""Every codec a Kafka producer may use (none, gzip, snappy, lz4, zstd) is read.

The sample stream is cut into five consecutive parts, each published in another codec,
into one ``jiahe.events`` topic on the real broker: once with kcat (an independent
librdkafka client, as field gateways use), once with the project's own producer (the
publisher SDK). The topic is first read batch by batch to prove each codec really is
on it (a producer sends a batch uncompressed when compressing would not shrink it).
Then the worker (aiokafka, which decompresses with cramjam) must emit exactly the
lifecycle records of a replay of the same lines, and the API's mirror on the Kafka
runtime (kafka-python, which uses lz4, python-snappy and zstandard) must copy every
valid event and every record into its home.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.bootstrap import bootstrap_embedded
from app.kafka_mode import KafkaMirror
from events.codec import Decoded, decode
from sdk.publisher import CODECS as SDK_CODECS
from sdk.publisher import Publisher
from streams.kafka.settings import KafkaSettings, Topics
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.codecs import CODECS, batch_codecs, chunks, kcat_path, kcat_publish
from tests.streams.kafka.test_worker import (
    AS_OF,
    BAD_LINES,
    Expected,
    Workers,
    assert_dlq,
    assert_same,
    expected_from,
    read_all,
    wait_for_records,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.kafka_fixtures import KafkaBroker


@pytest.fixture(scope="module")
def stream(sample_stream: Path) -> list[bytes]:
    lines = [line for line in sample_stream.read_bytes().splitlines() if line.strip()]
    return lines + BAD_LINES


@pytest.fixture
def pool(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
         ) -> Iterator[Workers]:
    create_topic_set(kafka_broker.bootstrap, Topics.with_prefix(kafka_topic_prefix), 6)
    workers = Workers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path)
    try:
        yield workers
    finally:
        workers.stop()


def test_the_sdk_offers_every_codec() -> None:
    assert SDK_CODECS == CODECS


def test_kcat_in_every_codec_the_worker_and_the_mirror_read_it_all(
    pool: Workers, stream: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kcat = kcat_path()
    events = Topics.with_prefix(pool.prefix).events
    for codec, part in zip(CODECS, chunks(stream, len(CODECS)), strict=True):
        kcat_publish(kcat, pool.bootstrap, events, part, codec, tmp_path)
    assert set(batch_codecs(pool.bootstrap, events, monkeypatch)) == set(CODECS)

    expected = expected_from(stream, AS_OF)
    pool.start("w1", "--as-of", AS_OF)
    assert_same(wait_for_records(pool, expected), expected)
    assert_dlq(pool, expected)
    assert_mirrored(pool, stream, expected, tmp_path / "api-home")


def test_the_publisher_sdk_in_every_codec_the_worker_reads_it_all(
    pool: Workers, stream: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = Topics.with_prefix(pool.prefix)
    for codec, part in zip(CODECS, chunks(stream, len(CODECS)), strict=True):
        with Publisher(pool.bootstrap, tmp_path / f"outbox-{codec}.sqlite3", topics.events,
                       topics.dlq, compression_type=codec) as publisher:
            result = publisher.publish(part)
        assert result.error is None and result.queued == 0, result
    assert set(batch_codecs(pool.bootstrap, topics.events, monkeypatch)) == set(CODECS)

    # The SDK refuses invalid input itself (to the DLQ) and sends an event id once per
    # outbox: the topic holds the valid events, each once.
    valid = [line for line in stream if isinstance(decode(line), Decoded)]
    on_topic = [message.value for message in read_all(pool.bootstrap, topics.events)]
    expected = replace(expected_from(valid, AS_OF), lines=on_topic)
    pool.start("w1", "--as-of", AS_OF)
    assert_same(wait_for_records(pool, expected), expected)


def test_an_unknown_codec_is_refused_by_the_sdk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="brotli"):
        Publisher("127.0.0.1:1", tmp_path / "outbox.sqlite3", compression_type="brotli")


def assert_mirrored(pool: Workers, stream: list[bytes], expected: Expected, home: Path) -> None:
    """The API's mirror copies every valid event and every lifecycle record into a home."""
    event_ids = {d.event_id for line in stream if isinstance(d := decode(line), Decoded)}
    runtime = bootstrap_embedded(home)
    mirror = KafkaMirror(KafkaSettings(pool.bootstrap, pool.prefix), runtime,
                         threading.Lock(), on_new=lambda: None)
    mirror.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            db = runtime.log.db
            with mirror.lock:
                got = {row[0] for row in db.execute("SELECT event_id FROM events")}
                records = db.execute("SELECT count(*) FROM lifecycle").fetchone()[0]
            if got == event_ids and records == len(expected.records):
                break
            assert time.monotonic() < deadline, (len(got), len(event_ids), records)
            time.sleep(0.5)
    finally:
        mirror.stop()
        runtime.close()
