"""Erasure markers on Kafka: the compacted ``jiahe.erasures`` topic.

Shredding a household's key (``privacy.keystore``) makes its sealed fields unreadable
everywhere, but projections rebuilt from the topics also need to *know* the household
is erased, to show it as ``erased:<household_key>`` while keeping every count. The
events topic cannot say so (it is the immutable record of what happened, and an
erasure is not a domain event of the household), so the marker goes to a topic of its
own: key = household_id, value = ``{"household_id", "erased_at"}``, log-compacted so it
keeps one marker per household forever and stays small. Re-erasing re-sends the marker
(idempotent for readers).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

ERASURES_TOPIC = "jiahe.erasures"
_TIMEOUT_MS = 30_000
_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


def erasures_topic(prefix: str = "") -> str:
    """The erasures topic next to ``prefix``'s events/warnings/DLQ topics."""
    return prefix + ERASURES_TOPIC


def ensure_topic(bootstrap: str, topic: str, partitions: int = 1, replication: int = 1) -> None:
    """Create the compacted topic if missing (one partition: a handful of markers)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=_TIMEOUT_MS)
    try:
        response = admin.create_topics(
            [NewTopic(topic, partitions, replication,
                      topic_configs={"cleanup.policy": "compact"})],
            timeout_ms=_TIMEOUT_MS, raise_errors=False)
        for result in response["topics"]:
            if result.get("error_code", 0) not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {topic!r} failed: error "
                                   f"{result.get('error_code')}: {result.get('error_message')}")
        admin.wait_for_topics([topic], timeout_ms=_TIMEOUT_MS)
    finally:
        admin.close()


def publish_erasure(bootstrap: str, topic: str, household_id: str, erased_at: str) -> None:
    """Send one marker and wait for the broker's acknowledgement (acks=all)."""
    ensure_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             max_block_ms=_TIMEOUT_MS, allow_auto_create_topics=False)
    try:
        value = orjson.dumps({"household_id": household_id, "erased_at": erased_at})
        producer.send(topic, key=household_id.encode(), value=value).get(
            timeout=_TIMEOUT_MS / 1000)
    finally:
        producer.close(timeout=10)


def read_erasures(bootstrap: str, topic: str, timeout_s: float = 60) -> dict[str, str]:
    """household_id -> erased_at for every marker in the topic (empty if it does not exist)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             allow_auto_create_topics=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        markers: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s:g}s")
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    marker: Any = orjson.loads(message.value) if message.value else None
                    if isinstance(marker, dict) and isinstance(marker.get("household_id"), str):
                        markers[marker["household_id"]] = str(marker.get("erased_at", ""))
        return markers
    finally:
        consumer.close()
