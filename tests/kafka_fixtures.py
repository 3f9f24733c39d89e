"""Pytest plugin: a real Kafka broker for the test session.

Enable with ``pytest_plugins = ["tests.kafka_fixtures"]`` in tests/conftest.py.

``kafka_broker`` uses the broker named by ``$JIAHE_KAFKA_BOOTSTRAP`` when set (CI or a
developer's long-running broker), otherwise starts a private one from the Maven jars via
:mod:`devtools.kafka_local` and stops it when the session ends. It never skips: a broker
that cannot be reached or started is a test error carrying the reason, because tests
that silently skip Kafka would let the streaming path rot unnoticed.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools import kafka_local

BOOTSTRAP_ENV = "JIAHE_KAFKA_BOOTSTRAP"


@dataclass(frozen=True)
class KafkaBroker:
    """Where the session's broker is; ``info`` is None for an external broker."""

    bootstrap: str
    info: kafka_local.BrokerInfo | None


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A reachable Kafka broker for the whole session (external or started here)."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        if not kafka_local.is_ready(external, timeout_s=30):
            pytest.fail(f"{BOOTSTRAP_ENV}={external} does not answer a metadata request",
                        pytrace=False)
        yield KafkaBroker(bootstrap=external, info=None)
        return
    data_dir = tmp_path_factory.mktemp("kafka-broker")
    try:
        info = kafka_local.start(data_dir)
    except kafka_local.KafkaLocalError as exc:
        pytest.fail(f"could not start the local Kafka broker:\n{exc}", pytrace=False)
    try:
        yield KafkaBroker(bootstrap=info.bootstrap, info=info)
    finally:
        kafka_local.stop(data_dir)


@pytest.fixture
def kafka_topic_prefix(request: pytest.FixtureRequest) -> str:
    """A per-test topic/group prefix, so tests sharing one broker never see each other's data.

    Kafka topic names allow ``[a-zA-Z0-9._-]``; the test name is squashed into that.
    """
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:80].strip("-")
    return f"t.{name}.{uuid.uuid4().hex[:8]}."
