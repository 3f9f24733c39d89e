"""``/v1/silences``: chairs and city admins hold back alerts within their scope.

A silence lasts at most ``MAX_SILENCE_DAYS``: a forgotten one must not mute a
district for ever. It records its author's scope, and holds back only subscriptions
whose owner's scope lies within it (``alerts.routing``); it may be lifted by its
author or by a user whose scope covers the author's.

The silence model and matching live in :mod:`alerts.routing`; this module is only
the HTTP face (validation, scope checks, audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from access.users import User
from alerts.routing import SilenceStore
from api.auth import ROW_ROLES, in_scope, org_unit_in_scope, require
from app.services import Services
from events.instants import MICROS_PER_DAY, now_micros

RowUser = Annotated[User, Depends(require(*ROW_ROLES))]
WarningLevel = Literal["yellow", "orange", "red"]
MAX_SILENCE_DAYS = 30

class Matcher(BaseModel):
    org_unit: str = Field(description="This unit and everything under it.")
    rule_id: str | None = Field(default=None, max_length=100)
    level: WarningLevel | None = None


class SilenceIn(BaseModel):
    matcher: Matcher
    expires_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with offset; or give duration_minutes.")
    duration_minutes: float | None = Field(default=None, gt=0, le=60 * 24 * MAX_SILENCE_DAYS)
    comment: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_expiry(self) -> SilenceIn:
        if (self.expires_at is None) == (self.duration_minutes is None):
            raise ValueError("give exactly one of expires_at or duration_minutes")
        return self

    def expires_us(self, now: int) -> int:
        if self.expires_at is not None:
            return _micros(self.expires_at)
        assert self.duration_minutes is not None
        return now + int(self.duration_minutes * 60_000_000)


def _micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def silence_router(services: Services) -> APIRouter:
    """POST/GET/DELETE ``/v1/silences`` for chairs and city admins, within their scope."""
    router = APIRouter(tags=["silences"])
    silences = SilenceStore.of(services.subscriptions)

    @router.post("/v1/silences", status_code=201)
    def create_silence(body: SilenceIn, user: RowUser) -> dict[str, Any]:
        """Hold back alerts matching the matcher until expiry (they are still recorded)."""
        org_unit_in_scope(user, body.matcher.org_unit)
        now = now_micros()
        expires = body.expires_us(now)
        if expires <= now:
            raise HTTPException(422, "expires_at: must be in the future")
        if expires > now + MAX_SILENCE_DAYS * MICROS_PER_DAY:
            raise HTTPException(422, f"expires_at: a silence lasts at most {MAX_SILENCE_DAYS} "
                                     "days")
        created = silences.create(user.name, body.matcher.org_unit, body.matcher.rule_id,
                                  body.matcher.level, expires, body.comment, now,
                                  author_scope=user.org_unit)
        services.users.audit(user, "silences.create", {"id": created.id}, 1)
        return created.public(now)

    @router.get("/v1/silences")
    def list_silences(user: RowUser, all: bool = False) -> dict[str, Any]:  # noqa: A002
        """Silences in the caller's scope; active only unless ``all=true``."""
        now = now_micros()
        rows = [s.public(now) for s in silences.all()
                if in_scope(user, s.org_unit) and (all or s.active(now))]
        return {"count": len(rows), "silences": rows}

    @router.delete("/v1/silences/{silence_id}", status_code=204)
    def delete_silence(silence_id: str, user: RowUser) -> Response:
        """Expire the silence now (it stays listed with ``all=true``)."""
        silence = silences.get(silence_id)
        if silence is None or not in_scope(user, silence.org_unit):
            raise HTTPException(404, "no such silence")
        if silence.author != user.name and not in_scope(
                user, silence.author_scope or silence.org_unit):
            raise HTTPException(403, "only its author, or a user whose scope covers the "
                                     "author's, may lift this silence")
        silences.expire(silence_id)
        services.users.audit(user, "silences.expire", {"id": silence_id}, 1)
        return Response(status_code=204)

    return router
