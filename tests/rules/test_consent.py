"""Consent — DESIGN "Catalog v2", "Referrals (联动) and consent".

The household has a standing consent for an agency when a processed ``consent.recorded``
lists it and no later-processed ``consent.withdrawn`` lists it. Consent events change the
standing consent per agency and nothing else.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events.catalog import Agency
from rules.referrals import NO_CONSENT
from tests.helpers import HOUR, T0, replay, run
from tests.rules.after_alert import consent, refer, withdraw

AGENCIES: list[str] = list(Agency.__args__)  # type: ignore[attr-defined]


def sent(lines: list[str], agency: str) -> bool:
    """Whether a consent-based referral to ``agency`` after ``lines`` is valid."""
    records = run([*lines, refer("h1", "r-x", T0 + 100 * HOUR, agency, "consent")])
    return any(r["type"] == "referral.sent" for r in records)


def test_consent_events_write_no_record_and_no_notice():
    rp, records = replay([consent("h1", T0, ["police"]), withdraw("h1", T0 + HOUR, ["court"]),
                          withdraw("h1", T0 + 2 * HOUR, ["police"]),
                          consent("h1", T0 + 3 * HOUR, ["police"])])
    assert records == [] and rp.counts.notices == 0 and rp.counts.processed == 4


def test_a_withdrawal_ends_the_standing_consent_of_the_agencies_it_lists_only():
    lines = [consent("h1", T0, ["police", "shelter"]), withdraw("h1", T0 + HOUR, ["police"])]
    assert not sent(lines, "police")
    assert sent(lines, "shelter")


def test_consent_recorded_again_after_a_withdrawal_stands():
    lines = [consent("h1", T0), withdraw("h1", T0 + HOUR), consent("h1", T0 + 2 * HOUR)]
    assert sent(lines, "police")


def test_processing_order_decides_not_occurred_at():
    # "later-processed": a withdrawal recorded late still ends a consent given after it
    assert not sent([consent("h1", T0 + HOUR), withdraw("h1", T0)], "police")


def test_consent_belongs_to_its_household():
    rp, _ = replay([consent("h2", T0), refer("h1", "r-1", T0 + HOUR, "police", "consent")])
    assert rp.counts.notice_reasons == {NO_CONSENT: 1}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sets(st.sampled_from(AGENCIES), min_size=1)),
                max_size=6),
       st.sampled_from(AGENCIES))
def test_the_standing_consent_is_the_fold_of_recordings_and_withdrawals(steps, agency):
    lines: list[str] = []
    standing: set[str] = set()
    for i, (recorded, agencies) in enumerate(steps):
        build = consent if recorded else withdraw
        lines.append(build("h1", T0 + i * HOUR, sorted(agencies)))
        standing = standing | agencies if recorded else standing - agencies
    assert sent(lines, agency) == (agency in standing)
