"""Wall-clock deadlines on a worker that stays behind (``streams.kafka.app``, watermarks).

A steady publisher writes faster than the worker's ``--max-rate``, so the worker's lag
grows for the whole test. Two red warnings fall due at D: one never acknowledged, one
acknowledged by an event appended before D (still in the worker's backlog at D). The
unacknowledged one must escalate as soon as the worker has read a record the broker
appended after D + lateness, while it is still behind; the acknowledged one never.
Times are the broker's (``LogAppendTime`` on the events and warnings topics).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from events.instants import MICROS_PER_HOUR, format_instant, parse_instant
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.kafka import admin as kafka_admin
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.test_worker import Workers, read_all

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

PARTITIONS = 2
PUBLISH_PER_S = 60
MAX_RATE = 40
LATENESS_S = 3
#: From the worker's first assignment to the deadline: the backlog has built up by then.
DUE_AFTER_S = 20
#: Between reading a record appended after D + lateness and the escalation's append:
#: the throttle's pause (≤ 1 s), a timer tick, the commit the test watches, its polling.
SLACK_S = 5
UNIT = "230102001001"
HOUR_MS = MICROS_PER_HOUR // 1000


def envelope(household: str, kind: str, occurred_us: int, data: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "event_id": str(uuid.uuid4()), "type": kind, "schema_version": 1,
        "occurred_at": format_instant(occurred_us), "org_unit": UNIT,
        "household_id": household, "data": data,
    })


def injury_visit(household: str, occurred_us: int) -> bytes:
    return envelope(household, "screening.visit_recorded", occurred_us,
                    {"indicators": ["injury_observed"]})


class Publisher(threading.Thread):
    """Quiet visits at a steady rate over both partitions, plus chosen lines at chosen
    moments; remembers every append's broker time by (partition, offset)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.appended: dict[tuple[int, int], int] = {}
        self.scheduled: list[tuple[float, int, bytes]] = []  # (wall s, partition, line)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def at(self, wall_s: float, partition: int, line: bytes) -> None:
        self.scheduled.append((wall_s, partition, line))

    def _send(self, partition: int, key: bytes, line: bytes) -> Any:
        return self.producer.send(self.topic, key=key, value=line, partition=partition)

    def run(self) -> None:
        futures = []
        sent = 0
        started = time.time()
        try:
            while not self.stop.is_set():
                now = time.time()
                for item in [s for s in self.scheduled if s[0] <= now]:
                    self.scheduled.remove(item)
                    household = orjson.loads(item[2])["household_id"].encode()
                    futures.append(self._send(item[1], household, item[2]))
                due = int((now - started) * PUBLISH_PER_S)
                while sent < due:
                    household = f"hh-quiet-{sent % 500}"
                    line = envelope(household, "screening.visit_recorded",
                                    int(now * 1e6) - HOUR_MS * 1000, {"indicators": []})
                    futures.append(self._send(sent % PARTITIONS, household.encode(), line))
                    sent += 1
                for future in [f for f in futures if f.is_done]:
                    futures.remove(future)
                    meta = future.get()
                    self.appended[(meta.partition, meta.offset)] = meta.timestamp
                time.sleep(0.01)
            self.producer.flush()
            for future in futures:
                meta = future.get()
                self.appended[(meta.partition, meta.offset)] = meta.timestamp
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.producer.close()


class Progress:
    """The group's committed offsets and the topic's end offsets, sampled over time."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.group = group
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        #: (wall ms, partition, committed offset, end offset)
        self.samples: list[tuple[int, int, int, int]] = []

    def sample(self) -> None:
        wall = int(time.time() * 1000)
        try:
            offsets = self.admin.list_group_offsets(self.group).get(self.group) or {}
        except Exception:  # the group is not there yet
            offsets = {}
        ends = self.consumer.end_offsets(self.parts)
        for tp in self.parts:
            meta = offsets.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            self.samples.append((wall, tp.partition, done, ends[tp]))

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


@pytest.fixture
def workers(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
            ) -> Iterator[Workers]:
    topics = Topics.with_prefix(kafka_topic_prefix)
    # The warnings topic too carries broker time here, to time the escalation by it.
    spec = kafka_admin.topic_specs(PARTITIONS)[kafka_admin.EVENTS_TOPIC]
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics({topics.warnings: spec})
    finally:
        admin.close()
    create_topic_set(kafka_broker.bootstrap, topics, PARTITIONS)
    pool = Workers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def wait_for_assignment(pool: Workers, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while "assigned partitions" not in pool.logs():
        pool.assert_alive()
        assert time.monotonic() < deadline, pool.logs()
        time.sleep(0.2)


def test_a_worker_behind_escalates_by_the_watermark_and_never_past_an_ack(
    workers: Workers,
) -> None:
    topics = Topics.with_prefix(workers.prefix)
    events = admin_config(workers.bootstrap, topics.events)
    assert events["message.timestamp.type"] == "LogAppendTime"
    workers.start("w1", "--max-rate", str(MAX_RATE), "--lateness", str(LATENESS_S),
                  "--commit-interval", "0.2")
    wait_for_assignment(workers)

    start = time.time()
    due_ms = int((start + DUE_AFTER_S) * 1000)
    due_us = due_ms * 1000
    raised_us = due_us - 24 * MICROS_PER_HOUR  # red: acknowledgement due within 24 h
    late, acked = injury_visit("hh-late", raised_us), injury_visit("hh-acked", raised_us)
    replay = Replay(Engine(load_pack()))
    warning_of = {}
    for line in (late, acked):
        _, outcome = replay.feed_line(line)
        assert outcome is not None and outcome.status != "rejected"
        (raised,) = [r for r in outcome.records if r["type"] == "warning.raised"]
        warning_of[raised["household_id"]] = raised["warning_id"]
    ack = envelope("hh-acked", "warning.acknowledged", due_us - 5_000_000,
                   {"warning_id": warning_of["hh-acked"], "by": "cadre-1"})
    _, outcome = replay.feed_line(ack)
    assert outcome is not None and outcome.status != "rejected"
    escalations = [r for r in replay.finish(due_us) if r["type"] == "warning.escalated"]
    assert [(r["warning_id"], parse_instant(r["at"])) for r in escalations] == [
        (warning_of["hh-late"], due_us)
    ]

    publisher = Publisher(workers.bootstrap, topics.events)
    publisher.at(start, 0, late)
    publisher.at(start, 0, acked)
    publisher.at(start + DUE_AFTER_S - 4, 0, ack)  # appended before D, read after D
    progress = Progress(workers.bootstrap, topics.events, workers.group)
    publisher.start()
    escalated_at = None
    try:
        while time.time() < start + DUE_AFTER_S + 60:
            workers.assert_alive()
            assert not publisher.errors, publisher.errors
            progress.sample()
            escalated_at = escalation_time(workers.bootstrap, topics.warnings,
                                           warning_of["hh-late"])
            if escalated_at is not None and time.time() * 1000 > escalated_at + 3000:
                break
            time.sleep(0.5)
    finally:
        publisher.stop.set()
        publisher.join(timeout=30)
        progress.close()
    assert not publisher.errors, publisher.errors
    assert escalated_at is not None, workers.logs()

    # Behind the whole time: from before D to the escalation, partition 0 had a backlog,
    # and it grew (so a lag-free-only timer would not have fired yet).
    window = [(wall, end - done) for wall, p, done, end in progress.samples
              if p == 0 and due_ms - 2000 <= wall <= escalated_at]
    assert len(window) >= 10
    assert all(lag > 0 for _, lag in window), window
    assert window[-1][1] > window[0][1], window

    # On time in broker time: never before D + lateness, and within SLACK_S of the
    # first moment the worker had read a record appended after D + lateness.
    assert escalated_at >= due_ms + LATENESS_S * 1000
    passed = [wall for wall, p, done, _ in progress.samples if p == 0 and done > 0
              and publisher.appended.get((0, done - 1), 0) >= due_ms + LATENESS_S * 1000]
    assert passed, "the worker never read past D + lateness"
    assert escalated_at <= passed[0] + SLACK_S * 1000, (escalated_at - due_ms, passed[0] - due_ms)

    records = {(r["warning_id"], r["type"]) for r in
               (orjson.loads(m.value) for m in read_all(workers.bootstrap, topics.warnings))}
    assert (warning_of["hh-acked"], "warning.acknowledged") in records
    assert (warning_of["hh-acked"], "warning.escalated") not in records


def escalation_time(bootstrap: str, topic: str, warning_id: str) -> int | None:
    """Broker time (ms) of the first escalation record of ``warning_id``, if any."""
    for message in read_all(bootstrap, topic):
        record = orjson.loads(message.value)
        if record["warning_id"] == warning_id and record["type"] == "warning.escalated":
            return int(message.timestamp)
    return None


def admin_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's non-default config values, as the broker reports them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        raw = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    return {key: value["value"] for key, value in raw["topic"][topic].items()}
