"""mediation-failed (yellow): a mediation.concluded with outcome = failed."""

from __future__ import annotations

import pytest

from tests.helpers import T0, mediation_concluded, mediation_opened, raised, run, wid

RULE = "mediation-failed"


def test_a_failed_mediation_raises_a_yellow_warning():
    # Handled at the household's owner (its first event's community), not at the trigger's.
    trigger = mediation_concluded("h1", T0, "failed", org="230103002004")
    assert run([mediation_opened("h1", T0 - 1), trigger]) == [
        {
            "type": "warning.raised",
            "warning_id": wid(RULE, "h1", trigger),
            "rule_id": RULE,
            "household_id": "h1",
            "level": "yellow",
            "org_unit": "230103002004",
            "handling_level": "community",
            "handling_org_unit": "230102001001",
            "at": "2026-03-01T08:00:00Z",
        }
    ]


@pytest.mark.parametrize("outcome", ["reconciled", "agreement", "referred"])
def test_a_mediation_concluded_otherwise_does_not_raise_it(outcome):
    assert run([mediation_concluded("h1", T0, outcome)]) == []


def test_opening_a_mediation_does_not_raise_it():
    assert run([mediation_opened("h1", T0)]) == []


def test_a_failed_mediation_needs_no_matching_opened_event():
    assert len(raised(run([mediation_concluded("h1", T0, "failed")]), RULE)) == 1
