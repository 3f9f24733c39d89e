"""Builders for the catalog v2 events of the work after an alert (commands on warnings,
referrals, consent; one JSON line each), and a story that uses every v2 type."""

from __future__ import annotations

from typing import Any

from tests.helpers import (
    DAY,
    HOUR,
    ORG,
    ack,
    case_resolved,
    envelope,
    line,
    petition,
    resolve,
    visit,
    wid,
)
from tests.rules.households import OTHER_DISTRICT, SAME_STREET, register, transfer


def assess(
    hh: str, warning_id: str, at: int | str, risk: str = "high", note: str = "",
    by: str = "chair-1", org: str = ORG, eid: str | None = None,
) -> str:
    data = {"warning_id": warning_id, "by": by, "risk": risk, "note": note}
    return line(envelope("warning.assessed", hh, at, data, org, eid))


def reopen(
    hh: str, warning_id: str, at: int | str, reason: str = "it happened again",
    by: str = "chair-1", org: str = ORG, eid: str | None = None,
) -> str:
    data = {"warning_id": warning_id, "by": by, "reason": reason}
    return line(envelope("warning.reopened", hh, at, data, org, eid))


def refer(
    hh: str, referral_id: str, at: int | str, agency: str = "police",
    basis: str = "emergency", warning_id: str | None = None, note: str = "",
    org: str = ORG, eid: str | None = None,
) -> str:
    data: dict[str, Any] = {"referral_id": referral_id, "agency": agency, "basis": basis,
                            "note": note}
    if warning_id is not None:
        data["warning_id"] = warning_id
    return line(envelope("referral.sent", hh, at, data, org, eid))


def accept(
    hh: str, referral_id: str, at: int | str, by: str = "officer-1", org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"referral_id": referral_id, "by": by}
    return line(envelope("referral.accepted", hh, at, data, org, eid))


def decline(
    hh: str, referral_id: str, at: int | str, reason: str = "not ours", by: str = "officer-1",
    org: str = ORG, eid: str | None = None,
) -> str:
    data = {"referral_id": referral_id, "by": by, "reason": reason}
    return line(envelope("referral.declined", hh, at, data, org, eid))


def close_referral(
    hh: str, referral_id: str, at: int | str, outcome: str = "service_provided",
    by: str = "officer-1", org: str = ORG, eid: str | None = None,
) -> str:
    data = {"referral_id": referral_id, "by": by, "outcome": outcome}
    return line(envelope("referral.closed", hh, at, data, org, eid))


def consent(
    hh: str, at: int | str, agencies: list[str] | tuple[str, ...] = ("police",),
    by: str = "cadre-1", org: str = ORG, eid: str | None = None,
) -> str:
    data = {"agencies": list(agencies), "by": by}
    return line(envelope("consent.recorded", hh, at, data, org, eid))


def withdraw(
    hh: str, at: int | str, agencies: list[str] | tuple[str, ...] = ("police",),
    by: str = "cadre-1", org: str = ORG, eid: str | None = None,
) -> str:
    data = {"agencies": list(agencies), "by": by}
    return line(envelope("consent.withdrawn", hh, at, data, org, eid))


def after_alert_story(t0: int) -> list[str]:
    """Every v2 type, for the runtimes' equivalence tests.

    Household a: a red warning assessed (acknowledging it), assessed again with the same
    risk (a notice) and another, resolved, reopened before its first deadline (void: it
    escalates from the reopening), resolved, reopened after a transfer (at the new
    owner), acknowledged and resolved by ``case.resolved``; a reopening too late, one of
    an open warning and an assessment with the kept risk (notices). Household b: consent
    recorded, a consent-based referral accepted and closed, consent withdrawn, then a
    consent-based referral refused (a notice), two referrals left unanswered (the first
    raises ``referral-unanswered``, the second's deadline finds it open), the second
    declined (``referral-declined``) and the first accepted (resolving its warning), and
    answers to unknown or answered referrals, a close of a declined one and a reused
    referral_id (notices). Household c: a legal-duty referral naming its warning,
    declined in time (no deadline fires), and one naming another household's warning (a
    notice). Household d: registered, screening overdue, resolved by a visit, reopened,
    assessed; consent recorded and withdrawn. The last line is a duplicate.
    """
    hh_a, hh_b, hh_c, hh_d = "h-aa-a", "h-aa-b", "h-aa-c", "h-aa-d"
    injury = visit(hh_a, t0, ["injury_observed"])
    red = wid("violence-injury", hh_a, injury)
    failed = line(envelope("mediation.concluded", hh_c, t0 + HOUR,
                           {"mediation_id": "m-1", "outcome": "failed"}))
    yellow = wid("mediation-failed", hh_c, failed)
    registration = register(hh_d, t0, ["key_household"], org=SAME_STREET)
    overdue = wid("screening-overdue", hh_d, registration)
    lines = [
        injury,
        assess(hh_a, red, t0 + 2 * HOUR, "medium", note="she fears him"),
        assess(hh_a, red, t0 + 3 * HOUR, "medium"),  # the same risk: a notice
        assess(hh_a, red, t0 + 4 * HOUR, "high"),
        resolve(hh_a, red, t0 + 5 * HOUR),
        reopen(hh_a, red, t0 + 6 * HOUR),  # its deadline at t0 + 24 h is void: escalates at 30 h
        resolve(hh_a, red, t0 + 2 * DAY),
        transfer(hh_a, t0 + 3 * DAY, OTHER_DISTRICT),
        reopen(hh_a, red, t0 + 4 * DAY, org=OTHER_DISTRICT),  # escalates at t0 + 5 d
        reopen(hh_a, red, t0 + 4 * DAY + HOUR, org=OTHER_DISTRICT),  # open: a notice
        assess(hh_a, red, t0 + 6 * DAY, "high", org=OTHER_DISTRICT),  # kept risk: a notice
        ack(hh_a, red, t0 + 6 * DAY + HOUR, org=OTHER_DISTRICT),
        case_resolved(hh_a, t0 + 7 * DAY, org=OTHER_DISTRICT),
        reopen(hh_a, red, t0 + 40 * DAY, org=OTHER_DISTRICT),  # too late: a notice
        consent(hh_b, t0, ["police", "shelter"]),
        refer(hh_b, "r-1", t0 + HOUR, "police", "consent", note="call before visiting"),
        accept(hh_b, "r-1", t0 + 5 * HOUR),
        accept(hh_b, "r-1", t0 + 6 * HOUR),  # already answered: a notice
        close_referral(hh_b, "r-1", t0 + 10 * DAY, "service_provided"),
        withdraw(hh_b, t0 + 11 * DAY, ["police"]),
        refer(hh_b, "r-2", t0 + 12 * DAY, "police", "consent"),  # no consent: a notice
        refer(hh_b, "r-3", t0 + 12 * DAY, "shelter", "consent"),
        refer(hh_b, "r-4", t0 + 13 * DAY, "civil_affairs", "emergency"),
        petition(hh_b, t0 + 17 * DAY),  # both deadlines fire before it (r-4's raises
        decline(hh_b, "r-4", t0 + 18 * DAY, reason="outside our remit"),  # nothing)
        close_referral(hh_b, "r-4", t0 + 19 * DAY, "no_service"),  # declined: a notice
        accept(hh_b, "r-9", t0 + 19 * DAY),  # unknown: a notice
        refer(hh_b, "r-1", t0 + 20 * DAY, "court", "legal_duty"),  # id used: a notice
        accept(hh_b, "r-3", t0 + 20 * DAY),  # resolves r-3's warning
        failed,
        refer(hh_c, "r-1", t0 + 2 * HOUR, "legal_aid", "legal_duty", warning_id=yellow),
        decline(hh_c, "r-1", t0 + 3 * HOUR, reason="no capacity"),
        refer(hh_c, "r-2", t0 + 4 * HOUR, "court", "legal_duty", warning_id=red),  # notice
        registration,
        visit(hh_d, t0 + 31 * DAY, [], org=SAME_STREET),
        reopen(hh_d, overdue, t0 + 32 * DAY, org=SAME_STREET),
        assess(hh_d, overdue, t0 + 33 * DAY, "low", org=SAME_STREET),
        consent(hh_d, t0 + 34 * DAY, ["health"], org=SAME_STREET),
        withdraw(hh_d, t0 + 35 * DAY, ["health", "court"], org=SAME_STREET),
    ]
    return [*lines, lines[1]]  # the last one: a duplicate
