"""Commands on files alone, no home: ``replay``, ``sample``, ``schema export``."""

from __future__ import annotations

from pathlib import Path

import click

from app.bulk import bulk_mode
from app.replay import replay_lines
from cli.output import console, instant_option, print_counts
from events.instants import format_instant
from events.sample import StreamSpec, write_jsonl
from events.schema_export import export_schemas
from rules.engine import Engine
from rules.pack import DEFAULT_PACK_PATH, RulePackError, load_pack
from rules.replay import Replay


def _engine(pack: Path | None) -> Engine:
    try:
        return Engine(load_pack(pack or DEFAULT_PACK_PATH))
    except RulePackError as exc:
        raise click.ClickException(str(exc)) from exc


def register(main: click.Group) -> None:
    """Add ``replay``, ``sample`` and ``schema`` to the ``jiahe`` group."""

    @main.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--warnings-out", required=True,
                  type=click.Path(dir_okay=False, path_type=Path),
                  help="Where to write the lifecycle records (JSONL).")
    @click.option("--as-of", "as_of", help="Event-time clock: fire deadlines due up to this "
                  "instant at the end of input (default: the latest occurred_at).")
    @click.option("--pack", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="Rule pack YAML (default: the built-in pack).")
    @click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path),
                  help="Also write each rejected line with its reason (JSONL).")
    def replay(file: Path, warnings_out: Path, as_of: str | None, pack: Path | None,
               rejects_out: Path | None) -> None:
        """Run the engine alone over a JSONL file, in file order."""
        limit = instant_option(as_of)
        runner = Replay(_engine(pack))
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

    @main.command()
    @click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--events", default=50_000, show_default=True)
    @click.option("--households", default=10_000, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    def sample(out: Path, events: int, households: int, seed: int) -> None:
        """Write a sample event stream (JSONL) for a Harbin-like city."""
        counts = write_jsonl(StreamSpec(events=events, households=households, seed=seed), out)
        console.print(f"{out}: {counts.total} lines ({counts.valid} valid, {counts.duplicate} "
                      f"duplicate, {counts.conflict} conflict, {counts.invalid} invalid)")

    @main.group()
    def schema() -> None:
        """Event schemas for field-app authors."""

    @schema.command("export")
    @click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
    def schema_export(directory: Path) -> None:
        """Write one JSON Schema file per event type into DIRECTORY."""
        for path in export_schemas(directory):
            console.print(str(path))
