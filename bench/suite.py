"""``jiahe bench``: every benchmark on ONE stream, in one run, with targets.

Sections (each can be skipped):

* ``embedded`` — replay, the processor with ledgers, rebuilding every projection
  (:func:`bench.embedded.run_embedded_bench`), in a child process;
* ``kafka`` — a private broker (unless ``--bootstrap``), the stream published once,
  the raw aiokafka consume ceiling, one and two ``jiahe worker`` processes, and the
  publish → lifecycle-record latency at a steady load (:mod:`bench.kafka`);
* ``peers`` — the same work done the idiomatic way: a per-event Faust agent with a
  Faust table on the same topic (:mod:`bench.faust_peer`; needs ``kafka``) and
  the eventsourcing library projecting the same warning ledger
  (:mod:`bench.peers`), each on a prefix of the stream when it would take too
  long on all of it (the table says so);
* ``analytics`` — dashboard query p50/p95 over N events in chdb
  (:mod:`bench.analytics`), in its own process (one chdb path per process).

Each section runs in its own process(es) and reports that process's peak RSS, so no
number is inflated by another section's memory. The targets are checked in
:func:`targets` and printed met / MISSED by :func:`render`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.bootstrap import bootstrap_embedded
from app.bulk import bulk_mode
from bench import kafka as bench_kafka
from bench import peers as bench_peers
from bench.embedded import run_embedded_bench
from events.sample import StreamSpec, write_jsonl
from streams.clock import EventTimeClock

SECTIONS = ("embedded", "kafka", "peers", "analytics")
SEED = 42


@dataclass(frozen=True)
class BenchConfig:
    """What one ``jiahe bench`` run measures."""

    events: int = 1_000_000
    households: int = 100_000
    analytics_events: int = 10_000_000
    analytics_runs: int = 20
    #: Lines of the stream (a prefix) the slow peers process; 0 = the whole stream.
    eventsourcing_events: int = 50_000
    faust_peer_events: int = 100_000
    sections: tuple[str, ...] = SECTIONS
    bootstrap: str | None = None
    partitions: int = 6
    workers: tuple[int, ...] = (1, 2)
    latency_rate: int = 1000
    latency_seconds: float = 15.0
    quick: bool = False

    @classmethod
    def quick_run(cls, **overrides: Any) -> BenchConfig:
        """CI smoke: small stream and warehouse, short latency run — well under 2 min."""
        base: dict[str, Any] = dict(
            events=20_000, households=2_000, analytics_events=200_000, analytics_runs=5,
            eventsourcing_events=3_000, faust_peer_events=4_000, latency_rate=500,
            latency_seconds=3.0, quick=True,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


# -- child processes -----------------------------------------------------------------


def _child_main(function: Callable[..., dict[str, Any]], args: tuple[Any, ...],
                queue: Any) -> None:
    try:
        result = function(*args)
        result["process_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        queue.put(("ok", result))
    except BaseException:  # reported to the parent, which raises it
        queue.put(("error", traceback.format_exc()))


def in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh (spawned) process; its result + its peak RSS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_main, args=(function, args, queue))
    child.start()
    while True:
        try:
            status, payload = queue.get(timeout=1.0)
            break
        except Exception:  # queue.Empty: still running, unless it died
            if not child.is_alive():
                raise RuntimeError(f"{function.__name__} died (exit {child.exitcode})") from None
    child.join()
    if status != "ok":
        raise RuntimeError(f"{function.__name__} failed in its process:\n{payload}")
    result: dict[str, Any] = payload
    return result


def run_bench(quick: bool, events: int | None = None, **options: Any) -> dict[str, Any]:
    """``jiahe bench``: every section on one stream (the sections below).

    ``options`` are :class:`BenchConfig` fields.
    """
    chosen = {"events": events, **options}
    if events is not None and options.get("households") is None:
        chosen["households"] = max(events // 10, 100)  # Harbin-like: ~10 events a household
    if quick:
        config = BenchConfig.quick_run(**chosen)
    else:
        config = BenchConfig(**{k: v for k, v in chosen.items() if v is not None})
    return run(config)


# -- sections ------------------------------------------------------------------------


def _read_lines(stream: Path, limit: int = 0) -> list[bytes]:
    lines = [line for line in stream.read_bytes().splitlines() if line.strip()]
    return lines[:limit] if limit else lines


def embedded_section(stream: Path, events: int, households: int, workdir: str) -> dict[str, Any]:
    return run_embedded_bench(events, households, Path(workdir), stream=stream)


def _jiahe_embedded_on(lines: list[bytes], home: Path) -> tuple[float, float]:
    """Wall and CPU seconds of jiahe's log + processor with ledgers over ``lines``."""
    runtime = bootstrap_embedded(home)
    try:
        runtime.warehouse  # open chdb outside the timed run  # noqa: B018
        with bulk_mode():
            began, cpu = time.perf_counter(), time.process_time()
            runtime.publish(lines, source="bench")
            runtime.process(EventTimeClock(None))
            return time.perf_counter() - began, time.process_time() - cpu
    finally:
        runtime.close()


def eventsourcing_section(stream: Path, prefix: int, workdir: str) -> dict[str, Any]:
    """The tuned eventsourcing peer on a prefix, its ledger checked against ``Replay``.

    jiahe's like-for-like path (SQLite log, processor, ledgers projected into chdb) runs
    on the same prefix in the same process, right before the peer, so the ratio does not
    depend on what else the machine was doing during the embedded section.
    """
    lines = _read_lines(stream, prefix)
    reference = bench_peers.jiahe_ledger(lines)
    began = time.perf_counter()
    bench_peers.jiahe_ledger(lines)
    replay_per_s = len(lines) / (time.perf_counter() - began)
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    jiahe_s, jiahe_cpu_s = _jiahe_embedded_on(lines, root / "jiahe")
    (root / "peer").mkdir()
    peer = bench_peers.run_eventsourcing_peer(lines, root / "peer", save_every=1000)
    ledger = peer.pop("ledger")
    jiahe_per_s = len(lines) / jiahe_s
    jiahe_per_cpu_s = len(lines) / jiahe_cpu_s
    peer.update({
        "events": len(lines),
        "ledger_equal_to_jiahe_replay": ledger == reference,
        "warnings_in_reference": len(reference),
        "jiahe_replay_same_prefix_events_per_s": round(replay_per_s),
        "jiahe_processor_with_ledgers_same_prefix_events_per_s": round(jiahe_per_s),
        "jiahe_processor_with_ledgers_same_prefix_events_per_cpu_s": round(jiahe_per_cpu_s),
        "jiahe_speedup": round(jiahe_per_s / max(peer["events_per_s"], 1), 1),
        "jiahe_speedup_cpu": round(jiahe_per_cpu_s / max(peer["events_per_cpu_s"], 1), 1),
    })
    return peer


def analytics_section(events: int, runs: int) -> dict[str, Any]:
    """``bench.analytics`` in its own interpreter (chdb: one path per process)."""
    code = (
        "import json, sys\n"
        "from bench import analytics as b\n"
        f"r = b.run({events}, max({events} // 10, 100), {runs})\n"
        "r['dashboard_queries'] = sorted(b.dashboard_queries(0, b.DISTRICT))\n"
        "print('@@JSON@@' + json.dumps(r))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_analytics failed:\n{done.stderr[-4000:]}")
    payload = done.stdout.rsplit("@@JSON@@", 1)[-1]
    report: dict[str, Any] = json.loads(payload)
    phase = report.get("after_optimize") or report["as_loaded"]
    dashboard = {name: phase[name] for name in report["dashboard_queries"] if name in phase}
    report["dashboard_p95_max_ms"] = max(s["p95_ms"] for s in dashboard.values())
    report["dashboard_p50_max_ms"] = max(s["p50_ms"] for s in dashboard.values())
    report["process_peak_rss_mb"] = report.get("peak_rss_mb")
    return report


def kafka_section(config: BenchConfig, stream: Path, workdir: Path) -> dict[str, Any]:
    lines = _read_lines(stream)
    faust = "peers" in config.sections
    with bench_kafka.broker(config.bootstrap) as bootstrap:
        return bench_kafka.run_kafka(
            bootstrap, lines, workdir, config.partitions, config.workers,
            config.latency_rate, config.latency_seconds, faust_peer=faust,
            faust_peer_events=config.faust_peer_events,
        )


# -- the run -------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    import platform

    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "load_average_at_start": os.getloadavg()}


def run(config: BenchConfig) -> dict[str, Any]:
    """Every selected section on one generated stream; results, targets and timings."""
    unknown = set(config.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; known: {SECTIONS}")
    began = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "config": asdict(config)}
    with tempfile.TemporaryDirectory(prefix="jiahe-bench-") as tmp:
        root = Path(tmp)
        stream = root / "stream.jsonl"
        counts = write_jsonl(StreamSpec(events=config.events, households=config.households,
                                        seed=SEED), stream)
        results["stream"] = {"events": counts.total, "households": config.households,
                             "valid": counts.valid, "duplicate": counts.duplicate,
                             "conflict": counts.conflict, "invalid": counts.invalid,
                             "districts": 18, "seed": SEED}
        _progress(f"stream: {results['stream']}")
        if "embedded" in config.sections:
            results["embedded"] = in_child(embedded_section, stream, config.events,
                                           config.households, str(root / "embedded"))
            _progress("embedded done")
        if "peers" in config.sections:
            results["eventsourcing_peer"] = in_child(
                eventsourcing_section, stream, config.eventsourcing_events,
                str(root / "eventsourcing"))
            _progress("eventsourcing peer done")
        if "kafka" in config.sections:
            (root / "kafka").mkdir()
            results["kafka"] = kafka_section(config, stream, root / "kafka")
            _progress("kafka done")
    if "analytics" in config.sections:
        results["analytics"] = analytics_section(config.analytics_events,
                                                 config.analytics_runs)
        _progress("analytics done")
    results["bench_process_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["wall_s"] = round(time.perf_counter() - began, 1)
    results["peak_rss_mb"] = peak_rss_summary(results)
    results["targets"] = targets(results)
    return results


# -- targets and the table -----------------------------------------------------------


def peak_rss_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS (MB) of every process the run started, by role."""
    out: dict[str, Any] = {"bench (parent)": results["bench_process_peak_rss_mb"]}
    if "embedded" in results:
        out["embedded (replay, processor, rebuild)"] = results["embedded"]["process_peak_rss_mb"]
    if "eventsourcing_peer" in results:
        out["eventsourcing peer"] = results["eventsourcing_peer"]["process_peak_rss_mb"]
    kafka = results.get("kafka", {})
    for run in kafka.get("worker_runs", []):
        out[f"jiahe worker ×{run['processes']}"] = run["peak_rss_mb"]
    if "faust_agent_peer" in kafka:
        out["faust agent peer"] = kafka["faust_agent_peer"]["peak_rss_mb"]
    if "latency" in kafka:
        out["jiahe worker (latency run)"] = kafka["latency"]["peak_rss_mb"]
    if "analytics" in results:
        out["analytics (chdb)"] = results["analytics"]["process_peak_rss_mb"]
    return out


@dataclass
class Target:
    name: str
    goal: str
    value: str
    met: bool | None  # None: not measured in this run
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets (BENCHMARKS.md) against this run's numbers."""
    out: list[Target] = []
    kafka = results.get("kafka", {})
    ratio = kafka.get("one_worker_vs_faust_agent")
    peer = kafka.get("faust_agent_peer", {})
    out.append(Target(
        "jiahe worker vs idiomatic Faust agent", "≥ 5×",
        f"{ratio}×" if ratio is not None else "not run", None if ratio is None else ratio >= 5,
        f"peer on the first {peer.get('events')} events" if peer else ""))
    es = results.get("eventsourcing_peer")
    if es:
        es_ratio = es["jiahe_speedup"]
        results["eventsourcing_ratio"] = es_ratio
        out.append(Target("jiahe processor (log + ledgers) vs eventsourcing projection",
                          "≥ 5×", f"{es_ratio}× wall, {es['jiahe_speedup_cpu']}× CPU",
                          es_ratio >= 5,
                          f"both on the first {es['events']} events, same process; "
                          "peer saves per 1,000 commands"))
    else:
        out.append(Target("jiahe processor vs eventsourcing projection", "≥ 5×", "not run",
                          None))
    share = kafka.get("one_worker_vs_ceiling")
    out.append(Target("one worker vs raw aiokafka consume", "≥ 50%",
                      f"{share:.1%}" if share is not None else "not run",
                      None if share is None else share >= 0.5))
    analytics = results.get("analytics")
    if analytics:
        p95 = analytics["dashboard_p95_max_ms"]
        out.append(Target("dashboard queries p95 (worst)", "< 100 ms",
                          f"{p95} ms at {analytics['load'].get('events')} events",
                          p95 < 100))
    else:
        out.append(Target("dashboard queries p95", "< 100 ms", "not run", None))
    if results["config"]["quick"]:
        wall = results["wall_s"]
        out.append(Target("jiahe bench --quick", "< 120 s", f"{wall} s", wall < 120))
    return [t.as_dict() for t in out]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, measure, value) lines of the main table."""
    out: list[tuple[str, str, str]] = []
    stream = results["stream"]
    out.append(("stream", "events / households / districts",
                f"{stream['events']:,} / {stream['households']:,} / {stream['districts']}"))
    out.append(("stream", "duplicate / conflict / invalid lines",
                f"{stream['duplicate']:,} / {stream['conflict']:,} / {stream['invalid']:,}"))
    for key in ("replay_events_per_s", "processor_with_ledgers_events_per_s",
                "process_without_warehouse_events_per_s", "publish_events_per_s", "rebuild_s",
                "lifecycle_records"):
        if "embedded" in results:
            out.append(("embedded", key, _fmt(results["embedded"][key])))
    kafka = results.get("kafka")
    if kafka:
        out.append(("kafka", "raw aiokafka getmany events/s",
                    _fmt(kafka["raw_getmany_events_per_s"])))
        for run in kafka["worker_runs"]:
            out.append(("kafka", f"{run['processes']} worker(s) events/s",
                        _fmt(run["events_per_s"])))
        if "latency" in kafka:
            lat = kafka["latency"]
            out.append(("kafka", f"publish→record p50 / p99 at {lat['rate_per_s']}/s",
                        f"{lat['p50_ms']} / {lat['p99_ms']} ms"))
        peer = kafka.get("faust_agent_peer")
        if peer:
            out.append(("peers", f"Faust agent events/s (first {peer['events']:,} events)",
                        _fmt(peer["events_per_s"])))
    es = results.get("eventsourcing_peer")
    if es:
        out.append(("peers", f"eventsourcing events/s (first {es['events']:,} events)",
                    _fmt(es["events_per_s"])))
        out.append(("peers", "jiahe log + processor + ledgers, same prefix, events/s",
                    _fmt(es["jiahe_processor_with_ledgers_same_prefix_events_per_s"])))
        out.append(("peers", "eventsourcing ledger = jiahe Replay ledger",
                    _fmt(es["ledger_equal_to_jiahe_replay"])))
    analytics = results.get("analytics")
    if analytics:
        phase = analytics.get("after_optimize") or analytics["as_loaded"]
        for name in analytics["dashboard_queries"]:
            stats = phase.get(name)
            if stats:
                out.append(("analytics", f"{name} p50 / p95",
                            f"{stats['p50_ms']} / {stats['p95_ms']} ms"))
    for role, mb in results["peak_rss_mb"].items():
        out.append(("peak RSS (MB)", role, _fmt(mb)))
    out.append(("run", "wall clock", f"{results['wall_s']} s"))
    return out


def render(results: dict[str, Any], console: Any) -> None:
    """The measurements, then the targets with met / MISSED."""
    from rich.table import Table

    table = Table("section", "measure", "value", title="jiahe bench")
    for section, measure, value in rows(results):
        table.add_row(section, measure, value)
    console.print(table)
    goals = Table("target", "goal", "measured", "", title="targets")
    for target in results["targets"]:
        met = target["met"]
        status = ("—" if met is None else "met" if met else "[bold red]MISSED[/bold red]")
        measured = target["value"] + (f" ({target['note']})" if target["note"] else "")
        goals.add_row(target["name"], target["goal"], measured, status)
    console.print(goals)
    load = os.getloadavg()
    console.print(f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
                  f"on {os.cpu_count()} CPUs")
