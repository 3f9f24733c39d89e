"""Webhook signatures carry their instant: a captured delivery cannot be replayed later,
nor its body changed, and every attempt is signed afresh."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

import pytest

from alerts.delivery import SIGNATURE_HEADER, sign, verify_signature
from alerts.egress import EgressGuard
from tests.api.conftest import Received, Receiver
from tests.security.webhooks import SECRET, home_with, worker_for

FORMAT = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


def _captured(tmp_path: Path, plan: list[int] | None = None,
              backoff_s: float = 0) -> list[Received]:
    """The deliveries a real receiver on 127.0.0.1 got for one red warning."""
    home_with(tmp_path)
    receiver = Receiver()
    receiver.plan["/hook"] = list(plan or [])
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]), max_attempts=3,
                                  backoff_s=backoff_s)
    try:
        store.create("chair", "230102000000", "red", None, receiver.url + "/hook", SECRET)
        worker.enqueue_new()
        deadline = time.monotonic() + 10
        while worker.dispatch_due() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # a retry waits for its backoff
    finally:
        worker.stop()
        store.close()
        receiver.close()
    return receiver.at("/hook")


def test_the_header_is_t_and_v1_over_the_instant_and_the_body(tmp_path: Path) -> None:
    before = int(time.time())
    [got] = _captured(tmp_path)
    match = FORMAT.match(got.headers[SIGNATURE_HEADER])
    assert match is not None, got.headers[SIGNATURE_HEADER]
    t, v1 = int(match[1]), match[2]
    assert before <= t <= time.time()
    assert v1 == hmac.new(SECRET.encode(), f"{t}.".encode() + got.body,
                          hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER], got.body, time.time())


def test_a_captured_delivery_replayed_after_the_tolerance_is_refused(tmp_path: Path) -> None:
    [got] = _captured(tmp_path)
    header = got.headers[SIGNATURE_HEADER]
    t = int(FORMAT.match(header)[1])  # type: ignore[index]
    assert verify_signature(SECRET, header, got.body, t + 300)
    assert not verify_signature(SECRET, header, got.body, t + 301)  # replayed 5 min later
    assert not verify_signature(SECRET, header, got.body, t + 86_400)
    assert not verify_signature(SECRET, header, got.body, t - 301)  # from the future


def test_a_tampered_body_or_instant_or_another_secret_is_refused(tmp_path: Path) -> None:
    [got] = _captured(tmp_path)
    header = got.headers[SIGNATURE_HEADER]
    now = time.time()
    t, v1 = FORMAT.match(header).groups()  # type: ignore[union-attr]
    assert not verify_signature(SECRET, header, got.body.replace(b'"red"', b'"yellow"'), now)
    assert not verify_signature(SECRET, header, got.body + b" ", now)
    restamped = f"t={int(t) + 1},v1={v1}"  # a replayer moving the instant forward
    assert not verify_signature(SECRET, restamped, got.body, int(t) + 1)
    assert not verify_signature("another-secret-16", header, got.body, now)
    assert not verify_signature(SECRET, "sha256=" + v1, got.body, now)  # no instant: refused
    assert not verify_signature(SECRET, f"v1={v1}", got.body, now)
    assert not verify_signature(SECRET, f"t={t},t={t},v1={v1}", got.body, now)


def test_a_signature_for_another_instant_verifies_only_near_it() -> None:
    body = b'{"warning": {}}'
    header = sign(SECRET, body, t=1_000_000)
    assert header == "t=1000000,v1=" + hmac.new(
        SECRET.encode(), b"1000000." + body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, header, body, 1_000_120)
    assert not verify_signature(SECRET, header, body, 1_000_120, tolerance_s=60)


@pytest.mark.timeout(30)
def test_each_retry_is_signed_at_its_own_instant(tmp_path: Path) -> None:
    got = _captured(tmp_path, plan=[500], backoff_s=1.2)
    assert len(got) == 2 and got[0].body == got[1].body  # the same bytes, retried
    stamps = [int(FORMAT.match(r.headers[SIGNATURE_HEADER])[1]) for r in got]  # type: ignore[index]
    assert stamps[1] > stamps[0]
    assert all(verify_signature(SECRET, r.headers[SIGNATURE_HEADER], r.body, time.time())
               for r in got)
