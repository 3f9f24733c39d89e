"""repeat-petitions (orange): on a petition.received, the household has ≥ 3 petitions
with occurred_at in [t − 30 d, t] (this one included). Windows are inclusive at both ends
and count only events already processed."""

from __future__ import annotations

from tests.helpers import DAY, T0, petition, raised, run, visit, wid

RULE = "repeat-petitions"
T = T0 + 40 * DAY  # the trigger time in most tests


def test_a_third_petition_within_30_days_raises_an_orange_warning():
    # Handled at the household's owner (its first event's community), not at the trigger's.
    third = petition("h1", T, org="230103002004")
    records = run([petition("h1", T - 20 * DAY), petition("h1", T - 10 * DAY), third])
    assert records == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", third),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "orange",
            "org_unit": "230103002004",
            "handling_level": "community",
            "handling_org_unit": "230102001001",
            "at": "2026-04-10T08:00:00Z",
        }
    ]


def test_two_petitions_are_not_enough():
    assert run([petition("h1", T - 1 * DAY), petition("h1", T)]) == []


def test_three_petitions_at_the_same_instant_count():
    trigger = petition("h1", T)
    records = run([petition("h1", T), petition("h1", T), trigger])
    assert [w["warning_id"] for w in raised(records, RULE)] == [wid(RULE, "h1", trigger)]


def test_the_trigger_petition_itself_is_counted():
    # Two earlier petitions + this one = 3: raised on the third, not before.
    first, second, third = petition("h1", T - 2), petition("h1", T - 1), petition("h1", T)
    records = run([first, second, third])
    assert [w["warning_id"] for w in raised(records, RULE)] == [wid(RULE, "h1", third)]


def test_a_petition_exactly_30_days_earlier_counts():
    records = run([petition("h1", T - 30 * DAY), petition("h1", T - DAY), petition("h1", T)])
    assert len(raised(records, RULE)) == 1


def test_a_petition_30_days_and_1_microsecond_earlier_does_not_count():
    records = run([petition("h1", T - 30 * DAY - 1), petition("h1", T - DAY), petition("h1", T)])
    assert raised(records, RULE) == []


def test_a_petition_at_exactly_t_processed_earlier_counts():
    records = run([petition("h1", T), petition("h1", T - DAY), petition("h1", T)])
    # the second petition sees only itself and one later one → no trigger; the third sees 3
    assert len(raised(records, RULE)) == 1
    assert raised(records, RULE)[0]["at"] == "2026-04-10T08:00:00Z"


def test_a_petition_1_microsecond_after_t_processed_earlier_does_not_count():
    # Processed first but occurred after the trigger: outside [t − 30 d, t].
    records = run([petition("h1", T + 1), petition("h1", T - DAY), petition("h1", T)])
    assert raised(records, RULE) == []


def test_a_late_petition_counts_for_petitions_processed_after_it():
    # day 30 sees {0, 30}; the late day 1 sees {0, 1}; day 31 sees {1, 30, 31} → 3.
    trigger = petition("h1", T0 + 31 * DAY)
    records = run(
        [petition("h1", T0), petition("h1", T0 + 30 * DAY), petition("h1", T0 + DAY), trigger]
    )
    [warning] = raised(records, RULE)
    assert warning["warning_id"] == wid(RULE, "h1", trigger)
    assert warning["at"] == "2026-04-01T08:00:00Z"


def test_a_late_petition_does_not_count_for_petitions_processed_before_it():
    # Same events, but day 31 is processed before the late day 1: it sees {30, 31} only.
    records = run(
        [
            petition("h1", T0),
            petition("h1", T0 + 30 * DAY),
            petition("h1", T0 + 31 * DAY),
            petition("h1", T0 + DAY),
        ]
    )
    assert raised(records, RULE) == []


def test_a_late_petition_raises_when_its_own_window_holds_three():
    late = petition("h1", T0 + 8 * DAY)
    records = run(
        [petition("h1", T0), petition("h1", T0 + 5 * DAY), petition("h1", T0 + 40 * DAY), late]
    )
    [warning] = raised(records, RULE)
    assert warning["warning_id"] == wid(RULE, "h1", late)
    assert warning["at"] == "2026-03-09T08:00:00Z"


def test_petitions_of_other_households_do_not_count():
    records = run(
        [petition("h2", T - 2), petition("h3", T - 1), petition("h1", T), petition("h2", T)]
    )
    assert raised(records, RULE) == []


def test_other_event_types_do_not_count():
    records = run(
        [
            visit("h1", T - 2, ["marital_conflict"]),
            visit("h1", T - 1, []),
            petition("h1", T - 1),
            petition("h1", T),
        ]
    )
    assert raised(records, RULE) == []


def test_petitions_of_any_category_count():
    records = run(
        [
            petition("h1", T - 2, category="property_rights"),
            petition("h1", T - 1, category="child_rights", channel="wechat"),
            petition("h1", T, category="other", channel="walk_in"),
        ]
    )
    assert len(raised(records, RULE)) == 1


def test_a_fourth_petition_while_the_warning_is_open_raises_nothing_more():
    lines = [petition("h1", T - 3), petition("h1", T - 2), petition("h1", T - 1), petition("h1", T)]
    assert len(raised(run(lines), RULE)) == 1
