"""The composition roots: default adapters under the home, swapped ones by parameter,
and the runtime policies every face gets from them (``app.bootstrap``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from app.bootstrap import (
    PackPolicyError,
    bootstrap_embedded,
    bootstrap_kafka,
    chdb_warehouse,
    check_worker_pack,
)
from app.bootstrap_api import PACK_ON_KAFKA_API, bootstrap_api
from app.services import InlineProcessing
from events.errors import JiaheError
from projections.ledgers import warning_ledger
from projections.warehouse.base import Warehouse
from rules.pack import RulePackError
from streams.clock import WallClock
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE, PSEUDONYM_SECRET, WAREHOUSE_DIR, EmbeddedRuntime
from streams.kafka.settings import KafkaSettings, WorkerSettings
from streams.kafka.warehouse import WarehouseConfigError
from tests.api.conftest import event

SURGE_PACK = Path(__file__).resolve().parents[2] / "rules" / "packs" / "surge-example.yaml"


def red_petitions(*households: str) -> list[bytes]:
    """One red warning per household (the default pack's sexual-assault petition)."""
    return [orjson.dumps(event("230102001001", household)) for household in households]


@pytest.fixture
def closing() -> Iterator[list[EmbeddedRuntime]]:
    """Runtimes a test opened, closed after it (chdb: one open path at a time)."""
    opened: list[EmbeddedRuntime] = []
    yield opened
    for runtime in opened:
        runtime.close()


def test_the_default_adapters_live_under_the_home(
    tmp_path: Path, closing: list[EmbeddedRuntime]
) -> None:
    home = tmp_path / "home"
    runtime = bootstrap_embedded(home)
    closing.append(runtime)
    runtime.publish(red_petitions("hh-1"), source="test")
    runtime.process(WallClock())

    assert runtime.log.path == home / LOG_FILE
    assert (home / WAREHOUSE_DIR).is_dir()
    assert [r["household_id"] for r in warning_ledger(runtime.warehouse)] == ["hh-1"]


def test_a_swapped_log_is_the_one_written(
    tmp_path: Path, closing: list[EmbeddedRuntime]
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    runtime = bootstrap_embedded(home, log=SqliteLog(elsewhere / "other.sqlite3"))
    closing.append(runtime)
    runtime.publish(red_petitions("hh-1", "hh-2"), source="test")
    runtime.process(WallClock(), project=False)

    assert not (home / LOG_FILE).exists()
    assert runtime.log.path == elsewhere / "other.sqlite3"
    assert runtime.log.end_position() == 2


def test_a_swapped_warehouse_is_opened_lazily_with_the_logs_secret(
    tmp_path: Path, closing: list[EmbeddedRuntime]
) -> None:
    home, other = tmp_path / "home", tmp_path / "other-warehouse"
    secrets: list[bytes] = []

    def open_other(secret: bytes) -> Warehouse:
        secrets.append(secret)
        return chdb_warehouse(other)(secret)

    runtime = bootstrap_embedded(home, warehouse=open_other)
    closing.append(runtime)
    runtime.publish(red_petitions("hh-1"), source="test")
    runtime.process(WallClock(), project=False)
    assert secrets == []  # processing alone leaves the warehouse closed

    runtime.project()
    assert secrets == [runtime.log.secret(PSEUDONYM_SECRET)]
    assert [r["household_id"] for r in warning_ledger(runtime.warehouse)] == ["hh-1"]
    assert other.is_dir() and not (home / WAREHOUSE_DIR).exists()
    assert len(secrets) == 1  # opened once


def test_a_bad_pack_is_refused_before_the_home_is_touched(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: 3\n")
    with pytest.raises(RulePackError):
        bootstrap_embedded(tmp_path / "home", pack=bad)
    assert not (tmp_path / "home").exists()


def test_the_kafka_worker_takes_surge_rules_and_refuses_a_bad_pack(tmp_path: Path) -> None:
    """Surge rules run on the worker's surge desk (tests/streams/kafka/test_runtimes_agree)."""
    check_worker_pack(SURGE_PACK)
    check_worker_pack(None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    settings = WorkerSettings(bootstrap="127.0.0.1:9", partitions=1, data_dir=tmp_path / "faust",
                              pack=bad)
    with pytest.raises(RulePackError):
        bootstrap_kafka(settings, home=tmp_path / "home")
    assert not (tmp_path / "faust").exists()  # refused before anything was built


def test_the_kafka_worker_refuses_a_warehouse_it_cannot_name(tmp_path: Path) -> None:
    for spec, why in (("chdb", "expected none, chdb:PATH or clickhouse:URL"),
                      ("mysql:db", "unknown kind 'mysql'")):
        settings = WorkerSettings(bootstrap="127.0.0.1:9", partitions=1,
                                  data_dir=tmp_path / "faust", warehouse=spec)
        with pytest.raises(WarehouseConfigError) as refused:
            bootstrap_kafka(settings, home=tmp_path / "home")
        assert str(refused.value) == f"--warehouse {spec!r}: {why}"
        assert isinstance(refused.value, JiaheError)


def test_the_api_on_kafka_takes_no_pack(tmp_path: Path) -> None:
    with pytest.raises(PackPolicyError, match="^" + PACK_ON_KAFKA_API.replace("`", ".") + "$"):
        bootstrap_api(tmp_path / "home", kafka=KafkaSettings("127.0.0.1:9"),
                      pack=SURGE_PACK)
    assert not (tmp_path / "home").exists()


def test_the_api_over_a_bootstrapped_runtime_answers(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other-warehouse"
    runtime = bootstrap_embedded(home, warehouse=chdb_warehouse(other))
    services = bootstrap_api(home, runtime=runtime, tick_s=None)
    assert services.runtime is runtime
    assert isinstance(services.ingest_path, InlineProcessing) and services.kafka is None
    token = services.users.add("chair", "chair", "230102000000")
    auth = {"Authorization": f"Bearer {token}"}

    with TestClient(create_app(services)) as client:  # the lifespan starts and closes it
        published = client.post("/v1/events", headers=auth,
                                json=[event("230102001001", "hh-api")])
        assert published.status_code == 200, published.text
        assert published.json()["accepted"] == 1
        ledger = client.get("/v1/ledgers/warnings", headers=auth)
        assert ledger.status_code == 200, ledger.text
        assert [r["household_id"] for r in ledger.json()["rows"]] == ["hh-api"]
        assert client.get("/v1/ledgers/warnings").status_code == 401

    assert other.is_dir() and not (home / WAREHOUSE_DIR).exists()
