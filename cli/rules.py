"""``jiahe rules backtest``: which warnings a candidate rule pack would change.

``jiahe rules backtest --pack NEW.yaml EVENTS.jsonl [--base CURRENT.yaml]
[--as-of T] [--format table|jsonl]`` replays the history with the current
pack (default: the built-in one) and with the candidate, and prints the
warnings that would appear, vanish or change, with counts per rule and per
district, and for each rule the assessed risk of its warnings (low / medium /
high / unassessed, from the chairs' ``warning.assessed`` in the history) with
its precision — the share of assessed warnings judged medium or high — in both
runs (``rules.backtest``). A pack that does not validate is refused (exit 1)
with the rule and the reason, before any event is read.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from events.instants import InstantError, parse_instant
from rules.backtest import KINDS, RISK_COLUMNS, BacktestResult, RiskProfile, backtest, summary
from rules.pack import DEFAULT_PACK_PATH, RulePack, RulePackError, load_pack


def _load(path: Path, role: str) -> RulePack:
    try:
        return load_pack(path)
    except RulePackError as exc:
        raise click.ClickException(f"{role} pack {path} refused: {exc}") from exc


def _echo_table(result: BacktestResult) -> None:
    head = summary(result)
    events = result.counts
    click.echo(f"backtest: {head['base_pack']} (base) → {head['candidate_pack']} (candidate), "
               f"as_of {head['as_of']}")
    click.echo(f"events: received {events.received}, processed {events.processed}, "
               f"duplicates {events.duplicates}, rejected {events.rejected}")
    click.echo(f"warnings: base {result.base_warnings}, candidate {result.candidate_warnings}; "
               f"appear {head['appear']}, vanish {head['vanish']}, change {head['change']}")
    if result.differences:
        click.echo("")
        click.echo(f"{'CHANGE':<7} {'warning_id':<18} {'rule':<26} {'level':<7} "
                   f"{'district':<13} {'household':<20} raised_at")
        for diff in result.differences:
            w = diff.warning
            click.echo(f"{diff.kind.upper():<7} {w.warning_id:<18} {w.rule_id:<26} "
                       f"{w.level:<7} {w.district:<13} {w.household_id or '(district)':<20} "
                       f"{w.raised_at}")
            for text in diff.changes():
                click.echo(f"{'':<8}{text}")
    for title, key in (("rule", "rule_id"), ("district", "district")):
        groups = result.by(key)
        if not groups:
            continue
        click.echo("")
        click.echo(f"{'by ' + title:<28} {'appear':>7} {'vanish':>7} {'change':>7}")
        for name, counter in groups.items():
            click.echo(f"{name:<28} " + " ".join(f"{counter[k]:>7}" for k in KINDS))
    _echo_risk(result)


def _precision(profile: RiskProfile) -> str:
    return "-" if profile.precision is None else f"{profile.precision:.1%}"


def _echo_risk(result: BacktestResult) -> None:
    """Assessed risk per rule, base and candidate; precision = (medium + high) / assessed."""
    rows = result.risk_rows()
    if not rows:
        return
    click.echo("")
    click.echo(f"{'assessed risk by rule':<28} {'pack':<10} "
               + " ".join(f"{c:>10}" for c in RISK_COLUMNS) + f" {'precision':>10}")
    for rule, pack, profile in rows:
        counts = profile.as_dict()
        click.echo(f"{rule if pack == 'base' else '':<28} {pack:<10} "
                   + " ".join(f"{counts[c]:>10}" for c in RISK_COLUMNS)
                   + f" {_precision(profile):>10}")
    click.echo("precision: share of the assessed warnings judged medium or high "
               "(- : none assessed)")


def _echo_jsonl(result: BacktestResult) -> None:
    def out(obj: object) -> None:
        click.echo(orjson.dumps(obj).decode())

    for diff in result.differences:
        out(diff.as_dict())
    for key, name in (("rule_id", "rule"), ("district", "district")):
        for value, counter in result.by(key).items():
            row: dict[str, object] = {"summary": name, key: value}
            row.update({k: counter[k] for k in KINDS})
            out(row)
    for _rule, pack, profile in result.risk_rows():
        out({"summary": "risk", "pack": pack, **profile.as_dict()})
    out({"summary": "total", **summary(result)})


def register(main: click.Group) -> None:
    existing = main.commands.get("rules")
    if isinstance(existing, click.Group):
        rules = existing
    else:
        @main.group("rules")
        def rules_group() -> None:
            """Rule-pack tooling."""

        rules = rules_group

    @rules.command("backtest")
    @click.argument("events_file", metavar="EVENTS.jsonl",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--pack", "candidate", required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="The candidate rule pack (YAML).")
    @click.option("--base", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  default=DEFAULT_PACK_PATH, show_default="the built-in pack",
                  help="The current rule pack to compare against.")
    @click.option("--as-of", "as_of", help="Event-time clock for both runs (ISO 8601 with "
                  "offset; default: the latest occurred_at).")
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
                  show_default=True)
    def backtest_cmd(events_file: Path, candidate: Path, base: Path, as_of: str | None,
                     fmt: str) -> None:
        """Which warnings a candidate pack would make APPEAR, VANISH or CHANGE on history."""
        limit = None
        if as_of is not None:
            try:
                limit = parse_instant(as_of)
            except InstantError as exc:
                raise click.BadParameter(str(exc), param_hint="--as-of") from exc
        candidate_pack = _load(candidate, "candidate")
        base_pack = _load(base, "base")
        with events_file.open("rb") as handle:
            result = backtest(base_pack, candidate_pack, handle, limit)
        (_echo_jsonl if fmt == "jsonl" else _echo_table)(result)
