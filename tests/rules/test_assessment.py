"""研判 — ``warning.assessed`` (DESIGN "Catalog v2", "Commands on warnings").

A command names an existing warning of the same household. On an open warning: if it is
unacknowledged, it is acknowledged first (lifecycle ``warning.acknowledged`` at t), then
lifecycle ``warning.assessed`` with the risk. An assessment with the same risk as the
warning's last one (a reopening keeps it) changes nothing at all. Commands for unknown or
closed warnings change nothing and are reported.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import DAY, HOUR, T0, ack, iso, of_type, replay, resolve, run, visit, wid
from tests.rules.after_alert import assess, reopen

INJURY = visit("h1", T0, ["injury_observed"])
W = wid("violence-injury", "h1", INJURY)


def after_raise(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] != "warning.raised"]


def test_an_unacknowledged_warning_is_acknowledged_first_then_assessed_at_t():
    records = run([INJURY, assess("h1", W, T0 + HOUR, "high")])
    assert after_raise(records) == [
        {"type": "warning.acknowledged", "warning_id": W, "household_id": "h1",
         "at": iso(T0 + HOUR)},
        {"type": "warning.assessed", "warning_id": W, "household_id": "h1", "risk": "high",
         "at": iso(T0 + HOUR)},
    ]


def test_an_acknowledged_warning_is_only_assessed():
    records = run([INJURY, ack("h1", W, T0 + HOUR), assess("h1", W, T0 + 2 * HOUR, "low")])
    assert [r["type"] for r in after_raise(records)] == [
        "warning.acknowledged", "warning.assessed"]
    assert of_type(records, "warning.assessed")[0]["at"] == iso(T0 + 2 * HOUR)


def test_an_assessment_stops_escalation_as_an_acknowledgement_does():
    records = run([INJURY, assess("h1", W, T0 + HOUR, "medium")], as_of=T0 + 10 * DAY)
    assert of_type(records, "warning.escalated") == []


def test_the_same_risk_as_the_last_assessment_changes_nothing_and_is_a_notice():
    rp, records = replay([INJURY, assess("h1", W, T0 + HOUR, "high"),
                          assess("h1", W, T0 + 2 * HOUR, "high")])
    assert [r["risk"] for r in of_type(records, "warning.assessed")] == ["high"]
    assert rp.counts.notice_reasons == {
        "warning.assessed: same risk as its last assessment; nothing changed": 1}


def test_another_risk_is_a_new_assessment_and_a_return_to_an_earlier_one_too():
    lines = [INJURY] + [assess("h1", W, T0 + i * HOUR, risk)
                        for i, risk in enumerate(["low", "high", "low"], start=1)]
    assert [r["risk"] for r in of_type(run(lines), "warning.assessed")] == [
        "low", "high", "low"]


def test_a_reopening_keeps_the_last_risk():
    rp, records = replay([
        INJURY, assess("h1", W, T0 + HOUR, "high"), resolve("h1", W, T0 + DAY),
        reopen("h1", W, T0 + 2 * DAY), assess("h1", W, T0 + 3 * DAY, "high"),
    ])
    assert len(of_type(records, "warning.assessed")) == 1
    # "nothing at all": the reopened warning stays unacknowledged, and escalates
    assert of_type(records, "warning.acknowledged")[-1]["at"] == iso(T0 + HOUR)
    assert rp.counts.notices == 1


def test_with_the_same_risk_an_unacknowledged_reopened_warning_is_not_acknowledged():
    records = run([INJURY, assess("h1", W, T0 + HOUR, "high"), resolve("h1", W, T0 + DAY),
                   reopen("h1", W, T0 + 2 * DAY), assess("h1", W, T0 + 2 * DAY + HOUR, "high")],
                  as_of=T0 + 4 * DAY)
    assert [r["at"] for r in of_type(records, "warning.escalated")] == [
        iso(T0 + 3 * DAY), iso(T0 + 4 * DAY)]


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        ([assess("h1", W, T0, "low")], "is unknown for this household"),
        ([INJURY, resolve("h1", W, T0 + HOUR), assess("h1", W, T0 + 2 * HOUR, "low")],
         "is closed"),
        ([INJURY, assess("h2", W, T0 + HOUR, "low")], "is unknown for this household"),
    ],
    ids=["unknown", "resolved", "another-household"],
)
def test_an_assessment_of_no_open_warning_of_the_household_changes_nothing(lines, why):
    rp, records = replay(lines)
    assert of_type(records, "warning.assessed") == [] == of_type(records, "warning.acknowledged")
    assert rp.counts.notice_reasons == {f"warning.assessed: warning {why}; nothing changed": 1}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["low", "medium", "high"]), min_size=1, max_size=8))
def test_an_assessment_is_recorded_exactly_when_its_risk_differs_from_the_last(risks):
    lines = [INJURY] + [assess("h1", W, T0 + (i + 1) * HOUR, risk)
                        for i, risk in enumerate(risks)]
    rp, records = replay(lines)
    changes = [risk for i, risk in enumerate(risks) if i == 0 or risks[i - 1] != risk]
    assert [r["risk"] for r in of_type(records, "warning.assessed")] == changes
    assert rp.counts.notices == len(risks) - len(changes)
    assert len(of_type(records, "warning.acknowledged")) == 1
