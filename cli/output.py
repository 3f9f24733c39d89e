"""What every command prints through: one console, rows as table/jsonl/csv, counts, progress."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from events.instants import InstantError, parse_instant
from rules.replay import Counts

console = Console(stderr=False, highlight=False, soft_wrap=True)


def instant_option(value: str | None, param_hint: str = "--as-of") -> int | None:
    """An ISO 8601 option value as microseconds; a clear usage error when it has no offset."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantError as exc:
        raise click.BadParameter(
            f"{exc} (use ISO 8601 with an offset, e.g. 2026-11-20T00:00:00+08:00)",
            param_hint=param_hint,
        ) from exc


def print_counts(counts: Counts, title: str) -> None:
    console.print(
        f"{title}: received {counts.received}, processed {counts.processed}, "
        f"duplicates {counts.duplicates}, rejected {counts.rejected}"
        + (f", notices {counts.notices}" if counts.notices else "")
    )
    for reason, n in counts.reasons.most_common(12):
        console.print(f"  rejected {n:>6} × {reason}")
    for reason, n in counts.notice_reasons.most_common(12):
        console.print(f"  notice   {n:>6} × {reason}")
    if not counts.reconciles:  # pragma: no cover - an invariant, reported loudly if broken
        console.print("[red]COUNTS DO NOT RECONCILE[/red]")


def emit_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Print rows as table, jsonl or csv (instants already ISO strings)."""
    if fmt == "jsonl":
        out = sys.stdout.buffer
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
        out.flush()
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["|".join(v) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row.get(c) for c in columns)])
        return
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)
    console.print(f"{len(rows)} rows")


def progress_bar() -> Progress:
    """A bar on a terminal; silent when output goes to a file or a pipe."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
        disable=not sys.stderr.isatty() and not sys.stdout.isatty(),
    )
