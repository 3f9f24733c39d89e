"""Bearer authentication, roles and org-unit scoping shared by every endpoint.

Order matters: no token → 401; a role that may never use an endpoint → 403;
a row or warning outside the caller's org unit is filtered out, or → 404 for
a single item, so that the response never reveals that it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from access.users import User, UserStore
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


def bearer_user(request: Request) -> User | None:
    """The user named by the ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    store: UserStore = request.app.state.services.users
    return store.lookup(token.strip())


def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    store: UserStore = request.app.state.services.users
    user = store.lookup(creds.credentials) if creds is not None else None
    if user is None:
        raise HTTPException(401, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


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
