"""The publisher SDK given a caller: events about households outside the caller's scope are
refused (DESIGN "Ingest"), reported with their reason and sent to the DLQ, never to events.

A real broker; the owner directory is a real embedded log (``SqliteLog``), as a
server-side publisher next to a mirrored home would use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from rules.ownership import NOT_OWNER_FORBIDDEN, OUTSIDE_FORBIDDEN
from sdk.publisher import Publisher
from streams.embedded.log import SqliteLog
from tests.sdk.test_publisher import (  # noqa: F401 - fixtures of the publisher suite
    event,
    outbox_path,
    read_all,
    topics,
)

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

OURS = "230102001001"
THEIRS = "230103001001"


def at(org_unit: str, hh: str, i: int) -> dict[str, Any]:
    return {**event(hh, i), "org_unit": org_unit}


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[SqliteLog]:
    log = SqliteLog(tmp_path / "home" / "log.sqlite3")
    log.publish([orjson.dumps(at(THEIRS, "hh-theirs", 0))], "test")
    yield log
    log.close()


def test_a_caller_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        Publisher("127.0.0.1:1", tmp_path / "o.sqlite", caller="230102000000")


def test_a_caller_publishes_only_what_its_scope_covers(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path,  # noqa: F811
    directory: SqliteLog,
) -> None:
    events_topic, dlq_topic = topics
    mine = at(OURS, "hh-mine", 1)
    attack = at(OURS, "hh-theirs", 2)  # owned by 南岗区, whatever org_unit it claims
    new_outside = at(THEIRS, "hh-new", 3)  # never seen: its org_unit decides
    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic,
                   caller="230102000000", owners=directory) as publisher:
        result = publisher.publish([mine, attack, new_outside])
    assert (result.received, result.accepted, result.rejected, result.forbidden) == (3, 1, 2, 2)
    assert [(r.index, r.reason) for r in result.rejections] == [
        (2, NOT_OWNER_FORBIDDEN), (3, OUTSIDE_FORBIDDEN)]
    sent = [orjson.loads(r.value)["event_id"] for r in read_all(kafka_broker.bootstrap,
                                                                  events_topic)]
    assert sent == [mine["event_id"]]
    letters = {dict(r.headers)["event_id"].decode(): dict(r.headers)["reason"].decode()
               for r in read_all(kafka_broker.bootstrap, dlq_topic)}
    assert letters == {attack["event_id"]: NOT_OWNER_FORBIDDEN,
                       new_outside["event_id"]: OUTSIDE_FORBIDDEN}


def test_a_city_level_caller_covers_every_household(
    kafka_broker: KafkaBroker, topics: tuple[str, str], outbox_path: Path,  # noqa: F811
    directory: SqliteLog,
) -> None:
    events_topic, dlq_topic = topics
    with Publisher(kafka_broker.bootstrap, outbox_path, events_topic, dlq_topic,
                   caller="230100000000", owners=directory) as publisher:
        result = publisher.publish([at(OURS, "hh-theirs", 4), at(THEIRS, "hh-new-2", 5)],
                                   flush=False)
    assert (result.accepted, result.rejected) == (2, 0)


def test_a_batch_is_judged_in_order(tmp_path: Path, directory: SqliteLog) -> None:
    """No broker needed: the refusal is decided and kept before anything is sent."""
    with Publisher("127.0.0.1:1", tmp_path / "o.sqlite", caller="230103000000",
                   owners=directory, connect_timeout=1.0) as publisher:
        result = publisher.publish([at(OURS, "hh-b", 1), at(THEIRS, "hh-b", 2),
                                    at(OURS, "hh-c", 3), at(THEIRS, "hh-c", 4)], flush=False)
        assert [(r.index, r.reason) for r in result.rejections] == [
            (1, OUTSIDE_FORBIDDEN), (3, OUTSIDE_FORBIDDEN)]
        assert publisher.outbox.counts().dead_letters_pending == 2
