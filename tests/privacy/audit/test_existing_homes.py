"""Homes made before the chain existed open, and are chained on first use.

Decision: adopt, not refuse. The missing columns are added (ALTER TABLE) and
the existing rows are chained by the next append or by ``jiahe verify``; the
adoption (how many rows, when) is recorded and shown, since those rows are
vouched for only from that moment.
"""

from __future__ import annotations

from pathlib import Path

from access.users import User, UserStore
from app.bootstrap import bootstrap_embedded
from streams.clock import EventTimeClock
from tests.helpers import visit
from tests.privacy.audit.conftest import AUDIT_ROWS
from tests.privacy.audit.tools import scalar, sql, verify

PRE_CHAIN_LOG = (
    "ALTER TABLE lifecycle DROP COLUMN prev_hash",
    "ALTER TABLE lifecycle DROP COLUMN hash",
    "DELETE FROM meta WHERE key LIKE 'chain.%'",
)
PRE_CHAIN_USERS = (
    "ALTER TABLE audit DROP COLUMN prev_hash",
    "ALTER TABLE audit DROP COLUMN hash",
    "DROP TABLE audit_meta",
)


def test_verify_chains_a_pre_chain_home_and_says_so(home: Path) -> None:
    sql(home, "log.sqlite3", *PRE_CHAIN_LOG)
    sql(home, "users.sqlite3", *PRE_CHAIN_USERS)
    rows = scalar(home, "log.sqlite3", "SELECT COUNT(*) FROM lifecycle")
    result = verify(home)
    assert result.exit_code == 0, result.output
    assert f"chained {rows} existing rows now" in result.output
    assert f"chained {AUDIT_ROWS} existing rows now" in result.output
    again = verify(home)
    assert again.exit_code == 0 and "existing rows now" not in again.output
    assert f"{rows} rows written before the chain existed were chained at" in again.output


def test_processing_and_auditing_chain_a_pre_chain_home(home: Path) -> None:
    sql(home, "log.sqlite3", *PRE_CHAIN_LOG)
    sql(home, "users.sqlite3", *PRE_CHAIN_USERS)
    before = scalar(home, "log.sqlite3", "SELECT COUNT(*) FROM lifecycle")
    runtime = bootstrap_embedded(home)
    try:
        late = "2026-12-20T10:00:00+08:00"  # after the sample stream: a new red warning
        runtime.publish([visit("hh-new-after-upgrade", late, ["injury_observed"])], "file")
        runtime.process(EventTimeClock())
        assert runtime.log.end_seq() > before
    finally:
        runtime.close()
    store = UserStore.at_home(home)
    try:
        store.audit(User("chair102", "chair", "230102000000"), "alerts.list", {}, 1)
    finally:
        store.close()
    result = verify(home)
    assert result.exit_code == 0, result.output
    assert f"{before} rows written before the chain existed" in result.output
    assert f"audit chain: {AUDIT_ROWS + 1} rows" in result.output
    assert f"{AUDIT_ROWS} rows written before the chain existed" in result.output
