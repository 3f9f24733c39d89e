"""The faust app of the Kafka runtime: batches of events → engine → warnings, DLQ, state.

Faust provides the consumer group (partitions keyed by household), the state table
(rocksdict or memory store, compacted changelog, recovery on assignment), the producer,
offset commits and timers. :class:`WorkerRuntime` adds jiahe's processing, in an order
that makes at-least-once delivery safe without Kafka transactions:

1. compute the batch from the stored states (pure, :mod:`streams.kafka.batch`);
2. send lifecycle records and dead letters and await the broker's acks, flush the
   warehouse sink;
3. only then write the new states to the table (changelog);
4. only then ack the messages, so faust may commit their offsets (it flushes the
   producer, changelog included, before every commit).

A crash before 3 re-processes the batch from the old states and re-emits the same
records (deterministic, deduplicable by the ``record_id`` header); a crash after 3 finds
the new states, so the re-read events are duplicates and emit nothing. Households seen
in a batch are written back even when only duplicates arrived: a local store that got
ahead of its changelog before a crash must not keep that state to itself.

Deadlines (DESIGN.md): with the wall clock a timer fires, per partition, those due up to
a watermark: the broker timestamp of the newest record the worker has handled there,
minus an allowed lateness (``lateness_s``); or due up to now minus the lateness once the
partition has no lag. Every record appended before a deadline is therefore handled
before that deadline fires, even by a worker that stays behind (a steady load above its
``--max-rate``): its escalations come late by its lag in time plus the lateness, never
early. The events topic is created with ``message.timestamp.type=LogAppendTime``
(``streams.kafka.admin``), so the timestamps are the broker's clock; on a topic with
producer timestamps (CreateTime) the lateness also has to cover the producers' clocks.
With an event-time clock (``as_of``) a partition's deadlines due ≤ as_of fire once the
worker has read that partition up to its end offset as seen when the partition was
first assigned (so equivalence runs are deterministic). Batches and deadline firing run
one after the other in the fetch loop, never interleaved.

District surge rules (pack ``kind: surge``) run on the surge desk, kept by the owner of
partition 0, fed by every worker's batches and clock marks through ``jiahe.surge``
(:mod:`streams.kafka.surges`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP, Message

from events.instants import format_instant, now_micros
from privacy.quarantine import QuarantineSealer
from rules.engine import Engine, Record
from rules.pack import DEFAULT_PACK_PATH, load_pack
from rules.replay import Counts, fire_due
from rules.state import HouseholdState
from streams.kafka import transport
from streams.kafka.batch import (
    BatchProcessor,
    DeadLetter,
    Touched,
    lifecycle_message,
    merge_counts,
)
from streams.kafka.due_index import DueIndex
from streams.kafka.erasures import ErasureWatcher, erasures_topic_for
from streams.kafka.settings import WorkerSettings
from streams.kafka.state_store import StateStore
from streams.kafka.surges import (
    DESK_KEY,
    DESK_PARTITION,
    SurgeDesk,
    ensure_surge_topic,
    household_entries,
    marks_message,
)
from streams.kafka.throttle import Throttle
from streams.kafka.unreadable import UnreadableBatch

log = logging.getLogger("jiahe.worker")
STATE_TABLE = "household-state"
#: Wall clock: a worker sends its partitions' clock marks to the surge desk at most this
#: often (a day close waits that much longer; each mark costs the desk a state write).
MARK_INTERVAL_S = 5.0
#: Lifecycle ``seq`` for the warehouse: warnings-topic partition and offset in one number.
SEQ_PARTITION_SHIFT = 40


#: RocksDB sizing per partition store. faust's defaults (64 MiB write buffers, three of
#: them, and a 2 GiB block cache) are per partition: with 6 partitions a worker's memory
#: climbed past 2.9 GB in a 30-minute soak as memtables and caches filled. States are
#: small and rewritten often, so small memtables lose nothing; reads hit recent blocks.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 4 * 1024 * 1024,
}


def changelog_topic_name(app_id: str) -> str:
    """faust's name for the state table's changelog topic."""
    return f"{app_id}-{STATE_TABLE}-changelog"


class JiaheApp(faust.App):
    """A faust app that can hand batch topics to a :class:`transport.BatchHandler`."""

    batch_handler: transport.BatchHandler | None = None


def store_url(store: str) -> str:
    """rocksdb (rocksdict) when asked or available, else memory."""
    if store == "memory":
        return "memory://"
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        if store == "rocksdb":
            raise
        return "memory://"
    return "rocksdb://"


def faust_config(settings: WorkerSettings) -> dict[str, Any]:
    """faust settings: no web server, short timeouts when asked, no standby copies."""
    hosts = [h.strip() for h in settings.bootstrap.split(",") if h.strip()]
    session = settings.session_timeout_s
    return {
        "broker": [f"{transport.SCHEME}://{host}" for host in hosts],
        "store": store_url(settings.store),
        "datadir": str(settings.data_dir),
        "web_enabled": False,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "topic_disable_leader": True,
        "table_standby_replicas": 0,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": max(0.5, min(3.0, session / 5)),
        "broker_rebalance_timeout": max(session, 10.0),
        "broker_commit_interval": settings.commit_interval_s,
        "broker_max_poll_records": settings.fetch_limit,
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "producer_linger": 0.002,
        "producer_max_request_size": 4 * 1024 * 1024,
    }


class WorkerRuntime:
    """jiahe's processing inside the faust app (see the module docstring for the order)."""

    def __init__(self, app: JiaheApp, settings: WorkerSettings, engine: Engine,
                 sink: Any | None = None) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.sink = sink
        # Erasure markers (`jiahe erase --bootstrap`) only matter to a warehouse.
        self.erasures = ErasureWatcher(
            settings.bootstrap, erasures_topic_for(settings.topics.events)
        ) if sink is not None else None
        self.topics = settings.topics
        self.batch_topics = frozenset({settings.topics.events})
        self._next_tick = 0.0
        self.throttle = Throttle(settings.max_rate) if settings.max_rate else None
        self.processor = BatchProcessor(engine, QuarantineSealer(settings.quarantine_keys))
        self.index = DueIndex()
        self.counts = Counts()
        self.records_out = 0
        self.dead_letters_out = 0
        self.batches = 0
        #: Event-time clock: end offsets per partition when it was first assigned.
        self.targets: dict[int, int] = {}
        self.caught_up: set[int] = set()
        self.owned: set[int] = set()
        #: Wall clock: per partition, the newest broker timestamp (µs) of a handled record.
        self.watermarks: dict[int, int] = {}
        self.ready = False
        #: Surge rules: the clock marks sent last, and the desk while this worker keeps it.
        self.surges = bool(engine.pack.surges)
        self._marked: dict[int, int] = {}
        self._marked_at = 0.0
        self.desk: SurgeDesk | None = None
        self._desk_consumer: AIOKafkaConsumer | None = None
        self.table = app.Table(
            STATE_TABLE, key_type=bytes, value_type=bytes, partitions=settings.partitions,
            on_recover=self._on_recover, options=dict(ROCKSDB_OPTIONS),
        )
        self.state = StateStore(self.table)
        self.events_topic = app.topic(
            settings.topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
            value_serializer="raw", partitions=settings.partitions,
        )
        app.topics.add(self.events_topic)  # subscribe; BatchConsumer delivers to us

        async def report() -> None:
            log.info("worker %s", self.status())

        app.timer(10.0, name="jiahe-status")(report)

    # -- table access ---------------------------------------------------------

    def load(self, household_id: str, partition: int) -> HouseholdState | None:
        blob = self.state.get(partition, household_id.encode())
        return HouseholdState.from_bytes(blob) if blob else None

    async def _write(self, touched: dict[str, Touched]) -> None:
        writes = []
        for household_id, entry in touched.items():
            writes.append((entry.partition, household_id.encode(), entry.state.to_bytes()))
            self.index.update(household_id, entry.partition, entry.state.next_due)
        await self.state.write(self.app.producer.send, writes)

    # -- batches --------------------------------------------------------------

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Called by BatchConsumer with one fetch of events."""
        app = self.app
        consumer = app.consumer
        generation = app.consumer_generation_id
        owned = consumer.assignment()
        # Messages fetched under an earlier generation of a partition this worker owns
        # now: the consumer's position is already past them, so dropping them would skip
        # them for good unless faust seeks back to a committed offset (it does not for a
        # partition nobody committed yet). Such partitions are sought back to the first
        # of them, after this batch: they are read again under this generation
        # (duplicates of what another owner did meanwhile are harmless).
        rewind: dict[TP, int] = {}
        for m in messages:
            if m.generation_id != generation and m.tp in owned:
                rewind[m.tp] = min(m.offset, rewind.get(m.tp, m.offset))
        live = [m for m in messages
                if m.generation_id == generation and m.tp in owned and m.tp not in rewind]
        if live:
            await self._handle_live(live)
        for tp, offset in rewind.items():
            log.info("re-reading %s from %d (fetched under an earlier generation)", tp, offset)
            await consumer.seek(tp, offset)

    async def _handle_live(self, live: list[Message]) -> None:
        started = time.monotonic()
        consumer = self.app.consumer
        for message in live:
            consumer.track_message(message)
        result = self.processor.process(live, self.load)
        for household_id, entry in result.touched.items():
            self.index.update(household_id, entry.partition, entry.state.next_due)
        records = result.records
        if self.settings.as_of is not None:
            for partition, position in result.positions.items():
                target = self.targets.get(partition)
                if target is not None and position >= target:
                    self.caught_up.add(partition)
            as_of = self.settings.as_of
            fired = self._fire({p: as_of for p in self.owned & self.caught_up}, result.touched)
            records = records + fired
        try:
            await self._effects(records, result.dead_letters, result.event_rows, result.touched,
                                result.surge)
        except BaseException:
            self._restore_index(result.touched)
            raise
        for message in live:
            consumer.ack(message)
        self._advance_watermarks(live)
        merge_counts(self.counts, result.counts)
        self.batches += 1
        await self._throttle(len(live), started)

    async def _throttle(self, handled: int, started: float) -> None:
        """``--max-rate``: only ever delays the next fetch. What a partition's deadlines
        see ("read up to its end offset") is unchanged, so a throttled worker's records
        equal an unthrottled one's."""
        if self.throttle is not None:
            delay = self.throttle.delay_after(handled, started, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)

    def _advance_watermarks(self, handled: Sequence[Message]) -> None:
        """The newest broker timestamp each partition's handled records carry."""
        marks = self.watermarks
        for message in handled:
            if message.timestamp is None or message.timestamp < 0:
                continue  # a record of an old message format has none
            stamp = round(message.timestamp * 1_000_000)
            partition = message.tp.partition
            if stamp > marks.get(partition, stamp - 1):
                marks[partition] = stamp

    def _fire(self, limits: dict[int, int], touched: dict[str, Touched]) -> list[Record]:
        """Fire each partition's deadlines due ≤ its limit; states join ``touched``.

        Only partitions the consumer owns right now: ``self.owned`` is updated after a
        rebalance's recovery, and between the revocation and then it may still name
        partitions another worker owns (firing those would write this worker's stale
        states into their changelog).
        """
        assigned = transport.assigned(self.app, self.topics.events)
        records: list[Record] = []
        for partition in sorted(limits.keys() & assigned):
            limit = limits[partition]
            states: dict[str, HouseholdState] = {}
            for household_id in self.index.pop_due(partition, limit):
                entry = touched.get(household_id)
                if entry is None:
                    state = self.load(household_id, partition)
                    if state is None:
                        continue
                    entry = touched[household_id] = Touched(partition, state)
                states[household_id] = entry.state
            if states:
                records.extend(fire_due(self.engine, states, limit))
        return records

    def _restore_index(self, touched: dict[str, Touched]) -> None:
        """Effects failed: the popped deadlines must stay known (the table is unchanged)."""
        for household_id, entry in touched.items():
            state = self.load(household_id, entry.partition)
            self.index.update(household_id, entry.partition,
                              state.next_due if state is not None else None)

    async def _effects(self, records: list[Record], dead_letters: list[DeadLetter],
                       event_rows: list[dict[str, Any]], touched: dict[str, Touched],
                       surge: bytes | None = None) -> None:
        """Records, dead letters and surge observations acked, warehouse flushed, then
        state written."""
        send = self.app.producer.send
        pending = []
        if surge is not None:
            pending.append(await send(self.topics.surge, None, surge, 0, None, None))
        for record in records:
            key, value, headers = lifecycle_message(record)
            pending.append(await send(self.topics.warnings, key, value, None, None, headers))
        for letter in dead_letters:
            pending.append(
                await send(self.topics.dlq, letter.key, letter.value, None, None, letter.headers)
            )
        acked = await asyncio.gather(*pending) if pending else []
        if surge is not None:
            acked = acked[1:]
        if self.sink is not None and (event_rows or records):
            for row in event_rows:
                self.sink.add_event(row)
            for record, meta in zip(records, acked, strict=False):
                seq = (meta.partition << SEQ_PARTITION_SHIFT) | meta.offset
                self.sink.add_lifecycle({**record, "seq": seq})
            await asyncio.to_thread(self.sink.flush)
            await self._keep_erased({str(r["household_id"]) for r in (*event_rows, *records)})
        await self._write(touched)
        self.records_out += len(records)
        self.dead_letters_out += len(dead_letters)

    # -- deadlines and assignment ---------------------------------------------

    async def after_fetch(self) -> None:
        """The deadline timer, run by the fetch loop every ``tick_s`` between batches.

        Running it there, rather than as a separate faust timer, means it can never
        interleave with a batch, and every message fetched so far has been handled, so
        the consumer's positions say exactly how far this worker has read.
        """
        now = time.monotonic()
        if now < self._next_tick or not self.ready or self.app.rebalancing:
            return
        self._next_tick = now + self.settings.tick_s
        await self._keep_erased(set())
        if self.settings.as_of is None:
            limits = await self._wall_clock_limits(now_micros())
        else:
            as_of = self.settings.as_of
            limits = {partition: as_of for partition in await self._caught_up()}
        if self.app.rebalancing:  # started while we looked at the positions
            return
        touched: dict[str, Touched] = {}
        records = self._fire(limits, touched)
        if touched:
            try:
                await self._effects(records, [], [], touched)
            except BaseException:
                self._restore_index(touched)
                raise
        if self.surges:
            await self._surge_tick(limits)

    # -- surge rules (streams.kafka.surges) -------------------------------------

    async def _surge_tick(self, limits: dict[int, int]) -> None:
        """Send this worker's clock marks (each partition's deadline limit), then, as the
        owner of partition 0, run the desk."""
        owned = transport.assigned(self.app, self.topics.events)
        marks = {p: limit for p, limit in limits.items()
                 if p in owned and self._marked.get(p) != limit}
        now = time.monotonic()
        live = self.settings.as_of is None
        if marks and (not live or now - self._marked_at >= MARK_INTERVAL_S):
            future = await self.app.producer.send(self.topics.surge, None,
                                                  marks_message(marks), 0, None, None)
            await future
            self._marked.update(marks)
            self._marked_at = now
        if DESK_PARTITION in owned and DESK_PARTITION in self.owned:
            await self._run_desk()

    async def _run_desk(self) -> None:
        """Read the surge topic on from the desk's offset; close days; records, then state."""
        tp = TopicPartition(self.topics.surge, 0)
        if self.desk is None or self._desk_consumer is None:
            blob = self.state.get(DESK_PARTITION, DESK_KEY)
            self.desk = SurgeDesk(self.engine.pack, self.settings.partitions, blob)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                        group_id=None, enable_auto_commit=False,
                                        client_id=f"{self.settings.app_id}-surge-desk")
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, self.desk.offset)
            self._desk_consumer = consumer
        desk, before = self.desk, self.desk.offset
        fetched = await self._desk_consumer.getmany(tp, timeout_ms=50, max_records=5000)
        for message in fetched.get(tp, []):
            if isinstance(message.value, UnreadableBatch):
                log.error("surge desk: %s; skipped", message.value.reason)
                desk.offset = message.offset + 1
                continue
            desk.apply(message.value, message.offset)
        records = desk.close()
        if desk.offset == before and not records:
            return
        try:
            await self._effects(records, [], [], {})
            await self.state.write(self.app.producer.send,
                                   [(DESK_PARTITION, DESK_KEY, desk.to_bytes())])
        except BaseException:
            await self._close_desk()  # reloaded from the table on the next tick
            raise

    async def _close_desk(self) -> None:
        """Forget the desk (another worker may keep it now; the table holds its state)."""
        consumer, self._desk_consumer, self.desk = self._desk_consumer, None, None
        if consumer is not None:
            await consumer.stop()

    async def _keep_erased(self, written: set[str]) -> None:
        """Delete the directory rows of erased households (streams.kafka.erasures)."""
        if self.erasures is None or self.sink is None:
            return
        self.erasures.poll()
        due = self.erasures.due(written)
        if due:
            await asyncio.to_thread(self.erasures.keep_erased, self.sink.warehouse, due)

    async def _wall_clock_limits(self, now: int) -> dict[int, int]:
        """Per owned partition, the latest deadline the wall clock may fire there.

        A worker with a backlog (after downtime, or under a load above ``--max-rate``)
        must not escalate a warning whose acknowledgement is still waiting in that
        backlog. A partition with no lag fires what is due by now; one behind fires what
        is due by its watermark (the broker's append time of the newest record handled
        there): an acknowledgement appended before a deadline D sits before any record
        appended after D, so it has been handled once the watermark passed D. Both are
        held back by the lateness, which covers the delay between an append and the
        fetch that reports it (a lag-free partition's end offset comes from the last
        fetch), the skew between the broker's clock and this host's, and on a
        CreateTime topic the producers' clocks and delays.
        """
        lateness = round(self.settings.lateness_s * 1_000_000)
        limits = {partition: now - lateness for partition in await self._lag_free()}
        for partition in self.owned - limits.keys():
            mark = self.watermarks.get(partition)
            if mark is not None:
                limits[partition] = min(now, mark) - lateness
        return limits

    async def _lag_free(self) -> set[int]:
        """Owned partitions read up to the end the last fetch reported."""
        consumer = self.app.consumer
        free = set()
        for partition in sorted(self.owned):
            tp = TP(self.topics.events, partition)
            try:
                end = consumer.highwater(tp)
                position = await consumer.position(tp)
            except Exception as exc:  # revoked meanwhile, or nothing fetched yet
                log.debug("lag of partition %s unknown: %r", partition, exc)
                continue
            if end is not None and position is not None and position >= end:
                free.add(partition)
        return free

    async def _caught_up(self) -> set[int]:
        """Owned partitions read up to their target (end offset when first assigned)."""
        for partition in sorted(self.owned - self.caught_up):
            target = self.targets.get(partition)
            if target is None:
                continue
            try:
                position = await self.app.consumer.position(TP(self.topics.events, partition))
            except Exception as exc:  # revoked meanwhile, or not yet seeked: try next tick
                log.debug("position of partition %s unknown: %r", partition, exc)
                continue
            if position is not None and position >= target:
                self.caught_up.add(partition)
        return self.owned & self.caught_up

    async def _on_recover(self) -> None:
        """After faust restored the table for a new assignment: rebuild the deadline index.

        The index is rebuilt for *every* owned partition, not only the newly assigned
        ones. faust calls this once per completed recovery, but a recovery interrupted by
        another rebalance never calls it (and an interrupted one may call it with the next
        generation's assignment before that generation's recovery ran). So a partition can
        look "kept" here although another worker owned it in between and wrote states
        (new deadlines) this worker's index never saw, or although it was indexed from a
        table not yet restored. The table is the truth; the index must be reloaded from it.
        """
        owned = transport.assigned(self.app, self.topics.events)
        await self._close_desk()  # the table is its truth too: reload it when kept again
        for partition in (self.index.partitions() | self.owned) - owned:
            self.index.drop_partition(partition)
        self.watermarks = {p: mark for p, mark in self.watermarks.items() if p in owned}
        self.caught_up &= owned
        fresh = owned - self.owned
        self._index_partitions(owned)
        if self.settings.as_of is not None and owned:
            await self._remember_targets(owned)
        await self._rewind_uncommitted(owned)
        self.owned = owned
        self.ready = True
        log.info("assigned partitions %s (new %s); %d households with deadlines",
                 sorted(owned), sorted(fresh), len(self.index))

    async def _rewind_uncommitted(self, partitions: set[int]) -> None:
        """Put owned event partitions at their start before faust seeks to committed offsets.

        Right after an assignment the fetcher may already have fetched records of a
        partition, which faust's ``getmany`` then discards (the partition got paused for
        recovery, or the generation changed while it iterated): the consumer position has
        moved past records nobody handled. faust's ``perform_seek`` (which runs right
        after this callback) moves partitions with a committed offset back to it, but
        leaves a partition nobody committed yet where it is, so its first records were
        skipped for good (a worker joining mid-stream lost the first events of a
        partition the other worker had not reached). Seeking every owned partition to
        offset 0 here makes those start over (``auto_offset_reset`` earliest covers a
        truncated log); committed ones are moved to their offset by ``perform_seek``.
        """
        consumer = self.app.consumer
        for partition in sorted(partitions):
            tp = TP(self.topics.events, partition)
            try:
                await consumer.seek(tp, 0)
            except Exception as exc:  # revoked meanwhile: the next recovery seeks again
                log.warning("could not rewind partition %s: %r", partition, exc)

    def _index_partitions(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.index.replace_partition(partition, (
                (key.decode(), HouseholdState.from_bytes(blob).next_due)
                for key, blob in household_entries(self.state.items(partition))
            ))

    async def _remember_targets(self, partitions: set[int]) -> None:
        missing = [TP(self.topics.events, p) for p in sorted(partitions) if p not in self.targets]
        if not missing:
            return
        ends = await self.app.consumer.highwaters(*missing)
        for tp, end in ends.items():
            self.targets[tp.partition] = end
        log.info("event-time clock: deadlines fire once caught up with %s", self.targets)

    def status(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "received": counts.received,
            "processed": counts.processed,
            "duplicates": counts.duplicates,
            "rejected": counts.rejected,
            "batches": self.batches,
            "records_out": self.records_out,
            "dead_letters_out": self.dead_letters_out,
            "owned": sorted(self.owned),
            "caught_up": sorted(self.caught_up),
            "watermarks": {p: format_instant(w) for p, w in sorted(self.watermarks.items())},
            "households_with_deadlines": len(self.index),
        }


def build_app(settings: WorkerSettings, sink: Any | None = None) -> tuple[JiaheApp, WorkerRuntime]:
    """A configured app and its runtime; ``app.main()`` or a faust Worker runs it."""
    transport.register()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = JiaheApp(settings.app_id, **faust_config(settings))
    engine = Engine(load_pack(settings.pack or DEFAULT_PACK_PATH))
    if engine.pack.surges:
        ensure_surge_topic(settings.bootstrap, settings.topics.surge, settings.replication)
    runtime = WorkerRuntime(app, settings, engine, sink)
    app.batch_handler = runtime
    return app, runtime
