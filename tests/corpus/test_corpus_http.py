"""The bad-input corpus through HTTP: ``POST /v1/events`` of a real ``jiahe api`` server.

The body of ``POST /v1/events`` is a JSON array, so an entry reaches the API in one of
two ways:

* its bytes are a JSON value → sent as the only element of an array; the answer is
  200 with a per-event result (``rejected`` + the codec's reason, ``accepted``,
  ``duplicate``);
* its bytes are not JSON (truncated, BOM, NaN, lone surrogate, …) → sent as the whole
  body, since no array can hold them; the answer is 400 with the reason.

Either way a rejection is kept: a dead letter (stage ``ingest``) with the reason and
the input, and the log's counts reconcile (received = accepted + duplicates +
rejected, dead letters = rejections). Nothing ever answers 5xx, and the server log
has no traceback (checked by ``serve_api``). An oversize body is refused with 413.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.codec import (
    MAX_EVENT_BYTES,
    MAX_NESTING,
    _has_unrepresentable_integer,
    nested_deeper_than,
)
from privacy.dead_letters import open_dead_letter, sealed_envelope
from streams.embedded.log import SqliteLog
from tests.api.conftest import Api, serve_api
from tests.corpus.bad_inputs import (
    ACCEPTED,
    CORPUS,
    DUPLICATE,
    ORIGINAL,
    REJECTED,
    SAME_ID,
    Entry,
)

#: A cadre of the corpus's community (its events are in scope).
USERS = {"cadre": ("cadre", "230102001001")}
JSON = {"content-type": "application/json"}


def is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def body_of(entry: Entry) -> bytes:
    return b"[" + entry.raw + b"]" if is_json(entry.raw) else entry.raw


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, Any]]]:
    """ORIGINAL first (so duplicates and conflicts are real), then each kind, one request
    each; the answers by kind_id (status code, JSON body)."""
    home = tmp_path_factory.mktemp("corpus-http")
    with serve_api(home, USERS, ["--tick", "0"]) as api:
        first = api.call("POST", "/v1/events", "cadre", content=b"[" + ORIGINAL + b"]",
                         headers=JSON)
        assert first.status_code == 200 and first.json()["accepted"] == 1, first.text
        out: dict[str, Any] = {}
        for entry in CORPUS:
            response = api.call("POST", "/v1/events", "cadre", content=body_of(entry),
                                headers=JSON)
            out[entry.kind_id] = (response.status_code, response.json())
        yield api, out


def _db(api: Api) -> sqlite3.Connection:
    return sqlite3.connect(api.home / "log.sqlite3")


def _opened(api: Api, stored: list[bytes]) -> list[bytes]:
    """Dead-letter bodies opened with the log's key ring (they are stored sealed)."""
    log = SqliteLog(api.home / "log.sqlite3")
    try:
        assert all(sealed_envelope(body) is not None for body in stored)
        return [open_dead_letter(log.keyring, body) or b"" for body in stored]
    finally:
        log.close()


def test_no_kind_is_answered_with_a_server_error(answers: tuple[Api, dict[str, Any]]) -> None:
    _, out = answers
    assert len(out) == len(CORPUS) >= 50
    errors = {k: code for k, (code, _) in out.items() if code >= 500}
    assert not errors, errors


@pytest.mark.parametrize("entry", CORPUS, ids=[e.kind_id for e in CORPUS])
def test_each_kind_gets_its_answer(answers: tuple[Api, dict[str, Any]], entry: Entry) -> None:
    _, out = answers
    code, body = out[entry.kind_id]
    if not is_json(entry.raw):
        assert entry.expected not in (ACCEPTED, DUPLICATE, SAME_ID)
        assert code == 400 and str(entry.expected) in body["detail"], body
        return
    if nested_deeper_than(orjson.loads(entry.raw), MAX_NESTING + 1):
        # Deeper than any event nests: refused whole before anything walks it.
        assert code == 422 and "nested more than" in body["detail"], body
        return
    if _has_unrepresentable_integer(entry.raw):
        # The body parser would silently turn the integer into a float: refused whole,
        # the reason names where (0 = the index in the array).
        assert code == 422 and "64-bit" in body["detail"], body
        assert body["detail"].startswith("0."), body
        return
    assert code == 200, body
    assert body["received"] == 1 == body["accepted"] + body["duplicate"] + body["rejected"]
    (result,) = body["results"]
    if entry.expected is ACCEPTED:
        assert result["status"] == "accepted", result
    elif entry.expected == DUPLICATE:
        assert result["status"] == "duplicate", result
    elif entry.expected == SAME_ID:
        assert result["status"] in ("duplicate", "rejected"), result
    else:
        assert result["status"] == "rejected", result
        assert str(entry.expected) in result["reason"], result


def _whole_body_refusals(out: dict[str, Any]) -> int:
    return sum(1 for code, _ in out.values() if code in (400, 422))


def test_counts_reconcile_and_every_rejection_is_a_dead_letter(
    answers: tuple[Api, dict[str, Any]],
) -> None:
    api, out = answers
    per_event = [body for code, body in out.values() if code == 200]
    received = 1 + sum(b["received"] for b in per_event)
    accepted = 1 + sum(b["accepted"] for b in per_event)
    duplicates = sum(b["duplicate"] for b in per_event)
    rejected = sum(b["rejected"] for b in per_event) + _whole_body_refusals(out)
    assert received + _whole_body_refusals(out) == accepted + duplicates + rejected
    assert rejected >= len(REJECTED)
    with _db(api) as db:
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        (dead,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    assert (events, dead) == (accepted, rejected)


@pytest.mark.parametrize("entry", REJECTED, ids=[e.kind_id for e in REJECTED])
def test_each_rejected_kind_is_kept_with_its_reason(
    answers: tuple[Api, dict[str, Any]], entry: Entry
) -> None:
    api, out = answers
    code, answer = out[entry.kind_id]
    reason = answer["detail"] if code != 200 else answer["results"][0]["reason"]
    with _db(api) as db:
        rows = db.execute("SELECT stage, reason, body, source FROM dead_letters WHERE reason = ?",
                          (reason,)).fetchall()
    assert rows, f"{entry.kind_id}: no dead letter with reason {reason!r}"
    stages = {r[0] for r in rows}
    assert stages == {"ingest"} and all(r[3] == "http:cadre" for r in rows)
    if code != 200:  # a whole body is kept byte for byte
        assert body_of(entry) in _opened(api, [bytes(r[2]) for r in rows])


def test_oversize_body_is_refused_with_413(answers: tuple[Api, dict[str, Any]]) -> None:
    api, _ = answers
    body = b"[" + b",".join([ORIGINAL] * (5 * 1024 * 1024 // len(ORIGINAL) + 1)) + b"]"
    response = api.call("POST", "/v1/events", "cadre", content=body, headers=JSON)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_a_body_that_is_not_an_array_is_kept(answers: tuple[Api, dict[str, Any]],
                                              tmp_path: Path) -> None:
    api, _ = answers
    response = api.call("POST", "/v1/events", "cadre", content=ORIGINAL, headers=JSON)
    assert response.status_code == 400 and "JSON array" in response.json()["detail"]
    with _db(api) as db:
        kept = [bytes(b) for (b,) in db.execute(
            "SELECT body FROM dead_letters WHERE reason = ?", (response.json()["detail"],))]
    assert ORIGINAL in _opened(api, kept)


def test_an_event_over_the_per_event_limit_is_rejected(
    answers: tuple[Api, dict[str, Any]],
) -> None:
    api, _ = answers
    event = orjson.loads(ORIGINAL)
    event["event_id"] = "0b5f7d4e-1d4b-4c1e-9a52-3f7c1e0d9a11"
    event["padding"] = "x" * (MAX_EVENT_BYTES + 1)  # an unknown field: kept, not validated
    response = api.call("POST", "/v1/events", "cadre", content=orjson.dumps([event]),
                        headers=JSON)
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["status"] == "rejected" and "larger than" in result["reason"], result
