"""Users: the partner role (another agency, scoped to a district or the city), its
agency kept in the users table, and stores from before partners migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from access.users import AGENCIES, USERS_FILE, User, UserError, UserStore, check_user
from cli.main import main
from events.orgunits import OrgUnitError


def test_a_partner_carries_its_agency(tmp_path: Path) -> None:
    store = UserStore.at_home(tmp_path)
    token = store.add("police102", "partner", "230102000000", "police")
    assert store.lookup(token) == User("police102", "partner", "230102000000", "police")
    assert store.get("police102") == User("police102", "partner", "230102000000", "police")
    chair = store.add("chair102", "chair", "230102000000")
    assert store.lookup(chair) == User("chair102", "chair", "230102000000", None)
    store.close()


@pytest.mark.parametrize(("role", "org_unit", "agency", "says"), [
    ("partner", "230102000000", None, "a partner needs --agency"),
    ("partner", "230102000000", "fbi", "agency must be one of police"),
    ("partner", "230102001000", "police", "district or the city"),  # a street
    ("partner", "230102001001", "police", "district or the city"),  # a community
    ("chair", "230102000000", "police", "--agency is for the partner role only"),
    ("boss", "230102000000", None, "role must be one of"),
])
def test_refused_users(role: str, org_unit: str, agency: str | None, says: str) -> None:
    with pytest.raises(UserError, match=says):
        check_user(role, org_unit, agency)


def test_a_bad_code_is_refused() -> None:
    with pytest.raises(OrgUnitError):
        check_user("partner", "2301", "police")


def test_a_store_from_before_partners_is_migrated_in_place(tmp_path: Path) -> None:
    """The v1 users table (no agency column) keeps its users and tokens."""
    db = sqlite3.connect(tmp_path / USERS_FILE)
    db.executescript("""
        CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL,
                            org_unit TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
                            created_at TEXT NOT NULL);
        INSERT INTO users VALUES ('chair102', 'chair', '230102000000', 'h', 'then');
    """)
    db.close()
    for _ in range(2):  # migrating twice is a no-op
        store = UserStore.at_home(tmp_path)
        assert store.get("chair102") == User("chair102", "chair", "230102000000", None)
        token = store.add("police102", "partner", "230102000000", "police")
        assert store.lookup(token) == User("police102", "partner", "230102000000", "police")
        store.close()


def test_users_add_partner_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    done = runner.invoke(main, [*home, "users", "add", "police102", "--role", "partner",
                                "--agency", "police", "--org-unit", "230102000000"])
    assert done.exit_code == 0, done.output
    store = UserStore.at_home(tmp_path)
    assert store.lookup(done.output.strip()) == User("police102", "partner", "230102000000",
                                                     "police")
    store.close()
    for args, says in (
        (["--role", "partner", "--org-unit", "230102000000"], "a partner needs --agency"),
        (["--role", "partner", "--agency", "police", "--org-unit", "230102001001"],
         "must be a district or the city"),
        (["--role", "chair", "--agency", "police", "--org-unit", "230102000000"],
         "for the partner role only"),
        (["--role", "partner", "--agency", "fbi", "--org-unit", "230102000000"],
         "'fbi' is not one of"),
        (["--role", "partner", "--agency", "police", "--org-unit", "12"], "--org-unit"),
    ):
        refused = runner.invoke(main, [*home, "users", "add", "x", *args])
        assert refused.exit_code == 2, refused.output
        assert says in refused.output, refused.output
    assert set(AGENCIES) >= {"police", "court", "civil_affairs"}
