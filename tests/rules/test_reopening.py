"""Reopening — ``warning.reopened`` (DESIGN "Catalog v2", "Commands on warnings").

On a resolved warning, with t in [resolved at, resolved at + 30 d] and only while no other
warning of the same rule is open for the household: the warning is open again,
unacknowledged, at handling level community at the household's owner; lifecycle
``warning.reopened``; its escalation deadlines from before are void and the next one is at
t + SLA of its level. Anything else changes nothing and is reported.
"""

from __future__ import annotations

import pytest

from tests.helpers import (
    DAY,
    HOUR,
    T0,
    US,
    ack,
    case_resolved,
    iso,
    mediation_concluded,
    of_type,
    petition,
    replay,
    resolve,
    run,
    visit,
    wid,
)
from tests.rules.after_alert import accept, assess, refer, reopen
from tests.rules.households import OTHER_DISTRICT, transfer

INJURY = visit("h1", T0, ["injury_observed"])
W = wid("violence-injury", "h1", INJURY)
RESOLVED = [INJURY, resolve("h1", W, T0 + HOUR)]


def notices(lines: list[str]) -> dict[str, int]:
    rp, records = replay(lines)
    assert of_type(records, "warning.reopened") == []
    return dict(rp.counts.notice_reasons)


def test_a_resolved_warning_is_open_again_at_the_community_of_its_owner():
    records = run([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR)])
    assert of_type(records, "warning.reopened") == [
        {"type": "warning.reopened", "warning_id": W, "household_id": "h1",
         "handling_org_unit": "230102001001", "at": iso(T0 + 2 * HOUR), "reopened": 1}
    ]


def test_it_is_reopened_at_the_owner_and_level_community_whatever_it_reached_before():
    lines = [INJURY, resolve("h1", W, T0 + 3 * DAY + HOUR),  # escalated to city by then
             transfer("h1", T0 + 4 * DAY, OTHER_DISTRICT),
             reopen("h1", W, T0 + 5 * DAY, org=OTHER_DISTRICT)]
    records = run(lines, as_of=T0 + 6 * DAY)
    assert [r["to_level"] for r in of_type(records, "warning.escalated")] == [
        "street", "district", "city", "street"]
    [reopened] = of_type(records, "warning.reopened")
    assert reopened["handling_org_unit"] == OTHER_DISTRICT
    assert of_type(records, "warning.escalated")[-1]["handling_org_unit"] == "230103002000"


def test_the_old_escalation_deadlines_are_void_and_the_next_is_t_plus_the_sla():
    # raised at T0, red: its first deadline was T0 + 24 h; reopened at T0 + 2 h
    records = run([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR)], as_of=T0 + 2 * DAY + 2 * HOUR)
    assert [r["at"] for r in of_type(records, "warning.escalated")] == [
        iso(T0 + 26 * HOUR), iso(T0 + 50 * HOUR)]


def test_a_reopened_warning_is_unacknowledged_and_acknowledged_again():
    records = run([INJURY, ack("h1", W, T0 + HOUR), resolve("h1", W, T0 + 2 * HOUR),
                   reopen("h1", W, T0 + 3 * HOUR), ack("h1", W, T0 + 4 * HOUR)],
                  as_of=T0 + 10 * DAY)
    assert [(r["at"], r.get("reopened")) for r in of_type(records, "warning.acknowledged")] == [
        (iso(T0 + HOUR), None), (iso(T0 + 4 * HOUR), 1)]
    assert of_type(records, "warning.escalated") == []


def test_a_repeated_acknowledgement_after_a_reopening_is_again_a_notice():
    rp, _ = replay([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR), ack("h1", W, T0 + 3 * HOUR),
                    ack("h1", W, T0 + 4 * HOUR)])
    assert rp.counts.notices == 1


def test_every_record_after_the_nth_reopening_carries_reopened_n():
    lines = [*RESOLVED, reopen("h1", W, T0 + 2 * HOUR), resolve("h1", W, T0 + 3 * HOUR),
             reopen("h1", W, T0 + 4 * HOUR), assess("h1", W, T0 + 5 * HOUR, "low"),
             case_resolved("h1", T0 + 6 * HOUR)]
    assert [(r["type"], r.get("reopened")) for r in run(lines)] == [
        ("warning.raised", None), ("warning.resolved", None),
        ("warning.reopened", 1), ("warning.resolved", 1),
        ("warning.reopened", 2), ("warning.acknowledged", 2), ("warning.assessed", 2),
        ("warning.resolved", 2),
    ]


@pytest.mark.parametrize("after", [0, 30 * DAY], ids=["at-resolution", "30-days-after"])
def test_the_window_is_inclusive_at_both_ends(after):
    records = run([*RESOLVED, reopen("h1", W, T0 + HOUR + after)])
    assert len(of_type(records, "warning.reopened")) == 1


@pytest.mark.parametrize(
    ("at", "why"),
    [(T0 + HOUR - US, "before it was resolved"),
     (T0 + HOUR + 30 * DAY + US, "more than 30 days after it was resolved")],
    ids=["before", "after-30-days"],
)
def test_outside_the_window_nothing_changes(at, why):
    assert notices([*RESOLVED, reopen("h1", W, at)]) == {
        f"warning.reopened: {why}; nothing changed": 1}


@pytest.mark.parametrize(("after", "reopened"), [(0, 1), (US, 0)], ids=["last-instant", "late"])
def test_the_window_runs_from_the_resolved_record_of_an_auto_resolution(after, reopened):
    sent = refer("h1", "r-1", T0)
    unanswered = wid("referral-unanswered", "h1", sent)
    # raised at T0 + 72 h (before the petition); the late acceptance resolves it then
    records = run([sent, petition("h1", T0 + 4 * DAY), accept("h1", "r-1", T0 + HOUR),
                   reopen("h1", unanswered, T0 + 33 * DAY + after)])
    assert of_type(records, "warning.resolved")[0]["at"] == iso(T0 + 3 * DAY)
    assert len(of_type(records, "warning.reopened")) == reopened


def test_not_while_another_warning_of_the_same_rule_is_open():
    second = visit("h1", T0 + 2 * HOUR, ["injury_observed"])
    assert notices([*RESOLVED, second, reopen("h1", W, T0 + 3 * HOUR)]) == {
        "warning.reopened: another warning of its rule is open; nothing changed": 1}


def test_a_warning_of_another_rule_open_does_not_prevent_it():
    failed = mediation_concluded("h1", T0 + 2 * HOUR, "failed")
    records = run([*RESOLVED, failed, reopen("h1", W, T0 + 3 * HOUR)])
    assert len(of_type(records, "warning.reopened")) == 1


def test_while_it_is_open_again_its_rule_raises_no_new_warning():
    records = run([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR),
                   visit("h1", T0 + 3 * HOUR, ["injury_observed"])])
    assert len(of_type(records, "warning.raised")) == 1


@pytest.mark.parametrize(
    ("lines", "why"),
    [([INJURY, reopen("h1", W, T0 + HOUR)], "warning is open"),
     ([reopen("h1", W, T0)], "warning is unknown for this household"),
     ([*RESOLVED, reopen("h2", W, T0 + 2 * HOUR)], "warning is unknown for this household")],
    ids=["open", "unknown", "another-household"],
)
def test_a_reopening_of_no_resolved_warning_of_the_household_changes_nothing(lines, why):
    assert notices(lines) == {f"warning.reopened: {why}; nothing changed": 1}


def test_case_resolved_closes_a_reopened_warning_too():
    records = run([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR), case_resolved("h1", T0 + DAY)])
    assert of_type(records, "warning.resolved")[-1] == {
        "type": "warning.resolved", "warning_id": W, "household_id": "h1",
        "at": iso(T0 + DAY), "reopened": 1}


def test_a_reopened_warning_moves_with_a_transfer():
    records = run([*RESOLVED, reopen("h1", W, T0 + 2 * HOUR),
                   transfer("h1", T0 + 3 * HOUR, OTHER_DISTRICT)])
    [moved] = of_type(records, "warning.transferred")
    assert (moved["to_org_unit"], moved["reopened"]) == (OTHER_DISTRICT, 1)
