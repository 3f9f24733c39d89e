"""The SSE inbox: in-scope lifecycle records arrive live; other districts' never do."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from tests.api.conftest import Api, event


def _read_events(api: Api, user: str, query: str, until: str, out: list[dict[str, Any]],
                 ready: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {api.tokens[user]}"}
    with httpx.Client(timeout=httpx.Timeout(20.0)) as client, client.stream(
        "GET", f"{api.url}/v1/alerts/stream{query}", headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        ready.set()
        for line in response.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line.removeprefix("data: ")))
                if out[-1]["warning"]["household_id"] == until:
                    return


def assert_live_stream_is_scoped(api: Api, tag: str, org_103: str, org_102: str,
                                 wait_s: float) -> None:
    """chair102 listens while a raise happens in 南岗区 and then in 道里区: her stream
    shows hers only (``hh-{tag}-102``), within ``wait_s`` seconds."""
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_events,
                              args=(api, "chair102", "", f"hh-{tag}-102", got, ready))
    reader.start()
    assert ready.wait(20)
    api.publish("chair103", [event(org_103, f"hh-{tag}-103")])
    api.publish("chair102", [event(org_102, f"hh-{tag}-102")])
    reader.join(wait_s)
    assert not reader.is_alive()
    assert [g["warning"]["household_id"] for g in got] == [f"hh-{tag}-102"]
    assert got[0]["record"]["type"] == "warning.raised"


def test_live_stream_is_scoped(api: Api) -> None:
    assert_live_stream_is_scoped(api, "sse", "230103002001", "230102008001", wait_s=20)


def test_replay_from_start_never_shows_other_districts(api: Api) -> None:
    api.publish("chair103", [event("230103002002", "hh-sse-103b")])
    api.publish("chair102", [event("230102008002", "hh-sse-102b")])
    got: list[dict[str, Any]] = []
    _read_events(api, "chair102", "?after=0", "hh-sse-102b", got, threading.Event())
    assert got and all(g["warning"]["org_unit"].startswith("230102") for g in got)
    assert api.call("GET", "/v1/alerts/stream", "analyst").status_code == 403
    assert api.call("GET", "/v1/alerts/stream").status_code == 401
