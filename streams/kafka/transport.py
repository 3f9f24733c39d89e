"""A faust transport whose consumer hands whole fetched batches to the worker.

Why not ``stream.take()``: faust moves every message through the conductor, a channel
queue and the stream iterator, with a task pair per message in ``_drain_messages``
(``wait_first``); on these 2-core machines that path tops out near 11-14k messages/s
even when the agent does nothing with them, below the 20k events/s the worker must
reach. This consumer keeps faust's own fetch (``getmany``: generation checks, round
robin, flow control), offset gap tracking, ack bookkeeping and commit path, and only
changes the delivery: messages of the batch topics (``jiahe.events``) go to the
registered :class:`BatchHandler` as one list per fetch, like ``take_events`` would yield
them; every other topic (table changelogs during recovery) still goes through faust's
conductor message by message. The handler tracks and acks the messages itself, so
faust commits an offset only after the handler finished with it.

A record batch that cannot be read (it does not decompress, its CRC is wrong) must not
stop the worker: aiokafka raises while it unpacks such a batch inside ``getmany``, before
any of the fetch reaches the worker, and the next fetch after a restart raises again.
:class:`SkippingPartitionRecords` (installed by :func:`register`) hands out one
:class:`~streams.kafka.unreadable.UnreadableBatch` message in its place and moves past
it; the worker dead-letters that message. Only ``jiahe.events`` accepts them: a stand-in
from any other topic (the state table's changelog, which the worker wrote itself) stops
the consumer as before, with the reason.

The overrides are tied to faust-streaming's ``Consumer._drain_messages`` (0.15.x) and to
aiokafka's ``PartitionRecords`` (0.14.x), both pinned in requirements.lock;
:func:`check_versions` refuses to run on another minor version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, cast

import aiokafka
import faust
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service

from streams.kafka.unreadable import LastBatch, UnreadableBatch, unreadable_reason

SCHEME = "jiahe"
SUPPORTED_FAUST = "0.15."
SUPPORTED_AIOKAFKA = "0.14."
log = logging.getLogger(__name__)


class BatchHandler(Protocol):
    """The worker side: which topics it takes in batches, and what to do with them.

    Both methods run in the fetch loop, one after the other: ``after_fetch`` (called after
    every fetch, empty ones included, so at least every second) sees no message fetched
    and not yet handled, which is what makes consumer positions exact there.
    """

    batch_topics: frozenset[str]

    async def handle_batch(self, messages: Sequence[Message]) -> None: ...

    async def after_fetch(self) -> None: ...


class HasBatchHandler(Protocol):
    batch_handler: BatchHandler | None


def check_versions() -> None:
    for name, module, supported in (("faust-streaming", faust, SUPPORTED_FAUST),
                                    ("aiokafka", aiokafka, SUPPORTED_AIOKAFKA)):
        if not module.__version__.startswith(supported):
            raise RuntimeError(
                f"streams.kafka.transport overrides {name} {supported}x "
                f"internals; found {name} {module.__version__}"
            )


class SkippingPartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one fetched partition; an unreadable batch becomes one message.

    aiokafka's iterator raises on the first batch it cannot read; its position stays
    before that batch, so the same fetch fails forever. Here the error ends only the
    current iterator: the batch (its offsets from its header, which the broker
    validated) is handed out as one stand-in message at its last offset, the position
    moves past it, and a fresh iterator goes on with the next batch of the fetch.
    Records of the batch already handed out before the error keep their offsets.
    """

    next_fetch_offset: int  # set by aiokafka: the offset after the last record handed out

    def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tp, LastBatch(records), *args, **kwargs)

    def _unpack_records(self) -> Iterator[ConsumerRecord[Any, Any]]:
        records: LastBatch = self._records
        while True:
            try:
                yield from super()._unpack_records()
                return
            except Exception as exc:
                batch = records.last
                if batch is None:  # not a batch of ours that failed: aiokafka's error
                    raise
                records.last = None
                yield self._unreadable(batch, exc)

    def _unreadable(self, batch: Any, exc: Exception) -> ConsumerRecord[Any, Any]:
        first = max(self.next_fetch_offset, getattr(batch, "base_offset", 0))
        last = max(first, batch.next_offset - 1)
        codec = getattr(batch, "compression_type", None)
        reason = unreadable_reason(first, last, codec, exc)
        tp = self._tp
        log.error("%s[%d]: %s; handed on as one message, reading on",
                  tp.topic, tp.partition, reason)
        self.next_fetch_offset = last + 1
        return ConsumerRecord(
            tp.topic, tp.partition, last, getattr(batch, "max_timestamp", -1),
            getattr(batch, "timestamp_type", 0), None, UnreadableBatch(first, last, reason),
            None, -1, 0, (),
        )


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, delivering batch-topic messages one fetch at a time."""

    async def _drain_messages(self, fetcher: Service) -> None:  # type: ignore[override]
        handler = cast(HasBatchHandler, self.app).batch_handler
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                await self._fetch_and_handle(handler)
                await handler.after_fetch()
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise

    async def _fetch_and_handle(self, handler: BatchHandler) -> None:
        """One ``getmany``: the same offset/gap bookkeeping as faust, batch delivery."""
        batch: list[Message] = []
        topics = handler.batch_topics
        read_offset = self._read_offset
        if self.should_stop:
            return
        async for tp, message in self.getmany(timeout=1.0):
            offset = message.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue  # already read (a re-fetch after seek); faust drops these too
            if last and offset - last > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, last + 1, offset)
            if message.topic in topics:
                batch.append(message)
            elif isinstance(message.value, UnreadableBatch):
                raise RuntimeError(f"{message.topic}[{message.partition}]: "
                                   f"{message.value.reason}")
            else:
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
        if batch:
            await handler.handle_batch(batch)


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`BatchConsumer`; selected by ``jiahe://`` URLs."""

    Consumer = BatchConsumer


def register() -> None:
    """Make ``jiahe://host:port`` broker URLs select :class:`BatchTransport`, and let
    aiokafka's fetcher hand out unreadable batches (:class:`SkippingPartitionRecords`;
    the fetcher looks the class up in its module on every fetch)."""
    check_versions()
    aiokafka_fetcher.PartitionRecords = SkippingPartitionRecords
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:BatchTransport")


def assigned(app: Any, topic: str) -> set[int]:
    """Partitions of ``topic`` this worker currently owns."""
    return {tp.partition for tp in cast(set[TP], app.consumer.assignment()) if tp.topic == topic}


__all__ = ["BatchConsumer", "BatchHandler", "BatchTransport", "SkippingPartitionRecords",
           "assigned", "register"]
