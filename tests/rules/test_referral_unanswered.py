"""``referral-unanswered`` (orange, deadline) and its auto-resolution — DESIGN "Catalog v2".

A valid ``referral.sent`` at s schedules a deadline at s + 72 h; it triggers (t = s + 72 h,
the referral is the trigger) unless a valid ``referral.accepted`` or ``referral.declined``
of that referral has been processed by then. A valid acceptance or decline resolves the
open ``referral-unanswered`` warning whose trigger was that referral's ``referral.sent``;
the lifecycle ``warning.resolved`` is at the later of the event's occurred_at and the
warning's raise instant.
"""

from __future__ import annotations

import pytest

from rules.pack import load_pack
from tests.helpers import DAY, HOUR, T0, US, iso, of_type, petition, raised, run, wid
from tests.rules.after_alert import accept, close_referral, consent, decline, refer

RULE = "referral-unanswered"
SENT = refer("h1", "r-1", T0, "police", "emergency", org="230102001002")
W = wid(RULE, "h1", SENT)


def test_the_pack_states_the_rule():
    rule = {r.id: r for r in load_pack().rules}[RULE]
    assert rule.level == "orange" and rule.deadline is not None
    assert rule.deadline.delay_us == 72 * HOUR
    assert load_pack().signals[rule.deadline.after].type == "referral.sent"
    assert {load_pack().signals[s].type for s in rule.resolved_by} == {
        "referral.accepted", "referral.declined"}


def test_unanswered_it_triggers_at_s_plus_72_hours_with_the_referral_as_trigger():
    [warning] = raised(run([SENT], as_of=T0 + 72 * HOUR), RULE)
    assert warning == {
        "type": "warning.raised", "warning_id": W, "rule_id": RULE, "household_id": "h1",
        "level": "orange", "org_unit": "230102001002", "handling_level": "community",
        "handling_org_unit": "230102001002", "at": iso(T0 + 72 * HOUR)}


def test_not_before_its_deadline():
    assert raised(run([SENT], as_of=T0 + 72 * HOUR - US), RULE) == []


@pytest.mark.parametrize("answer", [accept, decline], ids=["accepted", "declined"])
def test_an_answer_processed_by_then_cancels_it(answer):
    assert raised(run([SENT, answer("h1", "r-1", T0 + 72 * HOUR)], as_of=T0 + 10 * DAY),
                  RULE) == []


def test_an_answer_recorded_with_an_early_time_but_processed_after_the_deadline_fired_resolves():
    lines = [SENT, petition("h1", T0 + 4 * DAY), accept("h1", "r-1", T0 + HOUR)]
    records = run(lines)
    assert len(raised(records, RULE)) == 1
    assert of_type(records, "warning.resolved") == [
        {"type": "warning.resolved", "warning_id": W, "household_id": "h1",
         "at": iso(T0 + 72 * HOUR)}]  # the later of the answer's time and the raise


@pytest.mark.parametrize("answer", [accept, decline], ids=["accepted", "declined"])
def test_an_answer_after_the_warning_resolves_it_at_the_answers_time(answer):
    records = run([SENT, answer("h1", "r-1", T0 + 5 * DAY)])
    [resolved] = of_type(records, "warning.resolved")
    assert (resolved["warning_id"], resolved["at"]) == (W, iso(T0 + 5 * DAY))


def test_an_answer_resolves_only_the_warning_of_its_own_referral():
    second = refer("h1", "r-2", T0 + HOUR, "court")
    records = run([SENT, second, accept("h1", "r-2", T0 + 4 * DAY)], as_of=T0 + 5 * DAY)
    # r-2's deadline found r-1's warning open (one open warning per rule): nothing raised
    assert [r["warning_id"] for r in raised(records, RULE)] == [W]
    assert of_type(records, "warning.resolved") == []


def test_once_the_first_is_resolved_the_next_unanswered_referral_raises_its_own():
    second = refer("h1", "r-2", T0 + 2 * DAY, "court")
    records = run([SENT, accept("h1", "r-1", T0 + 4 * DAY), second], as_of=T0 + 6 * DAY)
    assert [r["warning_id"] for r in raised(records, RULE)] == [W, wid(RULE, "h1", second)]


def test_an_invalid_referral_schedules_nothing():
    refused = refer("h1", "r-1", T0, "police", "consent")
    assert raised(run([refused], as_of=T0 + 10 * DAY), RULE) == []


def test_an_invalid_answer_neither_cancels_nor_resolves():
    lines = [consent("h1", T0 - HOUR), SENT, accept("h1", "r-9", T0 + HOUR)]
    assert len(raised(run(lines, as_of=T0 + 4 * DAY), RULE)) == 1
    lines = [SENT, petition("h1", T0 + 4 * DAY), accept("h1", "r-9", T0 + 5 * DAY)]
    assert of_type(run(lines), "warning.resolved") == []


def test_a_close_resolves_nothing():
    lines = [SENT, accept("h1", "r-1", T0 + HOUR), close_referral("h1", "r-1", T0 + 2 * HOUR)]
    assert raised(run(lines, as_of=T0 + 10 * DAY), RULE) == []


def test_the_warning_escalates_like_any_orange_warning():
    records = run([SENT], as_of=T0 + 72 * HOUR + 72 * HOUR)
    [escalated] = of_type(records, "warning.escalated")
    assert (escalated["to_level"], escalated["at"]) == ("street", iso(T0 + 144 * HOUR))
