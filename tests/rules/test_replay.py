"""Replay robustness: every input line is counted and processing goes on (DESIGN.md "Events":
"rejected, never dropped ... processing goes on, and counts reconcile")."""

from __future__ import annotations

import json

from tests.helpers import T0, envelope, line, raised, replay, visit


def test_a_line_whose_type_is_not_a_string_is_rejected_and_processing_goes_on():
    bad = envelope("screening.visit_recorded", "h1", T0, {"indicators": []})
    bad["type"] = ["screening.visit_recorded"]
    rp, records = replay([line(bad), visit("h2", T0, ["injury_observed"])])
    assert (rp.counts.received, rp.counts.rejected, rp.counts.processed) == (2, 1, 1)
    assert len(raised(records)) == 1


def test_an_occurred_at_outside_the_utc_calendar_does_not_stop_the_replay():
    # 0001-01-01T00:30+01:00 is 0000-12-31T23:30Z: it has an offset and parses, but no
    # lifecycle record can carry that instant. It must be rejected (or handled), not crash.
    early = visit("h1", "0001-01-01T00:30:00+01:00", ["injury_observed"])
    rp, records = replay([early, visit("h2", T0, ["injury_observed"])])
    assert rp.counts.received == 2
    assert rp.counts.received == rp.counts.processed + rp.counts.duplicates + rp.counts.rejected
    assert [r["household_id"] for r in raised(records)] == ["h2"]


def test_the_rejection_reason_is_kept_for_the_dead_letter_summary():
    obj = json.loads(visit("h1", T0, []))
    obj["org_unit"] = "230102000000"
    rp, _ = replay([line(obj)])
    assert any("org_unit" in reason for reason in rp.counts.reasons)
