"""Shared fixtures: the real Kafka broker plugin and small sample streams."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.kafka_fixtures"]

# No test may send anything off the loopback, not even a DNS query for a host name
# that a fuzzer put in a webhook URL: servers and stores started by tests inherit this.
os.environ["JIAHE_WEBHOOK_DNS"] = "off"


@pytest.fixture(scope="session")
def sample_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6k-line realistic stream (late, duplicate, conflicting and invalid lines included)."""
    from events.sample import StreamSpec, write_jsonl

    path = tmp_path_factory.mktemp("streams") / "sample.jsonl"
    write_jsonl(StreamSpec(events=6_000, households=800, seed=7, at_risk_fraction=0.1), path)
    return path
