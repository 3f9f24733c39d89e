"""Alert subscriptions and the webhook delivery outbox, in ``alerts.sqlite3`` under the home.

A delivery is a row keyed by (subscription, warning_id, transition) before it
is ever attempted: the key is unique, so re-reading lifecycle records after a
crash re-enqueues nothing already known and a delivered alert is never sent
twice. The body is stored with the row so every retry sends (and signs) the
same bytes.

A subscription with an ``agency`` belongs to a partner agency (police, court …):
it receives the referral lifecycle records addressed to that agency for
households in its org unit (``takes_referral``), and never a warning. Break-glass
notices (``alerts.notices``) go to chairs' subscriptions. Both use the same
outbox: the ``warning_id`` column then holds the referral id or the grant id.

A webhook URL is checked by the store's :class:`alerts.egress.EgressGuard` when the
subscription is created (the delivery worker checks it again at every attempt), so
no path into the store can aim a subscription at an internal address. A webhook
subscription with ``personal_data`` gets household ids in its bodies; any other
gets the pseudonymous household key (``alerts.delivery``).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alerts.egress import EgressGuard
from events.instants import format_instant, now_micros
from events.orgunits import is_within

ALERTS_FILE = "alerts.sqlite3"
#: warning levels by severity, lowest first.
LEVELS: tuple[str, ...] = ("yellow", "orange", "red")

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    org_unit   TEXT NOT NULL,
    min_level  TEXT NOT NULL,
    rule_ids   TEXT,
    channel    TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    agency     TEXT,
    personal_data INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    warning_id      TEXT NOT NULL,
    transition      TEXT NOT NULL,
    body            BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    last_error      TEXT,
    enqueued_us     INTEGER NOT NULL,
    delivered_us    INTEGER,
    UNIQUE (subscription_id, warning_id, transition)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(next_attempt_us)
    WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL,
    warning_id      TEXT NOT NULL,
    transition      TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    at              TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    owner: str
    org_unit: str
    min_level: str
    rule_ids: tuple[str, ...] | None
    channel: str
    url: str
    secret: str
    #: a partner agency's subscription: its referral records only (None: a chair's alerts).
    agency: str | None = None
    #: webhook bodies name households by id (else by their pseudonymous key).
    personal_data: bool = False

    def public(self) -> dict[str, Any]:
        """What the API shows: never the secret."""
        shown: dict[str, Any] = {
            "id": self.id, "owner": self.owner, "org_unit": self.org_unit,
            "min_level": self.min_level,
            "rule_ids": list(self.rule_ids) if self.rule_ids is not None else None,
            "channel": self.channel,
            # e-mail (alerts.channels.email): the address is kept in ``url`` as mailto:ADDRESS
            **self._target(),
        }
        if self.agency is not None:
            shown["agency"] = self.agency
        if self.personal_data:
            shown["personal_data"] = True
        return shown

    def _target(self) -> dict[str, str]:
        if self.channel == "email":
            return {"address": self.url.removeprefix("mailto:")}
        if self.channel == "kafka":  # alerts.channels.kafka: the warning's district picks the topic
            return {"topic": f"{self.url.removeprefix('kafka:')}jiahe.alerts.<district>"}
        return {"url": self.url}

    def matches(self, warning: dict[str, Any]) -> bool:
        """Scope = the org unit and everything under it; level ≥ min; rule filter if any.

        A partner agency's subscription matches no warning, ever."""
        if self.agency is not None or not is_within(warning["org_unit"], self.org_unit):
            return False
        if LEVELS.index(warning["level"]) < LEVELS.index(self.min_level):
            return False
        return self.rule_ids is None or warning["rule_id"] in self.rule_ids

    def takes_referral(self, agency: str, owner: str | None) -> bool:
        """A referral record addressed to ``agency`` about a household owned by ``owner``:
        only the agency's own subscriptions whose org unit covers the household (never
        a Kafka one: the district topics carry warnings)."""
        return (self.agency is not None and self.agency == agency and owner is not None
                and self.channel != "kafka" and is_within(owner, self.org_unit))


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    id: int
    subscription_id: str
    url: str
    secret: str
    body: bytes
    attempts: int
    key: str
    channel: str = "webhook"
    #: the subscription's ``personal_data``: household ids stay in the webhook body.
    personal_data: bool = False


class SubscriptionStore:
    """One connection shared by the request pool and the delivery threads, under a lock.

    ``egress`` decides where a webhook may point (default: public addresses only).
    """

    def __init__(self, path: Path, egress: EgressGuard | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(subscriptions)")}
        if "agency" not in columns:  # a store from before partner agencies
            self.db.execute("ALTER TABLE subscriptions ADD COLUMN agency TEXT")
        if "personal_data" not in columns:  # a store from before pseudonymous bodies
            self.db.execute("ALTER TABLE subscriptions ADD COLUMN personal_data INTEGER "
                            "NOT NULL DEFAULT 0")
        self.egress = egress if egress is not None else EgressGuard()
        self._lock = threading.Lock()

    @classmethod
    def at_home(cls, home: Path, egress: EgressGuard | None = None) -> SubscriptionStore:
        return cls(home / ALERTS_FILE, egress)

    def close(self) -> None:
        self.db.close()

    # -- subscriptions --------------------------------------------------------

    def create(self, owner: str, org_unit: str, min_level: str, rule_ids: list[str] | None,
               url: str, secret: str, channel: str = "webhook",
               agency: str | None = None, personal_data: bool = False) -> Subscription:
        """``agency``: a partner agency's subscription (its referral records only).

        A webhook URL that ``egress`` refuses raises ``alerts.egress.WebhookRefused``."""
        if channel == "webhook":
            self.egress.check(url)
        sub = Subscription(str(uuid.uuid4()), owner, org_unit, min_level,
                           tuple(rule_ids) if rule_ids is not None else None, channel, url,
                           secret, agency, personal_data)
        with self._lock:
            self.db.execute(
                "INSERT INTO subscriptions(id, owner, org_unit, min_level, rule_ids, channel, "
                "url, secret, created_at, agency, personal_data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sub.id, owner, org_unit, min_level,
                 orjson.dumps(rule_ids).decode() if rule_ids is not None else None,
                 channel, url, secret, format_instant(now_micros()), agency,
                 int(personal_data)),
            )
        return sub

    def all(self) -> list[Subscription]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, owner, org_unit, min_level, rule_ids, channel, url, secret, agency, "
                "personal_data FROM subscriptions ORDER BY created_at, id"
            ).fetchall()
        return [
            Subscription(r[0], r[1], r[2], r[3],
                         tuple(orjson.loads(r[4])) if r[4] is not None else None,
                         r[5], r[6], r[7], r[8], bool(r[9]))
            for r in rows
        ]

    def get(self, sub_id: str) -> Subscription | None:
        return next((s for s in self.all() if s.id == sub_id), None)

    def delete(self, sub_id: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))

    # -- the outbox -----------------------------------------------------------

    def enqueue(self, subscription_id: str, warning_id: str, transition: str,
                body: bytes, status: str = "pending", not_before: int | None = None) -> bool:
        """Add a delivery unless this (subscription, warning, transition) is already known.

        ``status="silenced"`` (alerts.routing) records the alert without ever sending it;
        ``not_before``: the first attempt's time (a routing group's flush), default now.
        """
        now = now_micros()
        with self._lock:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO deliveries(subscription_id, warning_id, transition, body, "
                "status, next_attempt_us, enqueued_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (subscription_id, warning_id, transition, body, status,
                 now if not_before is None else not_before, now),
            )
        return cursor.rowcount == 1

    def due(self, now: int, limit: int = 100, busy: Collection[str] = ()
            ) -> list[PendingDelivery]:
        """Pending rows due by ``now``, oldest first, except those of the ``busy``
        subscriptions (their queue is being worked on: its rows come after)."""
        skip = list(busy)
        with self._lock:
            rows = self.db.execute(
                "SELECT d.id, d.subscription_id, s.url, s.secret, d.body, d.attempts, "
                "d.warning_id, d.transition, s.channel, s.personal_data FROM deliveries d "
                "JOIN subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = 'pending' AND d.next_attempt_us <= ? "
                f"AND d.subscription_id NOT IN ({', '.join('?' * len(skip))}) "
                "ORDER BY d.next_attempt_us, d.id LIMIT ?",
                (now, *skip, limit),
            ).fetchall()
        return [
            PendingDelivery(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], f"{r[1]}:{r[6]}:{r[7]}",
                            r[8], bool(r[9]))
            for r in rows
        ]

    def mark_delivered(self, delivery_id: int) -> None:
        with self._lock:
            self.db.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, "
                "delivered_us = ?, last_error = NULL WHERE id = ?",
                (now_micros(), delivery_id),
            )

    def mark_failed(self, delivery: PendingDelivery, error: str, max_attempts: int,
                    next_attempt_us: int) -> bool:
        """Record a failed attempt; returns True when the delivery is now dead-lettered."""
        attempts = delivery.attempts + 1
        dead = attempts >= max_attempts
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_us = ?, "
                    "last_error = ? WHERE id = ?",
                    ("dead" if dead else "pending", attempts, next_attempt_us, error,
                     delivery.id),
                )
                if dead:  # from the row: a referral id may contain the key's separator
                    self.db.execute(
                        "INSERT OR IGNORE INTO dead_letters(delivery_id, subscription_id, "
                        "warning_id, transition, attempts, last_error, at) "
                        "SELECT id, subscription_id, warning_id, transition, ?, ?, ? "
                        "FROM deliveries WHERE id = ?",
                        (attempts, error, format_instant(now_micros()), delivery.id),
                    )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return dead

    def dead_letters(self, subscription_id: str) -> list[dict[str, Any]]:
        """Deliveries that ran out of attempts, oldest first, with their last error."""
        with self._lock:
            rows = self.db.execute(
                "SELECT warning_id, transition, attempts, last_error, at FROM dead_letters "
                "WHERE subscription_id = ? ORDER BY id", (subscription_id,),
            ).fetchall()
        return [{"warning_id": r[0], "transition": r[1], "attempts": r[2],
                 "last_error": r[3], "at": r[4]} for r in rows]

    def redeliver(self, subscription_id: str) -> int:
        """Put a subscription's dead deliveries back in the queue with fresh attempts.

        Each (warning, transition) is still one delivery row, so a redriven alert can
        reach the receiver at most once more; returns how many were requeued.
        """
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self.db.execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, "
                    "next_attempt_us = ? WHERE subscription_id = ? AND status = 'dead'",
                    (now_micros(), subscription_id),
                )
                self.db.execute("DELETE FROM dead_letters WHERE subscription_id = ?",
                                (subscription_id,))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return cursor.rowcount

    def erase_household(self, household_id: str, rewrite: Callable[[bytes], bytes]) -> int:
        """Rewrite every stored body that names the household (``rewrite``: e.g. the
        pseudonymous form); returns how many. For ``jiahe erase``: pending rows are still
        delivered, with the new body. The old bytes are zeroed (``secure_delete``) and the
        WAL truncated, so no page of the file keeps them.
        """
        needle = b'"household_id":' + orjson.dumps(household_id)
        with self._lock:
            self.db.execute("PRAGMA secure_delete = ON")
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    rows = self.db.execute(
                        "SELECT id, body FROM deliveries WHERE instr(body, ?) > 0", (needle,)
                    ).fetchall()
                    self.db.executemany("UPDATE deliveries SET body = ? WHERE id = ?",
                                        [(rewrite(bytes(body)), i) for i, body in rows])
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self.db.execute("PRAGMA secure_delete = OFF")
        return len(rows)

    def stats(self) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
            ).fetchall()
        return {status: int(n) for status, n in rows}
