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

The override is tied to faust-streaming's ``Consumer._drain_messages`` (0.15.x, pinned in
requirements.lock); :func:`check_faust_version` refuses to run on another minor version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service

SCHEME = "jiahe"
SUPPORTED_FAUST = "0.15."


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


def check_faust_version() -> None:
    if not faust.__version__.startswith(SUPPORTED_FAUST):
        raise RuntimeError(
            f"streams.kafka.transport overrides faust-streaming {SUPPORTED_FAUST}x "
            f"internals; found faust-streaming {faust.__version__}"
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
            else:
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
        if batch:
            await handler.handle_batch(batch)


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`BatchConsumer`; selected by ``jiahe://`` URLs."""

    Consumer = BatchConsumer


def register() -> None:
    """Make ``jiahe://host:port`` broker URLs select :class:`BatchTransport`."""
    check_faust_version()
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:BatchTransport")


def assigned(app: Any, topic: str) -> set[int]:
    """Partitions of ``topic`` this worker currently owns."""
    return {tp.partition for tp in cast(set[TP], app.consumer.assignment()) if tp.topic == topic}


__all__ = ["BatchConsumer", "BatchHandler", "BatchTransport", "assigned", "register"]
