"""Ownership (属地): which community a household belongs to, from its own events alone.

DESIGN "Ownership (属地)". The owner is a pure fold over one household's events in
processing order, so every place that needs it computes the same answer: the engine
(which moves open warnings when the owner changes), the embedded log's owner
directory (kept as events are appended) and the ingest guard (which decides whether
a caller may write about a household at all). :func:`next_owner` is that fold's step;
:class:`Admission` is the guard over a batch.

An event that breaks a condition of the contract still counts as processed but
changes nothing: its step carries a ``notice`` (a fixed reason, countable by reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from events.orgunits import Level, OrgUnitError, is_within, level_of

__all__ = [
    "NOT_OWNER_FORBIDDEN",
    "NOT_OWNER_REGISTERED",
    "NOT_OWNER_TRANSFERRED",
    "OUTSIDE_FORBIDDEN",
    "REFUSALS",
    "REGISTERED",
    "TO_NOT_COMMUNITY",
    "TO_OWNER",
    "TRANSFERRED",
    "NEVER_SEEN",
    "Admission",
    "OwnerStep",
    "Standing",
    "covers",
    "next_owner",
]

REGISTERED = "household.registered"
TRANSFERRED = "household.transferred"

#: Notices: the event is processed but changes nothing (DESIGN "Ownership").
NOT_OWNER_REGISTERED = (
    "household.registered: org_unit is not the registered household's owner; nothing changed")
NOT_OWNER_TRANSFERRED = (
    "household.transferred: org_unit is not the household's owner; nothing changed")
TO_OWNER = "household.transferred: to_org_unit is already the owner; nothing changed"
TO_NOT_COMMUNITY = (
    "household.transferred: to_org_unit is not a community code; nothing changed")

#: Ingest refusals (the caller's scope does not cover the household).
NOT_OWNER_FORBIDDEN = "household_id: the household belongs outside your org unit"
OUTSIDE_FORBIDDEN = "org_unit: outside your org unit"
#: Every reason :class:`Admission` refuses with (the faces answer these with 403).
REFUSALS = frozenset({NOT_OWNER_FORBIDDEN, OUTSIDE_FORBIDDEN})


@dataclass(frozen=True, slots=True)
class OwnerStep:
    """A household's ownership after one event.

    ``moved_from`` is the previous owner when this event moved the household (a
    transfer, or a first registration from another community), so the engine moves
    its open warnings; None otherwise (also for the first event, which has nothing to
    move). ``notice`` is set when the event broke a condition and changed nothing.
    """

    owner: str | None
    registered: bool
    moved_from: str | None = None
    notice: str | None = None


def _is_community(code: Any) -> bool:
    if not isinstance(code, str):
        return False
    try:
        return level_of(code) is Level.COMMUNITY
    except OrgUnitError:
        return False


def next_owner(owner: str | None, registered: bool, event_type: str, org_unit: str,
               data: Mapping[str, Any]) -> OwnerStep:
    """The household's (owner, registered) after one processed event of any type.

    ``owner`` None means the household was never seen: this event's ``org_unit``
    becomes the owner first, then the event applies as to any household (so a v1
    log gets owners too, and a first transfer moves a household it just created).
    """
    if owner is None:
        owner = org_unit
    if event_type == REGISTERED:
        if not registered:
            moved = owner if org_unit != owner else None
            return OwnerStep(org_unit, True, moved)
        if org_unit != owner:
            return OwnerStep(owner, True, notice=NOT_OWNER_REGISTERED)
        return OwnerStep(owner, True)
    if event_type == TRANSFERRED:
        to = data.get("to_org_unit")
        if org_unit != owner:
            return OwnerStep(owner, registered, notice=NOT_OWNER_TRANSFERRED)
        if not _is_community(to):
            return OwnerStep(owner, registered, notice=TO_NOT_COMMUNITY)
        if to == owner:
            return OwnerStep(owner, registered, notice=TO_OWNER)
        return OwnerStep(to, registered, moved_from=owner)
    return OwnerStep(owner, registered)


@dataclass(frozen=True, slots=True)
class Standing:
    """What a directory knows of a household: its owner (None: never seen), registered."""

    owner: str | None = None
    registered: bool = False


NEVER_SEEN = Standing()


def covers(scope: str, code: str) -> bool:
    """Whether a caller scoped to ``scope`` may act for ``code``; city-level covers all."""
    return level_of(scope) is Level.CITY or is_within(code, scope)


class Admission:
    """The ingest guard for one caller and one batch, in the batch's order.

    DESIGN "Ingest": an event about a household is accepted only from a caller whose
    scope covers the household's current owner, or, for a household never seen, the
    event's ``org_unit``. "Current" includes the events admitted earlier in the same
    batch (a transfer then a visit: the visit is judged against the new owner), so
    the guard folds what it admits. ``standing_of`` reads the directory; events it
    refuses are never folded (they never reach the log).
    """

    def __init__(self, scope: str, standing_of: Callable[[str], Standing]) -> None:
        self.scope = scope
        self.standing_of = standing_of
        self._batch: dict[str, Standing] = {}

    def refusal(self, household_id: str, event_type: str, org_unit: str,
                data: Mapping[str, Any]) -> str | None:
        """None to admit (and fold) the event; else the reason it is refused."""
        standing = self._batch.get(household_id)
        if standing is None:
            standing = self.standing_of(household_id)
        if standing.owner is None:
            if not covers(self.scope, org_unit):
                return OUTSIDE_FORBIDDEN
        elif not covers(self.scope, standing.owner):
            return NOT_OWNER_FORBIDDEN
        step = next_owner(standing.owner, standing.registered, event_type, org_unit, data)
        self._batch[household_id] = Standing(step.owner, step.registered)
        return None
