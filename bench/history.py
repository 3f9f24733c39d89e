"""Costs that must not grow with the warehouse's history: a flush, and a bulk write's end.

``python -m bench.history --path DIR [--transitions T] [--bulk R] [--batch B] [--runs N]
[--quiet-s Q]``
on a warehouse made by ``python -m bench.analytics --path DIR`` (1M or 10M events).
It **writes to DIR**: run it on a copy. Prints JSON:

* ``flush``: one ``write_lifecycle`` of ``T`` acknowledgements of warnings raised
  anywhere in the history (their raise attributes are looked up, not in the batch),
  median of ``N``, with the raise lookup of today (``warning_raises`` by key) and of
  before (``lifecycle FINAL … WHERE warning_id IN``, every granule once T is a few
  hundred); and each lookup alone.
* ``bulk``: ``R`` events written in batches of ``B`` (a catch-up), then what a bulk
  path ends with, timed: first the whole-table merge of before (``OPTIMIZE … FINAL``
  of ``schema.COMPACTED_AFTER_BULK``), then, after another ``R`` events,
  ``SqlWarehouse.compact``; the dashboard's reads (``bench.analytics``) after each,
  and again once background merges joined the parts ``compact`` left (the tables'
  ``MERGE_WHEN_QUIET_S`` is ``--quiet-s`` here, 600 s in the product).

The machine's load average is reported with every figure: before and after are taken
in the same minute on the same warehouse, which is what makes them comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.analytics import SPAN_US, START, City, event_chunk, measure
from events.instants import MICROS_PER_DAY, format_instant
from projections import schema
from projections.warehouse.chdb_backend import ChdbWarehouse
from projections.warehouse.rows import RaiseInfo, sql_string
from projections.warehouse.sqlbase import known_raises_sql


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def lookup_before(warehouse: ChdbWarehouse, warning_ids: set[str]) -> dict[str, RaiseInfo]:
    """The raise lookup as it was: ``lifecycle`` read FINAL by warning_id."""
    ids = ", ".join(sql_string(w) for w in sorted(warning_ids))
    rows = warehouse.query(
        f"SELECT warning_id, rule_id, level, org_unit FROM {schema.LIFECYCLE} FINAL "
        f"WHERE type = 'warning.raised' AND warning_id IN ({ids})"
    ).rows
    return {row[0]: RaiseInfo(row[1], row[2], row[3]) for row in rows}


def _acknowledgements(warehouse: ChdbWarehouse, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` acknowledgement records of warnings spread over the whole history."""
    ids = [row[0] for row in warehouse.query(
        f"SELECT warning_id FROM {schema.WARNING_RAISES} "
        f"ORDER BY cityHash64(warning_id, {seed}) LIMIT {n}"
    ).rows]
    seq = int(warehouse.query(f"SELECT max(seq) FROM {schema.LIFECYCLE}").rows[0][0])
    at = format_instant(START + SPAN_US - MICROS_PER_DAY)
    return [{"type": "warning.acknowledged", "warning_id": w, "household_id": "HH0000001",
             "at": at, "seq": seq + 1 + i} for i, w in enumerate(ids)]


def flush(warehouse: ChdbWarehouse, transitions: int, runs: int) -> dict[str, Any]:
    now_s: list[float] = []
    before_s: list[float] = []
    lookup_now_s: list[float] = []
    lookup_before_s: list[float] = []
    load = _load()
    for run in range(runs):
        batch = _acknowledgements(warehouse, transitions, seed=2 * run)
        ids = {r["warning_id"] for r in batch}
        lookup_now_s.append(_timed(partial(warehouse._known_raises, ids)))
        lookup_before_s.append(_timed(partial(lookup_before, warehouse, ids)))
        assert warehouse._known_raises(ids) == lookup_before(warehouse, ids)
        now_s.append(_timed(partial(warehouse.write_lifecycle, batch)))
        batch = _acknowledgements(warehouse, transitions, seed=2 * run + 1)
        # the same write with the lookup of before, on this instance only
        warehouse.__dict__["_known_raises"] = partial(lookup_before, warehouse)
        try:
            before_s.append(_timed(partial(warehouse.write_lifecycle, batch)))
        finally:
            del warehouse.__dict__["_known_raises"]
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    plan = warehouse.query(f"EXPLAIN ESTIMATE {known_raises_sql(ids)}").rows
    old_plan = warehouse.query(
        f"EXPLAIN ESTIMATE SELECT warning_id FROM {schema.LIFECYCLE} FINAL WHERE "
        f"type = 'warning.raised' AND warning_id IN ({', '.join(map(sql_string, ids))})"
    ).rows
    return {
        "transitions": transitions, "runs": runs,
        "flush_ms_now": ms(now_s), "flush_ms_before": ms(before_s),
        "lookup_ms_now": ms(lookup_now_s), "lookup_ms_before": ms(lookup_before_s),
        "lookup_rows_read_now": sum(int(r[3]) for r in plan),
        "lookup_rows_read_before": sum(int(r[3]) for r in old_plan),
        "load_average": [load, _load()],
    }


def _bulk_write(warehouse: ChdbWarehouse, rows: int, batch: int, seed: int) -> float:
    """``rows`` new events in inserts of ``batch`` (a catch-up); seconds taken."""
    first = int(warehouse.query("SELECT max(`offset`) FROM events").rows[0][0]) + 1
    households = int(warehouse.query(f"SELECT count() FROM {schema.DIRECTORY}").rows[0][0])
    rng = np.random.default_rng(seed)
    city = City(households, rng)
    keys = pa.array(
        [row[0] for row in warehouse.query(
            f"SELECT household_key FROM {schema.DIRECTORY} ORDER BY household_id").rows],
        type=pa.string(),
    )
    started = time.perf_counter()
    for offset in range(first, first + rows, batch):
        warehouse._insert(schema.EVENTS, event_chunk(
            offset, min(batch, first + rows - offset), city, keys, rng))
    return time.perf_counter() - started


def _parts() -> Callable[[ChdbWarehouse], dict[str, int]]:
    return lambda wh: {t: wh.active_parts().get(t, 0) for t in schema.COMPACTED_AFTER_BULK}


def _reads(warehouse: ChdbWarehouse, runs: int) -> dict[str, float]:
    as_of = START + SPAN_US - 7 * MICROS_PER_DAY
    report = measure(warehouse, runs, as_of, other_runs=0)
    return {name: value["p50_ms"] for name, value in report.items()}


def bulk(warehouse: ChdbWarehouse, rows: int, batch: int, runs: int) -> dict[str, Any]:
    parts = _parts()
    report: dict[str, Any] = {"rows": rows, "batch": batch}
    write_s = _bulk_write(warehouse, rows, batch, seed=1)
    before = {"write_s": round(write_s, 2), "parts": parts(warehouse), "load_average": _load()}
    before["compact_s"] = round(_timed(
        lambda: warehouse._merge_whole(schema.COMPACTED_AFTER_BULK)), 2)
    before["parts_after"] = parts(warehouse)
    before["reads_p50_ms"] = _reads(warehouse, runs)
    before["load_average_after"] = _load()
    report["before_whole_merge"] = before
    write_s = _bulk_write(warehouse, rows, batch, seed=2)
    now = {"write_s": round(write_s, 2), "parts": parts(warehouse), "load_average": _load()}
    now["compact_s"] = round(_timed(warehouse.compact), 2)
    now["parts_after"] = parts(warehouse)
    now["reads_p50_ms"] = _reads(warehouse, runs)
    now["load_average_after"] = _load()
    report["now_compact"] = now
    started = time.perf_counter()
    while any(n > 1 for n in parts(warehouse).values()) and time.perf_counter() - started < 900:
        time.sleep(1.0)
    quiet = {"waited_s": round(time.perf_counter() - started, 1), "parts": parts(warehouse),
             "load_average": _load()}
    quiet["reads_p50_ms"] = _reads(warehouse, runs)
    report["after_background_merge"] = quiet
    return report


def run(path: Path, transitions: int, rows: int, batch: int, runs: int,
        quiet_s: int) -> dict[str, Any]:
    warehouse = ChdbWarehouse(path, b"bench-secret")
    warehouse.MERGE_WHEN_QUIET_S = quiet_s
    try:
        events = warehouse.query("SELECT count() FROM events").rows[0][0]
        report: dict[str, Any] = {"path": str(path), "events": events}
        report["ensure_schema_s"] = round(_timed(warehouse.ensure_schema), 2)  # backfills
        report["lifecycle_rows"] = warehouse.query(
            f"SELECT count() FROM {schema.LIFECYCLE}").rows[0][0]
        report["flush"] = flush(warehouse, transitions, runs)
        if rows:
            report["bulk"] = bulk(warehouse, rows, batch, runs)
    finally:
        warehouse.close()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True,
                        help="a warehouse made by bench.analytics (written to: use a copy)")
    parser.add_argument("--transitions", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=100_000, help="events per bulk write")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quiet-s", type=int, default=20,
                        help="MERGE_WHEN_QUIET_S for the run (the product's is 600 s)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.path, args.transitions, args.bulk, args.batch, args.runs,
                         args.quiet_s), indent=2))


if __name__ == "__main__":
    main()
