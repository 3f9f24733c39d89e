"""The warehouse contract on ClickHouseWarehouse (clickhouse-connect).

Two targets:

* ``EMULATED-clickhouse-http-over-chdb`` — always: an EMULATED ClickHouse
  HTTP server (``emulated_clickhouse_http.py``, chdb behind a minimal HTTP
  front, in a child process) because no modern ClickHouse server can be
  installed here. It proves the adapter and the shared SQL, not the wire
  protocol of a real server.
* ``real-clickhouse-server`` — only when ``CLICKHOUSE_URL`` is set (e.g.
  ``http://default:@127.0.0.1:8123``); otherwise the parameter is not
  generated at all, so nothing is reported as a pass or a skip for it.

Each test gets a fresh database, dropped afterwards.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
import urllib3

from projections.warehouse.base import Warehouse
from projections.warehouse.clickhouse_backend import ClickHouseWarehouse
from tests.projections.warehouse_contract import CONTRACT_SECRET, WarehouseContract

EMULATED = "EMULATED-clickhouse-http-over-chdb"
REAL = "real-clickhouse-server"
TARGETS = [pytest.param(EMULATED, id=EMULATED)]
if os.environ.get("CLICKHOUSE_URL"):
    TARGETS.append(pytest.param(REAL, id=REAL))
SERVER_SCRIPT = Path(__file__).with_name("emulated_clickhouse_http.py")


@pytest.fixture(scope="module")
def emulated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the EMULATED server on a free 127.0.0.1 port; stop it afterwards."""
    workdir = tmp_path_factory.mktemp("emulated-clickhouse")
    with (workdir / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--data", str(workdir / "data"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            line = proc.stdout.readline().decode() if ready else ""
            if not line.startswith("LISTENING "):
                raise RuntimeError(f"emulated server did not start: {line!r}, see {stderr.name}")
            yield f"http://127.0.0.1:{int(line.split()[1])}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module", params=TARGETS)
def server_url(request: pytest.FixtureRequest) -> str:
    if request.param == REAL:
        return os.environ["CLICKHOUSE_URL"]
    url: str = request.getfixturevalue("emulated_server")
    return url


class TestClickHouseWarehouseContract(WarehouseContract):
    @pytest.fixture
    def warehouse(self, server_url: str) -> Iterator[Warehouse]:
        database = f"jiahe_contract_{uuid.uuid4().hex[:12]}"
        admin = clickhouse_connect.get_client(dsn=server_url)
        admin.command(f"CREATE DATABASE {database}")
        wh = ClickHouseWarehouse({"dsn": server_url, "database": database}, CONTRACT_SECRET)
        try:
            yield wh
        finally:
            wh.close()
            admin.command(f"DROP DATABASE IF EXISTS {database}")
            admin.close()


def test_emulated_server_speaks_enough_http(emulated_server: str) -> None:
    http = urllib3.PoolManager()
    assert http.request("GET", emulated_server + "/ping").data == b"Ok.\n"
    bad = http.request("POST", emulated_server + "/", body=b"SELEC 1")
    assert bad.status == 500 and bad.headers["X-ClickHouse-Exception-Code"] == "62"
    rows = http.request("GET", emulated_server + "/?query=SELECT+41%2B1+AS+x+FORMAT+JSONEachRow")
    assert rows.data == b'{"x":42}\n'
    assert rows.headers["X-ClickHouse-Server-Display-Name"] == "EMULATED-chdb"


def test_emulated_server_round_trips_native_inserts_and_queries(emulated_server: str) -> None:
    """clickhouse-connect's default paths (Native both ways), not only Arrow."""
    client = clickhouse_connect.get_client(dsn=emulated_server)
    try:
        client.command("CREATE DATABASE IF NOT EXISTS native_check")
        client.command(
            "CREATE OR REPLACE TABLE native_check.t (k String, n Nullable(Int64), "
            "a Array(LowCardinality(String))) ENGINE = MergeTree ORDER BY k"
        )
        rows: list[list[Any]] = [["x", 1, ["p", "q"]], ["y", None, []]]
        client.insert("native_check.t", rows, column_names=["k", "n", "a"])
        got = client.query("SELECT k, n, a FROM native_check.t ORDER BY k").result_rows
        assert [list(r) for r in got] == rows
    finally:
        client.command("DROP DATABASE IF EXISTS native_check")
        client.close()
