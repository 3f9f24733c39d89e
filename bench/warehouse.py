"""Warehouse throughput and ledger latency on synthetic data.

``python -m bench.warehouse [--events N] [--batch B] [--path DIR]`` prints
JSON: insert rows/s through the real write path (envelope dicts → Arrow →
chdb, batches of B as the sink sends them) and the time of each ledger on
the loaded warehouse. ``run`` is reusable by ``jiahe bench``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR, format_instant, parse_instant
from events.orgunits import HARBIN_DISTRICTS
from projections import analytics, ledgers
from projections.warehouse.base import Warehouse
from projections.warehouse.chdb_backend import ChdbWarehouse

START = parse_instant("2025-01-01T00:00:00Z")
KINDS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "screening.visit_recorded": lambda r: {
        "indicators": r.sample(["threats", "isolation", "injury_observed"], r.randint(0, 2)),
        "notes": "free text",
    },
    "petition.received": lambda r: {
        "channel": "hotline_12338",
        "category": "other",
        "urgent": r.random() < 0.1,
    },
    "followup.recorded": lambda r: {"action": "home_visit"},
    "child.guardianship_gap_recorded": lambda r: {"child_ref": "c1", "reason": "x"},
    "child.guardianship_restored": lambda r: {"child_ref": "c1"},
}


def synthetic_events(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    districts = sorted(HARBIN_DISTRICTS)
    kinds = list(KINDS)
    for offset in range(1, n + 1):
        household = rng.randrange(max(1, n // 10))
        unit = f"{districts[household % 18]}{1 + household % 7:03d}{1 + household % 11:03d}"
        kind = rng.choices(kinds, weights=(5, 3, 3, 1, 1))[0]
        yield {
            "offset": offset,
            "event_id": f"bench-{seed}-{offset}",
            "type": kind,
            "schema_version": 1,
            "occurred_at": format_instant(START + rng.randrange(365 * MICROS_PER_DAY)),
            "recorded_at": None,
            "org_unit": unit,
            "household_id": f"HH{household:07d}",
            "actor": "cadre-1",
            "data": KINDS[kind](rng),
        }


def synthetic_lifecycle(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        raised = START + rng.randrange(360 * MICROS_PER_DAY)
        household = f"HH{rng.randrange(max(1, n)):07d}"
        unit = "230102001001"
        wid = f"w-{seed}-{i}"
        out.append(
            {
                "type": "warning.raised",
                "warning_id": wid,
                "rule_id": "violence-injury",
                "household_id": household,
                "level": "red",
                "org_unit": unit,
                "handling_level": "community",
                "handling_org_unit": unit,
                "at": format_instant(raised),
            }
        )
        out.append(
            {
                "type": "warning.acknowledged",
                "warning_id": wid,
                "household_id": household,
                "at": format_instant(raised + MICROS_PER_HOUR),
            }
        )
    for seq, record in enumerate(out, start=1):
        record["seq"] = seq
    return out


def _in_batches(
    write: Callable[[list[dict[str, Any]]], None], rows: list[dict[str, Any]], batch: int
) -> None:
    for i in range(0, len(rows), batch):
        write(rows[i : i + batch])


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    """Process CPU seconds (all threads, chdb's included) and wall seconds: on a
    shared machine the wall clock alone mostly measures the neighbours."""
    cpu = time.process_time()
    wall, _ = _timed(fn)
    return time.process_time() - cpu, wall


def run(warehouse: Warehouse, events: int, batch: int) -> dict[str, Any]:
    """Load ``events`` synthetic events (+ events/20 warnings) and time the ledgers."""
    warehouse.ensure_schema()
    rows = list(synthetic_events(events))
    lifecycle = synthetic_lifecycle(max(1, events // 20))
    load_cpu, load_s = _cpu_and_wall(lambda: _in_batches(warehouse.write_events, rows, batch))
    life_cpu, life_s = _cpu_and_wall(
        lambda: _in_batches(warehouse.write_lifecycle, lifecycle, batch)
    )
    report: dict[str, Any] = {
        "events": events,
        "batch": batch,
        "insert_events_rows_per_s": round(events / load_s),
        "insert_events_cpu_s": round(load_cpu, 2),
        "insert_lifecycle_rows": len(lifecycle),
        "insert_lifecycle_rows_per_s": round(len(lifecycle) / life_s),
        "insert_lifecycle_cpu_s": round(life_cpu, 2),
    }
    for name, fn in (
        ("warnings", ledgers.warning_ledger),
        ("households", ledgers.household_ledger),
        ("guardianship", ledgers.guardianship_ledger),
    ):
        seconds, result = _timed(lambda fn=fn: fn(warehouse))  # type: ignore[misc]
        report[f"ledger_{name}_s"] = round(seconds, 3)
        report[f"ledger_{name}_rows"] = len(result)
    seconds, _ = _timed(lambda: analytics.daily_counts(warehouse))
    report["daily_counts_s"] = round(seconds, 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = ChdbWarehouse(args.path or Path(tmp) / "wh", b"bench-secret")
        try:
            print(json.dumps(run(warehouse, args.events, args.batch), indent=2))
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()
