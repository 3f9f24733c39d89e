"""Shared implementation of the Warehouse port on top of three primitives.

Backends differ only in how a statement is executed and how an Arrow table
travels (chdb in-process, clickhouse-connect over HTTP); everything that
decides *what* is stored — DDL, row shaping, pseudonymisation, lifecycle
enrichment, reset — lives here once, so the two cannot drift apart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar

import pyarrow as pa

from privacy.pseudonym import Pseudonymizer
from projections import schema
from projections.warehouse.base import QueryResult
from projections.warehouse.rows import (
    RAISED,
    RaiseInfo,
    directory_table,
    event_table,
    is_referral,
    raise_info,
    referral_table,
    sql_string,
    warning_tables,
)
from projections.warehouse.written_keys import WrittenKeys

T = TypeVar("T")
#: Events converted to Arrow at a time within one insert (``SqlWarehouse.write_events``).
EVENT_SLICE_ROWS = 20_000


def arrow_to_result(table: pa.Table) -> QueryResult:
    """Arrow → plain Python rows (same conversion for every backend)."""
    columns = tuple(table.column_names)
    if not columns:
        return QueryResult((), [])
    values = [table.column(i).to_pylist() for i in range(len(columns))]
    return QueryResult(columns, list(zip(*values, strict=True)))


class SqlWarehouse(ABC):
    """A Warehouse whose subclasses supply ``_execute``, ``_insert`` and ``_select``."""

    #: Slots of the table of directory keys remembered as written (``WrittenKeys``: 8 B
    #: each, grown as households come; forgetting a key only costs a re-send).
    DIRECTORY_CACHE_LIMIT = 1 << 23
    #: Tables with fewer rows than this are merged whole by ``compact``: a bounded cost
    #: (under a second a table), and their reads stay on one part.
    COMPACT_WHOLE_BELOW_ROWS = 200_000
    #: Plain ``OPTIMIZE`` rounds ``compact`` runs on one table (each merges one selection).
    COMPACT_ROUNDS = 8
    #: Seconds without an insert after which background merges join all the parts of a
    #: table ``compact`` covers (``_merge_when_quiet``).
    MERGE_WHEN_QUIET_S = 600

    def __init__(self, pseudonym_secret: bytes) -> None:
        self._key_of = Pseudonymizer(pseudonym_secret)
        self._directory_written = WrittenKeys(self.DIRECTORY_CACHE_LIMIT)

    @abstractmethod
    def _execute(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, DELETE, TRUNCATE)."""

    @abstractmethod
    def _insert(self, table: str, data: pa.Table) -> None:
        """Insert an Arrow table whose columns match ``schema.TABLE_COLUMNS[table]``."""

    @abstractmethod
    def _select(self, sql: str) -> pa.Table:
        """Run a read statement and return its result as Arrow."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def household_key(self, household_id: str) -> str:
        return self._key_of(household_id)

    def ensure_schema(self) -> None:
        for statement in schema.ddl():
            self._execute(statement)
        for view, table in schema.OBSOLETE_AGGREGATES:  # stop feeding what no read uses
            self._execute(f"DROP VIEW IF EXISTS {view}")
            self._execute(f"DROP TABLE IF EXISTS {table}")
        for aggregate in schema.AGGREGATE_DEFINITIONS:
            self._execute(aggregate.create)
            for view in aggregate.views():
                self._execute(view)
            self._backfill_if_missing(aggregate)
        self._ensure_after_alert_tables()
        self._merge_when_quiet(schema.COMPACTED_AFTER_BULK)

    def _merge_when_quiet(self, tables: Iterable[str]) -> None:
        """Let background merges join a table's parts whole once it had no insert for
        ``MERGE_WHEN_QUIET_S``: ``compact`` leaves a bulk write's part beside the
        history's, and FINAL reads merge the two on every read until then (the coverage
        ledger several times slower at 10M events). Only when *all* parts are that old:
        a table written steadily is never rewritten whole this way, one written now and
        then at most once a quiet period. A table setting, so set on every start."""
        for table in tables:
            self._execute(
                f"ALTER TABLE {table} MODIFY SETTING min_age_to_force_merge_seconds = "
                f"{self.MERGE_WHEN_QUIET_S}, min_age_to_force_merge_on_partition_only = 1"
            )

    def _ensure_after_alert_tables(self) -> None:
        """The referral and transition tables; ``warning_transitions`` is backfilled
        from ``lifecycle`` when it is empty while ``lifecycle`` is not (a warehouse from
        before it), like a pre-aggregate added to an existing warehouse."""
        for table in schema.AFTER_ALERT_TABLES:
            self._execute(schema.create_table(table))
        empty = f"SELECT count() FROM {schema.WARNING_TRANSITIONS}"
        if not self.query(empty).rows[0][0] and self.query(
            f"SELECT count() FROM {schema.LIFECYCLE}"
        ).rows[0][0]:
            self._execute(schema.transitions_backfill())
            self._merge_whole((schema.WARNING_TRANSITIONS,))
        for aggregate in schema.AFTER_ALERT_AGGREGATES:
            self._execute(aggregate.create)
            for view in aggregate.views():
                self._execute(view)
            self._backfill_if_missing(aggregate)
        # referral records bound the ledgers' default "now" like lifecycle records; the
        # bound is a max, so inserting it on every start is harmless
        self._execute(schema.REFERRAL_BOUNDS_VIEW)
        self._execute(f"INSERT INTO {schema.BOUNDS} {schema.REFERRAL_BOUNDS_SELECT}")

    def _backfill_if_missing(self, aggregate: schema.Aggregate) -> None:
        """Fill a pre-aggregate that is empty while its sources are not: added to an
        existing warehouse (or a start that died before its backfill). Rows inserted
        meanwhile reach it twice, through the view and the backfill: harmless, the
        aggregates are idempotent. The backfill is merged at once (OPTIMIZE … FINAL):
        it arrives as one part per million rows, each spanning every key, and a keyed
        lookup would read each of them until background merges catch up."""
        if self.query(f"SELECT count() FROM {aggregate.table}").rows[0][0]:
            return
        sources = {source for _, source, _ in aggregate.feeds}
        if any(self.query(f"SELECT count() FROM {t}").rows[0][0] for t in sorted(sources)):
            for statement in aggregate.backfill():
                self._execute(statement)
            self._merge_whole((aggregate.table,))

    def compact(self, tables: Iterable[str] = schema.COMPACTED_AFTER_BULK) -> None:
        """Merge what a bulk write added to each table; the rows stay the same.

        A bulk write leaves a table in overlapping parts that every FINAL read merges
        again until background merges catch up, which can take minutes. Merging the
        whole table (``OPTIMIZE … FINAL``) rewrites all of it, so its cost grew with
        the history: ~7 s for ``COMPACTED_AFTER_BULK`` after a 100k-row write on a
        10M-event warehouse (quiet machine). Here a table whose largest part holds
        most of its rows only has its other parts merged (a plain ``OPTIMIZE``: the
        merge selector joins parts of similar size, so the large part is left as it
        is), which costs about what was written; background merges join the two once
        the table is quiet (``_merge_when_quiet``). A table mostly written by this bulk
        write (a rebuild, a first load), or a small one, is merged whole: that too costs
        about what was written, or little. The tables city-wide reads take whole
        (``schema.MERGED_WHOLE_AFTER_BULK``) are merged whole: in two parts each of those
        reads would merge every row. Tables already in one part are left alone."""
        parts = self._part_rows()
        for table in tables:
            rows = parts.get(table, [])
            if len(rows) <= 1:
                continue
            largest, rest = rows[0], sum(rows[1:])
            if (table in schema.MERGED_WHOLE_AFTER_BULK or rest >= largest
                    or largest + rest < self.COMPACT_WHOLE_BELOW_ROWS):
                self._merge_whole((table,))
            else:
                self._merge_smaller_parts(table, len(rows))

    def _merge_whole(self, tables: Iterable[str]) -> None:
        """``OPTIMIZE … FINAL``: each table in one part, whatever it costs."""
        for table in tables:
            self._execute(f"OPTIMIZE TABLE {table} FINAL")

    def _merge_smaller_parts(self, table: str, parts: int) -> None:
        """Plain ``OPTIMIZE`` until the parts besides the largest are one, or a round
        merged nothing (parts busy in a background merge, or none worth merging)."""
        for _ in range(self.COMPACT_ROUNDS):
            if parts <= 2:
                return
            self._execute(f"OPTIMIZE TABLE {table}")
            left = len(self._part_rows().get(table, []))
            if left >= parts:
                return
            parts = left

    def _part_rows(self) -> dict[str, list[int]]:
        """Rows of each active part per table, largest first."""
        rows = self.query(
            "SELECT table, groupArray(rows) FROM (SELECT table, rows FROM system.parts "
            "WHERE active AND database = currentDatabase() ORDER BY rows DESC) GROUP BY table"
        ).rows
        return {str(table): [int(n) for n in counts] for table, counts in rows}

    def write_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """One insert of all ``events``, built into Arrow ``EVENT_SLICE_ROWS`` at a time.

        Each slice's rows are dropped once converted, so a caller that yields rows
        as it parses them (a rebuild's rounds) holds one slice of dicts, not the
        whole insert: the insert's size no longer sets the memory. The directory
        rows of the households go in first, as one insert.
        """
        tables: list[pa.Table] = []
        keys: dict[str, str] = {}
        for chunk in slices(events, EVENT_SLICE_ROWS):
            chunk_keys = self._keys(e["household_id"] for e in chunk)
            tables.append(event_table(chunk, chunk_keys))
            keys.update(chunk_keys)
        if not tables:
            return
        self._write_directory(keys)
        self._insert(schema.EVENTS, tables[0] if len(tables) == 1 else pa.concat_tables(tables))

    def write_lifecycle(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Warning records into ``lifecycle`` and ``warning_transitions``, referral
        records into ``referral_records`` (they name no warning to annotate)."""
        referrals = [r for r in records if is_referral(r)]
        if referrals:
            self._write_directory(self._keys(r["household_id"] for r in referrals))
            self._insert(schema.REFERRAL_RECORDS, referral_table(referrals, self._key_of))
            records = [r for r in records if not is_referral(r)]
        if not records:
            return
        raises = {r["warning_id"]: raise_info(r) for r in records if r["type"] == RAISED}
        missing = {r["warning_id"] for r in records if r["warning_id"] not in raises}
        raises.update(self._known_raises(missing))
        households = (r.get("household_id") for r in records)
        self._write_directory(self._keys(h for h in households if h is not None))
        lifecycle, transitions = warning_tables(records, self._key_of, raises)
        self._insert(schema.LIFECYCLE, lifecycle)
        self._insert(schema.WARNING_TRANSITIONS, transitions)

    def query(self, sql: str) -> QueryResult:
        return arrow_to_result(self._select(sql))

    def erase_household(self, household_id: str) -> None:
        key = self._key_of(household_id)
        self._directory_written.discard(key)
        self._execute(f"DELETE FROM {schema.DIRECTORY} WHERE household_key = {sql_string(key)}")

    def purge_erased(self, household_ids: Iterable[str]) -> None:
        """Rewrite the directory's parts without these households, so that no file of the
        warehouse keeps their ids (``erase_household`` only hides the rows: a lightweight
        delete leaves their bytes in the parts until a merge).

        Here a mutation (``ALTER TABLE … DELETE``, waited for): a server removes the parts
        it replaced after its ``old_parts_lifetime``. The statement names the pseudonymous
        keys, never the ids, since mutations are kept as text beside the parts.
        """
        keys = sorted({self._key_of(h) for h in household_ids})
        if not keys:
            return
        self._directory_written.difference_update(keys)
        listed = ", ".join(sql_string(k) for k in keys)
        self._execute(f"ALTER TABLE {schema.DIRECTORY} DELETE WHERE household_key IN ({listed})"
                      " SETTINGS mutations_sync = 2")

    def active_parts(self) -> dict[str, int]:
        """Active parts per table: how many a FINAL read of it merges (what ``compact``
        brings to one); for benchmarks and tests."""
        rows = self.query(
            "SELECT table, count() FROM system.parts WHERE active "
            "AND database = currentDatabase() GROUP BY table ORDER BY table"
        ).rows
        return {str(table): int(n) for table, n in rows}

    def release_memory(self) -> None:  # noqa: B027 - a no-op unless the engine is in-process
        """Return memory freed by past writes to the OS; nothing to do unless in-process."""
        return None

    def reset(self) -> None:
        self._directory_written.clear()
        for table in (*schema.TABLES, *schema.AFTER_ALERT_TABLES, *schema.AGGREGATES):
            self._execute(f"TRUNCATE TABLE IF EXISTS {table}")

    def _keys(self, household_ids: Iterable[str]) -> dict[str, str]:
        """household_id → household_key for the distinct households of a batch."""
        return {h: self._key_of(h) for h in set(household_ids)}

    def _write_directory(self, keys: Mapping[str, str]) -> None:
        """Directory rows for households this process has not written yet.

        Re-sending a known row is harmless (ReplacingMergeTree) but costs an
        insert per batch; the cache (``WrittenKeys``) makes steady-state batches
        skip it, for a city's households too. It is
        cleared on reset, and an erased key is forgotten, so a later event of
        that household writes its row again — erasure that must survive new
        events has to be enforced before events reach the warehouse.
        """
        written = self._directory_written
        new = {key: household for household, key in keys.items() if key not in written}
        if not new:
            return
        self._insert(schema.DIRECTORY, directory_table(new))
        written.update(new)

    def _known_raises(self, warning_ids: set[str]) -> dict[str, RaiseInfo]:
        """Raise attributes already in the warehouse (for records of earlier batches),
        read from ``warning_raises`` by key: the cost follows the ids asked, not the
        history (``schema.WARNING_RAISES``)."""
        if not warning_ids:
            return {}
        result = self.query(known_raises_sql(warning_ids))
        return {row[0]: RaiseInfo(row[1], row[2], row[3]) for row in result.rows}


def slices(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """``rows`` in lists of ``size`` (the last may be shorter), taken as they come."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def known_raises_sql(warning_ids: Iterable[str]) -> str:
    """The keyed read of the raise attributes of ``warning_ids``."""
    ids = ", ".join(sql_string(w) for w in sorted(warning_ids))
    return (
        f"SELECT warning_id, rule_id, level, org_unit FROM {schema.WARNING_RAISES} FINAL "
        f"WHERE warning_id IN ({ids})"
    )
