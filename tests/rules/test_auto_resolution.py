"""Auto-resolution (DESIGN "Catalog v2"): a rule's ``resolved_by`` signals in the pack.

A processed event matching one of a rule's ``resolved_by`` signals resolves the
household's open warning of that rule; the lifecycle ``warning.resolved`` is at the
later of the event's occurred_at and the warning's raise instant. In the default pack a
processed ``screening.visit_recorded`` resolves the open ``screening-overdue`` warning.
"""

from __future__ import annotations

import pytest

from rules.engine import Engine
from rules.pack import RulePackError, load_pack, parse_pack
from rules.replay import Replay
from tests.helpers import (
    DAY,
    HOUR,
    T0,
    mediation_concluded,
    mediation_opened,
    of_type,
    run,
    visit,
    wid,
)
from tests.rules.households import OTHER_DISTRICT, register

OVERDUE = "screening-overdue"


def pack_document(**mediation_failed: object) -> dict:
    return {
        "pack": "auto",
        "version": 1,
        "ack_sla_hours": {"red": 24, "orange": 72, "yellow": 168},
        "signals": {
            "failed_mediation": {"type": "mediation.concluded", "outcome_in": ["failed"]},
            "reopened": {"type": "mediation.opened"},
        },
        "rules": [{"id": "mediation-failed", "level": "yellow", "when": ["failed_mediation"],
                   **mediation_failed}],
    }


def run_pack(document: dict, lines: list[str]) -> list[dict]:
    rp = Replay(Engine(parse_pack(document)))
    return rp.feed_all(lines) + rp.finish()


def test_the_default_pack_resolves_screening_overdue_by_any_visit():
    rule = {r.id: r for r in load_pack().rules}[OVERDUE]
    assert rule.resolved_by == ("visit",)
    assert load_pack().signals["visit"].type == "screening.visit_recorded"
    assert [r.id for r in load_pack().rules if r.resolved_by] == [OVERDUE, "referral-unanswered"]


def test_a_resolved_by_signal_resolves_the_rules_open_warning_at_the_events_time():
    failed = mediation_concluded("h1", T0, "failed")
    records = run_pack(pack_document(resolved_by=["reopened"]),
                       [failed, mediation_opened("h1", T0 + DAY)])
    assert of_type(records, "warning.resolved") == [
        {
            "type": "warning.resolved",
            "warning_id": wid("mediation-failed", "h1", failed),
            "household_id": "h1",
            "at": "2026-03-02T08:00:00Z",
        }
    ]


def test_without_resolved_by_the_same_event_resolves_nothing():
    records = run_pack(pack_document(), [mediation_concluded("h1", T0, "failed"),
                                         mediation_opened("h1", T0 + DAY)])
    assert of_type(records, "warning.resolved") == []


def test_an_event_older_than_the_warning_resolves_it_at_its_raise_instant():
    failed = mediation_concluded("h1", T0, "failed")
    records = run_pack(pack_document(resolved_by=["reopened"]),
                       [failed, mediation_opened("h1", T0 - DAY)])
    [resolved] = of_type(records, "warning.resolved")
    assert resolved["at"] == "2026-03-01T08:00:00Z"


def test_with_no_open_warning_a_resolving_event_changes_nothing_and_is_no_notice():
    records, rp = [], Replay(Engine(parse_pack(pack_document(resolved_by=["reopened"]))))
    records = rp.feed_all([mediation_opened("h1", T0)])
    assert records == [] and rp.counts.notices == 0


def test_a_resolved_by_signal_must_be_declared():
    with pytest.raises(RulePackError, match=r"rule mediation-failed: unknown signal\(s\)"):
        parse_pack(pack_document(resolved_by=["nowhere"]))


def test_a_visit_resolves_only_screening_overdue_and_other_rules_stay_open():
    registration = register("h1", T0, ["key_household"])
    failed = mediation_concluded("h1", T0 + 31 * DAY, "failed")
    records = run([registration, failed, visit("h1", T0 + 32 * DAY, [])])
    assert [r["warning_id"] for r in of_type(records, "warning.resolved")] == [
        wid(OVERDUE, "h1", registration)
    ]


def test_a_late_recorded_visit_resolves_at_the_raise_instant():
    registration = register("h1", T0, ["key_household"])
    lines = [registration, mediation_concluded("h1", T0 + 31 * DAY, "agreement"),
             visit("h1", T0 + 10 * DAY, [])]
    [resolved] = of_type(run(lines), "warning.resolved")
    assert resolved["at"] == "2026-03-31T08:00:00Z"  # raised at T0 + 30 d


def test_a_visit_from_another_community_still_resolves_it():
    registration = register("h1", T0, ["key_household"])
    records = run([registration, visit("h1", T0 + 31 * DAY + HOUR, [], org=OTHER_DISTRICT)])
    assert len(of_type(records, "warning.resolved")) == 1
