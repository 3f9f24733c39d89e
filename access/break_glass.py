"""Break-glass grants: one household opened outside the caller's scope, for 4 hours.

A chair whose scope does not cover a household may still need to read it (a
victim calls from another district). She asks for a grant with a written
reason; the grant opens that one household to her reads until it expires, and
every read made under it is audited with the reason (``BreakGlass.read``).

Grants live next to the users and the audit trail, in ``users.sqlite3`` (on
the user store's connection, under its lock), and a grant is written in the
same transaction as its audit row (``privacy.audit``, hash-chained): there is
no grant that the audit trail does not show. ``now`` is a parameter of every
call that looks at the clock, so expiry is tested with an injected clock.

Who may ask: roles in ``GRANT_ROLES`` (chair, city_admin), for a household
whose owner their scope does not cover (``OutsideNeeded`` otherwise). For a
city admin of the city that is never the case, so her requests are refused:
a grant is meaningful for her only across cities.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from access.users import User, UserStore
from events.errors import JiaheError
from events.instants import MICROS_PER_HOUR, format_instant
from events.orgunits import district_of, is_within
from privacy.audit import append_audit

GRANT_ROLES: tuple[str, ...] = ("chair", "city_admin")
#: How long a grant opens its household.
GRANT_HOURS = 4
GRANT_MICROS = GRANT_HOURS * MICROS_PER_HOUR
#: The written reason: required, and bounded (it is a justification, not a case file).
MAX_REASON = 1_000
#: Audit actions (``users.sqlite3``, table ``audit``).
GRANTED = "break_glass.grant"
READ = "break_glass.read"
#: The last part of a face's action name when it is a command, not a read: a grant
#: opens reads only (writes stay behind the ingest guard's scope check anyway).
COMMAND_VERBS = frozenset({"send", "record", "withdraw", "assess", "reopen", "accept",
                           "decline", "close", "acknowledge", "acknowledged", "resolve",
                           "resolved", "assign", "assigned"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS break_glass (
    id           TEXT PRIMARY KEY,
    user         TEXT NOT NULL,
    role         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    household_id TEXT NOT NULL,
    owner        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    granted_us   INTEGER NOT NULL,
    expires_us   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS break_glass_user ON break_glass(user, household_id, expires_us);
CREATE INDEX IF NOT EXISTS break_glass_granted ON break_glass(granted_us);
"""


class GrantRefused(JiaheError):
    """A grant that may not be given (the API answers 409 with the message)."""


class OutsideNeeded(GrantRefused):
    """The caller's scope already covers the household: there is nothing to open."""


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    user: str
    role: str
    scope: str
    household_id: str
    #: the household's owner (community) when the grant was given.
    owner: str
    reason: str
    granted_us: int
    expires_us: int

    def live(self, now: int) -> bool:
        return self.granted_us <= now < self.expires_us

    @property
    def district(self) -> str:
        return district_of(self.owner)

    def public(self, now: int) -> dict[str, Any]:
        return {
            "grant_id": self.id, "user": self.user, "role": self.role, "scope": self.scope,
            "household_id": self.household_id, "owner_org_unit": self.owner,
            "district": self.district, "reason": self.reason,
            "granted_at": format_instant(self.granted_us),
            "expires_at": format_instant(self.expires_us),
            "status": "live" if self.live(now) else "expired",
        }


def is_read(action: str) -> bool:
    """Whether a face's action (``alerts.history``, ``consent.read`` …) is a read that a
    grant may open (``referrals.send``, ``alerts.assess`` … are commands)."""
    return action.rsplit(".", 1)[-1] not in COMMAND_VERBS


def check_reason(reason: str) -> str:
    """The reason without surrounding blanks; GrantRefused when empty or too long."""
    text = reason.strip()
    if not text:
        raise GrantRefused("a written reason is required")
    if len(text) > MAX_REASON:
        raise GrantRefused(f"the reason is longer than {MAX_REASON} characters")
    return text


_COLUMNS = "id, user, role, scope, household_id, owner, reason, granted_us, expires_us"


class BreakGlass:
    """The grants, on the user store's connection and lock (one file, one chain)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self._lock = lock
        with self._lock:
            self.db.executescript(SCHEMA)

    @classmethod
    def of(cls, users: UserStore) -> BreakGlass:
        return cls(users.db, users._lock)  # noqa: SLF001 - one connection, one lock

    def grant(self, user: User, household_id: str, owner: str, reason: str, now: int,
              ttl_us: int = GRANT_MICROS) -> Grant:
        """Open ``household_id`` (owned by ``owner``) to ``user`` from ``now`` for ``ttl_us``.

        The grant and its audit row (action ``break_glass.grant``, the reason in its
        detail) are one transaction.
        """
        if user.role not in GRANT_ROLES:
            raise GrantRefused(f"role {user.role!r} may not break the glass")
        if is_within(owner, user.org_unit):
            raise OutsideNeeded("the household lies within your scope: no grant is needed")
        text = check_reason(reason)
        grant = Grant(f"bg-{uuid.uuid4()}", user.name, user.role, user.org_unit, household_id,
                      owner, text, now, now + ttl_us)
        row = {"at": format_instant(now), "user": user.name, "role": user.role,
               "scope": user.org_unit, "action": GRANTED,
               "detail": _detail({"grant_id": grant.id, "household_id": household_id,
                                  "owner_org_unit": owner, "reason": text,
                                  "expires_at": format_instant(grant.expires_us)}),
               "rows": 0}
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(
                    f"INSERT INTO break_glass({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (grant.id, grant.user, grant.role, grant.scope, grant.household_id,
                     grant.owner, grant.reason, grant.granted_us, grant.expires_us),
                )
                append_audit(self.db, row)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return grant

    def live(self, user: User, household_id: str, now: int) -> Grant | None:
        """The caller's grant on the household that lives at ``now`` (the latest), or None."""
        with self._lock:
            row = self.db.execute(
                f"SELECT {_COLUMNS} FROM break_glass WHERE user = ? AND household_id = ? "
                "AND granted_us <= ? AND expires_us > ? ORDER BY expires_us DESC LIMIT 1",
                (user.name, household_id, now, now),
            ).fetchone()
        return Grant(*row) if row else None

    def live_households(self, user: User, now: int) -> dict[str, Grant]:
        """The caller's grants living at ``now``, by household (for list reads)."""
        if user.role not in GRANT_ROLES:
            return {}
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM break_glass WHERE user = ? AND granted_us <= ? "
                "AND expires_us > ? ORDER BY expires_us", (user.name, now, now),
            ).fetchall()
        return {grant.household_id: grant for grant in (Grant(*row) for row in rows)}

    def read(self, users: UserStore, user: User, household_id: str, action: str,
             now: int, grant: Grant | None = None) -> Grant | None:
        """A read of the household under a live grant (``grant``, or the caller's latest):
        audited with the grant's reason (action ``break_glass.read``) and returned; None
        when no grant lives or ``action`` is a command (``is_read``)."""
        if not is_read(action) or user.role not in GRANT_ROLES:
            return None
        grant = grant if grant is not None else self.live(user, household_id, now)
        if grant is not None and grant.live(now):
            users.audit(user, READ, {"grant_id": grant.id, "household_id": household_id,
                                     "read": action, "reason": grant.reason}, 0)
            return grant
        return None

    def since(self, since_us: int | None = None) -> list[Grant]:
        """Grants given at or after ``since_us`` (all without it), oldest first."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM break_glass WHERE granted_us >= ? "
                "ORDER BY granted_us, id", (since_us if since_us is not None else -1,),
            ).fetchall()
        return [Grant(*row) for row in rows]

    def reads(self) -> dict[str, int]:
        """How many reads were audited under each grant (from the audit trail)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT json_extract(detail, '$.grant_id'), COUNT(*) FROM audit "
                "WHERE action = ? GROUP BY 1", (READ,),
            ).fetchall()
        return {str(grant_id): int(n) for grant_id, n in rows}


def _detail(detail: dict[str, object]) -> str:
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
