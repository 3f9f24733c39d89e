"""No clear personal text leaves the log: warehouse, lifecycle records, logs, CLI output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.bootstrap import bootstrap_embedded
from events.instants import parse_instant
from streams.clock import EventTimeClock
from tests.privacy.conftest import AS_OF, HOUSEHOLDS, MARK, personal_texts


def _leaks(text: str) -> list[str]:
    return [t for t in [MARK, *personal_texts()] if t in text]


def test_no_personal_text_in_the_warehouse_lifecycle_or_logs(
    tmp_path: Path, lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime = bootstrap_embedded(tmp_path)
    try:
        runtime.publish(lines, "test")
        report = runtime.process(EventTimeClock(parse_instant(AS_OF)))
        runtime.rebuild()
        runtime.erase(HOUSEHOLDS[0])
        assert report.counts.processed == len(lines)
        wh = runtime.warehouse
        columns = wh.query(
            "SELECT table, name FROM system.columns WHERE database = currentDatabase() "
            "AND type LIKE '%String%'"
        ).rows
        assert len(columns) > 20
        values: dict[tuple[str, str], set[str]] = {}
        for table, name in columns:
            rows = wh.query(f"SELECT DISTINCT toString(`{name}`) FROM `{table}`").rows
            values[(table, name)] = {str(row[0]) for row in rows}
        lifecycle = [bytes(e.body) for e in runtime.log.read_lifecycle(0, 10**6)]
    finally:
        runtime.close()
    assert any(values[("events", "event_id")])  # the warehouse was filled
    for where, found in values.items():
        assert not _leaks(" ".join(found)), where
        # pseudonymous keys only: a household_id appears in the directory alone
        if where != ("household_directory", "household_id"):
            assert not found & set(HOUSEHOLDS), where
    assert lifecycle and not _leaks(b"\n".join(lifecycle).decode())
    assert {orjson.loads(b)["type"] for b in lifecycle} >= {"warning.raised", "warning.resolved"}
    assert not _leaks(caplog.text)


def test_no_personal_text_in_the_cli_output(tmp_path: Path, lines: list[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "JIAHE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    output = ""
    for args in (["publish", str(events)], ["process", "--as-of", AS_OF], ["rebuild"],
                 ["ledger", "warnings", "--format", "jsonl", "--as-of", AS_OF],
                 ["ledger", "guardianship", "--format", "jsonl", "--as-of", AS_OF],
                 ["dlq", "--format", "jsonl"]):
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        output += done.stdout + done.stderr
    assert "hh-1" in output  # the ledgers were printed
    assert not _leaks(output)
