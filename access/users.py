"""Users, bearer tokens and the audit trail, in ``users.sqlite3`` under the home.

Tokens are shown once and stored only as SHA-256 hashes: a copy of the file
must not let anyone act as a chair. Every read of alert or ledger rows is
written to ``audit`` because the rows describe victims of domestic violence.

A ``partner`` is a user of another agency (police, court, …; DESIGN "Referrals"):
it answers the referrals addressed to its agency for households its org unit
covers, and nothing else. Its scope is a district or the city, never a street or
a community: agencies are organised by district, and a narrower scope would hide
referrals from the office that must answer them.
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
from events.instants import format_instant, now_micros
from events.orgunits import Level, check_code, level_of
from privacy.audit import append_audit

USERS_FILE = "users.sqlite3"
ROLES: tuple[str, ...] = ("cadre", "chair", "city_admin", "analyst", "partner")
PARTNER = "partner"
#: The agencies a referral may be addressed to (DESIGN "Catalog v2", ``referral.sent``).
AGENCIES: tuple[str, ...] = get_args(Agency)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    org_unit   TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    agency     TEXT  -- partners only (older stores get the column on open)
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


class UserError(JiaheError, ValueError):
    """A user that cannot be created as asked (the message says which option is wrong)."""


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
        """A store from before partners gets the ``agency`` column, in place (idempotent)."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(users)")}
        if "agency" not in columns:
            self.db.execute("ALTER TABLE users ADD COLUMN agency TEXT")

    @classmethod
    def at_home(cls, home: Path) -> UserStore:
        return cls(home / USERS_FILE)

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, role: str, org_unit: str, agency: str | None = None) -> str:
        """Create (or re-key) a user; returns the bearer token, which is never stored.

        Raises :class:`UserError` (or ``OrgUnitError``) for a combination
        :func:`check_user` refuses."""
        check_user(role, org_unit, agency)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.db.execute(
                "INSERT INTO users(name, role, org_unit, token_hash, created_at, agency) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "role = excluded.role, org_unit = excluded.org_unit, "
                "token_hash = excluded.token_hash, agency = excluded.agency",
                (name, role, org_unit, hash_token(token), format_instant(now_micros()),
                 agency),
            )
        return token

    def lookup(self, token: str) -> User | None:
        with self._lock:
            row = self.db.execute(
                f"SELECT {_COLUMNS} FROM users WHERE token_hash = ?",
                (hash_token(token),),
            ).fetchone()
        return User(*row) if row else None

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
