"""``jiahe api`` and ``jiahe users add``; the lead registers them with ``register(main)``."""

from __future__ import annotations

from pathlib import Path

import click

from api.users import ROLES, UserStore
from events.orgunits import OrgUnitError, check_code


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--port", default=8000, show_default=True)
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--webhook-max-attempts", default=5, show_default=True)
    @click.option("--webhook-backoff", default=1.0, show_default=True,
                  help="Seconds before the first retry; doubles per attempt.")
    @click.option("--tick", default=30.0, show_default=True,
                  help="Seconds between wall-clock processor runs (deadlines, other writers).")
    @click.option("--smtp", envvar="JIAHE_SMTP", metavar="HOST:PORT",
                  help="SMTP server for e-mail subscriptions ($JIAHE_SMTP).")
    @click.option("--repeat-red-minutes", envvar="JIAHE_REPEAT_RED_MINUTES", default=240.0,
                  show_default=True, help="Re-notify unacknowledged red warnings (0: never).")
    @click.option("--group-wait", envvar="JIAHE_GROUP_WAIT_S", default=30.0, show_default=True,
                  help="Seconds a new (district, rule) alert group waits for company.")
    @click.option("--group-interval", envvar="JIAHE_GROUP_INTERVAL_S", default=0.0,
                  show_default=True, help="Seconds between a group's notifications (0: no "
                  "grouping, every alert is sent at once).")
    @click.pass_context
    def api(ctx: click.Context, port: int, host: str, webhook_max_attempts: int,
            webhook_backoff: float, tick: float, smtp: str | None,
            repeat_red_minutes: float, group_wait: float, group_interval: float) -> None:
        """Serve the HTTP API (OpenAPI at /openapi.json) on the embedded runtime."""
        import os

        from api.email_channel import parse_hostport
        from api.server import serve

        if smtp:  # create_app reads these (api.app); server.py stays unchanged
            try:
                parse_hostport(smtp)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--smtp") from exc
            os.environ["JIAHE_SMTP"] = smtp
        os.environ["JIAHE_REPEAT_RED_MINUTES"] = str(repeat_red_minutes)
        os.environ["JIAHE_GROUP_WAIT_S"] = str(group_wait)
        os.environ["JIAHE_GROUP_INTERVAL_S"] = str(group_interval)
        home: Path = ctx.obj["home"]
        serve(home, host, port, webhook_max_attempts, webhook_backoff, tick_s=tick)

    @main.group()
    def users() -> None:
        """API users and their bearer tokens."""

    @users.command("add")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(ROLES))
    @click.option("--org-unit", "org_unit", required=True, help="12-digit scope code.")
    @click.pass_context
    def add(ctx: click.Context, name: str, role: str, org_unit: str) -> None:
        """Create or re-key a user; prints the bearer token once (only its hash is kept)."""
        try:
            check_code(org_unit)
        except OrgUnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--org-unit") from exc
        store = UserStore.at_home(ctx.obj["home"])
        try:
            click.echo(store.add(name, role, org_unit))
        finally:
            store.close()
