"""Warnings, escalation and commands (DESIGN.md "Warnings", "Escalation (逐级上报)",
"Lifecycle output")."""

from __future__ import annotations

import hashlib

import pytest

from events.instants import format_instant
from rules.engine import warning_id_for
from rules.replay import Replay
from tests.helpers import (
    DAY,
    HOUR,
    T0,
    ack,
    case_resolved,
    eid_of,
    gap,
    mediation_concluded,
    petition,
    raised,
    replay,
    resolve,
    rules_raised,
    run,
    visit,
    wid,
)

R = T0  # raise time in most tests: 2026-03-01T08:00:00Z
STREET, DISTRICT, CITY = "230102001000", "230102000000", "230100000000"
VI = "violence-injury"


def red(hh="h1", at=R, **kw):
    return visit(hh, at, ["injury_observed"], **kw)


def feed(rp: Replay, event_line: str):
    _, outcome = rp.feed_line(event_line)
    assert outcome is not None
    return outcome


def brief(records):
    return [(r["type"], r.get("to_level"), r["at"]) for r in records]


# -- raising and de-duplication ------------------------------------------------------


def test_the_warning_id_is_w_dash_and_16_hex_of_sha256_of_rule_household_trigger():
    trigger = red()
    event_id = eid_of(trigger)
    expected = "w-" + hashlib.sha256(f"{VI}:h1:{event_id}".encode()).hexdigest()[:16]
    assert warning_id_for(VI, "h1", event_id) == expected
    assert raised(run([trigger]))[0]["warning_id"] == expected


def test_the_same_trigger_always_gives_the_same_warning_id():
    trigger = red()
    assert run([trigger]) == run([trigger])


def test_a_second_trigger_while_the_warning_is_open_raises_nothing():
    records = run([red(at=R), red(at=R + HOUR)], as_of=R + HOUR)
    assert rules_raised(records) == [VI]


def test_a_second_trigger_while_the_warning_is_acknowledged_raises_nothing():
    first = red(at=R)
    records = run([first, ack("h1", wid(VI, "h1", first), R + HOUR), red(at=R + 2 * HOUR)])
    assert rules_raised(records) == [VI]


def test_after_resolution_a_new_trigger_raises_a_new_warning_with_a_new_id():
    first, again = red(at=R), red(at=R + 2 * HOUR)
    records = run([first, resolve("h1", wid(VI, "h1", first), R + HOUR), again])
    assert [w["warning_id"] for w in raised(records)] == [
        wid(VI, "h1", first),
        wid(VI, "h1", again),
    ]
    assert wid(VI, "h1", first) != wid(VI, "h1", again)


def test_after_case_resolved_a_new_trigger_raises_a_new_warning():
    first, again = red(at=R), red(at=R + 2 * HOUR)
    records = run([first, case_resolved("h1", R + HOUR), again])
    assert [w["warning_id"] for w in raised(records)] == [
        wid(VI, "h1", first),
        wid(VI, "h1", again),
    ]


def test_an_open_warning_of_one_rule_does_not_block_another_rule():
    records = run([red(at=R), mediation_concluded("h1", R + HOUR, "failed")])
    assert rules_raised(records) == [VI, "mediation-failed"]


def test_an_open_warning_of_one_household_does_not_block_another_household():
    assert [w["household_id"] for w in raised(run([red("h1"), red("h2")]))] == ["h1", "h2"]


def test_one_event_triggering_several_rules_raises_them_in_pack_order():
    trigger = visit(
        "h1", R, ["marital_conflict", "threats", "intellectual_disability", "injury_observed"]
    )
    records = run([visit("h1", R - DAY, ["marital_conflict"]), trigger])
    assert rules_raised(records) == [VI, "escalating-dispute", "vulnerable-person-harm"]
    assert {w["warning_id"] for w in raised(records)} == {
        wid(rule, "h1", trigger) for rule in (VI, "escalating-dispute", "vulnerable-person-harm")
    }


def test_a_third_sexual_assault_petition_raises_violence_injury_then_repeat_petitions():
    lines = [
        petition("h1", R - 2 * DAY),
        petition("h1", R - DAY),
        petition("h1", R, category="sexual_assault"),
    ]
    records = run(lines)
    assert rules_raised(records)[-2:] == [VI, "repeat-petitions"]


# -- escalation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "rule_id", "level", "sla"),
    [
        (visit("h1", R, ["injury_observed"]), VI, "red", 24 * HOUR),
        (
            visit("h1", R, ["threats", "marital_conflict"]),
            "escalating-dispute",
            "orange",
            72 * HOUR,
        ),
        (mediation_concluded("h1", R, "failed"), "mediation-failed", "yellow", 168 * HOUR),
    ],
)
def test_an_unacknowledged_warning_climbs_to_street_district_city_one_sla_apart(
    trigger, rule_id, level, sla
):
    lines = [visit("h1", R - DAY, ["marital_conflict"]), trigger]
    records = run(lines, as_of=R + 10 * sla)
    warning_id = wid(rule_id, "h1", trigger)
    assert records[0]["warning_id"] == warning_id and records[0]["level"] == level
    assert records[1:] == [
        {
            "type": "warning.escalated",
            "warning_id": warning_id,
            "household_id": "h1",
            "from_level": frm,
            "to_level": to,
            "handling_org_unit": unit,
            "at": format_instant(R + n * sla),
        }
        for n, frm, to, unit in [
            (1, "community", "street", STREET),
            (2, "street", "district", DISTRICT),
            (3, "district", "city", CITY),
        ]
    ]


def test_the_red_escalation_times_are_r_plus_24_48_72_hours():
    records = run([red()], as_of=R + 30 * DAY)
    assert brief(records) == [
        ("warning.raised", None, "2026-03-01T08:00:00Z"),
        ("warning.escalated", "street", "2026-03-02T08:00:00Z"),
        ("warning.escalated", "district", "2026-03-03T08:00:00Z"),
        ("warning.escalated", "city", "2026-03-04T08:00:00Z"),
    ]


def test_escalation_follows_the_warnings_own_org_unit_chain():
    records = run([red(org="230184105203")], as_of=R + 30 * DAY)
    assert [r["handling_org_unit"] for r in records] == [
        "230184105203",
        "230184105000",
        "230184000000",
        "230100000000",
    ]


def test_no_escalation_before_the_sla_has_passed():
    assert brief(run([red()], as_of=R + 24 * HOUR - 1)) == [
        ("warning.raised", None, "2026-03-01T08:00:00Z")
    ]


def test_an_escalation_fires_before_the_first_later_event_after_its_due_time():
    rp, _ = replay([red()], as_of=R)
    outcome = feed(rp, petition("h1", R + 24 * HOUR + 1))
    assert brief(outcome.records) == [("warning.escalated", "street", "2026-03-02T08:00:00Z")]


def test_an_escalation_does_not_fire_before_an_event_at_exactly_its_due_time():
    rp, _ = replay([red()], as_of=R)
    assert feed(rp, petition("h1", R + 24 * HOUR)).records == []


def test_several_due_escalations_fire_in_order_before_a_much_later_event():
    rp, _ = replay([red()], as_of=R)
    outcome = feed(rp, petition("h1", R + 50 * HOUR))
    assert [r["to_level"] for r in outcome.records] == ["street", "district"]


def test_another_households_event_does_not_fire_this_households_deadlines():
    rp, _ = replay([red("h1")], as_of=R)
    assert feed(rp, petition("h2", R + 30 * DAY)).records == []
    assert [r["to_level"] for r in rp.finish(R + 30 * DAY)] == ["street", "district", "city"]


def test_acknowledgement_at_exactly_r_plus_sla_stops_escalation():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run([trigger, ack("h1", warning_id, R + 24 * HOUR)], as_of=R + 30 * DAY)
    assert records[1:] == [
        {
            "type": "warning.acknowledged",
            "warning_id": warning_id,
            "household_id": "h1",
            "at": "2026-03-02T08:00:00Z",
        }
    ]


def test_acknowledgement_1_microsecond_after_r_plus_sla_comes_after_one_escalation():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run([trigger, ack("h1", warning_id, R + 24 * HOUR + 1)], as_of=R + 30 * DAY)
    assert brief(records) == [
        ("warning.raised", None, "2026-03-01T08:00:00Z"),
        ("warning.escalated", "street", "2026-03-02T08:00:00Z"),
        ("warning.acknowledged", None, "2026-03-02T08:00:00.000001Z"),
    ]


def test_acknowledgement_at_district_level_stops_further_escalation():
    trigger = red()
    lines = [trigger, ack("h1", wid(VI, "h1", trigger), R + 60 * HOUR)]
    assert [r.get("to_level") for r in run(lines, as_of=R + 30 * DAY)] == [
        None,
        "street",
        "district",
        None,
    ]


def test_a_resolved_warning_stops_escalating():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run([trigger, resolve("h1", warning_id, R + HOUR)], as_of=R + 30 * DAY)
    assert records[1:] == [
        {
            "type": "warning.resolved",
            "warning_id": warning_id,
            "household_id": "h1",
            "at": "2026-03-01T09:00:00Z",
        }
    ]


# -- commands ----------------------------------------------------------------------


def test_an_acknowledged_warning_can_be_resolved():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run(
        [trigger, ack("h1", warning_id, R + HOUR), resolve("h1", warning_id, R + 2 * HOUR)]
    )
    assert [r["type"] for r in records] == [
        "warning.raised",
        "warning.acknowledged",
        "warning.resolved",
    ]


def test_a_warning_can_be_resolved_without_acknowledgement():
    trigger = red()
    records = run([trigger, resolve("h1", wid(VI, "h1", trigger), R + HOUR)])
    assert [r["type"] for r in records] == ["warning.raised", "warning.resolved"]


def test_case_resolved_closes_every_open_warning_in_raise_order():
    first = mediation_concluded("h1", R, "failed")
    second = red(at=R + HOUR)
    third = visit("h1", R + 2 * HOUR, ["child_neglect", "intellectual_disability"])
    lines = [
        first,
        second,
        third,
        ack("h1", wid(VI, "h1", second), R + 3 * HOUR),
        case_resolved("h1", R + 4 * HOUR),
    ]
    records = run(lines)
    assert [r for r in records if r["type"] == "warning.resolved"] == [
        {
            "type": "warning.resolved",
            "warning_id": wid(rule, "h1", trig),
            "household_id": "h1",
            "at": "2026-03-01T12:00:00Z",
        }
        for rule, trig in [
            ("mediation-failed", first),
            (VI, second),
            ("vulnerable-person-harm", third),
        ]
    ]


def test_case_resolved_leaves_already_resolved_warnings_and_other_households_alone():
    first, other = red("h1"), red("h2")
    lines = [
        first,
        other,
        resolve("h1", wid(VI, "h1", first), R + HOUR),
        case_resolved("h1", R + 2 * HOUR),
    ]
    rp, records = replay(lines)
    resolved = [r for r in records if r["type"] == "warning.resolved"]
    assert [(r["household_id"], r["at"]) for r in resolved] == [("h1", "2026-03-01T09:00:00Z")]


def test_case_resolved_with_no_open_warning_changes_nothing():
    assert run([case_resolved("h1", R)]) == []


def test_a_repeated_acknowledgement_changes_nothing_and_is_reported():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, ack("h1", warning_id, R + HOUR)], as_of=R + HOUR)
    outcome = feed(rp, ack("h1", warning_id, R + 2 * HOUR))
    assert outcome.status == "processed"
    assert outcome.records == []
    assert len(outcome.notices) == 1 and warning_id in outcome.notices[0]
    assert rp.counts.notices == 1


@pytest.mark.parametrize("command", [ack, resolve])
def test_a_command_for_an_unknown_warning_changes_nothing_and_is_reported(command):
    rp, _ = replay([red()], as_of=R)
    outcome = feed(rp, command("h1", "w-0000000000000000", R + HOUR))
    assert outcome.records == []
    assert len(outcome.notices) == 1 and "w-0000000000000000" in outcome.notices[0]
    assert [r["to_level"] for r in rp.finish(R + 30 * DAY)] == ["street", "district", "city"]


@pytest.mark.parametrize("command", [ack, resolve])
def test_a_command_for_a_closed_warning_changes_nothing_and_is_reported(command):
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, resolve("h1", warning_id, R + HOUR)], as_of=R + HOUR)
    outcome = feed(rp, command("h1", warning_id, R + 2 * HOUR))
    assert outcome.records == []
    assert len(outcome.notices) == 1 and warning_id in outcome.notices[0]


@pytest.mark.parametrize("command", [ack, resolve])
def test_a_command_whose_household_does_not_match_changes_nothing_and_is_reported(command):
    trigger = red("h1")
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, red("h2")], as_of=R)
    outcome = feed(rp, command("h2", warning_id, R + HOUR))
    assert outcome.records == []
    assert len(outcome.notices) == 1 and warning_id in outcome.notices[0]
    # h1's warning is untouched: still open and unacknowledged, so it escalates.
    h1 = [r for r in rp.finish(R + 30 * DAY) if r["household_id"] == "h1"]
    assert [r["to_level"] for r in h1] == ["street", "district", "city"]


def test_commands_count_as_processed_events_even_when_they_change_nothing():
    rp, _ = replay([ack("h1", "w-0000000000000000", R)])
    assert (rp.counts.received, rp.counts.processed, rp.counts.notices) == (1, 1, 1)


# -- deadline ordering ---------------------------------------------------------------


def test_deadlines_fire_in_order_of_due_time_not_creation():
    orange = visit("h1", R, ["threats", "marital_conflict"])  # due R + 72 h
    early = visit("h1", R - DAY, ["marital_conflict"])
    redder = red(at=R + HOUR)  # due R + 25 h
    records = run([early, orange, redder], as_of=R + 72 * HOUR)
    escalated = [(r["warning_id"], r["at"]) for r in records if r["type"] == "warning.escalated"]
    assert escalated == [
        (wid(VI, "h1", redder), "2026-03-02T09:00:00Z"),
        (wid(VI, "h1", redder), "2026-03-03T09:00:00Z"),
        (wid("escalating-dispute", "h1", orange), "2026-03-04T08:00:00Z"),
    ]


def test_deadlines_due_at_the_same_time_fire_in_order_of_creation():
    orange = visit("h1", R, ["threats", "marital_conflict"])  # due R + 72 h, created first
    early = visit("h1", R - DAY, ["marital_conflict"])
    redder = red(at=R + 48 * HOUR)  # due R + 72 h, created second
    records = run([early, orange, redder], as_of=R + 72 * HOUR)
    escalated = [r["warning_id"] for r in records if r["type"] == "warning.escalated"]
    assert escalated == [wid("escalating-dispute", "h1", orange), wid(VI, "h1", redder)]


def test_a_gap_deadline_created_before_an_escalation_due_at_the_same_time_fires_first():
    gap_line = gap("h1", R - 6 * DAY)  # due R + 1 d
    records = run([gap_line, red(at=R)], as_of=R + DAY)
    assert [(r["type"], r.get("rule_id"), r["at"]) for r in records[1:]] == [
        ("warning.raised", "guardianship-no-followup", "2026-03-02T08:00:00Z"),
        ("warning.escalated", None, "2026-03-02T08:00:00Z"),
    ]


def test_an_escalation_created_before_a_gap_deadline_due_at_the_same_time_fires_first():
    late_gap = gap("h1", R - 6 * DAY)  # processed after the red warning, due R + 1 d
    records = run([red(at=R), late_gap], as_of=R + DAY)
    assert [(r["type"], r.get("rule_id"), r["at"]) for r in records[1:]] == [
        ("warning.escalated", None, "2026-03-02T08:00:00Z"),
        ("warning.raised", "guardianship-no-followup", "2026-03-02T08:00:00Z"),
    ]


def test_a_warning_raised_by_a_deadline_escalates_from_its_due_time():
    records = run([gap("h1", R)], as_of=R + 7 * DAY + 168 * HOUR)
    assert brief(records) == [
        ("warning.raised", None, "2026-03-08T08:00:00Z"),
        ("warning.escalated", "street", "2026-03-15T08:00:00Z"),
    ]


# -- lifecycle output --------------------------------------------------------------


def test_lifecycle_instants_are_utc_with_z_and_microseconds_only_when_non_zero():
    records = run([red(at="2026-03-01T16:00:00.5+08:00"), red("h2", at=R + 1)])
    assert [r["at"] for r in records] == [
        "2026-03-01T08:00:00.500000Z",
        "2026-03-01T08:00:00.000001Z",
    ]
