"""The embedded processor: reads the SQLite log in batches and runs the engine.

Each batch is one transaction: lifecycle records, dead letters, changed rule
states and the moved checkpoint commit together, so a crash anywhere resumes
exactly where the last commit left off (no loss, no duplicate record).
Deadlines: with an event-time clock they fire once the end of the log is
reached (up to ``as_of``); with the wall clock, after every batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from events.codec import Rejected, decode_object
from rules.engine import Engine, Record
from rules.replay import Counts, fire_due
from rules.state import HouseholdState
from streams.clock import Clock
from streams.sqlite_log import LogEntry, SqliteLog

CONSUMER = "processor"
MAX_OCCURRED_KEY = "processor.max_occurred"


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


class EmbeddedProcessor:
    """Engine + SQLite log; state cached in memory for the run, persisted per batch."""

    def __init__(self, log: SqliteLog, engine: Engine, batch_size: int = 5000) -> None:
        self.log = log
        self.engine = engine
        self.batch_size = batch_size
        self.states: dict[str, HouseholdState] = {}

    def run(self, clock: Clock, progress: Callable[[int], None] | None = None) -> ProcessReport:
        """Process the log to its end, then fire deadlines the clock has reached."""
        report = ProcessReport()
        position = self.log.checkpoint(CONSUMER)
        while entries := self.log.read_events(position, self.batch_size):
            fired: list[Record] = []
            self._process_batch(entries, report, clock if clock.live else None, fired)
            position = entries[-1].position
            report.batches += 1
            if progress:
                progress(len(entries))
        limit = clock.limit(self._max_occurred())
        if limit is not None:
            report.fired_at_end = self._fire(limit, report)
        return report

    def _process_batch(
        self, entries: list[LogEntry], report: ProcessReport, live: Clock | None,
        fired: list[Record],
    ) -> None:
        decoded = [decode_object(orjson.loads(entry.body), entry.body) for entry in entries]
        self._load([d.household_id for d in decoded if not isinstance(d, Rejected)])
        records: list[Record] = []
        dirty: set[str] = set()
        rejected: list[tuple[str, str | None, str | None, bytes]] = []
        max_occurred = self._max_occurred()
        for item in decoded:
            if isinstance(item, Rejected):
                report.counts.add("rejected", item.reason)
                rejected.append((item.reason, item.event_id, item.household_id, item.raw))
                continue
            outcome = self.engine.apply(self.states[item.household_id], item)
            report.counts.add(outcome.status, outcome.reason)
            report.counts.notices += len(outcome.notices)
            if outcome.status == "rejected":
                rejected.append((outcome.reason or "", item.event_id, item.household_id,
                                 orjson.dumps(item.raw)))
            elif outcome.status == "processed":
                dirty.add(item.household_id)
                records.extend(outcome.records)
                if max_occurred is None or item.occurred_us > max_occurred:
                    max_occurred = item.occurred_us
        if live is not None:
            limit = live.limit(max_occurred)
            if limit is not None:
                records.extend(self._fire_in_memory(limit, dirty))
        with self.log.transaction():
            self.log.append_lifecycle(records)
            for reason, event_id, household_id, body in rejected:
                self.log.dead_letter("process", "log", reason, event_id, household_id, body)
            self._save(dirty)
            if max_occurred is not None:
                self.log.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (MAX_OCCURRED_KEY, str(max_occurred).encode()),
                )
            self.log.set_checkpoint(CONSUMER, entries[-1].position)
        report.records.update(record["type"] for record in records)

    def _fire_in_memory(self, limit: int, dirty: set[str]) -> list[Record]:
        due = set(self.log.households_due(limit)) | {
            h for h, s in self.states.items() if s.next_due is not None and s.next_due <= limit
        }
        self._load(due)
        subset = {h: self.states[h] for h in due}
        dirty.update(due)
        return fire_due(self.engine, subset, limit)

    def _fire(self, limit: int, report: ProcessReport) -> int:
        dirty: set[str] = set()
        records = self._fire_in_memory(limit, dirty)
        with self.log.transaction():
            self.log.append_lifecycle(records)
            self._save(dirty)
        report.records.update(record["type"] for record in records)
        return len(records)

    def _load(self, household_ids: list[str] | set[str]) -> None:
        missing = {h for h in household_ids if h not in self.states}
        if not missing:
            return
        stored = self.log.load_states(missing)
        for household_id in missing:
            blob = stored.get(household_id)
            self.states[household_id] = (
                HouseholdState.from_bytes(blob) if blob else HouseholdState()
            )

    def _save(self, household_ids: set[str]) -> None:
        self.log.save_states(
            (h, self.states[h].to_bytes(), self.states[h].next_due) for h in sorted(household_ids)
        )

    def _max_occurred(self) -> int | None:
        row = self.log.db.execute(
            "SELECT value FROM meta WHERE key = ?", (MAX_OCCURRED_KEY,)
        ).fetchone()
        return int(bytes(row[0]).decode()) if row else None
