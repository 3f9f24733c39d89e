"""CLI commands of the embedded runtime: publish, process, ledger, sql, rebuild, dlq."""

from __future__ import annotations

from pathlib import Path

import click

from app.bootstrap import bootstrap_embedded
from app.bulk import bulk_mode
from cli.output import console, emit_rows, instant_option, progress_bar
from privacy.keystore import kafka_keyring
from projections import ledgers
from rules.pack import RulePackError
from sdk.publisher import publish_file
from streams.clock import Clock, EventTimeClock, WallClock
from streams.embedded.runtime import EmbeddedRuntime

LEDGERS = {
    "warnings": (
        "warning_ledger",
        ["warning_id", "rule_id", "level", "household_id", "org_unit", "district", "raised_at",
         "acknowledged_at", "resolved_at", "status", "handling_level", "handling_org_unit",
         "escalations", "highest_handling_level", "minutes_to_acknowledge",
         "minutes_to_resolve", "risk", "reopened"],
    ),
    "households": (
        "household_ledger",
        ["household_id", "org_unit", "district", "open_warnings", "highest_open_level",
         "indicators", "last_visit_at", "last_followup_at", "petitions_30d", "petitions_90d",
         "first_seen_at", "registered", "flags", "next_visit_due", "visit_overdue"],
    ),
    "guardianship": (
        "guardianship_ledger",
        ["household_id", "child_ref", "org_unit", "district", "gap_recorded_at", "restored_at",
         "last_followup_at", "overdue"],
    ),
    "coverage": (
        "coverage_ledger",
        ["community", "district", "registered", "covered", "key_registered", "key_covered",
         "coverage"],
    ),
    "referrals": (
        "referral_ledger",
        ["referral_id", "household_id", "org_unit", "district", "agency", "basis", "warning_id",
         "sent_at", "answered_at", "status", "outcome", "minutes_to_answer", "overdue"],
    ),
}


def open_runtime(ctx: click.Context, pack: Path | None = None) -> EmbeddedRuntime:
    try:
        return bootstrap_embedded(ctx.obj["home"], pack=pack)
    except RulePackError as exc:
        raise click.ClickException(str(exc)) from exc


def run_publish(runtime: EmbeddedRuntime, file: Path) -> dict[str, int]:
    total = sum(1 for _ in file.open("rb"))
    with progress_bar() as bar, file.open("rb") as source:
        task = bar.add_task(f"publish {file.name}", total=total)
        counts = runtime.publish(source, source=f"file:{file.name}",
                                 progress=lambda n: bar.advance(task, n))
    return counts.as_dict()


def run_process(runtime: EmbeddedRuntime, clock: Clock, project: bool = True) -> dict[str, object]:
    pending = runtime.log.end_position() - runtime.log.checkpoint("processor")
    with progress_bar() as bar:
        task = bar.add_task("process", total=max(pending, 0))
        report = runtime.process(clock, progress=lambda n: bar.advance(task, n), project=project)
    result: dict[str, object] = report.as_dict()
    if project:
        events, lifecycle = runtime.pending_projection()
        result["warehouse_pending"] = {"events": events, "lifecycle": lifecycle}
    return result


def _publish_to_kafka(file: Path, bootstrap: str, outbox: Path, home: Path) -> None:
    """Through the publisher SDK: validate, seal personal fields with the home's key store
    (privacy.keystore), keep in the durable outbox, send with acks=all."""
    outbox.parent.mkdir(parents=True, exist_ok=True)
    keyring = kafka_keyring(home)
    try:
        result = publish_file(file, bootstrap, outbox, keyring=keyring)
    finally:
        keyring.close()
    console.print(
        f"published {file} → {bootstrap}: received {result.received}, accepted "
        f"{result.accepted}, duplicate {result.duplicates}, rejected {result.rejected}; "
        f"sent {result.sent}, queued {result.queued}"
    )
    for reason, count in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:12]:
        console.print(f"  rejected {count:>6} × {reason}")
    if result.queued:
        console.print(f"[yellow]broker unreachable ({result.error}); {result.queued} events wait "
                      f"in the outbox {outbox} and go out on the next publish[/yellow]")


def register(main: click.Group) -> None:
    """Add the embedded runtime's commands to the ``jiahe`` group."""
    @main.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--bootstrap", help="Publish to Kafka at HOST:PORT instead of the embedded log.")
    @click.option("--outbox", type=click.Path(dir_okay=False, path_type=Path),
                  help="Kafka mode: the durable outbox file (default $JIAHE_HOME/outbox.sqlite3).")
    @click.pass_context
    def publish(ctx: click.Context, file: Path, bootstrap: str | None, outbox: Path | None) -> None:
        """Validate FILE (JSONL) and append it to the log; prints accepted/duplicate/rejected."""
        if bootstrap:
            _publish_to_kafka(file, bootstrap, outbox or ctx.obj["home"] / "outbox.sqlite3",
                              ctx.obj["home"])
            return
        runtime = open_runtime(ctx)
        try:
            with bulk_mode():
                counts = run_publish(runtime, file)
        finally:
            runtime.close()
        console.print(
            f"published {file}: received {counts['received']}, accepted {counts['accepted']}, "
            f"duplicate {counts['duplicates']}, rejected {counts['rejected']}"
        )
        if counts["rejected"]:
            console.print("rejected input is kept with its reason: `jiahe dlq`")

    @main.command()
    @click.option("--as-of", "as_of", help="Event-time clock: fire deadlines due ≤ T at the end "
                  "of the log. Without it the wall clock fires what is due now.")
    @click.option("--pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--no-project", is_flag=True, help="Do not update the warehouse.")
    @click.pass_context
    def process(ctx: click.Context, as_of: str | None, pack: Path | None,
                no_project: bool) -> None:
        """Run the embedded processor to the end of the log (then update the warehouse)."""
        limit = instant_option(as_of)
        clock: Clock = EventTimeClock(limit) if as_of else WallClock()
        runtime = open_runtime(ctx, pack)
        try:
            with bulk_mode():
                result = run_process(runtime, clock, project=not no_project)
        finally:
            runtime.close()
        console.print(f"clock: {clock.describe()}")
        console.print(
            f"processed: received {result['received']}, processed {result['processed']}, "
            f"duplicates {result['duplicates']}, rejected {result['rejected']}, "
            f"notices {result['notices']}"
        )
        console.print(f"lifecycle records: {result['lifecycle_records']}")
        if "warehouse_pending" in result:
            console.print(f"warehouse: up to date with the log ({result['warehouse_pending']} "
                          "rows pending)")

    @main.command()
    @click.argument("name", type=click.Choice(sorted(LEDGERS)))
    @click.option("--district", help="Only this district (6- or 12-digit code).")
    @click.option("--as-of", "as_of", help="What was known at T (ISO 8601 with offset).")
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]),
                  default="table", show_default=True)
    @click.pass_context
    def ledger(ctx: click.Context, name: str, district: str | None, as_of: str | None,
               fmt: str) -> None:
        """Print a ledger (warnings | households | guardianship | coverage | referrals)."""
        limit = instant_option(as_of)
        runtime = open_runtime(ctx)
        try:
            runtime.project()
            function_name, columns = LEDGERS[name]
            try:
                rows = getattr(ledgers, function_name)(runtime.warehouse, as_of=limit,
                                                        district=district)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        finally:
            runtime.close()
        emit_rows(rows, columns, fmt)

    @main.command()
    @click.argument("statement")
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]),
                  default="table", show_default=True)
    @click.pass_context
    def sql(ctx: click.Context, statement: str, fmt: str) -> None:
        """Run a SELECT on the embedded warehouse (chdb)."""
        runtime = open_runtime(ctx)
        try:
            runtime.project()
            try:
                result = runtime.warehouse.query(statement)
            except Exception as exc:  # the engine's own message is the useful part
                raise click.ClickException(f"query failed: {exc}") from exc
        finally:
            runtime.close()
        emit_rows(result.dicts(), list(result.columns), fmt)

    @main.command()
    @click.pass_context
    def rebuild(ctx: click.Context) -> None:
        """Drop every projection and rebuild it from the log."""
        runtime = open_runtime(ctx)
        try:
            with bulk_mode(), progress_bar() as bar:
                total = runtime.log.end_position() + runtime.log.end_seq()
                task = bar.add_task("rebuild", total=total)
                report = runtime.rebuild(progress=lambda n: bar.advance(task, n))
        finally:
            runtime.close()
        console.print(f"rebuilt: {report.events} events, {report.lifecycle} lifecycle records")

    @main.command()
    @click.option("--limit", default=20, show_default=True)
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]),
                  default="table", show_default=True)
    @click.pass_context
    def dlq(ctx: click.Context, limit: int, fmt: str) -> None:
        """Dead letters: rejected input grouped by reason (the input itself is kept)."""
        runtime = open_runtime(ctx)
        try:
            rows = [{"reason": r, "count": n} for r, n in runtime.log.dead_letter_reasons(limit)]
            stages = runtime.log.dead_letter_counts()
        finally:
            runtime.close()
        emit_rows(rows, ["reason", "count"], fmt)
        if fmt == "table":
            console.print(f"dead letters by stage: {stages}")
