"""E-mail alerts against a real SMTP server (aiosmtpd on 127.0.0.1).

The API runs as in ``conftest`` (uvicorn in a subprocess) but with
``$JIAHE_SMTP`` pointing at the test's SMTP server. E-mail deliveries share
the webhook outbox: once per (subscription, warning, transition), retried,
dead-lettered; the mail is plain text without personal data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from alerts.channels.email import SmtpSender, parse_hostport, render
from tests.api.conftest import (
    DELIVERY_ARGS,
    MAX_ATTEMPTS,
    USERS,
    Api,
    event,
    free_port,
    serve_api,
    wait_until,
)

PERSONAL_NOTE = "王某某 lives behind the red gate"


@contextmanager
def running_api(home: Path, **env: str) -> Iterator[Api]:
    """A real API server on a fresh home with extra environment (JIAHE_SMTP, …)."""
    with serve_api(home, USERS, DELIVERY_ARGS, env) as server:
        yield server


@dataclass
class Mail:
    rcpt: list[str]
    message: Message

    @property
    def text(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode("utf-8")


class Mailbox:
    """aiosmtpd handler: keeps every accepted mail; ``plan[address]`` = replies to give first."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.attempts: dict[str, int] = {}
        self.plan: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        rcpt = list(envelope.rcpt_tos)
        with self.lock:
            for address in rcpt:
                self.attempts[address] = self.attempts.get(address, 0) + 1
                replies = self.plan.get(address, [])
                if replies:
                    return replies.pop(0)
            self.mails.append(Mail(rcpt, message_from_bytes(envelope.original_content)))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.rcpt]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mail_api(smtp: tuple[Mailbox, int], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Api]:
    _, port = smtp
    with running_api(tmp_path_factory.mktemp("mail-home"), JIAHE_SMTP=f"127.0.0.1:{port}",
                     JIAHE_REPEAT_RED_MINUTES="0") as api:
        yield api


def _subscribe(api: Api, org_unit: str, address: str, **extra: Any) -> str:
    response = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": org_unit, "channel": "email", "address": address, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["channel"] == "email" and body["address"] == address and "url" not in body
    return str(body["id"])


def _injury_visit(org_unit: str, household: str) -> dict[str, Any]:
    return event(org_unit, household, "screening.visit_recorded",
                 {"indicators": ["injury_observed"], "notes": PERSONAL_NOTE})


def test_mail_sent_once_per_transition_without_personal_data(
    mail_api: Api, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _ = smtp
    _subscribe(mail_api, "230102004000", "chair@example.org", min_level="orange")
    mail_api.publish("chair102", [_injury_visit("230102004001", "hh-mail-1"),
                                  _injury_visit("230102001001", "hh-mail-elsewhere")])
    wait_until(lambda: len(mailbox.to("chair@example.org")) >= 1)
    warning_id = mail_api.warning_for("hh-mail-1")
    response = mail_api.call("POST", f"/v1/alerts/{warning_id}/acknowledge", "chair102")
    assert response.status_code == 200, response.text
    wait_until(lambda: len(mailbox.to("chair@example.org")) >= 2)
    time.sleep(0.6)  # any redelivery would have happened by now
    got = mailbox.to("chair@example.org")
    assert len(got) == 2
    first, second = got
    assert first.message["To"] == "chair@example.org"
    assert first.message.get_content_type() == "text/plain"
    assert first.message["Subject"] == (
        "[jiahe] RED violence-injury raised - 230102004001")
    assert second.message["Subject"].startswith("[jiahe] RED violence-injury acknowledged")
    text = first.text
    for expected in (warning_id, "violence-injury", "red", "230102004001", "community",
                     f"/workspace/#/alerts/{warning_id}", "time:"):
        assert expected in text, (expected, text)
    for mail in got:  # no household id, no free text from the field
        raw = mail.message.as_string()
        assert "hh-mail-1" not in raw and "王某某" not in raw and "red gate" not in raw
    rows = mail_api.sql("alerts.sqlite3", "SELECT transition, status, attempts FROM deliveries "
                        "WHERE warning_id = ? ORDER BY id", warning_id)
    assert rows == [("warning.raised", "delivered", 1),
                    ("warning.acknowledged", "delivered", 1)]


def test_mail_retried_until_the_server_accepts(mail_api: Api, smtp: tuple[Mailbox, int]
                                                ) -> None:
    mailbox, _ = smtp
    mailbox.plan["flaky@example.org"] = ["451 4.3.0 try again later"] * 2
    sub = _subscribe(mail_api, "230102002000", "flaky@example.org")
    mail_api.publish("chair102", [_injury_visit("230102002001", "hh-mail-2")])
    wait_until(lambda: len(mailbox.to("flaky@example.org")) >= 1)
    time.sleep(0.5)
    assert len(mailbox.to("flaky@example.org")) == 1
    assert mailbox.attempts["flaky@example.org"] == 3
    rows = mail_api.sql("alerts.sqlite3", "SELECT status, attempts FROM deliveries "
                        "WHERE subscription_id = ?", sub)
    assert rows == [("delivered", 3)]


def test_mail_dead_lettered_after_max_attempts(mail_api: Api, smtp: tuple[Mailbox, int]
                                               ) -> None:
    mailbox, _ = smtp
    mailbox.plan["gone@example.org"] = ["554 5.7.1 rejected"] * 100
    sub = _subscribe(mail_api, "230102003000", "gone@example.org")
    mail_api.publish("chair102", [_injury_visit("230102003001", "hh-mail-3")])
    warning_id = mail_api.warning_for("hh-mail-3")

    def dead() -> list[tuple[Any, ...]]:
        return mail_api.sql("alerts.sqlite3", "SELECT warning_id, transition, attempts, "
                            "last_error FROM dead_letters WHERE subscription_id = ?", sub)

    wait_until(lambda: bool(dead()))
    time.sleep(0.8)  # no attempt after the dead letter
    ((wid, transition, attempts, error),) = dead()
    assert (wid, transition, attempts) == (warning_id, "warning.raised", MAX_ATTEMPTS)
    assert "554" in error
    assert mailbox.attempts["gone@example.org"] == MAX_ATTEMPTS
    assert mailbox.to("gone@example.org") == []


def test_email_subscription_is_validated(mail_api: Api) -> None:
    for body in ({"org_unit": "230102000000", "channel": "email"},
                 {"org_unit": "230102000000", "channel": "email", "address": "not-an-address"},
                 {"org_unit": "230102000000", "channel": "email", "address": "a@b.org",
                  "url": "http://127.0.0.1:9/x"},
                 {"org_unit": "230102000000", "channel": "webhook", "address": "a@b.org"}):
        response = mail_api.call("POST", "/v1/subscriptions", "chair102", json=body)
        assert response.status_code == 422, (body, response.text)
    response = mail_api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230103000000", "channel": "email", "address": "a@b.org"})
    assert response.status_code in (403, 404)  # 南岗区 is outside a 道里区 chair's scope


def test_without_smtp_server_mail_fails_and_retries(
    smtp: tuple[Mailbox, int], tmp_path: Path
) -> None:
    """The worker alone: no SMTP configured → the row is retried, then dead-lettered."""
    from alerts.delivery import DeliveryWorker
    from alerts.subscriptions import SubscriptionStore
    from streams.embedded.log import SqliteLog
    from streams.embedded.runtime import LOG_FILE
    from tests.api.test_delivery_unit import RAISED

    log = SqliteLog(tmp_path / LOG_FILE)
    with log.transaction():
        log.append_lifecycle([RAISED])
    store = SubscriptionStore.at_home(tmp_path)
    store.create("chair", "230102000000", "yellow", None, "mailto:x@example.org", "", "email")
    worker = DeliveryWorker(tmp_path, store, max_attempts=2, backoff_s=0)
    try:
        assert worker.enqueue_new() == 1
        assert worker.dispatch_due() == 0
        (error,) = store.db.execute("SELECT last_error FROM dead_letters").fetchone()
        assert "no SMTP server configured" in error
        # the same row rendered and sent directly to the real server
        mailbox, port = smtp
        (body,) = store.db.execute("SELECT body FROM deliveries").fetchone()
        SmtpSender.parse(f"127.0.0.1:{port}").send(bytes(body), "mailto:direct@example.org")
        (mail,) = mailbox.to("direct@example.org")
        assert "w-1" in mail.text and "hh-1" not in mail.message.as_string()
    finally:
        worker.stop()
        store.close()
        log.close()


def test_render_and_hostport() -> None:
    import orjson

    body = orjson.dumps({
        "transition": "warning.escalated:street",
        "warning": {"warning_id": "w-9", "rule_id": "repeat-petitions", "level": "orange",
                    "org_unit": "230102001001", "household_id": "hh-secret"},
        "record": {"type": "warning.escalated", "to_level": "street",
                   "handling_org_unit": "230102001000", "at": "2026-11-02T00:00:00Z",
                   "household_id": "hh-secret"},
    })
    msg = render(body, "c@example.org")
    assert msg["Subject"] == "[jiahe] ORANGE repeat-petitions escalated to street - 230102001001"
    assert "street (230102001000)" in msg.get_content()
    assert "hh-secret" not in msg.as_string()
    assigned = orjson.loads(body) | {"transition": "warning.assigned:li@2026-11-03T00:00:00Z"}
    subject = render(orjson.dumps(assigned), "c@example.org")["Subject"]
    assert subject == "[jiahe] ORANGE repeat-petitions assigned to li - 230102001001"
    assert parse_hostport("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_hostport("[::1]:25") == ("::1", 25)
    for bad in ("localhost", "host:", ":25", "host:99999"):
        with pytest.raises(ValueError):
            parse_hostport(bad)


def test_a_routing_group_is_one_mail(smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    from alerts.delivery import DeliveryWorker
    from alerts.routing import Grouping
    from alerts.subscriptions import SubscriptionStore
    from streams.embedded.log import SqliteLog
    from streams.embedded.runtime import LOG_FILE
    from tests.api.test_delivery_unit import RAISED

    mailbox, port = smtp
    log = SqliteLog(tmp_path / LOG_FILE)
    with log.transaction():
        log.append_lifecycle([RAISED, {**RAISED, "warning_id": "w-2", "household_id": "hh-2",
                                       "org_unit": "230102002001"}])
    store = SubscriptionStore.at_home(tmp_path)
    store.create("chair", "230102000000", "yellow", None, "mailto:group@example.org", "",
                 "email")
    worker = DeliveryWorker(tmp_path, store, smtp=SmtpSender.parse(f"127.0.0.1:{port}"))
    worker.grouping = Grouping(wait_s=0, interval_s=60)
    try:
        assert worker.enqueue_new() == 2
        assert worker.dispatch_due() == 2
    finally:
        worker.stop()
        store.close()
        log.close()
    (mail,) = mailbox.to("group@example.org")
    assert mail.message["Subject"] == "[jiahe] 2 alert(s) violence-injury - 230102000000"
    assert "--- 1/2" in mail.text and "w-1" in mail.text and "w-2" in mail.text
    assert "hh-" not in mail.message.as_string()
