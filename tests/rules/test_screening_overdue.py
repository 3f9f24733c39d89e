"""screening-overdue (yellow, deadline; DESIGN "Catalog v2", "New rules in the default pack").

Registered households only. L is the latest occurred_at among the household's processed
``household.registered`` events and the ``screening.visit_recorded`` events processed after
it was registered; C = 30 d if its flags include key_household, else 180 d. The household
has one screening deadline, at L + C, rescheduled whenever L or C changes. When it fires
the rule triggers (t = L + C; the event that set L is the trigger — on equal occurred_at,
the first processed). A processed visit resolves the open warning (auto-resolution).
"""

from __future__ import annotations

from events.instants import format_instant
from rules.state import CADENCE
from tests.helpers import (
    DAY,
    HOUR,
    ORG,
    T0,
    case_resolved,
    of_type,
    petition,
    raised,
    replay,
    run,
    visit,
    wid,
)
from tests.rules.households import OTHER_DISTRICT, SAME_STREET, register, transfer

RULE = "screening-overdue"
KEY = ["key_household"]


def overdue(lines, **kw):
    return raised(run(lines, **kw), RULE)


def at(micros: int) -> str:
    return format_instant(micros)


def cadence_deadlines(lines) -> list[int]:
    rp, _ = replay(lines, as_of=T0)  # nothing after T0 fires
    return [d[0] for d in rp.states["h1"].deadlines if d[2] == CADENCE]


def test_a_key_household_not_visited_for_30_days_raises_a_yellow_warning():
    registration = register("h1", T0, KEY, org=SAME_STREET)
    assert overdue([registration], as_of=T0 + 30 * DAY) == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", registration),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "yellow",
            "org_unit": SAME_STREET,
            "handling_level": "community",
            "handling_org_unit": SAME_STREET,
            "at": at(T0 + 30 * DAY),
        }
    ]


def test_the_deadline_is_inclusive_and_not_a_microsecond_early():
    assert overdue([register("h1", T0, KEY)], as_of=T0 + 30 * DAY - 1) == []


def test_other_households_are_due_after_180_days():
    registration = register("h1", T0, ["rural", "single_parent"])
    assert overdue([registration], as_of=T0 + 179 * DAY) == []
    [warning] = overdue([registration], as_of=T0 + 180 * DAY)
    assert warning["at"] == at(T0 + 180 * DAY)


def test_the_key_flag_among_others_gives_the_30_day_cadence():
    [warning] = overdue([register("h1", T0, ["rural", "key_household"])], as_of=T0 + 30 * DAY)
    assert warning["at"] == at(T0 + 30 * DAY)


def test_households_never_registered_are_never_overdue():
    lines = [visit("h1", T0, []), petition("h1", T0 + 400 * DAY)]
    assert overdue(lines, as_of=T0 + 800 * DAY) == []


def test_a_visit_after_registration_reschedules_the_deadline_and_becomes_the_trigger():
    later = visit("h1", T0 + 20 * DAY, [])
    lines = [register("h1", T0, KEY), later]
    assert overdue(lines, as_of=T0 + 49 * DAY) == []
    [warning] = overdue(lines, as_of=T0 + 50 * DAY)
    assert warning["warning_id"] == wid(RULE, "h1", later)
    assert warning["at"] == at(T0 + 50 * DAY)


def test_visits_before_registration_do_not_count():
    lines = [visit("h1", T0 + 10 * DAY, []), register("h1", T0, KEY)]
    [warning] = overdue(lines, as_of=T0 + 40 * DAY)
    assert warning["at"] == at(T0 + 30 * DAY)  # L is the registration's, not the visit's


def test_a_late_recorded_visit_older_than_l_changes_nothing():
    registration = register("h1", T0, KEY)
    [warning] = overdue([registration, visit("h1", T0 - 5 * DAY, [])], as_of=T0 + 30 * DAY)
    assert warning["warning_id"] == wid(RULE, "h1", registration)
    assert warning["at"] == at(T0 + 30 * DAY)


def test_on_equal_occurred_at_the_first_processed_event_stays_the_trigger():
    registration = register("h1", T0, KEY)
    [warning] = overdue([registration, visit("h1", T0, [])], as_of=T0 + 30 * DAY)
    assert warning["warning_id"] == wid(RULE, "h1", registration)


def test_re_registration_as_a_key_household_shortens_the_cadence():
    lines = [register("h1", T0, []), register("h1", T0 + DAY, KEY)]
    [warning] = overdue(lines, as_of=T0 + 200 * DAY)
    assert warning["at"] == at(T0 + 31 * DAY)


def test_re_registration_dropping_the_key_flag_lengthens_the_cadence():
    lines = [register("h1", T0, KEY), register("h1", T0 + DAY, ["rural"])]
    assert overdue(lines, as_of=T0 + 180 * DAY) == []
    [warning] = overdue(lines, as_of=T0 + 181 * DAY)
    assert warning["at"] == at(T0 + 181 * DAY)


def test_a_late_re_registration_changes_c_and_keeps_l_and_its_trigger():
    visited = visit("h1", T0 + 10 * DAY, [])
    lines = [register("h1", T0, []), visited, register("h1", T0 + 5 * DAY, KEY)]
    [warning] = overdue(lines, as_of=T0 + 400 * DAY)
    assert warning["at"] == at(T0 + 40 * DAY)
    assert warning["warning_id"] == wid(RULE, "h1", visited)


def test_a_re_registration_that_is_a_notice_changes_nothing():
    lines = [register("h1", T0, KEY), register("h1", T0 + DAY, [], org=OTHER_DISTRICT)]
    [warning] = overdue(lines, as_of=T0 + 400 * DAY)
    assert warning["at"] == at(T0 + 30 * DAY)


def test_the_household_has_one_screening_deadline_however_often_it_is_rescheduled():
    lines = [register("h1", T0 - 100 * DAY, KEY)]
    lines += [visit("h1", T0 - 90 * DAY + n * DAY, []) for n in range(20)]
    lines.append(register("h1", T0 - 60 * DAY, []))  # L = this registration, C = 180 d
    assert cadence_deadlines(lines) == [T0 - 60 * DAY + 180 * DAY]


def test_the_deadline_fires_before_a_later_event_of_the_household():
    lines = [register("h1", T0, KEY), petition("h1", T0 + 31 * DAY)]
    rp, records = replay(lines)
    assert [r["type"] for r in records] == ["warning.raised"]
    assert records[0]["at"] == at(T0 + 30 * DAY)


def test_a_fired_deadline_raises_once_and_waits_for_a_new_l():
    lines = [register("h1", T0, KEY), petition("h1", T0 + 100 * DAY)]
    assert len(overdue(lines, as_of=T0 + 400 * DAY)) == 1


def test_a_visit_resolves_the_warning_and_starts_the_next_cadence():
    registration = register("h1", T0, KEY)
    seen = visit("h1", T0 + 40 * DAY, [])
    records = run([registration, seen], as_of=T0 + 70 * DAY)
    assert [(r["type"], r["warning_id"], r["at"]) for r in records
            if r["type"] != "warning.escalated"] == [
        ("warning.raised", wid(RULE, "h1", registration), at(T0 + 30 * DAY)),
        ("warning.resolved", wid(RULE, "h1", registration), at(T0 + 40 * DAY)),
        ("warning.raised", wid(RULE, "h1", seen), at(T0 + 70 * DAY)),
    ]


def test_while_a_warning_is_open_a_new_deadline_raises_nothing_more():
    lines = [
        register("h1", T0, KEY),
        petition("h1", T0 + 31 * DAY),  # fires the first deadline
        register("h1", T0 + 32 * DAY, KEY),  # a new L; the warning stays open
    ]
    assert len(overdue(lines, as_of=T0 + 100 * DAY)) == 1


def test_a_case_resolved_closes_it_and_the_next_deadline_raises_again():
    lines = [
        register("h1", T0, KEY),
        case_resolved("h1", T0 + 31 * DAY),
        register("h1", T0 + 32 * DAY, KEY),
    ]
    assert [w["at"] for w in overdue(lines, as_of=T0 + 62 * DAY)] == [
        at(T0 + 30 * DAY), at(T0 + 62 * DAY),
    ]


def test_it_is_handled_at_the_owner_when_it_fires():
    registration = register("h1", T0, KEY)
    lines = [registration, transfer("h1", T0 + DAY, OTHER_DISTRICT)]
    [warning] = overdue(lines, as_of=T0 + 30 * DAY)
    assert warning["org_unit"] == ORG  # the trigger's
    assert warning["handling_org_unit"] == OTHER_DISTRICT


def test_it_escalates_like_any_yellow_warning():
    records = run([register("h1", T0, KEY)], as_of=T0 + 30 * DAY + 168 * HOUR)
    [escalated] = of_type(records, "warning.escalated")
    assert escalated["at"] == at(T0 + 30 * DAY + 168 * HOUR)
