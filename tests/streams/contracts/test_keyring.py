"""Keyrings over each key store: sealing, opening, and erasure seen by every reader.

The embedded log's keyring (``SqliteLog.keyring`` over ``SqliteKeys``) and the Kafka
publishers' ``KafkaKeyring`` (over ``SqliteKeyStore``) must give the same guarantees;
``Home`` hides how each is opened, committed and erased.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from privacy.crypto import ERASED, UNREADABLE, Keyring, is_envelope
from privacy.keystore import KafkaKeyring, kafka_keyring
from streams.embedded.log import SqliteLog
from tests.streams.contracts.base import visit_line

SECRET = "PRIVATE 王某某 13800138000"


def event(household_id: str, eid: str, notes: str = SECRET) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(visit_line(household_id, eid, notes=notes))
    return body


class Home(ABC):
    """Keyrings of one home: each ``open()`` is another process's view of the same store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened: list[Any] = []

    @abstractmethod
    def open(self) -> Keyring: ...

    @abstractmethod
    def erase(self, keyring: Keyring, household_id: str) -> dict[str, Any]: ...

    def close(self) -> None:
        for thing in self.opened:
            thing.close()


class EmbeddedHome(Home):
    def open(self) -> Keyring:
        log = SqliteLog(self.path / "log.sqlite3")
        self.opened.append(log)
        return log.keyring

    def erase(self, keyring: Keyring, household_id: str) -> dict[str, Any]:
        log = next(log for log in self.opened if log.keyring is keyring)
        return log.erase_household(household_id)


class KafkaHome(Home):
    def open(self) -> KafkaKeyring:
        keyring = kafka_keyring(self.path)
        self.opened.append(keyring)
        return keyring

    def erase(self, keyring: Keyring, household_id: str) -> dict[str, Any]:
        assert isinstance(keyring, KafkaKeyring)
        return keyring.erase(household_id)


class KeyringContract(ABC):
    @abstractmethod
    def make_home(self, path: Path) -> Home: ...

    @pytest.fixture
    def home(self, tmp_path: Path) -> Iterator[Home]:
        made = self.make_home(tmp_path)
        yield made
        made.close()

    def test_personal_fields_are_sealed_and_open_back_to_the_clear_text(self, home: Home
                                                                       ) -> None:
        keyring = home.open()
        clear = event("hh-1", "a")
        sealed = keyring.seal_event(clear)
        keyring.commit()
        assert is_envelope(sealed["data"]["notes"]) and SECRET not in json.dumps(sealed)
        assert {k: v for k, v in sealed.items() if k != "data"} == {
            k: v for k, v in clear.items() if k != "data"}
        opened, problems = keyring.open_event(sealed)
        assert opened == clear and problems == []

    def test_one_key_per_household_readable_by_another_keyring_of_the_home(
        self, home: Home
    ) -> None:
        writer = home.open()
        sealed = [writer.seal_event(event(h, f"{h}-{n}")) for h in ("hh-1", "hh-2")
                  for n in range(2)]
        writer.commit()
        reader = home.open()
        assert reader.store.key_count() == 2
        assert [reader.open_event(s)[0]["data"]["notes"] for s in sealed] == [SECRET] * 4

    def test_after_erasure_every_keyring_reads_erased_and_later_fields_are_dropped(
        self, home: Home
    ) -> None:
        writer, other = home.open(), home.open()
        sealed = writer.seal_event(event("hh-1", "a"))
        kept = writer.seal_event(event("hh-2", "b"))
        writer.commit()
        assert other.open_event(sealed)[0]["data"]["notes"] == SECRET  # cached by `other`
        done = home.erase(writer, "hh-1")
        assert done["key_deleted"] and not done["already_erased"]
        assert home.erase(writer, "hh-1")["already_erased"]
        for keyring in (writer, other, home.open()):
            keyring.refresh()
            opened, problems = keyring.open_event(sealed)
            assert opened["data"]["notes"] == ERASED and problems == []
            assert keyring.open_event(kept)[0]["data"]["notes"] == SECRET
            assert keyring.seal_event(event("hh-1", "later"))["data"]["notes"] == ERASED

    def test_a_tampered_field_reads_unreadable_and_is_named(self, home: Home) -> None:
        keyring = home.open()
        sealed = keyring.seal_event(event("hh-1", "a"))
        keyring.commit()
        moved = {**sealed, "event_id": event("hh-1", "b")["event_id"]}
        opened, problems = keyring.open_event(moved)
        assert opened["data"]["notes"] == UNREADABLE
        assert [(p.event_id, p.field) for p in problems] == [(moved["event_id"], "notes")]

    def test_past_its_cache_limit_a_keyring_still_seals_each_household_under_its_own_key(
        self, home: Home
    ) -> None:
        """The sealing cache drops its older half when full; a dropped key is read again."""
        keyring = home.open()
        keyring.CACHE_LIMIT = 4
        households = [f"hh-{n}" for n in range(10)]
        first = {h: keyring.seal_event(event(h, f"{h}-a"))["data"]["notes"]["kid"]
                 for h in households}
        keyring.commit()
        assert len(set(first.values())) == 10 and len(keyring._sealing) <= 4
        again = {h: keyring.seal_event(event(h, f"{h}-b"))["data"]["notes"]["kid"]
                 for h in households}
        keyring.commit()
        assert again == first and keyring.store.key_count() == 10
        reader = home.open()
        for h in households:
            opened, problems = reader.open_event(keyring.seal_event(event(h, f"{h}-c")))
            assert opened["data"]["notes"] == SECRET and problems == []

    def test_a_key_created_in_a_rolled_back_batch_is_not_kept(self, home: Home) -> None:
        keyring = home.open()
        keyring.seal_event(event("hh-1", "a"))
        keyring.rollback()
        assert "hh-1" not in keyring._sealing and keyring._by_kid == {}


class TestEmbeddedLogKeyring(KeyringContract):
    def make_home(self, path: Path) -> Home:
        return EmbeddedHome(path)


class TestKafkaKeyring(KeyringContract):
    def make_home(self, path: Path) -> Home:
        return KafkaHome(path)
