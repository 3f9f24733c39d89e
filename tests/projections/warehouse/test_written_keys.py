"""WrittenKeys: a key it reports as written was written; one it forgot is only re-sent."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.warehouse.written_keys import WrittenKeys

hex_keys = st.integers(min_value=0, max_value=2**64 - 1).map(lambda v: f"{v:016x}")
keys = st.one_of(hex_keys, st.sampled_from(["0000000000000000", "not-a-key", "ABC"]))
ops = st.lists(st.tuples(st.sampled_from(["add", "discard", "clear"]), keys), max_size=200)


@settings(max_examples=300, deadline=None)
@given(ops, st.sampled_from([1, 2, 3, 64, 1 << 20]))
def test_a_key_reported_written_was_added_and_not_discarded_since(
    steps: list[tuple[str, str]], max_slots: int
) -> None:
    written, model = WrittenKeys(max_slots), set()
    for op, key in steps:
        if op == "add":
            written.add(key)
            model.add(key)
            assert key in written  # just added: always remembered
        elif op == "discard":
            written.discard(key)
            model.discard(key)
        else:
            written.clear()
            model.clear()
        for probe in {k for _, k in steps}:
            if probe in written:
                assert probe in model


def test_a_city_of_households_is_remembered_in_32_mb_with_few_re_sent() -> None:
    written = WrittenKeys(1 << 22)
    # keyed hashes, as privacy.pseudonym makes them: uniformly spread low bits
    households = [hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()
                  for i in range(1_000_000)]
    written.update(households)
    remembered = sum(key in written for key in households)
    assert written.nbytes == 32 << 20
    assert remembered > 0.95 * len(households)  # 96.7%: a few keys re-sent


def test_the_table_starts_small() -> None:
    assert WrittenKeys(1 << 22).nbytes <= 32 << 10
