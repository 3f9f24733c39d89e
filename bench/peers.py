"""Peers for ``jiahe bench``: the same warning ledger built with the tools a user would pick.

* ``run_eventsourcing_peer``: the `eventsourcing <https://eventsourcing.readthedocs.io>`_
  library (pinned 9.5.6), SQLite persistence (``PERSISTENCE_MODULE=eventsourcing.sqlite``).
  An ``Intake`` application keeps one ``Household`` aggregate per household. Its
  ``Observed`` event carries the envelope; the event's apply function runs jiahe's
  pure ``rules.engine.Engine`` on the aggregate's rule state — a pure function of
  the aggregate's own events, so reconstructing the aggregate from the store
  rebuilds the same state (functional core inside the aggregate). Each lifecycle
  record the engine decides is recorded as a ``LifecycleRecorded`` event of the
  aggregate. The warning ledger is a ``Projection`` (eventsourcing's projection
  pattern) into a materialised view — a ``SQLiteTrackingRecorder`` with a
  ``warning_ledger`` table — updated atomically with its tracking position. The
  projection is driven by catching up on the application's notification log (the
  SQLite recorder has no subscriptions, so ``ProjectionRunner`` cannot follow it;
  the catch-up does what the runner's thread does: select notifications by topic,
  convert, ``process_event``).
* the idiomatic per-event Faust agent peer needs a broker: it is
  :mod:`bench.faust_peer`, run by :func:`bench.kafka.run_kafka` on the
  same topic as jiahe's worker.

``ledger_from_records`` turns jiahe's lifecycle records (``Replay`` output) into
the same (warning_id → level, status) ledger, so the two are compared exactly.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import get_topic

from events.codec import Rejected, decode
from events.sample import StreamSpec, write_jsonl
from rules.engine import Engine, Record
from rules.pack import load_pack
from rules.replay import Replay
from rules.state import HouseholdState

EVENTSOURCING_VERSION = "9.5.6"
NAMESPACE = uuid.UUID("5b6e1c52-7f0e-4e0a-9b57-6a1e2d8f0c11")
#: warning_id → (level, status); status as in DESIGN's warning ledger.
Ledger = dict[str, tuple[str, str]]

_ENGINE: Engine | None = None


def _engine() -> Engine:
    """The rule engine the aggregates share (pure; compiled once per process)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine(load_pack())
    return _ENGINE


# -- the domain model -------------------------------------------------------------


class Household(Aggregate):
    """One household's event history; its rule state is derived from it."""

    @event("Registered")
    def __init__(self, household_id: str) -> None:
        self.household_id = household_id
        self.rules = HouseholdState()
        self.decided: list[Record] = []

    @staticmethod
    def id_for(household_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, household_id)

    @classmethod
    def create_id(cls, household_id: str) -> uuid.UUID:  # used by Aggregate.__init__
        return cls.id_for(household_id)

    # commands: apply the rules, then record what they decided
    def observe(self, line: str) -> str:
        """Record one valid envelope; returns the engine's status."""
        self._observed(line=line)
        status = self.decided_status
        self._emit_decided()
        return status

    def advance(self, until: int) -> None:
        """The clock reached ``until``: fire due deadlines."""
        self._advanced(until=until)
        self._emit_decided()

    def _emit_decided(self) -> None:
        decided, self.decided = self.decided, []
        for record in decided:
            self._lifecycle(record=record)

    # events: apply functions (re-run on reconstruction)
    @event("Observed")
    def _observed(self, line: str) -> None:
        decoded = decode(line)
        assert not isinstance(decoded, Rejected)
        outcome = _engine().apply(self.rules, decoded)
        self.decided_status = outcome.status
        self.decided = outcome.records

    @event("Advanced")
    def _advanced(self, until: int) -> None:
        self.decided = _engine().advance(self.rules, self.household_id, until)

    @event("LifecycleRecorded")
    def _lifecycle(self, record: dict[str, Any]) -> None:
        self.decided = []  # the record was decided by the preceding event


class Intake(Application[uuid.UUID]):
    """Field events in, household aggregates out (SQLite event store).

    ``record`` saves after every command (the library's usual unit of work);
    ``record_batch`` is the tuned variant: many commands, one ``save(*aggregates)``
    (one transaction), which is what jiahe's processor does per batch.
    """

    name = "Intake"

    def _household(self, household_id: str) -> Household:
        try:
            household: Household = self.repository.get(Household.id_for(household_id))
        except AggregateNotFoundError:
            household = Household(household_id)
        return household

    def record(self, line: str, household_id: str) -> str:
        household = self._household(household_id)
        status = household.observe(line)
        self.save(household)
        return status

    def record_batch(self, items: list[tuple[str, str]]) -> list[str]:
        """(line, household_id) pairs → statuses; one save for the batch."""
        touched: dict[str, Household] = {}
        statuses = []
        for line, household_id in items:
            household = touched.get(household_id)
            if household is None:
                household = touched[household_id] = self._household(household_id)
            statuses.append(household.observe(line))
        self.save(*touched.values())
        return statuses

    def advance(self, household_ids: list[str], until: int) -> None:
        households = [self._household(h) for h in household_ids]
        for household in households:
            household.advance(until)
        self.save(*households)


# -- the warning-ledger projection ------------------------------------------------


class WarningLedgerView(SQLiteTrackingRecorder):
    """Materialised view: one row per warning, updated with its tracking record."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS warning_ledger ("
            "warning_id TEXT PRIMARY KEY, rule_id TEXT, level TEXT, household_id TEXT, "
            "org_unit TEXT, raised_at TEXT, acknowledged_at TEXT, resolved_at TEXT, "
            "status TEXT, handling_level TEXT, handling_org_unit TEXT, "
            "escalations INTEGER) WITHOUT ROWID",
        ]

    def apply(self, record: dict[str, Any], tracking: Tracking) -> None:
        kind = record["type"]
        with self.datastore.transaction(commit=True) as c:
            if kind == "warning.raised":
                c.execute(
                    "INSERT OR IGNORE INTO warning_ledger VALUES (?,?,?,?,?,?,NULL,NULL,"
                    "'open',?,?,0)",
                    (record["warning_id"], record["rule_id"], record["level"],
                     record["household_id"], record["org_unit"], record["at"],
                     record["handling_level"], record["handling_org_unit"]),
                )
            elif kind == "warning.escalated":
                c.execute(
                    "UPDATE warning_ledger SET handling_level=?, handling_org_unit=?, "
                    "escalations=escalations+1 WHERE warning_id=?",
                    (record["to_level"], record["handling_org_unit"], record["warning_id"]),
                )
            elif kind == "warning.acknowledged":
                c.execute(
                    "UPDATE warning_ledger SET acknowledged_at=?, status='acknowledged' "
                    "WHERE warning_id=? AND status='open'",
                    (record["at"], record["warning_id"]),
                )
            elif kind == "warning.resolved":
                c.execute(
                    "UPDATE warning_ledger SET resolved_at=?, status='resolved' "
                    "WHERE warning_id=?",
                    (record["at"], record["warning_id"]),
                )
            self._insert_tracking(c, tracking)

    def ledger(self) -> Ledger:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT warning_id, level, status FROM warning_ledger")
            return {row[0]: (row[1], row[2]) for row in c.fetchall()}


class WarningLedgerProjection(Projection[WarningLedgerView]):
    name = "warningledger"
    topics: tuple[str, ...] = (get_topic(Household.LifecycleRecorded),)  # type: ignore[attr-defined]

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply(domain_event.record, tracking)


def catch_up(app: Intake, projection: WarningLedgerProjection, batch: int = 1000) -> int:
    """Process the application's notifications after the view's position (by topic)."""
    processed = 0
    position = projection.view.max_tracking_id(app.name)
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, topics=projection.topics, inclusive_of_start=False
        )
        if not notifications:
            return processed
        for notification in notifications:
            projection.process_event(
                app.mapper.to_domain_event(notification), Tracking(app.name, notification.id)
            )
            position = notification.id
        processed += len(notifications)


# -- running it -------------------------------------------------------------------


def _sqlite_env(path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    env.update(extra or {})
    return env


@contextmanager
def _no_env(*names: str) -> Iterator[None]:
    """Keep stray process env (e.g. a user's PERSISTENCE_MODULE) out of the peer."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def run_eventsourcing_peer(
    lines: Iterable[bytes | str],
    workdir: Path,
    as_of: int | None = None,
    cache_aggregates: bool = True,
    save_every: int = 1,
) -> dict[str, Any]:
    """Run the eventsourcing peer over ``lines`` (JSONL); returns timings and the ledger.

    ``cache_aggregates`` sets ``AGGREGATE_CACHE_MAXSIZE`` (the library's documented
    switch against re-reading every aggregate's events from the store per command).
    """
    extra = {"AGGREGATE_CACHE_MAXSIZE": "1000000"} if cache_aggregates else {}
    with _no_env("PERSISTENCE_MODULE", "SQLITE_DBNAME"):
        app = Intake(env=_sqlite_env(workdir / "intake.sqlite3", extra))
        factory = InfrastructureFactory[WarningLedgerView].construct(
            env=_sqlite_env(workdir / "view.sqlite3")
        )
        view = factory.tracking_recorder(WarningLedgerView)
    projection = WarningLedgerProjection(view=view)
    received = rejected = 0
    max_occurred: int | None = None
    pending: set[str] = set()
    batch: list[tuple[str, str]] = []
    instants: list[int] = []

    def flush() -> None:
        nonlocal max_occurred
        if save_every == 1:
            statuses = [app.record(line, household) for line, household in batch]
        else:
            statuses = app.record_batch(batch)
        for (_, household), at, status in zip(batch, instants, statuses, strict=True):
            if status == "processed":
                pending.add(household)
                if max_occurred is None or at > max_occurred:
                    max_occurred = at
        batch.clear()
        instants.clear()

    started = time.perf_counter()
    cpu_started = time.process_time()
    for line in lines:
        received += 1
        text = line.decode() if isinstance(line, bytes) else line
        decoded = decode(text)
        if isinstance(decoded, Rejected):
            rejected += 1
            continue
        batch.append((text, decoded.household_id))
        instants.append(decoded.occurred_us)
        if len(batch) >= save_every:
            flush()
    flush()
    intake_s = time.perf_counter() - started
    limit = max_occurred if as_of is None else as_of
    if limit is not None:
        ordered = sorted(pending)
        step = max(save_every, 1)
        for i in range(0, len(ordered), step):
            app.advance(ordered[i : i + step], limit)
    process_s = time.perf_counter() - started
    projected = catch_up(app, projection)
    total_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    ledger = view.ledger()
    app.close()
    return {
        "eventsourcing_version": EVENTSOURCING_VERSION,
        "persistence": "eventsourcing.sqlite",
        "aggregate_cache": cache_aggregates,
        "save_every": save_every,
        "received": received,
        "rejected_invalid": rejected,
        "intake_s": round(intake_s, 2),
        "process_s": round(process_s, 2),
        "projection_records": projected,
        "total_s": round(total_s, 2),
        "events_per_s": round(received / total_s) if total_s else 0,
        "cpu_s": round(cpu_s, 2),
        "events_per_cpu_s": round(received / cpu_s) if cpu_s else 0,
        "warnings": len(ledger),
        "ledger": ledger,
    }


def ledger_from_records(records: Iterable[Record]) -> Ledger:
    """jiahe's lifecycle records → warning_id → (level, status)."""
    ledger: dict[str, list[str]] = {}
    for record in records:
        kind, wid = record["type"], record.get("warning_id")
        if wid is None:  # a referral's records name no warning
            continue
        if kind == "warning.raised":
            ledger[wid] = [record["level"], "open"]
        elif kind == "warning.acknowledged" and ledger[wid][1] == "open":
            ledger[wid][1] = "acknowledged"
        elif kind == "warning.resolved":
            ledger[wid][1] = "resolved"
        elif kind == "warning.reopened":
            ledger[wid][1] = "open"
    return {wid: (level, status) for wid, (level, status) in ledger.items()}


def jiahe_ledger(lines: Iterable[bytes | str], as_of: int | None = None) -> Ledger:
    """The reference: ``Replay`` over the same lines."""
    replay = Replay(Engine(load_pack()))
    records = replay.feed_all(lines)
    records.extend(replay.finish(as_of))
    return ledger_from_records(records)


def _stream(events: int, households: int, path: Path) -> list[bytes]:
    write_jsonl(StreamSpec(events=events, households=households, seed=42), path)
    return path.read_bytes().splitlines()


def run(
    events: int, households: int | None = None, check_events: int = 3000,
    cache_aggregates: bool = True, save_every: tuple[int, ...] = (1, 1000),
) -> dict[str, Any]:
    """Equivalence on a small stream, then throughput on ``events``, per save policy."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="jiahe-peers-") as tmp:
        root = Path(tmp)
        small = _stream(check_events, max(check_events // 10, 10), root / "small.jsonl")
        reference = jiahe_ledger(small)
        lines = _stream(events, households or max(events // 10, 100), root / "full.jsonl")
        replay_started, replay_cpu = time.perf_counter(), time.process_time()
        jiahe_ledger(lines)
        replay_events_per_s = round(events / (time.perf_counter() - replay_started))
        replay_events_per_cpu_s = round(events / (time.process_time() - replay_cpu))
        for every in save_every:
            (root / f"check-{every}").mkdir()
            peer = run_eventsourcing_peer(
                small, root / f"check-{every}", cache_aggregates=cache_aggregates,
                save_every=every,
            )
            equal = peer.pop("ledger") == reference
            (root / f"full-{every}").mkdir()
            full = run_eventsourcing_peer(
                lines, root / f"full-{every}", cache_aggregates=cache_aggregates,
                save_every=every,
            )
            full.pop("ledger")
            full.update({
                "ledger_equal_on_check_stream": equal,
                "check_stream_events": check_events,
                "check_stream_warnings": len(reference),
                "jiahe_replay_events_per_s": replay_events_per_s,
                "jiahe_speedup": round(replay_events_per_s / max(full["events_per_s"], 1), 1),
                "jiahe_replay_events_per_cpu_s": replay_events_per_cpu_s,
                "jiahe_speedup_cpu": round(
                    replay_events_per_cpu_s / max(full["events_per_cpu_s"], 1), 1),
            })
            results[f"eventsourcing_save_every_{every}"] = full
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return results


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--households", type=int, default=None)
    parser.add_argument("--check-events", type=int, default=3000)
    parser.add_argument("--no-cache", action="store_true", help="AGGREGATE_CACHE_MAXSIZE off")
    parser.add_argument("--save-every", type=int, nargs="+", default=[1, 1000])
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.households, args.check_events,
                         not args.no_cache, tuple(args.save_every)), indent=2))


if __name__ == "__main__":
    main()
