"""The webhook delivery loop: lifecycle records → matching subscriptions → signed POSTs.

It runs in a thread of the API process, with its own connection to the log
and its own checkpoint (``alerts.webhook``). Records are first turned into
outbox rows (deduplicated on (subscription, warning_id, transition)), and
only then does the checkpoint move: a crash in between re-enqueues nothing
new, so delivery is at-least-once towards the outbox and exactly-once per key
towards a receiver that answers 2xx. Failed POSTs are retried with
exponential backoff and dead-lettered after ``max_attempts``. The same rows
feed the e-mail channel (``alerts.channels.email``) and, on the Kafka runtime, the
district topics (``alerts.channels.kafka``).

Referral records (``referral.sent|accepted|declined|closed``) are not warnings:
they go only to the subscriptions of the agency they are addressed to whose org
unit covers the household's owner (``Subscription.takes_referral``), are never
silenced or grouped, and a chair's subscription never gets them. Records of
neither kind are passed over. Break-glass notices are enqueued by
``alerts.notices`` and dispatched by this same loop.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from alerts.channels.email import SmtpError, SmtpSender, address_of, render_group
from alerts.channels.kafka import AlertTopics
from alerts.notices import is_warning_body, referral_body
from alerts.routing import (
    SILENCED,
    Grouping,
    Silence,
    SilenceStore,
    due_repeats,
    group_body,
    group_key,
    silenced_by,
)
from alerts.subscriptions import PendingDelivery, Subscription, SubscriptionStore
from events.instants import now_micros
from events.orgunits import district_of
from rules.transitions import transition_of
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE

if TYPE_CHECKING:
    from streams.kafka.settings import KafkaSettings

CHECKPOINT = "alerts.webhook"
REFERRAL_PREFIX = "referral."
SIGNATURE_HEADER = "X-Jiahe-Signature"
MAX_BACKOFF_S = 3600.0
#: 14 attempts from 1 s, doubling: the last one comes ~2 h 16 min after the first, so a
#: receiver that is down for an hour still gets every alert (a dead letter is the last resort).
DEFAULT_MAX_ATTEMPTS = 14
log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: receivers verify before trusting an alert."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class DeliveryWorker:
    """Enqueue and dispatch in one thread; ``wake()`` after processing cuts latency."""

    def __init__(self, home: Path, store: SubscriptionStore,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_s: float = 1.0, poll_s: float = 0.5, timeout_s: float = 5.0,
                 smtp: SmtpSender | None = None, repeat_red_s: float | None = None,
                 kafka: KafkaSettings | None = None) -> None:
        self.log = SqliteLog(home / LOG_FILE)
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.client = httpx.Client(timeout=timeout_s)
        #: e-mail channel (alerts.channels.email); None: e-mail deliveries fail and retry.
        self.smtp = smtp
        #: kafka channel (alerts.channels.kafka); None on the embedded runtime.
        self.alert_topics = AlertTopics(kafka) if kafka is not None else None
        #: alerts.routing: silences, and the repeat interval for unacknowledged red warnings.
        self.silences = SilenceStore.of(store)
        self.repeat_red_s = repeat_red_s
        self._repeats_checked = 0.0
        #: alerts.routing grouping by (district, rule); None: every row is sent on its own.
        self.grouping: Grouping | None = None
        self._warnings: dict[str, dict[str, Any]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jiahe-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.client.close()
        if self.alert_topics is not None:
            self.alert_topics.close()
        self.log.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.enqueue_new()
                if self.repeat_red_s and (time.monotonic() - self._repeats_checked
                                          >= min(self.repeat_red_s / 4, 5.0)):
                    self._repeats_checked = time.monotonic()
                    self.enqueue_repeats()
                self.dispatch_due()
            except Exception:  # the loop must outlive any one bad record or peer
                log.exception("webhook delivery loop")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    # -- lifecycle records → outbox ---------------------------------------------

    def _warning(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Rule, level and place of a warning: from its raise record (cached)."""
        warning_id = record["warning_id"]
        if record["type"] == "warning.raised":
            self._warnings[warning_id] = record
        if warning_id not in self._warnings:
            row = self.log.db.execute(
                "SELECT body FROM lifecycle WHERE warning_id = ? AND type = 'warning.raised' "
                "ORDER BY seq LIMIT 1", (warning_id,),
            ).fetchone()
            if row is None:
                return None
            self._warnings[warning_id] = orjson.loads(row[0])
        return self._warnings[warning_id]

    def enqueue_new(self, batch: int = 500) -> int:
        position = self.log.checkpoint(CHECKPOINT)
        added = 0
        while entries := self.log.read_lifecycle(position, batch):
            subscriptions = self.store.all()
            silences = self.silences.active(now_micros())
            for entry in entries:
                record = orjson.loads(entry.body)
                if str(record.get("type", "")).startswith(REFERRAL_PREFIX):
                    added += self._enqueue_referral(record, subscriptions)
                    continue
                if record.get("warning_id") is None:  # neither a warning's nor a referral's
                    continue
                raised = self._warning(record)
                if raised is None:
                    continue
                warning = {
                    "warning_id": raised["warning_id"], "rule_id": raised["rule_id"],
                    "level": raised["level"], "org_unit": raised["org_unit"],
                    "district": district_of(raised["org_unit"]),
                    "household_id": raised["household_id"],
                }
                transition = transition_of(record)
                for sub in subscriptions:
                    if sub.matches(warning):
                        body = orjson.dumps({
                            "subscription_id": sub.id, "transition": transition,
                            "warning": warning, "record": record,
                        }, option=orjson.OPT_SORT_KEYS)
                        added += self._enqueue(sub.id, warning, transition, body, silences)
            position = entries[-1].position
            with self.log.transaction():
                self.log.set_checkpoint(CHECKPOINT, position)
        return added

    def _enqueue_referral(self, record: dict[str, Any],
                          subscriptions: list[Subscription]) -> int:
        """A referral record to the addressed agency's subscriptions that cover the household
        (its owner now); straight into the outbox: never silenced, never grouped."""
        owner = self.log.owner_of(str(record["household_id"]))
        added = 0
        for sub in subscriptions:
            if sub.takes_referral(str(record["agency"]), owner):
                assert owner is not None
                added += self.store.enqueue(sub.id, str(record["referral_id"]),
                                            str(record["type"]),
                                            referral_body(sub.id, record, owner))
        return added

    def enqueue_repeats(self, now: int | None = None) -> int:
        """Reminders for unacknowledged red warnings, one per repeat slot (alerts.routing)."""
        if not self.repeat_red_s:
            return 0
        at = now_micros() if now is None else now
        silences = self.silences.active(at)
        added = 0
        for r in due_repeats(self.store, at, int(self.repeat_red_s * 1_000_000)):
            added += self._enqueue(r.subscription_id, r.warning, r.transition, r.body, silences)
        return added

    def _enqueue(self, sub_id: str, warning: dict[str, Any], transition: str, body: bytes,
                 silences: list[Silence]) -> bool:
        """Into the outbox: silenced (recorded, never sent), or pending (at its group's flush)."""
        if silenced_by(silences, warning, transition) is not None:
            return self.store.enqueue(sub_id, warning["warning_id"], transition, body, SILENCED)
        if self.grouping is None:
            return self.store.enqueue(sub_id, warning["warning_id"], transition, body)
        key = (sub_id, str(warning["district"]), str(warning["rule_id"]))
        at = self.grouping.flush_at(key, now_micros())
        added = self.store.enqueue(sub_id, warning["warning_id"], transition, body,
                                   not_before=at)
        if added:
            self.grouping.scheduled(key, at)
        return added

    # -- outbox → receivers -------------------------------------------------------

    def dispatch_due(self) -> int:
        sent = 0
        while due := self.store.due(now_micros()):
            if self.grouping is not None:
                groups: dict[tuple[str, str, str], list[PendingDelivery]] = {}
                for delivery in due:
                    if not is_warning_body(delivery.body):  # referrals, notices: one by one
                        sent += self._attempt(delivery)
                        continue
                    groups.setdefault(group_key(delivery.subscription_id, delivery.body),
                                      []).append(delivery)
                for key, members in groups.items():
                    self.grouping.flushed(key, now_micros())
                    sent += self._attempt_group(key, members)
                continue
            for delivery in due:
                sent += self._attempt(delivery)
        return sent

    def _attempt_group(self, key: tuple[str, str, str], members: list[PendingDelivery]) -> int:
        """One POST or one mail for a routing group's due rows; each row keeps its own fate."""
        first = members[0]
        if first.channel == "kafka":  # a topic is a stream already: one message per alert
            return sum(self._attempt(d) for d in members)
        keys = ",".join(d.key for d in members)
        error: str | None = None
        if first.channel == "email":
            if self.smtp is None:
                error = "no SMTP server configured (jiahe api --smtp HOST:PORT)"
            else:
                try:
                    self.smtp.send_message(render_group(
                        [d.body for d in members], address_of(first.url), key[1], key[2],
                        self.smtp.sender, keys))
                except SmtpError as exc:
                    error = str(exc)
        else:
            body = group_body(key, [d.body for d in members])
            headers = {"Content-Type": "application/json",
                       SIGNATURE_HEADER: sign(first.secret, body), "X-Jiahe-Delivery": keys}
            try:
                response = self.client.post(first.url, content=body, headers=headers)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        return sum(self._outcome(d, error) for d in members)

    def _attempt(self, delivery: PendingDelivery) -> int:
        if delivery.channel == "email":
            return self._outcome(delivery, self._mail(delivery))
        if delivery.channel == "kafka":
            return self._outcome(delivery, self._produce(delivery))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(delivery.secret, delivery.body),
            "X-Jiahe-Delivery": delivery.key,
        }
        error: str | None = None
        try:
            response = self.client.post(delivery.url, content=delivery.body, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return self._outcome(delivery, error)

    def _produce(self, delivery: PendingDelivery) -> str | None:
        if self.alert_topics is None:
            return "no Kafka runtime (jiahe api --bootstrap HOST:PORT)"
        return self.alert_topics.send(delivery.body, delivery.key)

    def _mail(self, delivery: PendingDelivery) -> str | None:
        if self.smtp is None:
            return "no SMTP server configured (jiahe api --smtp HOST:PORT)"
        try:
            self.smtp.send(delivery.body, delivery.url, delivery.key)
        except SmtpError as exc:
            return str(exc)
        return None

    def _outcome(self, delivery: PendingDelivery, error: str | None) -> int:
        """Delivered, or retried with exponential backoff, or dead-lettered."""
        if error is None:
            self.store.mark_delivered(delivery.id)
            return 1
        delay = min(self.backoff_s * 2 ** delivery.attempts, MAX_BACKOFF_S)
        self.store.mark_failed(delivery, error, self.max_attempts,
                               now_micros() + int(delay * 1_000_000))
        return 0
