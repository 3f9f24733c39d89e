"""The embedded warehouse: chdb (the ClickHouse engine in-process).

Constraints of chdb 4.4 (measured, not assumed):

* one chdb engine per *process*: while a connection on path A is open,
  opening path B in the same process fails ("EmbeddedServer already
  initialized"); close the first warehouse before opening another path.
* one *process* per chdb path: a second process opening the same directory
  is refused ("Cannot lock file …/status. Another server instance in same
  directory is already running"), so the embedded runtime opens the
  warehouse from a single process (the processor), and other readers
  (``jiahe sql``, the API) go through that process or run after it.
* one connection runs one statement at a time, so every call takes a lock;
  the warehouse is safe to share between threads but serialises them.

Batches are handed to chdb as Arrow tables through its ``Python(name)``
table function, which reads the table in place (measured on 300k events:
0.4 s against 0.6–1.1 s for serialising an Arrow IPC stream into
``send_insert``). chdb resolves ``name`` among the calling frame's locals,
so the table sits in a local with a name nothing else uses.

Memory: chdb's allocator (its own jemalloc, apart from Python's malloc) keeps
freed pages for ``dirty_decay_ms`` (5 s in chdb's build) before handing them
back. An insert allocates ~100+ MB that is free again a moment later, and the
processor inserts every second or two, so those pages never went back: they
stayed in the process's RSS. The processor therefore calls
:meth:`ChdbWarehouse.release_memory` (``SYSTEM JEMALLOC PURGE``) after each
flush. Not a global ``dirty_decay_ms:0``: that took the same memory off the
processor but doubled the dashboard queries' latency (every query faulting
fresh pages in: city KPIs 53 → 117 ms p95 at 10M events, quiet machine).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import chdb
import pyarrow as pa

from projections import schema
from projections.warehouse.sqlbase import SqlWarehouse, sql_string


class ChdbWarehouse(SqlWarehouse):
    """Warehouse on a chdb data directory (``path=None``: in memory, for tests)."""

    #: Slots of the table of directory keys remembered as written (``WrittenKeys``).
    #: chdb runs inside the processor, whose memory budget the table shares: 2**22
    #: slots are 32 MB, enough for a million households with ~3% of them re-sent (a
    #: set of key strings bounded to 2**17 keys re-sent nearly every household's row).
    #: Forgetting a key only re-sends its row (ReplacingMergeTree, read FINAL).
    DIRECTORY_CACHE_LIMIT = 1 << 22

    def __init__(self, path: Path | None, pseudonym_secret: bytes) -> None:
        super().__init__(pseudonym_secret)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = chdb.connect(":memory:" if path is None else str(path))

    def _execute(self, sql: str) -> None:
        with self._lock:
            self._conn.query(sql, "CSV")

    def _insert(self, table: str, data: pa.Table) -> None:
        """One Arrow batch into ``table``; its materialized views run side by side.

        ``events`` feeds five pre-aggregated tables (projections.schema): run one after
        the other they halved the API's inline ingest (2.4k vs 4.6k events/s in batches
        of 500); ``parallel_view_processing`` brought it back.
        """
        jiahe_arrow_batch = data  # noqa: F841 - read by name by chdb's Python() below
        columns = schema.column_list(table)
        with self._lock:
            self._conn.query(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(jiahe_arrow_batch)"
                " SETTINGS parallel_view_processing = 1"
            )

    def _select(self, sql: str) -> pa.Table:
        with self._lock:
            result: pa.Table = self._conn.query(sql, "ArrowTable")
        return result

    def purge_erased(self, household_ids: Iterable[str]) -> None:
        """Copy the directory without these households into a new table, swap the two
        and drop the old one at once (``SYNC``): its parts' files are gone when this
        returns. A mutation would leave the replaced parts on disk, and chdb's
        background cleanup was not seen to remove them (chdb 4.4: still there minutes
        later, even with ``old_parts_lifetime = 0``). Held under the lock, so no
        insert lands in the old table between the copy and the swap.
        """
        keys = sorted({self._key_of(h) for h in household_ids})
        if not keys:
            return
        self._directory_written.difference_update(keys)
        listed = ", ".join(sql_string(k) for k in keys)
        table, kept = schema.DIRECTORY, f"{schema.DIRECTORY}_kept"
        with self._lock:
            self._conn.query(f"DROP TABLE IF EXISTS {kept} SYNC")
            self._conn.query(f"CREATE TABLE {kept} AS {table}")
            self._conn.query(f"INSERT INTO {kept} SELECT * FROM {table} "
                             f"WHERE household_key NOT IN ({listed})")
            self._conn.query(f"EXCHANGE TABLES {table} AND {kept}")
            self._conn.query(f"DROP TABLE {kept} SYNC")

    def release_memory(self) -> None:
        """Hand the pages chdb's allocator freed back to the OS now (module docstring)."""
        self._execute("SYSTEM JEMALLOC PURGE")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
