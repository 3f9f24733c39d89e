"""Referrals (联动) and consent: one household's referrals by ``referral_id``, and the
agencies it consents to be referred to.

DESIGN "Referrals (联动) and consent". Each step checks the contract's conditions on the
household's state; an event that breaks one is processed but changes nothing and is
reported by a fixed notice (countable by reason, like the ownership notices). A valid
step changes the state and returns the lifecycle record it writes (consent writes none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules.state import ACCEPTED, CLOSED, DECLINED, SENT, HouseholdState, Referral

__all__ = [
    "ALREADY_ANSWERED",
    "ALREADY_CLOSED",
    "CONSENT_EVENTS",
    "NO_CONSENT",
    "NOT_ACCEPTED",
    "REFERRAL_EVENTS",
    "REFERRAL_ID_USED",
    "UNKNOWN_REFERRAL",
    "UNKNOWN_WARNING",
    "consent_step",
    "referent",
    "referral_step",
]

REFERRAL_EVENTS = frozenset(
    {"referral.sent", "referral.accepted", "referral.declined", "referral.closed"}
)
CONSENT_EVENTS = frozenset({"consent.recorded", "consent.withdrawn"})

REFERRAL_ID_USED = "referral.sent: referral_id already used for this household; nothing changed"
UNKNOWN_WARNING = (
    "referral.sent: warning_id names no warning of this household; nothing changed")
NO_CONSENT = (
    "referral.sent: basis consent without a standing consent for the agency; nothing changed")
#: ``{kind}`` is referral.accepted, referral.declined or referral.closed.
UNKNOWN_REFERRAL = "{kind}: referral is unknown for this household; nothing changed"
ALREADY_ANSWERED = "{kind}: referral is already answered; nothing changed"
NOT_ACCEPTED = "referral.closed: referral is not accepted; nothing changed"
ALREADY_CLOSED = "referral.closed: referral is already closed; nothing changed"

_ANSWERS = {"referral.accepted": ACCEPTED, "referral.declined": DECLINED}

Record = dict[str, Any]


def referral_step(
    state: HouseholdState, kind: str, event_id: str, household_id: str,
    data: Mapping[str, Any], at: str,
) -> tuple[str | None, Record | None]:
    """(notice, None) when the event changes nothing, else (None, its lifecycle record)."""
    referral_id: str = data["referral_id"]
    referrals = state._referrals
    referral = referrals.get(referral_id) if referrals else None
    if kind == "referral.sent":
        if referral is not None:
            return REFERRAL_ID_USED, None
        warning_id = data.get("warning_id")
        if warning_id is not None and not (
            warning_id in (state._open or ()) or warning_id in (state._closed or ())
        ):
            return UNKNOWN_WARNING, None
        agency: str = data["agency"]
        if data["basis"] == "consent" and agency not in (state._consent or ()):
            return NO_CONSENT, None
        state.referrals[referral_id] = Referral(event_id, agency, SENT)
        return None, {
            "type": kind,
            "referral_id": referral_id,
            "household_id": household_id,
            "agency": agency,
            "basis": data["basis"],
            "warning_id": warning_id,
            "at": at,
        }
    if referral is None:
        return UNKNOWN_REFERRAL.format(kind=kind), None
    answer = _ANSWERS.get(kind)
    if answer is not None:
        if referral.status != SENT:
            return ALREADY_ANSWERED.format(kind=kind), None
        referral.status = answer
        return None, {
            "type": kind,
            "referral_id": referral_id,
            "household_id": household_id,
            "agency": referral.agency,
            "at": at,
        }
    # referral.closed
    if referral.status == CLOSED:
        return ALREADY_CLOSED, None
    if referral.status != ACCEPTED:
        return NOT_ACCEPTED, None
    referral.status = CLOSED
    return None, {
        "type": kind,
        "referral_id": referral_id,
        "household_id": household_id,
        "agency": referral.agency,
        "outcome": data["outcome"],
        "at": at,
    }


def consent_step(state: HouseholdState, kind: str, data: Mapping[str, Any]) -> None:
    """A consent event changes the standing consent per agency and nothing else."""
    agencies = data["agencies"]
    if kind == "consent.recorded":
        state.consent.update(agencies)
    elif state._consent:
        state._consent.difference_update(agencies)
        if not state._consent:
            state._consent = None


def referent(state: HouseholdState, data: Mapping[str, Any]) -> str | None:
    """The event a referral answer refers to: its referral's ``referral.sent``."""
    referral_id = data.get("referral_id")
    referrals = state._referrals
    if referral_id is None or not referrals:
        return None
    referral = referrals.get(referral_id)
    return None if referral is None else referral.sent_event_id
