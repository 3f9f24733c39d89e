"""The publisher SDK (sdk/publisher.py) against a REAL Kafka broker: no mocks, no skips.

Each test creates its own topics (unique names), publishes through :class:`Publisher`,
and reads the topics back with a plain kafka-python consumer, so what is checked is what
any Kafka client would see: keys, headers, values, and per-household order.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from devtools import kafka_local
from sdk.outbox import CONFLICT, Outbox, canonical_json
from sdk.publisher import (
    BrokerUnavailable,
    DeliveryFailed,
    Progress,
    Publisher,
    publish_file,
)

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

_NS = uuid.UUID("0b5f6d8e-3c61-4d1e-8f7a-2a9c4e5b7d10")
#: Short enough that "nobody listens" tests finish quickly, long enough for a loaded CI box.
CONNECT_S = 3.0


# --------------------------------------------------------------------------- helpers


def event(hh: str, i: int) -> dict[str, Any]:
    """A valid visit; ``data.notes`` carries ``i`` so order can be read back."""
    return {
        "event_id": str(uuid.uuid5(_NS, f"{hh}/{i}")),
        "type": "screening.visit_recorded",
        "schema_version": 1,
        "occurred_at": f"2026-03-01T{8 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
        "org_unit": "230102001001",
        "household_id": hh,
        "actor": "cadre-1",
        "data": {"indicators": ["marital_conflict"], "notes": f"visit {i}"},
    }


def interleaved(households: int, per_household: int, start: int = 0) -> list[dict[str, Any]]:
    """Events of several households interleaved, as a field app's burst would be."""
    return [event(f"hh-{h:03d}", i) for i in range(start, start + per_household)
            for h in range(households)]


def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=30_000)
        admin.wait_for_topics(list(names), timeout_ms=30_000)
    finally:
        admin.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Any]:
    """Every record in the topic (up to its end offsets now), ordered by partition, offset."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} not found"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading back the topic"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def by_household(records: list[Any]) -> dict[str, list[Any]]:
    """Records grouped by key, each group in log order (one partition per key)."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for rec in records:
        groups[rec.key.decode()].append(rec)
    return groups


def first_occurrences(records: list[Any]) -> list[Any]:
    """What a consumer that dedupes by event_id keeps."""
    seen: set[str] = set()
    kept = []
    for rec in records:
        event_id = orjson.loads(rec.value)["event_id"]
        if event_id not in seen:
            seen.add(event_id)
            kept.append(rec)
    return kept


def assert_delivered_in_order(records: list[Any], expected: list[dict[str, Any]]) -> None:
    """Every expected event is there exactly as produced, each household in input order."""
    kept = first_occurrences(records)
    assert len(kept) == len(expected)
    want: dict[str, list[bytes]] = defaultdict(list)
    for obj in expected:
        want[obj["household_id"]].append(canonical_json(obj))
    got = by_household(kept)
    assert set(got) == set(want)
    for hh, recs in got.items():
        assert [r.value for r in recs] == want[hh], f"order or content differs for {hh}"
        assert len({r.partition for r in recs}) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def topics(kafka_broker: KafkaBroker, kafka_topic_prefix: str) -> tuple[str, str]:
    """A fresh (events, dlq) topic pair on the session broker."""
    names = (kafka_topic_prefix + "events", kafka_topic_prefix + "dlq")
    create_topics(kafka_broker.bootstrap, *names)
    return names


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "field-app" / "outbox.sqlite"


# --------------------------------------------------------------------------- round trip


def test_round_trip_keys_headers_values_and_order(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    events = interleaved(households=5, per_household=40)
    as_text = [orjson.dumps(e).decode() for e in events[:100]]  # str lines and dicts alike
    seen: list[Progress] = []
    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic,
                   chunk_size=64) as publisher:
        result = publisher.publish([*as_text, *events[100:]], progress=seen.append)

    assert (result.received, result.accepted, result.duplicates, result.rejected) == (
        200, 200, 0, 0)
    assert (result.sent, result.queued, result.status, result.error) == (200, 0, "sent", None)
    assert seen[-1] == Progress("sent", 200)
    assert any(p.phase == "validated" for p in seen)

    records = read_all(kafka_broker.bootstrap, events_topic)
    assert len(records) == 200  # no duplicates on a clean run
    assert_delivered_in_order(records, events)
    by_id = {e["event_id"]: e for e in events}
    for rec in records:
        obj = by_id[orjson.loads(rec.value)["event_id"]]
        assert rec.key == obj["household_id"].encode()
        assert rec.value == orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        assert dict(rec.headers) == {
            "type": b"screening.visit_recorded",
            "schema_version": b"1",
            "event_id": obj["event_id"].encode(),
        }
    assert read_all(kafka_broker.bootstrap, dlq_topic) == []
    with Outbox(outbox_path) as box:
        assert box.counts().pending == 0


def test_republishing_the_same_events_sends_nothing_new(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    events = interleaved(households=2, per_household=5)
    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic) as publisher:
        first = publisher.publish(events)
        again = publisher.publish(events)
    assert (first.accepted, first.sent) == (10, 10)
    assert (again.received, again.accepted, again.duplicates, again.sent) == (10, 0, 10, 0)
    assert len(read_all(kafka_broker.bootstrap, events_topic)) == 10


# --------------------------------------------------------------------------- rejects


def test_invalid_input_goes_to_the_dlq_with_its_reason_never_to_events(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    good = interleaved(households=2, per_household=3)
    bad_org = dict(event("hh-x", 1), org_unit="230102001000")  # a street, not a community
    no_offset = dict(event("hh-x", 2), occurred_at="2026-03-01T08:00:00")
    conflict = dict(good[0], data={"indicators": ["threats"], "notes": "edited"})
    inputs: list[Any] = [
        good[0],
        "{not json",
        {"type": "no.such.type", "household_id": "hh-x", "event_id": str(uuid.uuid4())},
        *good[1:],
        bad_org,
        no_offset,
        good[1],      # exact repeat: a duplicate, ignored
        conflict,     # same event_id, different content: rejected as a conflict
        42,           # not even a JSON object or text
    ]
    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic) as publisher:
        result = publisher.publish(inputs)

    assert result.received == len(inputs) == 13
    assert (result.accepted, result.duplicates, result.rejected) == (6, 1, 6)
    assert result.received == result.accepted + result.duplicates + result.rejected
    assert [r.index for r in result.rejections] == [2, 3, 9, 10, 12, 13]
    reasons = {r.index: r.reason for r in result.rejections}
    assert reasons[2].startswith("event: not valid JSON")
    assert reasons[3] == "type: unknown event type 'no.such.type'"
    assert reasons[9].startswith("org_unit:")
    assert reasons[10].startswith("occurred_at:")
    assert reasons[12] == CONFLICT
    assert reasons[13] == "event: expected a JSON text or a mapping, got int"
    assert (result.sent, result.dead_letters_sent, result.status) == (6, 6, "sent")

    events_out = read_all(kafka_broker.bootstrap, events_topic)
    assert_delivered_in_order(events_out, good)
    assert len(events_out) == 6
    edited = orjson.dumps(conflict, option=orjson.OPT_SORT_KEYS)
    assert all(rec.value != edited for rec in events_out)

    dead = read_all(kafka_broker.bootstrap, dlq_topic)
    assert sorted(dict(r.headers)["reason"].decode() for r in dead) == sorted(
        r.reason for r in result.rejections)
    raw_by_reason = {dict(r.headers)["reason"].decode(): r for r in dead}
    assert raw_by_reason[reasons[2]].value == b"{not json"
    assert raw_by_reason[reasons[2]].key is None
    assert raw_by_reason[reasons[3]].key == b"hh-x"
    assert orjson.loads(raw_by_reason[CONFLICT].value) == conflict
    assert dict(raw_by_reason[CONFLICT].headers)["event_id"] == conflict["event_id"].encode()


# --------------------------------------------------------------------------- crashes


def test_dropped_publisher_without_flush_loses_nothing(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    events = interleaved(households=3, per_household=20)
    publisher = Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic)
    result = publisher.publish(events, flush=False)
    assert (result.accepted, result.sent, result.queued, result.status) == (60, 0, 60, "queued")
    del publisher  # no flush, no close: what an app killed by the OS leaves behind

    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic) as restarted:
        flushed = restarted.flush()
    assert (flushed.sent, flushed.queued) == (60, 0)
    records = read_all(kafka_broker.bootstrap, events_topic)
    assert len(records) == 60
    assert_delivered_in_order(records, events)


def _run_child(script: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def test_sigkill_between_ack_and_mark_causes_only_exact_resends(
    kafka_broker: KafkaBroker, topics: tuple[str, str], tmp_path: Path, outbox_path: Path
) -> None:
    """The worst moment to die: the broker has a whole chunk, the outbox does not know.

    The child publishes in chunks of 100 and is SIGKILLed inside the third mark_sent,
    i.e. after the broker acknowledged records 201-300 but before the outbox recorded it.
    A new Publisher then resends from record 201: duplicates, but byte-identical ones, and
    the deduplicated stream is complete and in order.
    """
    events_topic, dlq_topic = topics
    events = interleaved(households=7, per_household=100)
    source = tmp_path / "events.json"
    source.write_bytes(orjson.dumps(events))
    proc = _run_child(f"""
        import os, signal, orjson
        from sdk.publisher import Publisher
        events = orjson.loads(open({str(source)!r}, "rb").read())
        p = Publisher({kafka_broker.bootstrap!r}, {str(outbox_path)!r}, {events_topic!r},
                      {dlq_topic!r}, chunk_size=100)
        p.publish(events, flush=False)
        real_mark, calls = p.outbox.mark_sent, []
        def mark(seq):
            calls.append(seq)
            if len(calls) == 3:
                print("dying at", seq, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            real_mark(seq)
        p.outbox.mark_sent = mark
        p.flush()
    """)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "dying at 300"
    with Outbox(outbox_path) as box:
        assert (box.sent_up_to(), box.counts().pending) == (200, 500)

    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic) as restarted:
        assert restarted.flush().sent == 500

    records = read_all(kafka_broker.bootstrap, events_topic)
    assert len(records) == 800  # 700 events + the 100 re-sent ones
    assert_delivered_in_order(records, events)
    copies: dict[str, list[Any]] = defaultdict(list)
    for rec in records:
        copies[orjson.loads(rec.value)["event_id"]].append(rec)
    resent = {k: v for k, v in copies.items() if len(v) > 1}
    assert set(resent) == {e["event_id"] for e in events[200:300]}
    for recs in resent.values():
        assert len(recs) == 2
        assert len({(r.key, r.value, tuple(r.headers), r.partition) for r in recs}) == 1


# --------------------------------------------------------------------------- outages


def test_unreachable_broker_queues_then_a_later_flush_delivers_in_order(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    nowhere = f"127.0.0.1:{free_port()}"
    offline = interleaved(households=4, per_household=10)
    started = time.monotonic()
    with Publisher(nowhere, outbox_path, events_topic, dlq_topic,
                   connect_timeout=CONNECT_S) as field_app:
        first = field_app.publish(offline[:20])
        second = field_app.publish([*offline[20:], "garbage"])
        with pytest.raises(BrokerUnavailable, match=nowhere):
            field_app.flush(timeout=CONNECT_S)
    assert time.monotonic() - started < 6 * CONNECT_S + 30  # bounded, no hang
    assert (first.accepted, first.sent, first.queued, first.status) == (20, 0, 20, "queued")
    assert (second.accepted, second.rejected, second.queued) == (20, 1, 40)
    assert second.dead_letters_queued == 1
    assert second.error is not None and nowhere in second.error

    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic) as online:
        flushed = online.flush()
    assert (flushed.sent, flushed.dead_letters_sent, flushed.queued) == (40, 1, 0)
    records = read_all(kafka_broker.bootstrap, events_topic)
    assert len(records) == 40
    assert_delivered_in_order(records, offline)
    (dead,) = read_all(kafka_broker.bootstrap, dlq_topic)
    assert dead.value == b"garbage"


def test_missing_topic_is_a_clear_bounded_error(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, outbox_path: Path
) -> None:
    missing = kafka_topic_prefix + "never-created"
    with Publisher(kafka_broker.bootstrap, outbox_path, missing, missing + ".dlq",
                   connect_timeout=CONNECT_S) as publisher:
        result = publisher.publish(interleaved(1, 3))
        assert (result.accepted, result.sent, result.queued) == (3, 0, 3)
        assert result.error is not None and "does not exist" in result.error
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match=missing):
            publisher.flush(timeout=CONNECT_S)
        assert time.monotonic() - started < 4 * CONNECT_S + 10


def test_a_refused_record_stops_everything_behind_it(
    kafka_broker: KafkaBroker, kafka_topic_prefix: str, outbox_path: Path
) -> None:
    """Fail-stop: when the broker refuses a record, nothing queued behind it overtakes it.

    The topic takes at most 4 KiB per batch, and the third event is a valid but 16 KiB
    visit. The flush must fail clearly, leave the big event and everything after it
    queued and unsent, and deliver all of it, in order and once, after the topic is fixed.
    (After such a failure kafka-python bumps the producer epoch and would drain later
    batches under the new epoch, overtaking the big event; the Publisher stops the
    producer at the first failed record, so they never leave.)
    """
    topic, dlq = kafka_topic_prefix + "small", kafka_topic_prefix + "small.dlq"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4096"}),
                             NewTopic(dlq, 1, 1)], timeout_ms=30_000)
        admin.wait_for_topics([topic, dlq], timeout_ms=30_000)
    finally:
        admin.close()
    big = event("hh-a", 2)
    big["data"]["notes"] = secrets.token_hex(8_000)  # 16 000 chars that lz4 cannot shrink
    after = [event(f"hh-{'ab'[i % 2]}", 3 + i // 2) for i in range(40)]
    events = [event("hh-a", 1), event("hh-b", 1), big, *after]
    with Publisher(kafka_broker.bootstrap, outbox_path, topic, dlq) as publisher:
        result = publisher.publish(events)
        assert (result.accepted, result.sent, result.queued) == (43, 2, 41)
        assert result.error is not None and "MessageSizeTooLarge" in result.error
        with pytest.raises(DeliveryFailed, match="MessageSizeTooLarge"):
            publisher.flush()
        assert [orjson.loads(r.value)["event_id"] for r in read_all(
            kafka_broker.bootstrap, topic)] == [e["event_id"] for e in events[:2]]

        admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                configs={"max.message.bytes": "1048588"})])
        finally:
            admin.close()
        deadline = time.monotonic() + 30
        while True:  # the config change reaches the partition leader asynchronously
            try:
                flushed = publisher.flush()
                break
            except DeliveryFailed:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    assert (flushed.sent, flushed.queued) == (41, 0)
    records = read_all(kafka_broker.bootstrap, topic)
    assert [r.value for r in records] == [canonical_json(e) for e in events]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[kafka_local.BrokerInfo]:
    """A second, private broker this test may stop and start (a real outage)."""
    data_dir = tmp_path / "own-broker"
    try:
        info = kafka_local.start(data_dir)
    except kafka_local.KafkaLocalError as exc:
        pytest.fail(f"could not start a private broker:\n{exc}", pytrace=False)
    try:
        yield info
    finally:
        kafka_local.stop(data_dir)


def test_broker_stopped_and_restarted_mid_session(
    own_broker: kafka_local.BrokerInfo, outbox_path: Path
) -> None:
    """A real outage, twice, on one long-lived Publisher.

    1. sent; broker stops; events published offline (flush=False) wait; the broker comes
       back and the *same* producer reconnects on the next publish.
    2. broker stops again while publish tries to send: bounded wait, "queued", no
       exception; the broker comes back on the same data dir and flush delivers.
    Everything arrives, each household in order, nothing twice.
    """
    bootstrap, data_dir = own_broker.bootstrap, own_broker.data_dir
    create_topics(bootstrap, "outage.events", "outage.dlq")
    events = interleaved(households=6, per_household=40)
    batches = [events[i:i + 60] for i in range(0, 240, 60)]

    def restart() -> None:
        again = kafka_local.start(data_dir, port=own_broker.port)
        assert again.bootstrap == bootstrap

    with Publisher(bootstrap, outbox_path, "outage.events", "outage.dlq",
                   connect_timeout=CONNECT_S) as publisher:
        assert publisher.publish(batches[0]).sent == 60

        assert kafka_local.stop(data_dir)
        assert publisher.publish(batches[1], flush=False).queued == 60
        restart()
        reconnected = publisher.publish(batches[2], timeout=60)
        assert (reconnected.sent, reconnected.queued, reconnected.error) == (120, 0, None)

        assert kafka_local.stop(data_dir)
        started = time.monotonic()
        during = publisher.publish(batches[3], timeout=CONNECT_S)
        assert time.monotonic() - started < 4 * CONNECT_S + 30
        assert (during.accepted, during.sent, during.queued, during.status) == (
            60, 0, 60, "queued")
        assert during.error is not None and bootstrap in during.error
        restart()
        flushed = publisher.flush(timeout=60)
    assert (flushed.sent, flushed.queued) == (60, 0)

    records = read_all(bootstrap, "outage.events")
    assert_delivered_in_order(records, events)
    assert len(records) == 240  # nothing was acknowledged while down, so nothing resent


# --------------------------------------------------------------------------- files


def test_publish_file_counts_and_line_numbers(
    kafka_broker: KafkaBroker, topics: tuple[str, str], tmp_path: Path, outbox_path: Path
) -> None:
    events_topic, dlq_topic = topics
    events = interleaved(households=3, per_household=4)
    lines = [orjson.dumps(e) for e in events]
    body = [lines[0], b"", *lines[1:6], b"   ", b'{"type": "petition.received"}', lines[2],
            *lines[6:]]
    path = tmp_path / "burst.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(body) + b"\r\n")
    seen: list[Progress] = []
    result = publish_file(path, kafka_broker.bootstrap, outbox_path, seen.append,
                          topic=events_topic, dlq_topic=dlq_topic)
    assert (result.received, result.accepted, result.duplicates, result.rejected) == (
        14, 12, 1, 1)
    assert [r.index for r in result.rejections] == [9]  # line number, blanks included
    assert (result.sent, result.queued, result.dead_letters_sent) == (12, 0, 1)
    assert seen and seen[-1] == Progress("sent", 12)
    assert_delivered_in_order(read_all(kafka_broker.bootstrap, events_topic), events)

    again = publish_file(path, kafka_broker.bootstrap, outbox_path,
                         topic=events_topic, dlq_topic=dlq_topic)
    assert (again.accepted, again.duplicates, again.rejected, again.sent) == (0, 13, 1, 0)


def test_publish_file_with_broker_down_reports_queued(tmp_path: Path, outbox_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in interleaved(2, 3)) + b"\n")
    nowhere = f"127.0.0.1:{free_port()}"
    result = publish_file(path, nowhere, outbox_path, connect_timeout=CONNECT_S)
    assert (result.received, result.accepted, result.sent, result.queued) == (6, 6, 0, 6)
    assert result.status == "queued" and result.error is not None
