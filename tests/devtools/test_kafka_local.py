"""Real-broker tests for devtools.kafka_local and streams.kafka.admin (no mocks, no skips)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from devtools import kafka_local
from streams.kafka import admin as kafka_admin
from streams.kafka.admin import DLQ_TOPIC, EVENTS_TOPIC, WARNINGS_TOPIC

if TYPE_CHECKING:  # imported for real by pytest_plugins, so its asserts get rewritten
    from tests.kafka_fixtures import KafkaBroker

pytest_plugins = ["tests.kafka_fixtures"]


def _round_trip(bootstrap: str, topic: str, group: str) -> None:
    """Produce one keyed record with acks=all and read it back through a consumer group."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        meta = producer.send(topic, key=b"household-42", value=b'{"kind":"visit"}').get(30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group,
        auto_offset_reset="earliest", consumer_timeout_ms=20_000,
    )
    try:
        got = next(iter(consumer))
    finally:
        consumer.close()
    assert (got.key, got.value) == (b"household-42", b'{"kind":"visit"}')
    assert (got.partition, got.offset) == (meta.partition, meta.offset)


def _configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    """Topic -> non-default config values, as the broker reports them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        raw = admin.describe_configs(resources)
    finally:
        admin.close()
    return {t: {k: v["value"] for k, v in cfg.items()} for t, cfg in raw["topic"].items()}


def _listening_socket() -> socket.socket:
    """Hold a loopback port busy, as another program would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_local.BrokerInfo]:
    """A broker private to this module, so topic assertions see no other test's topics."""
    data_dir = tmp_path_factory.mktemp("own-kafka")
    info = kafka_local.start(data_dir)
    yield info
    kafka_local.stop(data_dir)


def test_stop_and_status_without_broker(tmp_path: Path) -> None:
    assert kafka_local.stop(tmp_path) is False
    assert kafka_local.status(tmp_path) is None


def test_session_broker_round_trip(kafka_broker: KafkaBroker, kafka_topic_prefix: str) -> None:
    topic = kafka_topic_prefix + "rt"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    _round_trip(kafka_broker.bootstrap, topic, group=kafka_topic_prefix + "g")


def test_start_on_running_dir_returns_same_broker(own_broker: kafka_local.BrokerInfo) -> None:
    again = kafka_local.start(own_broker.data_dir)
    assert again == own_broker
    assert kafka_local.status(own_broker.data_dir) == own_broker
    assert own_broker.bootstrap.startswith("127.0.0.1:")
    assert "Kafka Server started" in own_broker.log_path.read_text()


def test_create_topics_is_idempotent(own_broker: kafka_local.BrokerInfo) -> None:
    bootstrap = own_broker.bootstrap
    first = kafka_admin.create_topics(bootstrap, partitions=3, compacted=["t.latest"])
    second = kafka_admin.create_topics(bootstrap, partitions=3, compacted=["t.latest"])
    names = {EVENTS_TOPIC, WARNINGS_TOPIC, DLQ_TOPIC, "t.latest"}
    assert first == dict.fromkeys(names, "created")
    assert second == dict.fromkeys(names, "exists")
    assert kafka_admin.describe(bootstrap) == dict.fromkeys(names, 3)
    configs = _configs(bootstrap, sorted(names))
    for topic in (EVENTS_TOPIC, WARNINGS_TOPIC, DLQ_TOPIC):
        assert configs[topic]["retention.ms"] == "-1"
    assert configs["t.latest"]["cleanup.policy"] == "compact"


def test_events_topic_round_trip(own_broker: kafka_local.BrokerInfo) -> None:
    kafka_admin.create_topics(own_broker.bootstrap, partitions=3)
    _round_trip(own_broker.bootstrap, EVENTS_TOPIC, group="rt-events")


def test_stop_then_restart_keeps_data(tmp_path: Path) -> None:
    info = kafka_local.start(tmp_path)
    kafka_admin.create_topics(info.bootstrap, partitions=2)
    assert kafka_local.stop(tmp_path) is True
    assert kafka_local.status(tmp_path) is None
    assert not (tmp_path / "broker.json").exists()
    assert kafka_local.stop(tmp_path) is False
    again = kafka_local.start(tmp_path)
    try:
        assert again.pid != info.pid
        assert again.bootstrap == info.bootstrap
        assert kafka_admin.describe(again.bootstrap)[EVENTS_TOPIC] == 2
    finally:
        assert kafka_local.stop(tmp_path) is True


def test_busy_controller_port_formats_fresh_storage(tmp_path: Path) -> None:
    info = kafka_local.start(tmp_path)
    kafka_local.stop(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", info.controller_port))
        blocker.listen()
        again = kafka_local.start(tmp_path)
    try:
        assert again.controller_port != info.controller_port
        assert (tmp_path / f"kraft-c{again.controller_port}" / "meta.properties").is_file()
        assert kafka_local.is_ready(again.bootstrap)
    finally:
        kafka_local.stop(tmp_path)


def test_failed_start_kills_broker_and_quotes_log(tmp_path: Path) -> None:
    with _listening_socket() as blocker:
        busy = int(blocker.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(kafka_local.KafkaLocalError) as err:
            kafka_local.start(tmp_path, port=busy, timeout_s=60)
    assert time.monotonic() - started < 60, "a dead broker should fail fast, not time out"
    assert "kafka.out (tail)" in str(err.value)
    assert kafka_local.status(tmp_path) is None
    assert not (tmp_path / "broker.json").exists()
