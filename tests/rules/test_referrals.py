"""Referrals (联动) — DESIGN "Catalog v2", "Referrals (联动) and consent".

Per household, keyed by ``referral_id``:
* ``referral.sent``: the ``referral_id`` must be new for the household; a given
  ``warning_id`` must name a warning of the household; with ``basis`` consent, the
  household must have a standing consent for that agency. Emergency and legal duty need
  no consent.
* ``referral.accepted`` / ``referral.declined``: the referral must be sent and not yet
  answered. ``referral.closed``: the referral must be accepted and not closed.
An event that breaks a condition is processed, changes nothing, and is reported.
"""

from __future__ import annotations

import pytest

from rules.referrals import (
    ALREADY_ANSWERED,
    ALREADY_CLOSED,
    NO_CONSENT,
    NOT_ACCEPTED,
    REFERRAL_ID_USED,
    UNKNOWN_REFERRAL,
    UNKNOWN_WARNING,
)
from tests.helpers import HOUR, T0, iso, replay, resolve, run, visit, wid
from tests.rules.after_alert import accept, close_referral, consent, decline, refer

INJURY = visit("h1", T0, ["injury_observed"])
W = wid("violence-injury", "h1", INJURY)
REFERRAL_TYPES = ("referral.sent", "referral.accepted", "referral.declined", "referral.closed")


def referral_records(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] in REFERRAL_TYPES]


def changes_nothing(lines: list[str], notice: str) -> None:
    """The last line is processed, is reported, and adds no record at all."""
    before = run(lines[:-1])
    rp, records = replay(lines)
    assert records == before
    assert rp.counts.processed == len(lines)
    assert rp.counts.notice_reasons == {notice: 1}


def test_a_sent_referral_is_recorded_with_its_agency_basis_and_warning():
    records = run([INJURY, refer("h1", "r-1", T0 + HOUR, "police", "emergency", warning_id=W)])
    assert referral_records(records) == [
        {"type": "referral.sent", "referral_id": "r-1", "household_id": "h1",
         "agency": "police", "basis": "emergency", "warning_id": W, "at": iso(T0 + HOUR)}
    ]


def test_without_a_warning_the_record_says_null():
    [sent] = referral_records(run([refer("h1", "r-1", T0, "shelter", "legal_duty")]))
    assert sent["warning_id"] is None


def test_a_closed_warning_may_be_named():
    lines = [INJURY, resolve("h1", W, T0 + HOUR), refer("h1", "r-1", T0 + 2 * HOUR,
                                                          warning_id=W)]
    assert len(referral_records(run(lines))) == 1


def test_accepted_then_closed_and_the_records_name_the_agency():
    records = run([refer("h1", "r-1", T0, "court", "legal_duty"),
                   accept("h1", "r-1", T0 + HOUR),
                   close_referral("h1", "r-1", T0 + 2 * HOUR, "no_service")])
    assert referral_records(records)[1:] == [
        {"type": "referral.accepted", "referral_id": "r-1", "household_id": "h1",
         "agency": "court", "at": iso(T0 + HOUR)},
        {"type": "referral.closed", "referral_id": "r-1", "household_id": "h1",
         "agency": "court", "outcome": "no_service", "at": iso(T0 + 2 * HOUR)},
    ]


def test_a_declined_referral_is_recorded():
    records = run([refer("h1", "r-1", T0, "health"), decline("h1", "r-1", T0 + HOUR)])
    assert referral_records(records)[1] == {
        "type": "referral.declined", "referral_id": "r-1", "household_id": "h1",
        "agency": "health", "at": iso(T0 + HOUR)}


@pytest.mark.parametrize("basis", ["emergency", "legal_duty"])
def test_emergency_and_legal_duty_need_no_consent(basis):
    assert len(referral_records(run([refer("h1", "r-1", T0, "police", basis)]))) == 1


def test_basis_consent_needs_a_standing_consent_for_that_agency():
    changes_nothing([consent("h1", T0, ["shelter"]),
                     refer("h1", "r-1", T0 + HOUR, "police", "consent")], NO_CONSENT)
    lines = [consent("h1", T0, ["shelter", "police"]),
             refer("h1", "r-1", T0 + HOUR, "police", "consent")]
    assert len(referral_records(run(lines))) == 1


def test_the_referral_id_must_be_new_for_the_household():
    changes_nothing([refer("h1", "r-1", T0), refer("h1", "r-1", T0 + HOUR, "court")],
                    REFERRAL_ID_USED)


def test_the_same_referral_id_in_another_household_is_another_referral():
    records = run([refer("h1", "r-1", T0), refer("h2", "r-1", T0 + HOUR)])
    assert [r["household_id"] for r in referral_records(records)] == ["h1", "h2"]


def test_a_refused_referral_id_stays_free():
    lines = [refer("h1", "r-1", T0, "police", "consent"),
             refer("h1", "r-1", T0 + HOUR, "police", "emergency")]
    rp, records = replay(lines)
    assert [r["basis"] for r in referral_records(records)] == ["emergency"]
    assert rp.counts.notice_reasons == {NO_CONSENT: 1}


@pytest.mark.parametrize("warning_id", ["w-0123456789abcdef", "no-such"], ids=["w", "other"])
def test_a_named_warning_must_be_a_warning_of_the_household(warning_id):
    changes_nothing([INJURY, refer("h1", "r-1", T0 + HOUR, warning_id=warning_id)],
                    UNKNOWN_WARNING)


def test_another_households_warning_is_not_one_of_this_household():
    changes_nothing([INJURY, refer("h2", "r-1", T0 + HOUR, warning_id=W)], UNKNOWN_WARNING)


@pytest.mark.parametrize("answer", [accept, decline], ids=["accepted", "declined"])
def test_an_answer_needs_a_sent_referral(answer):
    kind = "referral.accepted" if answer is accept else "referral.declined"
    changes_nothing([refer("h1", "r-1", T0), answer("h1", "r-2", T0 + HOUR)],
                    UNKNOWN_REFERRAL.format(kind=kind))


@pytest.mark.parametrize("first", [accept, decline], ids=["accepted", "declined"])
@pytest.mark.parametrize("second", [accept, decline], ids=["accepted", "declined"])
def test_a_referral_is_answered_once(first, second):
    kind = "referral.accepted" if second is accept else "referral.declined"
    changes_nothing([refer("h1", "r-1", T0), first("h1", "r-1", T0 + HOUR),
                     second("h1", "r-1", T0 + 2 * HOUR)], ALREADY_ANSWERED.format(kind=kind))


def test_an_answer_from_another_household_is_unknown_there():
    changes_nothing([refer("h1", "r-1", T0), accept("h2", "r-1", T0 + HOUR)],
                    UNKNOWN_REFERRAL.format(kind="referral.accepted"))


def test_only_an_accepted_referral_is_closed():
    changes_nothing([refer("h1", "r-1", T0), close_referral("h1", "r-1", T0 + HOUR)],
                    NOT_ACCEPTED)
    changes_nothing([refer("h1", "r-1", T0), decline("h1", "r-1", T0 + HOUR),
                     close_referral("h1", "r-1", T0 + 2 * HOUR)], NOT_ACCEPTED)
    changes_nothing([close_referral("h1", "r-1", T0)],
                    UNKNOWN_REFERRAL.format(kind="referral.closed"))


def test_a_referral_is_closed_once():
    changes_nothing([refer("h1", "r-1", T0), accept("h1", "r-1", T0 + HOUR),
                     close_referral("h1", "r-1", T0 + 2 * HOUR),
                     close_referral("h1", "r-1", T0 + 3 * HOUR, "withdrawn")], ALREADY_CLOSED)


def test_the_notices_of_referrals_name_no_referral_so_they_count_by_kind():
    rp, _ = replay([accept("h1", f"r-{i}", T0 + i * HOUR) for i in range(3)])
    assert rp.counts.notice_reasons == {UNKNOWN_REFERRAL.format(kind="referral.accepted"): 3}
