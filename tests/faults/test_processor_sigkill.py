"""``jiahe process`` SIGKILLed at ≥ 20 random points, restarted each time: nothing changes.

One continuous campaign over one log (~150k lines, so that one run needs many 5,000-event
batches and several warehouse flushes): each round starts ``jiahe process --as-of T`` as
a subprocess and kills it with SIGKILL at a point drawn from the seeded RNG, either a
delay after spawn (lands in start-up, the warehouse catch-up flush or the first batches)
or a log position a few batches on (lands mid-batch, mid-flush or mid-commit; at least
five kills land so, whatever the machine's speed). A last run completes. Then, against
``jiahe replay`` of the same file:

* the lifecycle records in the log are exactly the replay's, in order (no loss, no
  duplicate; each (warning_id, transition) once);
* received = processed + duplicates + rejected, with every rejected line kept;
* the warehouse holds each event and record once, and the three ledgers equal those of a
  clean ``jiahe rebuild`` from the log;
* ``jiahe verify`` finds the hash chains intact (a kill never leaves a broken link).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.faults.harness import (
    Campaign,
    Kill,
    duplicated_transitions,
    fault_rng,
    jiahe,
    kill_count,
    sigkill,
    spawn_jiahe,
)

AS_OF = "2026-12-01T00:00:00+08:00"
LINES = 150_000
COUNTS = re.compile(r"received (\d+), (?:accepted|processed) (\d+), duplicates? (\d+), "
                    r"rejected (\d+)")


def log_value(home: Path, sql: str) -> Any:
    """One value from the live log (WAL: a reader never blocks the processor)."""
    db = sqlite3.connect(f"file:{home / 'log.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def checkpoint(home: Path, consumer: str = "processor") -> int:
    value = log_value(home, f"SELECT position FROM checkpoints WHERE consumer = '{consumer}'")
    return int(value or 0)


def counts_of(output: bytes) -> tuple[int, ...]:
    found = COUNTS.search(output.decode())
    assert found, output.decode()
    return tuple(int(n) for n in found.groups())


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from events.sample import StreamSpec, write_jsonl

    path = tmp_path_factory.mktemp("processor-kill") / "stream.jsonl"
    write_jsonl(StreamSpec(events=LINES, households=LINES // 8, seed=23,
                           at_risk_fraction=0.1), path)
    return path


BATCH = 5_000  # the processor's batch: its checkpoint moves in these steps
MID_LOG_KILLS = 5  # at least this many kills must land with the log half-processed


def wait_for_position(home: Path, proc: subprocess.Popen[bytes], target: int) -> None:
    """Until the processor's checkpoint reached ``target`` (or it exited, or 120 s passed)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and checkpoint(home) < target:
        time.sleep(0.005)


def wait_or_exit(proc: subprocess.Popen[bytes], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)


def kill_campaign(home: Path, log: Path, kills: int) -> Campaign:
    """Kill ``jiahe process`` ``kills`` times; each round's kill point comes from the RNG.

    Two kinds of kill point:

    * *after-spawn*: a delay after spawn (start-up, the warehouse catch-up flush, the
      first batch);
    * *at-position*: a log position one to three batches past the last checkpoint, then
      a short delay, so the kill lands mid-batch, mid-flush or mid-commit of a log that is
      still being worked through.

    Kill points are drawn by log position, not by wall time, so how many kills land
    mid-log does not depend on how fast this machine is (a wall-clock draw once spent the
    whole log in eight runs on a fast machine). The last rounds are forced to
    *at-position* when needed, so at least ``MID_LOG_KILLS`` land mid-log.
    """
    seed, rng = fault_rng("processor")
    campaign = Campaign("processor", seed)
    end = int(log_value(home, "SELECT MAX(position) FROM events"))
    run = 0
    while len(campaign.kills) < kills:
        run += 1
        before = checkpoint(home)
        owed = MID_LOG_KILLS - sum("mid-log" in k.phase for k in campaign.kills)
        forced = owed >= kills - len(campaign.kills)
        targeted = before < end - BATCH and (forced or rng.random() < 0.5)
        mode = "at-position" if targeted else "after-spawn"
        target = before + rng.randint(1, 3) * BATCH
        delay = rng.uniform(0.0, 0.3) if targeted else rng.uniform(0.05, 1.5)
        spawned = time.monotonic()
        proc = spawn_jiahe(home, log, "process", "--as-of", AS_OF)
        if targeted:
            wait_for_position(home, proc, min(target, end - 1))
        wait_or_exit(proc, delay)
        if not sigkill(proc):
            assert proc.returncode == 0, log.read_text()[-3000:]
            campaign.runs_completed += 1
            continue
        after = checkpoint(home)
        phase = ("log done" if after >= end else
                 "mid-log" if after > before else "before 1st commit")
        if checkpoint(home, "warehouse.events") < after:
            phase += ", warehouse behind"
        campaign.kills.append(Kill(run, round(time.monotonic() - spawned, 2), mode, before,
                                   after, phase))
    return campaign


def ledgers(home: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("warnings", "households", "guardianship"):
        text = jiahe(home, "ledger", name, "--format", "jsonl").stdout
        out[name] = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    return out


def sql_count(home: Path, statement: str) -> int:
    rows = jiahe(home, "sql", statement, "--format", "jsonl").stdout.splitlines()
    return int(next(iter(orjson.loads(rows[0]).values())))


def test_twenty_sigkills_lose_nothing_and_duplicate_nothing(
    stream_file: Path, tmp_path: Path
) -> None:
    home, log = tmp_path / "home", tmp_path / "process.log"
    reference = tmp_path / "replay.jsonl"
    replayed = counts_of(jiahe(tmp_path / "unused", "replay", str(stream_file), "--as-of",
                               AS_OF, "--warnings-out", str(reference)).stdout)
    expected = [orjson.loads(line) for line in reference.read_bytes().splitlines()]
    published = counts_of(jiahe(home, "publish", str(stream_file)).stdout)

    started = time.monotonic()
    campaign = kill_campaign(home, log, kill_count())
    jiahe(home, "process", "--as-of", AS_OF)
    print(campaign.summary(), f"in {time.monotonic() - started:.1f} s")
    for kill in campaign.kills:
        print(f"  run {kill.run:>2}: {kill.mode:<12} killed at {kill.delay_s:>5.2f} s, "
              f"processor {kill.before:>6} → {kill.after:>6} ({kill.phase})")
    mid_log = sum("mid-log" in k.phase for k in campaign.kills)
    assert mid_log >= MID_LOG_KILLS, campaign.summary()

    db = sqlite3.connect(home / "log.sqlite3")
    try:
        got = [orjson.loads(b) for (b,) in db.execute("SELECT body FROM lifecycle ORDER BY seq")]
        stages = dict(db.execute("SELECT stage, COUNT(*) FROM dead_letters GROUP BY stage"))
        log_events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        db.close()
    assert duplicated_transitions(got) == {}
    assert len(got) == len(expected) and got == expected

    # received = processed + duplicates + rejected, end to end, every reject kept
    received, accepted, duplicates, rejected = published
    assert received == replayed[0] == accepted + duplicates + rejected
    refused_later = stages.get("process", 0)
    assert stages.get("ingest", 0) == rejected
    assert (accepted - refused_later, duplicates, rejected + refused_later) == replayed[1:]
    assert log_events == accepted

    # every warning record is a row of warning_transitions, every referral record one
    # of referral_records (lifecycle keeps one row per warning, type and level)
    records = (sql_count(home, "SELECT count() FROM warning_transitions FINAL")
               + sql_count(home, "SELECT count() FROM referral_records FINAL"))
    assert records == len(expected)
    resent = (sql_count(home, "SELECT count() FROM warning_transitions")
              + sql_count(home, "SELECT count() FROM referral_records") - len(expected))
    print(f"  warehouse: {len(expected)} records; {resent} re-sent rows absorbed")
    assert sql_count(home, "SELECT count() FROM events FINAL") == accepted
    after_kills = ledgers(home)
    jiahe(home, "rebuild")
    assert ledgers(home) == after_kills
    assert len(after_kills["warnings"]) == sum(r["type"] == "warning.raised" for r in expected)
    jiahe(home, "verify")
