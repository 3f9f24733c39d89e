"""Peak RSS of the embedded processor with rule state for many households.

``python -m bench.rss --rss-households N`` (also reachable as
``bench.embedded.run_rss_bench``): the stream is generated and published by
this process, then a fresh process (``spawn``, so nothing the publisher
allocated is inherited) runs the processor over the log (by default without the warehouse)
and reports its own ``ru_maxrss``, its RSS right after start-up (imports,
engine, SQLite) and how many households have stored rule state.

``--workdir DIR`` keeps the published log in ``DIR``; a later run with the
same ``DIR`` skips generating and publishing and resets only the processor's
output, so cache sizes can be compared on one log.

``--warehouse`` projects into chdb inline, as ``jiahe process`` does
(``--flush-rows`` overrides the rows per insert); ``--samples FILE`` appends
the child's RSS (anonymous vs file-backed), cache sizes and chdb's memory
tracker every 2 s, to see when and where the memory grows.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from app.bootstrap import bootstrap_embedded
from app.bulk import bulk_mode
from events.sample import StreamSpec, write_jsonl
from privacy.audit import LIFECYCLE
from projections.sink import WarehouseSink
from streams.clock import EventTimeClock
from streams.embedded.processor import EmbeddedProcessor
from streams.embedded.runtime import EmbeddedRuntime

RSS_HOME = "rss-home"


def _current_rss_mb() -> float:
    """Resident set size now (Linux ``/proc``); 0 where unavailable."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) * resource.getpagesize() / 2**20


def _memory_split_mb() -> dict[str, int]:
    """RSS split into anonymous memory and file-backed pages (mapped libraries), in MB."""
    try:
        lines = Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return {}
    fields = {key.strip(): int(rest.split()[0]) // 1024
              for key, rest in (line.split(":", 1) for line in lines)}
    return {"rss": fields.get("Rss", 0), "anon": fields.get("Anonymous", 0),
            "file": fields.get("Rss", 0) - fields.get("Anonymous", 0)}


def _start_sampler(path: Path, probe: Any, every_s: float = 2.0) -> None:
    """Append one JSON line every ``every_s`` seconds: memory split plus ``probe()``.

    Diagnostic only (``--samples``): shows *when* and *where* the RSS grows.
    """
    import threading

    def sample() -> None:
        started = time.perf_counter()
        with path.open("a") as out:
            while True:
                row: dict[str, Any] = {"t": round(time.perf_counter() - started, 1)}
                row.update(_memory_split_mb())
                try:
                    row.update(probe())
                except Exception as error:  # noqa: BLE001 - a probe must not kill the run
                    row["probe_error"] = repr(error)
                out.write(json.dumps(row) + "\n")
                out.flush()
                time.sleep(every_s)

    threading.Thread(target=sample, name="rss-sampler", daemon=True).start()


def _reset_processor_output(runtime: EmbeddedRuntime) -> None:
    """Forget what a previous processor run wrote so the next run starts from the log."""
    import shutil


    shutil.rmtree(runtime.warehouse_path, ignore_errors=True)

    db = runtime.log.db
    with runtime.log.transaction():
        db.execute("DELETE FROM household_state")
        db.execute("DELETE FROM lifecycle")
        db.execute("DELETE FROM checkpoints")
        db.execute("DELETE FROM meta WHERE key LIKE 'processor.%'")
        db.execute("DELETE FROM meta WHERE key LIKE ?", (LIFECYCLE.meta_key("%"),))
        db.execute("DELETE FROM dead_letters WHERE stage = 'process'")


def _process_in_child(
    home: str,
    queue: Any,
    state_cache: int | None = None,
    warehouse: bool = False,
    samples: str | None = None,
    flush_rows: int | None = None,
) -> None:
    """Child process body: run the processor and report peak RSS.

    With ``warehouse`` the processor projects into chdb inline, as ``jiahe
    process`` does: chdb lives in this process, so its memory is in the RSS.
    """
    import sys


    runtime = bootstrap_embedded(Path(home))
    try:
        options: dict[str, Any] = {}
        if state_cache is not None:
            options["state_cache"] = state_cache
        if warehouse:  # as EmbeddedRuntime.process(project=True) sets it up
            options["sink"] = WarehouseSink(runtime.warehouse, max_rows=10**9)
        processor = EmbeddedProcessor(
            runtime.log, runtime.engine, batch_size=runtime.batch_size, **options
        )
        if flush_rows is not None:
            processor.flush_rows = flush_rows
        startup_rss = _current_rss_mb()
        if samples:
            _start_sampler(Path(samples), lambda: _probe(processor, runtime, warehouse))
        started = time.perf_counter()
        with bulk_mode():
            report = processor.run(EventTimeClock(None))
        elapsed = time.perf_counter() - started
        stored = runtime.log.db.execute("SELECT count(*) FROM household_state").fetchone()[0]
        queue.put({
            "households_with_state": stored,
            "states_in_memory_at_end": len(processor.states),
            "state_cache": getattr(processor, "state_cache", None),
            "flush_rows": processor.flush_rows if warehouse else None,
            "processed": report.counts.processed,
            "lifecycle_records": sum(report.records.values()),
            "records_from_deadlines_at_end": report.fired_at_end,
            "process_s": round(elapsed, 1),
            "events_per_s": round(report.counts.received / elapsed) if elapsed else None,
            "chdb_loaded": "chdb" in sys.modules,
            "startup_rss_mb": round(startup_rss),
            "processor_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        })
    finally:
        runtime.close()


def _probe(processor: Any, runtime: EmbeddedRuntime, warehouse: bool) -> dict[str, Any]:
    """Sizes of what the processor holds (and chdb's own memory tracker) right now."""
    row: dict[str, Any] = {"states": len(processor.states)}
    if warehouse:
        wh = runtime.warehouse
        row["pending"] = processor.sink.pending
        row["directory"] = len(getattr(wh, "_directory_written", ()))
        metrics = wh.query(
            "SELECT metric, value FROM system.metrics WHERE metric IN"
            " ('MemoryTracking', 'MergesMutationsMemoryTracking', 'MemoryTrackingUncorrected')")
        row.update({name: value // 2**20 for name, value in metrics.rows})
    return row


def _timed_s(action: Any) -> float:
    with bulk_mode():
        started = time.perf_counter()
        action()
        return time.perf_counter() - started


def run_rss_bench(
    households: int,
    events: int,
    workdir: Path,
    state_cache: int | None = None,
    warehouse: bool = False,
    samples: Path | None = None,
    flush_rows: int | None = None,
) -> dict[str, Any]:
    """Peak RSS of the embedded processor holding state for ~``households`` households."""
    import multiprocessing

    home = workdir / RSS_HOME
    spec = {"events": events, "households": households}
    spec_file = workdir / "rss-spec.json"
    result: dict[str, Any] = {"events": events, "households_spec": households,
                              "warehouse": warehouse}
    if spec_file.exists() and json.loads(spec_file.read_text()) == spec:
        runtime = bootstrap_embedded(home)
        try:
            _reset_processor_output(runtime)
        finally:
            runtime.close()
        result["reused_log"] = True
    else:
        stream = workdir / "rss-stream.jsonl"
        gen_s = _timed_s(lambda: write_jsonl(
            StreamSpec(events=events, households=households, seed=7), stream))
        runtime = bootstrap_embedded(home)
        try:
            with stream.open("rb") as source:
                publish_s = _timed_s(lambda: runtime.publish(source, source="bench"))
        finally:
            runtime.close()
        stream.unlink()
        spec_file.write_text(json.dumps(spec))
        result.update(generate_s=round(gen_s, 1), publish_s=round(publish_s, 1))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_process_in_child,
        args=(str(home), queue, state_cache, warehouse, str(samples) if samples else None,
              flush_rows),
    )
    child.start()
    child.join()  # the child's report is small: it fits the queue's pipe buffer
    if child.exitcode != 0 or queue.empty():
        raise RuntimeError(f"the processor process failed (exit code {child.exitcode})")
    result.update(queue.get())
    return result


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="processor peak RSS with many households")
    parser.add_argument("--rss-households", type=int, default=1_200_000)
    parser.add_argument("--rss-events", type=int, default=4_000_000)
    parser.add_argument("--state-cache", type=int, default=None,
                        help="households kept decoded in memory (default: the processor's)")
    parser.add_argument("--warehouse", action="store_true",
                        help="project into chdb inline (chdb's memory counts in the RSS)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the published log here and reuse it on the next run")
    parser.add_argument("--flush-rows", type=int, default=None,
                        help="rows per warehouse insert (default: the processor's)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="append the processor's memory every 2 s to this file (JSON lines)")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            workdir = args.workdir
        else:
            workdir = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="jiahe-bench-rss-")))
        report = run_rss_bench(args.rss_households, args.rss_events, workdir,
                               args.state_cache, args.warehouse, args.samples, args.flush_rows)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
