"""The ``jiahe`` command line (DESIGN.md, "Command-line contract")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from events.instants import InstantError, format_instant, parse_instant
from rules.engine import Engine
from rules.pack import DEFAULT_PACK_PATH, RulePackError, load_pack
from rules.replay import Counts, Replay

console = Console(stderr=False, highlight=False, soft_wrap=True)


def _instant(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantError as exc:
        raise click.BadParameter(f"{exc} (use ISO 8601 with an offset, e.g. "
                                 "2026-11-20T00:00:00+08:00)") from exc


def _engine(pack: Path | None) -> Engine:
    try:
        return Engine(load_pack(pack or DEFAULT_PACK_PATH))
    except RulePackError as exc:
        raise click.ClickException(str(exc)) from exc


def print_counts(counts: Counts, title: str) -> None:
    console.print(
        f"{title}: received {counts.received}, processed {counts.processed}, "
        f"duplicates {counts.duplicates}, rejected {counts.rejected}"
        + (f", notices {counts.notices}" if counts.notices else "")
    )
    for reason, n in counts.reasons.most_common(12):
        console.print(f"  rejected {n:>6} × {reason}")
    if not counts.reconciles:  # pragma: no cover - an invariant, reported loudly if broken
        console.print("[red]COUNTS DO NOT RECONCILE[/red]")


@click.group()
@click.option("--home", type=click.Path(path_type=Path), envvar="JIAHE_HOME", default=".jiahe",
              show_default=True, help="State of the embedded runtime ($JIAHE_HOME).")
@click.pass_context
def main(ctx: click.Context, home: Path) -> None:
    """jiahe (家和): risk early warning for a women's federation network."""
    ctx.obj = {"home": home}


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--warnings-out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the lifecycle records (JSONL).")
@click.option("--as-of", "as_of", help="Event-time clock: fire deadlines due up to this instant "
              "at the end of input (default: the latest occurred_at).")
@click.option("--pack", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule pack YAML (default: the built-in pack).")
@click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write each rejected line with its reason (JSONL).")
def replay(file: Path, warnings_out: Path, as_of: str | None, pack: Path | None,
           rejects_out: Path | None) -> None:
    """Run the engine alone over a JSONL file, in file order."""
    from streams.cli_embedded import bulk_mode

    limit = _instant(as_of)
    runner = Replay(_engine(pack))
    from streams.replay_file import replay_lines

    rejects = rejects_out.open("wb") if rejects_out else None
    try:
        with bulk_mode(), file.open("rb") as source, warnings_out.open("wb") as out:
            written = replay_lines(runner, source, out, limit, rejects)
    finally:
        if rejects is not None:
            rejects.close()
    print_counts(runner.counts, "replay")
    clock = format_instant(limit) if limit is not None else (
        format_instant(runner.max_occurred) if runner.max_occurred else "-")
    console.print(f"lifecycle records: {written} → {warnings_out} (as of {clock})")


@main.group()
def schema() -> None:
    """Event schemas for field-app authors."""


@schema.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schema_export(directory: Path) -> None:
    """Write one JSON Schema file per event type into DIRECTORY."""
    from events.schema_export import export_schemas

    for path in export_schemas(directory):
        console.print(str(path))


def emit_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Print rows as table, jsonl or csv (instants already ISO strings)."""
    if fmt == "jsonl":
        out = sys.stdout.buffer
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
        out.flush()
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["|".join(v) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row.get(c) for c in columns)])
        return
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)
    console.print(f"{len(rows)} rows")


@main.command()
@click.option("--events", default=60_000, show_default=True, help="Lines in the sample stream.")
@click.option("--households", default=12_000, show_default=True)
@click.option("--seed", default=2026, show_default=True)
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the summary as JSON.")
@click.pass_context
def demo(ctx: click.Context, events: int, households: int, seed: int,
         summary_json: Path | None) -> None:
    """The main job: a sample Harbin stream through the embedded runtime (no servers)."""
    from streams.demo import DemoHomeInUse, DemoSettings, run_demo, write_summary

    try:
        summary = run_demo(ctx.obj["home"], DemoSettings(events, households, seed), console)
    except DemoHomeInUse as exc:
        raise click.ClickException(str(exc)) from exc
    if summary_json:
        write_summary(summary_json, summary)


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--events", default=50_000, show_default=True)
@click.option("--households", default=10_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
def sample(out: Path, events: int, households: int, seed: int) -> None:
    """Write a sample event stream (JSONL) for a Harbin-like city."""
    from events.sample import StreamSpec, write_jsonl

    counts = write_jsonl(StreamSpec(events=events, households=households, seed=seed), out)
    console.print(f"{out}: {counts.total} lines ({counts.valid} valid, {counts.duplicate} "
                  f"duplicate, {counts.conflict} conflict, {counts.invalid} invalid)")


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
@click.option("--latency-seconds", type=float, help="Length of the latency run (default 15).")
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
def bench(quick: bool, events: int | None, households: int | None,
          analytics_events: int | None, analytics_runs: int | None,
          eventsourcing_events: int | None, faust_peer_events: int | None,
          latency_seconds: float | None, bootstrap: str | None, no_embedded: bool,
          no_kafka: bool, no_peers: bool, no_analytics: bool, only: tuple[str, ...],
          json_out: Path | None) -> None:
    """Issue 6's benchmarks on one stream: embedded, Kafka, peers, analytics, RSS."""
    from streams.bench import run
    from streams.bench_suite import SECTIONS, render

    skipped = {name for name, off in (("embedded", no_embedded), ("kafka", no_kafka),
                                      ("peers", no_peers), ("analytics", no_analytics)) if off}
    sections = tuple(s for s in SECTIONS if (not only or s in only) and s not in skipped)
    results = run(quick, events, households=households, analytics_events=analytics_events,
                  analytics_runs=analytics_runs, eventsourcing_events=eventsourcing_events,
                  faust_peer_events=faust_peer_events, latency_seconds=latency_seconds,
                  bootstrap=bootstrap, sections=sections)
    render(results, console)
    if json_out:
        json_out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def _register_runtimes() -> None:
    from api import cli as cli_api
    from rules import cli_rules
    from streams import cli_embedded, cli_kafka, cli_privacy, cli_soak, cli_verify

    cli_embedded.register(main)
    cli_kafka.register(main)
    cli_api.register(main)
    cli_rules.register(main)
    cli_verify.register(main)
    cli_privacy.register(main)
    cli_soak.register(main)


_register_runtimes()

if __name__ == "__main__":  # pragma: no cover
    main()
