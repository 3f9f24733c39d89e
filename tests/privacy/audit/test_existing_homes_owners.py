"""Homes made before the owner directory existed get it built from their log on first open.

The ingest guard reads the directory, so an upgraded home must not treat its
households as never seen (that would let any caller place one by ``org_unit``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from app.bootstrap import bootstrap_embedded
from rules.ownership import NEVER_SEEN, Admission, Standing, next_owner
from tests.helpers import visit
from tests.privacy.audit.tools import scalar, sql


def _owners_by_fold(home: Path) -> dict[str, str | None]:
    """Each household's owner: ``next_owner`` folded over the log in position order."""
    db = sqlite3.connect(home / "log.sqlite3")
    try:
        standings: dict[str, Standing] = {}
        for household_id, body in db.execute(
                "SELECT household_id, body FROM events ORDER BY position"):
            event = orjson.loads(body)
            was = standings.get(household_id, NEVER_SEEN)
            step = next_owner(was.owner, was.registered, event["type"], event["org_unit"],
                              event["data"])
            standings[household_id] = Standing(step.owner, step.registered)
        return {h: s.owner for h, s in standings.items()}
    finally:
        db.close()


def test_an_old_home_is_given_its_owners_on_first_open(home: Path) -> None:
    sql(home, "log.sqlite3", "DROP TABLE household_owner")
    expected = _owners_by_fold(home)
    assert len(expected) > 100
    runtime = bootstrap_embedded(home)
    try:
        log = runtime.log
        assert {h: log.owner_of(h) for h in expected} == expected
        assert scalar(home, "log.sqlite3", "SELECT COUNT(*) FROM household_owner") \
            == len(expected)
        # the guard now knows them: another district cannot write about them
        household = next(h for h, o in expected.items() if o and o.startswith("230102"))
        guard = Admission("230103000000", log.standing_of)
        assert guard.refusal(household, "case.resolved", "230103001001", {}) is not None
        # and appends keep it current
        runtime.publish([visit("hh-after-upgrade", "2026-12-20T10:00:00+08:00", [],
                               org="230103001001")], "file")
        assert log.owner_of("hh-after-upgrade") == "230103001001"
        assert log.standing_of("hh-never") == NEVER_SEEN
    finally:
        runtime.close()
