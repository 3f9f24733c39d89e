"""One dead receiver delays no one else, and no fault of a channel leaves a row pending
for ever."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.egress import EgressGuard
from alerts.routing import Grouping
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE
from tests.api.conftest import Receiver, wait_until
from tests.security.webhooks import SECRET, home_with, raised, worker_for

STALL_S = 4.0


@pytest.fixture
def stalling() -> Iterator[socket.socket]:
    """A receiver on 127.0.0.1 that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)  # the kernel completes the handshakes; nobody ever reads
    yield s
    s.close()


def test_a_stalled_receiver_does_not_delay_another_subscription(
        tmp_path: Path, stalling: socket.socket) -> None:
    home_with(tmp_path, *(raised(f"w-{n}", f"hh-{n}") for n in range(3)))
    receiver = Receiver()
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]), timeout_s=STALL_S,
                                  max_attempts=3, poll_s=0.05)
    try:
        stalled = store.create("dead", "230102000000", "red", None,
                               f"http://127.0.0.1:{stalling.getsockname()[1]}/", SECRET)
        store.create("alive", "230102000000", "red", None, receiver.url + "/alive", SECRET)
        started = time.monotonic()
        worker.start()  # the loop: enqueue, then hand each subscription's rows to its queue
        wait_until(lambda: len(receiver.at("/alive")) == 3, timeout=STALL_S)
        took = time.monotonic() - started
        # the stalled queue is still on its first row (the older rows come first)
        pending = store.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE subscription_id = ? AND status = 'pending'",
            (stalled.id,)).fetchone()[0]
        assert pending == 3
    finally:
        stalling.close()  # the hung attempt ends now, not at its timeout
        worker.stop()
        store.close()
        receiver.close()
    assert took < STALL_S / 2, f"the live receiver waited {took:.2f} s behind the dead one"


def test_new_alerts_reach_a_live_receiver_while_another_queue_is_stuck(
        tmp_path: Path, stalling: socket.socket) -> None:
    """The loop does not wait for a stuck queue: an alert raised after it stalled is
    delivered to the other subscription at once."""
    home_with(tmp_path, raised("w-0", "hh-0"))
    receiver = Receiver()
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]), timeout_s=STALL_S,
                                  poll_s=0.05)
    try:
        store.create("dead", "230102000000", "red", None,
                     f"http://127.0.0.1:{stalling.getsockname()[1]}/", SECRET)
        worker.start()
        time.sleep(0.3)  # the dead queue has taken its row and hangs
        store.create("alive", "230102000000", "red", None, receiver.url + "/late", SECRET)
        log = SqliteLog(tmp_path / LOG_FILE)
        with log.transaction():
            log.append_lifecycle([raised("w-1", "hh-1")])
        log.close()
        started = time.monotonic()
        worker.wake()
        wait_until(lambda: bool(receiver.at("/late")), timeout=STALL_S)
        took = time.monotonic() - started
    finally:
        stalling.close()
        worker.stop()
        store.close()
        receiver.close()
    assert took < STALL_S / 2


class _BrokenSmtp:
    """STUB SMTP sender whose every send raises an error no channel expects."""

    sender = "jiahe@localhost"

    def send(self, body: bytes, url: str, key: str | None = None) -> None:
        raise RuntimeError("the SMTP library broke")

    def send_message(self, msg: object) -> None:
        raise RuntimeError("the SMTP library broke")


def test_an_unexpected_error_in_a_channel_fails_the_delivery_with_a_reason(
        tmp_path: Path) -> None:
    home_with(tmp_path)

    def resolver_bug(host: str, port: int) -> list[str]:  # STUB resolver with a bug
        if port == 8080:
            raise RuntimeError("resolver bug")
        return ["8.8.8.8"]

    store, worker, transport = worker_for(tmp_path, EgressGuard(resolve=resolver_bug),
                                          max_attempts=2)
    worker.smtp = _BrokenSmtp()  # type: ignore[assignment]
    try:
        mail = store.create("mail", "230102000000", "red", None, "mailto:c@example.org", "",
                            "email")
        hook = store.create("hook", "230102000000", "red", None, "http://hooks.example/",
                            SECRET)
        store.db.execute("UPDATE subscriptions SET url = 'http://hooks.example:8080/' "
                         "WHERE id = ?", (hook.id,))  # resolves at creation, fails later
        assert worker.enqueue_new() == 2
        worker.dispatch_due()  # returns: no row is left pending behind an exception
        assert store.stats() == {"dead": 2}
        assert [d["last_error"] for d in store.dead_letters(mail.id)] == [
            "channel error (RuntimeError)"]
        [dead] = store.dead_letters(hook.id)
        assert dead["last_error"] == "channel error (RuntimeError)" and dead["attempts"] == 2
    finally:
        worker.stop()
        store.close()
    assert transport.requests == []


def test_a_grouped_attempt_that_raises_fails_every_row_of_the_group(tmp_path: Path) -> None:
    home_with(tmp_path, raised("w-a", "hh-a"), raised("w-b", "hh-b"))
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"]), max_attempts=1)
    worker.smtp = _BrokenSmtp()  # type: ignore[assignment]
    worker.grouping = Grouping(wait_s=0, interval_s=60)
    try:
        sub = store.create("mail", "230102000000", "red", None, "mailto:c@example.org", "",
                           "email")
        assert worker.enqueue_new() == 2
        worker.dispatch_due()
        assert [d["last_error"] for d in store.dead_letters(sub.id)] == [
            "channel error (RuntimeError)"] * 2
    finally:
        worker.stop()
        store.close()
