"""``jiahe verify --bootstrap`` checks the Kafka runtime on the real broker: the
lifecycle records on ``jiahe.warnings`` (written by a real ``jiahe worker``), the home's
key store and the sealed fields on ``jiahe.events`` (published with the project's
publisher), the audit chain, and an anchor — then finds each kind of damage: a forged
or edited record, a record whose raise is missing, a tampered wrapped key, a tampered
ciphertext, records deleted from the topic.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from app.verify import verify_kafka
from cli.main import main
from privacy.keystore import KEYSTORE_FILE, kafka_keyring
from sdk.publisher import Publisher
from streams.kafka.batch import lifecycle_message, record_id
from streams.kafka.settings import KafkaSettings, Topics
from streams.kafka.worker import create_topic_set
from tests.helpers import DAY, T0, petition, visit
from tests.streams.kafka.test_worker import (
    AS_OF,
    Workers,
    expected_from,
    read_all,
    wait_for_records,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.kafka_fixtures import KafkaBroker


def story() -> list[str]:
    """Visits with personal notes (sealed on publish) that raise and escalate warnings."""
    lines = []
    for n in range(6):
        lines.append(visit(f"hh-verify-{n}", T0 + n * DAY, ["injury_observed"]))
        lines.append(petition(f"hh-verify-{n}", T0 + n * DAY + 1, "domestic_violence", True))
    return [line.replace('"notes": ""', f'"notes": "private words {n}"') for n, line in
            enumerate(lines)]


@pytest.fixture
def kafka_home(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
               ) -> Iterator[tuple[Workers, Path, KafkaSettings]]:
    """A home that published the story, and one worker's lifecycle records of it."""
    bootstrap = kafka_broker.bootstrap
    topics = Topics.with_prefix(kafka_topic_prefix)
    create_topic_set(bootstrap, topics, 2)
    home = tmp_path / "home"
    keyring = kafka_keyring(home)
    publisher = Publisher(bootstrap, home / "outbox.sqlite3", topic=topics.events,
                          dlq_topic=topics.dlq, keyring=keyring)
    lines = story()
    try:
        result = publisher.publish(lines)
        assert result.error is None
    finally:
        publisher.close()
        keyring.close()
    published = [m.value for m in read_all(bootstrap, topics.events)]
    pool = Workers(bootstrap, kafka_topic_prefix, tmp_path / "workers")
    pool.tmp.mkdir()
    try:
        pool.start("w1", "--as-of", AS_OF)
        wait_for_records(pool, expected_from(published, AS_OF))
    finally:
        pool.stop()
    yield pool, home, KafkaSettings(bootstrap, kafka_topic_prefix)


def send(bootstrap: str, topic: str, key: bytes | None, value: bytes,
         headers: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()


def cli_verify(home: Path, settings: KafkaSettings, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--home", str(home), "verify", "--bootstrap",
                                       settings.bootstrap, "--topic-prefix",
                                       settings.topic_prefix, *extra])
    return result.exit_code, result.output


def test_verify_on_kafka_passes_then_finds_each_kind_of_damage(
    kafka_home: tuple[Workers, Path, KafkaSettings], tmp_path: Path
) -> None:
    pool, home, settings = kafka_home
    topics = settings.topics
    anchor = tmp_path / "anchor.json"

    clean = verify_kafka(home, settings)
    assert clean.problems == []
    assert clean.warnings.records >= 12 and clean.keys == 6
    assert clean.events is not None and clean.events.records == 12
    code, out = cli_verify(home, settings, "--anchor", str(anchor))
    assert code == 0 and "verify: OK" in out and anchor.exists(), out

    first_raise = next(m for m in read_all(settings.bootstrap, topics.warnings)
                       if orjson.loads(m.value)["type"] == "warning.raised")
    raised = orjson.loads(first_raise.value)
    # 1. an edited copy of a record, under its own record_id
    edited = {**raised, "level": "yellow"}
    key, _, headers = lifecycle_message(edited)
    send(settings.bootstrap, topics.warnings, key, orjson.dumps(edited), headers)
    # 2. a record whose record_id header does not name its content
    send(settings.bootstrap, topics.warnings, key, orjson.dumps(raised),
         [("record_id", b"w-0000000000000000:warning.raised:")])
    # 3. a transition of a warning whose raise is missing
    orphan = {"type": "warning.escalated", "warning_id": "w-ffffffffffffffff",
              "household_id": "hh-verify-0", "from_level": "community",
              "to_level": "street", "handling_org_unit": "230102001000",
              "at": "2026-03-02T08:00:00Z"}
    send(settings.bootstrap, topics.warnings, *lifecycle_message(orphan))
    # 4. a wrapped household key edited in the key store
    db = sqlite3.connect(home / KEYSTORE_FILE)
    with db:
        kid, wrapped = db.execute("SELECT kid, wrapped FROM household_keys "
                                  "WHERE household_id = 'hh-verify-3'").fetchone()
        db.execute("UPDATE household_keys SET wrapped = ? WHERE kid = ?",
                   (bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1]), kid))
    db.close()
    # 5. an event whose sealed notes were edited on their way
    event = next(orjson.loads(m.value) for m in read_all(settings.bootstrap, topics.events)
                 if orjson.loads(m.value)["household_id"] == "hh-verify-1")
    sealed: dict[str, Any] = dict(event["data"]["notes"])
    sealed["ct"] = sealed["ct"][:-4] + ("AAAA" if not sealed["ct"].endswith("AAAA") else "BBBB")
    event = {**event, "event_id": "00000000-0000-4000-8000-00000000beef",
             "data": {**event["data"], "notes": sealed}}
    send(settings.bootstrap, topics.events, b"hh-verify-1", orjson.dumps(event), [])

    damaged = verify_kafka(home, settings)
    problems = "\n".join(damaged.problems)
    rid = record_id(raised)
    assert f"{rid} again with other content" in problems
    assert "does not name its content" in problems
    assert "warning.escalated of w-ffffffffffffffff" in problems and "is missing" in problems
    assert "failed authentication" in problems and "hh-verify-3" in problems
    assert "00000000-0000-4000-8000-00000000beef" in problems
    # the edited key shows twice: in the store, and opening the event sealed with it
    assert len(damaged.problems) == 6, damaged.problems
    code, out = cli_verify(home, settings, "--anchor", str(anchor))
    assert code == 1 and "verify: FAILED (6 problems)" in out
    assert "matches" in out and "PROBLEM anchor" not in out  # records were only appended

    # 6. records deleted from the head of the topic: the anchor no longer matches
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        admin.delete_records({TopicPartition(topics.warnings, first_raise.partition):
                              first_raise.offset + 1})
    finally:
        admin.close()
    code, out = cli_verify(home, settings, "--anchor", str(anchor))
    assert code == 1 and f"PROBLEM anchor: partition {first_raise.partition}" in out, out
    assert pool.procs  # the worker wrote what was checked
