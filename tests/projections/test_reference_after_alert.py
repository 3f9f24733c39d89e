"""After the alert, case by case — the specification of the referral ledger, the warning
ledger's ``risk`` / ``reopened`` and reopened status, and the timeliness figures.

Each case runs on ``projections.reference`` and on the SQL over a chdb warehouse loaded
with exactly those rows (``after_alert_contract`` then compares the two on randomized
streams, on every backend).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from events.instants import format_instant
from projections import reference, timeliness
from projections.warehouse.chdb_backend import ChdbWarehouse
from tests.projections.test_reference_ledgers import (
    COMMUNITY,
    DAY,
    HOUR,
    SECRET,
    SqlLedgers,
    T,
    escalated,
    ev,
    one,
    raised,
    transition,
)

STREET = COMMUNITY[:9] + "000"
DISTRICT = COMMUNITY[:6] + "000000"
_seq = iter(range(10_000, 1_000_000))


class SqlAfterAlert(SqlLedgers):
    def referral_ledger(self, *args: Any, **kw: Any) -> list[dict[str, Any]]:
        return self._run("referral_ledger", *args, **kw)

    def timeliness(self, events: Any, records: Any, as_of: int | None = None,
                   district: str | None = None, *, scope_prefix: str = "") -> dict[str, Any]:
        wh = self.warehouse
        wh.reset()
        wh.write_events(events)
        wh.write_lifecycle(records)
        scope = None if not scope_prefix else scope_prefix.ljust(12, "0")
        return timeliness.timeliness(wh, as_of, district, scope_org_unit=scope)


@pytest.fixture(scope="module")
def chdb_after(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlAfterAlert]:
    warehouse = ChdbWarehouse(tmp_path_factory.mktemp("after") / "wh", SECRET)
    warehouse.ensure_schema()
    try:
        yield SqlAfterAlert(warehouse)
    finally:
        warehouse.close()


@pytest.fixture(params=["reference", "chdb-sql"])
def impl(request: pytest.FixtureRequest) -> Any:
    if request.param == "reference":
        return reference
    return request.getfixturevalue("chdb_after")


def record(kind: str, wid: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"seq": next(_seq), "type": kind, "warning_id": wid, "household_id": "H1",
            "at": format_instant(at), **fields}


def referral(kind: str, rid: str, at: int, agency: str = "police", **fields: Any
             ) -> dict[str, Any]:
    return {"seq": next(_seq), "type": kind, "referral_id": rid, "household_id": "H1",
            "agency": agency, "at": format_instant(at), **fields}


def renumber(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log order = list order."""
    return [{**r, "seq": n} for n, r in enumerate(records, start=1)]


# --- warning ledger: risk, reopened, the reopened status --------------------------------


def reopened_story() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [ev("petition.received", T)]
    records = renumber([
        raised("w1", T, level="orange"),
        record("warning.acknowledged", "w1", T + HOUR),
        record("warning.assessed", "w1", T + HOUR, risk="high"),
        record("warning.resolved", "w1", T + DAY),
        # reopened at the very instant of its resolution
        record("warning.reopened", "w1", T + DAY, handling_org_unit=COMMUNITY),
        escalated("w1", T + DAY + 72 * HOUR, "community", "street", STREET),
        record("warning.assessed", "w1", T + 4 * DAY, risk="medium"),
        transition("acknowledged", "w1", T + 5 * DAY),
        transition("resolved", "w1", T + 6 * DAY),
    ])
    return events, records


def test_a_reopened_warning_is_open_again_until_resolved_again(impl: Any) -> None:
    events, records = reopened_story()

    def row(as_of: int) -> dict[str, Any]:
        return one(impl.warning_ledger(events, records, as_of), warning_id="w1")

    before = row(T + DAY)  # the reopening has the resolution's instant: both known
    assert (before["status"], before["reopened"], before["resolved_at"]) == ("open", 1, None)
    assert before["acknowledged_at"] == format_instant(T + HOUR)  # the first one stays
    assert before["risk"] == "high"  # a reopening keeps the last assessment
    assert (before["handling_level"], before["handling_org_unit"]) == ("community", COMMUNITY)
    up = row(T + 4 * DAY)
    assert (up["status"], up["handling_level"], up["escalations"]) == ("open", "street", 1)
    assert up["risk"] == "medium"
    assert row(T + 5 * DAY)["status"] == "acknowledged"
    done = row(T + 6 * DAY)
    assert (done["status"], done["resolved_at"]) == ("resolved", format_instant(T + 6 * DAY))
    assert done["minutes_to_resolve"] == 6 * 24 * 60
    assert done["highest_handling_level"] == "street"


def test_before_its_reopening_a_warning_is_resolved(impl: Any) -> None:
    events, records = reopened_story()
    records = [r for r in records if r["type"] != "warning.reopened"] + [
        record("warning.reopened", "w1", T + 2 * DAY, handling_org_unit=COMMUNITY)]
    early = one(impl.warning_ledger(events, records, T + DAY + HOUR), warning_id="w1")
    assert (early["status"], early["reopened"]) == ("resolved", 0)
    assert early["resolved_at"] == format_instant(T + DAY)


def test_an_unassessed_warning_has_no_risk(impl: Any) -> None:
    rows = impl.warning_ledger([ev("petition.received", T)], [raised("w2", T)])
    assert (rows[0]["risk"], rows[0]["reopened"]) == (None, 0)


# --- referral ledger ---------------------------------------------------------------


def test_referrals_from_sent_to_closed(impl: Any) -> None:
    events = [ev("petition.received", T), ev("referral.sent", T)]
    records = renumber([
        referral("referral.sent", "r1", T, basis="consent", warning_id=None),
        referral("referral.sent", "r2", T + HOUR, agency="court", basis="legal_duty",
                 warning_id="w9"),
        referral("referral.accepted", "r1", T + 72 * HOUR),  # on the edge: in time
        referral("referral.closed", "r1", T + 5 * DAY, outcome="service_provided"),
    ])
    r1, r2 = impl.referral_ledger(events, records, T + 72 * HOUR + HOUR)
    assert r1 == {
        "referral_id": "r1", "household_id": "H1", "org_unit": COMMUNITY,
        "district": DISTRICT, "agency": "police", "basis": "consent", "warning_id": None,
        "sent_at": format_instant(T), "answered_at": format_instant(T + 72 * HOUR),
        "status": "accepted", "outcome": None, "minutes_to_answer": 4320.0, "overdue": False,
    }
    # overdue once sent_at + 72 h < as_of, not at the instant itself
    assert (r2["status"], r2["overdue"], r2["warning_id"]) == ("sent", False, "w9")
    later = impl.referral_ledger(events, records, T + 73 * HOUR + 1)
    assert later[1]["overdue"] is True
    closed = impl.referral_ledger(events, records)[0]
    assert (closed["status"], closed["outcome"]) == ("closed", "service_provided")
    assert impl.referral_ledger(events, records, T - 1) == []


def test_a_referral_belongs_to_the_households_owner_as_of_then(impl: Any) -> None:
    away = "230103001001"
    events = [ev("petition.received", T),
              ev("household.transferred", T + DAY, to_org_unit=away, reason="moved")]
    records = [referral("referral.sent", "r1", T, basis="emergency", warning_id=None)]
    assert impl.referral_ledger(events, records, T + HOUR)[0]["org_unit"] == COMMUNITY
    assert impl.referral_ledger(events, records, None, "230103")[0]["district"] == (
        "230103000000")
    assert impl.referral_ledger(events, records, T + HOUR, "230103") == []


# --- timeliness ----------------------------------------------------------------------


def test_acknowledged_within_the_sla_of_the_level_it_was_at(impl: Any) -> None:
    events = [ev("petition.received", T)]
    records = renumber([
        raised("in-time", T, level="red"),
        transition("acknowledged", "in-time", T + 24 * HOUR),  # the deadline's instant
        raised("at-street", T, level="red"),
        escalated("at-street", T + 24 * HOUR, "community", "street", STREET),
        transition("acknowledged", "at-street", T + 30 * HOUR),
        raised("pending", T + 40 * HOUR, level="red"),
        raised("resolved", T, level="red"),
        transition("resolved", "resolved", T + 2 * HOUR),  # a resolution stops the clock
    ])
    got = impl.timeliness(events, records, T + 48 * HOUR)["districts"][DISTRICT]
    ack = got["acknowledged_within_sla"]
    assert (ack["due"], ack["within"], ack["share"]) == (3, 3, 1.0)
    assert ack["by_level"]["community"] == {"due": 3, "within": 2, "share": 0.6667}
    assert ack["by_level"]["street"] == {"due": 1, "within": 1, "share": 1.0}
    # 48 h after the raises: due, none assessed; "pending" is within its 48 h still
    assert got["assessed_within_48h"]["due"] == 3
    assert got["assessed_within_48h"]["within"] == 0


def test_unacknowledged_at_city_past_its_sla_is_late(impl: Any) -> None:
    records = renumber([
        raised("w", T, level="red"),
        escalated("w", T + 24 * HOUR, "community", "street", STREET),
        escalated("w", T + 48 * HOUR, "street", "district", DISTRICT),
        escalated("w", T + 72 * HOUR, "district", "city", COMMUNITY[:4] + "0" * 8),
    ])
    got = impl.timeliness([ev("petition.received", T)], records, T + 96 * HOUR)
    ack = got["districts"][DISTRICT]["acknowledged_within_sla"]
    assert (ack["due"], ack["within"]) == (1, 0)
    assert [ack["by_level"][lv]["due"] for lv in ("community", "street", "district", "city")
            ] == [1, 1, 1, 1]
    early = impl.timeliness([ev("petition.received", T)], records, T + 95 * HOUR)
    assert early["districts"][DISTRICT]["acknowledged_within_sla"]["due"] == 0


def test_referrals_gaps_petitions_and_coverage(impl: Any) -> None:
    events = [
        ev("household.registered", T - DAY, flags=["key_household"]),
        ev("screening.visit_recorded", T, indicators=[]),
        ev("petition.received", T, channel="hotline_12338", category="other", urgent=False),
        ev("petition.received", T, channel="walk_in", category="other", urgent=False),
        ev("child.guardianship_gap_recorded", T, child_ref="c1"),
        ev("followup.recorded", T + 7 * DAY, action="home_visit"),  # the window's last instant
        ev("child.guardianship_gap_recorded", T + 10 * DAY, child_ref="c2"),
    ]
    records = renumber([
        referral("referral.sent", "r1", T, basis="emergency", warning_id=None),
        referral("referral.declined", "r1", T + 73 * HOUR),
        referral("referral.sent", "r2", T, agency="shelter", basis="emergency", warning_id=None),
    ])
    got = impl.timeliness(events, records, T + 17 * DAY)["districts"][DISTRICT]
    assert got["referrals_answered_within_72h"] == {
        "due": 2, "within": 0, "share": 0.0,
        "by_agency": {"police": {"due": 1, "within": 0, "share": 0.0},
                      "shelter": {"due": 1, "within": 0, "share": 0.0}},
    }
    assert got["guardianship_followed_up_within_7d"] == {"due": 2, "within": 1, "share": 0.5}
    assert got["petitions"] == {"total": 2, "by_channel": {"hotline_12338": 1, "walk_in": 1},
                                "by_category": {"other": 2}}
    assert got["screening_coverage"] == {"registered": 1, "covered": 1, "key_registered": 1,
                                         "key_covered": 1, "coverage": 1.0}
    assert impl.timeliness(events, records, T + 17 * DAY, scope_prefix="230199")[
        "districts"] == {}
