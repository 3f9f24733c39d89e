"""``ErasableKeyStore``: wrapped keys round-trip by household and by kid; erasure shreds them.

Adapters: the embedded log's ``SqliteKeys``, the Kafka runtime's ``SqliteKeyStore``
and ``streams.memory.MemoryKeyStore``.
"""

from __future__ import annotations

from pathlib import Path

from privacy.crypto import StoredKey
from privacy.keystore import KEYSTORE_FILE, SqliteKeyStore
from streams.embedded.log import SqliteLog
from streams.embedded.sqlite_keys import SqliteKeys
from streams.memory import MemoryKeyStore
from streams.ports import ErasableKeyStore
from tests.streams.contracts.base import Contract


def key(household_id: str, kid: str) -> StoredKey:
    return StoredKey(household_id, kid, b"\x01" * 60, "master-1")


class KeyStoreContract(Contract[ErasableKeyStore]):
    def test_an_empty_store(self, adapter: ErasableKeyStore) -> None:
        assert adapter.key_count() == 0 and adapter.erasure_generation() == 0
        assert adapter.key_of_household("hh-1") is None and adapter.key_by_kid("k1") is None
        assert not adapter.is_erased("hh-1") and adapter.erased_households() == []

    def test_a_stored_key_is_found_by_household_and_by_kid(
        self, adapter: ErasableKeyStore
    ) -> None:
        adapter.store_key(key("hh-1", "k1"))
        adapter.store_key(key("hh-2", "k2"))
        assert adapter.key_of_household("hh-1") == key("hh-1", "k1")
        assert adapter.key_by_kid("k2") == key("hh-2", "k2")
        assert adapter.key_count() == 2

    def test_erase_deletes_the_key_and_marks_the_household(
        self, adapter: ErasableKeyStore
    ) -> None:
        adapter.store_key(key("hh-1", "k1"))
        adapter.store_key(key("hh-2", "k2"))
        done = adapter.erase("hh-1")
        assert done["household_id"] == "hh-1"
        assert done["key_deleted"] and not done["already_erased"]
        assert adapter.key_of_household("hh-1") is None and adapter.key_by_kid("k1") is None
        assert adapter.is_erased("hh-1") and not adapter.is_erased("hh-2")
        assert adapter.key_of_household("hh-2") == key("hh-2", "k2")
        assert adapter.key_count() == 1 and adapter.erased_households() == ["hh-1"]

    def test_erase_is_idempotent_and_moves_the_generation_every_time(
        self, adapter: ErasableKeyStore
    ) -> None:
        adapter.store_key(key("hh-1", "k1"))
        adapter.erase("hh-1")
        again = adapter.erase("hh-1")
        assert again["already_erased"] and not again["key_deleted"]
        assert adapter.erasure_generation() == 2

    def test_a_household_with_no_key_can_be_erased(self, adapter: ErasableKeyStore) -> None:
        done = adapter.erase("hh-b")
        adapter.erase("hh-a")
        assert not done["key_deleted"] and not done["already_erased"]
        assert adapter.erased_households() == ["hh-a", "hh-b"]


class TestEmbeddedLogKeys(KeyStoreContract):
    def make_adapter(self, tmp_path: Path) -> SqliteKeys:
        self.log = SqliteLog(tmp_path / "log.sqlite3")
        return self.log.keys

    def close_adapter(self, adapter: ErasableKeyStore) -> None:
        self.log.close()


class TestKafkaKeyStore(KeyStoreContract):
    def make_adapter(self, tmp_path: Path) -> SqliteKeyStore:
        return SqliteKeyStore(tmp_path / KEYSTORE_FILE)


class TestMemoryKeyStore(KeyStoreContract):
    def make_adapter(self, tmp_path: Path) -> MemoryKeyStore:
        return MemoryKeyStore()
