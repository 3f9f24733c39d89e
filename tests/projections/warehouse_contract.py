"""The contract every Warehouse backend must pass (chdb, ClickHouse over HTTP, …).

Use it by subclassing in a ``test_*.py`` module and providing a ``warehouse``
fixture that yields a fresh, empty backend built with ``CONTRACT_SECRET``
(schema not yet created) and closes it afterwards::

    class TestMyBackend(WarehouseContract):
        @pytest.fixture
        def warehouse(self, tmp_path): ...

The class name does not start with ``Test``, so pytest only collects it
through such subclasses.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from events.instants import MICROS_PER_DAY, format_instant, parse_instant, to_datetime
from events.orgunits import city_of, district_of, is_within, street_of
from privacy.pseudonym import household_key
from projections import analytics, kpis, ledger_sql, ledgers, now, now_coverage, reference, schema
from projections.warehouse import sqlbase
from projections.warehouse.base import QueryResult, Warehouse
from projections.warehouse.sqlbase import SqlWarehouse
from tests.projections.after_alert_contract import AfterAlertContract
from tests.projections.after_alert_data import make_after_alert_dataset
from tests.projections.datagen import PERSONAL_MARK, T0, Dataset, _Gen, make_dataset

CONTRACT_SECRET = b"contract-secret"
LEDGERS: dict[str, tuple[Callable[..., list[dict[str, Any]]], Callable[..., list[dict[str, Any]]]]]
LEDGERS = {
    "warnings": (ledgers.warning_ledger, reference.warning_ledger),
    "households": (ledgers.household_ledger, reference.household_ledger),
    "guardianship": (ledgers.guardianship_ledger, reference.guardianship_ledger),
    "coverage": (ledgers.coverage_ledger, reference.coverage_ledger),
}
SEEDS = (1, 2, 3)


def load(warehouse: Warehouse, data: Dataset, batch: int = 97) -> None:
    """Write like the sink does: several batches, events before lifecycle."""
    for i in range(0, len(data.events), batch):
        warehouse.write_events(data.events[i : i + batch])
    for i in range(0, len(data.lifecycle), batch):
        warehouse.write_lifecycle(data.lifecycle[i : i + batch])


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query(f"SELECT count() AS n FROM {table} FINAL").rows[0][0])


def expected(
    data: Dataset,
    name: str,
    as_of: int | None = None,
    district: str | None = None,
    erased: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    ref = LEDGERS[name][1]
    return ref(
        data.events,
        data.lifecycle,
        as_of,
        district,
        erased=erased,
        pseudonym_secret=CONTRACT_SECRET,
    )


def assert_pages_after_moves(
    wh: Warehouse, data: Dataset, name: str, rows_by_org_unit: dict[str, int]
) -> None:
    """Ledger ``name`` "now", district by district (each org unit's district, with the
    rows expected there): pages that force reading more candidates after some moved
    away are slices of the reference ledger, and the unpaged ledger is all of it."""
    sql = LEDGERS[name][0]
    for org_unit, rows in rows_by_org_unit.items():
        district = district_of(org_unit)
        full = expected(data, name, None, district)
        assert len(full) == rows, (name, district)
        for limit, offset in ((1, 0), (4, 3), (10, 0), (5, 8), (50, 0)):
            got = sql(wh, None, district, limit=limit, offset=offset)
            assert got == full[offset : offset + limit], (name, district, limit, offset)
        assert sql(wh, None, district) == full, (name, district)


def python_kpis(data: Dataset, scope: str, as_of: int | None) -> dict[str, Any]:
    """The KPIs computed the straightforward way: in Python over the reference warning
    ledger and the (deduplicated) case.resolved events, as ``Services.kpis`` did."""
    rows = [
        r
        for r in reference.warning_ledger(data.events, data.lifecycle, as_of)
        if is_within(r["org_unit"], scope)
    ]
    by_level = {lv: Counter[str]() for lv in ("yellow", "orange", "red")}
    for r in rows:
        by_level[r["level"]][r["status"]] += 1
    acks = [r["minutes_to_acknowledge"] for r in rows if r["minutes_to_acknowledge"] is not None]
    per_household = Counter(r["household_id"] for r in rows)
    weekly: dict[str, Counter[str]] = {}
    for r in rows:
        year, week, _ = to_datetime(parse_instant(r["raised_at"])).isocalendar()
        weekly.setdefault(r["district"], Counter())[f"{year}-W{week:02d}"] += 1
    cases = {
        e["event_id"]: e
        for e in sorted(data.events, key=lambda e: e["offset"])
        if e["type"] == "case.resolved"
        and (as_of is None or parse_instant(e["occurred_at"]) <= as_of)
        and is_within(e["org_unit"], scope)
    }
    resolutions = Counter(e["data"]["resolution"] for e in cases.values())
    total = sum(resolutions.values())
    return {
        "scope": scope,
        "as_of": format_instant(as_of) if as_of is not None else None,
        "warnings": len(rows),
        "open_by_level": {lv: c["open"] for lv, c in by_level.items()},
        "unresolved_by_level": {lv: c["open"] + c["acknowledged"] for lv, c in by_level.items()},
        "escalated_to": dict(
            Counter(r["highest_handling_level"] for r in rows if r["escalations"])
        ),
        "median_minutes_to_acknowledge": statistics.median(acks) if acks else None,
        "repeat_households": sum(1 for n in per_household.values() if n > 1),
        "weekly_raised_by_district": {
            d: dict(sorted(c.items())) for d, c in sorted(weekly.items())
        },
        "cases_resolved": total,
        "share_resolved_locally": round(resolutions["resolved_locally"] / total, 4)
        if total
        else None,
    }


def scopes_of(data: Dataset) -> list[str]:
    """A city, a district, a street and a community that hold data, and a foreign unit."""
    unit = next(r["org_unit"] for r in data.lifecycle if r["type"] == "warning.raised")
    return [city_of(unit), district_of(unit), street_of(unit), unit, "230199000000"]


class WarehouseContract(AfterAlertContract):
    """Backend-independent behaviour of a Warehouse."""

    secret = CONTRACT_SECRET

    @pytest.fixture
    def warehouse(self) -> Iterator[Warehouse]:
        raise NotImplementedError("a backend's test class provides this fixture")

    @pytest.fixture
    def wh(self, warehouse: Warehouse) -> Warehouse:
        warehouse.ensure_schema()
        return warehouse

    # --- schema and plumbing -------------------------------------------------

    def test_ensure_schema_is_idempotent(self, warehouse: Warehouse) -> None:
        warehouse.ensure_schema()
        warehouse.ensure_schema()
        tables = warehouse.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"
        )
        names = {row[0] for row in tables.rows}
        assert {"events", "lifecycle", "household_directory"} <= names
        assert {"daily_event_counts", "daily_lifecycle_counts"} <= names

    def test_query_returns_columns_and_rows(self, wh: Warehouse) -> None:
        result = wh.query("SELECT 1 AS one, 'x' AS s, CAST(NULL AS Nullable(Int64)) AS n")
        assert isinstance(result, QueryResult)
        assert result.columns == ("one", "s", "n")
        assert result.rows == [(1, "x", None)]
        assert result.dicts() == [{"one": 1, "s": "x", "n": None}]

    def test_bad_sql_raises(self, wh: Warehouse) -> None:
        with pytest.raises(Exception, match="(?i)unknown|missing|exist"):
            wh.query("SELECT no_such_column FROM events")

    def test_empty_warehouse_has_empty_ledgers(self, wh: Warehouse) -> None:
        for name, (sql_ledger, _) in LEDGERS.items():
            assert sql_ledger(wh) == [], name
            assert sql_ledger(wh, as_of=parse_instant("2026-01-01T00:00:00Z")) == [], name
        counts = analytics.daily_counts(wh)
        assert counts.events == [] and counts.lifecycle == []

    # --- round trips ---------------------------------------------------------

    def test_events_round_trip(self, wh: Warehouse) -> None:
        data = make_dataset(7, households=6)
        load(wh, data)
        got = wh.query(
            "SELECT event_id, type, schema_version, occurred_at, "
            "toUnixTimestamp64Micro(occurred_at) AS occurred_us, "
            "toUnixTimestamp64Micro(recorded_at) AS recorded_us, org_unit, street, district, "
            "household_key, actor, indicators, channel, category, urgent, action, outcome, "
            "mediation_id, child_ref, resolution, warning_id, `offset` "
            "FROM events FINAL ORDER BY `offset`"
        ).dicts()
        assert len(got) == len(data.events)
        for row, event in zip(got, sorted(data.events, key=lambda e: e["offset"]), strict=True):
            d = event["data"]
            occurred = parse_instant(event["occurred_at"])
            recorded = event["recorded_at"]
            assert row == {
                "event_id": event["event_id"],
                "type": event["type"],
                "schema_version": 1,
                "occurred_at": to_datetime(occurred),
                "occurred_us": occurred,
                "recorded_us": None if recorded is None else parse_instant(recorded),
                "org_unit": event["org_unit"],
                "street": street_of(event["org_unit"]),
                "district": district_of(event["org_unit"]),
                "household_key": household_key(CONTRACT_SECRET, event["household_id"]),
                "actor": event["actor"],
                "indicators": d.get("indicators", []),
                **{
                    k: d.get(k)
                    for k in (
                        "channel",
                        "category",
                        "urgent",
                        "action",
                        "outcome",
                        "mediation_id",
                        "child_ref",
                        "resolution",
                        "warning_id",
                    )
                },
                "offset": event["offset"],
            }

    def test_fields_outside_the_catalog_are_ignored(self, wh: Warehouse) -> None:
        event = {
            "offset": 1,
            "event_id": "e-x",
            "type": "warning.resolved",
            "schema_version": 2,
            "occurred_at": "2026-05-01T12:00:00.5+08:00",
            "recorded_at": None,
            "org_unit": "230102001001",
            "household_id": "H-x",
            "actor": None,
            "data": {
                "warning_id": "w-1",
                "by": "chair",
                "note": PERSONAL_MARK,
                "future_field": {"nested": [1, 2]},
                "indicators": None,
            },
        }
        wh.write_events([event])
        row = wh.query(
            "SELECT type, schema_version, toUnixTimestamp64Micro(occurred_at) AS us, "
            "indicators, warning_id, resolution FROM events FINAL"
        ).dicts()
        assert row == [
            {
                "type": "warning.resolved",
                "schema_version": 2,
                "us": parse_instant("2026-05-01T04:00:00.5Z"),
                "indicators": [],
                "warning_id": "w-1",
                "resolution": None,
            }
        ]

    def test_lifecycle_round_trip_carries_warning_attributes(self, wh: Warehouse) -> None:
        data = make_dataset(8, households=12)
        raises = {r["warning_id"]: r for r in data.lifecycle if r["type"] == "warning.raised"}
        first = [r for r in data.lifecycle if r["type"] == "warning.raised"]
        wh.write_lifecycle(first)  # the raises arrive in an earlier batch ...
        wh.write_lifecycle([r for r in data.lifecycle if r["type"] != "warning.raised"])
        got = wh.query(
            "SELECT seq, type, warning_id, rule_id, household_key, level, org_unit, district, "
            "handling_level, handling_org_unit, from_level, to_level, "
            "toUnixTimestamp64Micro(at) AS at_us FROM lifecycle FINAL ORDER BY seq"
        ).dicts()
        assert [r["seq"] for r in got] == [r["seq"] for r in data.lifecycle]
        for row, rec in zip(got, data.lifecycle, strict=True):
            raise_ = raises[rec["warning_id"]]  # ... and still annotate the later rows
            handling = rec.get("to_level") or rec.get("handling_level")
            assert row == {
                "seq": rec["seq"],
                "type": rec["type"],
                "warning_id": rec["warning_id"],
                "rule_id": raise_["rule_id"],
                "household_key": household_key(CONTRACT_SECRET, rec["household_id"]),
                "level": raise_["level"],
                "org_unit": raise_["org_unit"],
                "district": district_of(raise_["org_unit"]),
                "handling_level": handling,
                "handling_org_unit": rec.get("handling_org_unit"),
                "from_level": rec.get("from_level"),
                "to_level": rec.get("to_level"),
                "at_us": parse_instant(rec["at"]),
            }

    def test_duplicate_writes_are_idempotent(self, wh: Warehouse) -> None:
        data = make_dataset(9)
        load(wh, data, batch=50)
        before = {name: sql(wh) for name, (sql, _) in LEDGERS.items()}
        replay = Dataset(list(data.events), list(data.lifecycle))
        random.Random(9).shuffle(replay.events)  # re-sent in other batches and order
        load(wh, replay, batch=33)
        load(wh, Dataset(data.events[:10], data.lifecycle[:10]))
        assert count(wh, "events") == len(data.events)
        assert count(wh, "lifecycle") == len(data.lifecycle)
        households = {e["household_id"] for e in data.events}
        assert count(wh, "household_directory") == len(households)
        for name, (sql, _) in LEDGERS.items():
            assert sql(wh) == before[name] == expected(data, name), name

    def test_events_given_lazily_are_read_once_in_slices_and_all_written(
        self, wh: Warehouse, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlbase, "EVENT_SLICE_ROWS", 7)
        data = make_dataset(11)
        taken: list[int] = []

        def parsed() -> Iterator[dict[str, Any]]:
            for n, event in enumerate(data.events):
                taken.append(n)
                yield event

        wh.write_events(parsed())
        assert taken == list(range(len(data.events))) and len(data.events) > 7 * 3
        assert count(wh, "events") == len(data.events)
        households = {e["household_id"] for e in data.events}
        assert count(wh, "household_directory") == len(households)
        wh.write_events(iter([]))
        assert count(wh, "events") == len(data.events)

    def test_no_personal_text_anywhere(self, wh: Warehouse) -> None:
        data = make_dataset(10)
        assert any(PERSONAL_MARK in str(e["data"]) for e in data.events)
        load(wh, data)
        columns = wh.query(
            "SELECT c.table, c.name FROM system.columns AS c "
            "JOIN system.tables AS t ON c.database = t.database AND c.table = t.name "
            "WHERE c.database = currentDatabase() AND t.engine != 'View'"
        ).rows
        assert len(columns) > 30
        mark = PERSONAL_MARK.split("-张")[0]
        household_ids = sorted({e["household_id"] for e in data.events})
        for table, column in columns:
            ident = f"toString(`{column}`)"
            hits = wh.query(f"SELECT count() FROM {table} WHERE position({ident}, '{mark}') > 0")
            assert hits.rows[0][0] == 0, f"personal text in {table}.{column}"
            if table == "household_directory":
                continue
            ids = ", ".join("'" + h.replace("'", "\\'") + "'" for h in household_ids)
            leaked = wh.query(f"SELECT count() FROM {table} WHERE {ident} IN ({ids})")
            assert leaked.rows[0][0] == 0, f"household_id in analytics column {table}.{column}"
        assert not {"notes", "note"} & {name for _, name in columns}
        assert {t for t, name in columns if name == "household_id"} == {"household_directory"}

    # --- ledgers -------------------------------------------------------------

    @pytest.mark.parametrize("seed", SEEDS)
    def test_ledgers_equal_reference(self, wh: Warehouse, seed: int) -> None:
        data = make_dataset(seed)
        load(wh, data)
        rng = random.Random(seed)
        districts = [None, *sorted({district_of(e["org_unit"]) for e in data.events})[:2]]
        for as_of in [None, *data.as_of_candidates(rng, 10)]:
            for district in districts:
                for name, (sql, _) in LEDGERS.items():
                    got = sql(wh, as_of, district)
                    assert got == expected(data, name, as_of, district), (name, as_of, district)

    def test_ledgers_accept_six_digit_district(self, wh: Warehouse) -> None:
        data = make_dataset(4)
        load(wh, data)
        code = district_of(data.events[0]["org_unit"])
        for name, (sql, _) in LEDGERS.items():
            assert sql(wh, None, code[:6]) == sql(wh, None, code) != [], name
            with pytest.raises(ValueError):
                sql(wh, None, "23010")

    def test_as_of_slices_equal_ledgers_of_the_data_known_then(self, wh: Warehouse) -> None:
        data = make_dataset(5)
        rng = random.Random(5)
        slices = data.as_of_candidates(rng, 4)
        load(wh, data)
        full = {(t, n): sql(wh, t) for t in slices for n, (sql, _) in LEDGERS.items()}
        for t in slices:
            wh.reset()
            known = data.until(t)
            load(wh, known)
            for name, (sql, _) in LEDGERS.items():
                assert sql(wh, t) == full[(t, name)] == expected(known, name, t), (name, t)

    def test_erased_household_keeps_its_counts(self, wh: Warehouse) -> None:
        data = make_dataset(6)
        load(wh, data)
        victim = data.lifecycle[0]["household_id"]  # one with a warning
        before = {name: sql(wh) for name, (sql, _) in LEDGERS.items()}
        wh.erase_household(victim)
        label = "erased:" + household_key(CONTRACT_SECRET, victim)
        erased = frozenset({victim})
        for name, (sql, _) in LEDGERS.items():
            after = sql(wh)
            assert after == expected(data, name, erased=erased), name
            assert len(after) == len(before[name]), name
            assert all(r.get("household_id") != victim for r in after), name
        warnings = ledgers.warning_ledger(wh)
        assert any(r["household_id"] == label for r in warnings)
        households = ledgers.household_ledger(wh)
        assert [r for r in households if r["household_id"] == label][0]["open_warnings"] == sum(
            1 for r in warnings if r["household_id"] == label and r["status"] != "resolved"
        )
        assert count(wh, "events") == len(data.events)

    def test_daily_counts_equal_reference(self, wh: Warehouse) -> None:
        data = make_dataset(11)
        load(wh, data)
        for as_of in [None, *data.as_of_candidates(random.Random(11), 3)]:
            got = analytics.daily_counts(wh, as_of)
            ref_events, ref_lifecycle = reference.daily_counts(data.events, data.lifecycle, as_of)
            assert got.events == ref_events
            assert got.lifecycle == ref_lifecycle
        assert sum(r["events"] for r in analytics.daily_counts(wh).events) == len(data.events)

    # --- lifecycle of the store ----------------------------------------------

    def test_reset_drops_data_and_keeps_schema(self, wh: Warehouse) -> None:
        data = make_dataset(12)
        load(wh, data)
        wh.reset()
        for table in ("events", "lifecycle", "household_directory"):
            assert count(wh, table) == 0, table
        for name, (sql, _) in LEDGERS.items():
            assert sql(wh) == [], name
        wh.ensure_schema()
        load(wh, data)
        assert ledgers.warning_ledger(wh) == expected(data, "warnings")

    # --- KPIs ------------------------------------------------------------------

    @pytest.mark.parametrize("seed", SEEDS)
    def test_kpis_equal_python_over_the_reference_ledger(self, wh: Warehouse, seed: int) -> None:
        data = make_dataset(seed, households=60)
        load(wh, data)
        for as_of in [None, *data.as_of_candidates(random.Random(seed), 4)]:
            for scope in scopes_of(data):
                got = kpis.kpis(wh, scope, as_of)
                assert got == python_kpis(data, scope, as_of), (scope, as_of)
        city = kpis.kpis(wh, scopes_of(data)[0], None)
        assert city["warnings"] > 0 and city["repeat_households"] > 0
        assert city["cases_resolved"] > 0 and 0 < city["share_resolved_locally"] < 1
        assert city["median_minutes_to_acknowledge"] is not None and city["escalated_to"]

    def test_reopened_warnings_count_as_open_again_in_kpis_and_households(
        self, wh: Warehouse
    ) -> None:
        """A reopened warning is open (or acknowledged) again until its new cycle is
        resolved: the KPIs and the household ledger's ``open_warnings`` say so as the
        warning ledger does, now and as of instants before, between and after reopenings,
        on the pre-aggregate path, the raw path and a page of households."""
        for seed in (1, 2):
            wh.reset()
            data = make_after_alert_dataset(seed)
            load(wh, data)
            rows = expected(data, "warnings")
            assert any(r["reopened"] and r["status"] == "open" for r in rows)
            assert any(r["reopened"] and r["status"] == "resolved" for r in rows)
            reopens = sorted(parse_instant(r["at"]) for r in data.lifecycle
                             if r["type"] == "warning.reopened")
            instants = [None, reopens[0] - 1, reopens[len(reopens) // 2], reopens[-1] + 1,
                        *data.as_of_candidates(random.Random(seed), 3)]
            for as_of in instants:
                for scope in scopes_of(data):
                    got = kpis.kpis(wh, scope, as_of)
                    assert got == python_kpis(data, scope, as_of), (seed, scope, as_of)
                households = expected(data, "households", as_of)
                assert ledgers.household_ledger(wh, as_of) == households, (seed, as_of)
                for district in sorted({r["district"] for r in households})[:2]:
                    page = ledgers.household_ledger(wh, as_of, district, limit=4, offset=1)
                    assert page == expected(data, "households", as_of, district)[1:5]
            city = python_kpis(data, scopes_of(data)[0], None)
            v1_open = sum(1 for r in rows if r["status"] != "resolved" and not r["reopened"])
            assert sum(city["unresolved_by_level"].values()) > v1_open

    def test_kpis_of_an_empty_warehouse(self, wh: Warehouse) -> None:
        data = Dataset()
        for as_of in (None, parse_instant("2026-03-01T00:00:00Z")):
            assert kpis.kpis(wh, "230100000000", as_of) == python_kpis(data, "230100000000", as_of)

    def test_kpis_count_resent_rows_once(self, wh: Warehouse) -> None:
        data = make_dataset(13, households=40)
        load(wh, data, batch=50)
        load(wh, Dataset(list(reversed(data.events)), list(reversed(data.lifecycle))), batch=31)
        scope = scopes_of(data)[0]
        assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None)

    def test_kpis_exact_over_a_replays_unmerged_parts_and_after_compaction(
        self, wh: Warehouse
    ) -> None:
        """A replay leaves each KPI pre-aggregate in overlapping parts (background merges
        are stopped so they stay): the KPIs must not depend on how rows are split into
        parts, nor change when the bulk path compacts them (``SqlWarehouse.compact``)."""
        assert isinstance(wh, SqlWarehouse)
        data = make_dataset(23, households=60)
        wh._execute("SYSTEM STOP MERGES")
        try:
            load(wh, data, batch=41)
            load(wh, Dataset(list(reversed(data.events)), list(reversed(data.lifecycle))), 23)
            assert all(wh.active_parts()[t] > 1 for t in schema.COMPACTED_AFTER_BULK)
            for scope in scopes_of(data):
                assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None), scope
            wh._execute("SYSTEM START MERGES")
            wh.compact()
            assert all(wh.active_parts()[t] == 1 for t in schema.COMPACTED_AFTER_BULK)
            for scope in scopes_of(data):
                assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None), scope
        finally:
            wh._execute("SYSTEM START MERGES")

    def test_kpis_leak_no_household_or_warning_id(self, wh: Warehouse) -> None:
        data = make_dataset(14)
        load(wh, data)
        text = str(kpis.kpis(wh, scopes_of(data)[0], None))
        for e in data.events:
            assert e["household_id"] not in text
        for r in data.lifecycle:
            assert r["warning_id"] not in text

    # --- paging ----------------------------------------------------------------

    def test_ledger_pages_are_slices_of_the_ledger(self, wh: Warehouse) -> None:
        data = make_dataset(15, households=80)
        load(wh, data)
        wh.erase_household(data.lifecycle[0]["household_id"])  # an erased label sorts too
        district = district_of(data.events[0]["org_unit"])
        as_of = data.as_of_candidates(random.Random(15), 3)[-1]
        for name, (sql, _) in LEDGERS.items():
            for when, where in ((None, None), (as_of, district), (None, district)):
                full = sql(wh, when, where)
                # coverage: a row per community, and the data has 4 per district
                assert len(full) > (2 if name == "coverage" else 4), (name, when, where)
                pages = [(1, 0), (5, 3), (None, 4), (10_000, 0), (3, len(full)), (0, 0)]
                for limit, offset in pages:
                    got = sql(wh, when, where, limit=limit, offset=offset)
                    end = None if limit is None else offset + limit
                    assert got == full[offset:end], (name, when, where, limit, offset)
                walked: list[dict[str, Any]] = []
                while len(walked) < len(full):
                    walked += sql(wh, when, where, limit=4, offset=len(walked))
                assert walked == full, name

    def test_negative_page_bounds_are_refused(self, wh: Warehouse) -> None:
        load(wh, make_dataset(16))
        for sql, _ in LEDGERS.values():
            with pytest.raises(ValueError, match="negative"):
                sql(wh, limit=-1)
            with pytest.raises(ValueError, match="negative"):
                sql(wh, offset=-2)

    # --- pre-aggregates (the "now" path) ----------------------------------------

    def _facts(self, wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
        columns = (
            "warning_id, w_rule, w_level, w_key, w_org, raised_us, ack_us, resolved_us, "
            "escalations, w_handling, w_handling_org, w_highest"
        )
        return wh.query(f"SELECT {columns} FROM {sql} ORDER BY warning_id").rows

    @pytest.mark.parametrize("seed", SEEDS)
    def test_pre_aggregated_facts_equal_the_raw_aggregate(self, wh: Warehouse, seed: int) -> None:
        data = make_dataset(seed, households=50)
        load(wh, data, batch=40)
        load(wh, Dataset(data.events[::3], data.lifecycle[::2]), batch=23)  # re-sent rows
        latest = now.latest_instant(wh)
        assert latest is not None
        for scope in [None, *scopes_of(data)]:
            prefix = None if scope is None else kpis.scope_prefix(scope)
            raw = self._facts(wh, ledger_sql.warning_facts(latest, prefix))
            for orphans in (False, True):
                assert self._facts(wh, now.warning_facts(prefix, orphans)) == raw, prefix
            assert raw or scope == scopes_of(data)[-1], scope  # only the foreign unit is empty

    def test_transitions_written_before_their_raise_still_count(self, wh: Warehouse) -> None:
        data = make_dataset(17, households=40)
        raises = [r for r in data.lifecycle if r["type"] == "warning.raised"]
        transitions = [r for r in data.lifecycle if r["type"] != "warning.raised"]
        load(wh, Dataset(data.events, transitions))  # no raise known yet: district ''
        load(wh, Dataset([], raises))
        assert now.has_orphans(wh)
        for district in [None, district_of(raises[0]["org_unit"])]:
            full = expected(data, "warnings", None, district)
            assert ledgers.warning_ledger(wh, None, district) == full
            assert ledgers.warning_ledger(wh, None, district, limit=3, offset=2) == full[2:5]
        assert ledgers.household_ledger(wh) == expected(data, "households")
        homes = expected(data, "households")
        assert ledgers.household_ledger(wh, limit=6, offset=2) == homes[2:8]
        scope = scopes_of(data)[0]
        assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None)

    def test_now_path_serves_as_of_at_or_after_the_latest_instant(self, wh: Warehouse) -> None:
        data = make_dataset(18)
        load(wh, data)
        latest = now.latest_instant(wh)
        assert latest is not None
        assert now.resolve(wh, None) == (latest, False)
        assert now.resolve(wh, latest) == (latest, False)
        assert now.resolve(wh, latest - 1) == (latest - 1, None)
        for as_of in (latest, latest + 10**9):
            for name, (sql, _) in LEDGERS.items():
                assert sql(wh, as_of) == expected(data, name, as_of), name

    def test_pre_aggregates_are_backfilled_when_added_to_a_warehouse(self, wh: Warehouse) -> None:
        data = make_dataset(19)
        load(wh, data)
        before = ledgers.warning_ledger(wh)
        assert isinstance(wh, SqlWarehouse)  # both backends; DDL goes through _execute
        for aggregate in schema.AGGREGATE_DEFINITIONS:  # a warehouse from before them
            for view, _, _ in aggregate.feeds:
                wh._execute(f"DROP VIEW {view}")
            wh._execute(f"DROP TABLE {aggregate.table}")
        wh.ensure_schema()
        assert count(wh, schema.WARNING_STATE) > 0
        assert ledgers.warning_ledger(wh) == before == expected(data, "warnings")
        assert ledgers.household_ledger(wh) == expected(data, "households")
        assert count(wh, schema.GUARDIANSHIP_STATE) > 0 and count(wh, schema.HOUSEHOLD_CARE) > 0
        assert ledgers.guardianship_ledger(wh) == expected(data, "guardianship")
        for table in (schema.HOUSEHOLD_BY_KEY, schema.HOUSEHOLD_WARNINGS, schema.WARNING_KPIS):
            assert count(wh, table) > 0, table
        district = district_of(data.events[0]["org_unit"])
        homes = expected(data, "households", None, district)
        assert ledgers.household_ledger(wh, None, district, limit=3, offset=1) == homes[1:4]
        for scope in scopes_of(data):
            assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None), scope
        wh.ensure_schema()  # idempotent: no second backfill needed, none harmful
        assert ledgers.warning_ledger(wh) == before
        assert kpis.kpis(wh, scopes_of(data)[0], None) == python_kpis(
            data, scopes_of(data)[0], None
        )

    def test_now_pages_count_resent_rows_once(self, wh: Warehouse) -> None:
        data = make_dataset(21, households=60)
        load(wh, data, batch=37)
        replay = Dataset(list(reversed(data.events)), list(reversed(data.lifecycle)))
        load(wh, replay, batch=29)  # the same rows again, in other batches
        district = district_of(data.events[0]["org_unit"])
        for where in (None, district):
            care = expected(data, "guardianship", None, where)
            assert care and any(r["overdue"] for r in care), where
            assert any(r["restored_at"] for r in care), where
            assert ledgers.guardianship_ledger(wh, None, where) == care, where
            assert ledgers.guardianship_ledger(wh, None, where, limit=4, offset=1) == care[1:5]
            homes = expected(data, "households", None, where)
            assert any(r["open_warnings"] > 1 for r in homes), where
            for offset in range(0, len(homes), 7):
                page = ledgers.household_ledger(wh, None, where, limit=7, offset=offset)
                assert page == homes[offset : offset + 7], (where, offset)

    def test_reset_empties_the_pre_aggregates(self, wh: Warehouse) -> None:
        load(wh, make_dataset(20))
        wh.reset()
        for table in schema.AGGREGATES:
            assert count(wh, table) == 0, table
        assert now.latest_instant(wh) is None

    def test_household_page_skips_households_that_moved_away(self, wh: Warehouse) -> None:
        """The page's candidates (households with an event in the district or moved
        there) are checked a few at a time: here the first 30 in page order were
        transferred to another district, so the first check finds nothing and more
        candidates are read."""
        gen = _Gen(31)
        home, away = "230102001001", "230103001001"
        for n in range(40):
            household = f"HH-M-{n:03d}"
            gen.data.events.append(gen.envelope(household, home, "followup.recorded", T0, {}))
            later = T0 + (n + 1) * MICROS_PER_DAY
            if n < 30:  # moved: transferred to the other district
                moved = {"to_org_unit": away, "reason": "moved"}
                gen.data.events.append(
                    gen.envelope(household, home, "household.transferred", later, moved)
                )

        data = gen.finish()
        load(wh, data, batch=7)
        load(wh, data, batch=11)  # re-sent
        assert_pages_after_moves(wh, data, "households", {home: 10, away: 30})

    # --- catalog v2: ownership and coverage ----------------------------------------

    def test_register_fields_are_stored_coded_only(self, wh: Warehouse) -> None:
        data = make_dataset(32)
        load(wh, data)
        moves = [e for e in data.events if e["type"].startswith("household.")]
        assert {e["type"] for e in moves} == {"household.registered", "household.transferred"}
        rows = wh.query(
            "SELECT event_id, flags, to_org_unit FROM events FINAL "
            "WHERE type IN ('household.registered', 'household.transferred')"
        ).rows
        stored = {r[0]: (list(r[1]), r[2]) for r in rows}
        for e in moves:
            flags = e["data"].get("flags") or []
            assert stored[e["event_id"]] == (flags, e["data"].get("to_org_unit")), e

    def test_ownership_ledgers_now_equal_reference_after_resends(self, wh: Warehouse) -> None:
        """The "now" path (``household_owner``, arrivals in ``household_state``) over
        re-sent rows in other batches, city and district, paged."""
        data = make_dataset(33, households=70)
        load(wh, data, batch=23)
        load(wh, Dataset(list(reversed(data.events)), list(data.lifecycle)), batch=31)
        targets = {e["data"]["to_org_unit"] for e in data.events
                   if e["type"] == "household.transferred"}
        districts = sorted({district_of(t) for t in targets} | {
            district_of(e["org_unit"]) for e in data.events})
        for where in (None, *districts):
            for name in ("households", "coverage"):
                full = expected(data, name, None, where)
                assert LEDGERS[name][0](wh, None, where) == full, (name, where)
                page = LEDGERS[name][0](wh, None, where, limit=3, offset=1)
                assert page == full[1:4], (name, where)
        homes = expected(data, "households")
        assert any(r["registered"] for r in homes) and not all(r["registered"] for r in homes)
        assert any(r["visit_overdue"] for r in homes)
        assert any(r["covered"] for r in expected(data, "coverage"))

    def test_coverage_now_folds_the_rare_households_in_full(self, wh: Warehouse) -> None:
        """Re-registered households with a transfer, or whose last registration came
        from another community, leave the one-scan path (``projections.now_coverage``)
        and are folded from every move; the ledger still equals the reference."""
        data = make_dataset(35, households=90)
        load(wh, data, batch=29)
        latest = now.latest_instant(wh)
        assert latest is not None
        common = wh.query(now_coverage.counts_sql(None, latest)).dicts()
        assert now_coverage.has_rare(common)
        for where in (None, *sorted({district_of(e["org_unit"]) for e in data.events})):
            assert ledgers.coverage_ledger(wh, None, where) == expected(data, "coverage",
                                                                       None, where)

    def test_events_of_an_older_warehouse_get_the_register_columns(
        self, wh: Warehouse
    ) -> None:
        """A warehouse created before registrations existed: ``ensure_schema`` adds
        the columns (empty on its rows), and new events fill them."""
        assert isinstance(wh, SqlWarehouse)
        old = [c for c in schema.EVENT_COLUMNS if c.name not in schema.ADDED_EVENT_COLUMNS]
        for aggregate in schema.AGGREGATE_DEFINITIONS:
            for view, source, _ in aggregate.feeds:
                if source == schema.EVENTS:
                    wh._execute(f"DROP VIEW {view}")
        wh._execute("DROP TABLE events")
        columns = ", ".join(f"{schema.quote_ident(c.name)} {c.sql_type}" for c in old)
        wh._execute(f"CREATE TABLE events ({columns}) "
                    "ENGINE = ReplacingMergeTree(`offset`) ORDER BY event_id")
        wh.ensure_schema()
        data = make_dataset(34)
        load(wh, data)
        for name in ("households", "coverage"):
            assert LEDGERS[name][0](wh) == expected(data, name), name

    def test_warning_row_is_the_ledger_row(self, wh: Warehouse) -> None:
        data = make_dataset(32, households=40)
        raises = [r for r in data.lifecycle if r["type"] == "warning.raised"]
        transitions = [r for r in data.lifecycle if r["type"] != "warning.raised"]
        load(wh, Dataset(data.events, transitions[::2]), batch=13)  # before their raise
        load(wh, Dataset([], raises + transitions), batch=17)
        load(wh, Dataset([], list(reversed(data.lifecycle))), batch=19)  # re-sent
        wh.erase_household(raises[0]["household_id"])
        full = ledgers.warning_ledger(wh)
        erased = frozenset({raises[0]["household_id"]})
        assert full == expected(data, "warnings", erased=erased) and len(full) == len(raises)
        assert any(r["escalations"] for r in full) and any(r["resolved_at"] for r in full)
        assert any(r["household_id"].startswith("erased:") for r in full if r["household_id"])
        for row in full:
            assert ledgers.warning_row(wh, row["warning_id"]) == row, row["warning_id"]
        assert ledgers.warning_row(wh, "no-such-warning") is None
        assert ledgers.warning_row(wh, "it's a 'quoted' id") is None

    def test_warning_row_needs_the_raise(self, wh: Warehouse) -> None:
        data = make_dataset(33, households=20)
        transition = next(r for r in data.lifecycle if r["type"] != "warning.raised")
        load(wh, Dataset(data.events, [transition]))  # its raise is not written yet
        assert ledgers.warning_row(wh, transition["warning_id"]) is None
        assert ledgers.warning_ledger(wh) == []

    def test_repeat_households_per_scope_count_resent_raises_once(self, wh: Warehouse) -> None:
        """``household_warnings`` keeps the least and greatest warning id per (scope,
        household): a re-sent raise (same id) never makes a household repeat."""
        data = make_dataset(34, households=50)
        single: dict[str | None, dict[str, Any]] = {}
        for r in data.lifecycle:
            if r["type"] == "warning.raised":
                single.setdefault(r.get("household_id"), r)
        once = list(single.values())  # one warning per household
        load(wh, Dataset(data.events, once))
        load(wh, Dataset([], once * 2), batch=5)  # the same raises again
        for scope in scopes_of(data):
            prefix = kpis.scope_prefix(scope)
            assert kpis.kpis(wh, scope, None)["repeat_households"] == 0, scope
            sql = (
                f"SELECT countIf(first_warning != last_warning) FROM {schema.HOUSEHOLD_WARNINGS} "
                f"FINAL WHERE scope_key = '{prefix}'"
            )
            assert wh.query(sql).rows[0][0] == 0
        load(wh, data)
        for scope in scopes_of(data):
            assert kpis.kpis(wh, scope, None) == python_kpis(data, scope, None), scope

    def test_guardianship_page_skips_pairs_whose_latest_gap_moved(self, wh: Warehouse) -> None:
        """Like the household page: the first 30 pairs in page order had a later gap in
        another district, so more candidates are read until the page is full."""
        gen = _Gen(35)
        home, away = "230102001001", "230103001001"
        gap = "child.guardianship_gap_recorded"
        for n in range(40):
            household = f"HH-G-{n:03d}"
            gen.data.events.append(gen.envelope(household, home, gap, T0, {"child_ref": "c1"}))
            if n < 30:
                later = T0 + (n + 1) * MICROS_PER_DAY
                child = {"child_ref": "c1"}
                gen.data.events.append(gen.envelope(household, away, gap, later, child))
            if n % 3 == 0:  # restored, later than the first gap
                restored = T0 + MICROS_PER_DAY // 2
                gen.data.events.append(
                    gen.envelope(
                        household,
                        home,
                        "child.guardianship_restored",
                        restored,
                        {"child_ref": "c1"},
                    )
                )
        data = gen.finish()
        load(wh, data, batch=7)
        load(wh, data, batch=11)  # re-sent
        assert_pages_after_moves(wh, data, "guardianship", {home: 10, away: 30})

    def test_iso_week_of_an_instant_matches_python(self, wh: Warehouse) -> None:
        """The KPIs' weekly trend groups by week number, then labels it: the label must
        be the ISO year and week of every instant, at year ends and before 1970 too."""
        instants = [
            parse_instant(text)
            for text in (
                "2024-12-29T23:59:59.999999Z",
                "2024-12-30T00:00:00Z",
                "2025-12-28T12:00:00Z",
                "2025-12-29T00:00:00Z",
                "2026-01-01T00:00:00Z",
                "2027-01-03T23:59:59Z",
                "2027-01-04T00:00:00Z",
                "2020-12-31T00:00:00Z",
                "2021-01-03T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "1969-12-28T23:59:59.999999Z",
                "1969-12-29T00:00:00Z",
                "1960-06-15T08:00:00Z",
            )
        ]
        values = ", ".join(f"toInt64({us})" for us in instants)
        label = kpis.iso_week_label(kpis.iso_week_index("us"))
        sql = f"SELECT us, {label} AS week FROM (SELECT arrayJoin([{values}]) AS us)"
        got = dict(wh.query(sql).rows)
        for us in instants:
            year, week, _ = to_datetime(us).isocalendar()
            assert got[us] == f"{year}-W{week:02d}", format_instant(us)
