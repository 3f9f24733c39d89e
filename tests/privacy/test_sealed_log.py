"""Personal fields are sealed in the embedded log (privacy.crypto) and opened on read."""

from __future__ import annotations

import base64
import logging
import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, decode
from events.instants import parse_instant
from privacy.crypto import ERASED, UNREADABLE, KeyringError, is_envelope
from privacy.dead_letters import open_dead_letter
from streams.clock import EventTimeClock
from streams.embedded.log import SqliteLog
from tests.helpers import wid
from tests.privacy.conftest import AS_OF, MARK, file_bytes, personal_texts


def stored_bodies(log: SqliteLog) -> dict[str, dict[str, Any]]:
    return {orjson.loads(e.body)["event_id"]: orjson.loads(e.body)
            for e in log.read_events(0, 10_000)}


def test_no_clear_personal_text_in_the_log_files(tmp_path: Path, lines: list[str]) -> None:
    runtime = bootstrap_embedded(tmp_path)
    try:
        counts = runtime.publish(lines, "test")
        runtime.process(EventTimeClock(parse_instant(AS_OF)), project=False)
        # the raw bytes while the connection is open (WAL not checkpointed) ...
        open_bytes = file_bytes(tmp_path)
    finally:
        runtime.close()
    assert counts.accepted == len(lines)
    assert open_bytes and MARK.encode() not in open_bytes
    closed_bytes = file_bytes(tmp_path)  # ... and after the close checkpointed it
    assert MARK.encode() not in closed_bytes
    for text in personal_texts():
        assert text.encode() not in open_bytes + closed_bytes
    master = tmp_path / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    key = bytes.fromhex(master.read_text().strip())
    assert key not in closed_bytes and master.read_text().strip().encode() not in closed_bytes


def test_every_personal_field_is_an_envelope_and_opens_to_the_clear_text(
    tmp_path: Path, lines: list[str]
) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    try:
        log.publish(lines, "test")
        bodies = stored_bodies(log)
        originals = {d.event_id: d for d in map(decode, lines) if isinstance(d, Decoded)}
        sealed = 0
        for event_id, body in bodies.items():
            raw = originals[event_id].raw
            for name in ("notes", "note", "reason"):
                if raw["data"].get(name):
                    envelope = body["data"][name]
                    assert is_envelope(envelope) and set(envelope) == {"enc", "kid", "nonce", "ct"}
                    sealed += 1
            # everything else stays clear: the rules need it
            assert {k: v for k, v in body["data"].items() if not is_envelope(v)} == {
                k: v for k, v in raw["data"].items() if k not in ("notes", "note", "reason")
            }
            clear, problems = log.keyring.open_event(body)
            assert not problems and clear["data"] == raw["data"]
        assert sealed == len(personal_texts())
        # one key per household, wrapped: the table holds no usable key material
        assert log.key_count() == len({b["household_id"] for b in bodies.values()})
        # a fresh process opens them too (keys unwrapped with master.key)
        other = SqliteLog(tmp_path / "log.sqlite3")
        try:
            body = next(iter(bodies.values()))
            assert not other.keyring.open_event(body)[1]
        finally:
            other.close()
    finally:
        log.close()


def test_duplicates_still_match_and_a_conflict_dead_letter_holds_no_clear_text(
    tmp_path: Path, lines: list[str]
) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    try:
        log.publish(lines, "test")
        again = log.publish(lines, "test")
        assert again.duplicates == len(lines) and again.accepted == 0
        changed = orjson.loads(lines[0])
        changed["data"]["notes"] = f"{MARK} changed text"
        conflict = log.publish([orjson.dumps(changed)], "test")
        assert conflict.rejected == 1
        (stored,) = log.db.execute("SELECT body FROM dead_letters").fetchone()
        assert MARK.encode() not in bytes(stored)
        body = open_dead_letter(log.keyring, bytes(stored))
        assert body is not None and MARK.encode() not in body
        assert log.keyring.open_event(orjson.loads(body))[0]["data"]["notes"].endswith(
            "changed text")
    finally:
        log.close()
    assert MARK.encode() not in file_bytes(tmp_path)


def test_a_failed_publish_batch_forgets_the_keys_it_created(
    tmp_path: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    try:
        original = log.dead_letters.dead_letter

        def boom(*args: Any) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(log.dead_letters, "dead_letter", boom)
        with pytest.raises(RuntimeError):
            log.publish([*lines[:3], "{not json"], "test")
        monkeypatch.setattr(log.dead_letters, "dead_letter", original)
        assert log.key_count() == 0
        log.publish(lines[:3], "test")
        for body in stored_bodies(log).values():
            assert not log.keyring.open_event(body)[1]
    finally:
        log.close()


def _tamper(db_path: Path, event_id: str, change: Any) -> None:
    db = sqlite3.connect(db_path)
    with db:
        (body,) = db.execute("SELECT body FROM events WHERE event_id = ?", (event_id,)).fetchone()
        obj = orjson.loads(body)
        change(obj)
        db.execute("UPDATE events SET body = ? WHERE event_id = ?", (orjson.dumps(obj), event_id))
    db.close()


def test_tampered_ciphertext_is_named_kept_and_the_processor_goes_on(
    tmp_path: Path, lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    runtime = bootstrap_embedded(tmp_path)
    runtime.publish(lines, "test")
    bodies = stored_bodies(runtime.log)
    runtime.close()
    visits = [b for b in bodies.values() if b["type"] == "screening.visit_recorded"]
    flipped, moved, foreign = visits[0], visits[1], visits[2]

    def flip(obj: dict[str, Any]) -> None:
        ct = bytearray(base64.b64decode(obj["data"]["notes"]["ct"]))
        ct[0] ^= 1
        obj["data"]["notes"]["ct"] = base64.b64encode(bytes(ct)).decode()

    def swap_in(source: dict[str, Any]) -> Any:
        def change(obj: dict[str, Any]) -> None:
            obj["data"]["notes"] = source["data"]["notes"]
        return change

    db_path = tmp_path / "log.sqlite3"
    _tamper(db_path, flipped["event_id"], flip)
    # a ciphertext of the same household moved to another event: the AAD (event id) differs
    same_household = next(b for b in visits if b["household_id"] == moved["household_id"]
                          and b["event_id"] != moved["event_id"])
    _tamper(db_path, moved["event_id"], swap_in(same_household))
    # a ciphertext of another household: sealed with another key
    _tamper(db_path, foreign["event_id"], swap_in(flipped if flipped["household_id"]
                                                 != foreign["household_id"] else moved))

    caplog.set_level(logging.DEBUG)
    runtime = bootstrap_embedded(tmp_path)
    try:
        report = runtime.process(EventTimeClock(parse_instant(AS_OF)), project=False)
        # the processor never opens sealed fields; `jiahe verify` checks every one
        assert runtime.log.crypto_problems() == []
        runtime.log.check_sealed_fields()
        problems = {(p.event_id, p.field): p.reason for p in runtime.log.crypto_problems()}
        raised = {orjson.loads(e.body)["warning_id"] for e in runtime.log.read_lifecycle(0, 10**6)
                  if orjson.loads(e.body)["type"] == "warning.raised"}
        clear, found = runtime.log.keyring.open_event(
            stored_bodies(runtime.log)[flipped["event_id"]])
    finally:
        runtime.close()
    # every event was processed: a damaged note costs no warning
    assert report.counts.processed == len(lines) and report.counts.rejected == 0
    assert wid("violence-injury", flipped["household_id"], flipped["event_id"]) in raised
    assert set(problems) == {(b["event_id"], "notes") for b in (flipped, moved, foreign)}
    assert "authentication" in problems[(flipped["event_id"], "notes")]
    assert clear["data"]["notes"] == UNREADABLE and found[0].event_id == flipped["event_id"]
    # the error names the event in the logs, without the text
    assert flipped["event_id"] in caplog.text and MARK not in caplog.text


def test_a_missing_or_wrong_master_key_is_a_loud_error(tmp_path: Path, lines: list[str]) -> None:
    log = SqliteLog(tmp_path / "log.sqlite3")
    log.publish(lines[:2], "test")
    body = next(iter(stored_bodies(log).values()))
    log.close()
    master = tmp_path / "master.key"
    saved = master.read_text()

    master.unlink()  # never silently replaced: the stored keys would be lost
    log = SqliteLog(tmp_path / "log.sqlite3")
    with pytest.raises(KeyringError, match="missing"):
        log.keyring.open_event(body)
    with pytest.raises(KeyringError, match="missing"):
        log.publish(lines[2:4], "test")
    log.close()
    assert not master.exists()

    master.write_text("00" * 32)
    master.chmod(0o600)
    log = SqliteLog(tmp_path / "log.sqlite3")
    with pytest.raises(KeyringError, match="not the master key"):
        log.keyring.open_event(body)
    log.close()

    master.write_text(saved)
    master.chmod(0o644)
    log = SqliteLog(tmp_path / "log.sqlite3")
    with pytest.raises(KeyringError, match="readable by others"):
        log.keyring.open_event(body)
    log.close()
    master.chmod(0o600)
    log = SqliteLog(tmp_path / "log.sqlite3")
    try:
        assert log.keyring.open_event(body)[0]["data"]["notes"].startswith(MARK)
        assert ERASED not in str(log.keyring.open_event(body)[0])
    finally:
        log.close()
