"""escalating-dispute (orange): on a visit with indicator threats, the household has ≥ 2
dispute signals in [t − 60 d, t] (this visit included if it is one). A dispute signal is a
visit with marital_conflict, or a petition with category marriage_family_dispute or
domestic_violence."""

from __future__ import annotations

import pytest

from tests.helpers import DAY, ORG, T0, petition, raised, run, visit, wid

RULE = "escalating-dispute"
T = T0 + 90 * DAY


def escalations(lines, **kw):
    return raised(run(lines, **kw), RULE)


def test_a_threats_visit_after_two_dispute_signals_raises_an_orange_warning():
    trigger = visit("h1", T, ["threats"], org="230110003007")
    records = run(
        [
            visit("h1", T - 30 * DAY, ["marital_conflict"]),
            petition("h1", T - 20 * DAY, category="marriage_family_dispute"),
            trigger,
        ]
    )
    assert records == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", trigger),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "orange",
            "org_unit": "230110003007",
            "handling_level": "community",
            "handling_org_unit": ORG,  # the owner's: the first event's community
            "at": "2026-05-30T08:00:00Z",
        }
    ]


def test_the_threats_visit_counts_itself_when_it_records_marital_conflict():
    trigger = visit("h1", T, ["threats", "marital_conflict"])
    [warning] = escalations([visit("h1", T - DAY, ["marital_conflict"]), trigger])
    assert warning["warning_id"] == wid(RULE, "h1", trigger)


def test_a_threats_visit_with_marital_conflict_alone_is_only_one_signal():
    assert escalations([visit("h1", T, ["threats", "marital_conflict"])]) == []


def test_the_threats_visit_is_not_a_signal_without_marital_conflict():
    assert (
        escalations([visit("h1", T - DAY, ["marital_conflict"]), visit("h1", T, ["threats"])]) == []
    )


@pytest.mark.parametrize("category", ["marriage_family_dispute", "domestic_violence"])
def test_dispute_petitions_are_signals(category):
    lines = [
        petition("h1", T - 2 * DAY, category=category),
        petition("h1", T - DAY, category=category),
        visit("h1", T, ["threats"]),
    ]
    assert len(escalations(lines)) == 1


def test_an_urgent_domestic_violence_petition_is_also_a_dispute_signal():
    lines = [
        petition("h1", T - 2 * DAY, category="domestic_violence", urgent=True),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert len(escalations(lines)) == 1


@pytest.mark.parametrize("category", ["sexual_assault", "child_rights", "property_rights", "other"])
def test_other_petition_categories_are_not_signals(category):
    lines = [
        petition("h1", T - 2 * DAY, category=category),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert escalations(lines) == []


def test_visits_without_marital_conflict_are_not_signals():
    lines = [
        visit("h1", T - 2 * DAY, ["domestic_violence_signs", "alcohol_abuse"]),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert escalations(lines) == []


def test_two_signals_without_a_threats_visit_raise_nothing():
    lines = [
        visit("h1", T - 2 * DAY, ["marital_conflict"]),
        petition("h1", T - DAY, category="marriage_family_dispute"),
        visit("h1", T, ["marital_conflict", "domestic_violence_signs"]),
    ]
    assert escalations(lines) == []


def test_a_signal_exactly_60_days_earlier_counts():
    lines = [
        visit("h1", T - 60 * DAY, ["marital_conflict"]),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert len(escalations(lines)) == 1


def test_a_signal_60_days_and_1_microsecond_earlier_does_not_count():
    lines = [
        visit("h1", T - 60 * DAY - 1, ["marital_conflict"]),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert escalations(lines) == []


def test_a_signal_at_exactly_t_processed_earlier_counts():
    lines = [
        petition("h1", T, category="marriage_family_dispute"),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert len(escalations(lines)) == 1


def test_a_signal_1_microsecond_after_t_processed_earlier_does_not_count():
    lines = [
        petition("h1", T + 1, category="marriage_family_dispute"),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert escalations(lines) == []


def test_a_late_signal_processed_after_the_threats_visit_does_not_count_for_it():
    lines = [
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
        petition("h1", T - 2 * DAY, category="marriage_family_dispute"),
    ]
    assert escalations(lines) == []


def test_a_late_signal_counts_for_threats_visits_processed_after_it():
    lines = [
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
        petition("h1", T - 2 * DAY, category="marriage_family_dispute"),
        visit("h1", T + DAY, ["threats"]),
    ]
    [warning] = escalations(lines)
    assert warning["warning_id"] == wid(RULE, "h1", lines[3])


def test_signals_of_other_households_do_not_count():
    lines = [
        visit("h2", T - DAY, ["marital_conflict"]),
        visit("h1", T - DAY, ["marital_conflict"]),
        visit("h1", T, ["threats"]),
    ]
    assert escalations(lines) == []
