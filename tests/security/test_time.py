"""Time: live ingest refuses an event dated more than 10 minutes after it arrives (and
keeps it as a dead letter with that reason); a replayed file is history and is not
refused; and the ledgers' default "now" never passes the wall clock, so one event
dated far ahead cannot move everyone's windows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from cli.main import main
from events.freshness import MAX_FUTURE_MINUTES, future_refusal
from events.instants import MICROS_PER_MINUTE
from tests.api.conftest import DELIVERY_ARGS, Api, event, serve_api

USERS = {"chair102": ("chair", "230102000000")}


def _dated(org_unit: str, household: str, ahead: timedelta) -> dict[str, object]:
    at = datetime.now(UTC) + ahead
    return {**event(org_unit, household), "occurred_at": at.isoformat(timespec="seconds")}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A home into which a file with an event dated a year ahead was published (not live)."""
    home = tmp_path_factory.mktemp("time-home")
    history = home / "history.jsonl"
    history.write_bytes(b"\n".join(orjson.dumps(e) for e in (
        _dated("230102001001", "hh-time-now", -timedelta(hours=2)),
        _dated("230102001001", "hh-time-next-year", timedelta(days=365)),
    )) + b"\n")
    done = CliRunner().invoke(main, ["--home", str(home), "publish", str(history)])
    assert done.exit_code == 0 and "accepted 2" in done.output, done.output
    with serve_api(home, USERS, DELIVERY_ARGS) as server:
        yield server


def test_the_tolerance_is_ten_minutes() -> None:
    received = 1_000 * MICROS_PER_MINUTE
    assert future_refusal(received + MAX_FUTURE_MINUTES * MICROS_PER_MINUTE, received) is None
    refusal = future_refusal(received + MAX_FUTURE_MINUTES * MICROS_PER_MINUTE + 1, received)
    assert refusal is not None and "more than 10 minutes after" in refusal


def test_live_ingest_refuses_an_event_from_the_future(api: Api) -> None:
    ahead = _dated("230102001002", "hh-time-ahead", timedelta(minutes=11))
    skewed = _dated("230102001002", "hh-time-skewed", timedelta(minutes=5))
    answer = api.publish("chair102", [ahead, skewed], strict=False)
    first, second = answer["results"]
    assert first["status"] == "rejected" and "more than 10 minutes after" in first["reason"]
    assert second["status"] == "accepted"  # a clock a few minutes fast is tolerated
    db = sqlite3.connect(api.home / "log.sqlite3")
    try:
        kept = db.execute("SELECT reason FROM dead_letters WHERE event_id = ?",
                          (ahead["event_id"],)).fetchall()
        stored = db.execute("SELECT COUNT(*) FROM events WHERE event_id = ?",
                            (ahead["event_id"],)).fetchone()[0]
    finally:
        db.close()
    assert kept and "more than 10 minutes after" in kept[0][0]
    assert stored == 0


def _households(api: Api, **params: str) -> set[str]:
    response = api.call("GET", "/v1/ledgers/households", "chair102", params=params)
    assert response.status_code == 200, response.text
    return {row["household_id"] for row in response.json()["rows"]}


def test_a_far_future_event_does_not_move_the_default_now(api: Api) -> None:
    now = _households(api)
    assert "hh-time-now" in now and "hh-time-next-year" not in now
    assert "hh-time-next-year" in _households(
        api, as_of=(datetime.now(UTC) + timedelta(days=400)).isoformat())
    warnings = api.call("GET", "/v1/alerts", "chair102").json()["alerts"]
    assert "hh-time-next-year" not in {w["household_id"] for w in warnings}


def test_a_replayed_file_is_not_live(tmp_path: Path) -> None:
    ahead = tmp_path / "ahead.jsonl"
    ahead.write_bytes(orjson.dumps(_dated("230102001001", "hh-ahead", timedelta(days=30)))
                      + b"\n")
    done = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "publish", str(ahead)])
    assert done.exit_code == 0 and "accepted 1" in done.output, done.output
