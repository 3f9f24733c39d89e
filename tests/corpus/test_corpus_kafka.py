"""The bad-input corpus on a REAL Kafka broker (no mocks, no skips).

(a) through the publisher SDK: rejected input never reaches the events topic and
    reaches the DLQ topic with a ``reason`` header; accepted input reaches the
    events topic; counts reconcile;
(b) raw Kafka: the corpus bytes produced straight to an events topic (any
    client may do that), then the path a consumer takes — ``decode`` each value
    and apply it with the engine — classifies every entry like (a);
(c) one ``jiahe worker`` (cli.kafka) over that raw topic: every bad
    entry reaches the DLQ topic with a reason header, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from events.codec import Rejected
from privacy.keystore import kafka_keyring
from privacy.quarantine import write_public_keys
from rules.replay import Replay
from sdk.publisher import Publisher, PublishResult
from tests import helpers as h
from tests.corpus.bad_inputs import (
    ACCEPTED,
    CORPUS,
    DUPLICATE,
    HOUSEHOLD,
    NEEDS_ORIGINAL,
    ORIGINAL,
    REJECTED,
    SAME_ID,
    SAME_UUID,
    VALID,
    Entry,
    stream,
)

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

ROOT = Path(__file__).resolve().parents[2]
IDS = [e.kind_id for e in REJECTED]


def _create(bootstrap: str, *names: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=30_000)
        admin.wait_for_topics(list(names), timeout_ms=30_000)
    finally:
        admin.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Any]:
    """Every record in ``topic`` up to its end offsets now, by (partition, offset)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
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


def _event_id(raw: bytes) -> str | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj.get("event_id") if isinstance(obj, dict) else None


def _letter_problem(letters: list[Any], entry: Entry) -> str | None:
    """None when a DLQ record holds ``entry.raw`` intact with a fitting reason header."""
    for message in letters:
        if message.value == entry.raw:
            reason = dict(message.headers).get("reason", b"").decode()
            if str(entry.expected) in reason:
                return None
            return f"reason header {reason!r} lacks {entry.expected!r}"
    near = [
        (dict(m.headers).get("reason", b"")[:80], len(m.value))
        for m in letters
        if entry.raw.startswith(m.value) or (
            _event_id(entry.raw) is not None and _event_id(m.value) == _event_id(entry.raw))
    ]
    return (f"no DLQ record holds the {len(entry.raw)} input bytes intact; "
            f"near matches (reason, bytes kept): {near}")


# ---------------------------------------------------------------------------- (a) SDK


@pytest.fixture(scope="module")
def sdk_run(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[PublishResult, list[Any], list[Any]]]:
    prefix = f"t.corpus-sdk.{uuid.uuid4().hex[:8]}."
    events_topic, dlq_topic = prefix + "events", prefix + "dlq"
    _create(kafka_broker.bootstrap, events_topic, dlq_topic)
    outbox = tmp_path_factory.mktemp("corpus-outbox") / "outbox.sqlite"
    with Publisher(kafka_broker.bootstrap, outbox, events_topic, dlq_topic) as publisher:
        result = publisher.publish(stream())
    yield (result, read_all(kafka_broker.bootstrap, events_topic),
           read_all(kafka_broker.bootstrap, dlq_topic))


def test_sdk_counts_reconcile(sdk_run: tuple[PublishResult, list[Any], list[Any]]) -> None:
    result, events, letters = sdk_run
    assert result.error is None and result.status == "sent"
    assert result.received == len(stream())
    assert result.received == result.accepted + result.duplicates + result.rejected
    assert len(events) == result.accepted
    assert len(letters) == result.rejected
    assert result.accepted == 1 + len(VALID)
    assert result.duplicates + result.rejected == 1 + len(REJECTED) + len(SAME_UUID)
    assert result.rejected >= len(REJECTED)


def test_sdk_accepted_reach_the_events_topic_and_nothing_else(
    sdk_run: tuple[PublishResult, list[Any], list[Any]],
) -> None:
    _, events, _ = sdk_run
    got = [json.loads(m.value)["event_id"] for m in events]
    want = [_event_id(ORIGINAL)] + [_event_id(e.raw) for e in VALID]
    assert set(want) <= set(got), "every accepted event reaches the events topic"
    leaked = [e.kind_id for e in REJECTED
              if e.kind_id not in NEEDS_ORIGINAL and _event_id(e.raw) in set(got)]
    assert not leaked, f"rejected input reached the events topic: {leaked}"
    respelled = [e.kind_id for e in SAME_UUID if _event_id(e.raw) in set(got)]
    assert not respelled, f"ORIGINAL's UUID re-spelled went out as a new event: {respelled}"
    assert len(got) == len(set(got)) == len(want)
    for message in events:
        assert message.key == json.loads(message.value)["household_id"].encode()


@pytest.mark.parametrize("entry", REJECTED, ids=IDS)
def test_sdk_rejected_reach_the_dlq_with_reason(
    sdk_run: tuple[PublishResult, list[Any], list[Any]], entry: Entry
) -> None:
    result, _, letters = sdk_run
    index = 2 + CORPUS.index(entry)  # 1-based, after ORIGINAL
    reasons = {r.index: r.reason for r in result.rejections}
    assert index in reasons, f"{entry.kind_id} was not rejected by the SDK"
    assert str(entry.expected) in reasons[index]
    problem = _letter_problem(letters, entry)
    assert problem is None, f"{entry.kind_id}: {problem}"


# ---------------------------------------------------------------------------- (b) raw Kafka


def _produce_raw(bootstrap: str, topic: str) -> None:
    """The corpus as any Kafka client could send it: ORIGINAL first, bytes untouched."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_request_size=4 * 1024 * 1024)
    try:
        producer.send(topic, value=ORIGINAL, key=HOUSEHOLD.encode()).get(timeout=30)
        for entry in CORPUS:
            # History-dependent kinds share ORIGINAL's key (same partition, after it).
            key = HOUSEHOLD.encode() if entry.kind_id in NEEDS_ORIGINAL else None
            producer.send(topic, value=entry.raw, key=key)
        producer.flush(timeout=30)
    finally:
        producer.close()


@pytest.fixture(scope="module")
def raw_topic(kafka_broker: KafkaBroker) -> str:
    prefix = f"t.corpus-raw.{uuid.uuid4().hex[:8]}."
    topic = prefix + "events"
    _create(kafka_broker.bootstrap, topic)
    _produce_raw(kafka_broker.bootstrap, topic)
    return topic


def test_raw_topic_through_the_engine_path(kafka_broker: KafkaBroker, raw_topic: str) -> None:
    messages = read_all(kafka_broker.bootstrap, raw_topic)
    assert len(messages) == len(stream())
    # Per partition in offset order, as a consumer group member sees them.
    replay = Replay(h.engine())
    status_of: dict[bytes, list[tuple[str, str | None]]] = {}
    for message in messages:
        decoded, outcome = replay.feed_line(message.value)
        if outcome is None:
            assert isinstance(decoded, Rejected)
            status = ("rejected", decoded.reason)
        else:
            status = (outcome.status, outcome.reason)
        status_of.setdefault(message.value, []).append(status)
    replay.finish()
    c = replay.counts
    assert c.received == len(messages) == c.processed + c.duplicates + c.rejected
    wrong = []
    for entry in CORPUS:
        statuses = status_of[entry.raw]
        status, reason = statuses[-1] if entry.expected == DUPLICATE else statuses[0]
        if entry.expected is ACCEPTED:
            ok = status == "processed"
        elif entry.expected == DUPLICATE:
            ok = status == "duplicate"
        elif entry.expected == SAME_ID:
            ok = status in ("duplicate", "rejected")
        else:
            ok = status == "rejected" and str(entry.expected) in (reason or "")
        if not ok:
            wrong.append((entry.kind_id, entry.expected, status, reason))
    assert not wrong, "\n".join(map(str, wrong))


# ---------------------------------------------------------------------------- (c) worker


@pytest.fixture(scope="module")
def worker_dlq(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[list[Any], str]]:
    """One worker over a topic holding the raw corpus; its DLQ read once every letter is in."""
    # Imported here: the worker is still moving; the SDK and raw parts must not depend on it.
    from streams.kafka.settings import Topics
    from streams.kafka.worker import create_topic_set

    bootstrap = kafka_broker.bootstrap
    prefix = f"t.corpus-worker.{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    create_topic_set(bootstrap, topics, 3)
    _produce_raw(bootstrap, topics.events)
    tmp = tmp_path_factory.mktemp("corpus-worker")
    log_path = tmp / "worker.log"
    keyring = kafka_keyring(tmp / "api-home")  # the quarantine private keys stay here
    write_public_keys(tmp / "quarantine.json", keyring.quarantine_public_keys(2))
    cmd = [sys.executable, "-m", "cli.kafka", "--home", str(tmp / "home"), "worker",
           "--bootstrap", bootstrap, "--topic-prefix", prefix, "--app-id", prefix + "w",
           "--data-dir", str(tmp / "data"), "--store", "memory", "--session-timeout", "6",
           "--tick", "0.2", "--as-of", "2026-03-02T00:00:00Z", "--loglevel", "info",
           "--quarantine-keys", str(tmp / "quarantine.json")]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # The conflict is refused by the engine stage, the rest by decode.
        want = len(REJECTED)
        deadline = time.monotonic() + 150
        letters: list[Any] = []
        stable_since, last = time.monotonic(), -1
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"worker exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            letters = read_all(bootstrap, topics.dlq)
            if len(letters) != last:
                stable_since, last = time.monotonic(), len(letters)
            if len(letters) >= want or (letters and time.monotonic() - stable_since > 20):
                time.sleep(2)  # anything extra would show up now
                letters = read_all(bootstrap, topics.dlq)
                break
            time.sleep(1)
        assert all(dict(m.headers)["sealed"] == b"quarantine" for m in letters if m.value)
        opened = [m._replace(value=keyring.open_dead_letter(m.value)) for m in letters]
        yield opened, log_path.read_text()[-4000:]
    finally:
        keyring.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_worker_dlq_holds_every_rejected_entry_once(
    worker_dlq: tuple[list[Any], str],
) -> None:
    letters, log = worker_dlq
    assert len(REJECTED) <= len(letters) <= len(REJECTED) + len(SAME_UUID), (
        f"{len(letters)} dead letters for {len(REJECTED)} rejected entries\n{log}")
    for message in letters:
        headers = dict(message.headers)
        assert headers.get("reason"), headers


@pytest.mark.parametrize("entry", REJECTED, ids=IDS)
def test_worker_dlq_keeps_each_entry_with_reason(
    worker_dlq: tuple[list[Any], str], entry: Entry
) -> None:
    letters, _ = worker_dlq
    problem = _letter_problem(letters, entry)
    assert problem is None, f"{entry.kind_id}: {problem}"


def test_sdk_text_item_with_lone_surrogate_is_rejected_not_raised(tmp_path: Path) -> None:
    """Field apps hand the SDK Python str; one with a lone surrogate must be a rejection."""
    from tests.corpus.test_corpus_file import SURROGATE_TEXT

    with Publisher("127.0.0.1:9", tmp_path / "outbox.sqlite") as publisher:
        try:
            result = publisher.publish([ORIGINAL.decode(), SURROGATE_TEXT], flush=False)
        except Exception as exc:
            pytest.fail(f"Publisher.publish raised on a text item: {exc!r}")
    assert (result.received, result.accepted, result.rejected) == (2, 1, 1)
