"""``/v1/break-glass``: a chair opens one household outside her scope, for 4 hours.

The grant model lives in :mod:`access.break_glass` (storage, expiry, the audit row
written with the grant), the notice in :mod:`alerts.notices`; the scope check that a
grant widens is ``Services.may_read_household`` (and ``Services.visible`` for list
reads). This module is the HTTP face:

* ``POST /v1/break-glass`` ``{"household_id", "reason"}`` (chair, city_admin) →
  201 with the grant; 404 for a household never seen; 409 when the caller's scope
  already covers it (nothing to open: always so for a city admin of the city);
  422 for a blank or overlong reason. The chairs subscribed to the household's
  place are notified through their subscriptions.
* ``GET /v1/break-glass[?since=T]``: the grants the caller gave herself and those
  on households of her scope (what the owning district's chairs review).
* ``GET /v1/households/{household_id}/alerts``: the household's warning rows, in
  scope or under a live grant (each read under a grant audited with its reason).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from access.break_glass import GRANT_ROLES, MAX_REASON, GrantRefused, OutsideNeeded
from access.users import User
from alerts.notices import notify_break_glass
from api.auth import in_scope, require
from app.services import Services
from events.instants import InstantError, now_micros, parse_instant
from projections import ledgers

GrantUser = Annotated[User, Depends(require(*GRANT_ROLES))]


class BreakGlassIn(BaseModel):
    household_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="Why the household must be opened (kept in the audit "
                                    "trail and shown to the chairs of its place).")


def break_glass_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["break-glass"])

    @router.post("/v1/break-glass", status_code=201)
    def open_household(body: BreakGlassIn, user: GrantUser) -> dict[str, Any]:
        """Open one household outside the caller's scope for 4 hours, with a reason."""
        owner = services.owner_of(body.household_id)
        if owner is None:
            raise HTTPException(404, "no such household")
        now = now_micros()
        try:
            grant = services.grants.grant(user, body.household_id, owner, body.reason, now)
        except OutsideNeeded as exc:
            raise HTTPException(409, str(exc)) from exc
        except GrantRefused as exc:
            raise HTTPException(422, f"reason: {exc}") from exc
        shown = grant.public(now)
        notify_break_glass(services.subscriptions, services.users, shown)
        services.worker.wake()
        return shown

    @router.get("/v1/break-glass")
    def grants(user: GrantUser, since: str | None = None) -> dict[str, Any]:
        """Grants the caller holds or held, and grants on households of her scope."""
        try:
            since_us = parse_instant(since) if since is not None else None
        except InstantError as exc:
            raise HTTPException(422, f"since: {exc}") from exc
        now = now_micros()
        rows = [g.public(now) for g in services.grants.since(since_us)
                if g.user == user.name or in_scope(user, g.owner)]
        services.users.audit(user, "break_glass.list", {"since": since}, len(rows))
        return {"count": len(rows), "grants": rows}

    @router.get("/v1/households/{household_id}/alerts", tags=["alerts"])
    def household_alerts(household_id: str, user: GrantUser) -> dict[str, Any]:
        """The household's warnings (ledger rows, oldest raise first): in the caller's
        scope, or under her live break-glass grant; 404 otherwise."""
        if not services.may_read_household(user, household_id, "households.alerts"):
            raise HTTPException(404, "no such household")
        # the whole city: warnings raised before a transfer lie in the old district
        rows = services.read(ledgers.warning_ledger)
        mine = [r for r in rows if r["household_id"] == household_id]
        services.users.audit(user, "households.alerts", {"household_id": household_id},
                             len(mine))
        return {"household_id": household_id, "count": len(mine), "alerts": mine}

    return router
