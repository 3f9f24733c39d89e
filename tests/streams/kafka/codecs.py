"""Producing in each Kafka codec from outside the project (kcat) and seeing what arrived.

``kcat`` is Debian's (librdkafka inside), an independent client: what it writes is what
Java clients, librdkafka gateways and Kafka Connect write. Without kcat the tests that
need it are skipped, except where ``JIAHE_REQUIRE_KCAT=1`` (``make test``, CI) makes that
a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from kafka import KafkaConsumer

from streams.kafka.unreadable import CODECS as CODEC_IDS

REQUIRE_KCAT = "JIAHE_REQUIRE_KCAT"
#: Every codec a producer may use, in the order the tests publish them.
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def kcat_path() -> str:
    path = shutil.which("kcat")
    if path is None:
        missing = "kcat is not installed (apt-get install kcat)"
        if os.environ.get(REQUIRE_KCAT) == "1":  # CI: a missing kcat is a failure
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return path


def household_key(line: bytes) -> bytes:
    """The key a gateway would use: the household, or nothing for input that names none."""
    try:
        household = orjson.loads(line).get("household_id")
    except (orjson.JSONDecodeError, AttributeError):
        return b""
    return household.encode() if isinstance(household, str) else b""


def kcat_publish(kcat: str, bootstrap: str, topic: str, lines: Sequence[bytes], codec: str,
                 workdir: Path) -> None:
    """``kcat -P`` keyed by household, compressed with ``codec``, Java's partitioner
    (murmur2, as kafka-python and Java clients use), all acknowledged."""
    path = workdir / f"kcat-{codec}.tsv"
    path.write_bytes(b"".join(household_key(line) + b"\t" + line + b"\n" for line in lines))
    done = subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l",
         "-X", f"compression.codec={codec}", "-X", "partitioner=murmur2_random",
         "-X", "linger.ms=50", "-X", "acks=all", str(path)],
        capture_output=True, timeout=120,
    )
    assert done.returncode == 0 and b"ERROR" not in done.stderr, done.stderr.decode()


def chunks(lines: Sequence[bytes], n: int) -> list[list[bytes]]:
    """``lines`` cut into ``n`` consecutive parts (publish order is kept across them)."""
    size = -(-len(lines) // n)
    return [list(lines[i:i + size]) for i in range(0, len(lines), size)]


class _Noting:
    """A partition's fetched records, noting the codec of every batch taken from them."""

    def __init__(self, records: Any, seen: Counter[str]) -> None:
        self._records, self._seen = records, seen

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is not None:
            self._seen[CODEC_IDS[getattr(batch, "compression_type", 0)]] += 1
        return batch


def batch_codecs(bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many record batches of ``topic`` are stored in each codec (as fetched)."""
    seen: Counter[str] = Counter()
    base = aiokafka_fetcher.PartitionRecords

    class Noting(base):  # type: ignore[misc, valid-type]
        def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(tp, _Noting(records, seen), *args, **kwargs)

    metadata = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = sorted(metadata.partitions_for_topic(topic) or ())
    finally:
        metadata.close()
    assert partitions, f"{topic} has no partitions"

    async def read() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                await consumer.getmany(timeout_ms=500)
        finally:
            await consumer.stop()

    with monkeypatch.context() as patch:
        patch.setattr(aiokafka_fetcher, "PartitionRecords", Noting)
        asyncio.run(asyncio.wait_for(read(), 60))
    return seen
