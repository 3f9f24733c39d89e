"""vulnerable-person-harm (red): on a visit with any of domestic_violence_signs,
sexual_violence_signs, injury_observed, child_neglect — intellectual_disability is among this
visit's indicators or was recorded on any earlier processed visit of the household, or
(**changes v1**, DESIGN "Catalog v2") on a processed household.registered's flags."""

from __future__ import annotations

import pytest

from tests.helpers import DAY, T0, petition, raised, rules_raised, run, visit, wid
from tests.rules.households import OTHER_DISTRICT, register

RULE = "vulnerable-person-harm"
HARM = ["domestic_violence_signs", "sexual_violence_signs", "injury_observed", "child_neglect"]


def harms(lines):
    return raised(run(lines), RULE)


@pytest.mark.parametrize("indicator", HARM)
def test_harm_with_intellectual_disability_on_the_same_visit_raises_a_red_warning(indicator):
    trigger = visit("h1", T0, [indicator, "intellectual_disability"], org="230125200300")
    [warning] = harms([trigger])
    assert warning == {
        "type": "warning.raised",
        "warning_id": wid(RULE, "h1", trigger),
        "rule_id": RULE,
        "household_id": "h1",
        "level": "red",
        "org_unit": "230125200300",
        "handling_level": "community",
        "handling_org_unit": "230125200300",
        "at": "2026-03-01T08:00:00Z",
    }


@pytest.mark.parametrize("indicator", HARM)
def test_harm_after_disability_on_an_earlier_visit_raises_it(indicator):
    trigger = visit("h1", T0 + DAY, [indicator])
    [warning] = harms([visit("h1", T0, ["intellectual_disability"]), trigger])
    assert warning["warning_id"] == wid(RULE, "h1", trigger)


@pytest.mark.parametrize("indicator", HARM)
def test_harm_without_any_disability_record_does_not_raise_it(indicator):
    assert harms([visit("h1", T0, [indicator, "isolation", "threats"])]) == []


def test_disability_alone_does_not_raise_it():
    assert harms([visit("h1", T0, ["intellectual_disability", "marital_conflict"])]) == []


def test_other_indicators_with_disability_do_not_raise_it():
    lines = [
        visit("h1", T0, ["intellectual_disability"]),
        visit(
            "h1",
            T0 + DAY,
            [
                "threats",
                "alcohol_abuse",
                "guardianship_gap",
                "economic_hardship",
                "isolation",
                "marital_conflict",
            ],
        ),
    ]
    assert harms(lines) == []


def test_disability_recorded_long_ago_still_counts():
    lines = [
        visit("h1", T0, ["intellectual_disability"]),
        visit("h1", T0 + 3 * 365 * DAY, ["child_neglect"]),
    ]
    assert len(harms(lines)) == 1


def test_disability_on_an_earlier_processed_visit_with_a_later_occurred_at_counts():
    # "earlier processed": processing order matters, not occurred_at.
    trigger = visit("h1", T0, ["injury_observed"])
    lines = [visit("h1", T0 + 10 * DAY, ["intellectual_disability"]), trigger]
    [warning] = harms(lines)
    assert warning["warning_id"] == wid(RULE, "h1", trigger)


def test_disability_on_a_later_processed_visit_does_not_count_for_an_earlier_harm():
    lines = [visit("h1", T0 + DAY, ["child_neglect"]), visit("h1", T0, ["intellectual_disability"])]
    assert harms(lines) == []


def test_disability_on_another_households_visit_does_not_count():
    lines = [visit("h2", T0, ["intellectual_disability"]), visit("h1", T0 + DAY, ["child_neglect"])]
    assert harms(lines) == []


def test_a_petition_does_not_trigger_it_even_after_disability():
    lines = [
        visit("h1", T0, ["intellectual_disability"]),
        petition("h1", T0 + DAY, category="domestic_violence", urgent=True),
    ]
    assert harms(lines) == []


def test_injury_with_disability_raises_violence_injury_then_vulnerable_person_harm():
    records = run([visit("h1", T0, ["intellectual_disability", "injury_observed"])])
    assert rules_raised(records) == ["violence-injury", RULE]


@pytest.mark.parametrize("indicator", HARM)
def test_harm_after_a_registration_flagging_intellectual_disability_raises_it(indicator):
    trigger = visit("h1", T0 + DAY, [indicator])
    [warning] = harms([register("h1", T0, ["rural", "intellectual_disability"]), trigger])
    assert warning["warning_id"] == wid(RULE, "h1", trigger)


def test_a_registration_without_that_flag_is_no_record_of_disability():
    lines = [register("h1", T0, ["key_household", "elderly_alone"]),
             visit("h1", T0 + DAY, ["injury_observed"])]
    assert harms(lines) == []


def test_the_registration_must_be_processed_earlier_than_the_harm():
    lines = [visit("h1", T0 + DAY, ["injury_observed"]),
             register("h1", T0, ["intellectual_disability"])]
    assert harms(lines) == []


def test_the_record_stays_when_a_later_registration_drops_the_flag():
    lines = [
        register("h1", T0, ["intellectual_disability"]),
        register("h1", T0 + DAY, []),
        visit("h1", T0 + 2 * DAY, ["child_neglect"]),
    ]
    assert len(harms(lines)) == 1


def test_a_registration_that_is_a_notice_is_no_record_of_disability():
    lines = [
        register("h1", T0, []),
        register("h1", T0 + DAY, ["intellectual_disability"], org=OTHER_DISTRICT),
        visit("h1", T0 + 2 * DAY, ["child_neglect"]),
    ]
    assert harms(lines) == []
