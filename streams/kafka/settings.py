"""What a worker needs to know, gathered in one frozen value.

Topic names are configurable (``JIAHE_KAFKA_TOPIC_PREFIX`` or ``--topic-prefix``) so that
tests and several deployments can share one broker without seeing each other's data;
the defaults are DESIGN.md's ``jiahe.events`` / ``jiahe.warnings`` / ``jiahe.dlq``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from streams.kafka.admin import DLQ_TOPIC, EVENTS_TOPIC, WARNINGS_TOPIC

PREFIX_ENV = "JIAHE_KAFKA_TOPIC_PREFIX"
DEFAULT_APP_ID = "jiahe-worker"
ALERTS_TOPIC = "jiahe.alerts."
#: Workers → the surge desk (``streams.kafka.surges``); made by a worker whose pack has
#: surge rules, with one partition (the desk reads it in order).
SURGE_TOPIC = "jiahe.surge"


@dataclass(frozen=True)
class Topics:
    """The topics a worker reads and writes (``surge`` only with surge rules)."""

    events: str = EVENTS_TOPIC
    warnings: str = WARNINGS_TOPIC
    dlq: str = DLQ_TOPIC
    surge: str = SURGE_TOPIC

    @classmethod
    def with_prefix(cls, prefix: str | None = None) -> Topics:
        """DESIGN's names behind ``prefix`` (default: ``$JIAHE_KAFKA_TOPIC_PREFIX`` or none)."""
        prefix = os.environ.get(PREFIX_ENV, "") if prefix is None else prefix
        return cls(prefix + EVENTS_TOPIC, prefix + WARNINGS_TOPIC, prefix + DLQ_TOPIC,
                   prefix + SURGE_TOPIC)


@dataclass(frozen=True)
class WorkerSettings:
    """Everything ``jiahe worker`` is told; instants are epoch microseconds."""

    bootstrap: str
    partitions: int
    data_dir: Path
    topics: Topics = field(default_factory=Topics)
    app_id: str = DEFAULT_APP_ID
    #: Event-time clock: fire deadlines due ≤ as_of once caught up; None = wall clock.
    as_of: int | None = None
    #: Most events handed to the engine at once (= max records of one fetch). Each batch
    #: waits twice for the broker's acks (records, then state); on a backlog 10,000 gave
    #: 29–34k events/s against 21–28k for 2,000 (BENCHMARKS.md, Kafka runtime).
    batch: int = 10_000
    warehouse: str = "none"
    #: "rocksdb" (rocksdict), "memory", or "auto" (rocksdb when rocksdict imports).
    store: str = "auto"
    session_timeout_s: float = 30.0
    #: How often the deadline timer looks at the clock.
    tick_s: float = 1.0
    #: Wall clock: how far a deadline trails the broker time a partition was read up to
    #: (or now, once it has no lag) before it fires; ``streams.kafka.app``.
    lateness_s: float = 5.0
    commit_interval_s: float = 1.0
    #: Most events per second handled (None = as fast as it can): leaves CPU to other
    #: services on a shared host, and keeps a catching-up worker from flooding a warehouse.
    max_rate: float | None = None
    replication: int = 1
    log_level: str = "warning"
    pack: Path | None = None
    #: The public quarantine keys by day that dead letters are sealed with
    #: (``privacy.quarantine``, written by ``jiahe quarantine-keys``); None: bodies withheld.
    quarantine_keys: Path | None = None

    @property
    def fetch_limit(self) -> int:
        """Most events per fetch: ``batch``, cut to one second's worth under ``max_rate``
        so that no throttling pause outlasts the consumer group's poll interval."""
        if self.max_rate is None:
            return self.batch
        return min(self.batch, max(1, int(self.max_rate)))


@dataclass(frozen=True)
class KafkaSettings:
    """Where the Kafka runtime is; ``topic_prefix`` as for ``jiahe worker``."""

    bootstrap: str
    topic_prefix: str = ""

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    def alerts_topic(self, district: str) -> str:
        """``jiahe.alerts.<6-digit district code>``: one topic per district."""
        return f"{self.topic_prefix}{ALERTS_TOPIC}{district[:6]}"
