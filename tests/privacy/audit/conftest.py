"""A small processed home (log, warehouse, audit trail), copied fresh for every test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from access.users import User, UserStore
from app.bootstrap import bootstrap_embedded
from events.sample import StreamSpec, write_jsonl
from streams.clock import EventTimeClock

AUDIT_ROWS = 8


def build_home(home: Path, stream: Path) -> None:
    runtime = bootstrap_embedded(home, batch_size=500, flush_rows=500)
    try:
        runtime.publish(stream.read_bytes().splitlines(), "file")
        runtime.process(EventTimeClock())
    finally:
        runtime.close()
    users = UserStore.at_home(home)
    try:
        users.add("chair102", "chair", "230102000000")
        chair = User("chair102", "chair", "230102000000")
        for i in range(AUDIT_ROWS):
            users.audit(chair, "ledgers.warnings", {"district": "230102000000", "page": i}, i)
    finally:
        users.close()


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tamper-stream") / "sample.jsonl"
    write_jsonl(StreamSpec(events=2_000, households=200, seed=11, at_risk_fraction=0.2), path)
    return path


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, sample_file: Path) -> Path:
    home = tmp_path_factory.mktemp("tamper-template") / "home"
    build_home(home, sample_file)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "home"
    shutil.copytree(template, copy, symlinks=True)  # chdb links metadata → store
    yield copy
