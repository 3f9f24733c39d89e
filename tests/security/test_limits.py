"""Resource limits: bodies are capped while read (a lying or missing Content-Length
changes nothing), alert streams are capped per user and in all, the inbox comes a page
at a time, and a bad offset or Last-Event-ID is a 422, never a 500."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import HTTPException

from api.limits import MAX_BODY_BYTES, MAX_INGEST_BYTES, MAX_STREAMS_PER_USER, StreamSlots
from tests.api.conftest import DELIVERY_ARGS, Api, event, serve_api

USERS = {
    "chair102": ("chair", "230102000000"),
    "chair103": ("chair", "230103000000"),
    "chair-street": ("chair", "230102001000"),
    "police102": ("partner", "230102000000", "police"),
}
BAD_NUMBERS = ["-1", "abc", "1.5", "1e3", "0x10", "٣", "１", "²", "9" * 30,
               str(2**63), "", "NaN", "١٢"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("limits-home"), USERS, DELIVERY_ARGS) as server:
        yield server


def _headers(api: Api, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[user]}", "Content-Type": "application/json"}


def test_an_oversize_body_is_413_declared_or_not(api: Api) -> None:
    big = b'{"matcher": {"org_unit": "230102001000"}, "comment": "' + b"x" * MAX_BODY_BYTES + b'"}'
    declared = api.client.post(api.url + "/v1/silences", content=big,
                               headers=_headers(api, "chair102"))
    assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length at all
        for start in range(0, len(big), 64 * 1024):
            yield big[start:start + 64 * 1024]

    chunked = api.client.post(api.url + "/v1/silences", content=chunks(),
                              headers=_headers(api, "chair102"))
    assert chunked.status_code == 413
    # ingest takes more (a batch of events), but not without end
    ingest = b"[" + b" " * (2 * MAX_BODY_BYTES) + b"1"
    assert api.client.post(api.url + "/v1/events", content=ingest,
                           headers=_headers(api, "chair102")).status_code == 400  # read, bad
    huge = b"[" + b" " * MAX_INGEST_BYTES + b"]"
    assert api.client.post(api.url + "/v1/events", content=iter([huge]),
                           headers=_headers(api, "chair102")).status_code == 413


def test_a_body_without_a_length_is_counted(api: Api) -> None:
    """A chunked body declares no length: the bytes are counted as they arrive."""
    parts = urlsplit(api.url)
    chunk = b"x" * (256 * 1024)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/silences HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + api.tokens["chair102"].encode() + b"\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(8):  # 2 MiB, over the 1 MiB cap
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server may answer and close before the body ends
            pass
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_streams_are_capped_per_user(api: Api) -> None:
    opened: list[httpx.Response] = []
    clients = [httpx.Client(timeout=30) for _ in range(MAX_STREAMS_PER_USER + 1)]
    try:
        for client in clients[:MAX_STREAMS_PER_USER]:
            response = client.send(client.build_request(
                "GET", api.url + "/v1/alerts/stream", headers=_headers(api, "chair102")),
                stream=True)
            assert response.status_code == 200
            opened.append(response)
        refused = clients[-1].get(api.url + "/v1/alerts/stream",
                                  headers=_headers(api, "chair102"))
        assert refused.status_code == 429 and "too many open streams" in refused.text
        # another user is not held back by chair102's streams
        other = clients[-1].send(clients[-1].build_request(
            "GET", api.url + "/v1/alerts/stream", headers=_headers(api, "chair103")),
            stream=True)
        assert other.status_code == 200
        other.close()
        opened.pop().close()  # a slot comes back when a stream ends

        def reopened() -> bool:
            with clients[-1].stream("GET", api.url + "/v1/alerts/stream",
                                    headers=_headers(api, "chair102")) as again:
                return again.status_code == 200

        assert _eventually(reopened)
    finally:
        for response in opened:
            response.close()
        for client in clients:
            client.close()


def _eventually(check: Callable[[], bool], tries: int = 50) -> bool:
    for _ in range(tries):
        if check():
            return True
        time.sleep(0.1)
    return False


def test_stream_slots_cap_in_all_and_release_once() -> None:
    slots = StreamSlots(per_user=2, total=3)
    a1, a2 = slots.acquire("a"), slots.acquire("a")
    with pytest.raises(HTTPException) as per_user:
        slots.acquire("a")
    assert per_user.value.status_code == 429
    b1 = slots.acquire("b")
    with pytest.raises(HTTPException) as total:
        slots.acquire("c")
    assert total.value.status_code == 429
    a1()
    a1()  # twice is once
    assert slots.open_count() == 2 and slots.open_count("a") == 1
    slots.acquire("c")
    a2()
    b1()
    assert slots.open_count() == 1


def test_the_inbox_is_paged(api: Api) -> None:
    api.publish("chair102", [event(f"230102002{i:03d}", f"hh-page-{i}") for i in range(1, 4)])
    first = api.call("GET", "/v1/alerts?limit=2", "chair102").json()
    assert first["count"] == 2 and first["next_offset"] == 2 and first["limit"] == 2
    rest = api.call("GET", "/v1/alerts?limit=2&offset=2", "chair102").json()
    ids = [a["warning_id"] for a in first["alerts"] + rest["alerts"]]
    assert len(ids) == len(set(ids)) >= 3
    everything = api.call("GET", "/v1/alerts", "chair102").json()
    assert [a["warning_id"] for a in everything["alerts"]][:len(ids)] == ids
    street = api.call("GET", "/v1/alerts?limit=1", "chair-street").json()  # sliced after scope
    assert street["count"] <= 1 and street["total"] is not None
    assert api.call("GET", "/v1/alerts?limit=1001", "chair102").status_code == 422


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_a_bad_offset_is_422(api: Api, bad: str) -> None:
    for path, user in (("/v1/alerts", "chair102"), ("/v1/ledgers/warnings", "chair102"),
                       ("/v1/ledgers/warnings", "chair-street"),
                       ("/v1/referrals", "police102")):
        response = api.call("GET", path, user, params={"offset": bad, "limit": 10})
        assert response.status_code == 422, (path, bad, response.text)
    stream = api.call("GET", "/v1/alerts/stream", "chair102", params={"after": bad})
    assert stream.status_code == 422, (bad, stream.text)


@pytest.mark.parametrize("bad", [b for b in BAD_NUMBERS if b] + ["12 34", "7;8", "+5"])
def test_a_bad_last_event_id_is_422(api: Api, bad: str) -> None:
    headers = [(k.encode(), v.encode()) for k, v in _headers(api, "chair102").items()]
    headers.append((b"Last-Event-ID", bad.encode()))  # as sent: UTF-8 bytes
    response = api.client.get(api.url + "/v1/alerts/stream", headers=headers)
    assert response.status_code == 422, (bad, response.text)
    assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize("good", ["0", "5", str(2**63 - 1)])
def test_a_good_last_event_id_is_taken(api: Api, good: str) -> None:
    headers = {**_headers(api, "chair102"), "Last-Event-ID": good}
    with api.client.stream("GET", api.url + "/v1/alerts/stream", headers=headers) as response:
        assert response.status_code == 200


def test_lifecycle_lookups_by_warning_use_an_index(api: Api) -> None:
    db = sqlite3.connect(api.home / "log.sqlite3")
    try:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT body FROM lifecycle WHERE warning_id = ? "
                          "AND type = 'warning.raised' LIMIT 1", ("w",)).fetchall()
    finally:
        db.close()
    assert any("lifecycle_by_warning" in str(row) for row in plan), plan
