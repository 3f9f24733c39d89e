"""``jiahe erase HOUSEHOLD``: crypto-shredding that keeps every count."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner

from app.bootstrap import bootstrap_embedded
from cli import privacy as cli_privacy
from events.instants import parse_instant
from privacy.crypto import ERASED
from privacy.pseudonym import household_key
from streams.clock import EventTimeClock
from streams.embedded.runtime import PSEUDONYM_SECRET
from tests.helpers import DAY, T0
from tests.privacy.conftest import AS_OF, MARK, file_bytes, personal, visit_with_notes

VICTIM = "hh-2"


def jiahe(*args: str, home: Path) -> str:
    env = {**os.environ, "JIAHE_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def erase_cli(home: Path, household: str, confirm: str | None = None) -> Any:
    """``jiahe erase`` as registered by ``cli_privacy.register`` on a group like ``jiahe``'s."""

    @click.group()
    @click.option("--home", type=click.Path(path_type=Path))
    @click.pass_context
    def main(ctx: click.Context, home: Path) -> None:
        ctx.obj = {"home": home}

    cli_privacy.register(main)
    args = ["--home", str(home), "erase", household] + ([] if confirm else ["--yes"])
    return CliRunner().invoke(main, args, input=confirm)


def ledger(home: Path, name: str) -> list[dict[str, Any]]:
    out = jiahe("ledger", name, "--format", "jsonl", "--as-of", AS_OF, home=home)
    return [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]


def counts(home: Path) -> dict[str, Any]:
    runtime = bootstrap_embedded(home)
    try:
        wh = runtime.warehouse
        return {
            "events": wh.query("SELECT type, count() FROM events GROUP BY type ORDER BY type").rows,
            "lifecycle": wh.query("SELECT count() FROM lifecycle").rows,
            "log_events": runtime.log.end_position(),
        }
    finally:
        runtime.close()


def per_district(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((r["district"], r["level"]) for r in rows)


@pytest.fixture
def home(tmp_path: Path, lines: list[str]) -> Path:
    home = tmp_path / "home"
    runtime = bootstrap_embedded(home)
    try:
        runtime.publish(lines, "test")
        runtime.process(EventTimeClock(parse_instant(AS_OF)))
    finally:
        runtime.close()
    return home


def test_erase_shreds_the_key_and_rebuilt_ledgers_show_erased_with_counts_intact(
    home: Path, lines: list[str]
) -> None:
    before = ledger(home, "warnings")
    households_before = ledger(home, "households")
    counts_before = counts(home)
    assert any(r["household_id"] == VICTIM for r in before)
    runtime = bootstrap_embedded(home)
    wrapped = runtime.log.key_of_household(VICTIM)
    secret = runtime.log.secret(PSEUDONYM_SECRET)
    runtime.close()
    assert wrapped is not None
    label = "erased:" + household_key(secret, VICTIM)

    result = erase_cli(home, VICTIM)
    assert result.exit_code == 0, result.output
    assert "data key deleted" in result.output and label in result.output
    assert "events kept in the log (counts unchanged): 5" in result.output

    # the log file: the wrapped key is gone (zeroed, WAL truncated), ciphertexts stay sealed
    raw = file_bytes(home)
    assert wrapped.wrapped not in raw and MARK.encode() not in raw
    runtime = bootstrap_embedded(home)
    try:
        assert runtime.log.key_of_household(VICTIM) is None and runtime.log.is_erased(VICTIM)
        for entry in runtime.log.read_events(0, 10_000):
            body = orjson.loads(entry.body)
            clear, problems = runtime.log.keyring.open_event(body)
            assert not problems
            if body["household_id"] == VICTIM:
                assert ERASED in clear["data"].values() or body["type"] == "petition.received"
            else:
                assert ERASED not in clear["data"].values()
    finally:
        runtime.close()

    jiahe("rebuild", home=home)
    after = ledger(home, "warnings")
    assert len(after) == len(before)
    assert per_district(after) == per_district(before)
    assert {r["household_id"] for r in after if r["household_id"].startswith("erased:")} == {label}
    assert VICTIM not in {r["household_id"] for r in after}
    strip = [{k: v for k, v in r.items() if k != "household_id"} for r in before]
    assert [{k: v for k, v in r.items() if k != "household_id"} for r in after] == strip
    households = ledger(home, "households")
    assert len(households) == len(households_before)
    assert label in {r["household_id"] for r in households}
    assert label in {r["household_id"] for r in ledger(home, "guardianship")}
    assert counts(home) == counts_before


def test_later_events_of_an_erased_household_are_processed_without_their_personal_text(
    home: Path, lines: list[str]
) -> None:
    assert erase_cli(home, VICTIM, confirm="y\n").exit_code == 0
    later = visit_with_notes(VICTIM, T0 + 20 * DAY, ["sexual_violence_signs"],
                             personal(99, "after-erase"), "230104001002")
    runtime = bootstrap_embedded(home)
    try:
        published = runtime.publish([later, lines[0], lines[10]], "test")
        # a re-delivered old event of the household is still recognised as a duplicate
        assert (published.accepted, published.duplicates) == (1, 2)
        report = runtime.process(EventTimeClock(parse_instant(AS_OF)))
        assert report.counts.processed == 1
        body = orjson.loads(runtime.log.read_events(runtime.log.end_position() - 1, 1)[0].body)
        assert body["data"]["notes"] == ERASED
        assert runtime.log.key_of_household(VICTIM) is None
    finally:
        runtime.close()
    assert b"after-erase" not in file_bytes(home)
    rows = ledger(home, "warnings")
    assert VICTIM not in {r["household_id"] for r in rows}
    assert len([r for r in rows if r["household_id"].startswith("erased:")]) >= 3


def test_erase_asks_first_and_is_idempotent(home: Path) -> None:
    refused = erase_cli(home, VICTIM, confirm="n\n")
    assert refused.exit_code != 0
    runtime = bootstrap_embedded(home)
    assert not runtime.log.is_erased(VICTIM)
    runtime.close()
    assert erase_cli(home, VICTIM).exit_code == 0
    again = erase_cli(home, VICTIM)
    assert again.exit_code == 0 and "already erased" in again.output
    assert "nothing to shred" in again.output
