"""household.transferred (DESIGN "Catalog v2", "Ownership (属地)").

A transfer must carry the owner as ``org_unit`` and a ``to_org_unit`` other than it;
the owner becomes ``to_org_unit``. Each open warning, in raise order, moves to the
ancestor of ``to_org_unit`` at its current handling level; where that differs from
its handling org unit, a ``warning.transferred`` record is written. Escalation
deadlines do not change. A transfer that breaks a condition is a notice.
"""

from __future__ import annotations

import pytest

from rules.ownership import NOT_OWNER_TRANSFERRED, TO_OWNER
from tests.helpers import (
    DAY,
    HOUR,
    ORG,
    T0,
    ack,
    case_resolved,
    mediation_concluded,
    of_type,
    petition,
    raised,
    replay,
    resolve,
    run,
    visit,
    wid,
)
from tests.rules.households import OTHER_DISTRICT, SAME_STREET, register, transfer

#: Another street of ORG's district (230102), and of another district.
SAME_DISTRICT = "230102004003"


def test_a_transfer_moves_an_open_warning_and_records_it():
    trigger = visit("h1", T0, ["injury_observed"])
    records = run([trigger, transfer("h1", T0 + HOUR, OTHER_DISTRICT)])
    assert of_type(records, "warning.transferred") == [
        {
            "type": "warning.transferred",
            "warning_id": wid("violence-injury", "h1", trigger),
            "household_id": "h1",
            "from_org_unit": ORG,
            "to_org_unit": OTHER_DISTRICT,
            "at": "2026-03-01T09:00:00Z",
        }
    ]


def test_open_warnings_move_in_raise_order_and_closed_ones_stay():
    first = visit("h1", T0, ["injury_observed"])
    failed = mediation_concluded("h1", T0 + HOUR, "failed")
    dispute = visit("h1", T0 + 3 * HOUR, ["threats", "marital_conflict"])
    lines = [
        first,
        failed,
        ack("h1", wid("violence-injury", "h1", first), T0 + 2 * HOUR),  # open, acknowledged
        resolve("h1", wid("mediation-failed", "h1", failed), T0 + 2 * HOUR),
        petition("h1", T0 + 2 * HOUR, category="marriage_family_dispute"),
        dispute,
        transfer("h1", T0 + 6 * HOUR, SAME_STREET),
    ]
    moved = [r["warning_id"] for r in of_type(run(lines), "warning.transferred")]
    assert moved == [wid("violence-injury", "h1", first), wid("escalating-dispute", "h1", dispute)]


def test_a_resolved_warning_does_not_move():
    records = run([
        visit("h1", T0, ["injury_observed"]),
        case_resolved("h1", T0 + HOUR),
        transfer("h1", T0 + 2 * HOUR, OTHER_DISTRICT),
    ])
    assert of_type(records, "warning.transferred") == []


def test_an_escalated_warning_moves_to_the_new_owners_ancestor_at_its_level():
    records = run(
        [visit("h1", T0, ["injury_observed"]), transfer("h1", T0 + 30 * HOUR, OTHER_DISTRICT)]
    )
    [moved] = of_type(records, "warning.transferred")
    assert (moved["from_org_unit"], moved["to_org_unit"]) == ("230102001000", "230103002000")


def test_a_warning_whose_handling_unit_does_not_change_is_not_recorded_as_moved():
    # Street level; the new community is in the same street.
    records = run(
        [visit("h1", T0, ["injury_observed"]), transfer("h1", T0 + 30 * HOUR, SAME_STREET)]
    )
    assert of_type(records, "warning.transferred") == []


def test_a_district_level_warning_stays_within_the_district_and_later_climbs_from_the_new_owner():
    trigger = visit("h1", T0, ["injury_observed"])
    records = run(
        [trigger, transfer("h1", T0 + 50 * HOUR, SAME_DISTRICT)], as_of=T0 + 72 * HOUR
    )
    assert of_type(records, "warning.transferred") == []
    escalations = of_type(records, "warning.escalated")
    assert [e["handling_org_unit"] for e in escalations] == [
        "230102001000", "230102000000", "230100000000",
    ]


def test_escalation_deadlines_do_not_change_and_follow_the_new_chain():
    trigger = visit("h1", T0, ["injury_observed"])
    records = run([trigger, transfer("h1", T0 + HOUR, OTHER_DISTRICT)], as_of=T0 + 24 * HOUR)
    [escalated] = of_type(records, "warning.escalated")
    assert escalated["at"] == "2026-03-02T08:00:00Z"  # R + 24 h, as without the transfer
    assert escalated["handling_org_unit"] == "230103002000"


def test_a_warning_raised_after_a_transfer_is_handled_at_the_new_owner():
    records = run([
        petition("h1", T0),
        transfer("h1", T0 + HOUR, OTHER_DISTRICT),
        visit("h1", T0 + 2 * HOUR, ["injury_observed"], org=ORG),
    ])
    [warning] = raised(records)
    assert warning["org_unit"] == ORG and warning["handling_org_unit"] == OTHER_DISTRICT


def test_a_transfer_may_move_a_household_that_is_not_registered():
    rp, _ = replay([petition("h1", T0), transfer("h1", T0 + HOUR, OTHER_DISTRICT)])
    assert rp.states["h1"].owner == OTHER_DISTRICT and not rp.states["h1"].registered


def test_a_transfer_as_first_event_creates_and_moves_the_household():
    rp, _ = replay([transfer("h1", T0, OTHER_DISTRICT)])
    assert rp.states["h1"].owner == OTHER_DISTRICT and rp.counts.notices == 0


def test_successive_transfers_each_need_the_current_owner():
    rp, records = replay([
        visit("h1", T0, ["injury_observed"]),
        transfer("h1", T0 + HOUR, OTHER_DISTRICT),
        transfer("h1", T0 + 2 * HOUR, SAME_STREET, org=OTHER_DISTRICT),
    ])
    assert [(r["from_org_unit"], r["to_org_unit"])
            for r in of_type(records, "warning.transferred")] == [
        (ORG, OTHER_DISTRICT), (OTHER_DISTRICT, SAME_STREET),
    ]
    assert rp.states["h1"].owner == SAME_STREET


@pytest.mark.parametrize(
    ("line", "notice"),
    [
        (transfer("h1", T0 + HOUR, OTHER_DISTRICT, org=SAME_STREET), NOT_OWNER_TRANSFERRED),
        (transfer("h1", T0 + HOUR, ORG), TO_OWNER),
    ],
    ids=["not-from-the-owner", "to-the-owner"],
)
def test_a_transfer_that_breaks_a_condition_changes_nothing_and_is_a_notice(line, notice):
    rp, records = replay([visit("h1", T0, ["injury_observed"]), line])
    assert rp.states["h1"].owner == ORG
    assert of_type(records, "warning.transferred") == []
    assert rp.counts.processed == 2
    assert rp.counts.notice_reasons == {notice: 1}


def test_a_transfer_is_processed_once_a_re_send_is_a_duplicate():
    move = transfer("h1", T0 + HOUR, OTHER_DISTRICT)
    rp, records = replay([visit("h1", T0, ["injury_observed"]), move, move])
    assert len(of_type(records, "warning.transferred")) == 1
    assert rp.counts.duplicates == 1


def test_registration_then_transfer_keeps_the_flags():
    rp, _ = replay([register("h1", T0, ["key_household"]),
                    transfer("h1", T0 + DAY, OTHER_DISTRICT, reason="administrative")])
    state = rp.states["h1"]
    assert state.owner == OTHER_DISTRICT and state.household_flags == frozenset({"key_household"})
