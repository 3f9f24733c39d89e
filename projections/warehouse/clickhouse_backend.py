"""The server warehouse: ClickHouse through clickhouse-connect (Kafka runtime).

Same DDL and ledger SQL as the embedded chdb warehouse; only transport
differs: batches travel as Arrow (``insert_arrow``) and results come back as
Arrow (``query_arrow``), so both backends convert results to Python the same
way (``sqlbase.arrow_to_result``).

The client keeps one HTTP session; clickhouse-connect refuses concurrent
queries in a session, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import clickhouse_connect
import pyarrow as pa

from projections.warehouse.sqlbase import SqlWarehouse


class ClickHouseWarehouse(SqlWarehouse):
    """Warehouse on a ClickHouse server: a DSN (``http://user:pw@host:8123/db``) or
    ``clickhouse_connect.get_client`` keyword arguments."""

    def __init__(
        self, url_or_client_kwargs: str | Mapping[str, Any], pseudonym_secret: bytes
    ) -> None:
        super().__init__(pseudonym_secret)
        if isinstance(url_or_client_kwargs, str):
            self._client = clickhouse_connect.get_client(dsn=url_or_client_kwargs)
        else:
            self._client = clickhouse_connect.get_client(**dict(url_or_client_kwargs))
        self._lock = threading.Lock()

    def _execute(self, sql: str) -> None:
        with self._lock:
            self._client.command(sql)

    def _insert(self, table: str, data: pa.Table) -> None:
        # insert_arrow names the table's columns, so ``offset`` needs no care here
        with self._lock:
            self._client.insert_arrow(table, data)

    def _select(self, sql: str) -> pa.Table:
        with self._lock:
            result: pa.Table = self._client.query_arrow(sql, use_strings=True)
        return result

    def close(self) -> None:
        with self._lock:
            self._client.close()
