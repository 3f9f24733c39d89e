"""Users, bearer tokens and the audit trail, in ``users.sqlite3`` under the home.

Tokens are shown once and stored only as SHA-256 hashes: a copy of the file
must not let anyone act as a chair. Every read of alert or ledger rows is
written to ``audit`` because the rows describe victims of domestic violence.

A ``partner`` is a user of another agency (police, court, …; DESIGN "Referrals"):
it answers the referrals addressed to its agency for households its org unit
covers, and nothing else. Its scope is a district or the city, never a street or
a community: agencies are organised by district, and a narrower scope would hide
referrals from the office that must answer them.

A token expires (90 days by default): a leaked token must not work for ever. A user
is ``active``, ``revoked`` (the token is gone: ``jiahe users add`` issues a new one)
or ``disabled`` (the account is shut until ``jiahe users enable``). Every request
looks the token up again, with no cache, so a revocation holds from the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import orjson

from events.catalog import Agency
from events.errors import JiaheError
from events.instants import MICROS_PER_DAY, format_instant, now_micros
from events.orgunits import Level, check_code, level_of
from privacy.audit import append_audit

USERS_FILE = "users.sqlite3"
ROLES: tuple[str, ...] = ("cadre", "chair", "city_admin", "analyst", "partner")
PARTNER = "partner"
#: The agencies a referral may be addressed to (DESIGN "Catalog v2", ``referral.sent``).
AGENCIES: tuple[str, ...] = get_args(Agency)
#: a token's lifetime unless ``--expires-days`` says otherwise.
DEFAULT_EXPIRES_DAYS = 90
MAX_EXPIRES_DAYS = 3 * 365
ACTIVE, REVOKED, DISABLED = "active", "revoked", "disabled"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    org_unit   TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    agency     TEXT,  -- partners only (older stores get the column on open)
    -- older stores get these two on open (_migrate)
    expires_us INTEGER NOT NULL DEFAULT 0,
    status     TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    user     TEXT NOT NULL,
    role     TEXT NOT NULL,
    scope    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    rows     INTEGER NOT NULL,
    -- hash chain (privacy.audit); older stores get these columns on the first audit write
    prev_hash TEXT,
    hash      TEXT
);
CREATE TABLE IF NOT EXISTS audit_meta (
    -- the audit chain's head (last id + hash), so that removing tail rows is detected
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    org_unit: str
    #: the partner's agency; None for every other role
    agency: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """A user as ``jiahe users list`` shows it: never the token or its hash."""
    name: str
    role: str
    org_unit: str
    agency: str | None
    created_at: str
    expires_us: int
    status: str

    def state(self, now: int) -> str:
        """``active``, ``expired``, ``revoked`` or ``disabled``."""
        if self.status == ACTIVE and self.expires_us <= now:
            return "expired"
        return self.status

    def public(self, now: int) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "org_unit": self.org_unit,
                "agency": self.agency, "created_at": self.created_at,
                "expires_at": format_instant(self.expires_us), "status": self.state(now)}


class UserError(JiaheError, ValueError):
    """A user that cannot be created as asked (the message says which option is wrong)."""


class TokenRefused(JiaheError):
    """A token that names no usable user; the message says why (the API's 401 reason)."""


def check_user(role: str, org_unit: str, agency: str | None) -> None:
    """Why (role, org unit, agency) is not a valid user, as a :class:`UserError`."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    check_code(org_unit)
    if role != PARTNER:
        if agency is not None:
            raise UserError(f"--agency is for the partner role only (not {role})")
        return
    if agency is None:
        raise UserError(f"a partner needs --agency (one of {', '.join(AGENCIES)})")
    if agency not in AGENCIES:
        raise UserError(f"agency must be one of {', '.join(AGENCIES)} (not {agency!r})")
    if level_of(org_unit) not in (Level.DISTRICT, Level.CITY):
        raise UserError(f"a partner's org unit must be a district or the city "
                        f"(a code ending in 000000), not the {level_of(org_unit).label} "
                        f"{org_unit}")


_COLUMNS = "name, role, org_unit, agency"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Thread-safe (one connection, one lock): the API serves requests from a pool."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Older stores get their columns in place (idempotent): ``agency`` (from before
        partners); ``expires_us`` and ``status`` (from before token lifetimes), where
        every existing token gets the default lifetime counted from this migration,
        not from its creation, so that no working token stops working at the upgrade."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(users)")}
        if "agency" not in columns:
            self.db.execute("ALTER TABLE users ADD COLUMN agency TEXT")
        if "status" not in columns:
            self.db.execute("ALTER TABLE users ADD COLUMN status TEXT NOT NULL "
                            "DEFAULT 'active'")
        if "expires_us" not in columns:
            self.db.execute("ALTER TABLE users ADD COLUMN expires_us INTEGER NOT NULL "
                            "DEFAULT 0")
            self.db.execute("UPDATE users SET expires_us = ?",
                            (now_micros() + DEFAULT_EXPIRES_DAYS * MICROS_PER_DAY,))

    @classmethod
    def at_home(cls, home: Path) -> UserStore:
        return cls(home / USERS_FILE)

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, role: str, org_unit: str, agency: str | None = None, *,
            expires_days: int = DEFAULT_EXPIRES_DAYS) -> str:
        """Create (or re-key) a user; returns the bearer token, which is never stored.

        The token expires after ``expires_days``; re-keying makes the user active again
        (the old token stops working). Raises :class:`UserError` (or ``OrgUnitError``)
        for a combination :func:`check_user` refuses."""
        check_user(role, org_unit, agency)
        if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise UserError(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}")
        token = secrets.token_urlsafe(32)
        now = now_micros()
        with self._lock:
            self.db.execute(
                "INSERT INTO users(name, role, org_unit, token_hash, created_at, agency, "
                "expires_us, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET "
                "role = excluded.role, org_unit = excluded.org_unit, "
                "token_hash = excluded.token_hash, agency = excluded.agency, "
                "expires_us = excluded.expires_us, status = excluded.status",
                (name, role, org_unit, hash_token(token), format_instant(now), agency,
                 now + expires_days * MICROS_PER_DAY, ACTIVE),
            )
        return token

    def authenticate(self, token: str, now: int | None = None) -> User:
        """The user this token names, if active and unexpired; else :class:`TokenRefused`
        saying why (unknown, expired, revoked or disabled). Read afresh on every call."""
        with self._lock:
            row = self.db.execute(
                f"SELECT {_COLUMNS}, expires_us, status FROM users WHERE token_hash = ?",
                (hash_token(token),),
            ).fetchone()
        if row is None:
            raise TokenRefused("a valid bearer token is required")
        *fields, expires_us, status = row
        if status == DISABLED:
            raise TokenRefused("this user is disabled")
        if status != ACTIVE:
            raise TokenRefused("this token was revoked")
        if expires_us <= (now_micros() if now is None else now):
            raise TokenRefused(f"this token expired at {format_instant(expires_us)}; "
                               "ask for a new one (jiahe users add)")
        return User(*fields)

    def lookup(self, token: str) -> User | None:
        """The user of a valid token (active, unexpired), or None."""
        try:
            return self.authenticate(token)
        except TokenRefused:
            return None

    def delivery_scope(self, name: str) -> str | None:
        """The org unit within which ``name``'s subscriptions deliver: hers while the
        account is active; None once revoked or disabled (or unknown). An expired token
        does not stop alerts: the person is still in post, only her token is old."""
        with self._lock:
            row = self.db.execute("SELECT org_unit FROM users WHERE name = ? AND status = ?",
                                  (name, ACTIVE)).fetchone()
        return str(row[0]) if row else None

    def accounts(self) -> list[Account]:
        """Every user, by name, for ``jiahe users list``."""
        with self._lock:
            rows = self.db.execute(
                "SELECT name, role, org_unit, agency, created_at, expires_us, status "
                "FROM users ORDER BY name").fetchall()
        return [Account(*row) for row in rows]

    def revoke(self, name: str) -> bool:
        """The user's token never works again (``add`` issues a new one); it is told
        "revoked" rather than "unknown", so its holder knows whom to ask."""
        with self._lock:
            cursor = self.db.execute("UPDATE users SET status = ? WHERE name = ?",
                                     (REVOKED, name))
        return cursor.rowcount == 1

    def set_disabled(self, name: str, disabled: bool = True) -> bool:
        """Shut (or reopen) the account; its token is kept, but refused while disabled.
        A revoked user stays revoked: only a new token reopens it."""
        with self._lock:
            cursor = self.db.execute(
                "UPDATE users SET status = ? WHERE name = ? AND status != ?",
                (DISABLED if disabled else ACTIVE, name, REVOKED))
        return cursor.rowcount == 1

    def get(self, name: str) -> User | None:
        """A user by name (e.g. the assignee of a warning), or None."""
        with self._lock:
            row = self.db.execute(f"SELECT {_COLUMNS} FROM users WHERE name = ?",
                                  (name,)).fetchone()
        return User(*row) if row else None

    def audit(self, user: User, action: str, detail: dict[str, object], rows: int) -> None:
        """Who read what, when, under which scope (detail: the request's filters).

        Rows are hash-chained (``privacy.audit``): ``jiahe verify`` names an
        edited, removed or reordered row. One transaction per row, so that two
        processes sharing the file cannot fork the chain.
        """
        row = {"at": format_instant(now_micros()), "user": user.name, "role": user.role,
               "scope": user.org_unit, "action": action,
               "detail": orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode(),
               "rows": int(rows)}
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                append_audit(self.db, row)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def audit_rows(self) -> list[dict[str, object]]:
        with self._lock:
            cursor = self.db.execute(
                "SELECT at, user, role, scope, action, detail, rows FROM audit ORDER BY id"
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
