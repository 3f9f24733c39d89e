"""``UnmirroredOwners``: the Kafka-mode API's owners = the mirrored log, then its own
accepted-but-unmirrored events in the order it accepted them (no broker needed here;
``test_kafka_ownership_guard`` runs the same over a real one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kafka_mode import UnmirroredOwners
from events.codec import Decoded, decode
from rules.ownership import NEVER_SEEN, Standing
from sdk.outbox import Outbox
from streams.embedded.log import SqliteLog
from tests.helpers import visit

OURS = "230102001001"
THEIRS = "230103001001"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteLog]:
    made = SqliteLog(tmp_path / "log.sqlite3")
    yield made
    made.close()


def decoded(text: str) -> Decoded:
    item = decode(text)
    assert isinstance(item, Decoded)
    return item


def test_accepted_events_count_until_mirrored(log: SqliteLog) -> None:
    owners = UnmirroredOwners(log, threading.Lock())
    first = decoded(visit("hh", "2026-03-01T08:00:00Z", [], org=OURS, eid="e-1"))
    owners.accepted("hh", first.event_id, "screening.visit_recorded", OURS, {})
    owners.accepted("hh", "e-2", "household.transferred", OURS, {"to_org_unit": THEIRS})
    assert owners.standing_of("hh") == Standing(THEIRS, False)
    log.publish_decoded([first], "kafka:events")
    owners.mirrored([first.event_id])
    assert owners.standing_of("hh") == Standing(THEIRS, False)  # e-2 still on top
    log.owners.fold("hh", "household.transferred", OURS, {"to_org_unit": THEIRS})
    owners.mirrored(["e-2", "e-unknown"])
    assert owners.standing_of("hh") == Standing(THEIRS, False)
    assert owners._pending == {}  # nothing left over


def test_an_event_the_mirror_brought_first_is_not_counted_twice(log: SqliteLog) -> None:
    owners = UnmirroredOwners(log, threading.Lock())
    first = decoded(visit("hh", "2026-03-01T08:00:00Z", [], org=OURS, eid="e-1"))
    log.publish_decoded([first], "kafka:events")
    owners.accepted("hh", first.event_id, "screening.visit_recorded", OURS, {})
    assert owners._pending == {} and owners.owner_of("hh") == OURS


def test_a_restart_rebuilds_from_the_outbox(log: SqliteLog, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "api-outbox.sqlite3")
    mirrored = decoded(visit("hh-a", "2026-03-01T08:00:00Z", [], org=THEIRS, eid="e-a"))
    waiting = decoded(visit("hh-b", "2026-03-01T08:00:00Z", [], org=OURS, eid="e-b"))
    outbox.enqueue([mirrored, waiting])
    outbox.close()
    log.publish_decoded([mirrored], "kafka:events")
    owners = UnmirroredOwners(log, threading.Lock())
    assert owners.load(tmp_path / "api-outbox.sqlite3") == 1
    assert owners.owner_of("hh-b") == OURS and owners.owner_of("hh-a") == THEIRS
    assert owners.standing_of("hh-c") == NEVER_SEEN
    assert owners.load(tmp_path / "absent.sqlite3") == 0
