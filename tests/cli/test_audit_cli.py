"""``jiahe audit break-glass [--since T]``: every grant, its reason, and the reads under it."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from access.break_glass import BreakGlass
from access.users import User, UserStore
from cli.main import main
from events.instants import MICROS_PER_HOUR, format_instant, now_micros

CHAIR = User("chair103", "chair", "230103000000")


def _home_with_grants(home: Path) -> tuple[str, str]:
    """Two grants: one given 6 hours ago (expired, read twice), one now (live)."""
    store = UserStore.at_home(home)
    try:
        grants = BreakGlass.of(store)
        now = now_micros()
        old = grants.grant(CHAIR, "hh-1", "230102001001", "first reason", now - 6 * MICROS_PER_HOUR)
        for action in ("alerts.history", "consent.read"):
            grants.read(store, CHAIR, "hh-1", action, now - 5 * MICROS_PER_HOUR)
        new = grants.grant(CHAIR, "hh-2", "230104002003", "second reason", now)
    finally:
        store.close()
    return old.id, new.id


def _rows(home: Path, *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(main, ["--home", str(home), "audit", "break-glass",
                                       "--format", "jsonl", *args])
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.output.splitlines()]


def test_lists_grants_oldest_first_with_status_reason_and_reads(tmp_path: Path) -> None:
    old, new = _home_with_grants(tmp_path)
    rows = _rows(tmp_path)
    assert [(r["grant_id"], r["status"], r["reads"], r["reason"]) for r in rows] == [
        (old, "expired", 2, "first reason"), (new, "live", 0, "second reason")]
    assert rows[0]["user"] == "chair103" and rows[0]["household_id"] == "hh-1"
    assert rows[0]["owner_org_unit"] == "230102001001"


def test_since_keeps_the_later_grants(tmp_path: Path) -> None:
    _, new = _home_with_grants(tmp_path)
    since = format_instant(now_micros() - MICROS_PER_HOUR)
    assert [r["grant_id"] for r in _rows(tmp_path, "--since", since)] == [new]


def test_table_and_usage_errors(tmp_path: Path) -> None:
    _home_with_grants(tmp_path)
    table = CliRunner().invoke(main, ["--home", str(tmp_path), "audit", "break-glass"])
    assert table.exit_code == 0 and "2 rows" in table.output
    csv = CliRunner().invoke(main, ["--home", str(tmp_path), "audit", "break-glass",
                                    "--format", "csv"])
    assert csv.output.splitlines()[0].startswith("grant_id,granted_at,expires_at,status")
    assert csv.output.splitlines()[2].endswith(",second reason")
    bad = CliRunner().invoke(main, ["--home", str(tmp_path), "audit", "break-glass",
                                    "--since", "2026-01-01T00:00:00"])
    assert bad.exit_code == 2 and "offset" in bad.output
    empty = CliRunner().invoke(main, ["--home", str(tmp_path / "nowhere"), "audit",
                                      "break-glass"])
    assert empty.exit_code == 1 and "no user store" in empty.output
