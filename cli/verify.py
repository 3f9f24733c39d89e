"""``jiahe verify``: check the hash chains, the warehouse and an optional anchor."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from app.verify import KafkaVerifyReport, TopicCheck, verify_home, verify_kafka
from streams.embedded.log import SqliteLog
from streams.kafka.settings import KafkaSettings

console = Console(stderr=False, highlight=False, soft_wrap=True)


def register(main: click.Group) -> None:
    main.add_command(verify)


def _head(report: object) -> str:
    head = getattr(report, "head", None)
    return f"head seq {head.seq} {head.hash[:12]}…" if head else "no head"


@click.command()
@click.option("--home", "home_opt", type=click.Path(file_okay=False, path_type=Path),
              help="Home of the embedded runtime (default: the global --home / $JIAHE_HOME).")
@click.option("--anchor", type=click.Path(dir_okay=False, path_type=Path),
              help="A file kept elsewhere with the chain heads: written when absent, "
                   "compared when present.")
@click.option("--update-anchor", is_flag=True,
              help="After a clean check, advance the anchor to the current heads.")
@click.option("--no-warehouse", is_flag=True,
              help="Skip comparing the warehouse's lifecycle table with the log.")
@click.option("--bootstrap", metavar="HOST:PORT",
              help="Check the Kafka runtime at HOST:PORT instead of the embedded home: the "
                   "lifecycle records on jiahe.warnings, the home's key store (keys.sqlite3) "
                   "and the sealed fields on jiahe.events.")
@click.option("--topic-prefix", default="", help="With --bootstrap: the topics' prefix.")
@click.pass_context
def verify(ctx: click.Context, home_opt: Path | None, anchor: Path | None, update_anchor: bool,
           no_warehouse: bool, bootstrap: str | None, topic_prefix: str) -> None:
    """Check that the warning lifecycle and the audit trail are intact (exit 1 if not).

    Walks both hash chains (edited, removed, reordered rows, truncated tails)
    and compares the warehouse's lifecycle rows with the log. With --bootstrap,
    checks the Kafka runtime's topics and key store instead.
    """
    home = home_opt or (ctx.obj or {}).get("home") or Path(os.environ.get("JIAHE_HOME", ".jiahe"))
    if bootstrap:
        _verify_kafka(ctx, Path(home), KafkaSettings(bootstrap, topic_prefix), anchor,
                      update_anchor)
        return
    try:
        report = verify_home(Path(home), warehouse=not no_warehouse, anchor=anchor,
                             update_anchor=update_anchor)
    except FileNotFoundError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = 2  # 1 is reserved for "not intact"
        raise error from exc
    for chain, title in ((report.lifecycle, "lifecycle chain"), (report.audit, "audit chain")):
        status = "OK" if chain.ok else f"{len(chain.problems)} problem(s)"
        console.print(f"{title}: {chain.rows} rows, {_head(chain)}: {status}")
        for note in chain.notes:
            console.print(f"  note: {escape(note)}")
    if report.warehouse is not None:
        wh = report.warehouse
        status = "OK" if wh.ok else f"{len(wh.problems)} problem(s)"
        pending = f", {wh.pending} not yet projected" if wh.pending else ""
        console.print(f"warehouse lifecycle: {wh.compared} records compared{pending}: {status}")
    for note in report.anchor_notes:
        console.print(f"anchor: {escape(note)}")
    sealed = _sealed_field_problems(Path(home))
    console.print(f"sealed personal fields: {'OK' if not sealed else f'{len(sealed)} problem(s)'}")
    problems = [*report.problems, *sealed]
    for problem in problems:
        console.print(f"PROBLEM {escape(problem)}")
    console.print("verify: OK" if not problems else f"verify: FAILED ({len(problems)} problems)")
    ctx.exit(0 if not problems else 1)


def _sealed_field_problems(home: Path) -> list[str]:
    """Sealed fields that fail authentication (edited, moved between events or households)."""
    log = SqliteLog(home / "log.sqlite3")
    try:
        found = log.check_sealed_fields()
        return [f"event {p.event_id} field {p.field}: {p.reason}" for p in found]
    finally:
        log.close()


def _verify_kafka(ctx: click.Context, home: Path, settings: KafkaSettings,
                  anchor: Path | None, update_anchor: bool) -> None:
    try:
        report = verify_kafka(home, settings, anchor=anchor, update_anchor=update_anchor)
    except (FileNotFoundError, TimeoutError) as exc:
        error = click.ClickException(str(exc))
        error.exit_code = 2  # 1 is reserved for "not intact"
        raise error from exc
    _print_topic(report.warnings, "lifecycle records", "records")
    if report.events is not None:
        _print_topic(report.events, "sealed personal fields", "events")
    status = "OK" if not report.key_problems else f"{len(report.key_problems)} problem(s)"
    console.print(f"key store: {report.keys} household keys: {status}")
    audit = report.audit
    status = "OK" if audit.ok else f"{len(audit.problems)} problem(s)"
    console.print(f"audit chain: {audit.rows} rows, {_head(audit)}: {status}")
    for note in audit.notes:
        console.print(f"  note: {escape(note)}")
    _finish(ctx, report)


def _print_topic(check: TopicCheck, title: str, unit: str) -> None:
    status = "OK" if not check.problems else f"{len(check.problems)} problem(s)"
    again = f" ({check.duplicates} re-emitted copies)" if check.duplicates else ""
    console.print(f"{title} on {check.topic}: {check.records} {unit}{again}: {status}")
    for note in check.notes:
        console.print(f"  note: {escape(note)}")


def _finish(ctx: click.Context, report: KafkaVerifyReport) -> None:
    for note in report.anchor_notes:
        console.print(f"anchor: {escape(note)}")
    problems = report.problems
    for problem in problems:
        console.print(f"PROBLEM {escape(problem)}")
    console.print("verify: OK" if not problems else f"verify: FAILED ({len(problems)} problems)")
    ctx.exit(0 if not problems else 1)
