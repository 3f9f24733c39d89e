"""The embedded log's owner directory (``OwnerDirectory``): the fold of the log, kept on append.

The directory must equal ``rules.ownership.next_owner`` folded over each household's
events in log order, whatever path appended them, and must commit or roll back with
the append itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from events.codec import Decoded, decode
from rules.ownership import NEVER_SEEN, Standing, next_owner
from streams.embedded import sqlite_events
from streams.embedded.log import SqliteLog
from streams.ports import OwnerDirectory
from tests.helpers import envelope, line, visit

A = "230102001001"
B = "230102002001"
C = "230103001001"


def reference(log: SqliteLog) -> dict[str, Standing]:
    """The fold of every event in the log, in position order."""
    out: dict[str, Standing] = {}
    position = 0
    while entries := log.read_events(position, 1000):
        for entry in entries:
            event = orjson.loads(entry.body)
            was = out.get(event["household_id"], NEVER_SEEN)
            step = next_owner(was.owner, was.registered, event["type"], event["org_unit"],
                              event["data"])
            out[event["household_id"]] = Standing(step.owner, step.registered)
        position = entries[-1].position
    return out


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteLog]:
    made = SqliteLog(tmp_path / "log.sqlite3")
    yield made
    made.close()


def test_the_log_is_an_owner_directory(log: SqliteLog) -> None:
    directory: OwnerDirectory = log
    assert directory.owner_of("hh-1") is None
    assert directory.standing_of("hh-1") == NEVER_SEEN


def test_the_first_appended_event_sets_the_owner_later_ones_do_not(log: SqliteLog) -> None:
    log.publish([visit("hh-1", "2026-03-01T08:00:00Z", [], org=A),
                 visit("hh-1", "2026-03-02T08:00:00Z", [], org=C),
                 visit("hh-2", "2026-03-02T08:00:00Z", [], org=C)], "test")
    assert log.owner_of("hh-1") == A and log.owner_of("hh-2") == C
    assert log.standing_of("hh-1") == Standing(A, False)


def test_rejected_input_and_duplicates_fold_nothing(log: SqliteLog) -> None:
    first = visit("hh-1", "2026-03-01T08:00:00Z", [], org=A, eid="e-1")
    bad = line({**envelope("screening.visit_recorded", "hh-9", "2026-03-01T08:00:00Z",
                           {"indicators": []}, org=C), "type": "nope"})
    log.publish([first, bad, first], "test")
    assert log.owner_of("hh-1") == A and log.owner_of("hh-9") is None


def test_publish_decoded_folds_too(log: SqliteLog) -> None:
    item = decode(visit("hh-3", "2026-03-01T08:00:00Z", [], org=B))
    log.publish_decoded([item], "http:test")  # type: ignore[list-item]
    assert log.owner_of("hh-3") == B


def test_a_rolled_back_append_leaves_the_directory_as_it_was(log: SqliteLog) -> None:
    def fold_then_fail(items: Sequence[Decoded]) -> None:
        log.owners.observe(items)
        raise RuntimeError("boom")

    log.events.on_append = fold_then_fail
    with pytest.raises(RuntimeError):
        log.publish([visit("hh-4", "2026-03-01T08:00:00Z", [], org=A)], "test")
    assert log.owner_of("hh-4") is None and log.end_position() == 0


def test_the_sql_fold_handles_transfers_and_registrations(log: SqliteLog) -> None:
    """v2 events through the adapter's fold (the same step ``observe`` runs per append)."""
    with log.transaction():
        log.owners.fold("hh-5", "screening.visit_recorded", A, {})
        log.owners.fold("hh-5", "household.registered", B, {"flags": []})
        assert log.standing_of("hh-5") == Standing(B, True)
        log.owners.fold("hh-5", "household.transferred", B, {"to_org_unit": C})
        log.owners.fold("hh-5", "household.transferred", B, {"to_org_unit": A})  # not owner
    assert log.standing_of("hh-5") == Standing(C, True)


def test_the_directory_equals_the_fold_of_the_log(log: SqliteLog) -> None:
    orgs = [A, B, C]
    lines = [visit(f"hh-{n % 17}", f"2026-03-{1 + n % 28:02d}T08:00:00Z", [], org=orgs[n % 3])
             for n in range(300)]
    log.publish(lines, "test", batch_size=37)
    expected = reference(log)
    assert {h: log.standing_of(h) for h in expected} == expected


def test_an_old_log_gets_its_directory_built_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    old = SqliteLog(path)
    old.publish([visit(f"hh-{n % 5}", "2026-03-01T08:00:00Z", [], org=[A, C][n % 2])
                 for n in range(40)], "test")
    expected = reference(old)
    old.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE household_owner")  # as a log made before owners
    db.commit()
    db.close()
    reopened = SqliteLog(path)
    try:
        assert {h: reopened.standing_of(h) for h in expected} == expected
        assert reopened.owners.migrate() == 0  # once only
    finally:
        reopened.close()


def test_one_append_mixing_placements_and_moves_folds_in_order(log: SqliteLog) -> None:
    """``observe`` batches placements but must keep them in log order around moves."""
    stream: list[tuple[str, str, str, dict[str, Any]]] = [
        ("hh-m", "screening.visit_recorded", A, {}),
        ("hh-m", "household.transferred", A, {"to_org_unit": C}),
        ("hh-n", "household.registered", B, {"flags": []}),
        ("hh-m", "petition.received", B, {}),
        ("hh-o", "screening.visit_recorded", C, {}),
        ("hh-o", "household.registered", A, {"flags": []}),
        ("hh-n", "household.transferred", A, {"to_org_unit": C}),  # not the owner
    ]
    items = [SimpleNamespace(household_id=h, event=SimpleNamespace(type=t, org_unit=o, data=d))
             for h, t, o, d in stream]
    with log.transaction():
        log.owners.observe(cast(list[Decoded], items))
    expected: dict[str, Standing] = {}
    for h, t, o, d in stream:
        was = expected.get(h, NEVER_SEEN)
        step = next_owner(was.owner, was.registered, t, o, d)
        expected[h] = Standing(step.owner, step.registered)
    assert {h: log.standing_of(h) for h in expected} == expected
    assert expected == {"hh-m": Standing(C, False), "hh-n": Standing(B, True),
                        "hh-o": Standing(A, True)}


@pytest.mark.parametrize("handover", [1, 7, 5000])
def test_a_publishing_transaction_folds_in_log_order_whatever_it_hands_over_at_a_time(
    log: SqliteLog, monkeypatch: pytest.MonkeyPatch, handover: int
) -> None:
    """A large transaction hands its appended events to the fold in runs, in log order."""
    monkeypatch.setattr(sqlite_events, "APPEND_HANDOVER", handover)
    orgs = [A, B, C]
    lines = []
    for n in range(120):
        household, org = f"hh-{n % 11}", orgs[n % 3]
        at = f"2026-03-{1 + n % 28:02d}T08:{n % 60:02d}:00Z"
        if n % 5 == 0:
            lines.append(line(envelope("household.registered", household, at, {"flags": []},
                                       org)))
        elif n % 7 == 0:
            lines.append(line(envelope("household.transferred", household, at,
                                       {"to_org_unit": orgs[(n + 1) % 3], "reason": "moved"},
                                       org)))
        else:
            lines.append(visit(household, at, [], org=org))
    counts = log.publish(lines, "test", batch_size=len(lines))  # one transaction
    assert counts.accepted == len(lines)
    expected = reference(log)
    assert {h: log.standing_of(h) for h in expected} == expected
