"""``PartitionedStates``: the Kafka worker's state table over a real faust store.

``streams.kafka.state_store.StateStore`` over faust's rocksdb store (rocksdict files
under the app's data dir) and over its memory store. The changelog producer is the
one part played here (``Changelog``): it records what was sent and acks with
increasing offsets per partition, or fails, as a broker would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from faust.types import TP

from streams.kafka.app import ROCKSDB_OPTIONS, STATE_TABLE, JiaheApp
from streams.kafka.state_store import StateStore
from tests.streams.contracts.base import Contract

PARTITIONS = 3


class Acked(NamedTuple):
    partition: int
    offset: int


class Changelog:
    """The ``producer.send`` a StateStore is given: records sends, acks them in order."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, int, bytes, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int,
                   timestamp: Any, headers: Any) -> asyncio.Future[Acked]:
        if self.fail:
            raise ConnectionError("broker unreachable")
        offset = sum(1 for _, p, _, _ in self.sent if p == partition)
        self.sent.append((topic, partition, key, value))
        acked: asyncio.Future[Acked] = asyncio.get_running_loop().create_future()
        acked.set_result(Acked(partition, offset))
        return acked


def write(store: StateStore, writes: list[tuple[int, bytes, bytes]],
          changelog: Changelog | None = None) -> Changelog:
    changelog = changelog or Changelog()
    asyncio.run(store.write(changelog.send, writes))
    return changelog


def faust_table(data_dir: Path, store_url: str) -> Any:
    app = JiaheApp("contract", broker="kafka://127.0.0.1:9", store=store_url,
                   datadir=str(data_dir), web_enabled=False)
    return app.Table(STATE_TABLE, key_type=bytes, value_type=bytes, partitions=PARTITIONS,
                     options=dict(ROCKSDB_OPTIONS))


def close_table(table: Any) -> None:
    for db in getattr(table.data, "_dbs", {}).values():
        db.close()


class PartitionedStatesContract(Contract[StateStore]):
    store_url = ""

    def make_adapter(self, tmp_path: Path) -> StateStore:
        return StateStore(faust_table(tmp_path / "data", self.store_url))

    def close_adapter(self, adapter: StateStore) -> None:
        close_table(adapter.table)

    def test_an_absent_key_reads_none(self, adapter: StateStore) -> None:
        assert adapter.get(0, b"hh-1") is None
        assert list(adapter.items(0)) == []

    def test_writes_are_read_back_by_partition(self, adapter: StateStore) -> None:
        write(adapter, [(0, b"hh-1", b"s1"), (1, b"hh-2", b"s2"), (0, b"hh-3", b"s3")])
        write(adapter, [(0, b"hh-1", b"s1-new")])
        assert adapter.get(0, b"hh-1") == b"s1-new" and adapter.get(1, b"hh-2") == b"s2"
        assert sorted(adapter.items(0)) == [(b"hh-1", b"s1-new"), (b"hh-3", b"s3")]
        assert list(adapter.items(1)) == [(b"hh-2", b"s2")]
        assert list(adapter.items(2)) == []

    def test_every_write_goes_to_the_changelog_partition_of_its_household(
        self, adapter: StateStore
    ) -> None:
        changelog = write(adapter, [(2, b"hh-1", b"s1"), (1, b"hh-2", b"s2")])
        topic = adapter.table.changelog_topic_name
        assert changelog.sent == [(topic, 2, b"hh-1", b"s1"), (topic, 1, b"hh-2", b"s2")]

    def test_nothing_is_stored_when_the_changelog_cannot_be_sent(
        self, adapter: StateStore
    ) -> None:
        write(adapter, [(0, b"hh-1", b"old")])
        with pytest.raises(ConnectionError):
            write(adapter, [(0, b"hh-1", b"new"), (0, b"hh-2", b"s2")], Changelog(fail=True))
        assert adapter.get(0, b"hh-1") == b"old" and adapter.get(0, b"hh-2") is None

    def test_an_empty_value_is_not_a_state(self, adapter: StateStore) -> None:
        write(adapter, [(0, b"hh-1", b"s1"), (0, b"hh-2", b"")])
        assert list(adapter.items(0)) == [(b"hh-1", b"s1")]

    def test_no_writes_send_nothing(self, adapter: StateStore) -> None:
        assert write(adapter, []).sent == []


class TestRocksdbStates(PartitionedStatesContract):
    store_url = "rocksdb://"

    def test_the_persisted_offset_is_the_last_acked_one_per_partition(
        self, adapter: StateStore
    ) -> None:
        changelog = write(adapter, [(0, b"a", b"1"), (1, b"b", b"1"), (0, b"c", b"1")])
        write(adapter, [(0, b"a", b"2")], changelog)
        topic = adapter.table.changelog_topic_name
        offsets = {p: adapter.table.data.persisted_offset(TP(topic, p)) for p in range(3)}
        assert offsets == {0: 2, 1: 0, 2: None}
        assert (b"c", b"1") in list(adapter.items(0))  # the offset key is not a state

    def test_states_survive_a_restart(self, tmp_path: Path) -> None:
        first = faust_table(tmp_path / "data", self.store_url)
        write(StateStore(first), [(1, b"hh-1", b"s1")])
        close_table(first)
        again = faust_table(tmp_path / "data", self.store_url)
        try:
            assert list(StateStore(again).items(1)) == [(b"hh-1", b"s1")]
        finally:
            close_table(again)


class TestMemoryStates(PartitionedStatesContract):
    store_url = "memory://"


@pytest.fixture(autouse=True)
def _no_leftover_loop() -> Iterator[None]:
    yield
    asyncio.set_event_loop(None)
