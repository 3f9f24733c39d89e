"""The Faust agent peer computes what jiahe computes, on a real broker.

A peer that is fast because it skips work would make the ratio meaningless: its
lifecycle records (after the event-time deadlines) must equal ``Replay``'s, and its
dead letters the input ``Replay`` rejects.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from events.sample import StreamSpec, write_jsonl
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.streams.kafka.test_worker import (
    BAD_LINES,
    expected_from,
    publish,
    read_all,
    warnings_by_id,
)

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

AS_OF = "2026-12-01T00:00:00+08:00"


def test_faust_agent_peer_matches_replay(kafka_broker: KafkaBroker, kafka_topic_prefix: str,
                                         tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_jsonl(StreamSpec(events=2500, households=250, seed=11, at_risk_fraction=0.2), path)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()] + BAD_LINES
    expected = expected_from(lines, AS_OF)
    escalated = [r for r in expected.records.values() if r["type"] == "warning.escalated"]
    assert len(expected.records) > 50 and escalated and len(expected.rejected) > 5

    bootstrap = kafka_broker.bootstrap
    topics = Topics.with_prefix(kafka_topic_prefix)
    create_topic_set(bootstrap, topics, partitions=4)
    publish(bootstrap, topics.events, lines)
    log = (tmp_path / "peer.log").open("wb")
    peer = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_peer", "--bootstrap", bootstrap,
         "--topic-prefix", kafka_topic_prefix, "--app-id", f"{kafka_topic_prefix}peer",
         "--data-dir", str(tmp_path / "peer"), "--as-of", AS_OF],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        got: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline and peer.poll() is None:
            got = warnings_by_id(bootstrap, topics.warnings)
            if len(got) >= len(expected.records):
                break
            time.sleep(2)
        time.sleep(2)  # anything extra would arrive now
        got = warnings_by_id(bootstrap, topics.warnings)
        letters = read_all(bootstrap, topics.dlq)
    finally:
        peer.terminate()
        peer.wait(timeout=60)
        log.close()
    logs = (tmp_path / "peer.log").read_text(errors="replace")[-4000:]
    assert "Crashed" not in logs, logs
    assert set(got) == set(expected.records), logs
    assert got == expected.records
    assert {m.value for m in letters} == expected.rejected
    assert all(dict(m.headers)["reason"] for m in letters)
