"""Ownership (属地) in the engine (DESIGN "Catalog v2", "Ownership" and **changes v1**).

Every household the engine has seen has an owner: its first processed event's
``org_unit``; the first ``household.registered`` sets it to the registration's
``org_unit`` (and the flags); a later one must come from the owner and only replaces
the flags. A raised warning's ``handling_org_unit`` is the owner when it is raised;
``org_unit`` in ``warning.raised`` stays the triggering event's. An event that breaks a
condition is processed, changes nothing, and is reported as a notice.
"""

from __future__ import annotations

from events.codec import decode
from rules.ownership import NOT_OWNER_REGISTERED
from rules.state import HouseholdState
from tests.helpers import (
    DAY,
    HOUR,
    ORG,
    T0,
    engine,
    mediation_concluded,
    of_type,
    petition,
    raised,
    replay,
    run,
    visit,
)
from tests.rules.households import OTHER_DISTRICT, SAME_STREET, register

RULE = "violence-injury"


def states_after(lines: list[str]) -> dict[str, HouseholdState]:
    rp, _ = replay(lines)
    return dict(rp.states)


def test_the_first_event_sets_the_owner_and_a_warning_is_handled_there():
    records = run([
        petition("h1", T0, org=ORG),
        visit("h1", T0 + DAY, ["injury_observed"], org=OTHER_DISTRICT),
    ])
    [warning] = raised(records, RULE)
    assert warning["org_unit"] == OTHER_DISTRICT  # the trigger's
    assert (warning["handling_level"], warning["handling_org_unit"]) == ("community", ORG)


def test_a_single_community_household_is_handled_where_its_events_happen():
    [warning] = raised(run([visit("h1", T0, ["injury_observed"], org=OTHER_DISTRICT)]))
    assert warning["org_unit"] == warning["handling_org_unit"] == OTHER_DISTRICT


def test_escalation_climbs_from_the_owner_not_from_the_trigger():
    records = run(
        [petition("h1", T0, org=ORG), visit("h1", T0 + DAY, ["injury_observed"],
                                              org=OTHER_DISTRICT)],
        as_of=T0 + DAY + 24 * HOUR,
    )
    [escalated] = of_type(records, "warning.escalated")
    assert escalated["handling_org_unit"] == "230102001000"  # ORG's street


def test_the_first_registration_sets_the_owner_even_after_events_elsewhere():
    records = run([
        petition("h1", T0, org=ORG),
        register("h1", T0 + DAY, org=OTHER_DISTRICT),
        mediation_concluded("h1", T0 + 2 * DAY, "failed", org=ORG),
    ])
    [warning] = raised(records, "mediation-failed")
    assert warning["org_unit"] == ORG
    assert warning["handling_org_unit"] == OTHER_DISTRICT
    state = states_after([petition("h1", T0, org=ORG), register("h1", T0 + DAY,
                                                                 org=OTHER_DISTRICT)])["h1"]
    assert state.owner == OTHER_DISTRICT and state.registered


def test_the_first_registration_moves_open_warnings_as_a_transfer_does():
    trigger = visit("h1", T0, ["injury_observed"], org=ORG)
    records = run([trigger, register("h1", T0 + HOUR, org=OTHER_DISTRICT)])
    [moved] = of_type(records, "warning.transferred")
    assert (moved["from_org_unit"], moved["to_org_unit"]) == (ORG, OTHER_DISTRICT)
    assert moved["at"] == "2026-03-01T09:00:00Z"


def test_a_later_registration_from_the_owner_replaces_the_flags_only():
    states = states_after([
        register("h1", T0, ["key_household", "rural"]),
        register("h1", T0 + DAY, ["single_parent"]),
    ])
    assert states["h1"].owner == ORG
    assert states["h1"].household_flags == frozenset({"single_parent"})


def test_a_later_registration_from_elsewhere_changes_nothing_and_is_a_notice():
    lines = [
        register("h1", T0, ["key_household"]),
        register("h1", T0 + DAY, [], org=SAME_STREET),
    ]
    rp, records = replay(lines)
    assert rp.states["h1"].owner == ORG
    assert rp.states["h1"].household_flags == frozenset({"key_household"})
    assert rp.counts.processed == 2 and rp.counts.rejected == 0
    assert rp.counts.notices == 1
    assert rp.counts.notice_reasons == {NOT_OWNER_REGISTERED: 1}
    assert of_type(records, "warning.transferred") == []


def test_an_empty_flag_list_is_a_registration():
    state = states_after([register("h1", T0, [])])["h1"]
    assert state.registered and state.household_flags == frozenset()


def test_events_of_a_household_never_registered_leave_it_unregistered():
    state = states_after([petition("h1", T0)])["h1"]
    assert state.owner == ORG and not state.registered


def test_a_household_is_owned_independently_of_other_households():
    states = states_after([
        petition("h1", T0, org=ORG),
        petition("h2", T0, org=OTHER_DISTRICT),
        register("h1", T0 + DAY, org=SAME_STREET),
    ])
    assert (states["h1"].owner, states["h2"].owner) == (SAME_STREET, OTHER_DISTRICT)


def test_ownership_survives_the_state_round_trip():
    state = states_after([register("h1", T0, ["rural"], org=SAME_STREET)])["h1"]
    again = HouseholdState.from_bytes(state.to_bytes())
    assert again.owner == SAME_STREET and again.household_flags == frozenset({"rural"})
    assert again.to_bytes() == state.to_bytes()


def test_a_state_stored_before_ownership_loads_and_takes_the_next_events_community():
    old = (b'{"s":{},"t":{},"f":[],"o":[["w-0123456789abcdef","violence-injury","red",'
           b'"230102001001",0,false,1772352000000000]],"c":[],"d":[],"q":1}')
    state = HouseholdState.from_bytes(old)
    assert state.owner is None and not state.registered
    assert state.to_bytes() == old  # unchanged bytes until an event is processed
    decoded = decode(petition("h1", T0, org=SAME_STREET))
    engine().apply(state, decoded)  # type: ignore[arg-type]
    assert state.owner == SAME_STREET
