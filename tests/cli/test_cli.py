"""The command-line contract of DESIGN.md, driven as a user would (real processes)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from events.catalog import EVENT_TYPES
from tests.helpers import petition, visit

JIAHE = [sys.executable, "-m", "cli.main"]


def jiahe(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JIAHE_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run([*JIAHE, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"jiahe {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def test_replay_writes_lifecycle_records_and_reports_rejects_with_exit_0(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        visit("hh-1", "2026-03-01T10:00:00+08:00", ["injury_observed"]),
        "{not json",
        petition("hh-2", "2026-03-01T10:00:00", category="other"),  # no offset
    ]
    events.write_text("\n".join(lines) + "\n")
    out = tmp_path / "warnings.jsonl"
    done = jiahe("replay", str(events), "--warnings-out", str(out),
                 "--as-of", "2026-03-03T00:00:00+08:00", home=tmp_path / "h")
    assert "received 3, processed 1, duplicates 0, rejected 2" in done.stdout
    assert "occurred_at" in done.stdout and "not valid JSON" in done.stdout
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["type"] for r in records] == ["warning.raised", "warning.escalated"]
    assert records[1]["at"] == "2026-03-02T02:00:00Z"


def test_replay_of_a_missing_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    done = jiahe("replay", str(tmp_path / "nope.jsonl"), "--warnings-out", str(tmp_path / "o"),
                 home=tmp_path / "h", check=False)
    assert done.returncode == 2
    assert "does not exist" in done.stderr


def test_an_as_of_without_offset_is_refused_with_a_hint(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(visit("hh-1", "2026-03-01T10:00:00+08:00", []) + "\n")
    done = jiahe("replay", str(events), "--warnings-out", str(tmp_path / "o"),
                 "--as-of", "2026-03-01T00:00:00", home=tmp_path / "h", check=False)
    assert done.returncode == 2
    assert "offset" in done.stderr


def test_publish_process_ledger_and_sql_on_the_embedded_runtime(
    tmp_path: Path, sample_stream: Path
) -> None:
    home = tmp_path / "home"
    published = jiahe("publish", str(sample_stream), home=home)
    assert "received 6000" in published.stdout and "rejected" in published.stdout
    processed = jiahe("process", "--as-of", "2026-11-25T00:00:00+08:00", home=home)
    assert "clock: event time" in processed.stdout
    ledger = jiahe("ledger", "warnings", "--format", "jsonl", home=home)
    rows = [orjson.loads(line) for line in ledger.stdout.splitlines()]
    assert rows and {"warning_id", "status", "handling_level", "district"} <= set(rows[0])
    district = rows[0]["district"][:6]
    scoped = jiahe("ledger", "warnings", "--district", district, "--format", "jsonl", home=home)
    scoped_rows = [orjson.loads(line) for line in scoped.stdout.splitlines()]
    assert scoped_rows and all(r["district"].startswith(district) for r in scoped_rows)
    assert len(scoped_rows) < len(rows)
    households = jiahe("ledger", "households", "--format", "csv", home=home)
    table = list(csv.DictReader(io.StringIO(households.stdout)))
    assert table and "petitions_30d" in table[0]
    counted = jiahe("sql", "SELECT count() AS n FROM events FINAL", "--format", "jsonl", home=home)
    assert orjson.loads(counted.stdout)["n"] == int(
        published.stdout.split("accepted ")[1].split(",")[0]
    )
    dead = jiahe("dlq", home=home)
    assert "ingest" in dead.stdout


def test_a_bad_sql_statement_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    done = jiahe("sql", "SELECT nope FROM nowhere", home=tmp_path / "h", check=False)
    assert done.returncode == 1
    assert "query failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_schema_export_writes_one_json_schema_per_event_type(tmp_path: Path) -> None:
    jiahe("schema", "export", str(tmp_path / "schemas"), home=tmp_path / "h")
    files = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert len(files) == len(EVENT_TYPES)
    schema = orjson.loads((tmp_path / "schemas" / "petition.received.schema.json").read_bytes())
    assert "urgent" in orjson.dumps(schema).decode()


def test_demo_runs_end_to_end_and_refuses_a_home_holding_other_data(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    summary = tmp_path / "summary.json"
    done = jiahe("demo", "--events", "4000", "--households", "600",
                 "--summary-json", str(summary), home=home)
    assert "open warnings by district and level" in done.stdout
    assert "道里区" in done.stdout
    data = orjson.loads(summary.read_bytes())
    published = data["published"]
    assert published["received"] == 4000
    assert published["received"] == (
        published["accepted"] + published["duplicates"] + published["rejected"]
    )
    again = jiahe("demo", "--events", "4000", "--households", "600",
                  "--summary-json", str(summary), home=home)
    assert orjson.loads(summary.read_bytes()) == data, "same seed, same result"
    assert "道里区" in again.stdout
    other = tmp_path / "other"
    jiahe("publish", str(home / "demo-events.jsonl"), home=other)
    refused = jiahe("demo", "--events", "100", home=other, check=False)
    assert refused.returncode == 1
    assert "did not create" in refused.stderr
    assert (other / "log.sqlite3").exists()


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_ledgers_of_an_empty_home_print_no_rows(tmp_path: Path, fmt: str) -> None:
    done = jiahe("ledger", "guardianship", "--format", fmt, home=tmp_path / "empty")
    assert "Traceback" not in done.stderr


def test_worker_refuses_a_bad_pack_before_it_starts(tmp_path: Path) -> None:
    """A pack that does not load is named before the broker is asked anything."""
    pack = tmp_path / "bad.yaml"
    pack.write_text("rules: []\n")
    done = jiahe("worker", "--bootstrap", "127.0.0.1:9", "--pack", str(pack),
                 home=tmp_path / "h", check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "invalid rule pack" in done.stderr.lower()
