"""Personal data in side channels: fields outside the catalog and dead letters are sealed.

The attack: a field app (or a curious cadre with a token) puts personal text where the
catalog does not look — an extra field the tolerant reader accepts, or an input that is
refused and kept as a dead letter — and an outsider with a copy of the home directory
reads it. Every test reads the bytes of every file of the home.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, decode
from events.instants import now_micros
from privacy.crypto import is_envelope
from privacy.dead_letters import (
    PURGED,
    PURPOSE,
    RETENTION_ENV,
    RetentionError,
    open_dead_letter,
    quarantine_day,
    quarantine_id,
    retention_days,
    seal_dead_letter,
    sealed_envelope,
)
from privacy.keystore import kafka_keyring
from privacy.sealed import decode_sealed
from streams.clock import EventTimeClock
from streams.embedded.log import SqliteLog
from tests.helpers import DAY, T0, envelope, line

WITNESS = "张三"
PHONE = "13900001111"
NOTE = "邻居王某某说夜里常听到哭声"
ORG = "230102001001"


def home_bytes(home: Path) -> bytes:
    """Every file under the home, recursively, as bytes (SQLite, WAL, chdb parts …)."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def visit_with_extras(hh: str, name: str = "visit") -> dict[str, object]:
    data = {"indicators": ["injury_observed"], "notes": NOTE, "witness_name": WITNESS}
    event = envelope("screening.visit_recorded", hh, T0, data, ORG, f"{name}-{hh}")
    event["caller"] = {"phone": PHONE, "relation": "neighbour"}
    return event


def test_fields_outside_the_catalog_are_sealed_yet_the_event_is_accepted(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    event = visit_with_extras("hh-1")
    assert isinstance(decode(line(event)), Decoded)  # the tolerant reader takes it
    runtime = bootstrap_embedded(home)
    try:
        counts = runtime.publish([line(event)], "test")
        report = runtime.process(EventTimeClock(T0 + DAY))
        (body,) = runtime.log.db.execute("SELECT body FROM events").fetchone()
        stored = orjson.loads(body)
        opened, problems = runtime.log.keyring.open_event(stored)
        raised = runtime.warehouse.query(
            "SELECT count() FROM lifecycle WHERE type = 'warning.raised'").rows
    finally:
        runtime.close()

    assert counts.accepted == 1 and report.records["warning.raised"] == 1
    assert raised == [(1,)]  # processed like any event: its warning is raised
    assert is_envelope(stored["data"]["witness_name"]) and is_envelope(stored["caller"])
    # the stored body is still an event the reader of sealed events accepts (Kafka's)
    assert isinstance(decode_sealed(orjson.dumps(stored)), Decoded)
    assert not problems
    assert opened["data"]["witness_name"] == WITNESS
    assert opened["caller"] == {"phone": PHONE, "relation": "neighbour"}
    on_disk = home_bytes(home)
    for text in (WITNESS, PHONE, NOTE):
        assert text.encode() not in on_disk, text


def test_a_sealed_field_moved_or_unmarked_does_not_open(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    try:
        event = visit_with_extras("hh-1")
        event["data"]["caller"] = "x"  # type: ignore[index]
        sealed = log.keyring.seal_event(event)
        moved_body = {**sealed, "data": {**sealed["data"], "caller": sealed["caller"]}}
        _, moved = log.keyring.open_event(moved_body)
        unmarked = {**sealed, "caller": {k: v for k, v in sealed["caller"].items() if k != "as"}}
        _, unmarked_problems = log.keyring.open_event(unmarked)
    finally:
        log.close()
    assert [p.field for p in moved] == ["caller"]
    # the "as": "json" mark is authenticated: removed, the field no longer opens
    assert [p.field for p in unmarked_problems] == ["envelope.caller"]


def test_a_refused_input_naming_a_household_is_sealed_with_its_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = visit_with_extras("hh-7")
    bad["data"]["indicators"] = ["not-an-indicator"]  # type: ignore[index]
    raw = orjson.dumps(bad)
    runtime = bootstrap_embedded(home)
    try:
        counts = runtime.publish([raw], "http:cadre")
        (letter,) = runtime.log.dead_letters.letters()
        stored = runtime.log.db.execute("SELECT body FROM dead_letters").fetchone()[0]
        opened = runtime.log.dead_letters.unsealed_body(letter.id)
    finally:
        runtime.close()
    assert counts.rejected == 1
    assert letter.household_id == "hh-7" and "indicators" in letter.reason and letter.sealed
    envelope_ = sealed_envelope(bytes(stored))
    assert envelope_ is not None and envelope_["household_id"] == "hh-7"
    assert opened == raw  # the holder of the key store gets the input byte for byte
    for text in (WITNESS, PHONE, NOTE):
        assert text.encode() not in home_bytes(home), text


def test_a_refused_input_naming_no_household_is_quarantined_then_purged(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    garbage = f'{{"oops": "{WITNESS} {PHONE}"'.encode()  # not even JSON
    named = visit_with_extras("hh-7")
    named["data"]["indicators"] = ["not-an-indicator"]  # type: ignore[index]
    runtime = bootstrap_embedded(home)
    try:
        runtime.publish([garbage, orjson.dumps(named)], "test")
        letters = {row.household_id: row for row in runtime.log.dead_letters.letters()}
        stored = runtime.log.db.execute(
            "SELECT body FROM dead_letters WHERE household_id IS NULL").fetchone()[0]
        assert runtime.log.dead_letters.unsealed_body(letters[None].id) == garbage
        assert WITNESS.encode() not in home_bytes(home)

        dead = runtime.log.dead_letters
        with runtime.log.transaction():
            not_yet = dead.purge_expired(now_micros() + 29 * DAY)
        with runtime.log.transaction():
            purged = dead.purge_expired(now_micros() + 31 * DAY)
        after = {row.household_id: row for row in dead.letters()}
        bodies = dict(runtime.log.db.execute("SELECT household_id, body FROM dead_letters"))
    finally:
        runtime.close()
    quarantined = sealed_envelope(bytes(stored))
    assert quarantined is not None and quarantine_day(quarantined["household_id"]) is not None
    assert (not_yet, purged) == (0, 1)
    assert bodies[None] == PURGED  # the body is gone …
    assert after[None].reason == letters[None].reason  # … the reason and metadata stay
    assert sealed_envelope(bytes(bodies["hh-7"])) is not None  # a household's is erased, not purged


def test_the_retention_period_is_configurable() -> None:
    assert retention_days({}) == 30
    assert retention_days({RETENTION_ENV: "7"}) == 7
    for bad in ("0", "-1", "soon"):
        with pytest.raises(RetentionError):
            retention_days({RETENTION_ENV: bad})


def test_a_kafka_publisher_seals_fields_outside_the_catalog_the_same_way_twice(
    tmp_path: Path,
) -> None:
    """The publisher's key ring derives nonces (re-sends dedupe by content): an extra
    field sealed twice gives the same bytes, and never the clear text."""
    keyring = kafka_keyring(tmp_path)
    try:
        event = visit_with_extras("hh-1")
        first, second = keyring.seal_event(event), keyring.seal_event(event)
    finally:
        keyring.close()
    assert first == second
    assert WITNESS.encode() not in orjson.dumps(first)
    assert PHONE.encode() not in orjson.dumps(first)



def test_a_kafka_key_store_purges_quarantine_by_shredding_the_keys_of_expired_days(
    tmp_path: Path,
) -> None:
    """A record of ``jiahe.dlq`` cannot be deleted: its quarantine key of the day is."""
    today = now_micros() // DAY
    keyring = kafka_keyring(tmp_path)
    try:
        fresh = seal_dead_letter(keyring, None, garbage := f"{WITNESS} {PHONE}".encode())
        old = orjson.dumps(keyring.seal_blob(quarantine_id(today - 31), garbage, PURPOSE))
        keyring.commit()
        assert open_dead_letter(keyring, old) == garbage  # within the retention period …
        purged = keyring.purge_quarantine(now_micros())
        assert (purged, keyring.purge_quarantine(now_micros())) == (1, 0)
        assert open_dead_letter(keyring, old) is None  # … and erased after it
        assert open_dead_letter(keyring, fresh) == garbage
    finally:
        keyring.close()
    assert WITNESS.encode() not in fresh + old
