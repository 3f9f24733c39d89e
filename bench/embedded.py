"""``jiahe bench``: throughput of the embedded runtime on a realistic stream.

Measured in-process (start-up excluded) on a generated Harbin-like stream with
late, duplicate and invalid deliveries:

* ``json_loads``: a bare ``json.loads`` loop over the file — the floor any
  validating reader is compared with;
* ``replay``: decode + validate + engine + lifecycle output (``jiahe replay``);
* ``publish``, ``process``, ``project``: the embedded runtime's three stages
  (SQLite log, processor with per-batch transactions, chdb projection);
* ``rebuild``: every projection dropped and rebuilt from the log.

``run_rss_bench`` (``python -m bench.embedded --rss-households N``) measures the
processor's peak RSS with rule state for N households: the stream is generated
and published by this process, then a fresh process (``spawn``) runs the
processor over the log and reports its own ``ru_maxrss`` and how many
households it holds state for.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.bootstrap import bootstrap_embedded
from app.bulk import bulk_mode
from app.replay import replay_lines
from bench.rss import run_rss_bench  # moved there; reachable as bench.run_rss_bench
from events.sample import StreamSpec, write_jsonl
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay
from streams.clock import EventTimeClock


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    with bulk_mode():
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
    return elapsed, result


def _json_loads_loop(path: Path) -> int:
    count = 0
    with path.open("rb") as source:
        for line in source:
            with contextlib.suppress(ValueError):
                json.loads(line)
            count += 1
    return count


def _replay(path: Path, out: Path) -> int:
    runner = Replay(Engine(load_pack()))
    with path.open("rb") as source, out.open("wb") as sink:
        replay_lines(runner, source, sink)
    return runner.counts.received


def run_embedded_bench(events: int, households: int, workdir: Path,
                       stream: Path | None = None) -> dict[str, Any]:
    """The embedded runtime over ``stream`` (generated here, seed 42, when None)."""
    workdir.mkdir(parents=True, exist_ok=True)
    gen_s = 0.0
    if stream is None:
        stream = workdir / "stream.jsonl"
        gen_s, _ = _timed(lambda: write_jsonl(
            StreamSpec(events=events, households=households, seed=42), stream))
    source = stream
    results: dict[str, Any] = {"events": events, "households": households,
                               "generate_s": round(gen_s, 2)}
    loads_s, _ = _timed(lambda: _json_loads_loop(source))
    replay_s, _ = _timed(lambda: _replay(source, workdir / "warnings.jsonl"))
    results["json_loads_events_per_s"] = round(events / loads_s)
    results["replay_events_per_s"] = round(events / replay_s)
    results["replay_vs_json_loads"] = round(replay_s / loads_s, 2)
    lines = source.read_bytes().splitlines()
    bare = bootstrap_embedded(workdir / "bare")  # never opens chdb: one chdb path per process
    try:
        bare.publish(lines, source="bench")
        bare_s, _ = _timed(lambda: bare.process(EventTimeClock(None), project=False))
    finally:
        bare.close()
    runtime = bootstrap_embedded(workdir / "home")
    try:
        publish_s, _ = _timed(lambda: runtime.publish(lines, source="bench"))
        runtime.warehouse  # open chdb outside the timed run  # noqa: B018
        process_s, report = _timed(lambda: runtime.process(EventTimeClock(None)))
        rebuild_s, _ = _timed(runtime.rebuild)
        total_rows = runtime.log.end_position() + runtime.log.end_seq()
    finally:
        runtime.close()
    results.update({
        "publish_events_per_s": round(events / publish_s),
        "process_without_warehouse_events_per_s": round(events / bare_s),
        "processor_with_ledgers_events_per_s": round(events / process_s),
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_rows_per_s": round(total_rows / rebuild_s),
        "lifecycle_records": sum(report.records.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    })
    return results


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="jiahe bench pieces outside `jiahe bench`")
    parser.add_argument("--rss-households", type=int, default=1_200_000)
    parser.add_argument("--rss-events", type=int, default=4_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jiahe-bench-rss-") as tmp:
        report = run_rss_bench(args.rss_households, args.rss_events, Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
