"""What the webhook attack tests share: a home with a warning, stub resolvers, and a
transport that refuses to leave the loopback.

No test sends anything outside 127.0.0.0/8 and ::1. Names are resolved by stubs
(labelled as such), and a worker under attack gets :class:`LoopbackOnly` as its HTTP
transport: should the guard let a request through to another address, the transport
records it and refuses to connect, so the test fails without touching the network.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from alerts.delivery import DeliveryWorker
from alerts.egress import EgressGuard
from alerts.subscriptions import SubscriptionStore
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE

SECRET = "k" * 16


def raised(warning_id: str = "w-1", household: str = "hh-1") -> dict[str, str]:
    """A red warning's raise record in 道里区 (every test subscription covers it)."""
    return {"type": "warning.raised", "warning_id": warning_id, "rule_id": "violence-injury",
            "household_id": household, "level": "red", "org_unit": "230102001001",
            "handling_level": "community", "handling_org_unit": "230102001001",
            "at": "2026-11-01T00:00:00Z"}


def home_with(tmp_path: Path, *records: dict[str, str]) -> None:
    log = SqliteLog(tmp_path / LOG_FILE)
    with log.transaction():
        log.append_lifecycle(list(records) or [raised()])
    log.close()


def stub_resolver(*answers: Sequence[str]) -> Callable[[str, int], Sequence[str]]:
    """STUB resolver: the n-th lookup answers ``answers[n]`` (the last one from then on),
    whatever the name; no DNS query is ever made."""
    calls = [0]

    def resolve(host: str, port: int) -> Sequence[str]:
        answer = answers[min(calls[0], len(answers) - 1)]
        calls[0] += 1
        return answer

    return resolve


class LoopbackOnly(httpx.BaseTransport):
    """Connects to loopback literals only; records every request it was handed."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        try:
            loopback = ipaddress.ip_address(request.url.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"a request left the loopback: {request.url}")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def worker_for(tmp_path: Path, egress: EgressGuard, **kw: Any) -> tuple[
        SubscriptionStore, DeliveryWorker, LoopbackOnly]:
    """A store and a worker on ``tmp_path`` with ``egress``, sending through LoopbackOnly."""
    store = SubscriptionStore.at_home(tmp_path, egress)
    worker = DeliveryWorker(tmp_path, store, **{"max_attempts": 1, "backoff_s": 0, **kw})
    transport = LoopbackOnly()
    worker.client.close()
    worker.client = httpx.Client(transport=transport, timeout=kw.get("timeout_s", 5.0),
                                 follow_redirects=False)
    return store, worker, transport
