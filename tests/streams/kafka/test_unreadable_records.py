"""The consumer's side of an unreadable batch (streams.kafka.transport), without a broker.

Record batches are built with aiokafka's own builder (the bytes a broker serves), then
spoiled as a disk or a producer bug would spoil them; aiokafka's fetch-side reader
(``MemoryRecords``) reads them through :class:`SkippingPartitionRecords`.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.record._crc32c import crc as crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.kafka.transport import SkippingPartitionRecords
from streams.kafka.unreadable import UnreadableBatch

LZ4 = 3
TP = TopicPartition("t.events", 1)
#: v2 batch header: base offset (8), length (4), leader epoch (4), magic (1), CRC (4);
#: the CRC covers everything from the attributes on.
CRC_AT, ATTRIBUTES_AT, HEADER = 17, 21, 61


def batch(base: int, values: list[bytes], codec: int = LZ4) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_700_000_000_000, key=b"hh-1", value=value, headers=[])
    data = builder.build()
    struct.pack_into(">q", data, 0, base)
    return data


def spoil_payload(data: bytearray) -> bytearray:
    """Flip compressed bytes and fix the CRC: the batch checks out, its payload does not."""
    for at in range(HEADER + 4, len(data) - 4):
        data[at] ^= 0x5A
    struct.pack_into(">I", data, CRC_AT, crc32c(bytes(data[ATTRIBUTES_AT:])))
    return data


def spoil_crc(data: bytearray) -> bytearray:
    data[-1] ^= 0xFF
    return data


def values(n: int, tag: str) -> list[bytes]:
    return [f'{{"n": {i}, "tag": "{tag}", "pad": "{"x" * 200}"}}'.encode() for i in range(n)]


def read(*batches: bytearray, fetch_offset: int = 0) -> list[Any]:
    records = MemoryRecords(bytes(b"".join(batches)))
    partition = SkippingPartitionRecords(TP, records, [], fetch_offset, None, None, True, 0)
    out = list(partition)
    assert partition.next_fetch_offset == out[-1].offset + 1
    return out


@pytest.mark.parametrize("spoil", [spoil_payload, spoil_crc], ids=["payload", "crc"])
def test_an_unreadable_batch_is_one_message_and_the_next_batches_are_read(spoil: Any) -> None:
    got = read(batch(0, values(3, "a")), spoil(batch(3, values(5, "b"))),
               batch(8, values(2, "c")))

    assert [m.offset for m in got] == [0, 1, 2, 7, 8, 9]
    stand_in = got[3]
    assert isinstance(stand_in.value, UnreadableBatch) and stand_in.key is None
    assert (stand_in.value.first, stand_in.value.last) == (3, 7)
    assert stand_in.value.reason.startswith("record batch at offsets 3-7 (lz4) could not be read")
    assert [m.value for m in got[4:]] == values(2, "c")


def test_a_fetch_starting_inside_the_batch_names_only_the_offsets_not_yet_read() -> None:
    """A fetch from offset 5 gets the whole batch 3-7; offsets 3 and 4 were handled before."""
    got = read(spoil_payload(batch(3, values(5, "b"))), fetch_offset=5)

    assert [(m.offset, m.value.first, m.value.last) for m in got] == [(7, 5, 7)]


def test_readable_batches_come_as_aiokafka_gives_them() -> None:
    got = read(batch(0, values(2, "a")), batch(2, values(2, "b"), codec=0))

    assert [(m.offset, m.value) for m in got] == list(enumerate(values(2, "a") + values(2, "b")))
