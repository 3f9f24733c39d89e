"""The batch step both runtimes share (``streams.step.apply_batch``).

Items here are plain JSON lines decoded by the shared codec; the runtimes pass log
entries or Kafka messages with their own decoders. The engine is the real one with
the default pack, and the "store" is a dict of serialized states, as a runtime keeps.
"""

from __future__ import annotations

import orjson
import pytest

from events.codec import Rejected, decode
from events.instants import parse_instant
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from rules.state import HouseholdState
from streams.step import Refusal, StepResult, apply_batch


def visit(household: str, n: int, notes: str = "") -> bytes:
    """A visit with an injury: the default pack raises a red warning on the first."""
    return orjson.dumps({
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "type": "screening.visit_recorded",
        "schema_version": 1,
        "occurred_at": f"2026-11-01T{9 + n:02d}:00:00+08:00",
        "org_unit": "230102001001",
        "household_id": household,
        "data": {"indicators": ["injury_observed"], "notes": notes},
    })


class Store:
    """Stored states by household, and every load the step asked for."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.loaded: list[tuple[str, bytes]] = []
        self.states: dict[str, HouseholdState] = {}

    def load(self, household_id: str, item: bytes) -> HouseholdState:
        self.loaded.append((household_id, item))
        blob = self.blobs.get(household_id)
        state = HouseholdState.from_bytes(blob) if blob else HouseholdState()
        self.states[household_id] = state
        return state

    def save(self, household_ids: set[str]) -> None:
        self.blobs.update({h: self.states[h].to_bytes() for h in household_ids})


@pytest.fixture
def engine() -> Engine:
    return Engine(load_pack())


def step(engine: Engine, store: Store, items: list[bytes]) -> StepResult[bytes]:
    return apply_batch(items, decode, store.load, engine)


def test_records_come_in_input_order_as_a_replay_of_the_same_items_gives(
    engine: Engine,
) -> None:
    items = [visit("hh-2", 1), visit("hh-1", 2), visit("hh-2", 3), visit("hh-3", 4)]
    result = step(engine, Store(), items)

    assert [r["household_id"] for r in result.records] == ["hh-2", "hh-1", "hh-3"]
    assert result.records == Replay(Engine(load_pack())).feed_all(items)
    assert result.processed == [(item, orjson.loads(item)) for item in items]
    assert result.changed == {"hh-1", "hh-2", "hh-3"}
    assert result.max_occurred == parse_instant("2026-11-01T13:00:00+08:00")


def test_input_that_does_not_decode_is_refused_at_decode_with_the_codec_reason(
    engine: Engine,
) -> None:
    bad = orjson.dumps({**orjson.loads(visit("hh-1", 1)), "type": "screening.nonsense"})
    store = Store()
    result = step(engine, store, [b"{not json", bad])

    not_json, unknown_type = decode(b"{not json"), decode(bad)
    assert isinstance(not_json, Rejected) and isinstance(unknown_type, Rejected)
    assert result.refusals == [
        Refusal(b"{not json", "decode", not_json.reason, None, None),
        Refusal(bad, "decode", unknown_type.reason, unknown_type.event_id, "hh-1"),
    ]
    assert (result.counts.received, result.counts.rejected) == (2, 2)
    assert store.loaded == [] and result.records == [] and result.changed == set()


def test_duplicates_are_counted_and_a_conflicting_resend_is_refused_by_the_engine(
    engine: Engine,
) -> None:
    first, conflict = visit("hh-1", 1), visit("hh-1", 1, notes="changed")
    result = step(engine, Store(), [first, b"[]", first, conflict])

    counts = result.counts
    assert (counts.received, counts.processed, counts.duplicates, counts.rejected) == (4, 1, 1, 2)
    assert counts.reconciles
    assert [(r.item, r.stage) for r in result.refusals] == [(b"[]", "decode"), (conflict, "engine")]
    assert "conflict" in result.refusals[1].reason
    assert len(result.records) == 1 and [item for item, _ in result.processed] == [first]


def test_a_state_is_loaded_once_per_household_and_batch_with_its_first_item(
    engine: Engine,
) -> None:
    items = [visit("hh-1", 1), visit("hh-2", 2), visit("hh-1", 3), b"{not json", visit("hh-2", 4)]
    store = Store()
    step(engine, store, items)

    assert store.loaded == [("hh-1", items[0]), ("hh-2", items[1])]


def test_a_batch_goes_on_from_the_stored_state_so_a_resent_batch_emits_nothing(
    engine: Engine,
) -> None:
    store = Store()
    items = [visit("hh-1", 1), visit("hh-1", 2)]
    first = step(engine, store, items)
    store.save(first.changed)
    again = step(engine, store, items)

    assert first.records and again.records == []
    assert (again.counts.duplicates, again.changed) == (2, set())
