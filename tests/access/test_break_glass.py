"""Break-glass grants: one household, outside the caller's scope, for 4 hours, with a reason.

The store takes the clock as a parameter, so expiry is tested at exact instants
(no waiting). Each grant is written with its audit row (hash-chained), and each
read under it is audited with the reason.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from access.break_glass import (
    GRANT_MICROS,
    MAX_REASON,
    BreakGlass,
    GrantRefused,
    OutsideNeeded,
    is_read,
)
from access.users import User, UserStore
from events.instants import MICROS_PER_HOUR, MICROS_PER_SECOND, parse_instant
from privacy.audit import AUDIT, walk

NOW = parse_instant("2026-11-20T10:00:00+08:00")
CHAIR_103 = User("chair103", "chair", "230103000000")
CHAIR_102 = User("chair102", "chair", "230102000000")
OWNER = "230102001001"  # a community of 道里区 (230102)
HOUSEHOLD = "hh-230102-000001"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore.at_home(tmp_path)
    yield store
    store.close()


@pytest.fixture
def grants(users: UserStore) -> BreakGlass:
    return BreakGlass.of(users)


def _audit(users: UserStore, action: str) -> list[dict[str, object]]:
    rows = [r for r in users.audit_rows() if r["action"] == action]
    return [{**r, "detail": orjson.loads(str(r["detail"]))} for r in rows]


def test_a_grant_opens_one_household_for_four_hours(grants: BreakGlass) -> None:
    grant = grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "victim called from 南岗区", NOW)
    assert GRANT_MICROS == 4 * MICROS_PER_HOUR
    assert grant.expires_us == NOW + GRANT_MICROS
    assert grants.live(CHAIR_103, HOUSEHOLD, NOW) == grant
    assert grants.live(CHAIR_103, HOUSEHOLD, NOW + GRANT_MICROS - 1) == grant
    assert grants.live(CHAIR_103, HOUSEHOLD, NOW + GRANT_MICROS) is None  # expired
    assert grants.live(CHAIR_103, HOUSEHOLD, NOW - 1) is None  # not yet given
    assert grants.live(CHAIR_103, "hh-230102-000002", NOW) is None  # one household only
    other_chair = User("chair104", "chair", "230104000000")
    assert grants.live(other_chair, HOUSEHOLD, NOW) is None  # the grantee's only
    shown = grant.public(NOW)
    assert shown["status"] == "live" and shown["district"] == "230102000000"
    assert parse_instant(shown["expires_at"]) == parse_instant("2026-11-20T14:00:00+08:00")
    assert grant.public(NOW + GRANT_MICROS)["status"] == "expired"


def test_the_grant_is_an_audit_event_in_the_hash_chain(users: UserStore,
                                                       grants: BreakGlass) -> None:
    grant = grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "  victim called from 南岗区 ", NOW)
    [row] = _audit(users, "break_glass.grant")
    assert row["user"] == "chair103" and row["scope"] == "230103000000"
    assert row["detail"] == {"grant_id": grant.id, "household_id": HOUSEHOLD,
                             "owner_org_unit": OWNER, "reason": "victim called from 南岗区",
                             "expires_at": grant.public(NOW)["expires_at"]}
    report = walk(users.db, AUDIT)
    assert report.ok and report.rows == 1


def test_reads_under_a_live_grant_are_audited_with_the_reason(users: UserStore,
                                                              grants: BreakGlass) -> None:
    grant = grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "court hearing tomorrow", NOW)
    assert grants.read(users, CHAIR_103, HOUSEHOLD, "alerts.history",
                       NOW + MICROS_PER_HOUR) == grant
    assert grants.read(users, CHAIR_103, HOUSEHOLD, "consent.read",
                       NOW + 2 * MICROS_PER_HOUR) == grant
    reads = _audit(users, "break_glass.read")
    assert [r["detail"] for r in reads] == [
        {"grant_id": grant.id, "household_id": HOUSEHOLD, "read": "alerts.history",
         "reason": "court hearing tomorrow"},
        {"grant_id": grant.id, "household_id": HOUSEHOLD, "read": "consent.read",
         "reason": "court hearing tomorrow"},
    ]
    assert grants.reads() == {grant.id: 2}


def test_an_expired_grant_opens_nothing_and_audits_nothing(users: UserStore,
                                                           grants: BreakGlass) -> None:
    grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "court hearing tomorrow", NOW)
    later = NOW + GRANT_MICROS + MICROS_PER_SECOND
    assert grants.read(users, CHAIR_103, HOUSEHOLD, "alerts.history", later) is None
    assert grants.live_households(CHAIR_103, later) == {}
    assert _audit(users, "break_glass.read") == []


def test_a_grant_opens_reads_not_commands(users: UserStore, grants: BreakGlass) -> None:
    grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "court hearing tomorrow", NOW)
    for action in ("referrals.send", "alerts.assess", "consent.record", "alerts.reopen"):
        assert not is_read(action)
        assert grants.read(users, CHAIR_103, HOUSEHOLD, action, NOW) is None
    assert is_read("alerts.history") and is_read("households.alerts")
    assert _audit(users, "break_glass.read") == []


def test_only_outside_the_scope(grants: BreakGlass) -> None:
    with pytest.raises(OutsideNeeded):
        grants.grant(CHAIR_102, HOUSEHOLD, OWNER, "mine anyway", NOW)
    city_admin = User("admin", "city_admin", "230100000000")
    with pytest.raises(OutsideNeeded):  # the city covers every household of the city
        grants.grant(city_admin, HOUSEHOLD, OWNER, "just looking", NOW)
    other_city = User("admin-qqhr", "city_admin", "230200000000")  # 齐齐哈尔: outside
    assert grants.grant(other_city, HOUSEHOLD, OWNER, "a victim moved cities", NOW).live(NOW)


@pytest.mark.parametrize("role", ["cadre", "analyst", "partner"])
def test_only_chairs_and_city_admins(grants: BreakGlass, role: str) -> None:
    with pytest.raises(GrantRefused, match="may not break the glass"):
        grants.grant(User("someone", role, "230103000000"), HOUSEHOLD, OWNER, "why", NOW)


@pytest.mark.parametrize("reason", ["", "   ", "x" * (MAX_REASON + 1)])
def test_a_written_bounded_reason_is_required(users: UserStore, grants: BreakGlass,
                                              reason: str) -> None:
    with pytest.raises(GrantRefused, match="reason"):
        grants.grant(CHAIR_103, HOUSEHOLD, OWNER, reason, NOW)
    assert grants.since() == [] and _audit(users, "break_glass.grant") == []


def test_since_lists_grants_oldest_first(grants: BreakGlass) -> None:
    first = grants.grant(CHAIR_103, HOUSEHOLD, OWNER, "first", NOW)
    second = grants.grant(CHAIR_103, "hh-230102-000002", OWNER, "second",
                          NOW + MICROS_PER_HOUR)
    assert grants.since() == [first, second]
    assert grants.since(NOW + 1) == [second]
    assert grants.live_households(CHAIR_103, NOW + MICROS_PER_HOUR) == {
        HOUSEHOLD: first, "hh-230102-000002": second}


def test_grants_survive_reopening_the_store(tmp_path: Path) -> None:
    store = UserStore.at_home(tmp_path)
    grant = BreakGlass.of(store).grant(CHAIR_103, HOUSEHOLD, OWNER, "kept", NOW)
    store.close()
    again = UserStore.at_home(tmp_path)
    try:
        assert BreakGlass.of(again).live(CHAIR_103, HOUSEHOLD, NOW) == grant
    finally:
        again.close()
    db = sqlite3.connect(tmp_path / "users.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM break_glass").fetchone() == (1,)
    finally:
        db.close()
