"""guardianship-no-followup (yellow): a child.guardianship_gap_recorded at g schedules a
deadline at D = g + 7 d; when it fires, the rule triggers (t = D, the gap event is the
trigger) unless a followup.recorded or child.guardianship_restored of the household with
occurred_at in [g, D] has been processed by then.

A deadline due at D fires just before the household's first later-processed event with
occurred_at > D, or at the end of a replay when D ≤ as_of (default: the largest occurred_at).
"""

from __future__ import annotations

from events.codec import decode
from rules.state import HouseholdState
from tests.helpers import (
    DAY,
    T0,
    case_resolved,
    engine,
    followup,
    gap,
    petition,
    raised,
    replay,
    restored,
    run,
    visit,
    wid,
)

RULE = "guardianship-no-followup"
G = T0
D = G + 7 * DAY  # 2026-03-08T08:00:00Z


def overdue(lines, **kw):
    return raised(run(lines, **kw), RULE)


def test_a_gap_without_followup_raises_a_yellow_warning_at_g_plus_7_days():
    trigger = gap("h1", G, org="230111100200")
    records = run([trigger], as_of=D)
    assert records == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", trigger),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "yellow",
            "org_unit": "230111100200",
            "handling_level": "community",
            "handling_org_unit": "230111100200",
            "at": "2026-03-08T08:00:00Z",
        }
    ]


def test_a_followup_at_exactly_g_plus_7_days_prevents_it():
    assert overdue([gap("h1", G), followup("h1", D)]) == []


def test_a_followup_at_g_plus_7_days_and_1_microsecond_does_not_prevent_it():
    assert [w["at"] for w in overdue([gap("h1", G), followup("h1", D + 1)])] == [
        "2026-03-08T08:00:00Z"
    ]


def test_a_followup_at_exactly_g_prevents_it():
    assert overdue([gap("h1", G), followup("h1", G)], as_of=D) == []


def test_a_followup_1_microsecond_before_the_gap_does_not_prevent_it():
    assert len(overdue([followup("h1", G - 1), gap("h1", G)], as_of=D)) == 1


def test_a_restoration_within_7_days_prevents_it():
    assert overdue([gap("h1", G), restored("h1", G + 3 * DAY)], as_of=D) == []


def test_a_restoration_at_exactly_g_plus_7_days_prevents_it():
    assert overdue([gap("h1", G), restored("h1", D)]) == []


def test_a_restoration_after_g_plus_7_days_does_not_prevent_it():
    assert len(overdue([gap("h1", G), restored("h1", D + 1)])) == 1


def test_any_followup_action_prevents_it():
    for action in ("phone_call", "legal_aid", "psych_counselling", "police_referral", "shelter"):
        assert overdue([gap("h1", G), followup("h1", G + DAY, action)], as_of=D) == []


def test_other_events_do_not_prevent_it():
    lines = [gap("h1", G), visit("h1", G + DAY, ["guardianship_gap"]), petition("h1", G + DAY)]
    assert len(overdue(lines, as_of=D)) == 1


def test_a_followup_of_another_household_does_not_prevent_it():
    assert len(overdue([gap("h1", G), followup("h2", G + DAY)], as_of=D)) == 1


def test_a_followup_processed_before_the_gap_but_occurring_after_it_prevents_it():
    assert overdue([followup("h1", G + DAY), gap("h1", G)], as_of=D) == []


def test_a_late_followup_processed_before_the_deadline_fires_prevents_it():
    lines = [gap("h1", G), visit("h1", D, []), followup("h1", G + DAY)]
    assert overdue(lines) == []


def test_a_late_followup_processed_after_the_deadline_fired_does_not_undo_it():
    lines = [gap("h1", G), visit("h1", D + 1, []), followup("h1", G + DAY)]
    assert len(overdue(lines)) == 1


def test_the_deadline_fires_before_the_first_later_event_after_d():
    # The warning exists when the case.resolved at D + 1 µs is processed, so it is closed.
    trigger = gap("h1", G)
    records = run([trigger, case_resolved("h1", D + 1)])
    warning_id = wid(RULE, "h1", trigger)
    assert [(r["type"], r["warning_id"], r["at"]) for r in records] == [
        ("warning.raised", warning_id, "2026-03-08T08:00:00Z"),
        ("warning.resolved", warning_id, "2026-03-08T08:00:00.000001Z"),
    ]


def test_the_deadline_does_not_fire_before_an_event_at_exactly_d():
    # The case.resolved at D finds nothing open; the deadline fires at the end (as_of = D).
    records = run([gap("h1", G), case_resolved("h1", D)])
    assert [r["type"] for r in records] == ["warning.raised"]


def test_the_fired_deadline_is_reported_with_the_later_events_outcome():
    rp, _ = replay([gap("h1", G)], as_of=G)
    decoded = decode(visit("h1", D + 1, []))
    outcome = rp.feed(decoded)
    assert [r["type"] for r in outcome.records] == ["warning.raised"]


def test_at_the_end_of_a_replay_the_deadline_fires_when_d_is_as_of():
    assert len(overdue([gap("h1", G)], as_of=D)) == 1


def test_at_the_end_of_a_replay_the_deadline_does_not_fire_when_d_is_after_as_of():
    assert overdue([gap("h1", G)], as_of=D - 1) == []


def test_as_of_defaults_to_the_largest_occurred_at_processed():
    assert overdue([gap("h1", G), petition("h1", D - 1)]) == []
    assert len(overdue([gap("h1", G), petition("h1", D)])) == 1


def test_the_default_as_of_is_the_largest_occurred_at_of_any_household():
    assert len(overdue([gap("h1", G), petition("h2", D)])) == 1


def test_the_clock_reaching_d_fires_it_in_a_live_runtime():
    state, eng = HouseholdState(), engine()
    trigger = gap("h1", G)
    eng.apply(state, decode(trigger))
    assert eng.advance(state, "h1", D - 1) == []
    [warning] = eng.advance(state, "h1", D)
    assert warning["warning_id"] == wid(RULE, "h1", trigger)
    assert eng.advance(state, "h1", D + 365 * DAY)[0]["type"] == "warning.escalated"


def test_the_warning_keeps_the_gap_events_org_unit():
    lines = [gap("h1", G, org="230129001002"), petition("h1", D + 1, org="230129001003")]
    [warning] = overdue(lines)
    assert warning["org_unit"] == warning["handling_org_unit"] == "230129001002"


def test_each_unfollowed_gap_triggers_but_only_one_warning_is_open_at_a_time():
    first, second = gap("h1", G, child_ref="c-1"), gap("h1", G + DAY, child_ref="c-2")
    [warning] = overdue([first, second], as_of=D + DAY)
    assert warning["warning_id"] == wid(RULE, "h1", first)


def test_one_followup_covers_every_gap_whose_window_contains_it():
    lines = [
        gap("h1", G, child_ref="c-1"),
        gap("h1", G + DAY, child_ref="c-2"),
        followup("h1", G + 2 * DAY),
    ]
    assert overdue(lines, as_of=D + DAY) == []


def test_a_followup_inside_one_gaps_window_only_leaves_the_other_overdue():
    second = gap("h1", G + 10 * DAY, child_ref="c-2")
    lines = [gap("h1", G, child_ref="c-1"), followup("h1", G + DAY), second]
    [warning] = overdue(lines, as_of=G + 17 * DAY)
    assert warning["warning_id"] == wid(RULE, "h1", second)
    assert warning["at"] == "2026-03-18T08:00:00Z"
