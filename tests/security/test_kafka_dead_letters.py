"""Attack: personal data in ``jiahe.dlq`` from a foreign producer, on the real broker.

A client that is not ours (kcat, a Java producer) sends clear text to ``jiahe.events``
that the worker refuses: a name and a phone number in a record that fails validation,
and in one that is not even JSON. The worker holds no household key, yet what it writes
to ``jiahe.dlq`` must not hold the text: it is sealed with the day's quarantine public
key. The API host's key store opens it with the day's private key, until the retention
period is over and the day is purged; then nobody can.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from kafka import KafkaProducer

from events.instants import now_micros
from privacy.keystore import kafka_keyring
from privacy.quarantine import DAY_US
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.test_worker import Workers, read_all

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

NAME, PHONE = "王秀英", "13912345678"
INVALID = orjson.dumps({
    "type": "screening.visit_recorded", "household_id": "hh-foreign",
    "org_unit": "230102001001", "occurred_at": "2026-11-01T09:00:00+08:00",
    "data": {"indicators": ["not-an-indicator"], "notes": f"{NAME} 电话 {PHONE}"},
})
NOT_JSON = f'{{"notes": "{NAME} {PHONE}", broken'.encode()


def _bytes_of(message: object) -> bytes:
    key = getattr(message, "key", None) or b""
    headers = b"".join(k.encode() + v for k, v in getattr(message, "headers", []))
    return key + (getattr(message, "value", None) or b"") + headers


def test_a_foreign_producers_clear_text_is_sealed_in_the_dlq_and_purged_with_its_day(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics.with_prefix(kafka_topic_prefix)
    create_topic_set(kafka_broker.bootstrap, topics, 2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        producer.send(topics.events, key=b"hh-foreign", value=INVALID)
        producer.send(topics.events, value=NOT_JSON)
        producer.flush()
    finally:
        producer.close()

    pool = Workers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path)
    try:
        pool.start("w1", "--store", "memory")
        deadline = time.monotonic() + 120
        letters = read_all(pool.bootstrap, topics.dlq)
        while len(letters) < 2:
            pool.assert_alive()
            assert time.monotonic() < deadline, pool.logs()
            time.sleep(1)
            letters = read_all(pool.bootstrap, topics.dlq)
    finally:
        pool.stop()

    assert len(letters) == 2
    for message in letters:
        raw = _bytes_of(message)
        assert NAME.encode() not in raw and PHONE.encode() not in raw, raw
        assert dict(message.headers)["sealed"] == b"quarantine"
    assert NAME not in pool.logs() and PHONE not in pool.logs()

    # The API host opens them with the day's private key …
    assert {pool.open_letter(m.value) for m in letters} == {INVALID, NOT_JSON}
    # … until the retention period is over: the day's key is purged, the letters stay
    # on the topic (a record cannot be deleted) and can no longer be opened.
    keyring = kafka_keyring(pool.keys_home)
    try:
        assert keyring.purge_quarantine(now_us=now_micros() + 3 * DAY_US, days=1) >= 1
        assert [keyring.open_dead_letter(m.value) for m in letters] == [None, None]
    finally:
        keyring.close()
