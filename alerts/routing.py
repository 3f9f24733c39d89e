"""Alert routing in the manner of Alertmanager: silences and a repeat interval.

**Silences.** A silence has an author, a matcher — an org-unit scope (that unit
and everything under it), optionally a rule id and a level — and an expiry.
While a silence matches, a new delivery is still **recorded** in the outbox,
with status ``silenced`` instead of ``pending``, and is never sent; the key
(subscription, warning_id, transition) is taken, so lifting the silence does
not replay old alerts. A warning's **resolution is never silenced**: whoever
was told (or would have been told) that a warning is open learns that it is
closed. Deleting a silence expires it now (it stays listed with ``?all=true``).
A silence holds back only the alerts of subscriptions whose owner's scope lies
within its author's scope (``author_scope``): a street chair cannot mute what her
district or the city is told.

**Repeat interval.** A red warning whose raise was notified to a subscription
and that has not been acknowledged or resolved is notified again every
``interval`` after that first notification, as transition
``warning.repeat:N`` (N = 1, 2, …): deduplicated per repeat slot, silenced like
any other alert. Only the current slot is enqueued, so a loop that was down
does not burst the missed ones.

**Grouping** (off unless configured). Alerts of one subscription are grouped
by (district, rule): the first alert of a quiet group waits ``group_wait``
for company; later ones join the pending flush or wait for the group's next
flush, ``group_interval`` after the previous one. A flush sends one webhook
POST (``{"group": …, "alerts": [each row's body]}``) or one mail for all of
the group's due rows; the rows stay individual in the outbox (dedupe, retries
and dead letters per (subscription, warning_id, transition)).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from events.instants import format_instant, now_micros
from events.orgunits import is_within

if TYPE_CHECKING:
    from alerts.subscriptions import SubscriptionStore

SILENCED = "silenced"
#: transitions that a silence never holds back.
NEVER_SILENCED = frozenset({"warning.resolved"})
REPEAT_PREFIX = "warning.repeat:"

SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id         TEXT PRIMARY KEY,
    author     TEXT NOT NULL,
    org_unit   TEXT NOT NULL,
    rule_id    TEXT,
    level      TEXT,
    comment    TEXT,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    author_scope TEXT  -- older stores get the column on open; NULL: the matcher's unit
);
"""
_COLUMNS = "id, author, org_unit, rule_id, level, comment, created_us, expires_us, author_scope"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    author: str
    org_unit: str
    rule_id: str | None
    level: str | None
    comment: str | None
    created_us: int
    expires_us: int
    #: the author's org unit when she created it; None (older silences): ``org_unit``.
    author_scope: str | None = None

    def active(self, now: int) -> bool:
        return self.created_us <= now < self.expires_us

    def matches(self, warning: dict[str, Any]) -> bool:
        return (is_within(warning["org_unit"], self.org_unit)
                and (self.rule_id is None or warning["rule_id"] == self.rule_id)
                and (self.level is None or warning["level"] == self.level))

    def reaches(self, owner_scope: str) -> bool:
        """Whether it may hold back a subscription whose owner's scope is ``owner_scope``."""
        return is_within(owner_scope, self.author_scope or self.org_unit)

    def public(self, now: int) -> dict[str, Any]:
        return {
            "id": self.id, "author": self.author,
            "matcher": {"org_unit": self.org_unit, "rule_id": self.rule_id,
                        "level": self.level},
            "comment": self.comment, "created_at": format_instant(self.created_us),
            "expires_at": format_instant(self.expires_us),
            "status": "active" if self.active(now) else "expired",
        }


class SilenceStore:
    """Silences next to the outbox in ``alerts.sqlite3``, on the subscription store's connection."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self._lock = lock
        with self._lock:
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(silences)")}
            if "author_scope" not in columns:  # a store from before scoped silences
                self.db.execute("ALTER TABLE silences ADD COLUMN author_scope TEXT")

    @classmethod
    def of(cls, store: SubscriptionStore) -> SilenceStore:
        return cls(store.db, store._lock)  # noqa: SLF001 - one connection, one lock

    def create(self, author: str, org_unit: str, rule_id: str | None, level: str | None,
               expires_us: int, comment: str | None = None, now: int | None = None,
               author_scope: str | None = None) -> Silence:
        silence = Silence(str(uuid.uuid4()), author, org_unit, rule_id, level, comment,
                          now_micros() if now is None else now, expires_us, author_scope)
        with self._lock:
            self.db.execute(
                f"INSERT INTO silences({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (silence.id, author, org_unit, rule_id, level, comment, silence.created_us,
                 expires_us, author_scope),
            )
        return silence

    def all(self) -> list[Silence]:
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM silences ORDER BY created_us, id"
            ).fetchall()
        return [Silence(*row) for row in rows]

    def get(self, silence_id: str) -> Silence | None:
        return next((s for s in self.all() if s.id == silence_id), None)

    def expire(self, silence_id: str, now: int | None = None) -> None:
        at = now_micros() if now is None else now
        with self._lock:
            self.db.execute("UPDATE silences SET expires_us = MIN(expires_us, ?) WHERE id = ?",
                            (at, silence_id))

    def active(self, now: int) -> list[Silence]:
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM silences WHERE created_us <= ? AND expires_us > ?",
                (now, now),
            ).fetchall()
        return [Silence(*row) for row in rows]


def silenced_by(silences: list[Silence], warning: dict[str, Any],
                transition: str, owner_scope: str | None = None) -> Silence | None:
    """The first active silence holding this alert back, if any (never a resolution).

    ``owner_scope``: the org unit of the subscription's owner; only silences whose
    author's scope covers it apply (None: the caller does not say, every silence does)."""
    if transition.split("#", 1)[0] in NEVER_SILENCED:  # "#n": after the n-th reopening
        return None
    return next((s for s in silences if s.matches(warning)
                 and (owner_scope is None or s.reaches(owner_scope))), None)


# -- repeat interval -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repeat:
    subscription_id: str
    warning: dict[str, Any]
    transition: str
    body: bytes


def due_repeats(store: SubscriptionStore, now: int, interval_us: int) -> list[Repeat]:
    """Reminders due for red warnings unacknowledged and unresolved in their current
    cycle, one per (sub, warning, slot).

    A cycle starts at the warning's raise or at its latest reopening (the delivery of
    ``warning.reopened#k``, after which acknowledgements are ``warning.acknowledged#k``);
    slots count intervals from its start, and a reopened cycle's reminders are
    ``warning.repeat:N#k``, so they never collide with the reminders of an earlier one."""
    with store._lock:  # noqa: SLF001
        rows = store.db.execute(
            "SELECT d.subscription_id, d.warning_id, d.transition, d.body, d.enqueued_us "
            "FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id "
            "WHERE (d.transition = 'warning.raised' OR d.transition LIKE 'warning.reopened#%') "
            "AND d.enqueued_us <= ? "
            "AND json_extract(CAST(d.body AS TEXT), '$.warning.level') = 'red' "
            "AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE "
            "x.subscription_id = d.subscription_id AND x.warning_id = d.warning_id "
            "AND x.id > d.id AND (x.transition LIKE 'warning.reopened#%' "
            "OR x.transition = 'warning.acknowledged' OR x.transition = 'warning.resolved' "
            "OR x.transition LIKE 'warning.acknowledged#%' "
            "OR x.transition LIKE 'warning.resolved#%'))",
            (now - interval_us,),
        ).fetchall()
    out = []
    for sub_id, _warning_id, started_by, body, enqueued_us in rows:
        payload = orjson.loads(body)
        if payload["warning"]["level"] != "red":
            continue
        slot = (now - enqueued_us) // interval_us
        _, reopened, cycle = str(started_by).partition("#")
        transition = f"{REPEAT_PREFIX}{slot}" + (f"#{cycle}" if reopened else "")
        payload["transition"] = transition
        payload["record"] = {**payload["record"], "repeat": slot}
        out.append(Repeat(sub_id, payload["warning"], transition,
                          orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)))
    return out


# -- grouping --------------------------------------------------------------------------

GroupKey = tuple[str, str, str]  # (subscription_id, district, rule_id)


def group_key(subscription_id: str, body: bytes) -> GroupKey:
    warning = orjson.loads(body)["warning"]
    return subscription_id, str(warning["district"]), str(warning["rule_id"])


class Grouping:
    """When each group flushes next (in memory: after a restart, rows keep their stored time)."""

    def __init__(self, wait_s: float, interval_s: float) -> None:
        self.wait_us = int(wait_s * 1_000_000)
        self.interval_us = int(interval_s * 1_000_000)
        self._pending: dict[GroupKey, int] = {}  # scheduled, not yet sent
        self._sent: dict[GroupKey, int] = {}  # when the group was last sent

    def flush_at(self, key: GroupKey, now: int) -> int:
        """Join a pending flush; else the next one after the last; else now + group_wait."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        sent = self._sent.get(key)
        if sent is not None and now < sent + self.interval_us:
            return sent + self.interval_us
        return now + self.wait_us

    def scheduled(self, key: GroupKey, at: int) -> None:
        """A row was enqueued for the flush at ``at`` (a deduplicated one was not)."""
        self._pending.setdefault(key, at)

    def flushed(self, key: GroupKey, now: int) -> None:
        self._pending.pop(key, None)
        self._sent[key] = now


def group_body(key: GroupKey, bodies: list[bytes]) -> bytes:
    subscription_id, district, rule_id = key
    return orjson.dumps({
        "subscription_id": subscription_id,
        "group": {"district": district, "rule_id": rule_id},
        "alerts": [orjson.loads(body) for body in bodies],
    }, option=orjson.OPT_SORT_KEYS)
