"""Latency of the referral ledger and of the KPIs with timeliness figures.

``python -m bench.after_alert [--events N] [--runs R] [--path DIR]`` loads the
synthetic warehouse of ``bench.analytics`` (N events, one warning per 20), runs
``ensure_schema`` again — which backfills ``warning_transitions`` from ``lifecycle``,
as on a warehouse from before it (timed) — then adds the work after an alert as
Arrow rows in the warehouse's schema: 30% of warnings assessed (a tenth of them
twice), 3% of the resolved ones reopened, and one referral per 50 events (75%
answered, half of the accepted closed), and reports p50/p95 in milliseconds of:
the referral ledger (a district page, the district, the city; now and at a past
``as_of``), ``referral_row``, the warning page and row (which now read
``warning_transitions`` for risk / reopened), and ``kpis`` + ``timeliness`` of a
district chair and of the city, now and past. One chdb path per process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench import analytics
from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR
from projections import kpis, ledgers, schema, timeliness
from projections.warehouse.chdb_backend import ChdbWarehouse

TS = pa.timestamp("us", tz="UTC")
AGENCIES = ("police", "court", "procuratorate", "civil_affairs", "justice", "legal_aid",
            "shelter", "health", "education")
CITY = "230100000000"


def _table(name: str, cols: dict[str, Any]) -> pa.Table:
    target = schema.arrow_schema(name)
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in target],
                                schema=target)


def add_after_alert(warehouse: ChdbWarehouse, events: int, seed: int = 11) -> dict[str, int]:
    """Assessments, reopenings and referrals over the loaded warnings and households."""
    rng = np.random.default_rng(seed)
    raises = warehouse.query(
        "SELECT warning_id, household_key, rule_id, level, org_unit, district, "
        "toUnixTimestamp64Micro(at) FROM lifecycle WHERE type = 'warning.raised'").rows
    resolved = dict(warehouse.query(
        "SELECT warning_id, toUnixTimestamp64Micro(at) FROM lifecycle "
        "WHERE type = 'warning.resolved'").rows)
    seq = int(warehouse.query("SELECT max(seq) FROM lifecycle").rows[0][0]) + 1
    names = [c.name for c in schema.TRANSITION_COLUMNS]
    cols: dict[str, list[Any]] = {n: [] for n in names}

    def add(kind: str, raise_row: tuple[Any, ...], at: int, **extra: Any) -> None:
        nonlocal seq
        wid, key, rule, level, org, district, _ = raise_row
        row = {"seq": seq, "type": kind, "warning_id": wid, "rule_id": rule,
               "household_key": key, "level": level, "org_unit": org, "district": district,
               "at": at, **extra}
        for n in names:
            cols[n].append(row.get(n))
        seq += 1

    assessed = reopened = 0
    for row in raises:
        raised_us = int(row[6])
        if rng.random() < 0.3:
            at = raised_us + int(rng.integers(0, 96)) * MICROS_PER_HOUR
            add("warning.assessed", row, at, risk=str(rng.choice(["low", "medium", "high"])))
            assessed += 1
            if rng.random() < 0.1:
                add("warning.assessed", row, at + MICROS_PER_DAY, risk="high")
                assessed += 1
        if row[0] in resolved and rng.random() < 0.03:
            at = int(resolved[row[0]]) + int(rng.integers(0, 10)) * MICROS_PER_DAY
            add("warning.reopened", row, at, handling_org_unit=row[4])
            reopened += 1
    warehouse._insert(schema.WARNING_TRANSITIONS, _table(schema.WARNING_TRANSITIONS, cols))
    lifecycle = {n: cols[n] for n in (c.name for c in schema.LIFECYCLE_COLUMNS)}
    warehouse._insert(schema.LIFECYCLE, _table(schema.LIFECYCLE, lifecycle))

    keys = [r[0] for r in warehouse.query(
        "SELECT household_key FROM household_directory ORDER BY household_key").rows]
    n = max(events // 50, 1)
    ref: dict[str, list[Any]] = {c.name: [] for c in schema.REFERRAL_COLUMNS}
    start, span = analytics.START, analytics.SPAN_US
    for i in range(n):
        key = keys[int(rng.integers(0, len(keys)))]
        sent = start + int(rng.integers(0, span))
        agency = str(rng.choice(AGENCIES))
        base = {"referral_id": f"r-{i}", "household_key": key, "agency": agency}
        rows = [("referral.sent", sent, {"basis": str(rng.choice(
            ["consent", "emergency", "legal_duty"])), "warning_id": None})]
        roll = rng.random()
        if roll < 0.75:
            answered = sent + int(rng.integers(1, 120)) * MICROS_PER_HOUR
            kind = "referral.accepted" if roll < 0.6 else "referral.declined"
            rows.append((kind, answered, {}))
            if kind == "referral.accepted" and rng.random() < 0.5:
                rows.append(("referral.closed", answered + 5 * MICROS_PER_DAY,
                             {"outcome": "service_provided"}))
        for kind, at, extra in rows:
            values = {"seq": seq, "type": kind, "at": at, **base, **extra}
            for name in ref:
                ref[name].append(values.get(name))
            seq += 1
    warehouse._insert(schema.REFERRAL_RECORDS, _table(schema.REFERRAL_RECORDS, ref))
    return {"assessed": assessed, "reopened": reopened, "referrals": n,
            "referral_records": len(ref["seq"])}


def queries(as_of: int, district: str) -> dict[str, Callable[[ChdbWarehouse], Any]]:
    chair = district + "000000"

    def with_timeliness(scope: str, at: int | None) -> Callable[[ChdbWarehouse], Any]:
        return lambda w: {**kpis.kpis(w, scope, at),
                          "timeliness": timeliness.timeliness(w, at, None, scope_org_unit=scope)}

    return {
        "referrals_page_now": lambda w: ledgers.referral_ledger(w, None, district, limit=50),
        "referrals_district_now": lambda w: ledgers.referral_ledger(w, None, district),
        "referrals_city_now": lambda w: ledgers.referral_ledger(w, None, None),
        "referrals_page_as_of": lambda w: ledgers.referral_ledger(w, as_of, district, limit=50),
        "referral_row": lambda w: [ledgers.referral_row(w, "r-1000")],
        "warnings_page_now": lambda w: ledgers.warning_ledger(w, None, district, limit=50),
        "warning_row": lambda w: [ledgers.warning_row(w, "w-25000")],
        "kpis_only_chair_now": lambda w: kpis.kpis(w, chair, None),
        "timeliness_chair_now": lambda w: timeliness.timeliness(w, None, None,
                                                                scope_org_unit=chair),
        "kpis_with_timeliness_chair_now": with_timeliness(chair, None),
        "kpis_with_timeliness_city_now": with_timeliness(CITY, None),
        "kpis_with_timeliness_chair_as_of": with_timeliness(chair, as_of),
        "kpis_with_timeliness_city_as_of": with_timeliness(CITY, as_of),
    }


def measure(warehouse: ChdbWarehouse, runs: int, as_of: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, query in queries(as_of, analytics.DISTRICT).items():
        result = query(warehouse)  # warm-up
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            query(warehouse)
            samples.append(time.perf_counter() - started)
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        out[name] = {"p50_ms": round(statistics.median(ordered) * 1000, 1),
                     "p95_ms": round(p95 * 1000, 1), "runs": runs,
                     "rows": len(result) if isinstance(result, list) else 1}
    return out


def run(events: int, runs: int, path: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jiahe-after-alert-") as tmp:
        warehouse = ChdbWarehouse(path or Path(tmp) / "wh", b"bench-secret")
        try:
            warehouse.ensure_schema()
            report: dict[str, Any] = {"load_average_before": os.getloadavg()}
            report["load"] = analytics.load(warehouse, events, max(events // 10, 100),
                                            1_000_000)
            warehouse._execute(f"TRUNCATE TABLE {schema.WARNING_TRANSITIONS}")
            started = time.perf_counter()  # as on a warehouse from before the table
            warehouse.ensure_schema()
            report["transitions_backfill_s"] = round(time.perf_counter() - started, 2)
            report["after_alert"] = add_after_alert(warehouse, events)
            warehouse.compact((*schema.COMPACTED_AFTER_BULK, *schema.AFTER_ALERT_TABLES))
            as_of = analytics.START + analytics.SPAN_US - 7 * MICROS_PER_DAY
            report["measured"] = measure(warehouse, runs, as_of)
            report["load_average_after"] = os.getloadavg()
        finally:
            warehouse.close()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.runs, args.path), indent=2))


if __name__ == "__main__":
    main()
