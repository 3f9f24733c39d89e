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


def test_each_assessment_is_its_own_transition_by_risk_and_instant() -> None:
    assessed = {"type": "warning.assessed", "warning_id": "w-1", "household_id": "hh-1",
                "risk": "high", "at": "2026-11-01T00:00:00Z"}
    assert transition_of(assessed) == "warning.assessed:high@2026-11-01T00:00:00Z"
    assert transition_of({**assessed, "risk": "low"}) != transition_of(assessed)


def test_after_a_reopening_the_same_transitions_are_new_ones() -> None:
    first = {"type": "warning.acknowledged", "warning_id": "w-1", "household_id": "hh-1",
             "at": "2026-11-01T00:00:00Z"}
    again = {**first, "at": "2026-11-03T00:00:00Z", "reopened": 1}
    assert transition_of(first) == "warning.acknowledged"
    assert transition_of(again) == "warning.acknowledged#1"
    street = {"type": "warning.escalated", "warning_id": "w-1", "to_level": "street"}
    assert transition_of({**street, "reopened": 2}) == "warning.escalated:street#2"
    reopened = {"type": "warning.reopened", "warning_id": "w-1", "reopened": 1}
    assert {transition_of(reopened), transition_of({**reopened, "reopened": 2})} == {
        "warning.reopened#1", "warning.reopened#2"}
    assert record_id(again) == "w-1:warning.acknowledged#1:"


def test_a_referrals_record_id_names_its_household_and_referral() -> None:
    sent = {"type": "referral.sent", "referral_id": "r-1", "household_id": "hh-1",
            "agency": "police", "basis": "emergency", "warning_id": "w-1",
            "at": "2026-11-01T00:00:00Z"}
    assert transition_of(sent) == "referral.sent"
    assert record_id(sent) == "referral/hh-1/r-1:referral.sent:"
    accepted = {"type": "referral.accepted", "referral_id": "r-1", "household_id": "hh-2",
                "agency": "police", "at": "2026-11-01T00:00:00Z"}
    assert record_id(accepted) == "referral/hh-2/r-1:referral.accepted:"
