"""HouseholdState: containers are created only when used; the stored bytes never change.

Stored states outlive code versions (SQLite ``household_state``, the Kafka
state changelog), so the blobs below were written by the eager dataclass this
class replaced and must decode and re-encode to the very same bytes.
"""

from __future__ import annotations

import pytest

from events.codec import Decoded, decode
from rules.engine import Engine
from rules.pack import load_pack
from rules.state import ESCALATION, HouseholdState

#: Written by the eager ``HouseholdState`` (sample stream, seed 7); one per shape.
STORED_BY_THE_EAGER_VERSION = {
    "one event": (
        b'{"s":{"02fc8f04-2e10-4d2d-ac92-b58bc6455674":"0090dfa24edecc74"},"t":{},"f":[],'
        b'"o":[],"c":[],"d":[],"q":0}'
    ),
    "flags and series": (
        b'{"s":{"f442d6f3-26d6-4cba-af91-cedd41fe54bd":"b7718102aa719697",'
        b'"edab232c-ed36-42a8-b8ec-ea25c7a0009a":"6a8c3b7a367388aa"},'
        b'"t":{"followup":[1784942332000000]},"f":["disability_visit"],"o":[],"c":[],"d":[],'
        b'"q":0}'
    ),
    "open warning with escalation deadline": (
        b'{"s":{"8125d53f-9f56-4d9e-ab78-962a10fd6faf":"69c691e1f2f987d2"},'
        b'"t":{"dispute_petition":[1794971961000000],"petition":[1794971961000000]},"f":[],'
        b'"o":[["w-b2f8a7ff38bfcbc9","violence-injury","red","230112003005",0,true,'
        b'1794971961000000]],"c":[],'
        b'"d":[[1795058361000000,1,"esc",["w-b2f8a7ff38bfcbc9"]]],"q":1}'
    ),
    "closed warning": (
        b'{"s":{"30111bc0-7367-4cd4-ae09-875467362caa":"f8bd865ac6f152eb"},"t":{},"f":[],'
        b'"o":[],"c":["w-00499f878bf5fe01"],"d":[],"q":3}'
    ),
    "rule deadline": (
        b'{"s":{"80de80c7-20cb-4b90-b944-109bfe52d9e7":"22bec6bccdf97126"},'
        b'"t":{"dispute_petition":[1789958483000000],"followup":[1790036575000000]},"f":[],'
        b'"o":[],"c":[],"d":[[1795329526000000,2,"rule",["guardianship-no-followup",'
        b'"9706c56f-0c93-4002-8b8d-548c808428c7",1794724726000000,"230111007005"]]],"q":2}'
    ),
}


@pytest.mark.parametrize("blob", STORED_BY_THE_EAGER_VERSION.values(),
                         ids=STORED_BY_THE_EAGER_VERSION.keys())
def test_states_stored_by_the_eager_version_reencode_to_the_same_bytes(blob: bytes) -> None:
    assert HouseholdState.from_bytes(blob).to_bytes() == blob


def test_a_fresh_state_stores_what_the_eager_version_stored_for_it() -> None:
    assert HouseholdState().to_bytes() == b'{"s":{},"t":{},"f":[],"o":[],"c":[],"d":[],"q":0}'


def test_a_decoded_state_keeps_its_contents() -> None:
    state = HouseholdState.from_bytes(
        STORED_BY_THE_EAGER_VERSION["open warning with escalation deadline"])
    assert list(state.open) == ["w-b2f8a7ff38bfcbc9"]
    assert state.open["w-b2f8a7ff38bfcbc9"].acknowledged is True
    assert state.deadlines == [(1795058361000000, 1, ESCALATION, ("w-b2f8a7ff38bfcbc9",))]
    assert state.next_due == 1795058361000000
    assert state.series["petition"] == [1794971961000000]
    assert state.seq == 1


def routine_visit() -> Decoded:
    line = (
        '{"event_id":"3f1c2d4e-0000-4000-8000-000000000001","type":"screening.visit_recorded",'
        '"schema_version":1,"occurred_at":"2026-07-23T06:49:24+08:00",'
        '"recorded_at":"2026-07-23T06:54:19+08:00","org_unit":"230109006001",'
        '"household_id":"hh-230109-000072","actor":"cadre-2301090060",'
        '"data":{"indicators":[]}}'
    )
    decoded = decode(line)
    assert isinstance(decoded, Decoded), decoded
    return decoded


def test_a_household_with_one_ordinary_event_holds_no_empty_containers() -> None:
    """Why the class exists: most households send one event; empty sets cost 216 B each."""
    state = HouseholdState()
    outcome = Engine(load_pack()).apply(state, routine_visit())
    assert outcome.status == "processed"
    assert len(state.seen) == 1
    # Nothing was flagged, raised, closed or windowed: those containers were never made.
    assert (state._flags, state._open, state._closed, state._series) == (None, None, None, None)


def test_a_container_appears_on_first_use_and_is_then_the_same_object() -> None:
    state = HouseholdState()
    state.flags.add("disability_visit")
    assert state.flags is state.flags
    assert state.flags == {"disability_visit"}
    assert b'"f":["disability_visit"]' in state.to_bytes()


def test_states_are_equal_when_they_would_store_the_same_bytes() -> None:
    touched = HouseholdState()
    assert touched.closed == set()  # reading creates an empty set
    assert touched == HouseholdState()
    blob = STORED_BY_THE_EAGER_VERSION["closed warning"]
    assert HouseholdState.from_bytes(blob) == HouseholdState.from_bytes(blob)
    assert HouseholdState.from_bytes(blob) != HouseholdState()


def test_scheduling_keeps_the_earliest_deadline_first() -> None:
    state = HouseholdState()
    assert state.next_due is None
    state.schedule(300, ESCALATION, ("w-b",))
    state.schedule(100, ESCALATION, ("w-a",))
    assert state.next_due == 100
    assert state.seq == 2
    again = HouseholdState.from_bytes(state.to_bytes())
    assert again.deadlines == state.deadlines
