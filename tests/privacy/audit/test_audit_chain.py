"""The audit trail (who read which ledger or alert rows) is hash-chained like the lifecycle.

Rows are written through ``access.users.UserStore.audit``, as the API does.
"""

from __future__ import annotations

from pathlib import Path

from access.users import User, UserStore
from tests.privacy.audit.conftest import AUDIT_ROWS
from tests.privacy.audit.tools import sql, verify

USERS = "users.sqlite3"


def test_audit_rows_written_through_the_store_verify(home: Path) -> None:
    store = UserStore.at_home(home)
    try:
        store.audit(User("analyst", "analyst", "230100000000"), "kpis", {"as_of": None}, 0)
        assert len(store.audit_rows()) == AUDIT_ROWS + 1
    finally:
        store.close()
    result = verify(home)
    assert result.exit_code == 0, result.output
    assert f"audit chain: {AUDIT_ROWS + 1} rows, head seq {AUDIT_ROWS + 1}" in result.output


def test_an_edited_audit_row_is_named_by_its_id(home: Path) -> None:
    sql(home, USERS, "UPDATE audit SET user = 'someone-else' WHERE id = 3")
    result = verify(home)
    assert result.exit_code == 1
    assert "audit: id 3: hash mismatch" in result.output
    assert "id 4" not in result.output


def test_a_removed_audit_row_is_named_as_a_gap(home: Path) -> None:
    sql(home, USERS, "DELETE FROM audit WHERE id = 4")
    result = verify(home)
    assert result.exit_code == 1
    assert "audit: gap after id 3: id 4 missing (removed)" in result.output


def test_swapped_audit_rows_are_reported_as_reordered(home: Path) -> None:
    sql(home, USERS,
        "UPDATE audit SET id = -1 WHERE id = 2",
        "UPDATE audit SET id = 2 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = -1")
    result = verify(home)
    assert result.exit_code == 1
    assert "audit: id 2: hash mismatch" in result.output
    assert "audit: id 2: chained after id 3 but comes after id 1: rows reordered" in result.output


def test_a_truncated_audit_tail_is_detected(home: Path) -> None:
    sql(home, USERS, f"DELETE FROM audit WHERE id > {AUDIT_ROWS - 2}")
    result = verify(home)
    assert result.exit_code == 1
    assert (f"audit: truncated tail: head says id {AUDIT_ROWS}, last row is id "
            f"{AUDIT_ROWS - 2} (2 missing)") in result.output


def test_writing_on_after_tampering_does_not_hide_it(home: Path) -> None:
    sql(home, USERS, f"DELETE FROM audit WHERE id = {AUDIT_ROWS}")
    store = UserStore.at_home(home)
    try:
        store.audit(User("chair102", "chair", "230102000000"), "alerts.list", {}, 2)
    finally:
        store.close()
    result = verify(home)
    assert result.exit_code == 1
    assert f"audit: gap after id {AUDIT_ROWS - 1}: id {AUDIT_ROWS} missing" in result.output
