"""``referral-declined`` (yellow) — DESIGN "Catalog v2": fires on ``referral.declined``,
always (a valid decline); t is the decline's occurred_at and the decline is the trigger."""

from __future__ import annotations

from tests.helpers import DAY, HOUR, T0, iso, of_type, raised, replay, run, wid
from tests.rules.after_alert import accept, decline, refer

RULE = "referral-declined"


def test_a_valid_decline_raises_a_yellow_warning():
    declined = decline("h1", "r-1", T0 + HOUR, org="230102001002")
    [warning] = raised(run([refer("h1", "r-1", T0), declined]), RULE)
    assert warning == {
        "type": "warning.raised", "warning_id": wid(RULE, "h1", declined), "rule_id": RULE,
        "household_id": "h1", "level": "yellow", "org_unit": "230102001002",
        "handling_level": "community", "handling_org_unit": "230102001001",
        "at": iso(T0 + HOUR)}


def test_the_records_are_the_decline_the_resolution_then_the_raise():
    records = run([refer("h1", "r-1", T0), decline("h1", "r-1", T0 + 4 * DAY)])
    assert [(r["type"], r.get("rule_id")) for r in records] == [
        ("referral.sent", None), ("warning.raised", "referral-unanswered"),
        ("referral.declined", None), ("warning.resolved", None), ("warning.raised", RULE)]


def test_an_invalid_decline_raises_nothing():
    rp, records = replay([decline("h1", "r-1", T0),
                          refer("h1", "r-2", T0), accept("h1", "r-2", T0 + HOUR),
                          decline("h1", "r-2", T0 + 2 * HOUR)])
    assert raised(records, RULE) == [] and rp.counts.notices == 2


def test_a_second_decline_while_the_first_warning_is_open_raises_nothing_new():
    records = run([refer("h1", "r-1", T0), refer("h1", "r-2", T0),
                   decline("h1", "r-1", T0 + HOUR), decline("h1", "r-2", T0 + 2 * HOUR)])
    assert len(raised(records, RULE)) == 1
    assert len(of_type(records, "referral.declined")) == 2
