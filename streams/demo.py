"""``jiahe demo``: the main job on the embedded runtime, start to finish.

Builds a sample city on Harbin's 18 county-level units, publishes a realistic
stream (late, duplicate and invalid deliveries included) into the embedded
log, processes it with an event-time clock (reproducible: the same seed gives
the same warnings and ledgers), projects into chdb, and prints what a city
office would look at first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from events.orgunits import HARBIN_DISTRICTS
from events.sample import StreamSpec, write_jsonl
from projections.ledgers import warning_ledger
from streams.cli_embedded import bulk_mode, progress_bar, run_process, run_publish
from streams.clock import EventTimeClock
from streams.embedded import EmbeddedRuntime

DEMO_MARKER = "demo.marker"
LEVELS = ("red", "orange", "yellow")


class DemoHomeInUse(RuntimeError):
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
    runtime = EmbeddedRuntime(home)
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
    runtime = EmbeddedRuntime(home)
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
        "open_by_district": {d: dict(c) for d, c in sorted(by_district.items())},
        "escalations_by_level": dict(escalated),
        "dead_letters": runtime.log.dead_letter_counts(),
        "dead_letter_reasons": runtime.log.dead_letter_reasons(8),
    }


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
    console.print(f"warnings escalated, by highest level reached: "
                  f"{summary['escalations_by_level']}")
    console.print(f"dead letters (kept with reason): {summary['dead_letters']}")
    reasons = summary["dead_letter_reasons"]
    assert isinstance(reasons, list)
    for reason, count in reasons:
        console.print(f"  {count:>5} × {reason[:110]}")
    console.print(f"log: {home / 'log.sqlite3'}   warehouse (chdb): {home / 'warehouse'}")
    console.print(f"next: jiahe --home {home} ledger warnings --district 230102 | "
                  f"jiahe --home {home} sql \"SELECT type, count() FROM events GROUP BY type\"")


def write_summary(path: Path, summary: dict[str, object]) -> None:
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
