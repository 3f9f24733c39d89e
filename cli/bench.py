"""``jiahe bench``: the benchmark suite (``bench/``) on one stream, with its targets."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import click
import orjson

from bench import scale
from bench.suite import SECTIONS, render, run_bench
from cli.output import console


def register(main: click.Group) -> None:
    """Add ``bench`` to the ``jiahe`` group."""

    @main.command()
    @click.option("--quick", is_flag=True,
                  help="CI smoke: 20k events, 200k analytics events, short runs (< 2 min).")
    @click.option("--events", type=int, help="Stream size (default 1M; 20k with --quick).")
    @click.option("--households", type=int, help="Default: events / 10 (100k for 1M).")
    @click.option("--analytics-events", type=int, help="Warehouse size (default 10M).")
    @click.option("--analytics-runs", type=int, help="Timed runs per query (default 20).")
    @click.option("--eventsourcing-events", type=int,
                  help="Prefix the eventsourcing peer processes (default 50k; 0 = all).")
    @click.option("--faust-peer-events", type=int,
                  help="Prefix the Faust agent peer processes (default 100k; 0 = all).")
    @click.option("--latency-seconds", type=float,
                  help="Length of the latency run (default 15).")
    @click.option("--bootstrap", envvar="JIAHE_KAFKA_BOOTSTRAP",
                  help="Use this broker (default: start a private one, stop it after).")
    @click.option("--no-embedded", is_flag=True)
    @click.option("--no-kafka", is_flag=True)
    @click.option("--no-peers", is_flag=True)
    @click.option("--no-analytics", is_flag=True)
    @click.option("--only", "only", multiple=True,
                  type=click.Choice(["embedded", "kafka", "peers", "analytics"]),
                  help="Run only these sections (repeatable).")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
                  help="Also write the results as JSON.")
    @click.option("--scale", "scale_sizes", type=int, multiple=True,
                  help="Instead: sample, publish, process --no-project and rebuild at N events "
                       "(N/10 households), one process per step (repeatable: 1000000 and "
                       "10000000); events/s, CPU s, peak RSS, disk bytes per event.")
    def bench(quick: bool, events: int | None, households: int | None,
              analytics_events: int | None, analytics_runs: int | None,
              eventsourcing_events: int | None, faust_peer_events: int | None,
              latency_seconds: float | None, bootstrap: str | None, no_embedded: bool,
              no_kafka: bool, no_peers: bool, no_analytics: bool, only: tuple[str, ...],
              json_out: Path | None, scale_sizes: tuple[int, ...]) -> None:
        """Benchmarks on one stream: embedded, Kafka, peers, analytics, RSS."""
        if scale_sizes:
            with TemporaryDirectory(prefix="jiahe-scale-") as tmp:
                report = scale.run(list(scale_sizes), Path(tmp))
            console.print(scale.render(report), markup=False, highlight=False)
            if json_out:
                json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
            return
        skipped = {name for name, off in (("embedded", no_embedded), ("kafka", no_kafka),
                                          ("peers", no_peers), ("analytics", no_analytics))
                   if off}
        sections = tuple(s for s in SECTIONS if (not only or s in only) and s not in skipped)
        results = run_bench(quick, events, households=households, analytics_events=analytics_events,
                      analytics_runs=analytics_runs, eventsourcing_events=eventsourcing_events,
                      faust_peer_events=faust_peer_events, latency_seconds=latency_seconds,
                      bootstrap=bootstrap, sections=sections)
        render(results, console)
        if json_out:
            json_out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
