"""``jiahe demo``: the main job on the embedded runtime, start to finish.

Builds a sample city on Harbin's 18 county-level units, publishes a realistic
stream (late, duplicate and invalid deliveries included) into the embedded
log, processes it with an event-time clock (reproducible: the same seed gives
the same warnings and ledgers), projects into chdb, and prints what a city
office would look at first: open warnings and screening coverage (排查覆盖) by
district, then how to open the chairs' workspace and the cadres' field app.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from app.bootstrap import bootstrap_embedded
from app.bulk import bulk_mode
from cli.embedded import run_process, run_publish
from cli.output import console as stdout_console
from cli.output import progress_bar
from events.errors import JiaheError
from events.orgunits import HARBIN_DISTRICTS
from events.sample import StreamSpec, write_jsonl
from projections.ledger_common import coverage_ratio
from projections.ledgers import coverage_ledger, warning_ledger
from streams.clock import EventTimeClock
from streams.embedded.runtime import EmbeddedRuntime

DEMO_MARKER = "demo.marker"
LEVELS = ("red", "orange", "yellow")


class DemoHomeInUse(JiaheError, RuntimeError):
    """The home holds data that ``jiahe demo`` did not create; it is never wiped."""


@dataclass
class DemoSettings:
    events: int = 60_000
    households: int = 12_000
    seed: int = 2026


def prepare_home(home: Path) -> None:
    """Start from an empty home; replace only a previous demo, never other data."""
    if not home.exists() or not any(home.iterdir()):
        return
    if not (home / DEMO_MARKER).exists():
        raise DemoHomeInUse(
            f"{home} already holds a jiahe log that the demo did not create; "
            "run the demo elsewhere with `jiahe --home DIR demo` (or JIAHE_HOME=DIR)"
        )
    runtime = bootstrap_embedded(home)
    runtime.wipe()


def run_demo(home: Path, settings: DemoSettings, console: Console) -> dict[str, object]:
    prepare_home(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("created by jiahe demo; the next demo replaces this home\n")
    stream = home / "demo-events.jsonl"
    spec = StreamSpec(events=settings.events, households=settings.households, seed=settings.seed)
    console.print(f"[bold]家和 jiahe demo[/bold] — sample city: Harbin, 18 county-level units, "
                  f"{settings.households:,} households, seed {settings.seed}")
    with progress_bar() as bar:
        task = bar.add_task("generate stream", total=settings.events)
        generated = write_jsonl(spec, stream, progress=lambda n: bar.advance(task, n))
    console.print(f"stream: {stream} ({generated.total:,} lines: {generated.late:,} late, "
                  f"{generated.duplicate + generated.conflict:,} re-delivered, "
                  f"{generated.invalid:,} invalid)")
    runtime = bootstrap_embedded(home)
    try:
        with bulk_mode():
            published = run_publish(runtime, stream)
            result = run_process(runtime, EventTimeClock(None))
        summary = summarize(runtime, published, result)
    finally:
        runtime.close()
    render(console, summary, home)
    return summary


def summarize(
    runtime: EmbeddedRuntime, published: dict[str, int], result: dict[str, object]
) -> dict[str, object]:
    rows = warning_ledger(runtime.warehouse)
    open_rows = [r for r in rows if r["status"] != "resolved"]
    by_district: dict[str, Counter[str]] = {}
    for row in open_rows:
        by_district.setdefault(row["district"], Counter())[row["level"]] += 1
    escalated = Counter(r["highest_handling_level"] for r in rows if r["escalations"])
    return {
        "published": published,
        "processed": result,
        "warnings": len(rows),
        "coverage_by_district": coverage_by_district(runtime),
        "open_by_district": {d: dict(c) for d, c in sorted(by_district.items())},
        "escalations_by_level": dict(escalated),
        "dead_letters": runtime.log.dead_letter_counts(),
        "dead_letter_reasons": runtime.log.dead_letter_reasons(8),
    }


COVERAGE_COUNTS = ("registered", "covered", "key_registered", "key_covered")


def coverage_by_district(runtime: EmbeddedRuntime) -> dict[str, dict[str, float]]:
    """The coverage ledger's community rows summed per district, with the same ratio."""
    sums: dict[str, Counter[str]] = {}
    for row in coverage_ledger(runtime.warehouse):
        counts = sums.setdefault(row["district"], Counter())
        for name in COVERAGE_COUNTS:
            counts[name] += row[name]
    return {
        district: {**{name: c[name] for name in COVERAGE_COUNTS},
                   "coverage": coverage_ratio(c["covered"], c["registered"])}
        for district, c in sorted(sums.items())
    }


def render_coverage(console: Console, summary: dict[str, object]) -> None:
    by_district = summary["coverage_by_district"]
    assert isinstance(by_district, dict)
    table = Table("district", "name", "registered", "covered", "coverage", "key", "key covered",
                  title="screening coverage by district (排查覆盖; key: key households)")
    totals: Counter[str] = Counter()
    for district, row in by_district.items():
        totals.update({name: int(row[name]) for name in COVERAGE_COUNTS})
        table.add_row(district[:6], HARBIN_DISTRICTS.get(district[:6], "?"),
                      str(row["registered"]), str(row["covered"]), f"{row['coverage']:.2%}",
                      str(row["key_registered"]), str(row["key_covered"]))
    ratio = coverage_ratio(totals["covered"], totals["registered"])
    table.add_row("all", "哈尔滨市", str(totals["registered"]), str(totals["covered"]),
                  f"{ratio:.2%}", str(totals["key_registered"]), str(totals["key_covered"]),
                  style="bold")
    console.print(table)


def render_next_steps(console: Console, home: Path) -> None:
    """How to look at the result in a browser: the API serves both pages."""
    console.print("open the workspace and the field app (one server, 127.0.0.1):")
    console.print(f"  jiahe --home {home} users add chair102 --role chair --org-unit 230102000000")
    console.print(f"  jiahe --home {home} users add cadre102 --role cadre --org-unit 230102001001")
    console.print(f"  jiahe --home {home} api --port 8000")
    console.print("  chairs' workspace (工作台): http://127.0.0.1:8000/workspace/  — sign in "
                  "with the chair's token")
    console.print("  cadres' field app (入户排查): http://127.0.0.1:8000/field/  — sign in with "
                  "the cadre's token; installable, works offline")


def render(console: Console, summary: dict[str, object], home: Path) -> None:
    published = summary["published"]
    assert isinstance(published, dict)
    processed = summary["processed"]
    assert isinstance(processed, dict)
    console.print(
        f"published: received {published['received']:,} = accepted {published['accepted']:,}"
        f" + duplicate {published['duplicates']:,} + rejected {published['rejected']:,}"
    )
    console.print(f"processed: {processed['processed']:,} events → lifecycle records "
                  f"{processed['lifecycle_records']}")
    table = Table("district", "name", *LEVELS, "open", title="open warnings by district and level")
    open_by_district = summary["open_by_district"]
    assert isinstance(open_by_district, dict)
    totals: Counter[str] = Counter()
    for district, counts in open_by_district.items():
        totals.update(counts)
        table.add_row(district, HARBIN_DISTRICTS.get(district[:6], "?"),
                      *(str(counts.get(level, 0)) for level in LEVELS),
                      str(sum(counts.values())))
    table.add_row("all", "哈尔滨市", *(str(totals.get(level, 0)) for level in LEVELS),
                  str(sum(totals.values())), style="bold")
    console.print(table)
    render_coverage(console, summary)
    console.print(f"warnings escalated, by highest level reached: "
                  f"{summary['escalations_by_level']}")
    console.print(f"dead letters (kept with reason): {summary['dead_letters']}")
    reasons = summary["dead_letter_reasons"]
    assert isinstance(reasons, list)
    for reason, count in reasons:
        console.print(f"  {count:>5} × {reason[:110]}")
    console.print(f"log: {home / 'log.sqlite3'}   warehouse (chdb): {home / 'warehouse'}")
    console.print(f"next: jiahe --home {home} ledger coverage --district 230102 | "
                  f"jiahe --home {home} ledger warnings --district 230102 | "
                  f"jiahe --home {home} sql \"SELECT type, count() FROM events GROUP BY type\"")
    render_next_steps(console, home)


def write_summary(path: Path, summary: dict[str, object]) -> None:
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def register(main: click.Group) -> None:
    """Add ``demo`` to the ``jiahe`` group."""

    @main.command()
    @click.option("--events", default=60_000, show_default=True,
                  help="Lines in the sample stream.")
    @click.option("--households", default=12_000, show_default=True)
    @click.option("--seed", default=2026, show_default=True)
    @click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
                  help="Also write the summary as JSON.")
    @click.pass_context
    def demo(ctx: click.Context, events: int, households: int, seed: int,
             summary_json: Path | None) -> None:
        """The main job: a sample Harbin stream through the embedded runtime (no servers)."""
        try:
            summary = run_demo(ctx.obj["home"], DemoSettings(events, households, seed),
                               stdout_console)
        except DemoHomeInUse as exc:
            raise click.ClickException(str(exc)) from exc
        if summary_json:
            write_summary(summary_json, summary)
