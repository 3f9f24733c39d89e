"""The API's mirror on the Kafka runtime (``app.kafka_mode.KafkaMirror``) skips what it
cannot read, counts and logs it, and reads on — on the real broker.

Poison: a corrupt lz4 record batch on ``jiahe.events`` (made as in
tests/streams/kafka/test_poison.py: an lz4 frame whose content checksum is wrong, so
kafka-python's poll raised on it for ever), the same on ``jiahe.warnings``, and a
warnings record that is not JSON. Valid events and records before and after each must
all reach the home.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import lz4.frame
import orjson
import pytest
from kafka import KafkaProducer

from app.bootstrap import bootstrap_embedded
from app.kafka_mode import KafkaMirror
from streams.kafka.settings import KafkaSettings, Topics
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.test_poison import corrupt_lz4, event, publish_unreadable_batch

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker


def record(n: int) -> dict[str, object]:
    return {"type": "warning.raised", "warning_id": f"w-{n:016d}", "rule_id": "violence-injury",
            "household_id": f"hh-{n}", "level": "red", "org_unit": "230102001001",
            "handling_level": "community", "handling_org_unit": "230102001001",
            "at": f"2026-11-01T0{n % 10}:00:00Z"}


def send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, key=b"hh", value=value)
        producer.flush()
    finally:
        producer.close()


def send_corrupt_batch(bootstrap: str, topic: str, values: list[bytes],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka.record.default_records as records

    with monkeypatch.context() as patch:
        patch.setattr(records, "lz4_encode", corrupt_lz4)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=200,
                                 compression_type="lz4")
        try:
            for value in values:
                producer.send(topic, key=b"hh", value=value)
            producer.flush()
        finally:
            producer.close()


def test_the_mirror_skips_poison_counts_it_and_mirrors_the_rest(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics = Topics.with_prefix(kafka_topic_prefix)
    create_topic_set(bootstrap, topics, 1)
    good_events = [event(f"hh-good-{n}", n) for n in range(1, 5)]
    send(bootstrap, topics.events, good_events[:2])
    publish_unreadable_batch(bootstrap, topics.events, monkeypatch)
    send(bootstrap, topics.events, good_events[2:])
    send(bootstrap, topics.warnings, [orjson.dumps(record(1)), b"{not json"])
    send_corrupt_batch(bootstrap, topics.warnings, [orjson.dumps(record(n)) for n in (7, 8)],
                       monkeypatch)
    send(bootstrap, topics.warnings, [orjson.dumps(record(2))])
    assert lz4.frame  # the corrupt batches above are lz4 frames

    runtime = bootstrap_embedded(tmp_path / "home")
    mirror = KafkaMirror(KafkaSettings(bootstrap, kafka_topic_prefix), runtime,
                         threading.Lock(), on_new=lambda: None)
    wanted_events = {orjson.loads(e)["event_id"] for e in good_events}
    caplog.set_level(logging.ERROR, logger="app.kafka_mode")
    mirror.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            with mirror.lock:
                db = runtime.log.db
                got = {row[0] for row in db.execute("SELECT event_id FROM events")}
                warnings = {row[0] for row in db.execute("SELECT warning_id FROM lifecycle")}
            if got >= wanted_events and len(warnings) == 2:
                break
            assert time.monotonic() < deadline, (got, warnings, mirror.skipped)
            time.sleep(0.5)
        time.sleep(1.0)  # nothing else may arrive
        assert mirror._thread.is_alive()
    finally:
        mirror.stop()
        runtime.close()

    poisoned = {orjson.loads(e)["event_id"] for e in
                [event("hh-poisoned-batch", 100 + n) for n in range(5)]}
    assert got == wanted_events and not got & poisoned
    assert warnings == {"w-0000000000000001", "w-0000000000000002"}
    assert mirror.skipped == 3  # two unreadable batches and one record that is not JSON
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "could not be read" in logged and "(lz4)" in logged and "not JSON" in logged
