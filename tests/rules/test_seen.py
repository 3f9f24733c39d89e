"""SeenIds: the event ids a household has seen, exact as a dict, 24 bytes an id when stored."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.seen import RECORD_BYTES, SeenIds
from rules.state import HouseholdState

A = "02fc8f04-2e10-4d2d-ac92-b58bc6455674"
B = "f442d6f3-26d6-4cba-af91-cedd41fe54bd"

canonical_ids = st.uuids().map(str)
odd_ids = st.text(min_size=1, max_size=40)
#: a few ids drawn again and again: the same id written twice, with either fingerprint form
few_ids = st.sampled_from([A, B, "ID-" + A, A.upper()])
fingerprints = st.one_of(
    st.binary(min_size=8, max_size=8).map(bytes.hex),  # what the codec computes
    st.text(max_size=20),  # anything a test or an older writer may have stored
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(canonical_ids, odd_ids, few_ids), fingerprints),
                max_size=40),
       st.lists(st.sampled_from(["write", "ask", "ask, then store"]), min_size=40,
                max_size=40))
def test_it_answers_exactly_what_a_dict_answers(
    writes: list[tuple[str, str]], how: list[str]
) -> None:
    """Written as a mapping, or as the engine asks (``add_if_new``), stored now and then."""
    seen, model = SeenIds(), {}
    for (event_id, fingerprint), step in zip(writes, how, strict=False):
        if step == "write":
            seen[event_id] = fingerprint
            model[event_id] = fingerprint
            continue
        assert seen.add_if_new(event_id, fingerprint) == model.get(event_id)
        model.setdefault(event_id, fingerprint)
        if step == "ask, then store":
            HouseholdState(seen=seen).to_bytes()
    assert len(seen) == len(model)
    assert dict(seen.items()) == model
    for event_id, _ in writes:
        assert seen.get(event_id) == model[event_id] and event_id in seen
    assert seen.get(str(uuid.uuid4())) is None
    stored = HouseholdState(seen=seen).to_bytes()
    assert dict(HouseholdState.from_bytes(stored).seen.items()) == model


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(canonical_ids, odd_ids), fingerprints), max_size=20),
       st.lists(st.booleans(), min_size=20, max_size=20))
def test_when_a_state_is_stored_does_not_change_its_bytes(
    asks: list[tuple[str, str]], store_after: list[bool]
) -> None:
    """Ids held unpacked until a store, or packed as they come: the same stored bytes."""
    once, often = HouseholdState(), HouseholdState()
    for (event_id, fingerprint), store in zip(asks, store_after, strict=False):
        assert once.seen.add_if_new(event_id, fingerprint) == often.seen.add_if_new(
            event_id, fingerprint)
        if store:
            often = HouseholdState.from_bytes(often.to_bytes())  # as a worker reloads it
    assert once.to_bytes() == often.to_bytes()


def test_a_state_without_records_holds_new_ids_unpacked_until_stored() -> None:
    """A replay never stores its states: it pays a dict look-up per event, no packing."""
    seen = SeenIds()
    assert seen.add_if_new(A, "0090dfa24edecc74") is None
    assert seen.add_if_new(A, "1111111111111111") == "0090dfa24edecc74"
    assert seen._fresh == {A: "0090dfa24edecc74"} and not seen._records
    assert seen.packed() is not None and seen._fresh == {} and len(seen._records) == 24
    assert seen.add_if_new(B, "6a8c3b7a367388aa") is None  # records now: packed as it comes
    assert seen._fresh == {} and len(seen._records) == 48 and len(seen) == 2


def test_canonical_ids_with_codec_fingerprints_are_records_of_24_bytes() -> None:
    seen = SeenIds()
    for i in range(10):
        seen[str(uuid.UUID(int=i + 1))] = f"{i:016x}"
    assert seen.other == {} and len(seen) == 10
    packed = seen.packed()
    assert packed is not None and len(packed) == 4 * 10 * RECORD_BYTES // 3  # base64 of 240 B
    assert seen.get(str(uuid.UUID(int=4))) == f"{3:016x}"


def test_an_id_found_across_two_records_is_not_a_match() -> None:
    """Only a record's own first 16 bytes name its id: a match at any other offset is not one."""
    first = bytes(range(16)) + bytes(range(16, 24))
    second = bytes(range(24, 40)) + bytes(range(40, 48))
    seen = SeenIds(records=first + second)
    straddling = (first + second)[8:24]  # bytes 8..23: the tail of an id and its fingerprint
    straddling_id = str(uuid.UUID(bytes=straddling))
    assert seen.get(straddling_id) is None and straddling_id not in seen
    seen[straddling_id] = "00000000000000aa"
    assert seen.get(straddling_id) == "00000000000000aa" and len(seen) == 3


def test_a_state_stored_before_records_keeps_its_bytes_and_new_ids_become_records() -> None:
    old = (b'{"s":{"' + A.encode() + b'":"0090dfa24edecc74"},"t":{},"f":[],'
           b'"o":[],"c":[],"d":[],"q":0}')
    state = HouseholdState.from_bytes(old)
    assert state.to_bytes() == old
    assert state.seen.get(A) == "0090dfa24edecc74"
    state.seen[B] = "6a8c3b7a367388aa"
    stored = state.to_bytes()
    assert stored.startswith(b'{"s":{"' + A.encode()) and b'"z":"' in stored
    again = HouseholdState.from_bytes(stored).seen
    assert dict(again.items()) == {A: "0090dfa24edecc74", B: "6a8c3b7a367388aa"}


def test_an_id_stored_in_the_older_form_is_updated_there() -> None:
    seen = SeenIds({A: "0090dfa24edecc74"})
    seen[A] = "1111111111111111"
    assert seen.other == {A: "1111111111111111"} and seen.packed() is None


def test_stored_records_that_are_not_whole_or_not_base64_are_refused() -> None:
    with pytest.raises(ValueError, match="whole record"):
        SeenIds(records=b"x" * 25)
    with pytest.raises(ValueError, match="base64"):
        SeenIds.stored({}, "not base64!")


def test_ten_seen_ids_store_in_under_60_percent_of_the_bytes_of_the_older_form() -> None:
    ids = {str(uuid.UUID(int=i + 1)): f"{i:016x}" for i in range(10)}
    older = HouseholdState(seen=dict(ids)).to_bytes()  # a dict given: kept as it is
    packed = SeenIds()
    for event_id, fingerprint in ids.items():
        packed[event_id] = fingerprint
    newer = HouseholdState(seen=packed).to_bytes()
    shell = len(HouseholdState().to_bytes())
    assert len(newer) - shell < 0.6 * (len(older) - shell)  # 326 bytes against 578
