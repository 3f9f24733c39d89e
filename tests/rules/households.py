"""Builders for the household events of catalog v2 (one JSON line each), beside
``tests.helpers``'s v1 builders."""

from __future__ import annotations

from tests.helpers import DAY, HOUR, ORG, envelope, line, petition, visit

#: Another community of the same street as ``ORG``; another of another district.
SAME_STREET = "230102001002"
OTHER_DISTRICT = "230103002004"


def register(
    hh: str,
    at: int | str,
    flags: list[str] | tuple[str, ...] = (),
    notes: str = "",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"flags": list(flags), "notes": notes}
    return line(envelope("household.registered", hh, at, data, org, eid))


def transfer(
    hh: str,
    at: int | str,
    to: str,
    reason: str = "moved",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"to_org_unit": to, "reason": reason}
    return line(envelope("household.transferred", hh, at, data, org, eid))


def v2_story(t0: int) -> list[str]:
    """A stream of catalog v2 households, for the runtimes' equivalence tests.

    Registrations (key and not, a first one that moves a household, a re-registration
    that changes the cadence, one that is a notice), transfers that move open warnings
    (and one that is a notice), ``screening-overdue`` firing and being resolved by a
    visit (one recorded late), ``vulnerable-person-harm`` from a registration flag, a
    duplicate, and v1 events around them. Deadlines fire by t0 + 400 d.
    """
    key, disabled = ["key_household"], ["intellectual_disability", "rural"]
    registration_a = register("h-v2-a", t0, key)
    lines = [
        registration_a,
        visit("h-v2-a", t0 + 10 * DAY, []),
        visit("h-v2-a", t0 + 12 * DAY, ["injury_observed"]),
        transfer("h-v2-a", t0 + 12 * DAY + 30 * HOUR, OTHER_DISTRICT),
        petition("h-v2-a", t0 + 45 * DAY, org=OTHER_DISTRICT),  # overdue fires before it
        visit("h-v2-a", t0 + 50 * DAY, [], org=OTHER_DISTRICT),  # and this resolves it
        petition("h-v2-b", t0, category="marriage_family_dispute"),
        visit("h-v2-b", t0 + HOUR, ["injury_observed"]),
        register("h-v2-b", t0 + 2 * HOUR, [], org=SAME_STREET),
        register("h-v2-b", t0 + 3 * HOUR, key, org=SAME_STREET),
        register("h-v2-b", t0 + 4 * HOUR, [], org=OTHER_DISTRICT),  # a notice
        register("h-v2-c", t0, disabled, org=OTHER_DISTRICT),
        visit("h-v2-c", t0 + DAY, ["child_neglect"], org=OTHER_DISTRICT),
        transfer("h-v2-c", t0 + 2 * DAY, SAME_STREET),  # a notice: not from the owner
        transfer("h-v2-c", t0 + 3 * DAY, SAME_STREET, reason="administrative",
                 org=OTHER_DISTRICT),
        register("h-v2-d", t0, key),
        petition("h-v2-d", t0 + 40 * DAY),
        visit("h-v2-d", t0 + 20 * DAY, []),  # late: resolves at the raise instant
        register("h-v2-e", t0 + 5 * DAY, []),
        visit("h-v2-e", t0 + 100 * DAY, ["threats", "marital_conflict"]),
    ]
    return [*lines, registration_a]  # the last one: a duplicate
