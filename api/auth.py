"""Bearer authentication, roles and org-unit scoping shared by every endpoint.

Order matters: no token → 401; a role that may never use an endpoint → 403;
a row or warning outside the caller's org unit is filtered out, or → 404 for
a single item, so that the response never reveals that it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from access.users import TokenRefused, User, UserStore
from events.orgunits import OrgUnitError, check_code, is_within
from projections.ledger_common import district_code

_bearer = HTTPBearer(auto_error=False, description="A token printed by `jiahe users add`.")

INGEST_ROLES = ("cadre", "chair", "city_admin")
ROW_ROLES = ("chair", "city_admin")  # alert rows, ledgers, acting on warnings, subscriptions
KPI_ROLES = ("analyst", "chair", "city_admin")
#: another agency's users: they answer referrals addressed to their agency, nothing else
PARTNER_ROLES = ("partner",)
#: who may read referrals (a partner: its agency's, unsealed note included)
REFERRAL_READ_ROLES = (*ROW_ROLES, *PARTNER_ROLES)
#: who may subscribe (a partner: to the referral records addressed to its agency)
SUBSCRIBE_ROLES = (*ROW_ROLES, *PARTNER_ROLES)


def authenticate(request: Request) -> User:
    """The user of the bearer token, read afresh (a revocation holds from the next
    request); :class:`TokenRefused` says why not (missing, unknown, expired, …)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRefused("a valid bearer token is required")
    store: UserStore = request.app.state.services.users
    return store.authenticate(token.strip())


class AuthenticateFirst:
    """ASGI middleware: 401 for ``/v1/`` before anything else, so that an anonymous
    caller learns nothing, not even a 422; an expired, revoked or disabled token is
    told which. Plain ASGI (not ``BaseHTTPMiddleware``): the body's ``receive`` passes
    through unwrapped, so a body cap (``api.limits``) surfaces as its own 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            try:
                await run_in_threadpool(authenticate, Request(scope))
            except TokenRefused as exc:
                refusal = JSONResponse({"detail": str(exc)}, status_code=401,
                                       headers={"WWW-Authenticate": "Bearer"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    store: UserStore = request.app.state.services.users
    try:
        if creds is None:
            raise TokenRefused("a valid bearer token is required")
        return store.authenticate(creds.credentials)
    except TokenRefused as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def require(*roles: str) -> Callable[[User], User]:
    """A dependency that admits only ``roles`` (403 for any other authenticated user)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in roles:
            raise HTTPException(403, f"role {user.role!r} may not use this endpoint")
        return user

    return check


def in_scope(user: User, org_unit: str) -> bool:
    return is_within(org_unit, user.org_unit)


def district_filter(user: User, district: str | None) -> str | None:
    """Validate ``?district=``; 403 when it lies wholly outside the caller's scope.

    A district that contains the caller's unit (a street chair asking for her
    district) is allowed: rows are filtered by scope afterwards anyway.
    """
    if district is None:
        return None
    try:
        code = district_code(district)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    assert code is not None
    if not (is_within(code, user.org_unit) or is_within(user.org_unit, code)):
        raise HTTPException(403, "district outside your org unit")
    return code


def org_unit_in_scope(user: User, org_unit: str) -> str:
    try:
        check_code(org_unit)
    except OrgUnitError as exc:
        raise HTTPException(422, str(exc)) from exc
    if not in_scope(user, org_unit):
        raise HTTPException(403, "org unit outside your org unit")
    return org_unit
