"""Dashboard query latency on a chdb warehouse holding 10M events.

``python -m bench.analytics [--events N] [--runs R] [--other-runs R2]
[--optimize] [--replay-parts N] [--path DIR]`` builds synthetic rows directly as Arrow tables in the
warehouse's schema (``projections.schema``; the JSON path would take hours for
10M), loads them into a chdb warehouse (a temporary directory, or ``--path``,
kept and reused) together with lifecycle rows (one warning per 20 events:
raised, then acknowledged / escalated / resolved), the register sweep (70% of
households registered first, a tenth of them key households, 2% of those
transferred: part of the N events) and the household directory, then reports
p50/p95 in milliseconds for district 230102:

* what a dashboard asks, ``runs`` times each (the < 100 ms target): the first
  page (50 rows) of each ledger, the coverage ledger of a district chair and of the
  city, and the KPIs of both, all "now" (``as_of`` None, served by the pre-aggregates), and one
  warning's ledger row by id (``ledgers.warning_row``);
* the rest, ``other_runs`` times each: the same pages and KPIs at a past
  ``as_of`` (the exact raw path), whole district ledgers, and the daily counts.

``--replay-parts N`` then re-sends every row in N batches, as a replay after a crash
does, stops background merges (so the state measured is the replay's unmerged
parts, not a merge in progress), measures again, compacts what a bulk path compacts
(``SqlWarehouse.compact``, timed) and measures a third time.

Rows go in through the warehouse's Arrow insert path (``_insert``: the same
``INSERT … SELECT FROM Python(table)`` every write uses), skipping only the
envelope → Arrow conversion. One chdb path per process: run this on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR, parse_instant
from events.orgunits import HARBIN_DISTRICTS
from projections import analytics, kpis, ledgers, schema
from projections.warehouse.chdb_backend import ChdbWarehouse

START = parse_instant("2024-01-01T00:00:00Z")
SPAN_US = 730 * MICROS_PER_DAY
DISTRICT = "230102"  # 道里区
INDICATORS = (
    "marital_conflict", "threats", "domestic_violence_signs", "injury_observed",
    "sexual_violence_signs", "child_neglect", "guardianship_gap", "intellectual_disability",
    "economic_hardship", "alcohol_abuse", "isolation",
)
TYPES = (
    ("screening.visit_recorded", 0.40), ("petition.received", 0.18),
    ("followup.recorded", 0.18), ("mediation.opened", 0.04), ("mediation.concluded", 0.04),
    ("child.guardianship_gap_recorded", 0.03), ("child.guardianship_restored", 0.02),
    ("case.resolved", 0.06), ("warning.acknowledged", 0.03), ("warning.resolved", 0.02),
)
CHANNELS = ("hotline_12338", "walk_in", "letter", "online", "wechat", "referral")
CATEGORIES = ("marriage_family_dispute", "domestic_violence", "sexual_assault",
              "child_rights", "property_rights", "other")
ACTIONS = ("home_visit", "phone_call", "legal_aid", "psych_counselling", "police_referral",
           "shelter")
OUTCOMES = ("reconciled", "agreement", "failed", "referred")
RESOLUTIONS = ("resolved_locally", "referred", "closed_no_action")
RULES = (("violence-injury", "red"), ("repeat-petitions", "orange"),
         ("escalating-dispute", "orange"), ("vulnerable-person-harm", "red"),
         ("guardianship-no-followup", "yellow"), ("mediation-failed", "yellow"))
SLA_US = {"red": 24 * MICROS_PER_HOUR, "orange": 72 * MICROS_PER_HOUR,
          "yellow": 168 * MICROS_PER_HOUR}
TS = pa.timestamp("us", tz="UTC")


class City:
    """Districts × streets × communities and a community per household."""

    def __init__(self, households: int, rng: np.random.Generator) -> None:
        districts = sorted(HARBIN_DISTRICTS)
        self.communities = [
            f"{d[:6]}{s:03d}{c:03d}" for d in districts for s in range(1, 9) for c in range(1, 11)
        ]
        self.streets = [u[:9] + "000" for u in self.communities]
        self.districts = [u[:6] + "000000" for u in self.communities]
        self.community_of = rng.integers(0, len(self.communities), households)


def _strings(values: tuple[str, ...] | list[str], index: np.ndarray,
             mask: np.ndarray | None = None) -> pa.Array:
    """``values[index]`` as a plain string column (``mask`` True → null)."""
    dictionary = pa.array(values, type=pa.string())
    indices = pa.array(index.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(numbers).cast(pa.string()), "")


def event_chunk(
    first: int, n: int, city: City, keys: pa.Array, rng: np.random.Generator
) -> pa.Table:
    """``n`` events (offsets first..first+n-1) in ``schema.EVENT_COLUMNS`` order."""
    offsets = np.arange(first, first + n, dtype=np.uint64)
    households = rng.integers(0, len(keys), n)
    community = city.community_of[households]
    kinds = rng.choice(len(TYPES), n, p=[w for _, w in TYPES])
    names = [t for t, _ in TYPES]
    occurred = START + rng.integers(0, SPAN_US, n)
    late = rng.random(n) < 0.05
    recorded = occurred + rng.integers(0, 3 * MICROS_PER_DAY, n)

    def only(kind: str) -> np.ndarray:
        return kinds != names.index(kind)  # mask: True where the field is null

    visit = kinds == names.index("screening.visit_recorded")
    lengths = np.where(visit, rng.integers(0, 4, n), 0)
    list_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = _strings(INDICATORS, rng.integers(0, len(INDICATORS), int(list_offsets[-1])))
    indicators = pa.ListArray.from_arrays(pa.array(list_offsets), flat)
    mediation = (kinds != names.index("mediation.opened")) & only("mediation.concluded")
    child = only("child.guardianship_gap_recorded") & only("child.guardianship_restored")
    command = only("warning.acknowledged") & only("warning.resolved")
    columns: dict[str, pa.Array] = {
        "event_id": _ids("ev-", offsets),
        "type": _strings(names, kinds),
        "schema_version": pa.array(np.ones(n, dtype=np.uint16)),
        "occurred_at": pa.array(occurred, type=TS),
        "recorded_at": pa.array(recorded, type=TS, mask=~late),
        "org_unit": _strings(city.communities, community),
        "street": _strings(city.streets, community),
        "district": _strings(city.districts, community),
        "household_key": keys.take(pa.array(households)),
        "actor": _ids("cadre-", rng.integers(0, 5000, n)),
        "indicators": indicators,
        "channel": _strings(CHANNELS, rng.integers(0, 6, n), only("petition.received")),
        "category": _strings(CATEGORIES, rng.integers(0, 6, n), only("petition.received")),
        "urgent": pa.array(rng.random(n) < 0.1, mask=only("petition.received")),
        "action": _strings(ACTIONS, rng.integers(0, 6, n), only("followup.recorded")),
        "outcome": _strings(OUTCOMES, rng.integers(0, 4, n), only("mediation.concluded")),
        "mediation_id": pa.array(
            pc.if_else(pa.array(mediation), pa.scalar(None, pa.string()),
                       _ids("m-", households))),
        "child_ref": _strings(("c1", "c2"), rng.integers(0, 2, n), child),
        "resolution": _strings(RESOLUTIONS, rng.integers(0, 3, n), only("case.resolved")),
        "warning_id": pa.array(
            pc.if_else(pa.array(command), pa.scalar(None, pa.string()),
                       _ids("w-", rng.integers(0, max(n // 20, 1), n)))),
        "offset": pa.array(offsets),
        "flags": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                          pa.array([], type=pa.string())),
        "to_org_unit": pa.nulls(n, pa.string()),
    }
    target = schema.arrow_schema(schema.EVENTS)
    return pa.Table.from_arrays([columns.get(f.name, blank(n, f.type)) for f in target],
                                schema=target)


def blank(n: int, arrow_type: pa.DataType) -> pa.Array:
    """A column these synthetic events leave empty (the types that fill it are not
    generated): empty lists, or nulls."""
    if pa.types.is_list(arrow_type):
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                        pa.array([], type=arrow_type.value_type))
    return pa.nulls(n, arrow_type)


#: The register sweep (catalog v2): this share of households registered, this share
#: of those key households, this share of those transferred to another community.
REGISTERED, KEY, TRANSFERRED = 0.7, 0.1, 0.02
FLAGS = ("rural", "single_parent", "left_behind_children", "elderly_alone")


def register_chunk(first: int, city: City, keys: pa.Array, rng: np.random.Generator
                   ) -> pa.Table:
    """``household.registered`` for ``REGISTERED`` of the households (flags: key for
    ``KEY`` of them, one other flag for some) and ``household.transferred`` for
    ``TRANSFERRED`` of those, offsets from ``first`` on, at random instants."""
    households = np.nonzero(rng.random(len(keys)) < REGISTERED)[0]
    moved = households[rng.random(len(households)) < TRANSFERRED]
    n_reg, n = len(households), len(households) + len(moved)
    who = np.concatenate([households, moved])
    community = city.community_of[who]
    offsets = np.arange(first, first + n, dtype=np.uint64)
    key = rng.random(n_reg) < KEY
    other = rng.integers(-len(FLAGS), len(FLAGS), n_reg)  # < 0: no other flag
    lengths = np.concatenate([key.astype(np.int32) + (other >= 0), np.zeros(len(moved),
                                                                          dtype=np.int32)])
    flat: list[str] = []
    for k, o in zip(key, other, strict=True):
        flat += (["key_household"] if k else []) + ([FLAGS[o]] if o >= 0 else [])
    flags = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)),
        pa.array(flat, type=pa.string()))
    targets = rng.integers(0, len(city.communities), n)
    is_move = np.arange(n) >= n_reg
    types = ("household.registered", "household.transferred")
    nulls = pa.nulls(n, pa.string())
    columns: dict[str, pa.Array] = {
        "event_id": _ids("ev-", offsets),
        "type": _strings(types, is_move.astype(np.int32)),
        "schema_version": pa.array(np.ones(n, dtype=np.uint16)),
        "occurred_at": pa.array(START + rng.integers(0, SPAN_US, n), type=TS),
        "recorded_at": pa.array(np.zeros(n, dtype=np.int64), type=TS, mask=np.ones(n, bool)),
        "org_unit": _strings(city.communities, community),
        "street": _strings(city.streets, community),
        "district": _strings(city.districts, community),
        "household_key": keys.take(pa.array(who)),
        "actor": _ids("cadre-", rng.integers(0, 5000, n)),
        "indicators": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                               pa.array([], type=pa.string())),
        "flags": flags,
        "to_org_unit": _strings(city.communities, targets, ~is_move),
        "offset": pa.array(offsets),
    }
    for name in ("channel", "category", "urgent", "action", "outcome", "mediation_id",
                 "child_ref", "resolution", "warning_id"):
        columns[name] = nulls
    columns["urgent"] = pa.nulls(n, pa.bool_())
    target = schema.arrow_schema(schema.EVENTS)
    return pa.Table.from_arrays(
        [columns[f.name].cast(f.type) if f.name in columns else blank(n, f.type)
         for f in target], schema=target)


def lifecycle_table(
    warnings: int, city: City, keys: pa.Array, rng: np.random.Generator
) -> pa.Table:
    """Raised for every warning; ~60% acknowledged, ~40% resolved, ~25% escalated."""
    households = rng.integers(0, len(keys), warnings)
    community = city.community_of[households]
    rule = rng.integers(0, len(RULES), warnings)
    level = np.array([RULES[r][1] for r in range(len(RULES))])[rule]
    sla = np.vectorize(SLA_US.get)(level).astype(np.int64)
    raised = START + rng.integers(0, SPAN_US, warnings)
    ids = _ids("w-", np.arange(warnings))
    escalations = np.where(rng.random(warnings) < 0.25, rng.integers(1, 4, warnings), 0)
    acked = rng.random(warnings) < 0.6
    resolved = rng.random(warnings) < 0.4
    parts: list[dict[str, Any]] = []

    def part(mask: np.ndarray, kind: str, at: np.ndarray, handling: Any = None,
             handling_org: Any = None, from_level: Any = None, to_level: Any = None) -> None:
        idx = np.nonzero(mask)[0]
        parts.append({"idx": idx, "type": kind, "at": at[idx], "handling": handling,
                      "handling_org": handling_org, "from": from_level, "to": to_level})

    everyone = np.ones(warnings, dtype=bool)
    part(everyone, "warning.raised", raised, "community", "community")
    labels = ("community", "street", "district", "city")
    for step in (1, 2, 3):
        part(escalations >= step, "warning.escalated", raised + step * sla,
             labels[step], labels[step], labels[step - 1], labels[step])
    after = raised + (escalations + 1) * sla
    part(acked, "warning.acknowledged", raised + rng.integers(0, sla) + escalations * sla)
    part(resolved, "warning.resolved", after + rng.integers(0, 30 * MICROS_PER_DAY, warnings))
    tables = []
    seq = 1
    for p in parts:
        idx = p["idx"]
        m = len(idx)
        units = [city.communities, city.streets, city.districts, city.districts]
        org = _strings(city.communities, community[idx])
        handling_org = (
            _strings(units[labels.index(p["handling_org"])], community[idx])
            if p["handling_org"] else pa.nulls(m, pa.string())
        )
        raise_only = p["type"] == "warning.raised"
        cols: dict[str, pa.Array] = {
            "seq": pa.array(np.arange(seq, seq + m, dtype=np.uint64)),
            "type": pa.array([p["type"]] * m, type=pa.string()),
            "warning_id": ids.take(pa.array(idx)),
            "rule_id": _strings([r for r, _ in RULES], rule[idx]),
            "household_key": keys.take(pa.array(households[idx])),
            "level": pa.array(level[idx], type=pa.string()),
            "org_unit": org,
            "district": _strings(city.districts, community[idx]),
            "handling_level": pa.array([p["handling"]] * m, type=pa.string()),
            "handling_org_unit": handling_org if raise_only or p["to"] else pa.nulls(m),
            "from_level": pa.array([p["from"]] * m, type=pa.string()),
            "to_level": pa.array([p["to"]] * m, type=pa.string()),
            "at": pa.array(p["at"], type=TS),
        }
        seq += m
        target = schema.arrow_schema(schema.LIFECYCLE)
        tables.append(pa.Table.from_arrays(
            [cols[f.name].cast(f.type) for f in target], schema=target))
    return pa.concat_tables(tables)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(p95 * 1000, 1), "runs": len(ordered)}


CITY = "230100000000"
PAGE = 50


def dashboard_queries(as_of: int, district: str) -> dict[str, Callable[[ChdbWarehouse], Any]]:
    """What a dashboard asks: a page of each ledger and the KPIs, "now" (``as_of``
    None: the pre-aggregated path) — the < 100 ms p95 target."""
    chair = district + "000000"
    return {
        "warnings_page_now": lambda w: ledgers.warning_ledger(w, None, district, limit=PAGE),
        "households_page_now": lambda w: ledgers.household_ledger(w, None, district, limit=PAGE),
        "guardianship_page_now": lambda w: ledgers.guardianship_ledger(
            w, None, district, limit=PAGE
        ),
        "kpis_chair_now": lambda w: kpis.kpis(w, chair, None),
        "kpis_city_now": lambda w: kpis.kpis(w, CITY, None),
        "coverage_chair_now": lambda w: ledgers.coverage_ledger(w, None, district),
        "coverage_city_now": lambda w: ledgers.coverage_ledger(w, None, None),
        # what acknowledge / resolve look up (api Services.find_warning): one ledger row
        "warning_row": lambda w: [ledgers.warning_row(w, "w-250000")],
    }


def other_queries(as_of: int, district: str) -> dict[str, Callable[[ChdbWarehouse], Any]]:
    """Whole ledgers, a past ``as_of`` (the exact raw path) and the daily counts."""
    chair = district + "000000"
    return {
        "warnings_page_as_of": lambda w: ledgers.warning_ledger(w, as_of, district, limit=PAGE),
        "households_page_as_of": lambda w: ledgers.household_ledger(
            w, as_of, district, limit=PAGE
        ),
        "guardianship_page_as_of": lambda w: ledgers.guardianship_ledger(
            w, as_of, district, limit=PAGE
        ),
        "warnings_full_now": lambda w: ledgers.warning_ledger(w, None, district),
        "warnings_full_as_of": lambda w: ledgers.warning_ledger(w, as_of, district),
        "households_full_as_of": lambda w: ledgers.household_ledger(w, as_of, district),
        "guardianship_full_as_of": lambda w: ledgers.guardianship_ledger(w, as_of, district),
        "coverage_chair_as_of": lambda w: ledgers.coverage_ledger(w, as_of, district),
        "kpis_chair_as_of": lambda w: kpis.kpis(w, chair, as_of),
        "kpis_city_as_of": lambda w: kpis.kpis(w, CITY, as_of),
        "daily_counts_as_of": lambda w: analytics.daily_counts(w, as_of),
    }


def _time(warehouse: ChdbWarehouse, query: Callable[[ChdbWarehouse], Any], runs: int) -> Any:
    result = query(warehouse)  # warm-up (and row count)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        query(warehouse)
        samples.append(time.perf_counter() - started)
    rows = len(result) if isinstance(result, list) else (
        len(result.events) + len(result.lifecycle)
        if isinstance(result, analytics.DailyCounts) else 1)
    return {**_percentiles(samples), "rows": rows, "load_average": os.getloadavg()[0]}


def _timed(report: dict[str, Any], name: str, warehouse: ChdbWarehouse,
           query: Callable[[ChdbWarehouse], Any], runs: int) -> None:
    report[name] = _time(warehouse, query, runs)
    print(name, report[name], file=sys.stderr, flush=True)  # progress: runs take minutes


def measure(warehouse: ChdbWarehouse, runs: int, as_of: int, district: str = DISTRICT,
            other_runs: int = 5) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, query in dashboard_queries(as_of, district).items():
        _timed(report, name, warehouse, query, runs)
    if other_runs:
        for name, query in other_queries(as_of, district).items():
            _timed(report, name, warehouse, query, other_runs)
    return report


def load(warehouse: ChdbWarehouse, events: int, households: int, chunk: int,
         seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    city = City(households, rng)
    ids = [f"HH{i:07d}" for i in range(households)]
    keys = pa.array([warehouse.household_key(h) for h in ids], type=pa.string())
    started = time.perf_counter()
    build_s = 0.0
    warehouse._insert(schema.DIRECTORY, pa.Table.from_arrays(
        [keys, pa.array(ids)], schema=schema.arrow_schema(schema.DIRECTORY)))
    built = time.perf_counter()
    register = register_chunk(1, city, keys, rng)  # offsets first: registered early
    build_s += time.perf_counter() - built
    for i in range(0, register.num_rows, chunk):
        warehouse._insert(schema.EVENTS, register.slice(i, chunk))
    for first in range(register.num_rows + 1, events + 1, chunk):
        built = time.perf_counter()
        table = event_chunk(first, min(chunk, events - first + 1), city, keys, rng)
        build_s += time.perf_counter() - built
        warehouse._insert(schema.EVENTS, table)
    built = time.perf_counter()
    life = lifecycle_table(max(events // 20, 1), city, keys, rng)
    build_s += time.perf_counter() - built
    for i in range(0, life.num_rows, chunk):
        warehouse._insert(schema.LIFECYCLE, life.slice(i, chunk))
    total = time.perf_counter() - started
    return {"events": events, "households": households, "lifecycle_rows": life.num_rows,
            "register_events": register.num_rows,
            "load_s": round(total, 1), "arrow_build_s": round(build_s, 1),
            "insert_rows_per_s": round((events + life.num_rows) / (total - build_s))}


def settle(warehouse: ChdbWarehouse, timeout_s: float = 600.0) -> dict[str, Any]:
    """Wait for the background merges a bulk load started (they share the process's
    two cores with the queries): the dashboard target is judged on a warehouse at rest,
    and what a read costs while they run is reported apart (``while_merging``)."""
    started = time.perf_counter()
    quiet = 0
    while quiet < 3 and time.perf_counter() - started < timeout_s:
        running = int(warehouse.query("SELECT count() FROM system.merges").rows[0][0])
        quiet = quiet + 1 if running == 0 else 0
        time.sleep(1.0)
    return {"waited_s": round(time.perf_counter() - started, 1), "settled": quiet >= 3,
            "active_parts": warehouse.active_parts()}


def _resend(warehouse: ChdbWarehouse, table: str, order: str, batches: int) -> None:
    """Re-insert a copy of ``table``'s rows through the Arrow write path in ``batches``
    ranges of ``order`` (a replay re-sends the log in its order: lifecycle records by
    instant, so every batch mixes raises and transitions, as the processor writes them)."""
    low, high = warehouse.query(f"SELECT min({order}), max({order}) FROM {table}").rows[0]
    step = (int(high) - int(low)) // batches + 1
    target = schema.arrow_schema(table)
    for first in range(int(low), int(high) + 1, step):
        data = warehouse._select(
            f"SELECT {schema.column_list(table)} FROM {table} "
            f"WHERE {order} >= {first} AND {order} < {first + step}")
        warehouse._insert(table, pa.Table.from_arrays(
            [data.column(f.name).cast(f.type) for f in target], schema=target))


def replay(warehouse: ChdbWarehouse, batches: int) -> dict[str, Any]:
    """What a replay after a crash leaves: every lifecycle row and event re-sent in
    ``batches`` inserts, so each pre-aggregate holds ~``batches`` more unmerged parts
    (all overlapping). Background merges are stopped first, so the measurement sees
    that state rather than a merge in progress (they resume when the process ends)."""
    started = time.perf_counter()
    warehouse._execute("SYSTEM STOP MERGES")
    _resend(warehouse, schema.LIFECYCLE, "toUnixTimestamp64Micro(at)", batches)
    _resend(warehouse, schema.EVENTS, "`offset`", batches)
    return {"batches": batches, "resend_s": round(time.perf_counter() - started, 1),
            "active_parts": warehouse.active_parts()}


def compact(warehouse: ChdbWarehouse) -> dict[str, Any]:
    """What a bulk path ends with (``SqlWarehouse.compact``), timed per table; merges
    are resumed for those tables only, so the other tables keep the replay's parts."""
    seconds: dict[str, float] = {}
    for table in schema.COMPACTED_AFTER_BULK:
        warehouse._execute(f"SYSTEM START MERGES {table}")
        started = time.perf_counter()
        warehouse.compact((table,))
        seconds[table] = round(time.perf_counter() - started, 2)
    return {"optimize_s": seconds, "total_s": round(sum(seconds.values()), 2),
            "active_parts": warehouse.active_parts()}


def run(events: int, households: int, runs: int, chunk: int = 1_000_000,
        optimize: bool = False, path: Path | None = None, other_runs: int = 5,
        replay_parts: int = 0) -> dict[str, Any]:
    """Load (unless ``path`` already holds a loaded warehouse) and measure.

    With ``path`` the warehouse is kept, so queries can be re-measured after a
    change without loading 10M rows again.
    """
    with tempfile.TemporaryDirectory(prefix="jiahe-analytics-") as tmp:
        where = path or Path(tmp) / "wh"
        reuse = path is not None and (path / "data").exists()
        warehouse = ChdbWarehouse(where, b"bench-secret")
        try:
            warehouse.ensure_schema()
            report: dict[str, Any] = {"load_average_before": os.getloadavg()}
            if reuse:  # ensure_schema above backfilled any pre-aggregate it lacked
                rows = warehouse.query("SELECT count() FROM events").rows[0][0]
                report["load"] = {"reused": str(path), "event_rows": rows}
            else:  # a bulk write: it ends as the product's bulk paths do (compact)
                report["load"] = load(warehouse, events, households, chunk)
                started = time.perf_counter()
                warehouse.compact()
                report["load"]["compact_s"] = round(time.perf_counter() - started, 2)
            as_of = START + SPAN_US - 7 * MICROS_PER_DAY
            report["as_of"] = as_of
            report["district"] = DISTRICT
            if not reuse:  # a dashboard read while the load's merges still run, then settled
                report["while_merging"] = measure(warehouse, runs, as_of, other_runs=0)
                report["settle"] = settle(warehouse)
            report["active_parts"] = warehouse.active_parts()
            report["as_loaded"] = measure(warehouse, runs, as_of, other_runs=other_runs)
            if replay_parts:
                report["replay"] = replay(warehouse, replay_parts)
                report["after_replay"] = measure(warehouse, runs, as_of, other_runs=other_runs)
                report["compaction"] = compact(warehouse)
                report["after_compaction"] = measure(warehouse, runs, as_of,
                                                     other_runs=other_runs)
            if optimize:
                warehouse._execute("SYSTEM START MERGES")  # stopped by a replay
                started = time.perf_counter()
                warehouse.compact((*schema.TABLES, *schema.AGGREGATES))
                report["optimize_s"] = round(time.perf_counter() - started, 1)
                report["after_optimize"] = measure(warehouse, runs, as_of, other_runs=other_runs)
            report["load_average_after"] = os.getloadavg()
        finally:
            warehouse.close()
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--households", type=int, default=None)
    parser.add_argument("--runs", type=int, default=20, help="runs of each dashboard query")
    parser.add_argument("--other-runs", type=int, default=5,
                        help="runs of each whole-ledger / as_of query (0: skip them)")
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--optimize", action="store_true", help="also after OPTIMIZE FINAL")
    parser.add_argument("--replay-parts", type=int, default=0, metavar="N",
                        help="then re-send every row in N batches (a replay's unmerged "
                             "parts) and measure again, then after the bulk-path compaction")
    parser.add_argument("--path", type=Path, default=None,
                        help="keep the warehouse here; reuse it when already loaded")
    args = parser.parse_args(argv)
    households = args.households or max(args.events // 10, 100)
    print(json.dumps(run(args.events, households, args.runs, args.chunk, args.optimize,
                         args.path, args.other_runs, args.replay_parts), indent=2))


if __name__ == "__main__":
    main()
