"""The worker's optional warehouse: ``none``, ``chdb:PATH`` or ``clickhouse:URL``.

Optional because the Kafka runtime's job is warnings; projections can always be rebuilt
from the topics. When one is named, rows go through ``projections.sink.WarehouseSink``
(batched inserts; the warehouse's replacing engines absorb re-sent rows), and the worker
flushes it before it writes state, so a crash never leaves state ahead of the warehouse.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from events.errors import JiaheError
from privacy.pseudonym import deployment_secret
from projections.sink import WarehouseSink
from projections.warehouse.base import Warehouse

SECRET_FILE = "pseudonym.key"
#: The worker flushes explicitly once per batch; the sink must never flush on its own.
NEVER_AUTOFLUSH = 1 << 40


class WarehouseConfigError(JiaheError):
    """A warehouse spec that names no warehouse jiahe knows how to open."""


def pseudonym_secret(home: Path) -> bytes:
    """The deployment's (``privacy.pseudonym.deployment_secret``), else
    ``HOME/pseudonym.key`` (created once, mode 0600).

    The secret must not change between runs, or every pseudonymous key would.
    """
    deployed = deployment_secret()
    if deployed is not None:
        return deployed
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def open_sink(spec: str, home: Path) -> WarehouseSink | None:
    """The sink named by ``spec``, schema ensured; None for ``none``."""
    kind, _, target = spec.partition(":")
    if kind == "none":
        return None
    if not target:
        raise WarehouseConfigError(f"--warehouse {spec!r}: expected none, chdb:PATH or "
                                   "clickhouse:URL")
    if kind not in ("chdb", "clickhouse"):
        raise WarehouseConfigError(f"--warehouse {spec!r}: unknown kind {kind!r}")
    secret = pseudonym_secret(home)
    # Each backend imports its client library (chdb, clickhouse_connect) at load, and
    # those are heavy: a worker loads only the one it was told to use.
    if kind == "chdb":
        from projections.warehouse.chdb_backend import ChdbWarehouse

        warehouse: Warehouse = ChdbWarehouse(Path(target), secret)
    else:
        from projections.warehouse.clickhouse_backend import ClickHouseWarehouse

        warehouse = ClickHouseWarehouse(target, secret)
    warehouse.ensure_schema()
    return WarehouseSink(warehouse, max_rows=NEVER_AUTOFLUSH)
