"""The embedded runtime: one machine, no servers.

``EmbeddedRuntime`` runs the SQLite log, the engine (with a rule pack), the
processor and a warehouse of one home directory; it is given them, it does not
choose them (``app.bootstrap.bootstrap_embedded`` does, with defaults under the
home). Projection into the warehouse is a consumer of its own with checkpoints
per stream: rows are batched, flushed, and only then the checkpoint moves (a
failed flush leaves it where it was; re-sent rows are absorbed by the
warehouse's idempotent writes).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from privacy.pseudonym import deployment_secret, erased_label, household_key
from projections.sink import WarehouseSink
from projections.warehouse.base import Warehouse
from rules.engine import Engine
from streams.clock import Clock
from streams.embedded.log import PublishCounts, SqliteLog
from streams.embedded.processor import CONSUMER as PROCESSOR_CONSUMER
from streams.embedded.processor import (
    EVENTS_CONSUMER,
    LIFECYCLE_CONSUMER,
    EmbeddedProcessor,
    ProcessReport,
)

LOG_FILE = "log.sqlite3"
#: Events per batch (read, processed and committed together) by default.
BATCH_SIZE = 5000
#: Events per processor commit by default when nothing is projected inline
#: (``EmbeddedRuntime.bare_batch_size``).
BARE_BATCH_SIZE = 20_000
#: Events read, inserted and checkpointed per round when the warehouse catches up.
PROJECT_EVENT_ROWS = 100_000
WAREHOUSE_DIR = "warehouse"
PSEUDONYM_SECRET = "pseudonym-secret"
#: Rows written in one go past which the warehouse is compacted afterwards
#: (``Warehouse.compact``: ~7 s at 10M events, so not after every small catch-up).
COMPACT_AFTER_ROWS = 100_000

Progress = Callable[[int], None]
#: Opens the warehouse, given the pseudonym secret the log keeps (``PSEUDONYM_SECRET``).
#: A factory rather than a warehouse because chdb allows one process per path: a
#: runtime that only publishes or processes must not take the warehouse from another.
WarehouseFactory = Callable[[bytes], Warehouse]


@dataclass
class ProjectReport:
    events: int = 0
    lifecycle: int = 0


class EmbeddedRuntime:
    """A home's log, engine and warehouse, wired by ``app.bootstrap.bootstrap_embedded``."""

    def __init__(
        self,
        home: Path,
        log: SqliteLog,
        engine: Engine,
        open_warehouse: WarehouseFactory,
        batch_size: int | None = None,
        flush_rows: int | None = None,
    ) -> None:
        self.home = home
        self.log = log
        self.engine = engine
        #: Events per batch; a ``batch_size`` given is every batch's size (tests pin it).
        self.batch_size = BATCH_SIZE if batch_size is None else batch_size
        #: Events per processor commit when nothing is projected inline (``--no-project``).
        #: With no warehouse insert held in memory, a batch can be larger: each commit
        #: rewrites a random page of the state table per household it touches, and at a
        #: city's million households a larger batch shares more of them (first 3M events of
        #: the 10M-event sample: -8% CPU against 5,000, -15% wall with
        #: ``BULK_WAL_PAGES`` together, +25 MB RSS; BENCHMARKS.md).
        self.bare_batch_size = BARE_BATCH_SIZE if batch_size is None else batch_size
        self.flush_rows = flush_rows
        #: Rows read, inserted and checkpointed per round when the warehouse catches up
        #: with the log (a rebuild: all of it). Each round is an insert statement per
        #: table it feeds (~20 ms each in chdb) and a new part of each, for the merges
        #: to fold: rounds of four batches make a quarter of the statements and parts
        #: that rounds of one did. A round's memory grows with its rows.
        self.project_rows = self.batch_size * 4
        #: The same for events, whose rounds can be larger: ``Warehouse.write_events``
        #: converts a round's rows a slice at a time as they are parsed, so only the
        #: round's stored bodies and its Arrow columns grow with it.
        self.project_event_rows = PROJECT_EVENT_ROWS if batch_size is None else batch_size * 4
        #: Input lines per publishing transaction. Every append inserts into the log's
        #: unique index of event ids, one random leaf page each: a larger transaction
        #: writes (to the WAL) and fsyncs the pages it shares once, not once per batch
        #: (1M events: -15% CPU against 5,000). A crash loses only the uncommitted
        #: lines, which publishing the file again accepts (the rest are duplicates).
        self.publish_lines = self.batch_size * 4
        #: Rows projected in one run past which the warehouse is compacted afterwards.
        self.compact_after_rows = COMPACT_AFTER_ROWS
        self._open_warehouse = open_warehouse
        self._warehouse: Warehouse | None = None

    @property
    def warehouse_path(self) -> Path:
        """Where the default (chdb) warehouse of the home lives."""
        return self.home / WAREHOUSE_DIR

    @property
    def warehouse(self) -> Warehouse:
        """The warehouse, opened on first use (chdb: one process per path)."""
        if self._warehouse is None:
            self._warehouse = self._open_warehouse(self.pseudonym_secret())
            self._warehouse.ensure_schema()
        return self._warehouse

    def pseudonym_secret(self) -> bytes:
        """The deployment's secret when one is set (``privacy.pseudonym``), else the
        home's own (created with its log): the same household, the same analytics key
        in every runtime of a deployment."""
        return deployment_secret() or self.log.secret(PSEUDONYM_SECRET)

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
        self.log.close()

    def publish(
        self, lines: Iterable[bytes | str], source: str, progress: Progress | None = None
    ) -> PublishCounts:
        return self.log.publish(lines, source, batch_size=self.publish_lines, on_batch=progress)

    def process(
        self, clock: Clock, progress: Progress | None = None, project: bool = True
    ) -> ProcessReport:
        """Run the processor; with ``project`` the warehouse is kept in step inline.

        Inline projection needs the warehouse caught up with the processor
        first (e.g. after a ``--no-project`` run), so pending rows go first.
        """
        sink = None
        if project:
            self.project()
            sink = WarehouseSink(self.warehouse, max_rows=10**9)  # the processor decides
        processor = EmbeddedProcessor(
            self.log, self.engine, sink=sink,
            batch_size=self.batch_size if project else self.bare_batch_size,
        )
        if self.flush_rows is not None:
            processor.flush_rows = self.flush_rows
        report = processor.run(clock, progress)
        if project and (report.counts.received or report.records):
            self._keep_erased()
            if report.counts.received + sum(report.records.values()) >= self.compact_after_rows:
                self.warehouse.compact()
        return report

    def pending_projection(self) -> tuple[int, int]:
        """Processed rows not yet in the warehouse: (events, lifecycle records)."""
        return (
            self.log.checkpoint(PROCESSOR_CONSUMER) - self.log.checkpoint(EVENTS_CONSUMER),
            self.log.end_seq() - self.log.checkpoint(LIFECYCLE_CONSUMER),
        )

    def project(self, progress: Progress | None = None) -> ProjectReport:
        """Bring the warehouse up to the processor: processed events, then lifecycle records.

        Events past the processor's checkpoint wait: the processor projects
        them inline, in the same commit that processes them.
        """
        report = ProjectReport()
        processed = self.log.checkpoint(PROCESSOR_CONSUMER)
        report.events = self._project_stream(
            EVENTS_CONSUMER, self.log.read_events, self.warehouse.write_events, "offset",
            self.project_event_rows, progress, until=processed,
        )
        report.lifecycle = self._project_stream(
            LIFECYCLE_CONSUMER, self.log.read_lifecycle, self._write_lifecycle, "seq",
            self.project_rows, progress, until=self.log.end_seq(),
        )
        if report.events or report.lifecycle:
            self._keep_erased()
        if report.events + report.lifecycle >= self.compact_after_rows:
            self.warehouse.compact()  # a catch-up or rebuild leaves the tables in parts
        return report

    def _write_lifecycle(self, records: Iterable[dict[str, Any]]) -> None:
        self.warehouse.write_lifecycle(list(records))

    def _project_stream(
        self,
        consumer: str,
        read: Callable[[int, int], list[Any]],
        write: Callable[[Iterable[dict[str, Any]]], None],
        position_field: str,
        rows_per_round: int,
        progress: Progress | None,
        until: int,
    ) -> int:
        """Write and checkpoint up to ``rows_per_round`` rows at a time, up to ``until``.

        A round's rows are read (``project_rows`` at a time) and parsed as
        ``write`` takes them, so a round's size sets how many rows an insert
        holds, not how many stored rows wait in memory. A write that raises
        leaves the checkpoint where it was (its rows are read again next time).
        """
        position = self.log.checkpoint(consumer)
        moved = 0
        while position < until:
            taken = _Taken(position)
            write(taken.rows(read, self.project_rows, rows_per_round, until, position_field))
            if not taken.count:
                break
            # An in-process engine would keep a round's freed insert buffers a few
            # seconds more, into the next round's peak.
            self.warehouse.release_memory()
            position = taken.position
            with self.log.transaction():
                self.log.set_checkpoint(consumer, position)
            moved += taken.count
            if progress:
                progress(taken.count)
        return moved

    def rebuild(self, progress: Progress | None = None) -> ProjectReport:
        """Drop every projection and rebuild it from the log."""
        self.warehouse.reset()
        with self.log.transaction():
            self.log.set_checkpoint(EVENTS_CONSUMER, 0)
            self.log.set_checkpoint(LIFECYCLE_CONSUMER, 0)
        return self.project(progress)

    def erase(self, household_id: str) -> dict[str, Any]:
        """Erase a household (crypto-shredding); returns what was done.

        * the log: its data key is deleted, so every sealed personal field of
          its events reads "[erased]" from now on; an erasure marker makes later
          events of the household drop their personal fields on append (they
          are still kept and processed: warnings must not be lost); its dead
          letters' input is replaced by "[erased]";
        * the warehouse: its directory row is deleted, so ledgers show
          ``erased:<household_key>`` and every count stays; the marker makes
          ``project``/``process``/``rebuild`` delete the row again whenever
          new rows of the household reach the warehouse.
        """
        done = self.log.erase_household(household_id)
        self.warehouse.erase_household(household_id)
        done["ledger_label"] = erased_label(
            household_key(self.pseudonym_secret(), household_id)
        )
        return done

    def _keep_erased(self) -> None:
        """Delete again the directory rows of erased households (projection re-writes them)."""
        for household_id in self.log.erased_households():
            self.warehouse.erase_household(household_id)

    def wipe(self) -> None:
        """Delete the whole home (used by ``jiahe demo`` on its own demo home only)."""
        self.close()
        shutil.rmtree(self.home)


class _Taken:
    """The rows of one projection round, read from the log as its writer takes them."""

    def __init__(self, position: int) -> None:
        #: Log position of the last row taken; rows taken so far.
        self.position = position
        self.count = 0

    def rows(
        self,
        read: Callable[[int, int], list[Any]],
        read_rows: int,
        round_rows: int,
        until: int,
        position_field: str,
    ) -> Iterator[dict[str, Any]]:
        """Up to ``round_rows`` parsed rows after ``position`` and ≤ ``until``, with their
        log position in ``position_field``; read ``read_rows`` at a time."""
        after = self.position
        while self.count < round_rows and after < until:
            entries = read(after, min(read_rows, round_rows - self.count))
            if not entries:
                return
            for entry in entries:
                if entry.position > until:
                    return
                row: dict[str, Any] = orjson.loads(entry.body)
                row[position_field] = entry.position
                self.position = entry.position
                self.count += 1
                yield row
            after = entries[-1].position
