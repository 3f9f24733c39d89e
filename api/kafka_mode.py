"""The API on the Kafka runtime: a write side through the publisher SDK, a read side mirror.

``jiahe api --bootstrap`` serves the same endpoints as on the embedded runtime, but
the Kafka worker (``jiahe worker``) owns the rules: this process never runs the
processor. Two parts make that work without touching the endpoints:

* **write side** (:class:`KafkaWriter`): input is validated and screened here exactly
  as on the embedded runtime, then accepted events go into the publisher SDK's durable
  outbox (``events.publisher``) and on to ``jiahe.events`` keyed by household; rejected
  input goes to ``jiahe.dlq`` with its reason. The outbox keeps every event_id with its
  fingerprint, which is the idempotency index: a resend answers ``duplicate`` and the
  same id with other content ``rejected`` (conflict). A broker that is away does not
  lose anything: the events stay queued in the outbox and the ticker resends them.
* **read side** (:class:`KafkaMirror`): a consumer thread copies ``jiahe.events`` and
  ``jiahe.warnings`` into the home's own ``log.sqlite3`` (the ``events`` and the
  hash-chained ``lifecycle`` tables) and projects them into the chdb warehouse with
  the embedded runtime's projection code, so ledgers, the inbox, SSE and deliveries
  read what they always read. Kafka offsets are stored as checkpoints of the same log
  (``kafka:<topic>:<partition>``), committed with the lifecycle records they produced;
  a record the worker re-emitted after a crash (at-least-once) is recognised by the
  hash of its content and appended once.

The processor checkpoint of the mirrored log is moved over mirrored events: they were
processed by the worker, so a stray ``jiahe process`` on this home must not raise the
same warnings a second time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from events.codec import Decoded, Rejected
from events.keystore import KafkaKeyring, kafka_keyring
from events.outbox import CONFLICT
from events.publisher import Publisher, PublisherError
from events.sealed import decode_sealed
from streams.embedded import EmbeddedRuntime
from streams.kafka_runtime.settings import Topics
from streams.processor import CONSUMER as PROCESSOR_CONSUMER

OUTBOX_FILE = "api-outbox.sqlite3"
ALERTS_TOPIC = "jiahe.alerts."
MIRROR_TABLE = """
CREATE TABLE IF NOT EXISTS kafka_mirror_records (
    -- sha256 of a mirrored lifecycle record's canonical JSON: re-emitted copies are dropped
    digest TEXT PRIMARY KEY
)
"""
log = logging.getLogger(__name__)


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


class KafkaWriter:
    """Screened input → the publisher's outbox → ``jiahe.events`` / ``jiahe.dlq``."""

    def __init__(self, home: Path, settings: KafkaSettings, flush_timeout_s: float = 10.0
                 ) -> None:
        topics = settings.topics
        # The home's Kafka key store: personal fields are sealed before the outbox, so
        # neither the outbox file nor a topic holds them in clear (events.keystore).
        self.keyring: KafkaKeyring = kafka_keyring(home)
        self.publisher = Publisher(settings.bootstrap, home / OUTBOX_FILE,
                                   topic=topics.events, dlq_topic=topics.dlq,
                                   client_id="jiahe-api", connect_timeout=5.0,
                                   keyring=self.keyring)
        self.flush_timeout_s = flush_timeout_s

    def write(self, items: Sequence[Decoded | Rejected]) -> list[str]:
        """A status per item as ``SqliteLog.publish_decoded`` words it; then try to send.

        Items were decoded and screened here already (scope, commands), so they go
        straight to the outbox, sealed exactly as ``Publisher.publish`` seals them.
        """
        statuses = []
        for outcome in self.publisher.enqueue_checked(items):
            if isinstance(outcome, Rejected):
                statuses.append("rejected: " + outcome.reason)
            elif outcome.status == "conflict":
                statuses.append("rejected: " + CONFLICT)
            else:
                statuses.append(outcome.status)
        self.flush()
        return statuses

    def flush(self) -> str | None:
        """Send what the outbox holds; None when drained, else why it is still queued."""
        try:
            self.publisher.flush(self.flush_timeout_s)
        except PublisherError as exc:
            log.warning("events queued in the API outbox: %s", exc)
            return str(exc)
        return None

    def queued(self) -> int:
        counts = self.publisher.outbox.counts()
        return counts.pending + counts.dead_letters_pending

    def close(self) -> None:
        self.publisher.close()
        self.keyring.close()


def _checkpoint_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


def record_digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


class KafkaMirror:
    """A thread that mirrors the events and warnings topics into the home (see above).

    ``lock`` is the services lock: the runtime's SQLite connection and chdb are shared
    with the request threads. ``on_new`` is called after new lifecycle records landed
    (the delivery loop is woken).
    """

    def __init__(self, settings: KafkaSettings, runtime: EmbeddedRuntime,
                 lock: threading.Lock, on_new: Callable[[], None],
                 poll_ms: int = 200) -> None:
        self.settings = settings
        self.runtime = runtime
        self.lock = lock
        self.on_new = on_new
        self.poll_ms = poll_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jiahe-kafka-mirror",
                                        daemon=True)
        with self.lock:
            self.runtime.log.db.execute(MIRROR_TABLE)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except KafkaError as exc:  # the broker is away: reconnect from the checkpoints
                log.warning("kafka mirror: %s: %s; retrying", type(exc).__name__, exc)
                self._stop.wait(2.0)
            except Exception:  # a bug or a bad record: say so loudly, then retry
                log.exception("kafka mirror")
                self._stop.wait(2.0)

    def _consume(self) -> None:
        topics = self.settings.topics
        consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                 client_id="jiahe-api-mirror", group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 max_poll_records=2000)
        try:
            parts = self._partitions(consumer, (topics.events, topics.warnings))
            if not parts:
                return
            consumer.assign(parts)
            with self.lock:
                for tp in parts:
                    consumer.seek(tp, self.runtime.log.checkpoint(
                        _checkpoint_name(tp.topic, tp.partition)))
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=self.poll_ms)
                if batch:
                    self.apply(batch)
        finally:
            consumer.close()

    def _partitions(self, consumer: KafkaConsumer, names: Sequence[str]
                    ) -> list[TopicPartition]:
        """Every partition of ``names``, once the broker knows them (they may come later)."""
        while not self._stop.is_set():
            found = {name: consumer.partitions_for_topic(name) for name in names}
            if all(found.values()):
                return [TopicPartition(name, p) for name in names for p in sorted(found[name])]
            self._stop.wait(1.0)
        return []

    def apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Mirror one poll's messages; offsets move with what they produced."""
        events = self.settings.topics.events
        decoded: list[Decoded | Rejected] = []
        records: list[dict[str, Any]] = []
        ends: dict[str, int] = {}
        for tp, messages in batch.items():
            ends[_checkpoint_name(tp.topic, tp.partition)] = messages[-1].offset + 1
            for message in messages:
                if tp.topic == events:
                    item = decode_sealed(message.value or b"")
                    # invalid input is the worker's to dead-letter (jiahe.dlq): skip here
                    if isinstance(item, Decoded):
                        decoded.append(item)
                else:
                    records.append(orjson.loads(message.value))
        log_ = self.runtime.log
        with self.lock:
            if decoded:  # duplicates by event_id are ignored by the log itself
                log_.publish_decoded(decoded, source=f"kafka:{events}")
            with log_.transaction() as db:
                fresh = []
                for record in records:
                    cursor = db.execute("INSERT OR IGNORE INTO kafka_mirror_records(digest) "
                                        "VALUES (?)", (record_digest(record),))
                    if cursor.rowcount == 1:
                        fresh.append(record)
                log_.append_lifecycle(fresh)
                for name, offset in ends.items():
                    log_.set_checkpoint(name, offset)
                log_.set_checkpoint(PROCESSOR_CONSUMER, log_.end_position())
            self.runtime.project()
        if records:
            self.on_new()
