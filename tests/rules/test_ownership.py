"""Ownership (属地), DESIGN "Ownership": the owner is a fold over a household's own events.

Each sentence of the contract is a case below; the properties at the end run random
streams of household events through the fold and through the ingest guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.ownership import (
    NEVER_SEEN,
    NOT_OWNER_FORBIDDEN,
    NOT_OWNER_REGISTERED,
    NOT_OWNER_TRANSFERRED,
    OUTSIDE_FORBIDDEN,
    REFUSALS,
    TO_NOT_COMMUNITY,
    TO_OWNER,
    Admission,
    OwnerStep,
    Standing,
    covers,
    next_owner,
)

A = "230102001001"  # 道里区, street 001
B = "230102002001"  # 道里区, street 002
C = "230103001001"  # 南岗区
CITY = "230100000000"

REGISTER = "household.registered"
TRANSFER = "household.transferred"
VISIT = "screening.visit_recorded"


def register(flags: list[str] | None = None) -> dict[str, Any]:
    return {"flags": flags or [], "notes": "x"}


def transfer(to: Any) -> dict[str, Any]:
    return {"to_org_unit": to, "reason": "moved"}


def fold(events: list[tuple[str, str, Mapping[str, Any]]]) -> list[OwnerStep]:
    owner: str | None = None
    registered = False
    steps = []
    for kind, org_unit, data in events:
        step = next_owner(owner, registered, kind, org_unit, data)
        owner, registered = step.owner, step.registered
        steps.append(step)
    return steps


# -- the first event ---------------------------------------------------------------


@pytest.mark.parametrize("kind", [VISIT, "petition.received", "case.resolved",
                                  "warning.acknowledged", "guardianship.gap_reported"])
def test_the_first_event_of_any_type_sets_the_owner_to_its_org_unit(kind: str) -> None:
    assert next_owner(None, False, kind, A, {}) == OwnerStep(A, False, None, None)


def test_later_v1_events_from_other_communities_change_nothing() -> None:
    steps = fold([(VISIT, A, {}), (VISIT, B, {}), ("petition.received", C, {})])
    assert [s.owner for s in steps] == [A, A, A]
    assert all(s.notice is None and s.moved_from is None for s in steps)


# -- registration --------------------------------------------------------------------


def test_a_first_event_that_registers_sets_owner_and_registered() -> None:
    assert next_owner(None, False, REGISTER, A, register()) == OwnerStep(A, True)


def test_the_first_registration_moves_a_household_an_earlier_event_had_placed() -> None:
    steps = fold([(VISIT, A, {}), (REGISTER, C, register(["rural"]))])
    assert steps[1] == OwnerStep(C, True, moved_from=A)


def test_the_first_registration_in_the_owner_moves_nothing() -> None:
    steps = fold([(VISIT, A, {}), (REGISTER, A, register())])
    assert steps[1] == OwnerStep(A, True)


def test_a_later_registration_must_carry_the_owner() -> None:
    steps = fold([(REGISTER, A, register()), (REGISTER, B, register(["key_household"]))])
    assert steps[1] == OwnerStep(A, True, notice=NOT_OWNER_REGISTERED)


def test_a_later_registration_from_the_owner_only_replaces_flags() -> None:
    steps = fold([(REGISTER, A, register()), (REGISTER, A, register(["key_household"]))])
    assert steps[1] == OwnerStep(A, True)


# -- transfers -----------------------------------------------------------------------


def test_a_transfer_from_the_owner_moves_the_household() -> None:
    steps = fold([(REGISTER, A, register()), (TRANSFER, A, transfer(C))])
    assert steps[1] == OwnerStep(C, True, moved_from=A)


def test_an_unregistered_household_can_be_transferred_too() -> None:
    steps = fold([(VISIT, A, {}), (TRANSFER, A, transfer(B))])
    assert steps[1] == OwnerStep(B, False, moved_from=A)


def test_a_transfer_must_carry_the_owner_as_org_unit() -> None:
    steps = fold([(REGISTER, A, register()), (TRANSFER, C, transfer(C))])
    assert steps[1] == OwnerStep(A, True, notice=NOT_OWNER_TRANSFERRED)


def test_after_a_transfer_the_new_owner_transfers_and_the_old_one_cannot() -> None:
    steps = fold([(VISIT, A, {}), (TRANSFER, A, transfer(C)), (TRANSFER, A, transfer(B)),
                  (TRANSFER, C, transfer(B))])
    assert [s.owner for s in steps] == [A, C, C, B]
    assert steps[2].notice == NOT_OWNER_TRANSFERRED
    assert steps[3].moved_from == C


def test_a_transfer_to_the_owner_changes_nothing() -> None:
    steps = fold([(VISIT, A, {}), (TRANSFER, A, transfer(A))])
    assert steps[1] == OwnerStep(A, False, notice=TO_OWNER)


@pytest.mark.parametrize("to", ["230102001000", "230102000000", CITY, "not-a-code", None, 7])
def test_a_transfer_to_anything_but_a_community_changes_nothing(to: Any) -> None:
    steps = fold([(VISIT, A, {}), (TRANSFER, A, transfer(to))])
    assert steps[1] == OwnerStep(A, False, notice=TO_NOT_COMMUNITY)


def test_a_transfer_without_to_org_unit_changes_nothing() -> None:
    assert next_owner(A, False, TRANSFER, A, {}).notice == TO_NOT_COMMUNITY


def test_a_first_event_that_is_a_transfer_places_then_moves() -> None:
    assert next_owner(None, False, TRANSFER, A, transfer(C)) == OwnerStep(C, False,
                                                                           moved_from=A)


def test_registration_survives_transfers() -> None:
    steps = fold([(REGISTER, A, register()), (TRANSFER, A, transfer(C)), (VISIT, C, {})])
    assert steps[-1] == OwnerStep(C, True)


# -- the guard -----------------------------------------------------------------------


def directory(known: dict[str, Standing]) -> Any:
    return lambda household_id: known.get(household_id, NEVER_SEEN)


def test_covers_is_scope_containment_and_city_covers_all() -> None:
    assert covers("230102000000", A) and covers("230102001000", A) and covers(A, A)
    assert not covers("230102000000", C) and not covers("230102002000", A)
    assert covers(CITY, C) and covers("230200000000", C)  # any city-level scope


def test_the_attack_is_refused_whatever_org_unit_it_claims() -> None:
    guard = Admission("230102000000", directory({"hh": Standing(C, True)}))
    assert guard.refusal("hh", "case.resolved", A, {}) == NOT_OWNER_FORBIDDEN
    assert guard.refusal("hh", VISIT, A, {}) == NOT_OWNER_FORBIDDEN
    assert guard.refusal("hh", "warning.resolved", A, {"warning_id": "w"}) \
        == NOT_OWNER_FORBIDDEN


def test_the_owner_decides_not_the_event_org_unit() -> None:
    guard = Admission("230102000000", directory({"hh": Standing(A, False)}))
    assert guard.refusal("hh", VISIT, C, {}) is None


def test_a_never_seen_household_is_judged_by_org_unit() -> None:
    guard = Admission("230102000000", directory({}))
    assert guard.refusal("new-1", VISIT, C, {}) == OUTSIDE_FORBIDDEN
    assert guard.refusal("new-2", VISIT, A, {}) is None
    assert {OUTSIDE_FORBIDDEN, NOT_OWNER_FORBIDDEN} == REFUSALS


def test_city_level_roles_cover_every_household() -> None:
    guard = Admission(CITY, directory({"hh": Standing(C, True)}))
    assert guard.refusal("hh", "case.resolved", A, {}) is None
    assert guard.refusal("new", VISIT, "230202001001", {}) is None


def test_the_batch_is_judged_in_order() -> None:
    guard = Admission("230102000000", directory({"hh": Standing(A, True)}))
    assert guard.refusal("hh", TRANSFER, A, transfer(C)) is None  # the owner may give it away
    assert guard.refusal("hh", VISIT, A, {}) == NOT_OWNER_FORBIDDEN  # …and it is gone


def test_a_refused_event_is_not_folded() -> None:
    guard = Admission("230103000000", directory({}))
    assert guard.refusal("hh", VISIT, A, {}) == OUTSIDE_FORBIDDEN
    assert guard.refusal("hh", VISIT, C, {}) is None  # still never seen: its org_unit decides


def test_a_first_registration_elsewhere_needs_the_current_owner() -> None:
    """Registration moves a household; only its owner's side may do it."""
    guard = Admission("230103000000", directory({"hh": Standing(A, False)}))
    assert guard.refusal("hh", REGISTER, C, register()) == NOT_OWNER_FORBIDDEN


# -- properties ----------------------------------------------------------------------

COMMUNITIES = [A, B, C, "230103002001"]
SCOPES = ["230102000000", "230103000000", "230102001000", A, CITY]
household_events = st.lists(st.tuples(
    st.sampled_from([REGISTER, TRANSFER, VISIT, "case.resolved"]),
    st.sampled_from(COMMUNITIES),
    st.sampled_from(COMMUNITIES + ["230102000000"]),
), max_size=12)


@settings(max_examples=300, deadline=None)
@given(household_events)
def test_fold_invariants(raw: list[tuple[str, str, str]]) -> None:
    owner: str | None = None
    registered = False
    for kind, org_unit, to in raw:
        step = next_owner(owner, registered, kind, org_unit, transfer(to))
        first = owner is None
        seeded = org_unit if first else owner
        assert step.owner in COMMUNITIES  # always a community code
        assert step.registered == (registered or kind == REGISTER)
        if step.notice is not None:  # a notice changes nothing but the first placement
            assert (step.owner, step.registered, step.moved_from) == (seeded, registered, None)
        if step.moved_from is not None:
            assert step.moved_from == seeded != step.owner
            assert kind in (REGISTER, TRANSFER)
        elif step.notice is None:
            assert step.owner == seeded or (kind == REGISTER and not registered
                                            and step.owner == org_unit)
        owner, registered = step.owner, step.registered


@settings(max_examples=300, deadline=None)
@given(household_events, st.sampled_from(SCOPES))
def test_the_guard_admits_exactly_what_the_caller_covers(raw: list[tuple[str, str, str]],
                                                         scope: str) -> None:
    """Against a plain fold of the admitted events: admitted iff the scope covers the owner
    before the event (or, never seen, its org_unit)."""
    guard = Admission(scope, directory({}))
    owner: str | None = None
    registered = False
    for kind, org_unit, to in raw:
        judged = owner if owner is not None else org_unit
        refused = guard.refusal("hh", kind, org_unit, transfer(to))
        assert (refused is None) == covers(scope, judged)
        if refused is None:
            step = next_owner(owner, registered, kind, org_unit, transfer(to))
            owner, registered = step.owner, step.registered
