"""The composition roots of the two runtimes: which adapters each runs on, decided here.

Every face gets its runtime from here: the CLI, the API server (through
``app.bootstrap_api``), the Kafka worker and the tests. Each adapter is a parameter with
a default under the home (the SQLite log, the chdb warehouse, the built-in rule pack),
so a test or a deployment swaps one by passing it, and nothing below this module
chooses an adapter for itself. Policies that belong to a runtime rather than to a face
live here too, so that every face applies them the same way (a worker checks its pack
whether the CLI or a test starts it).

* :func:`bootstrap_embedded`: an :class:`EmbeddedRuntime` of one home.
* :func:`bootstrap_kafka`: a Kafka worker (faust app, its runtime and warehouse sink).

This module imports neither the API's services nor faust at load, so that a worker
process (``python -m cli.kafka worker``) stays as small as its own work needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from events.errors import JiaheError
from projections.sink import WarehouseSink
from projections.warehouse.base import Warehouse
from rules.engine import Engine
from rules.pack import DEFAULT_PACK_PATH, load_pack
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import (
    LOG_FILE,
    WAREHOUSE_DIR,
    EmbeddedRuntime,
    WarehouseFactory,
)
from streams.kafka.settings import WorkerSettings
from streams.kafka.warehouse import open_sink

if TYPE_CHECKING:
    from streams.kafka.app import JiaheApp, WorkerRuntime


class PackPolicyError(JiaheError):
    """A rule pack the runtime it was given to cannot run."""


def chdb_warehouse(path: Path) -> WarehouseFactory:
    """Opens a chdb warehouse at ``path`` (the default: ``HOME/warehouse``)."""

    def open_chdb(pseudonym_secret: bytes) -> Warehouse:
        # chdb is loaded only when a warehouse is opened: a process that only publishes
        # or processes does not pay its start-up time and memory.
        from projections.warehouse.chdb_backend import ChdbWarehouse

        return ChdbWarehouse(path, pseudonym_secret=pseudonym_secret)

    return open_chdb


def bootstrap_embedded(
    home: Path,
    *,
    pack: Path | None = None,
    log: SqliteLog | None = None,
    warehouse: WarehouseFactory | None = None,
    batch_size: int | None = None,
    flush_rows: int | None = None,
) -> EmbeddedRuntime:
    """The embedded runtime of ``home``.

    Defaults: the log ``HOME/log.sqlite3``, a chdb warehouse in ``HOME/warehouse``
    (opened on first use), the built-in rule pack, the runtime's batch sizes
    (``EmbeddedRuntime``; a ``batch_size`` given is every batch's size). The pack is
    read first, so that a bad pack leaves no log open behind it.
    """
    # The log refuses a repeated event_id at publish: its processor keeps no seen ids.
    engine = Engine(load_pack(pack or DEFAULT_PACK_PATH), unique_ids=True)
    home.mkdir(parents=True, exist_ok=True)
    return EmbeddedRuntime(
        home,
        log if log is not None else SqliteLog(home / LOG_FILE),
        engine,
        warehouse if warehouse is not None else chdb_warehouse(home / WAREHOUSE_DIR),
        batch_size=batch_size,
        flush_rows=flush_rows,
    )


@dataclass(frozen=True)
class KafkaWorker:
    """A built worker: run it with ``streams.kafka.worker.run_worker``."""

    settings: WorkerSettings
    app: JiaheApp
    runtime: WorkerRuntime


def check_worker_pack(pack: Path | None) -> None:
    """The worker's pack, loaded before the worker starts: a bad pack is refused before
    the broker is asked anything. Every rule kind runs on the worker (district surge
    rules on its surge desk, ``streams.kafka.surges``)."""
    load_pack(pack or DEFAULT_PACK_PATH)


def bootstrap_kafka(
    settings: WorkerSettings,
    *,
    home: Path,
    sink: WarehouseSink | None = None,
) -> KafkaWorker:
    """A Kafka worker: its pack checked (:func:`check_worker_pack`), its app built.

    ``sink`` swaps the warehouse the worker projects into (default: the one
    ``settings.warehouse`` names, ``none`` meaning no warehouse; a chdb or ClickHouse
    one pseudonymises with the secret of ``home``).
    """
    # faust is heavy (about half a second to import): only a worker process loads it.
    from streams.kafka.app import build_app

    check_worker_pack(settings.pack)
    if sink is None:
        sink = open_sink(settings.warehouse, home)
    app, runtime = build_app(settings, sink)
    return KafkaWorker(settings, app, runtime)
