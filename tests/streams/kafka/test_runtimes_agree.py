"""Both runtimes agree, on the real broker: district surge rules on the worker write the
embedded runtime's records byte for byte (``streams.kafka.surges``), and the same events
give the same analytics keys in the warehouse of each (``jiahe worker --warehouse
chdb:…`` and the embedded runtime) when the deployment sets one pseudonym secret
(``privacy.pseudonym``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.instants import format_instant, parse_instant
from privacy.pseudonym import SECRET_ENV, household_key
from projections.warehouse.chdb_backend import ChdbWarehouse
from streams.clock import EventTimeClock, WallClock
from streams.kafka.batch import record_id
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.rules.households import v2_story
from tests.rules.test_surge import SURGE_PACK_PATH
from tests.rules.test_surge_runtime import AS_OF as SURGE_AS_OF
from tests.rules.test_surge_runtime import scenario
from tests.streams.kafka.test_worker import (
    AS_OF,
    Workers,
    committed,
    expected_from,
    publish,
    read_all,
    wait_for_records,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.kafka_fixtures import KafkaBroker

SECRET = "one-secret-for-the-whole-deployment"
KEYS_SQL = "SELECT event_id, household_key FROM events FINAL ORDER BY event_id"


def _keys(path: Path) -> dict[str, str]:
    store = ChdbWarehouse(path, SECRET.encode())
    try:
        return {str(e): str(k) for e, k in store.query(KEYS_SQL).rows}
    finally:
        store.close()


@pytest.fixture
def workers(kafka_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path
            ) -> Iterator[Workers]:
    create_topic_set(kafka_broker.bootstrap, Topics.with_prefix(kafka_topic_prefix), 3)
    pool = Workers(kafka_broker.bootstrap, kafka_topic_prefix, tmp_path / "kafka")
    pool.tmp.mkdir()
    try:
        yield pool
    finally:
        pool.stop()


def test_the_same_household_has_the_same_analytics_key_in_both_warehouses(
    workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)  # the workers' environment too
    lines = [line.encode() for line in v2_story(parse_instant("2026-03-01T08:00:00Z"))]
    expected = expected_from(lines, AS_OF)
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, lines)
    kafka_warehouse = workers.tmp / "kafka-warehouse"
    workers.start("w1", "--as-of", AS_OF, "--warehouse", f"chdb:{kafka_warehouse}")
    wait_for_records(workers, expected)
    workers.stop()  # chdb: one process per path

    embedded = bootstrap_embedded(tmp_path / "embedded-home")
    try:
        embedded.publish(lines, "test")
        embedded.process(EventTimeClock(parse_instant(AS_OF)))
        embedded_warehouse = embedded.warehouse_path
    finally:
        embedded.close()

    kafka_keys, embedded_keys = _keys(kafka_warehouse), _keys(embedded_warehouse)
    assert len(kafka_keys) == expected.processed > 5
    assert kafka_keys == embedded_keys
    households = {str(orjson.loads(line)["household_id"]) for line in lines}
    assert set(kafka_keys.values()) == {household_key(SECRET.encode(), h) for h in households}


def _kafka_records(bootstrap: str, topic: str) -> dict[str, bytes]:
    """The lifecycle records on ``topic`` by record_id; re-emitted copies must be equal."""
    out: dict[str, bytes] = {}
    for message in read_all(bootstrap, topic):
        rid = dict(message.headers)["record_id"].decode()
        assert out.setdefault(rid, message.value) == message.value, f"{rid} differs"
    return out


@pytest.mark.parametrize(("worker_count", "live"), [(1, False), (2, False), (2, True)])
def test_surge_rules_on_the_worker_write_the_embedded_records_byte_for_byte(
    workers: Workers, tmp_path: Path, worker_count: int, live: bool
) -> None:
    """A Daoli surge that resolves a week later and a Nangang surge 10 days on, over
    three partitions: the surge desk (owner of partition 0) sees every district's
    events from every partition, and closes the days only once all are read. With the
    event-time clock (``--as-of``) and with the wall clock (every day up to now)."""
    lines = scenario()
    embedded = bootstrap_embedded(tmp_path / "embedded-home", pack=SURGE_PACK_PATH,
                                  batch_size=7)
    try:
        embedded.publish(lines, "test")
        clock = WallClock() if live else EventTimeClock(SURGE_AS_OF)
        embedded.process(clock, project=False)
        bodies = [bytes(e.body) for e in embedded.log.read_lifecycle(0, 10**6)]
    finally:
        embedded.close()
    wanted = {record_id(orjson.loads(b)): b for b in bodies}
    surges = [orjson.loads(b) for b in bodies if orjson.loads(b)["household_id"] is None]
    assert len(surges) == 4 and len(wanted) == len(bodies)

    encoded = [line.encode() for line in lines]
    publish(workers.bootstrap, Topics.with_prefix(workers.prefix).events, encoded)
    clock_options = () if live else ("--as-of", format_instant(SURGE_AS_OF))
    for n in range(worker_count):
        workers.start(f"w{n + 1}", *clock_options, "--pack", str(SURGE_PACK_PATH),
                      "--batch", "5")
    warnings = Topics.with_prefix(workers.prefix).warnings
    deadline = time.monotonic() + 240
    while True:
        workers.assert_alive()
        got = _kafka_records(workers.bootstrap, warnings)
        if len(got) >= len(wanted) and committed(workers.bootstrap, workers.group) >= len(lines):
            time.sleep(3)  # anything extra would show up now
            break
        assert time.monotonic() < deadline, f"{len(got)}/{len(wanted)}\n{workers.logs()}"
        time.sleep(1)
    got = _kafka_records(workers.bootstrap, warnings)
    assert got == wanted  # the same records, byte for byte
