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

**Queues.** Each subscription is its own queue: its due rows are handed to a pool
thread as one batch, attempted in order, and no other batch of that subscription
starts until this one is done; other subscriptions' batches run meanwhile. A
receiver that accepts and never answers holds up its own alerts, nobody else's.
Whatever a channel raises fails that attempt with a short reason (retried, then
dead-lettered like any failure), so no row stays pending for ever.

**Webhooks** go only where ``alerts.egress`` allows, checked again at every attempt
and sent to the address that was checked; a redirect is a failed attempt. Each
attempt is signed afresh, ``X-Jiahe-Signature: t=<unix seconds>,v1=<hex>`` with
``hex = HMAC-SHA256(secret, "<t>." + body)``: a receiver checks it with
:func:`verify_signature` and refuses a ``t`` older than its tolerance, so a captured
delivery cannot be replayed later. A failure is recorded as a short reason
(``timeout``, ``connection refused``, ``HTTP 500``, ``address refused: private``),
never a library's error text, which would tell a prober what answers where. The
body names households by their pseudonymous key (``household_key``, the HMAC the
analytics tables use) unless the subscription has ``personal_data``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from alerts.channels.email import SmtpError, SmtpSender, address_of, render_group
from alerts.channels.kafka import AlertTopics
from alerts.egress import EgressGuard, WebhookRefused
from alerts.notices import is_warning_body, referral_body
from alerts.routing import (
    SILENCED,
    Grouping,
    GroupKey,
    Silence,
    SilenceStore,
    due_repeats,
    group_body,
    group_key,
    silenced_by,
)
from alerts.subscriptions import PendingDelivery, Subscription, SubscriptionStore
from events.instants import now_micros
from events.orgunits import district_of, is_within
from privacy.pseudonym import Pseudonymizer, deployment_secret
from rules.transitions import transition_of
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE, PSEUDONYM_SECRET

if TYPE_CHECKING:
    from streams.kafka.settings import KafkaSettings

CHECKPOINT = "alerts.webhook"
REFERRAL_PREFIX = "referral."
SIGNATURE_HEADER = "X-Jiahe-Signature"
MAX_BACKOFF_S = 3600.0
#: 14 attempts from 1 s, doubling: the last one comes ~2 h 16 min after the first, so a
#: receiver that is down for an hour still gets every alert (a dead letter is the last resort).
DEFAULT_MAX_ATTEMPTS = 14
#: How far a signature's ``t`` may be from the receiver's clock (seconds).
SIGNATURE_TOLERANCE_S = 300
#: Subscriptions whose queues may be worked on at once (threads of the pool).
DEFAULT_QUEUES = 32
log = logging.getLogger(__name__)


def _mac(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` at ``t`` (default
    now): the instant is signed with the body, so a receiver can refuse a stale one."""
    at = int(time.time()) if t is None else t
    return f"t={at},v1={_mac(secret, at, body)}"


def verify_signature(secret: str, header: str, body: bytes, now_s: float,
                     tolerance_s: float = SIGNATURE_TOLERANCE_S) -> bool:
    """A receiver's check of ``X-Jiahe-Signature``: a ``v1`` matches the body signed at
    ``t``, and ``t`` is within ``tolerance_s`` of ``now_s`` (its own clock)."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    t = int(stamps[0])
    if abs(now_s - t) > tolerance_s:
        return False
    expected = _mac(secret, t, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def failure_reason(exc: httpx.HTTPError) -> str:
    """A short category for a failed POST (the library's text would be a port oracle)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return "connection failed"
    if isinstance(exc, httpx.NetworkError):  # reset or closed while sending or reading
        return "connection lost"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error"
    return "delivery failed"


def pseudonymous(body: bytes, key_of: Callable[[str], str]) -> bytes:
    """``body`` with every ``household_id`` replaced by ``household_key`` (its pseudonym)."""
    return orjson.dumps(_keyed(orjson.loads(body), key_of), option=orjson.OPT_SORT_KEYS)


def _keyed(value: Any, key_of: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {("household_key" if k == "household_id" and isinstance(v, str) else k):
                (key_of(v) if k == "household_id" and isinstance(v, str) else _keyed(v, key_of))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_keyed(v, key_of) for v in value]
    return value


def _covers(scope: str | None, org_unit: str) -> bool:
    """Whether a subscription whose owner's scope is ``scope`` may carry news of
    ``org_unit`` (None: its owner was revoked or disabled)."""
    return scope is not None and is_within(org_unit, scope)


#: Work for one subscription's queue: a row alone (key None), or a routing group's rows.
Unit = tuple[GroupKey | None, list[PendingDelivery]]


class DeliveryWorker:
    """Enqueue and dispatch in one thread; ``wake()`` after processing cuts latency."""

    def __init__(self, home: Path, store: SubscriptionStore,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_s: float = 1.0, poll_s: float = 0.5, timeout_s: float = 5.0,
                 smtp: SmtpSender | None = None, repeat_red_s: float | None = None,
                 kafka: KafkaSettings | None = None, egress: EgressGuard | None = None,
                 queues: int = DEFAULT_QUEUES,
                 owner_scope: Callable[[str], str | None] | None = None) -> None:
        self.log = SqliteLog(home / LOG_FILE)
        self.store = store
        #: a subscription owner's org unit now (``UserStore.delivery_scope``): None once
        #: her account is revoked or disabled, so her subscriptions stop, and a re-scoped
        #: owner's follow her new unit. None here: every subscription delivers in its own
        #: org unit (a worker without users).
        self.owner_scope = owner_scope
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        #: where webhooks may go (default: the store's policy, as at creation).
        self.egress = egress if egress is not None else store.egress
        #: the analytics key of a household (the runtime's secret: the same keys as the warehouse).
        self._pseudonym = Pseudonymizer(deployment_secret() or self.log.secret(PSEUDONYM_SECRET))
        self._pool = ThreadPoolExecutor(max_workers=queues, thread_name_prefix="jiahe-delivery")
        #: subscriptions whose batch is in the pool (their other rows wait for it).
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
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
        self._pool.shutdown(wait=True, cancel_futures=True)  # a batch stops between rows
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
                self.dispatch_due(wait=False)
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
            scopes = self._scopes(subscriptions)
            silences = self.silences.active(now_micros())
            for entry in entries:
                record = orjson.loads(entry.body)
                if str(record.get("type", "")).startswith(REFERRAL_PREFIX):
                    added += self._enqueue_referral(record, subscriptions, scopes)
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
                    scope = scopes[sub.id]
                    if sub.matches(warning) and _covers(scope, warning["org_unit"]):
                        body = orjson.dumps({
                            "subscription_id": sub.id, "transition": transition,
                            "warning": warning, "record": record,
                        }, option=orjson.OPT_SORT_KEYS)
                        added += self._enqueue(sub.id, warning, transition, body, silences,
                                               scope)
            position = entries[-1].position
            with self.log.transaction():
                self.log.set_checkpoint(CHECKPOINT, position)
        return added

    def _scopes(self, subscriptions: list[Subscription]) -> dict[str, str | None]:
        """Each subscription's owner's org unit now (its own org unit without users)."""
        if self.owner_scope is None:
            return {sub.id: sub.org_unit for sub in subscriptions}
        by_owner = {owner: self.owner_scope(owner) for owner in {s.owner for s in subscriptions}}
        return {sub.id: by_owner[sub.owner] for sub in subscriptions}

    def _enqueue_referral(self, record: dict[str, Any], subscriptions: list[Subscription],
                          scopes: dict[str, str | None]) -> int:
        """A referral record to the addressed agency's subscriptions that cover the household
        (its owner now) and whose owner's scope does too; straight into the outbox: never
        silenced, never grouped."""
        owner = self.log.owner_of(str(record["household_id"]))
        added = 0
        for sub in subscriptions:
            if sub.takes_referral(str(record["agency"]), owner) and owner is not None \
                    and _covers(scopes[sub.id], owner):
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
        subscriptions = self.store.all()
        scopes = self._scopes(subscriptions)
        added = 0
        for r in due_repeats(self.store, at, int(self.repeat_red_s * 1_000_000)):
            scope = scopes.get(r.subscription_id)
            if _covers(scope, str(r.warning["org_unit"])):
                added += self._enqueue(r.subscription_id, r.warning, r.transition, r.body,
                                       silences, scope)
        return added

    def _enqueue(self, sub_id: str, warning: dict[str, Any], transition: str, body: bytes,
                 silences: list[Silence], owner_scope: str | None = None) -> bool:
        """Into the outbox: silenced (recorded, never sent), or pending (at its group's flush).

        ``owner_scope``: the subscription's owner's org unit; only a silence whose author's
        scope covers it holds the alert back (``alerts.routing.silenced_by``)."""
        if silenced_by(silences, warning, transition, owner_scope) is not None:
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

    def dispatch_due(self, wait: bool = True) -> int:
        """Hand each subscription's due rows to the pool as one batch (its queue).

        ``wait``: until nothing is due and no batch is running; returns how many rows
        were delivered. Otherwise (the loop) return at once: a finished batch wakes it.
        """
        running: set[Future[int]] = set()
        sent = 0
        while not self._stop.is_set():
            with self._busy_lock:
                busy = set(self._busy)
            batches: dict[str, list[PendingDelivery]] = {}
            for delivery in self.store.due(now_micros(), busy=busy):
                batches.setdefault(delivery.subscription_id, []).append(delivery)
            for sub_id, batch in batches.items():
                with self._busy_lock:
                    self._busy.add(sub_id)
                running.add(self._pool.submit(self._drain, sub_id, self._units(batch)))
            if not wait or not running:
                break
            done, running = wait_for(running, return_when=FIRST_COMPLETED)
            sent += sum(future.result() for future in done)
        return sent

    def _units(self, batch: list[PendingDelivery]) -> list[Unit]:
        """A batch as units of work: rows alone, or (grouping) one per routing group that
        flushes now; referrals and notices always alone."""
        if self.grouping is None:
            return [(None, [delivery]) for delivery in batch]
        units: list[Unit] = []
        groups: dict[GroupKey, list[PendingDelivery]] = {}
        for delivery in batch:
            if not is_warning_body(delivery.body):
                units.append((None, [delivery]))
                continue
            groups.setdefault(group_key(delivery.subscription_id, delivery.body),
                              []).append(delivery)
        for key, members in groups.items():
            self.grouping.flushed(key, now_micros())
            units.append((key, members))
        return units

    def _drain(self, sub_id: str, units: list[Unit]) -> int:
        """One subscription's batch, in order, in a pool thread; then its queue is free."""
        sent = 0
        try:
            for key, members in units:
                if self._stop.is_set():  # the rest stay pending for the next start
                    break
                sent += (self._attempt(members[0]) if key is None
                         else self._attempt_group(key, members))
        except Exception:  # the store failed: the rows stay pending, the queue goes on
            log.exception("webhook delivery queue")
        finally:
            with self._busy_lock:
                self._busy.discard(sub_id)
            self._wake.set()
        return sent

    def _attempt_group(self, key: GroupKey, members: list[PendingDelivery]) -> int:
        """One POST or one mail for a routing group's due rows; each row keeps its own fate."""
        first = members[0]
        if first.channel == "kafka":  # a topic is a stream already: one message per alert
            return sum(self._attempt(d) for d in members)
        keys = ",".join(d.key for d in members)
        error: str | None
        try:
            if first.channel == "email":
                error = self._mail_group(key, members, keys)
            else:
                body = group_body(key, [d.body for d in members])
                error = self._post(first.url, first.secret,
                                   self._webhook_body(body, first.personal_data), keys)
        except Exception as exc:  # a channel's fault fails the attempt, never the queue
            error = self._channel_fault(first, exc)
        return sum(self._outcome(d, error) for d in members)

    def _mail_group(self, key: GroupKey, members: list[PendingDelivery],
                    keys: str) -> str | None:
        if self.smtp is None:
            return "no SMTP server configured (jiahe api --smtp HOST:PORT)"
        try:
            self.smtp.send_message(render_group(
                [d.body for d in members], address_of(members[0].url), key[1], key[2],
                self.smtp.sender, keys))
        except SmtpError as exc:
            return str(exc)
        return None

    def _attempt(self, delivery: PendingDelivery) -> int:
        try:
            if delivery.channel == "email":
                error = self._mail(delivery)
            elif delivery.channel == "kafka":
                error = self._produce(delivery)
            else:
                error = self._post(delivery.url, delivery.secret,
                                   self._webhook_body(delivery.body, delivery.personal_data),
                                   delivery.key)
        except Exception as exc:  # a channel's fault fails the attempt, never the queue
            error = self._channel_fault(delivery, exc)
        return self._outcome(delivery, error)

    @staticmethod
    def _channel_fault(delivery: PendingDelivery, exc: Exception) -> str:
        log.error("delivery %d: the %s channel raised %s", delivery.id, delivery.channel,
                  type(exc).__name__, exc_info=exc)
        return f"channel error ({type(exc).__name__})"

    def _webhook_body(self, body: bytes, personal_data: bool) -> bytes:
        return body if personal_data else pseudonymous(body, self._pseudonym)

    def _post(self, url: str, secret: str, body: bytes, key: str) -> str | None:
        """One signed POST to the address the guard checked just now; None when 2xx."""
        try:
            target = self.egress.check(url)
        except WebhookRefused as exc:
            return str(exc)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Jiahe-Delivery": key}
        extensions: dict[str, Any] = {}
        if target.address is not None:  # pinned: name the host on the wire, not the IP
            headers["Host"] = target.host_header()
            if target.scheme == "https":
                extensions["sni_hostname"] = target.host
        try:
            response = self.client.post(target.pinned_url(), content=body, headers=headers,
                                        extensions=extensions)
        except httpx.HTTPError as exc:
            return failure_reason(exc)
        if 300 <= response.status_code < 400:
            return "redirect refused"
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        return None

    def _produce(self, delivery: PendingDelivery) -> str | None:
        if self.alert_topics is None:
            return "no Kafka runtime (jiahe api --bootstrap HOST:PORT)"
        # a topic is read by many and cannot forget one household's records: it carries
        # the pseudonymous key only (erasure then unlinks it through the directory)
        return self.alert_topics.send(pseudonymous(delivery.body, self._pseudonym),
                                      delivery.key)

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
