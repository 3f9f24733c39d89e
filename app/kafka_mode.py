"""The API on the Kafka runtime: a write side through the publisher SDK, a read side mirror.

``jiahe api --bootstrap`` serves the same endpoints as on the embedded runtime, but
the Kafka worker (``jiahe worker``) owns the rules: this process never runs the
processor. Two parts make that work without touching the endpoints:

* **write side** (:class:`KafkaWriter`): input is validated and screened here exactly
  as on the embedded runtime, then accepted events go into the publisher SDK's durable
  outbox (``sdk.publisher``) and on to ``jiahe.events`` keyed by household; rejected
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
  hash of its content and appended once. A record batch that cannot be read (it does
  not decompress, its CRC is wrong) or a warnings record that is not a lifecycle record
  is skipped, counted (``KafkaMirror.skipped``) and logged, never retried forever: the
  worker reading the same ``jiahe.events`` dead-letters such input
  (``streams.kafka.unreadable``), and one bad batch must not freeze the API's reads.

The processor checkpoint of the mirrored log is moved over mirrored events: they were
processed by the worker, so a stray ``jiahe process`` on this home must not raise the
same warnings a second time.

:class:`KafkaPublishing` owns the two and is the services' ingest path on this runtime
(``app.services.IngestPath``); ``app.bootstrap_api`` chooses it.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kafka
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import KafkaError

from events.codec import Decoded, Rejected
from privacy.keystore import KafkaKeyring, kafka_keyring
from privacy.sealed import decode_sealed
from rules.ownership import Standing, next_owner
from sdk.outbox import CONFLICT
from sdk.publisher import Publisher, PublisherError
from streams.embedded.log import SqliteLog
from streams.embedded.processor import CONSUMER as PROCESSOR_CONSUMER
from streams.embedded.runtime import EmbeddedRuntime
from streams.kafka.settings import KafkaSettings
from streams.kafka.unreadable import LastBatch, UnreadableBatch, unreadable_reason
from streams.ports import OwnerDirectory

OUTBOX_FILE = "api-outbox.sqlite3"
MIRROR_TABLE = """
CREATE TABLE IF NOT EXISTS kafka_mirror_records (
    -- sha256 of a mirrored lifecycle record's canonical JSON: re-emitted copies are dropped
    digest TEXT PRIMARY KEY
)
"""
log = logging.getLogger(__name__)
#: ``SkippingRecords`` overrides kafka-python's ``Fetcher.PartitionRecords`` of this
#: minor version (pinned in requirements.lock); ``skip_unreadable`` refuses another.
SUPPORTED_KAFKA_PYTHON = "3.0."


class SkippingRecords(Fetcher.PartitionRecords):  # type: ignore[misc]
    """kafka-python's records of one fetched partition; an unreadable batch becomes one
    stand-in record (``UnreadableBatch``) at its last offset, and the position moves on.

    kafka-python raises from ``poll`` on the first batch it cannot decompress or whose
    CRC is wrong, with its position still before that batch: every poll after a
    reconnect fails on the same batch. Here the error ends only the current iterator,
    as ``streams.kafka.transport.SkippingPartitionRecords`` does for aiokafka.
    """

    next_fetch_offset: int
    leader_epoch: int

    def _unpack_records(self, tp: TopicPartition, records: Any, key_deserializer: Any,
                        value_deserializer: Any) -> Any:
        batches = LastBatch(records)
        unpack = super()._unpack_records
        while True:
            try:
                yield from unpack(tp, batches, key_deserializer, value_deserializer)
                return
            except Exception as exc:
                batch = batches.last
                if batch is None:  # not a batch that failed: kafka-python's own error
                    raise
                batches.last = None
                yield self._unreadable(tp, batch, exc)

    def _unreadable(self, tp: TopicPartition, batch: Any, exc: Exception) -> Any:
        first = max(self.next_fetch_offset, getattr(batch, "base_offset", 0))
        last = max(first, batch.next_offset - 1)
        reason = unreadable_reason(first, last, getattr(batch, "compression_type", None), exc)
        self.next_fetch_offset = last + 1
        return ConsumerRecord(tp.topic, tp.partition, self.leader_epoch, last,
                              getattr(batch, "max_timestamp", -1), 0, None,
                              UnreadableBatch(first, last, reason), [], None, -1, 0, -1)


def skip_unreadable(consumer: KafkaConsumer) -> KafkaConsumer:
    """Make ``consumer`` hand out unreadable batches as ``UnreadableBatch`` records.

    Only this consumer's fetcher is changed (an instance attribute), not kafka-python's
    class: other consumers in the process keep kafka-python's behaviour."""
    fetcher = getattr(consumer, "_fetcher", None)
    if not kafka.__version__.startswith(SUPPORTED_KAFKA_PYTHON) or fetcher is None:
        raise RuntimeError(f"kafka-python {kafka.__version__}: the mirror's skipping of "
                           f"unreadable batches supports {SUPPORTED_KAFKA_PYTHON}x only")
    fetcher.PartitionRecords = SkippingRecords
    return consumer


class KafkaWriter:
    """Screened input → the publisher's outbox → ``jiahe.events`` / ``jiahe.dlq``."""

    def __init__(self, home: Path, settings: KafkaSettings, flush_timeout_s: float = 10.0
                 ) -> None:
        topics = settings.topics
        # The home's Kafka key store: personal fields are sealed before the outbox, so
        # neither the outbox file nor a topic holds them in clear (privacy.keystore).
        self.keyring: KafkaKeyring = kafka_keyring(home)
        self.publisher = Publisher(settings.bootstrap, home / OUTBOX_FILE,
                                   topic=topics.events, dlq_topic=topics.dlq,
                                   client_id="jiahe-api", connect_timeout=5.0,
                                   keyring=self.keyring)
        self.flush_timeout_s = flush_timeout_s

    def write(self, items: Sequence[Decoded | Rejected]) -> list[str]:
        """A status per item as ``SqliteLog.publish_decoded`` words it; then try to send."""
        statuses = self.enqueue(items)
        self.flush()
        return statuses

    def enqueue(self, items: Sequence[Decoded | Rejected]) -> list[str]:
        """Keep the items in the outbox (nothing sent); a status per item.

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
        #: Unreadable batches and malformed warnings records skipped (each logged).
        self.skipped = 0
        #: told (under ``lock``) the event_ids each poll brought into the home's log
        self.on_mirrored: Callable[[list[str]], None] | None = None
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
            skip_unreadable(consumer)
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
                if isinstance(message.value, UnreadableBatch):
                    self._skip(tp, message.value.reason)
                elif tp.topic == events:
                    item = decode_sealed(message.value or b"")
                    # invalid input is the worker's to dead-letter (jiahe.dlq): skip here
                    if isinstance(item, Decoded):
                        decoded.append(item)
                else:
                    record = _lifecycle_record(message.value)
                    if isinstance(record, str):
                        self._skip(tp, f"offset {message.offset}: {record}")
                    else:
                        records.append(record)
        log_ = self.runtime.log
        with self.lock:
            if decoded:  # duplicates by event_id are ignored by the log itself
                log_.publish_decoded(decoded, source=f"kafka:{events}")
                if self.on_mirrored is not None:
                    self.on_mirrored([d.event_id for d in decoded if isinstance(d, Decoded)])
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

    def _skip(self, tp: TopicPartition, reason: str) -> None:
        self.skipped += 1
        log.error("kafka mirror: %s[%d]: %s; skipped (%d so far), reading on",
                  tp.topic, tp.partition, reason, self.skipped)


def _lifecycle_record(value: bytes | None) -> dict[str, Any] | str:
    """A warnings-topic value as a lifecycle record, or why it is not one."""
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    if not (isinstance(record, dict) and isinstance(record.get("type"), str)
            and "household_id" in record
            and any(isinstance(record.get(k), str) for k in ("warning_id", "referral_id"))):
        return "not a lifecycle record (type, household_id, warning_id or referral_id)"
    return record


class UnmirroredOwners:
    """The ingest guard's owners on the Kafka runtime (an ``OwnerDirectory``).

    The home's log keeps its owner directory as the mirror appends what it copies from
    ``jiahe.events`` (``streams.embedded.sqlite_owners``). Events this API accepted
    but the mirror has not brought back yet (queued in the outbox while the broker is
    away, or just sent) are folded on top, in the order they were accepted, so a
    household placed by a request is owned from the next request on, not from when
    the mirror catches up. Events other publishers sent meanwhile are not known here
    until mirrored: the guard decides from what this home has seen.

    Reads take ``lock`` (the services lock: the log's connection is shared);
    :meth:`mirrored` is called by the mirror while it holds it.
    """

    def __init__(self, log: SqliteLog, lock: threading.Lock) -> None:
        self.log = log
        self.lock = lock
        #: household → its unmirrored events (event_id → type, org_unit, data), in order
        self._pending: dict[str, dict[str, tuple[str, str, Mapping[str, Any]]]] = {}
        self._household_of: dict[str, str] = {}

    def owner_of(self, household_id: str) -> str | None:
        return self.standing_of(household_id).owner

    def standing_of(self, household_id: str) -> Standing:
        with self.lock:
            standing = self.log.standing_of(household_id)
            pending = list(self._pending.get(household_id, {}).values())
        for event_type, org_unit, data in pending:
            step = next_owner(standing.owner, standing.registered, event_type, org_unit, data)
            standing = Standing(step.owner, step.registered)
        return standing

    def accepted(self, household_id: str, event_id: str, event_type: str, org_unit: str,
                 data: Mapping[str, Any]) -> None:
        """An event entered the outbox; until mirrored, it counts here."""
        with self.lock:
            if self._known([event_id]):  # mirrored already
                return
            self._pending.setdefault(household_id, {})[event_id] = (event_type, org_unit, data)
            self._household_of[event_id] = household_id

    def _known(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these events the home's log holds (call under ``lock``)."""
        marks = ",".join("?" * len(event_ids))
        return {row[0] for row in self.log.db.execute(
            f"SELECT event_id FROM events WHERE event_id IN ({marks})", list(event_ids))}

    def mirrored(self, event_ids: Sequence[str]) -> None:
        """These events are in the home's log now (call under ``lock``)."""
        for event_id in event_ids:
            household_id = self._household_of.pop(event_id, None)
            if household_id is None:
                continue
            pending = self._pending[household_id]
            del pending[event_id]
            if not pending:
                del self._pending[household_id]

    def load(self, outbox: Path) -> int:
        """After a restart: the outbox's events the log does not hold yet, in outbox order."""
        if not outbox.exists():
            return 0
        db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT event_id, household_id, payload FROM outbox "
                              "ORDER BY seq").fetchall()
        finally:
            db.close()
        loaded = 0
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            with self.lock:
                known = self._known([r[0] for r in chunk])
            for event_id, household_id, payload in chunk:
                if event_id in known:
                    continue
                # type, org_unit and to_org_unit are never sealed
                event = orjson.loads(payload)
                self.accepted(household_id, event_id, event["type"], event["org_unit"],
                              event.get("data") or {})
                loaded += 1
        return loaded


class KafkaPublishing:
    """The ingest path on the Kafka runtime: publish through the writer, read the mirror.

    The ticker resends what the outbox still holds (a broker that was away); reads need
    nothing first, since the mirror thread projects what it copies. The ingest guard
    reads :class:`UnmirroredOwners`: the mirrored directory, then what this API accepted
    and the mirror has not brought back yet.
    """

    def __init__(self, settings: KafkaSettings, writer: KafkaWriter, mirror: KafkaMirror
                 ) -> None:
        self.kafka: KafkaSettings | None = settings
        self.writer = writer
        self.mirror = mirror
        self.unmirrored = UnmirroredOwners(mirror.runtime.log, mirror.lock)
        self.owners: OwnerDirectory = self.unmirrored
        #: the mirrored events carry fields sealed by this home's Kafka key store
        self.keyring: KafkaKeyring = writer.keyring
        mirror.on_mirrored = self.unmirrored.mirrored
        self.unmirrored.load(writer.publisher.outbox.path)

    def start(self) -> None:
        self.mirror.start()

    def accept(self, items: Sequence[Decoded | Rejected], source: str) -> list[str]:
        """Publish; ``source`` is not kept (the topic's records carry no source)."""
        statuses = self.writer.enqueue(items)
        for item, status in zip(items, statuses, strict=True):
            if status == "accepted" and isinstance(item, Decoded):
                event = item.event
                self.unmirrored.accepted(item.household_id, item.event_id, event.type,
                                         event.org_unit, event.data)
        self.writer.flush()
        return statuses

    def tick(self) -> None:
        if self.writer.queued():
            self.writer.flush()

    def fresh(self) -> None:
        pass

    def close(self) -> None:
        self.mirror.stop()
        self.writer.close()
