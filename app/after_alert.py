"""The work after an alert, as the faces ask for it: assess, reopen, refer, answer, consent.

DESIGN "Catalog v2" says which of these commands change nothing (a notice, not an
error, for the engine). A person clicking a button deserves better than a silent
no-op, so each use case checks the contract against the warehouse *before* it
appends its event and refuses with the reason (:class:`CommandRefused`, answered
409). The check and the engine may still disagree when another command lands in
between; on the embedded runtime (processed inline) the same check runs again on
the state after the event, and an event that changed nothing is refused with the
reason too. On Kafka the worker decides later: the answer is "published".

Scope: a household is read or commanded only through ``Services.may_read_household``
(a warning, through ``Services.warning_in_reach``), so that one place decides.
A partner reaches only referrals addressed to its agency, for households its org
unit covers; it is the one reader a referral's sealed note is opened for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

from access.users import User
from app.services import Row, Services
from events.errors import JiaheError
from events.instants import MICROS_PER_DAY, now_micros, parse_instant
from events.orgunits import is_within
from privacy.pseudonym import ERASED_PREFIX
from projections import ledgers

#: DESIGN: a resolved warning may be reopened within 30 days of its resolution.
REOPEN_WINDOW_MICROS = 30 * MICROS_PER_DAY
SURGE = ("a district surge warning takes no commands: it resolves itself at the first "
         "day close without a surge")
ERASED = "the household was erased: its warnings take no commands"


class NotFound(JiaheError, LookupError):
    """No such object, or outside the caller's reach (the face answers 404)."""


class CommandRefused(JiaheError):
    """The contract refuses the command (the face answers 409 with the reason)."""


@dataclass(frozen=True, slots=True)
class Done:
    """A command appended: its event, whether it was only published (Kafka), the result."""

    event_id: str
    published: bool
    body: dict[str, Any] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        if self.published:
            return {"event_id": self.event_id, "status": "published", **self.body}
        return {"event_id": self.event_id, **self.body}


# -- the contract's conditions, as reasons (None: the command would change something) ---


def assess_refusal(row: Row, risk: str) -> str | None:
    if row["household_id"] is None:
        return SURGE
    if row["household_id"].startswith(ERASED_PREFIX):
        return ERASED
    if row["status"] == "resolved":
        return "warning is resolved: reopen it before assessing it"
    if row.get("risk") == risk:
        return f"assessment unchanged: the warning's risk is already {risk}"
    return None


def reopen_refusal(services: Services, row: Row, now: int) -> str | None:
    if row["household_id"] is None:
        return SURGE
    if row["household_id"].startswith(ERASED_PREFIX):
        return ERASED
    if row["status"] != "resolved":
        return f"warning is {row['status']}: only a resolved warning can be reopened"
    resolved = parse_instant(row["resolved_at"])
    if now > resolved + REOPEN_WINDOW_MICROS:
        return (f"too late to reopen: the warning was resolved at {row['resolved_at']}, "
                "more than 30 days ago")
    if now < resolved:
        return f"the warning's resolution ({row['resolved_at']}) lies in the future"
    if services.read(ledgers.open_warning_of_rule, row["household_id"], row["rule_id"]):
        return (f"another warning of rule {row['rule_id']} is open for this household: "
                "act on that one")
    return None


def answer_refusal(row: Row, kind: str) -> str | None:
    status = row["status"]
    if kind in ("accepted", "declined") and status != "sent":
        return f"referral already {status}: only a sent referral can be {kind}"
    if kind == "closed" and status != "accepted":
        return f"referral is {status}: only an accepted referral can be closed"
    return None


def _refuse(reason: str | None) -> None:
    if reason is not None:
        raise CommandRefused(reason)


def _changed_nothing(reason: str | None, fallback: str) -> NoReturn:
    """After an inline command that changed nothing (a race lost): refuse with the reason
    the state now gives, else ``fallback``."""
    raise CommandRefused(reason or fallback)


# -- warnings -------------------------------------------------------------------------


def _warning(services: Services, user: User, warning_id: str, action: str) -> Row:
    row = services.warning_in_reach(user, warning_id, action)
    if row is None:
        raise NotFound("no such warning")
    return row


def assess(services: Services, user: User, warning_id: str, risk: str, note: str | None
           ) -> Done:
    """研判: append ``warning.assessed`` (acknowledging an unacknowledged warning)."""
    row = _warning(services, user, warning_id, "alerts.assess")
    _refuse(assess_refusal(row, risk))
    data: Row = {"warning_id": warning_id, "by": user.name, "risk": risk}
    if note:
        data["note"] = note
    event_id = services.command(user, "warning.assessed", row["household_id"], data)
    if services.kafka is not None:
        return Done(event_id, True, {"warning": row})
    after = services.warning_in_reach(user, warning_id, "alerts.assess") or row
    if after.get("risk") != risk:
        _changed_nothing(assess_refusal(after, risk), "the assessment changed nothing")
    return Done(event_id, False, {"warning": after})


def reopen(services: Services, user: User, warning_id: str, reason: str) -> Done:
    """Append ``warning.reopened`` for a warning resolved within the last 30 days."""
    row = _warning(services, user, warning_id, "alerts.reopen")
    _refuse(reopen_refusal(services, row, now_micros()))
    data: Row = {"warning_id": warning_id, "by": user.name, "reason": reason}
    event_id = services.command(user, "warning.reopened", row["household_id"], data)
    if services.kafka is not None:
        return Done(event_id, True, {"warning": row})
    after = services.warning_in_reach(user, warning_id, "alerts.reopen") or row
    if after["status"] != "open":
        _changed_nothing(reopen_refusal(services, after, now_micros()),
                   "the reopening changed nothing")
    return Done(event_id, False, {"warning": after})


def history(services: Services, user: User, warning_id: str) -> dict[str, Any]:
    """The warning's row and its timeline: lifecycle records and the referrals naming it."""
    row = _warning(services, user, warning_id, "alerts.history")
    records = services.read(ledgers.warning_history, warning_id)
    return {"warning": row, "history": records}


# -- referrals --------------------------------------------------------------------------


def _household(services: Services, user: User, household_id: str, action: str) -> None:
    if not services.may_read_household(user, household_id, action):
        raise NotFound("no such household")


def send_referral(services: Services, user: User, household_id: str, agency: str,
                  basis: str, warning_id: str | None, note: str | None) -> Done:
    """联动: append ``referral.sent`` with a new referral_id (a uuid4)."""
    _household(services, user, household_id, "referrals.send")
    refusal = _send_refusal(services, household_id, agency, basis, warning_id)
    _refuse(refusal)
    referral_id = str(uuid.uuid4())
    data: Row = {"referral_id": referral_id, "agency": agency, "basis": basis}
    if warning_id is not None:
        data["warning_id"] = warning_id
    if note:
        data["note"] = note
    event_id = services.command(user, "referral.sent", household_id, data)
    if services.kafka is not None:
        return Done(event_id, True, {"referral_id": referral_id})
    after = services.read(ledgers.referral_row, referral_id)
    if after is None:
        _changed_nothing(_send_refusal(services, household_id, agency, basis, warning_id),
                   "the referral changed nothing")
    return Done(event_id, False, {"referral_id": referral_id, "referral": after})


def _send_refusal(services: Services, household_id: str, agency: str, basis: str,
                  warning_id: str | None) -> str | None:
    if warning_id is not None:
        warning = services.read(ledgers.warning_row, warning_id)
        if warning is None or warning["household_id"] != household_id:
            return "warning_id: no such warning of this household"
    if basis == "consent" and agency not in services.read(ledgers.standing_consent,
                                                          household_id):
        return (f"no standing consent of the household for {agency}: record its consent "
                "first, or send on basis emergency or legal_duty")
    return None


def partner_reaches(user: User, row: Row) -> bool:
    """A partner's reach: its agency's referrals, for households its org unit covers."""
    return row["agency"] == user.agency and is_within(row["org_unit"], user.org_unit)


def answer_referral(services: Services, user: User, referral_id: str, kind: str,
                    detail: Row) -> Done:
    """A partner accepts, declines (``reason``) or closes (``outcome``) a referral."""
    row = services.read(ledgers.referral_row, referral_id)
    if row is None or not partner_reaches(user, row):
        raise NotFound("no such referral")
    _refuse(answer_refusal(row, kind))
    data: Row = {"referral_id": referral_id, "by": user.name, **detail}
    event_id = services.command(user, f"referral.{kind}", row["household_id"], data)
    if services.kafka is not None:
        return Done(event_id, True, {"referral_id": referral_id})
    after = services.read(ledgers.referral_row, referral_id) or row
    if after["status"] != kind:
        _changed_nothing(answer_refusal(after, kind), f"the referral was not {kind}")
    return Done(event_id, False, {"referral_id": referral_id, "referral": after})


def referrals(services: Services, user: User, status: str | None, as_of: int | None,
              limit: int | None, offset: int) -> dict[str, Any]:
    """The referral ledger as the caller may see it, paged after scoping."""
    rows: list[Row] = services.read(ledgers.referral_ledger, as_of)
    if user.agency is not None:
        rows = [r for r in rows if partner_reaches(user, r)]
    else:
        rows = services.visible(user, rows, "referrals.list")
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    total = len(rows)
    page = rows[offset:] if limit is None else rows[offset:offset + limit]
    if user.agency is not None:
        page = _with_notes(services, page)
    after = offset + len(page)
    return {"count": len(page), "total": total, "offset": offset, "limit": limit,
            "next_offset": after if after < total else None, "rows": page}


def _with_notes(services: Services, page: list[Row]) -> list[Row]:
    """Each row with its ``referral.sent`` note in clear (None when it had none)."""
    notes: dict[tuple[str, str], str | None] = {}
    for event in services.events_of([r["household_id"] for r in page], "referral.sent"):
        data = event.get("data") or {}
        key = (str(event.get("household_id")), str(data.get("referral_id")))
        notes.setdefault(key, data.get("note"))  # the first sent, as the ledger shows it
    return [r | {"note": notes.get((r["household_id"], r["referral_id"]))} for r in page]


# -- consent ----------------------------------------------------------------------------


def consent(services: Services, user: User, household_id: str) -> dict[str, Any]:
    _household(services, user, household_id, "consent.read")
    standing = services.read(ledgers.standing_consent, household_id)
    return {"household_id": household_id, "agencies": sorted(standing)}


def change_consent(services: Services, user: User, household_id: str, action: str,
                   agencies: list[str]) -> Done:
    """Append ``consent.recorded`` / ``consent.withdrawn`` (always a valid change)."""
    _household(services, user, household_id, f"consent.{action}")
    kind = {"record": "consent.recorded", "withdraw": "consent.withdrawn"}[action]
    data: Row = {"agencies": sorted(set(agencies)), "by": user.name}
    event_id = services.command(user, kind, household_id, data)
    if services.kafka is not None:
        return Done(event_id, True, {"household_id": household_id})
    standing = services.read(ledgers.standing_consent, household_id)
    return Done(event_id, False, {"household_id": household_id, "agencies": sorted(standing)})
