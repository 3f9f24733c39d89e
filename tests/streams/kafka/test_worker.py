"""``jiahe worker`` on a real broker: same lifecycle records as the engine alone.

Each test publishes a stream to a fresh topic set (``kafka_topic_prefix``), runs worker
subprocesses with an event-time clock, and compares what reaches ``…jiahe.warnings``
(deduplicated by the ``record_id`` header) with ``rules.replay.Replay`` + ``finish(as_of)``
over the same lines: as sets of record ids and as full dicts. Also checks that rejected
input reaches the DLQ with its reason, sealed with the day's quarantine public key, and
opens byte for byte with the key store that holds the private key.
"""

from __future__ import annotations

import os
import re
import signal
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
from kafka.admin import KafkaAdminClient

from events.instants import format_instant, now_micros, parse_instant
from privacy.keystore import kafka_keyring
from privacy.quarantine import write_public_keys
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.kafka.batch import record_id
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.corpus.bad_inputs import CORPUS
from tests.rules.after_alert import after_alert_story
from tests.rules.households import v2_story

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

AS_OF = "2026-12-01T00:00:00+08:00"
ROOT = Path(__file__).resolve().parents[3]
#: Hand-made bad input on top of the sample's own malformed lines.
BAD_LINES = [b"{broken", b'{"type": "petition.received"}', b"[]"]


@dataclass
class Expected:
    records: dict[str, dict[str, Any]]
    rejected: set[bytes]
    lines: list[bytes]
    processed: int


def expected_from(lines: list[bytes], as_of: str) -> Expected:
    """The reference: the engine alone over the lines in publish order."""
    replay = Replay(Engine(load_pack()))
    records: list[dict[str, Any]] = []
    rejected: set[bytes] = set()
    for line in lines:
        _, outcome = replay.feed_line(line)
        if outcome is None or outcome.status == "rejected":
            rejected.add(line)
        else:
            records.extend(outcome.records)
    records.extend(replay.finish(parse_instant(as_of)))
    by_id = {record_id(r): r for r in records}
    assert len(by_id) == len(records), "record ids must be unique in one run"
    return Expected(by_id, rejected, lines, replay.counts.processed)


def publish(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for line in lines:
            try:
                household = orjson.loads(line).get("household_id")
            except (orjson.JSONDecodeError, AttributeError):
                household = None
            key = household.encode() if isinstance(household, str) else None
            producer.send(topic, key=key, value=line)
        producer.flush()
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic`` up to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, "could not read topic to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def warnings_by_id(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """Deduplicate by the record_id header; duplicates must be identical."""
    seen: dict[str, dict[str, Any]] = {}
    for message in read_all(bootstrap, topic):
        headers = dict(message.headers)
        record = orjson.loads(message.value)
        rid = headers["record_id"].decode()
        assert rid == record_id(record)
        assert message.key == record["household_id"].encode()
        assert seen.setdefault(rid, record) == record, f"re-emitted {rid} differs"
    return seen


def committed(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group) or {}
    except Exception:  # group not there yet
        return 0
    finally:
        admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


class Workers:
    """Worker subprocesses of one test; all are stopped (killed if need be) at the end."""

    module = "cli.kafka"

    def __init__(self, bootstrap: str, prefix: str, tmp: Path,
                 keys_home: Path | None = None) -> None:
        self.bootstrap, self.prefix, self.tmp = bootstrap, prefix, tmp
        self.group = prefix + "workers"
        self.procs: list[subprocess.Popen[bytes]] = []
        #: The API host's home whose key store holds the quarantine private keys.
        self.keys_home = keys_home if keys_home is not None else tmp / "api-keys"

    def quarantine_keys(self) -> Path:
        """The public quarantine keys (today and tomorrow) the workers seal dead letters with."""
        path = self.tmp / "quarantine-keys.json"
        if not path.exists():
            keyring = kafka_keyring(self.keys_home)
            try:
                write_public_keys(path, keyring.quarantine_public_keys(2))
            finally:
                keyring.close()
        return path

    def open_letter(self, value: bytes) -> bytes | None:
        """A worker's dead letter opened on the API host's side (``privacy.keystore``)."""
        keyring = kafka_keyring(self.keys_home)
        try:
            return keyring.open_dead_letter(value)
        finally:
            keyring.close()

    def command(self, name: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", self.module, "--home", str(self.tmp / "home"),
                "worker", "--bootstrap", self.bootstrap, "--topic-prefix", self.prefix,
                "--app-id", self.group, "--data-dir", str(self.tmp / name),
                "--session-timeout", "6", "--tick", "0.2", "--loglevel", "info",
                "--quarantine-keys", str(self.quarantine_keys()), *extra]

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        cmd = self.command(name, *extra)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(proc)
        return proc

    def assert_alive(self) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.poll() is not None:
                logs = "\n".join(p.read_text()[-3000:] for p in self.tmp.glob("*.log"))
                pytest.fail(f"worker exited with {proc.returncode}:\n{logs}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-4000:] for p in sorted(self.tmp.glob("*.log")))


@pytest.fixture
def workers(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
            ) -> Iterator[Workers]:
    create_topic_set(kafka_broker.bootstrap, Topics.with_prefix(kafka_topic_prefix), 6)
    pool = Workers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def wait_for_records(pool: Workers, expected: Expected, timeout_s: float = 180
                     ) -> dict[str, dict[str, Any]]:
    """Poll the warnings topic until every expected record arrived, then let it settle."""
    topics = Topics.with_prefix(pool.prefix)
    deadline = time.monotonic() + timeout_s
    got: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        pool.assert_alive()
        got = warnings_by_id(pool.bootstrap, topics.warnings)
        if len(got) >= len(expected.records) and committed(
            pool.bootstrap, pool.group
        ) >= len(expected.lines):
            time.sleep(2)  # anything extra would show up now
            return warnings_by_id(pool.bootstrap, topics.warnings)
        time.sleep(1)
    pytest.fail(f"{len(got)}/{len(expected.records)} records after {timeout_s}s\n{pool.logs()}")


def assert_same(got: dict[str, dict[str, Any]], expected: Expected) -> None:
    assert set(got) == set(expected.records)
    assert got == expected.records


def assert_dlq(pool: Workers, expected: Expected) -> None:
    letters = read_all(pool.bootstrap, Topics.with_prefix(pool.prefix).dlq)
    assert {pool.open_letter(m.value) for m in letters} == expected.rejected
    for message in letters:
        headers = dict(message.headers)
        assert headers["reason"] and headers["stage"] in (b"decode", b"engine")
        assert headers["sealed"] == b"quarantine" and message.value not in expected.rejected
        assert headers["source"].startswith(Topics.with_prefix(pool.prefix).events.encode())


@pytest.fixture(scope="module")
def stream(sample_stream: Path) -> list[bytes]:
    lines = [line for line in sample_stream.read_bytes().splitlines() if line.strip()]
    return lines + BAD_LINES


def test_one_worker_matches_replay(workers: Workers, stream: list[bytes]) -> None:
    """Also writes the chdb warehouse: every accepted event and every record, once."""
    expected = expected_from(stream, AS_OF)
    assert len(expected.records) > 100 and len(expected.rejected) > 10
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, stream)
    warehouse = workers.tmp / "warehouse"
    workers.start("w1", "--as-of", AS_OF, "--warehouse", f"chdb:{warehouse}")
    assert_same(wait_for_records(workers, expected), expected)
    assert_dlq(workers, expected)
    workers.stop()  # chdb: one process per path
    events, records, _ = warehouse_counts(workers, warehouse)
    assert (events, records) == (expected.processed, len(expected.records))


def test_one_worker_matches_replay_on_a_v2_stream(workers: Workers) -> None:
    """Catalog v2 households: registrations, transfers moving open warnings, screening
    deadlines firing and resolved by visits, notices, and v2 shape errors (DLQ)."""
    bad = [e.raw for e in CORPUS if e.kind_id.startswith(("registered-", "transferred-"))]
    story = [line.encode() for line in v2_story(parse_instant("2026-03-01T08:00:00Z"))]
    stream = [*story[:5], *bad, *story[5:]]
    expected = expected_from(stream, AS_OF)
    kinds = {(r["type"], r.get("rule_id")) for r in expected.records.values()}
    assert {("warning.transferred", None), ("warning.raised", "screening-overdue"),
            ("warning.resolved", None)} <= kinds
    assert expected.rejected == set(bad)
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, stream)
    workers.start("w1", "--as-of", AS_OF)
    assert_same(wait_for_records(workers, expected), expected)
    assert_dlq(workers, expected)


def test_workers_match_replay_on_every_v2_type_across_a_restart(workers: Workers) -> None:
    """Every v2 type: households, assessments, reopenings, referrals and consent, with
    their notices and shape errors. The first worker, throttled, stops mid-stream; the
    second, with an empty local store, restores the households' states (open and resolved
    warnings, referrals, consent) from the changelog and processes the rest."""
    t0 = parse_instant("2026-03-01T08:00:00Z")
    prefixes = ("assessed-", "reopened-", "referral-", "consent-")
    bad = [e.raw for e in CORPUS if e.kind_id.startswith(prefixes) and e.expected is not None]
    story = [line.encode() for line in after_alert_story(t0)]
    stream = [*(line.encode() for line in v2_story(t0)), *story[:20], *bad, *story[20:]]
    expected = expected_from(stream, AS_OF)
    types = {r["type"] for r in expected.records.values()}
    assert {"warning.assessed", "warning.reopened", "referral.sent", "referral.accepted",
            "referral.declined", "referral.closed", "warning.transferred"} <= types
    assert expected.rejected == set(bad)
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, stream)
    workers.start("w1", "--as-of", AS_OF, "--batch", "4", "--max-rate", "8")
    wait_for_progress(workers, len(stream))
    workers.stop()
    workers.start("w2", "--as-of", AS_OF, "--batch", "4")
    assert_same(wait_for_records(workers, expected), expected)
    assert_dlq(workers, expected)


def warehouse_counts(workers: Workers, warehouse: Path) -> tuple[int, int, int]:
    """The workers' chdb warehouse (opened once they stopped: one process per path):
    events after FINAL, records after FINAL (every warning record is a row of
    ``warning_transitions``, every referral record one of ``referral_records``), and
    lifecycle rows before FINAL."""
    from projections.warehouse.chdb_backend import ChdbWarehouse

    secret = (workers.tmp / "home" / "pseudonym.key").read_bytes().strip()
    store = ChdbWarehouse(warehouse, secret)

    def count(sql: str) -> int:
        return int(store.query(sql).rows[0][0])

    try:
        return (count("SELECT count() FROM events FINAL"),
                count("SELECT count() FROM warning_transitions FINAL")
                + count("SELECT count() FROM referral_records FINAL"),
                count("SELECT count() FROM lifecycle"))
    finally:
        store.close()


def test_two_workers_six_partitions_match_replay(workers: Workers, tmp_path: Path) -> None:
    """The second worker joins once the first has committed progress: the rebalance moves
    partitions (and their table state, via the changelog) mid-stream. ``--max-rate`` keeps
    the first from finishing alone (at 2,000 events/s the stream lasts 15 s; unthrottled
    a fast run once read all of it before the second worker had joined), and a throttled
    worker's records must still equal the replay."""
    lines = big_stream(tmp_path, seed=5)
    expected = expected_from(lines, AS_OF)
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, lines)
    workers.start("w1", "--as-of", AS_OF, "--batch", "50", "--store", "memory",
                  "--max-rate", "2000")
    wait_for_progress(workers, len(lines))
    workers.start("w2", "--as-of", AS_OF, "--batch", "50")
    assert_same(wait_for_records(workers, expected), expected)
    assert_dlq(workers, expected)
    workers.stop()
    received = [int(n) for n in re.findall(r"worker stopped: \{'received': (\d+)", workers.logs())]
    assert len(received) == 2 and all(received), received
    assert sum(received) >= len(lines)


def wait_for_progress(pool: Workers, total: int) -> None:
    """Until the group has committed part of the stream (small batches make it slow)."""
    deadline = time.monotonic() + 120
    while (done := committed(pool.bootstrap, pool.group)) == 0:
        pool.assert_alive()
        assert time.monotonic() < deadline, pool.logs()
        time.sleep(0.05)
    assert done < total, "the stream was done before the test could interfere"


def big_stream(tmp_path: Path, seed: int, events: int = 30_000) -> list[bytes]:
    from events.sample import StreamSpec, write_jsonl

    path = tmp_path / f"stream-{seed}.jsonl"
    spec = StreamSpec(events=events, households=events // 10, seed=seed, at_risk_fraction=0.1)
    write_jsonl(spec, path)
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def test_sigkill_mid_stream_then_restart_loses_nothing(
    workers: Workers, tmp_path: Path
) -> None:
    lines = big_stream(tmp_path, seed=11)
    expected = expected_from(lines, AS_OF)
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, lines)
    slow = ("--as-of", AS_OF, "--batch", "100", "--commit-interval", "0.1")
    victim = workers.start("w1", *slow)
    wait_for_progress(workers, len(lines))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    halfway = committed(workers.bootstrap, workers.group)
    assert 0 < halfway < len(lines)
    workers.start("w1", "--as-of", AS_OF)  # same data dir: rocksdict files + changelog
    assert_same(wait_for_records(workers, expected), expected)
    assert_dlq(workers, expected)


def test_wall_clock_timer_fires_due_deadlines(workers: Workers) -> None:
    """Without --as-of a timer fires what is due by now: a red warning raised ten days
    ago climbs to the city level with no further event."""
    ten_days_ago = format_instant(now_micros() - 10 * 86_400_000_000)
    visit = orjson.dumps({
        "event_id": str(uuid.uuid4()), "type": "screening.visit_recorded",
        "schema_version": 1, "occurred_at": ten_days_ago, "org_unit": "230102001001",
        "household_id": "hh-wall", "data": {"indicators": ["injury_observed"]},
    })
    expected = expected_from([visit], format_instant(now_micros()))
    assert [r["type"] for r in expected.records.values()].count("warning.escalated") == 3
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, [visit])
    workers.start("w1")
    assert_same(wait_for_records(workers, expected, timeout_s=90), expected)
