"""The embedded processor: reads the SQLite log in batches and runs the engine.

Each batch is one transaction: lifecycle records, dead letters, changed rule
states and the moved checkpoint commit together, so a crash anywhere resumes
exactly where the last commit left off (no loss, no duplicate record).

With a warehouse sink the batch is also projected inline: the sink is flushed
*before* the SQLite commit and the warehouse checkpoints move in that same
commit. A crash between flush and commit re-sends rows the warehouse already
has, which its idempotent writes absorb (at-least-once, idempotent effects).

Deadlines: with an event-time clock they fire once the end of the log is
reached (up to ``as_of``), in commits of ``due_window`` households, earliest
deadlines first; with the wall clock, after every batch.

Rule state is kept decoded in a bounded cache (``state_cache`` households,
default ``DEFAULT_STATE_CACHE``, ``INLINE_STATE_CACHE`` with a warehouse sink,
or ``$JIAHE_STATE_CACHE``), least recently used first out. The bound is what
keeps memory flat whatever the number of households: every state in the cache
after a commit is also stored in ``household_state`` (or is a fresh,
never-changed state), so evicting one loses nothing and a miss reloads it, one
query per batch for all misses. A batch may exceed the bound for its own
duration: every household it touches stays in memory until its commit.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import orjson

from events.catalog import CURRENT_VERSION
from events.codec import Decoded, Rejected, decode_trusted
from privacy.crypto import Problem
from projections.sink import WarehouseSink
from rules.engine import Engine, Record
from rules.replay import Counts, fire_due
from rules.state import HouseholdState
from rules.surge import SurgeTracker
from streams.clock import Clock
from streams.embedded.log import LogEntry, SqliteLog
from streams.step import add_counts, apply_batch

CONSUMER = "processor"
EVENTS_CONSUMER = "warehouse.events"
LIFECYCLE_CONSUMER = "warehouse.lifecycle"
MAX_OCCURRED_KEY = "processor.max_occurred"
#: meta key of the surge rules' state (rules.surge), committed with every batch.
SURGE_STATE_KEY = "processor.surges"
#: Households whose decoded rule state stays in memory between batches. ~1–2 KB
#: each, so ~100–200 MB at the default; a bigger cache saves reloads (a miss
#: costs a SQLite read + ``HouseholdState.from_bytes``, ~10 µs) when many
#: households recur within a short stretch of the log.
DEFAULT_STATE_CACHE = 100_000
#: The default when the processor projects into chdb inline: chdb shares the
#: process (~300 MB of library and engine before any row, plus its inserts), so
#: the cache gets less of the memory budget. At 1M households the cache misses
#: most lookups at either size (states recur too far apart), so the smaller one
#: costs no measurable throughput (BENCHMARKS.md, processor memory).
INLINE_STATE_CACHE = 30_000
#: SQLite page cache (MiB) while projecting into chdb inline, for the same reason
#: (128 MiB otherwise, ``streams.embedded.log.PAGE_CACHE_MIB``).
INLINE_PAGE_CACHE_MIB = 32
STATE_CACHE_ENV = "JIAHE_STATE_CACHE"


def state_cache_setting(value: int | None = None, default: int = DEFAULT_STATE_CACHE) -> int:
    """The state-cache size: ``value``, else ``$JIAHE_STATE_CACHE``, else ``default``."""
    if value is None:
        raw = os.environ.get(STATE_CACHE_ENV, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            message = f"{STATE_CACHE_ENV}={raw!r}: expected a number of households"
            raise ValueError(message) from None
    if value < 1:
        raise ValueError(f"state cache must hold at least 1 household, got {value}")
    return value


@dataclass
class ProcessReport:
    counts: Counts = field(default_factory=Counts)
    records: Counter[str] = field(default_factory=Counter)
    fired_at_end: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts.as_dict(),
            "lifecycle_records": dict(sorted(self.records.items())),
            "records_from_deadlines_at_end": self.fired_at_end,
        }


@dataclass
class _Batch:
    """Effects of one batch, committed together."""

    records: list[Record] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    rejected: list[tuple[str, str | None, str | None, bytes]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_position: int | None = None


class EmbeddedProcessor:
    """Engine + SQLite log; state persisted per batch, a bounded LRU of it kept decoded.

    An instance that raised must be discarded: its in-memory state may be ahead
    of the last commit (a new instance reloads from the log).
    """

    def __init__(
        self,
        log: SqliteLog,
        engine: Engine,
        batch_size: int = 5000,
        sink: WarehouseSink | None = None,
        state_cache: int | None = None,
    ) -> None:
        self.log = log
        self.engine = engine
        self.batch_size = batch_size
        self.sink = sink
        self.state_cache = state_cache_setting(
            state_cache, DEFAULT_STATE_CACHE if sink is None else INLINE_STATE_CACHE
        )
        #: The cache: order is recency order (a hit moves to the end). An ``OrderedDict``:
        #: evicting from the front of a plain dict leaves its iteration to step over
        #: every entry deleted since it last resized, batch after batch.
        self.states: OrderedDict[str, HouseholdState] = OrderedDict()
        self._max_occurred = self._stored_max_occurred()
        #: District surge rules (pack ``kind: surge``); None when the pack has none.
        self.surges = (
            SurgeTracker.restore(engine.pack, self._meta_value(SURGE_STATE_KEY))
            if engine.pack.surges
            else None
        )
        # With no stored state, every household never seen by this run is new: skip the
        # lookups. Only until the first eviction: an evicted household is stored.
        self._store_empty = (
            log.db.execute("SELECT 1 FROM household_state LIMIT 1").fetchone() is None
        )
        #: Rows flushed per warehouse insert; chdb costs ~20 ms per statement, so fewer,
        #: larger — but an insert's memory grows with its rows, in the processor's RSS
        #: (20k rows: ~50 MB more at the peak than 10k).
        self.flush_rows = max(batch_size * 2, 10_000)
        #: Households per commit when the deadlines due at the end of the log fire.
        self.due_window = batch_size
        self._queued_position: int | None = None
        self._queued_seq: int | None = None

    def run(self, clock: Clock, progress: Callable[[int], None] | None = None) -> ProcessReport:
        """Process the log to its end, then fire deadlines the clock has reached."""
        with self.log.relaxed_sync(), ExitStack() as stack:
            if self.sink is not None:  # chdb shares the process: a smaller page cache
                stack.enter_context(self.log.page_cache(INLINE_PAGE_CACHE_MIB))
            return self._run(clock, progress)

    def _run(self, clock: Clock, progress: Callable[[int], None] | None) -> ProcessReport:
        report = ProcessReport()
        position = self.log.checkpoint(CONSUMER)
        while entries := self.log.read_events(position, self.batch_size):
            batch = self._apply_entries(entries, report)
            if clock.live:
                self._fire_into(batch, clock.limit(self._max_occurred))
                self._close_days(batch, clock.limit(self._max_occurred), self._max_occurred)
            self._commit(batch, report)
            position = entries[-1].position
            report.batches += 1
            if progress:
                progress(len(entries))
        limit = clock.limit(self._max_occurred)
        if limit is not None:
            for window in self._due_windows(limit):
                batch = _Batch()
                self._fire_into(batch, window)
                self._commit(batch, report)
                report.fired_at_end += len(batch.records)
        batch = _Batch()
        if limit is not None:
            self._fire_into(batch, limit)
            self._close_days(batch, limit)
        self._commit(batch, report, final=True)
        report.fired_at_end += len(batch.records)
        return report

    def _due_windows(self, limit: int) -> list[int]:
        """Upper bounds splitting the deadlines due ≤ ``limit`` into commits of ~a batch.

        At the end of a long log every household with a deadline in the past is
        due at once (15,715 of them at 1M households): firing them in one commit
        loaded all their states and held all their records at the same time, the
        peak of the run. Windows of deadline time, earliest first, fire exactly
        the records of one pass in the same order (deadlines fire in global time
        order, and a deadline never schedules an earlier one); the last window,
        ``limit`` itself, is fired by the caller with the day closes.
        """
        dues = self.log.due_times(limit)
        size = self.due_window
        return sorted({dues[i] for i in range(size - 1, len(dues) - 1, size)} - {limit})

    def _apply_entries(self, entries: list[LogEntry], report: ProcessReport) -> _Batch:
        batch = _Batch(last_position=entries[-1].position)
        # Personal fields stay sealed (privacy.crypto): the rules never read them and
        # the warehouse never stores them, so the processor does not open them — no
        # clear personal text in this process, and no decryption on the hot path.
        # Only an event of an older schema version (validated in full) is opened.
        # Damaged ciphertexts are found by `jiahe verify` (SqliteLog.check_sealed_fields).
        keyring = self.log.keyring
        problems: list[Problem] = []
        events = batch.events if self.sink is not None else None

        def decode(entry: LogEntry) -> Decoded | Rejected:
            raw = orjson.loads(entry.body)
            if raw.get("schema_version") != CURRENT_VERSION.get(raw.get("type", ""), 1):
                keyring.refresh()
                clear, unreadable = keyring.open_event(raw)
                problems.extend(unreadable)
                decoded = decode_trusted(clear, entry.body, entry.fingerprint)
            else:
                decoded = decode_trusted(raw, entry.body, entry.fingerprint)
            if events is not None:
                raw["offset"] = entry.position
                events.append(raw)
            return decoded

        # Decoded up front: the states of all the batch's households missing from the
        # cache are then read in one query, before the step asks for them one by one.
        # The step's items are the entries' indices (ints: nothing more for the
        # garbage collector to track per event).
        decoded = [decode(entry) for entry in entries]
        if problems:
            self.log.record_crypto_problems(problems)
        self._load({d.household_id for d in decoded if not isinstance(d, Rejected)})
        states = self.states
        step = apply_batch(
            range(len(entries)), decoded.__getitem__,
            lambda household_id, _: states[household_id], self.engine, self.surges,
        )
        add_counts(report.counts, step.counts, reasons=True)
        # The log keeps the bytes it validated: a refused entry is dead-lettered as stored.
        batch.rejected.extend(
            (r.reason, r.event_id, r.household_id, entries[r.item].body) for r in step.refusals
        )
        batch.dirty = step.changed
        batch.records = step.records
        if step.max_occurred is not None and (
            self._max_occurred is None or step.max_occurred > self._max_occurred
        ):
            self._max_occurred = step.max_occurred
        return batch

    def _fire_into(self, batch: _Batch, limit: int | None) -> None:
        if limit is None:
            return
        # Every cached state but those this batch changed is stored as it is in memory
        # (the cache's invariant), so the due index finds them; only the batch's own
        # changes, not stored yet, are looked at here — never the whole cache per batch.
        states = self.states
        due = set(self.log.households_due(limit)) | {
            h for h in batch.dirty if (d := states[h].next_due) is not None and d <= limit
        }
        self._load(due)
        batch.dirty.update(due)
        batch.records.extend(fire_due(self.engine, {h: self.states[h] for h in due}, limit))

    def _close_days(self, batch: _Batch, limit: int | None, seen: int | None = None) -> None:
        """Surge rules: evaluate the day closes ≤ ``limit`` (and, mid-log, ≤ ``seen``).

        Mid-log the closes wait for the data (``seen``: the latest occurred_at
        processed), so a backlog read with the wall clock is judged as it
        arrives, not all at once on its first batch; at the end of the log
        every close the clock reached is evaluated.
        """
        if self.surges is None or limit is None:
            return
        if seen is not None:
            limit = min(limit, seen)
        batch.records.extend(self.surges.close_until(limit))

    def _commit(self, batch: _Batch, report: ProcessReport, final: bool = False) -> None:
        with self.log.transaction():
            seqs = self.log.append_lifecycle(batch.records)
            for reason, event_id, household_id, body in batch.rejected:
                self.log.dead_letter("process", "log", reason, event_id, household_id, body)
            self._save(batch.dirty)
            if self._max_occurred is not None:
                self.log.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (MAX_OCCURRED_KEY, str(self._max_occurred).encode()),
                )
            if self.surges is not None:
                self.log.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (SURGE_STATE_KEY, self.surges.to_bytes()),
                )
            if batch.last_position is not None:
                self.log.set_checkpoint(CONSUMER, batch.last_position)
            if self.sink is not None:
                self._project(batch, seqs, final)
        report.records.update(record["type"] for record in batch.records)
        self._evict()

    def _project(self, batch: _Batch, seqs: list[int], final: bool) -> None:
        """Queue this batch for the warehouse; flush inside the open transaction when due.

        The warehouse checkpoints move only in the commit that follows a
        successful flush; rows queued but not flushed when a run dies are
        re-read from the log by the next run's catch-up (``EmbeddedRuntime``).
        """
        assert self.sink is not None
        for event in batch.events:
            self.sink.add_event(event)
        for record, seq in zip(batch.records, seqs, strict=True):
            self.sink.add_lifecycle({**record, "seq": seq})
        if batch.last_position is not None:
            self._queued_position = batch.last_position
        if seqs:
            self._queued_seq = seqs[-1]
        if not final and self.sink.pending < self.flush_rows:
            return
        self.sink.flush()
        self.sink.warehouse.release_memory()  # chdb shares this process (its docstring)
        if self._queued_position is not None:
            self.log.set_checkpoint(EVENTS_CONSUMER, self._queued_position)
        if self._queued_seq is not None:
            self.log.set_checkpoint(LIFECYCLE_CONSUMER, self._queued_seq)

    def _load(self, household_ids: set[str]) -> None:
        """Bring these households' states into the cache, most recently used last."""
        states = self.states
        missing = set()
        for household_id in household_ids:
            if household_id in states:
                states.move_to_end(household_id)
            else:
                missing.add(household_id)
        if not missing:
            return
        stored = {} if self._store_empty else self.log.load_states(missing)
        for household_id in missing:
            blob = stored.get(household_id)
            states[household_id] = HouseholdState.from_bytes(blob) if blob else HouseholdState()

    def _evict(self) -> None:
        """Trim the cache to its bound; call only after a commit (every entry is stored)."""
        excess = len(self.states) - self.state_cache
        if excess <= 0:
            return
        pop_oldest = self.states.popitem
        for _ in range(excess):
            pop_oldest(last=False)
        self._store_empty = False

    def _save(self, household_ids: set[str]) -> None:
        self.log.save_states(
            (h, self.states[h].to_bytes(), self.states[h].next_due) for h in sorted(household_ids)
        )

    def _meta_value(self, key: str) -> bytes | None:
        row = self.log.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def _stored_max_occurred(self) -> int | None:
        row = self.log.db.execute(
            "SELECT value FROM meta WHERE key = ?", (MAX_OCCURRED_KEY,)
        ).fetchone()
        return int(bytes(row[0]).decode()) if row else None
