"""violence-injury (red): visit with injury_observed or sexual_violence_signs; petition
category sexual_assault; or petition category domestic_violence with urgent = true."""

from __future__ import annotations

import pytest

from tests.helpers import T0, petition, raised, run, visit, wid

RULE = "violence-injury"


@pytest.mark.parametrize("indicator", ["injury_observed", "sexual_violence_signs"])
def test_a_visit_observing_injury_or_sexual_violence_raises_a_red_warning(indicator):
    trigger = visit("h1", T0, ["isolation", indicator])
    assert run([trigger]) == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", trigger),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "red",
            "org_unit": "230102001001",
            "handling_level": "community",
            "handling_org_unit": "230102001001",
            "at": "2026-03-01T08:00:00Z",
        }
    ]


@pytest.mark.parametrize(
    "indicators",
    [
        [],
        ["domestic_violence_signs"],
        ["threats", "marital_conflict"],
        ["child_neglect", "alcohol_abuse", "economic_hardship", "isolation"],
        ["guardianship_gap"],
    ],
)
def test_a_visit_without_injury_or_sexual_violence_signs_does_not_raise_it(indicators):
    assert raised(run([visit("h1", T0, indicators)]), RULE) == []


@pytest.mark.parametrize("urgent", [True, False])
def test_a_sexual_assault_petition_raises_it_urgent_or_not(urgent):
    trigger = petition("h1", T0, category="sexual_assault", urgent=urgent)
    [warning] = raised(run([trigger]), RULE)
    assert warning["warning_id"] == wid(RULE, "h1", trigger)
    assert warning["level"] == "red"


def test_an_urgent_domestic_violence_petition_raises_it():
    trigger = petition("h1", T0, category="domestic_violence", urgent=True)
    assert [w["warning_id"] for w in raised(run([trigger]), RULE)] == [wid(RULE, "h1", trigger)]


def test_a_domestic_violence_petition_that_is_not_urgent_does_not_raise_it():
    assert raised(run([petition("h1", T0, category="domestic_violence", urgent=False)])) == []


@pytest.mark.parametrize(
    "category", ["marriage_family_dispute", "child_rights", "property_rights", "other"]
)
def test_an_urgent_petition_of_another_category_does_not_raise_it(category):
    assert raised(run([petition("h1", T0, category=category, urgent=True)]), RULE) == []


@pytest.mark.parametrize(
    "channel", ["hotline_12338", "walk_in", "letter", "online", "wechat", "referral"]
)
def test_the_petition_channel_does_not_matter(channel):
    trigger = petition("h1", T0, category="sexual_assault", channel=channel)
    assert len(raised(run([trigger]), RULE)) == 1


def test_the_warning_is_raised_at_the_trigger_time_and_org_unit():
    trigger = visit(
        "h1", "2026-03-01T16:30:00.000250+08:00", ["injury_observed"], org="230184105203"
    )
    [warning] = raised(run([trigger]), RULE)
    assert warning["at"] == "2026-03-01T08:30:00.000250Z"
    assert warning["org_unit"] == warning["handling_org_unit"] == "230184105203"


def test_each_household_gets_its_own_warning():
    first, second = visit("h1", T0, ["injury_observed"]), visit("h2", T0, ["injury_observed"])
    records = run([first, second])
    assert [(w["household_id"], w["warning_id"]) for w in raised(records, RULE)] == [
        ("h1", wid(RULE, "h1", first)),
        ("h2", wid(RULE, "h2", second)),
    ]
