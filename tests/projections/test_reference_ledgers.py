"""The ledger semantics, case by case — read this file as the specification.

Each test builds a few events / lifecycle records by hand and states what a
ledger must answer. Every case runs twice: on ``projections.reference`` (the
pure-Python specification) and on the SQL ledgers over a chdb warehouse
loaded with exactly those rows; warehouse_contract.py then checks the two
agree on randomized data for every backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR, format_instant, parse_instant
from privacy.pseudonym import household_key
from projections import ledgers, reference
from projections.warehouse.chdb_backend import ChdbWarehouse

T = parse_instant("2026-03-01T00:00:00Z")
REG, MOVED, VISIT = "household.registered", "household.transferred", "screening.visit_recorded"
DAY, HOUR = MICROS_PER_DAY, MICROS_PER_HOUR
COMMUNITY = "230102001001"
SECRET = b"spec-secret"
_ids = itertools.count(1)
Rows = list[dict[str, Any]]
Impl = Any  # the ``reference`` module, or SqlLedgers with the same signatures


class SqlLedgers:
    """The reference's signature, answered by loading a warehouse and running SQL."""

    def __init__(self, warehouse: ChdbWarehouse) -> None:
        self.warehouse = warehouse

    def _run(
        self,
        name: str,
        events: Any,
        records: Any,
        as_of: int | None = None,
        district: str | None = None,
        *,
        erased: Any = (),
        pseudonym_secret: bytes | None = None,
    ) -> Rows:
        if erased and pseudonym_secret != SECRET:
            raise ValueError("the warehouse pseudonymises with SECRET")
        wh = self.warehouse
        wh.reset()
        wh.write_events(events)
        wh.write_lifecycle(records)
        for household in erased:
            wh.erase_household(household)
        result: Rows = getattr(ledgers, name)(wh, as_of, district)
        return result

    def warning_ledger(self, *args: Any, **kw: Any) -> Rows:
        return self._run("warning_ledger", *args, **kw)

    def household_ledger(self, *args: Any, **kw: Any) -> Rows:
        return self._run("household_ledger", *args, **kw)

    def guardianship_ledger(self, *args: Any, **kw: Any) -> Rows:
        return self._run("guardianship_ledger", *args, **kw)

    def coverage_ledger(self, *args: Any, **kw: Any) -> Rows:
        return self._run("coverage_ledger", *args, **kw)


@pytest.fixture(scope="module")
def chdb_ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlLedgers]:
    warehouse = ChdbWarehouse(tmp_path_factory.mktemp("spec") / "wh", SECRET)
    warehouse.ensure_schema()
    try:
        yield SqlLedgers(warehouse)
    finally:
        warehouse.close()


@pytest.fixture(params=["reference", "chdb-sql"])
def impl(request: pytest.FixtureRequest) -> Any:
    if request.param == "reference":
        return reference
    return request.getfixturevalue("chdb_ledgers")


def ev(
    kind: str,
    at: int,
    household: str = "H1",
    org_unit: str = COMMUNITY,
    offset: int | None = None,
    **data: Any,
) -> dict[str, Any]:
    n = next(_ids)
    return {
        "offset": n if offset is None else offset,
        "event_id": f"e{n}",
        "type": kind,
        "schema_version": 1,
        "occurred_at": format_instant(at),
        "recorded_at": None,
        "org_unit": org_unit,
        "household_id": household,
        "actor": None,
        "data": data,
    }


def raised(
    wid: str, at: int, level: str = "red", household: str = "H1", org_unit: str = COMMUNITY
) -> dict[str, Any]:
    return {
        "seq": next(_ids),
        "type": "warning.raised",
        "warning_id": wid,
        "rule_id": "violence-injury",
        "household_id": household,
        "level": level,
        "org_unit": org_unit,
        "handling_level": "community",
        "handling_org_unit": org_unit,
        "at": format_instant(at),
    }


def escalated(wid: str, at: int, src: str, dst: str, unit: str) -> dict[str, Any]:
    return {
        "seq": next(_ids),
        "type": "warning.escalated",
        "warning_id": wid,
        "household_id": "H1",
        "from_level": src,
        "to_level": dst,
        "handling_org_unit": unit,
        "at": format_instant(at),
    }


def transition(kind: str, wid: str, at: int, household: str = "H1") -> dict[str, Any]:
    return {
        "seq": next(_ids),
        "type": f"warning.{kind}",
        "warning_id": wid,
        "household_id": household,
        "at": format_instant(at),
    }


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


# --- warning ledger ------------------------------------------------------------


class TestWarningLedger:
    def test_a_fresh_warning_is_open_at_community_level(self, impl: Impl) -> None:
        row = one(impl.warning_ledger([], [raised("w1", T)]), warning_id="w1")
        assert row == {
            "warning_id": "w1",
            "rule_id": "violence-injury",
            "level": "red",
            "household_id": "H1",
            "org_unit": COMMUNITY,
            "district": "230102000000",
            "raised_at": "2026-03-01T00:00:00Z",
            "acknowledged_at": None,
            "resolved_at": None,
            "status": "open",
            "handling_level": "community",
            "handling_org_unit": COMMUNITY,
            "escalations": 0,
            "highest_handling_level": "community",
            "minutes_to_acknowledge": None,
            "minutes_to_resolve": None,
            "risk": None,
            "reopened": 0,
        }

    def test_status_moves_open_acknowledged_resolved_as_of_each_instant(self, impl: Impl) -> None:
        records = [
            raised("w1", T),
            transition("acknowledged", "w1", T + HOUR),
            transition("resolved", "w1", T + 2 * HOUR),
        ]
        status = {
            as_of: one(impl.warning_ledger([], records, as_of), warning_id="w1")["status"]
            for as_of in (T, T + HOUR - 1, T + HOUR, T + 2 * HOUR - 1, T + 2 * HOUR)
        }
        assert status == {
            T: "open",
            T + HOUR - 1: "open",
            T + HOUR: "acknowledged",
            T + 2 * HOUR - 1: "acknowledged",
            T + 2 * HOUR: "resolved",
        }

    def test_resolved_without_acknowledgement(self, impl: Impl) -> None:
        records = [raised("w1", T), transition("resolved", "w1", T + 90 * 60_000_000)]
        row = one(impl.warning_ledger([], records), warning_id="w1")
        assert (row["status"], row["acknowledged_at"], row["minutes_to_resolve"]) == (
            "resolved",
            None,
            90.0,
        )
        assert row["minutes_to_acknowledge"] is None

    def test_minutes_are_rounded_to_two_decimals(self, impl: Impl) -> None:
        records = [raised("w1", T), transition("acknowledged", "w1", T + 60_500_000)]
        assert (
            one(impl.warning_ledger([], records), warning_id="w1")["minutes_to_acknowledge"] == 1.01
        )

    def test_escalations_move_the_handling_level_up(self, impl: Impl) -> None:
        records = [
            raised("w1", T),
            escalated("w1", T + 24 * HOUR, "community", "street", "230102001000"),
            escalated("w1", T + 48 * HOUR, "street", "district", "230102000000"),
        ]
        now = one(impl.warning_ledger([], records), warning_id="w1")
        assert (
            now["handling_level"],
            now["handling_org_unit"],
            now["escalations"],
            now["highest_handling_level"],
        ) == ("district", "230102000000", 2, "district")
        then = one(impl.warning_ledger([], records, T + 24 * HOUR), warning_id="w1")
        assert (then["handling_level"], then["handling_org_unit"], then["escalations"]) == (
            "street",
            "230102001000",
            1,
        )

    def test_a_warning_raised_after_as_of_is_not_listed(self, impl: Impl) -> None:
        assert impl.warning_ledger([], [raised("w1", T)], T - 1) == []

    def test_district_filter_uses_the_warnings_org_unit(self, impl: Impl) -> None:
        records = [raised("w1", T), raised("w2", T, org_unit="230103002001")]
        assert [
            r["warning_id"] for r in impl.warning_ledger([], records, None, "230103000000")
        ] == ["w2"]
        assert [r["warning_id"] for r in impl.warning_ledger([], records, None, "230103")] == ["w2"]

    def test_rows_sort_by_raise_instant_then_id(self, impl: Impl) -> None:
        records = [raised("wb", T), raised("wa", T), raised("w0", T + 1), raised("wz", T - 1)]
        assert [r["warning_id"] for r in impl.warning_ledger([], records)] == [
            "wz",
            "wa",
            "wb",
            "w0",
        ]

    def test_a_resent_record_counts_once(self, impl: Impl) -> None:
        esc = escalated("w1", T + DAY, "community", "street", "230102001000")
        rows = impl.warning_ledger([], [raised("w1", T), esc, dict(esc)])
        assert one(rows, warning_id="w1")["escalations"] == 1


# --- household ledger ----------------------------------------------------------


class TestHouseholdLedger:
    def test_org_unit_is_the_owner_set_by_the_first_processed_event(self, impl: Impl) -> None:
        events = [
            ev("followup.recorded", T, org_unit="230102001002", offset=9, action="x"),
            ev("followup.recorded", T, org_unit="230102001003", offset=3, action="x"),
            ev("followup.recorded", T - DAY, org_unit="230102001004", offset=20),
        ]
        row = one(impl.household_ledger(events, []), household_id="H1")
        assert row["org_unit"] == "230102001003"  # processing order, not time
        assert row["first_seen_at"] == format_instant(T - DAY)
        assert (row["registered"], row["flags"], row["next_visit_due"]) == (False, [], None)
        assert row["visit_overdue"] is False

    def test_the_first_registration_sets_owner_and_flags(self, impl: Impl) -> None:
        events = [
            ev("followup.recorded", T, org_unit="230102001002", offset=1, action="x"),
            ev(REG, T, org_unit="230102001003", offset=2, flags=["rural"], notes="p"),
            # a later one from the owner replaces the flags; from elsewhere: nothing
            ev(REG, T + DAY, org_unit="230102001003", offset=3, flags=["single_parent"]),
            ev(REG, T + 2 * DAY, org_unit="230102001004", offset=4, flags=["key_household"]),
        ]
        row = one(impl.household_ledger(events, []), household_id="H1")
        assert (row["org_unit"], row["registered"]) == ("230102001003", True)
        assert row["flags"] == ["single_parent"]
        assert row["next_visit_due"] == format_instant(T + DAY + 180 * DAY)
        before = one(impl.household_ledger(events, [], T), household_id="H1")
        assert before["flags"] == ["rural"]

    def test_a_valid_transfer_moves_the_owner_and_the_district(self, impl: Impl) -> None:
        away = "230103001001"
        events = [
            ev(REG, T, org_unit=COMMUNITY, offset=1, flags=[]),
            ev(MOVED, T + DAY, org_unit="230102001002", offset=2, to_org_unit=away),  # not owner
            ev(MOVED, T + DAY, org_unit=COMMUNITY, offset=3, to_org_unit=COMMUNITY),  # same
            ev(MOVED, T + DAY, org_unit=COMMUNITY, offset=4, to_org_unit="230103001000"),  # street
        ]
        assert one(impl.household_ledger(events, []), household_id="H1")["org_unit"] == COMMUNITY
        events.append(ev(MOVED, T + 2 * DAY, org_unit=COMMUNITY, offset=5, to_org_unit=away))
        assert impl.household_ledger(events, [], None, "230102") == []
        (row,) = impl.household_ledger(events, [], None, "230103")
        assert (row["org_unit"], row["district"]) == (away, "230103000000")
        (before,) = impl.household_ledger(events, [], T + DAY, "230102")
        assert before["org_unit"] == COMMUNITY

    def test_next_visit_due_is_the_latest_registration_or_later_visit_plus_cadence(
        self, impl: Impl
    ) -> None:
        events = [
            ev(VISIT, T + 5 * DAY, offset=1, indicators=[]),  # processed before registration
            ev(REG, T, offset=2, flags=["key_household"]),
            ev(VISIT, T + 2 * DAY, offset=3, indicators=[]),
        ]
        due = T + 2 * DAY + 30 * DAY
        row = one(impl.household_ledger(events, [], due), household_id="H1")
        assert row["next_visit_due"] == format_instant(due)
        assert row["visit_overdue"] is False  # due < as_of, strictly
        late = one(impl.household_ledger(events, [], due + 1), household_id="H1")
        assert late["visit_overdue"] is True
    def test_open_warnings_count_unresolved_and_rank_red_over_orange_over_yellow(
        self, impl: Impl
    ) -> None:
        records = [
            raised("w1", T, "yellow"),
            raised("w2", T, "orange"),
            raised("w3", T, "red"),
            transition("acknowledged", "w2", T + 1),
            transition("resolved", "w3", T + 2),
        ]
        row = one(impl.household_ledger([ev("mediation.opened", T)], records), household_id="H1")
        assert (row["open_warnings"], row["highest_open_level"]) == (2, "orange")
        before = one(
            impl.household_ledger([ev("mediation.opened", T)], records, T + 1), household_id="H1"
        )
        assert (before["open_warnings"], before["highest_open_level"]) == (3, "red")

    def test_no_open_warning_means_zero_and_none(self, impl: Impl) -> None:
        row = one(impl.household_ledger([ev("mediation.opened", T)], []), household_id="H1")
        assert (row["open_warnings"], row["highest_open_level"]) == (0, None)
        assert (row["last_visit_at"], row["last_followup_at"]) == (None, None)
        assert row["indicators"] == []

    def test_indicators_are_every_one_ever_observed_sorted(self, impl: Impl) -> None:
        events = [
            ev("screening.visit_recorded", T, indicators=["threats", "isolation"]),
            ev(
                "screening.visit_recorded",
                T + DAY,
                indicators=["alcohol_abuse", "threats"],
                notes="personal",
            ),
        ]
        row = one(impl.household_ledger(events, []), household_id="H1")
        assert row["indicators"] == ["alcohol_abuse", "isolation", "threats"]
        assert row["last_visit_at"] == format_instant(T + DAY)

    @pytest.mark.parametrize("days", [30, 90])
    def test_petition_windows_include_both_ends(self, impl: Impl, days: int) -> None:
        now = T + 100 * DAY
        events = [
            ev("petition.received", now - days * DAY - 1),  # just outside
            ev("petition.received", now - days * DAY),  # lower edge: counted
            ev("petition.received", now),  # upper edge: counted
            ev("petition.received", now + 1),
        ]  # after as_of: not seen at all
        row = one(impl.household_ledger(events, [], now), household_id="H1")
        assert row[f"petitions_{days}d"] == 2

    def test_without_as_of_now_is_the_latest_instant_in_events_or_lifecycle(
        self, impl: Impl
    ) -> None:
        events = [ev("petition.received", T)]
        alone = one(impl.household_ledger(events, []), household_id="H1")
        assert alone["petitions_30d"] == 1
        later = [raised("w9", T + 30 * DAY + 1, household="H2")]
        moved = one(impl.household_ledger(events, later), household_id="H1")
        assert moved["petitions_30d"] == 0 and moved["petitions_90d"] == 1

    def test_a_household_is_listed_once_it_has_an_event(self, impl: Impl) -> None:
        events = [
            ev("followup.recorded", T, household="H1", action="phone_call"),
            ev("followup.recorded", T + DAY, household="H2", action="phone_call"),
        ]
        assert [r["household_id"] for r in impl.household_ledger(events, [], T)] == ["H1"]
        assert [r["household_id"] for r in impl.household_ledger(events, [])] == ["H1", "H2"]


# --- guardianship ledger -------------------------------------------------------


def gap(at: int, child: str = "c1", **kw: Any) -> dict[str, Any]:
    return ev("child.guardianship_gap_recorded", at, child_ref=child, reason="x", **kw)


class TestGuardianshipLedger:
    def test_overdue_once_seven_days_pass_without_care(self, impl: Impl) -> None:
        events = [gap(T)]
        due = T + 7 * DAY
        assert (
            one(impl.guardianship_ledger(events, [], due - 1), child_ref="c1")["overdue"] is False
        )
        row = one(impl.guardianship_ledger(events, [], due), child_ref="c1")
        assert row == {
            "household_id": "H1",
            "child_ref": "c1",
            "org_unit": COMMUNITY,
            "district": "230102000000",
            "gap_recorded_at": format_instant(T),
            "restored_at": None,
            "last_followup_at": None,
            "overdue": True,
        }

    @pytest.mark.parametrize(
        ("followup_at", "overdue"),
        [
            (T - 1, True),  # before the gap: does not count
            (T, False),  # at the gap
            (T + 7 * DAY, False),  # last instant of the window
            (T + 7 * DAY + 1, True),  # too late
        ],
    )
    def test_followup_window_is_gap_to_gap_plus_seven_days_inclusive(
        self, impl: Impl, followup_at: int, overdue: bool
    ) -> None:
        events = [gap(T), ev("followup.recorded", followup_at, action="home_visit")]
        row = one(impl.guardianship_ledger(events, [], T + 10 * DAY), child_ref="c1")
        assert row["overdue"] is overdue
        assert row["last_followup_at"] == format_instant(followup_at)

    def test_any_restoration_in_the_household_is_care_but_restored_at_is_per_child(
        self, impl: Impl
    ) -> None:
        events = [
            gap(T, "c1"),
            gap(T, "c2"),
            ev("child.guardianship_restored", T + DAY, child_ref="c2"),
        ]
        rows = impl.guardianship_ledger(events, [], T + 8 * DAY)
        c1, c2 = one(rows, child_ref="c1"), one(rows, child_ref="c2")
        assert (c1["overdue"], c1["restored_at"]) == (False, None)
        assert (c2["overdue"], c2["restored_at"]) == (False, format_instant(T + DAY))

    def test_latest_gap_counts_and_earlier_restorations_are_forgotten(self, impl: Impl) -> None:
        events = [
            gap(T - 20 * DAY),
            ev("child.guardianship_restored", T - 10 * DAY, child_ref="c1"),
            gap(T, org_unit="230102001009"),
        ]
        row = one(impl.guardianship_ledger(events, [], T + 7 * DAY), child_ref="c1")
        assert row["gap_recorded_at"] == format_instant(T)
        assert row["org_unit"] == "230102001009"
        assert row["restored_at"] is None and row["overdue"] is True

    def test_restoration_at_the_gap_instant_counts(self, impl: Impl) -> None:
        events = [
            gap(T),
            ev("child.guardianship_restored", T, child_ref="c1"),
            ev("child.guardianship_restored", T + 3 * DAY, child_ref="c1"),
        ]
        row = one(impl.guardianship_ledger(events, []), child_ref="c1")
        assert row["restored_at"] == format_instant(T + 3 * DAY)
        assert row["overdue"] is False  # now = T + 3 d: not yet due either

    def test_a_gap_after_as_of_is_not_listed(self, impl: Impl) -> None:
        assert impl.guardianship_ledger([gap(T)], [], T - 1) == []


# --- privacy -------------------------------------------------------------------


def test_an_erased_household_shows_its_key_and_keeps_its_counts(impl: Impl) -> None:
    secret = SECRET
    events = [ev("petition.received", T, household="H7"), gap(T, household="H7")]
    records = [raised("w1", T, household="H7")]
    label = "erased:" + household_key(secret, "H7")
    kw: dict[str, Any] = {"erased": {"H7"}, "pseudonym_secret": secret}
    assert one(impl.warning_ledger(events, records, **kw), warning_id="w1")["household_id"] == label
    row = one(impl.household_ledger(events, records, **kw), household_id=label)
    assert (row["open_warnings"], row["petitions_30d"]) == (1, 1)
    assert (
        one(impl.guardianship_ledger(events, records, **kw), child_ref="c1")["household_id"]
        == label
    )
    with pytest.raises(ValueError):
        impl.warning_ledger(events, records, erased={"H7"})


# --- coverage ledger -------------------------------------------------------------


def registered(household: str, org_unit: str = COMMUNITY, *flags: str) -> dict[str, Any]:
    return ev(REG, T, household=household, org_unit=org_unit, flags=list(flags))


class TestCoverageLedger:
    def test_one_row_per_community_owning_a_registered_household(self, impl: Impl) -> None:
        other = "230102001002"
        events = [
            registered("H1"),
            registered("H2", COMMUNITY, "key_household"),
            registered("H3", other),
            ev(VISIT, T + DAY, household="H1", indicators=[]),
            ev(VISIT, T + DAY, household="H2", indicators=[]),
            ev(VISIT, T + DAY, household="H9", org_unit="230102001003", indicators=[]),
        ]
        rows = impl.coverage_ledger(events, [], T + 10 * DAY)
        assert rows == [
            {"community": COMMUNITY, "district": "230102000000", "registered": 2,
             "covered": 2, "key_registered": 1, "key_covered": 1, "coverage": 1.0},
            {"community": other, "district": "230102000000", "registered": 1,
             "covered": 0, "key_registered": 0, "key_covered": 0, "coverage": 0.0},
        ]  # H9 is not registered: its community owns nobody registered

    @pytest.mark.parametrize(("flags", "days"), [((), 180), (("key_household",), 30)])
    def test_covered_means_a_visit_within_the_cadence_both_ends_included(
        self, impl: Impl, flags: tuple[str, ...], days: int
    ) -> None:
        events = [registered("H1", COMMUNITY, *flags), ev(VISIT, T, indicators=[])]
        for as_of, covered in ((T, 1), (T + days * DAY, 1), (T + days * DAY + 1, 0)):
            (row,) = impl.coverage_ledger(events, [], as_of)
            assert row["covered"] == covered, as_of

    def test_coverage_rounds_to_four_decimals_and_follows_the_owner(self, impl: Impl) -> None:
        away = "230103001001"
        events = [registered(f"H{n}") for n in range(3)]
        events.append(ev(VISIT, T, household="H0", indicators=[]))
        (row,) = impl.coverage_ledger(events, [], T)
        assert row["coverage"] == 0.3333
        events.append(ev(MOVED, T + DAY, household="H1", to_org_unit=away))
        rows = impl.coverage_ledger(events, [], T + DAY)
        assert [(r["community"], r["registered"], r["coverage"]) for r in rows] == [
            (COMMUNITY, 2, 0.5), (away, 1, 0.0)]
        assert [r["community"] for r in impl.coverage_ledger(events, [], None, "230103")] == [
            away]


def test_owners_agree_with_the_engines_ownership_fold() -> None:
    """The reference's ownership is written from DESIGN apart from the engine's
    (``rules.ownership``); on the v2 sample stream (registrations, transfers between
    districts) both give every household the same owner and registration."""
    from events.sample import sample_events
    from rules.ownership import next_owner

    events = sample_events(4000, seed=11, v2=True)
    folded: dict[str, tuple[str | None, bool]] = {}
    for offset, e in enumerate(events, start=1):
        e["offset"] = offset
        owner, registered = folded.get(e["household_id"], (None, False))
        step = next_owner(owner, registered, e["type"], e["org_unit"], e["data"])
        folded[e["household_id"]] = (step.owner, step.registered)
    assert any(e["type"] == "household.transferred" for e in events)
    rows = reference.household_ledger(events, [])
    assert {r["household_id"]: (r["org_unit"], r["registered"]) for r in rows} == folded
