"""The transition a lifecycle record names: re-sends share it, new changes do not."""

from __future__ import annotations

from rules.transitions import transition_of
from streams.kafka.batch import record_id

ASSIGNED = {"type": "warning.assigned", "warning_id": "w-1", "household_id": "hh-1",
            "assignee": "li", "at": "2026-11-01T00:00:00Z"}


def test_raise_acknowledge_and_resolve_are_named_by_type() -> None:
    for kind in ("warning.raised", "warning.acknowledged", "warning.resolved"):
        assert transition_of({"type": kind, "warning_id": "w-1"}) == kind


def test_each_escalation_level_is_its_own_transition() -> None:
    street = {"type": "warning.escalated", "warning_id": "w-1", "to_level": "street"}
    district = {**street, "to_level": "district"}
    assert transition_of(street) == "warning.escalated:street"
    assert transition_of(street) != transition_of(district)


def test_a_reassignment_is_a_new_transition_and_a_resend_is_not() -> None:
    to_wang = {**ASSIGNED, "assignee": "wang", "at": "2026-11-02T00:00:00Z"}
    back_to_li = {**ASSIGNED, "at": "2026-11-03T00:00:00Z"}
    keys = {transition_of(r) for r in (ASSIGNED, to_wang, back_to_li)}
    assert len(keys) == 3
    assert transition_of(dict(ASSIGNED)) == transition_of(ASSIGNED)
    assert transition_of(ASSIGNED) == "warning.assigned:li@2026-11-01T00:00:00Z"


def test_the_kafka_record_id_is_warning_and_transition() -> None:
    assert record_id({"type": "warning.raised", "warning_id": "w-1"}) == "w-1:warning.raised:"
    assert record_id(ASSIGNED) == "w-1:warning.assigned:li@2026-11-01T00:00:00Z"
