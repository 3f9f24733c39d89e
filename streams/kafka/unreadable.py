"""A fetched record batch the consumer could not read, standing in for its records.

Why a stand-in rather than an error: aiokafka decompresses a batch (and checks its CRC)
while it hands out the batch's records. A batch it cannot read (a corrupt compressed
payload, a codec it has no library for) raises from inside ``getmany``, the consumer's
position stays before the batch, and every restart fetches the same batch and raises
again: one bad producer stops the whole consumer group. The consumer
(:mod:`streams.kafka.transport`) therefore hands out one :class:`UnreadableBatch`
message for such a batch instead, at the batch's last offset, and moves past it. Its
``value`` is this marker, an empty ``bytes`` that names the offsets it covers and why
they could not be read; the worker dead-letters it like any refused input
(:mod:`streams.kafka.batch`). No producer can send one: only the consumer makes them,
so a record whose value merely looks like it stays an ordinary record.
"""

from __future__ import annotations

from typing import Any

#: Kafka's codec ids (the low bits of a record batch's attributes).
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class UnreadableBatch(bytes):
    """The (empty) value of a stand-in message: offsets ``first``..``last`` and why."""

    first: int
    last: int
    reason: str

    def __new__(cls, first: int, last: int, reason: str) -> UnreadableBatch:
        marker = super().__new__(cls, b"")
        marker.first, marker.last, marker.reason = first, last, reason
        return marker

    def __repr__(self) -> str:
        return f"UnreadableBatch({self.first}, {self.last}, {self.reason!r})"


class LastBatch:
    """The fetched records of one partition, remembering the batch last taken from them:
    the batch a consumer could not read, to name its offsets (aiokafka's and
    kafka-python's record iterators alike)."""

    def __init__(self, records: Any) -> None:
        self._records = records
        self.last: Any = None

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        self.last = None  # a batch whose header cannot be parsed is not remembered
        self.last = self._records.next_batch()
        return self.last


def unreadable_reason(first: int, last: int, codec: int | None, exc: BaseException) -> str:
    """``record batch at offsets 3-7 (lz4) could not be read: DecompressionError: …``"""
    name = CODECS.get(codec, f"codec {codec}") if codec is not None else "unknown codec"
    return (f"record batch at offsets {first}-{last} ({name}) could not be read: "
            f"{type(exc).__name__}: {exc}")
