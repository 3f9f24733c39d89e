"""Partition-explicit access to the faust state table, written once per batch.

Why not ``table[key] = value``: faust's table API takes the partition from "the event
being processed" and sends each changelog record through its one-at-a-time producer
buffer, which, at one write per household and batch, cost more than the rules
themselves (~40 µs a write). A batch knows each household's partition, so this adapter
uses the table's own pieces directly, in the order that keeps the store recoverable:

1. send the changelog records (the table's compacted changelog topic, the partition of
   the household's events) and await the broker's acks;
2. write the local store (rocksdict file of that partition, or the memory dict);
3. record the changelog offset as persisted (rocksdict), as faust does after a send.

So the changelog is never behind the local store: after a crash faust's recovery
replays from the last persisted offset and finds at least what the store has. Reads go
straight to the partition's store as well. faust still owns the table's lifecycle:
changelog topic creation, assignment, recovery, standby bookkeeping.

Store internals used: ``rocksdb.Store._db_for_partition`` / ``offset_key`` and
``memory.Store.data`` / ``_key_partition`` (faust-streaming 0.15.x, checked by
``streams.kafka.transport.check_versions``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from faust.stores import memory as memory_store
from faust.types import TP

from streams.ports import Send

#: (partition, key, value) of one write.
Write = tuple[int, bytes, bytes]


class StateStore:
    """Reads and batch writes of one faust table, partition by partition.

    The adapter of ``streams.ports.PartitionedStates`` (contract:
    ``tests/streams/contracts/test_partitioned_states.py``).
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data

    @property
    def _is_memory(self) -> bool:
        return isinstance(self._store, memory_store.Store)

    def get(self, partition: int, key: bytes) -> bytes | None:
        store = self._store
        if self._is_memory:
            value: bytes | None = store.data.get(key)
            return value
        db_value: bytes | None = store._db_for_partition(partition).get(key)
        return db_value

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) stored for ``partition`` (after recovery: the assigned ones)."""
        store = self._store
        if self._is_memory:
            data = store.data
            for key, owner in list(store._key_partition.items()):
                value = data.get(key)
                if owner == partition and value:
                    yield key, value
            return
        offset_key = store.offset_key
        for key, value in store._db_for_partition(partition).items():
            if key != offset_key and value:
                yield key, value

    async def write(self, send: Send, writes: Sequence[Write]) -> None:
        """Changelog first (acked), then the local store, then the persisted offsets."""
        if not writes:
            return
        topic = self.table.changelog_topic_name
        pending = [await send(topic, key, value, partition, None, None)
                   for partition, key, value in writes]
        acked = await asyncio.gather(*pending)
        store = self._store
        if self._is_memory:
            for partition, key, value in writes:
                store.data[key] = value
                store._key_partition[key] = partition
            return
        for partition, key, value in writes:
            store._db_for_partition(partition).put(key, value)
        last: dict[int, int] = {}
        for meta in acked:
            last[meta.partition] = max(meta.offset, last.get(meta.partition, -1))
        for partition, offset in last.items():
            store.set_persisted_offset(TP(topic, partition), offset)
