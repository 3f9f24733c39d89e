"""The ``kafka`` subscription channel: alerts produced to one topic per district.

A subscription with ``channel = "kafka"`` (Kafka runtime only) has its alerts
produced to ``jiahe.alerts.<6-digit district code>`` of the warning (topic prefix
as for the worker), key = warning_id, value = the very JSON body a webhook gets.
Rows come from the same outbox as webhooks, so each (subscription, warning_id,
transition) is enqueued once; a produce counts as delivered only when the broker
acknowledged it (``acks="all"``), and the header ``delivery`` carries the outbox
key so that a consumer can drop the exact re-send that a crash between the
acknowledgement and the outbox update would cause. Topics are created on first
use (one partition: alerts of a district keep their order).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from streams.kafka.admin import _outcome
from streams.kafka.settings import KafkaSettings

KAFKA_URL = "kafka:"
_TIMEOUT_S = 10.0


class AlertTopics:
    """A producer and an admin client for the district topics, opened on first use."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: Any = None
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def topic_for(self, body: bytes) -> tuple[str, str]:
        """(topic, key) of an outbox body: the warning's district and id, or for a
        break-glass notice (``alerts.notices``) the household's district and the grant id."""
        payload = orjson.loads(body)
        if "notice" in payload:
            notice = payload["notice"]
            return (self.settings.alerts_topic(str(notice["district"])),
                    str(notice["grant_id"]))
        warning = payload["warning"]
        return self.settings.alerts_topic(str(warning["district"])), str(warning["warning_id"])

    def send(self, body: bytes, delivery_key: str) -> str | None:
        """Produce one alert and wait for the broker; None when acknowledged, else why not."""
        topic, warning_id = self.topic_for(body)
        try:
            with self._lock:
                self._ensure(topic)
                if self._producer is None:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.settings.bootstrap, client_id="jiahe-alerts",
                        acks="all", enable_idempotence=True, max_block_ms=int(_TIMEOUT_S * 1000))
                future = self._producer.send(topic, key=warning_id.encode(), value=body,
                                             headers=[("delivery", delivery_key.encode())])
            future.get(timeout=_TIMEOUT_S)
        except KafkaError as exc:
            self._reset()
            return f"{type(exc).__name__}: {exc}"
        return None

    def _ensure(self, topic: str) -> None:
        if topic in self._known:
            return
        admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap,
                                 client_id="jiahe-alerts-admin",
                                 request_timeout_ms=int(_TIMEOUT_S * 1000))
        try:
            spec = {"num_partitions": 1, "replication_factor": 1,
                    "configs": {"retention.ms": "-1"}}
            response = admin.create_topics({topic: spec}, timeout_ms=int(_TIMEOUT_S * 1000),
                                           raise_errors=False)
            if all(_outcome(r) == "created" for r in response["topics"]):
                admin.wait_for_topics([topic], timeout_ms=int(_TIMEOUT_S * 1000))
        except RuntimeError as exc:
            raise KafkaError(str(exc)) from exc
        finally:
            admin.close()
        self._known.add(topic)

    def _reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError):  # closing a broken producer
                producer.close(timeout=1)

    def close(self) -> None:
        self._reset()
