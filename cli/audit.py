"""``jiahe audit break-glass [--since T]``: the break-glass grants, for whoever reviews them.

One row per grant (``access.break_glass``), oldest first: who opened which
household (owned where), when, until when, why, whether it still lives, and how
many reads were made under it (counted from the hash-chained audit trail, where
each of them is written with the reason).
"""

from __future__ import annotations

from pathlib import Path

import click

from access.break_glass import BreakGlass
from access.users import USERS_FILE, UserStore
from cli.output import emit_rows, instant_option
from events.instants import now_micros

COLUMNS = ["grant_id", "granted_at", "expires_at", "status", "user", "role", "scope",
           "household_id", "owner_org_unit", "reads", "reason"]


def register(main: click.Group) -> None:
    @main.group("audit")
    def audit() -> None:
        """The audit trail: break-glass grants."""

    @audit.command("break-glass")
    @click.option("--since", help="Only grants given at or after T (ISO 8601 with offset).")
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]),
                  default="table", show_default=True)
    @click.pass_context
    def break_glass(ctx: click.Context, since: str | None, fmt: str) -> None:
        """List break-glass grants (household opened outside a chair's scope, with reason)."""
        since_us = instant_option(since, "--since")
        home = Path(ctx.obj["home"])
        if not (home / USERS_FILE).exists():
            raise click.ClickException(f"no user store in {home} (jiahe users add …)")
        store = UserStore.at_home(home)
        try:
            grants = BreakGlass.of(store)
            reads = grants.reads()
            now = now_micros()
            rows = [{**g.public(now), "reads": reads.get(g.id, 0)}
                    for g in grants.since(since_us)]
        finally:
            store.close()
        emit_rows(rows, COLUMNS, fmt)
