"""``jiahe api --bootstrap``: the same endpoints on the Kafka runtime, against a real broker.

One real ``jiahe worker`` subprocess (wall clock) owns the rules; the API server
(a subprocess too) publishes to ``jiahe.events`` through the publisher SDK and
mirrors ``jiahe.events`` / ``jiahe.warnings`` back into its home. Every check
reads what a client or a Kafka consumer sees: HTTP answers, webhook POSTs and
topic messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.kafka.admin import describe
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.api.conftest import DELIVERY_ARGS, ROOT, USERS, Api, Receiver, event, serve_api
from tests.api.test_stream import assert_live_stream_is_scoped

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

SECRET = "a-webhook-secret-of-some-length"
NOTE = "邻居听到争吵-secret-note-7f3a"


@dataclass
class KafkaApi:
    api: Api
    bootstrap: str
    prefix: str

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.prefix)


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic`` up to its current end ([] when it does not exist)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=300).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


#: where the module's worker and server write (for the failure message of ``eventually``).
LOGS: list[Path] = []


def eventually(probe: Any, what: str, timeout_s: float = 120.0) -> Any:
    """Poll ``probe()`` until it returns something truthy (the worker is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in LOGS)
    raise AssertionError(f"not seen within {timeout_s}s: {what}\n{tails}")


@pytest.fixture(scope="module")
def kafka_api(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[KafkaApi]:
    prefix = f"t.api.{uuid.uuid4().hex[:8]}."
    create_topic_set(kafka_broker.bootstrap, Topics.with_prefix(prefix), 3)
    tmp = tmp_path_factory.mktemp("kafka-api")
    log = (tmp / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.kafka", "--home", str(tmp / "worker-home"),
         "worker", "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", prefix,
         "--app-id", prefix + "workers", "--data-dir", str(tmp / "w1"), "--store", "memory",
         "--session-timeout", "6", "--tick", "0.2", "--loglevel", "info"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    home = tmp / "api-home"
    home.mkdir()
    LOGS[:] = [tmp / "worker.log", home / "server.log"]
    try:
        with serve_api(home, USERS, (*DELIVERY_ARGS, "--bootstrap", kafka_broker.bootstrap,
                                     "--topic-prefix", prefix)) as api:
            yield KafkaApi(api, kafka_broker.bootstrap, prefix)
        assert worker.poll() is None, (tmp / "worker.log").read_text()[-4000:]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _inbox(api: Api, user: str, household: str) -> dict[str, Any] | None:
    rows = api.call("GET", "/v1/alerts", user).json()["alerts"]
    return next((r for r in rows if r["household_id"] == household), None)


def _visit(org_unit: str, household: str) -> dict[str, Any]:
    return event(org_unit, household, "screening.visit_recorded",
                 {"indicators": ["injury_observed"], "notes": NOTE})


def test_ingest_goes_through_the_worker_and_back(kafka_api: KafkaApi, receiver: Receiver
                                                 ) -> None:
    api = kafka_api.api
    sub = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": receiver.url + "/kafka-mode", "secret": SECRET})
    assert sub.status_code == 201, sub.text
    visit = _visit("230102001001", "hh-k-1")
    outside = event("230103001001", "hh-k-outside")
    first = api.publish("cadre102", [visit, outside], strict=False, status=403)
    assert [r["status"] for r in first["results"]] == ["accepted", "rejected"]
    assert first["results"][1]["reason"] == "org_unit: outside your org unit"

    again = api.publish("cadre102", [visit], strict=False)
    assert again["results"][0]["status"] == "duplicate"
    conflict = {**visit, "data": {"indicators": ["threats"], "notes": NOTE}}
    clash = api.publish("cadre102", [conflict], strict=False)["results"][0]
    assert clash["status"] == "rejected" and "conflict" in clash["reason"]

    row = eventually(lambda: _inbox(api, "chair102", "hh-k-1"), "the warning in the inbox")
    assert row["level"] == "red" and row["status"] == "open" and row["assignee"] is None
    assert _inbox(api, "chair103", "hh-k-1") is None  # scoping holds on Kafka too
    ledger = api.call("GET", "/v1/ledgers/warnings", "chair102").json()["rows"]
    assert row["warning_id"] in [r["warning_id"] for r in ledger]
    assert not [r for r in api.call("GET", "/v1/ledgers/warnings", "chair103").json()["rows"]
                if r["household_id"] == "hh-k-1"]
    households = api.call("GET", "/v1/ledgers/households", "chair102").json()["rows"]
    assert "injury_observed" in next(h for h in households
                                     if h["household_id"] == "hh-k-1")["indicators"]

    hooks = eventually(lambda: [r for r in receiver.at("/kafka-mode")
                                if r.json()["warning"]["warning_id"] == row["warning_id"]],
                       "the webhook")
    assert hooks[0].json()["transition"] == "warning.raised"

    # on the wire: the event once (keyed by household), the two refusals in the DLQ,
    # and the visit's note nowhere in clear
    events = read_topic(kafka_api.bootstrap, kafka_api.topics.events)
    mine = [m for m in events if orjson.loads(m.value)["event_id"] == visit["event_id"]]
    assert len(mine) == 1 and mine[0].key == b"hh-k-1"
    letters = read_topic(kafka_api.bootstrap, kafka_api.topics.dlq)
    reasons = sorted(dict(m.headers)["reason"].decode() for m in letters)
    assert reasons == ["event_id: already used by an event with different content (conflict)",
                       "org_unit: outside your org unit"]
    for message in events + letters:
        assert NOTE.encode() not in message.value


def test_acknowledge_and_assign_are_applied_by_the_worker(kafka_api: KafkaApi,
                                                          receiver: Receiver) -> None:
    api = kafka_api.api
    sub = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102002000", "url": receiver.url + "/kafka-ack", "secret": SECRET})
    assert sub.status_code == 201, sub.text
    api.publish("chair102", [event("230102002001", "hh-k-2")])
    row = eventually(lambda: _inbox(api, "chair102", "hh-k-2"), "the warning")
    warning_id = row["warning_id"]

    assigned = api.call("POST", f"/v1/alerts/{warning_id}/assign", "chair102",
                        json={"assignee": "cadre102"})
    assert assigned.status_code == 422  # cadre102's community does not cover 230102002001
    assigned = api.call("POST", f"/v1/alerts/{warning_id}/assign", "chair102",
                        json={"assignee": "admin"})
    assert assigned.status_code == 202, assigned.text
    acked = api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
    assert acked.status_code == 202, acked.text
    assert acked.json()["warning"]["warning_id"] == warning_id

    def applied() -> dict[str, Any] | None:
        r = _inbox(api, "chair102", "hh-k-2")
        return r if r and r["status"] == "acknowledged" and r["assignee"] == "admin" else None

    after = eventually(applied, "acknowledged and assigned")
    assert after["acknowledged_at"] is not None
    eventually(lambda: {r.json()["transition"] for r in receiver.at("/kafka-ack")}
               >= {"warning.raised", "warning.acknowledged"}, "the acknowledgement webhook")
    commands = [orjson.loads(m.value) for m in read_topic(kafka_api.bootstrap,
                                                          kafka_api.topics.events)]
    by_id = {c["event_id"]: c for c in commands}
    assert by_id[acked.json()["event_id"]]["type"] == "warning.acknowledged"
    assert by_id[assigned.json()["event_id"]]["data"] == {
        "warning_id": warning_id, "by": "chair102", "assignee": "admin"}


def test_kafka_channel_produces_to_the_district_topic(kafka_api: KafkaApi) -> None:
    api = kafka_api.api
    for user, org_unit in (("chair102", "230102000000"), ("chair103", "230103000000")):
        created = api.call("POST", "/v1/subscriptions", user,
                           json={"org_unit": org_unit, "channel": "kafka", "min_level": "red"})
        assert created.status_code == 201, created.text
        assert created.json()["topic"] == f"{kafka_api.prefix}jiahe.alerts.<district>"
    api.publish("admin", [event("230102003001", "hh-k-102"), event("230103003001", "hh-k-103")])
    w102 = eventually(lambda: _inbox(api, "admin", "hh-k-102"), "102's warning")["warning_id"]
    w103 = eventually(lambda: _inbox(api, "admin", "hh-k-103"), "103's warning")["warning_id"]

    def keys(district: str) -> set[bytes]:
        topic = f"{kafka_api.prefix}jiahe.alerts.{district}"
        return {m.key for m in read_topic(kafka_api.bootstrap, topic)}

    eventually(lambda: w102.encode() in keys("230102") and w103.encode() in keys("230103"),
               "both district topics")
    assert w103.encode() not in keys("230102") and w102.encode() not in keys("230103")
    (message,) = [m for m in read_topic(kafka_api.bootstrap,
                                        f"{kafka_api.prefix}jiahe.alerts.230102")
                  if m.key == w102.encode()]
    body = orjson.loads(message.value)
    assert body["transition"] == "warning.raised"
    assert body["warning"]["warning_id"] == w102 and body["record"]["type"] == "warning.raised"
    assert b"hh-k-102" not in message.value  # pseudonymous: the topic cannot forget
    assert body["warning"]["household_key"] == body["record"]["household_key"]
    refused = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "channel": "kafka", "personal_data": True})
    assert refused.status_code == 422 and "pseudonymous" in refused.text
    assert dict(message.headers)["delivery"].decode().endswith(f":{w102}:warning.raised")
    assert f"{kafka_api.prefix}jiahe.alerts.230104" not in describe(kafka_api.bootstrap)


def test_the_mirror_keeps_lifecycle_records_once(kafka_api: KafkaApi) -> None:
    """Each record on jiahe.warnings is mirrored exactly once into the home's lifecycle."""
    api = kafka_api.api
    api.publish("chair102", [event("230102004001", "hh-k-once")])
    eventually(lambda: _inbox(api, "chair102", "hh-k-once"), "the warning")
    def canonical(records: list[dict[str, Any]]) -> list[bytes]:
        return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)

    def on_topic() -> list[bytes]:  # the worker may re-emit a record: a set, then
        return sorted(set(canonical([orjson.loads(m.value) for m in read_topic(
            kafka_api.bootstrap, kafka_api.topics.warnings)])))

    def mirrored() -> list[bytes]:
        return canonical([orjson.loads(b) for (b,) in api.sql(
            "log.sqlite3", "SELECT body FROM lifecycle ORDER BY seq")])

    eventually(lambda: mirrored() == on_topic(), "the mirror to hold the topic's records")
    assert len(mirrored()) == len(set(mirrored())) >= 1


def test_home_is_not_processed_locally(kafka_api: KafkaApi) -> None:
    """The processor checkpoint follows the mirror: `jiahe process` would add nothing."""
    api = kafka_api.api

    def caught_up() -> bool:
        end = api.sql("log.sqlite3", "SELECT COALESCE(MAX(position), 0) FROM events")[0][0]
        checkpoint = api.sql("log.sqlite3",
                             "SELECT position FROM checkpoints WHERE consumer = 'processor'")
        return bool(end > 0 and checkpoint == [(end,)])

    eventually(caught_up, "the processor checkpoint at the end of the mirrored events")


def _produce(bootstrap: str, topic: str, values: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, key=value["household_id"].encode(), value=orjson.dumps(value))
        producer.flush()
    finally:
        producer.close()


def test_a_restarted_api_resumes_the_mirror_without_duplicates(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """No worker here: the topics get what a worker would write (the engine's own records),
    including a record re-emitted after a worker crash, across an API restart."""
    prefix = f"t.mirror.{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    create_topic_set(kafka_broker.bootstrap, topics, 2)
    visit = event("230102001001", "hh-m-1")
    ack = event("230102001001", "hh-m-1", "warning.acknowledged", hours_ago=0.5)
    replay = Replay(Engine(load_pack()))
    (raised,) = replay.feed_line(orjson.dumps(visit))[1].records  # type: ignore[union-attr]
    ack["data"] = {"warning_id": raised["warning_id"], "by": "chair102"}
    (acked,) = replay.feed_line(orjson.dumps(ack))[1].records  # type: ignore[union-attr]
    args = (*DELIVERY_ARGS, "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", prefix)

    _produce(kafka_broker.bootstrap, topics.events, [visit])
    _produce(kafka_broker.bootstrap, topics.warnings, [raised])
    with serve_api(tmp_path, USERS, args) as api:
        row = eventually(lambda: _inbox(api, "chair102", "hh-m-1"), "the mirrored raise")
        assert row["status"] == "open"

    _produce(kafka_broker.bootstrap, topics.events, [visit, ack])  # a re-sent event too
    _produce(kafka_broker.bootstrap, topics.warnings, [raised, acked])  # raised: re-emitted
    with serve_api(tmp_path, USERS, args) as api:
        eventually(lambda: (_inbox(api, "chair102", "hh-m-1") or {}).get("status")
                   == "acknowledged", "the mirrored acknowledgement")
        types = [t for (t,) in api.sql("log.sqlite3", "SELECT type FROM lifecycle ORDER BY seq")]
        assert types == ["warning.raised", "warning.acknowledged"]
        event_ids = [e for (e,) in api.sql("log.sqlite3", "SELECT event_id FROM events")]
        assert sorted(event_ids) == sorted([visit["event_id"], ack["event_id"]])
        ends = dict(api.sql("log.sqlite3", "SELECT consumer, position FROM checkpoints "
                            "WHERE consumer LIKE 'kafka:%'"))
        assert sum(v for k, v in ends.items() if k.startswith(f"kafka:{topics.warnings}:")) == 3


def test_live_stream_on_kafka_is_scoped(kafka_api: KafkaApi) -> None:
    """SSE reads the mirrored lifecycle table: the worker's raise arrives, in scope only."""
    assert_live_stream_is_scoped(kafka_api.api, "k-sse", "230103005001", "230102005001",
                                 wait_s=120)


def test_events_wait_in_the_outbox_while_the_broker_is_away(tmp_path: Path) -> None:
    """Accepted means kept: with no broker the answer is still per event, and once a broker
    answers on that address the ticker sends what waited (no worker needed to see it)."""
    from devtools import kafka_local
    from tests.api.conftest import free_port

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    home = tmp_path / "home"
    home.mkdir()
    waiting = event("230102001001", "hh-away")
    args = ("--tick", "0.5", "--bootstrap", bootstrap, "--topic-prefix", "away.")
    with serve_api(home, USERS, args) as api:
        body = api.publish("chair102", [waiting, event("230103001001", "hh-away-out")],
                           strict=False, status=403)
        assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
        again = api.publish("chair102", [waiting], strict=False)
        assert again["results"][0]["status"] == "duplicate"  # the outbox is the index
        assert api.call("GET", "/v1/alerts", "chair102").json()["count"] == 0
        try:
            kafka_local.start(tmp_path / "kafka", port=port)
            create_topic_set(bootstrap, Topics.with_prefix("away."), 1)
            topics = Topics.with_prefix("away.")
            sent = eventually(lambda: read_topic(bootstrap, topics.events), "the queued event")
            assert [orjson.loads(m.value)["event_id"] for m in sent] == [waiting["event_id"]]
            letters = eventually(lambda: read_topic(bootstrap, topics.dlq), "the dead letter")
            assert [dict(m.headers)["reason"] for m in letters] == [
                b"org_unit: outside your org unit"]
        finally:
            kafka_local.stop(tmp_path / "kafka")
