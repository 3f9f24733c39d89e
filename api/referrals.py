"""``/v1/referrals``: chairs send referrals (联动) to partner agencies; partners answer them.

A partner (``access.users``, role ``partner``) reaches only referrals addressed to its
agency, for households its org unit covers, and is the one reader a referral's note is
opened for; any other referral is 404 to it. Chairs and city admins read the referral
ledger in their scope, never a note. The use cases live in :mod:`app.after_alert`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from access.users import User
from api.auth import PARTNER_ROLES, REFERRAL_READ_ROLES, ROW_ROLES, require
from api.commands import COMMAND_RESPONSES, run_command
from api.limits import MAX_OFFSET
from app import after_alert
from app.services import Services
from events.catalog import Agency, Basis, ReferralOutcome
from events.instants import InstantError, parse_instant

RowUser = Annotated[User, Depends(require(*ROW_ROLES))]
ReaderUser = Annotated[User, Depends(require(*REFERRAL_READ_ROLES))]
PartnerUser = Annotated[User, Depends(require(*PARTNER_ROLES))]
ReferralStatus = Literal["sent", "accepted", "declined", "closed"]
FREE_TEXT = 20_000
MAX_PAGE = 1_000
_ID = Field(min_length=1, max_length=200)


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    household_id: str = _ID
    agency: Agency
    basis: Basis = Field(description="consent needs the household's standing consent for "
                                     "the agency; emergency and legal_duty do not.")
    warning_id: str | None = Field(default=None, min_length=1, max_length=200,
                                   description="The household's warning this follows.")
    note: str | None = Field(default=None, max_length=FREE_TEXT,
                             description="For the agency (sealed; opened for it alone).")


class Decline(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=FREE_TEXT, description="Sealed in the log.")


class Closing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: ReferralOutcome


def referral_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["referrals"])

    @router.post("/v1/referrals", responses=COMMAND_RESPONSES)
    def send(body: ReferralIn, user: RowUser, response: Response) -> dict[str, Any]:
        """Appends ``referral.sent`` with a new ``referral_id`` (answered). 409 for a
        consent-based referral without standing consent, or a ``warning_id`` that names
        no warning of the household; 404 for a household outside scope."""
        result = run_command(lambda: after_alert.send_referral(
            services, user, body.household_id, body.agency, body.basis, body.warning_id,
            body.note), response)
        services.users.audit(user, "referrals.send",
                             {"household_id": body.household_id, "agency": body.agency,
                              "referral_id": result.get("referral_id")}, 1)
        return result

    @router.get("/v1/referrals")
    def referrals(user: ReaderUser, status: ReferralStatus | None = None,
                  as_of: str | None = None,
                  limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
                  offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
        """The referral ledger (联动台账) as the caller may see it, paged after scoping.
        A partner: its agency's referrals for households in its org unit, each with its
        ``note`` in clear; chairs and city admins: their scope, no notes."""
        try:
            at = None if as_of is None else parse_instant(as_of)
        except InstantError as exc:
            raise HTTPException(422, f"as_of: {exc}") from exc
        result = after_alert.referrals(services, user, status, at, limit, offset)
        services.users.audit(user, "referrals.list",
                             {"status": status, "as_of": as_of, "limit": limit,
                              "offset": offset, "notes": user.agency is not None},
                             result["count"])
        return result

    def answer(user: User, referral_id: str, kind: str, detail: dict[str, Any],
               response: Response) -> dict[str, Any]:
        result = run_command(lambda: after_alert.answer_referral(
            services, user, referral_id, kind, detail), response)
        services.users.audit(user, f"referrals.{kind}", {"referral_id": referral_id}, 1)
        return result

    @router.post("/v1/referrals/{referral_id}/accept", responses=COMMAND_RESPONSES)
    def accept(referral_id: str, user: PartnerUser, response: Response) -> dict[str, Any]:
        """Partners: appends ``referral.accepted``; 409 unless the referral is sent and
        unanswered; 404 for another agency's or a referral outside the partner's scope."""
        return answer(user, referral_id, "accepted", {}, response)

    @router.post("/v1/referrals/{referral_id}/decline", responses=COMMAND_RESPONSES)
    def decline(referral_id: str, body: Decline, user: PartnerUser, response: Response
                ) -> dict[str, Any]:
        """Partners: appends ``referral.declined`` with the reason (as accept)."""
        return answer(user, referral_id, "declined", {"reason": body.reason}, response)

    @router.post("/v1/referrals/{referral_id}/close", responses=COMMAND_RESPONSES)
    def close(referral_id: str, body: Closing, user: PartnerUser, response: Response
              ) -> dict[str, Any]:
        """Partners: appends ``referral.closed`` with the outcome; 409 unless accepted
        and not closed yet."""
        return answer(user, referral_id, "closed", {"outcome": body.outcome}, response)

    return router
