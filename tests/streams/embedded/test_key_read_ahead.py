"""Publishing when the log holds more household keys than the key ring caches.

Then each batch's keys are read ahead in one statement; what is stored must be
exactly what publishing one key lookup at a time stores: each field sealed under
its own household's key, one key per household, erased households still erased.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from events.codec import Decoded, decode
from privacy.crypto import ERASED, is_envelope
from streams.embedded import sqlite_events
from streams.embedded.log import SqliteLog
from tests.privacy.conftest import HOUSEHOLDS, MARK, story

SINGLE_LOOKUP = "FROM household_keys WHERE household_id = '"  # bound values expanded


@pytest.fixture(autouse=True)
def check_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether to read ahead is decided again before every batch, not every 20th."""
    monkeypatch.setattr(sqlite_events, "READ_AHEAD_CHECK_EVERY", 1)


def publish(path: Path, lines: list[str], cache_limit: int,
            erase: str | None = None) -> tuple[SqliteLog, list[str]]:
    """Publish ``lines`` (after erasing ``erase``) in batches of 4; returns the log, statements."""
    log = SqliteLog(path)
    log.keyring.CACHE_LIMIT = cache_limit
    if erase is not None:
        log.erase_household(erase)
    statements: list[str] = []
    log.db.set_trace_callback(statements.append)
    log.publish(lines, "test", batch_size=4)
    log.db.set_trace_callback(None)
    return log, statements


def sealed_fields(log: SqliteLog) -> list[tuple[str, str, Any]]:
    """(event_id, field, opened value) of every sealed or erased field, in log order."""
    out = []
    for entry in log.read_events(0, 10_000):
        body = orjson.loads(entry.body)
        clear, problems = log.keyring.open_event(body)
        assert not problems
        for name, value in body["data"].items():
            if is_envelope(value) or value == ERASED:
                out.append((body["event_id"], name, clear["data"][name]))
    return out


@pytest.mark.parametrize("erased", [None, HOUSEHOLDS[2]])
def test_reading_keys_ahead_stores_what_one_lookup_at_a_time_stores(
    tmp_path: Path, erased: str | None
) -> None:
    lines = story()
    # cache of 1: after the first key the log always outgrows it, so keys are read ahead
    ahead, ahead_sql = publish(tmp_path / "ahead" / "log.sqlite3", lines, 1, erased)
    # a cache bigger than the log: never read ahead, one lookup per new household
    single, single_sql = publish(tmp_path / "single" / "log.sqlite3", lines, 10**6, erased)
    try:
        assert any("household_id IN (" in s for s in ahead_sql)
        assert not any("household_id IN (" in s for s in single_sql)
        # after the first batch, no key is looked up alone
        first_commit = ahead_sql.index("COMMIT")
        assert not any(SINGLE_LOOKUP in s for s in ahead_sql[first_commit:])
        assert any(SINGLE_LOOKUP in s for s in single_sql[single_sql.index("COMMIT"):])

        fields = sealed_fields(ahead)
        assert fields == sealed_fields(single) and len(fields) >= 4 * len(HOUSEHOLDS) - 4
        originals = {d.event_id: d.raw for d in map(decode, lines) if isinstance(d, Decoded)}
        for event_id, name, value in fields:
            household = originals[event_id]["household_id"]
            expected = ERASED if household == erased else originals[event_id]["data"][name]
            assert value == expected and (MARK in value) == (household != erased)
        # one key per household that is not erased, and each field under its household's
        kids = dict(ahead.db.execute("SELECT household_id, kid FROM household_keys"))
        assert set(kids) == set(HOUSEHOLDS) - {erased}
        for entry in ahead.read_events(0, 10_000):
            body = orjson.loads(entry.body)
            for value in body["data"].values():
                if is_envelope(value):
                    assert value["kid"] == kids[body["household_id"]]
    finally:
        ahead.close()
        single.close()


def test_a_failed_batch_leaves_no_key_read_ahead_behind(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    log.keyring.CACHE_LIMIT = 1
    try:
        log.publish(story()[:5], "test")  # one household: its key exists
        with pytest.raises(RuntimeError), log.keys.read_ahead([HOUSEHOLDS[0], "unknown"]):
            assert log.keys.key_of_household(HOUSEHOLDS[0]) is not None
            assert log.keys.key_of_household("unknown") is None
            raise RuntimeError("the batch failed")
        assert log.keys._ahead is None
    finally:
        log.close()
