"""Shared fixtures: the real Kafka broker plugin and small sample streams."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.kafka_fixtures"]


@pytest.fixture(scope="session")
def sample_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6k-line realistic stream (late, duplicate, conflicting and invalid lines included)."""
    from events.sample import StreamSpec, write_jsonl

    path = tmp_path_factory.mktemp("streams") / "sample.jsonl"
    write_jsonl(StreamSpec(events=6_000, households=800, seed=7, at_risk_fraction=0.1), path)
    return path
