"""The Kafka worker's broker-free parts: batch computation, record ids, deadline index."""

from __future__ import annotations

import orjson

from privacy.quarantine import withheld
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from rules.state import HouseholdState
from streams.kafka.batch import (
    BatchProcessor,
    Incoming,
    lifecycle_message,
    record_id,
)
from streams.kafka.due_index import DueIndex

VISIT = {
    "event_id": "5b0e7f0c-0d7c-4d38-9a57-0c3c1a2b3c4d",
    "type": "screening.visit_recorded",
    "schema_version": 1,
    "occurred_at": "2026-11-01T09:00:00+08:00",
    "org_unit": "230102001001",
    "household_id": "hh-1",
    "data": {"indicators": ["injury_observed"], "notes": ""},
}


def _msg(value: bytes | None, offset: int, partition: int = 0, key: bytes | None = b"hh-1"
         ) -> Incoming:
    return Incoming("t.events", partition, offset, key, value)


def test_batch_matches_replay_and_routes_rejects() -> None:
    engine = Engine(load_pack())
    visit = orjson.dumps(VISIT)
    conflict = orjson.dumps({**VISIT, "data": {"indicators": [], "notes": "changed"}})
    messages = [
        _msg(visit, 0),
        _msg(visit, 1),  # exact re-delivery: duplicate, ignored
        _msg(conflict, 2),  # same id, other content: engine rejects (conflict)
        _msg(b"{not json", 3, key=None),
        _msg(None, 4),  # tombstone
    ]
    result = BatchProcessor(engine).process(messages, lambda household, partition: None)

    replay = Replay(Engine(load_pack()))
    assert result.records == replay.feed_all([visit, visit, conflict, b"{not json"])
    assert (result.counts.processed, result.counts.duplicates, result.counts.rejected) == (1, 1, 3)
    assert result.counts.reconciles
    stages = [dict(d.headers)["stage"] for d in result.dead_letters]
    assert stages == [b"engine", b"decode", b"decode"]
    # no quarantine key given: the bodies are withheld, never written clear
    assert [d.value for d in result.dead_letters] == [withheld(conflict), withheld(b"{not json"),
                                                      b""]
    assert dict(result.dead_letters[1].headers)["source"] == b"t.events/0@3"
    assert all(dict(d.headers)["reason"] for d in result.dead_letters)
    assert list(result.touched) == ["hh-1"]
    assert result.positions == {0: 5}
    assert result.event_rows == [{**VISIT, "offset": 0}]


def test_batch_starts_from_stored_state() -> None:
    engine = Engine(load_pack())
    stored = HouseholdState()
    first = BatchProcessor(engine).process([_msg(orjson.dumps(VISIT), 0)], lambda h, p: None)
    stored = first.touched["hh-1"].state
    blob = stored.to_bytes()
    again = BatchProcessor(engine).process(
        [_msg(orjson.dumps(VISIT), 0)], lambda h, p: HouseholdState.from_bytes(blob)
    )
    assert again.records == [] and again.counts.duplicates == 1
    assert "hh-1" in again.touched  # written back even though only a duplicate arrived


def test_batch_loads_each_household_once_from_its_partition() -> None:
    engine = Engine(load_pack())
    calls: list[tuple[str, int]] = []

    def load(household_id: str, partition: int) -> HouseholdState | None:
        calls.append((household_id, partition))
        return None

    second = orjson.dumps({**VISIT, "event_id": "5b0e7f0c-0d7c-4d38-9a57-0c3c1a2b3c4e"})
    result = BatchProcessor(engine).process(
        [_msg(b"{not json", 7, partition=1), _msg(orjson.dumps(VISIT), 8, partition=2),
         _msg(second, 9, partition=2)], load)
    assert calls == [("hh-1", 2)]
    assert result.touched["hh-1"].partition == 2
    assert result.positions == {1: 8, 2: 10}


def test_record_id_and_message() -> None:
    raised = {"type": "warning.raised", "warning_id": "w-1", "household_id": "hh-1"}
    escalated = {"type": "warning.escalated", "warning_id": "w-1", "household_id": "hh-1",
                 "to_level": "street"}
    assert record_id(raised) == "w-1:warning.raised:"
    assert record_id(escalated) == "w-1:warning.escalated:street"
    key, value, headers = lifecycle_message(escalated)
    assert key == b"hh-1" and orjson.loads(value) == escalated
    assert headers == [("record_id", b"w-1:warning.escalated:street")]


def test_due_index_per_partition_and_lazy_invalidation() -> None:
    index = DueIndex()
    index.update("a", 0, 10)
    index.update("b", 0, 30)
    index.update("c", 1, 5)
    index.update("a", 0, 20)  # moved later: the old entry must not fire
    assert index.pop_due(0, 15) == []
    assert index.pop_due(0, 25) == ["a"]
    assert index.pop_due(1, 100) == ["c"]
    index.update("b", 0, None)
    assert index.pop_due(0, 100) == [] and len(index) == 0
    index.replace_partition(2, [("x", 7), ("y", None)])
    assert len(index) == 1 and index.earliest() == 7
    index.drop_partition(2)
    assert len(index) == 0 and index.partitions() == {0, 1}
