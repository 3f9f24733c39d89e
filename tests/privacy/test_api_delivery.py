"""Through the HTTP face: personal text sent by field apps reaches no file, log or webhook."""

from __future__ import annotations

import time

from tests.api.conftest import Api, Receiver, api, event, receiver, wait_until
from tests.privacy.conftest import MARK

__all__ = ["api", "receiver"]  # the API tests' fixtures: a real server and a webhook receiver

NOTES = f"{MARK} 李某 身份证 230102199001011234 visit notes"
NOTE = f"{MARK} resolution note: moved to shelter at 红旗街"
REASON = f"{MARK} parents detained"


def test_no_personal_text_in_webhooks_server_log_or_files(api: Api, receiver: Receiver) -> None:
    response = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": receiver.url + "/privacy",
        "secret": "a-webhook-secret-of-some-length"})
    assert response.status_code == 201, response.text
    api.publish("chair102", [
        event("230102007001", "hh-privacy-1", "screening.visit_recorded",
              {"indicators": ["injury_observed"], "notes": NOTES}),
        event("230102007001", "hh-privacy-1", "child.guardianship_gap_recorded",
              {"child_ref": "c-1", "reason": REASON}),
    ])
    wait_until(lambda: len(receiver.at("/privacy")) >= 1)
    warning_id = api.warning_for("hh-privacy-1")
    done = api.call("POST", f"/v1/alerts/{warning_id}/resolve", "chair102", json={"note": NOTE})
    assert done.status_code == 200, done.text
    wait_until(lambda: len(receiver.at("/privacy")) >= 2)
    time.sleep(0.5)
    bodies = b"".join(r.body for r in receiver.at("/privacy"))
    assert b"warning.resolved" in bodies
    files = b""
    for path in sorted(api.home.iterdir()):
        if path.is_file() and path.name != "master.key":
            files += path.read_bytes()
    texts = (MARK, NOTES, NOTE, REASON, "230102199001011234")
    for text in texts:
        assert text.encode() not in bodies
        assert text.encode() not in files  # log.sqlite3(-wal), alerts.sqlite3, server.log …
    # the log holds them sealed: the resolution note is there, as an envelope
    rows = api.sql("log.sqlite3", "SELECT body FROM events WHERE household_id = ?",
                   "hh-privacy-1")
    assert len(rows) == 3 and all(b'"enc":"aesgcm"' in bytes(r[0]) for r in rows)
