"""The webhook delivery loop: lifecycle records → matching subscriptions → signed POSTs.

It runs in a thread of the API process, with its own connection to the log
and its own checkpoint (``alerts.webhook``). Records are first turned into
outbox rows (deduplicated on (subscription, warning_id, transition)), and
only then does the checkpoint move: a crash in between re-enqueues nothing
new, so delivery is at-least-once towards the outbox and exactly-once per key
towards a receiver that answers 2xx. Failed POSTs are retried with
exponential backoff and dead-lettered after ``max_attempts``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.subscriptions import PendingDelivery, SubscriptionStore
from events.instants import now_micros
from events.orgunits import district_of
from streams.embedded import LOG_FILE
from streams.sqlite_log import SqliteLog

CHECKPOINT = "alerts.webhook"
SIGNATURE_HEADER = "X-Jiahe-Signature"
MAX_BACKOFF_S = 3600.0
log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: receivers verify before trusting an alert."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def transition_of(record: dict[str, Any]) -> str:
    """A warning escalates several times: each level reached is its own transition."""
    if record["type"] == "warning.escalated":
        return f"warning.escalated:{record['to_level']}"
    return str(record["type"])


class DeliveryWorker:
    """Enqueue and dispatch in one thread; ``wake()`` after processing cuts latency."""

    def __init__(self, home: Path, store: SubscriptionStore, max_attempts: int = 5,
                 backoff_s: float = 1.0, poll_s: float = 0.5, timeout_s: float = 5.0) -> None:
        self.log = SqliteLog(home / LOG_FILE)
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.client = httpx.Client(timeout=timeout_s)
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
        self.log.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.enqueue_new()
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
            for entry in entries:
                record = orjson.loads(entry.body)
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
                        added += self.store.enqueue(sub.id, warning["warning_id"], transition,
                                                    body)
            position = entries[-1].position
            with self.log.transaction():
                self.log.set_checkpoint(CHECKPOINT, position)
        return added

    # -- outbox → receivers -------------------------------------------------------

    def dispatch_due(self) -> int:
        sent = 0
        while due := self.store.due(now_micros()):
            for delivery in due:
                sent += self._attempt(delivery)
        return sent

    def _attempt(self, delivery: PendingDelivery) -> int:
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
        if error is None:
            self.store.mark_delivered(delivery.id)
            return 1
        delay = min(self.backoff_s * 2 ** delivery.attempts, MAX_BACKOFF_S)
        self.store.mark_failed(delivery, error, self.max_attempts,
                               now_micros() + int(delay * 1_000_000))
        return 0
