"""``/v1/alerts/{id}/assess|reopen|history`` and ``/v1/households/{id}/consent``: a chair's
work after an alert (研判, reopening, consent), for chairs and city admins.

The use cases and their refusals live in :mod:`app.after_alert`; this module is the
HTTP face (bodies, roles, audit). Every command becomes one event through the same
ingest guard and path as an acknowledgement.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from access.users import User
from api.auth import ROW_ROLES, require
from api.commands import COMMAND_RESPONSES, answered, run_command
from app import after_alert
from app.services import Services
from events.catalog import Agency, Risk

RowUser = Annotated[User, Depends(require(*ROW_ROLES))]
FREE_TEXT = 20_000


class Assessment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risk: Risk = Field(description="The judged risk: low, medium or high.")
    note: str | None = Field(default=None, max_length=FREE_TEXT,
                             description="Personal free text (sealed in the log).")


class Reopening(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=FREE_TEXT,
                        description="Why the warning is open again (sealed in the log).")


class ConsentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["record", "withdraw"]
    agencies: list[Agency] = Field(min_length=1, max_length=20,
                                   description="The agencies the consent is given for "
                                               "(record) or no longer given for (withdraw).")


def after_alert_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["after the alert"])

    @router.post("/v1/alerts/{warning_id}/assess", responses=COMMAND_RESPONSES)
    def assess(warning_id: str, body: Assessment, user: RowUser, response: Response
               ) -> dict[str, Any]:
        """研判: appends ``warning.assessed`` (an unacknowledged warning is acknowledged
        first). 409 for a resolved warning, a surge, or the risk it already has
        ("assessment unchanged"); 404 outside scope."""
        result = run_command(lambda: after_alert.assess(
            services, user, warning_id, body.risk, body.note), response)
        services.users.audit(user, "alerts.assess", {"warning_id": warning_id}, 1)
        return result

    @router.post("/v1/alerts/{warning_id}/reopen", responses=COMMAND_RESPONSES)
    def reopen(warning_id: str, body: Reopening, user: RowUser, response: Response
               ) -> dict[str, Any]:
        """Appends ``warning.reopened``: open again, unacknowledged, at community level.
        409 unless resolved within the last 30 days with no other open warning of the
        same rule for the household; 404 outside scope."""
        result = run_command(lambda: after_alert.reopen(
            services, user, warning_id, body.reason), response)
        services.users.audit(user, "alerts.reopen", {"warning_id": warning_id}, 1)
        return result

    @router.get("/v1/alerts/{warning_id}/history")
    def history(warning_id: str, user: RowUser) -> dict[str, Any]:
        """The warning's row and its timeline (its lifecycle records and the referral
        records naming it, in log order); 404 outside scope."""
        with answered():
            result = after_alert.history(services, user, warning_id)
        services.users.audit(user, "alerts.history", {"warning_id": warning_id},
                             len(result["history"]))
        return result

    @router.get("/v1/households/{household_id}/consent")
    def consent(household_id: str, user: RowUser) -> dict[str, Any]:
        """The agencies the household has a standing consent for; 404 outside scope."""
        with answered():
            result = after_alert.consent(services, user, household_id)
        services.users.audit(user, "consent.read", {"household_id": household_id}, 1)
        return result

    @router.post("/v1/households/{household_id}/consent", responses=COMMAND_RESPONSES)
    def change_consent(household_id: str, body: ConsentChange, user: RowUser,
                       response: Response) -> dict[str, Any]:
        """Appends ``consent.recorded`` or ``consent.withdrawn``; answers the standing
        consent after it (embedded). 404 outside scope."""
        result = run_command(lambda: after_alert.change_consent(
            services, user, household_id, body.action, list(body.agencies)), response)
        services.users.audit(user, f"consent.{body.action}",
                             {"household_id": household_id, "agencies": sorted(body.agencies)},
                             1)
        return result

    return router
