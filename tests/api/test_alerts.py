"""Acknowledge / resolve become warning.* events in the log; reads are audited."""

from __future__ import annotations

import json

from privacy.crypto import is_envelope
from streams.embedded.log import SqliteLog
from tests.api.conftest import Api, event


def test_acknowledge_and_resolve_append_events(api: Api) -> None:
    api.publish("chair102", [event("230102005001", "hh-act-1")])
    warning_id = api.warning_for("hh-act-1")

    acked = api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
    assert acked.status_code == 200, acked.text
    assert acked.json()["warning"]["status"] == "acknowledged"
    assert api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102").status_code == 409

    resolved = api.call("POST", f"/v1/alerts/{warning_id}/resolve", "admin",
                        json={"note": "家访后已安置"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["warning"]["status"] == "resolved"
    assert api.call("POST", f"/v1/alerts/{warning_id}/resolve", "chair102").status_code == 409

    sealed = [json.loads(b) for (b,) in api.sql(
        "log.sqlite3", "SELECT body FROM events WHERE household_id = ? ORDER BY position",
        "hh-act-1")]
    # the note is sealed in the log (privacy.crypto): open the bodies with the log's keyring
    (resolution,) = [b for b in sealed if b["type"] == "warning.resolved"]
    assert is_envelope(resolution["data"]["note"])
    log = SqliteLog(api.home / "log.sqlite3")
    try:
        opened = [log.keyring.open_event(b) for b in sealed]
    finally:
        log.close()
    assert not [problems for _, problems in opened if problems]
    bodies = [body for body, _ in opened]
    commands = [(b["type"], b["data"]) for b in bodies if b["type"].startswith("warning.")]
    assert commands == [
        ("warning.acknowledged", {"warning_id": warning_id, "by": "chair102"}),
        ("warning.resolved", {"warning_id": warning_id, "by": "admin", "note": "家访后已安置"}),
    ]
    assert [b["event_id"] for b in bodies if b["type"] == "warning.resolved"] == [
        resolved.json()["event_id"]]
    lifecycle = [t for (t,) in api.sql(
        "log.sqlite3", "SELECT type FROM lifecycle WHERE warning_id = ? ORDER BY seq", warning_id)]
    assert lifecycle == ["warning.raised", "warning.acknowledged", "warning.resolved"]


def test_reads_are_audited(api: Api) -> None:
    before = api.sql("users.sqlite3", "SELECT COUNT(*) FROM audit")[0][0]
    api.call("GET", "/v1/alerts?level=red", "chair103")
    api.call("GET", "/v1/ledgers/households?district=230103", "chair103")
    api.call("GET", "/v1/ledgers/warnings", "analyst")  # refused: no audit row for no read
    rows = api.sql("users.sqlite3", "SELECT user, role, scope, action, detail, rows, at "
                   "FROM audit WHERE id > ? ORDER BY id", before)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("chair103", "chair", "230103000000", "alerts.list"),
        ("chair103", "chair", "230103000000", "ledgers.households"),
    ]
    assert json.loads(rows[0][4])["level"] == "red"
    assert json.loads(rows[1][4])["district"] == "230103000000"
    assert all(r[6] for r in rows)


def test_ticker_processes_events_from_other_writers(api: Api) -> None:
    """An event appended by another writer (``jiahe publish``) is processed by the clock tick."""
    from events.codec import decode_object
    from streams.embedded.log import SqliteLog
    from streams.embedded.runtime import LOG_FILE
    from tests.api.conftest import wait_until

    log = SqliteLog(api.home / LOG_FILE)
    try:
        log.publish_decoded([decode_object(event("230102009001", "hh-tick"))], "test")
    finally:
        log.close()
    wait_until(lambda: bool(api.sql("log.sqlite3", "SELECT 1 FROM lifecycle WHERE "
                                    "household_id = 'hh-tick'")))
