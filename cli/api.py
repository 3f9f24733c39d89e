"""``jiahe api`` and ``jiahe users``: the HTTP face and its users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import orjson

from access.users import (
    AGENCIES,
    DEFAULT_EXPIRES_DAYS,
    MAX_EXPIRES_DAYS,
    ROLES,
    UserError,
    UserStore,
    check_user,
)
from alerts.channels.email import parse_hostport
from alerts.delivery import DEFAULT_MAX_ATTEMPTS
from alerts.egress import Allowed, WebhookRefused
from app.bootstrap import PackPolicyError
from app.bootstrap_api import bootstrap_api
from events.instants import now_micros
from events.orgunits import OrgUnitError, check_code
from rules.pack import RulePackError
from streams.kafka.settings import KafkaSettings


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--port", default=8000, show_default=True)
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--webhook-max-attempts", default=DEFAULT_MAX_ATTEMPTS, show_default=True,
                  help="Attempts per delivery before it is dead-lettered (the default "
                  "rides out a receiver that is down for two hours).")
    @click.option("--webhook-backoff", default=1.0, show_default=True,
                  help="Seconds before the first retry; doubles per attempt, at most an hour.")
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
    @click.option("--bootstrap", envvar="JIAHE_KAFKA_BOOTSTRAP", metavar="HOST:PORT",
                  help="Serve on the Kafka runtime: events go to jiahe.events, a `jiahe "
                  "worker` processes them ($JIAHE_KAFKA_BOOTSTRAP).")
    @click.option("--topic-prefix", envvar="JIAHE_KAFKA_TOPIC_PREFIX", default="",
                  help="Prefix of the Kafka topic names, as for `jiahe worker`.")
    @click.option("--pack", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="Rule pack YAML of the embedded processor (default: the built-in "
                  "pack); on the Kafka runtime the worker's --pack applies.")
    @click.option("--allow-webhook-host", "allow_webhook_hosts", multiple=True,
                  metavar="HOST[:PORT]", help="Let webhooks reach this host (a name or an IP "
                  "literal, any port unless given) although its addresses are internal "
                  "(loopback, private, link-local …); repeatable, added to "
                  "$JIAHE_ALLOW_WEBHOOK_HOSTS (comma-separated).")
    @click.pass_context
    def api(ctx: click.Context, port: int, host: str, webhook_max_attempts: int,
            webhook_backoff: float, tick: float, smtp: str | None,
            repeat_red_minutes: float, group_wait: float, group_interval: float,
            bootstrap: str | None, topic_prefix: str, pack: Path | None,
            allow_webhook_hosts: tuple[str, ...]) -> None:
        """Serve the HTTP API (OpenAPI at /openapi.json) on the embedded runtime, or with
        --bootstrap on the Kafka runtime (the worker owns the rules; this process mirrors
        the topics into --home for ledgers, inbox, SSE and deliveries)."""
        from api.server import serve  # uvicorn and FastAPI: loaded when serving only

        if smtp:
            try:
                parse_hostport(smtp)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--smtp") from exc
        for entry in allow_webhook_hosts:
            try:
                Allowed.parse(entry)
            except WebhookRefused as exc:
                raise click.BadParameter(str(exc), param_hint="--allow-webhook-host") from exc
        kafka = KafkaSettings(bootstrap, topic_prefix) if bootstrap else None
        try:
            services = bootstrap_api(
                ctx.obj["home"], kafka=kafka, pack=pack, max_attempts=webhook_max_attempts,
                backoff_s=webhook_backoff, tick_s=tick or None, smtp=smtp,
                repeat_red_minutes=repeat_red_minutes, group_wait_s=group_wait,
                group_interval_s=group_interval, allow_webhook_hosts=allow_webhook_hosts)
        except (RulePackError, PackPolicyError) as exc:
            raise click.BadParameter(str(exc), param_hint="--pack") from exc
        serve(services, host, port)

    @main.group()
    def users() -> None:
        """API users and their bearer tokens."""

    @users.command("add")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(ROLES))
    @click.option("--org-unit", "org_unit", required=True,
                  help="12-digit scope code (a partner: a district or the city).")
    @click.option("--agency", type=click.Choice(AGENCIES),
                  help="The partner's agency (partner role only).")
    @click.option("--expires-days", default=DEFAULT_EXPIRES_DAYS, show_default=True,
                  type=click.IntRange(1, MAX_EXPIRES_DAYS),
                  help="Days until the token stops working (then re-key with `users add`).")
    @click.pass_context
    def add(ctx: click.Context, name: str, role: str, org_unit: str, agency: str | None,
            expires_days: int) -> None:
        """Create or re-key a user; prints the bearer token once (only its hash is kept).

        Re-keying an existing user replaces her token (the old one stops working),
        takes the new role and org unit, and makes a revoked or disabled user active.
        A partner (another agency) needs --agency and a district or city --org-unit:
        it sees and answers only its agency's referrals for households there."""
        try:
            check_code(org_unit)
        except OrgUnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--org-unit") from exc
        try:
            check_user(role, org_unit, agency)
        except UserError as exc:
            hint = "--agency" if "agency" in str(exc) else "--org-unit"
            raise click.BadParameter(str(exc), param_hint=hint) from exc
        store = UserStore.at_home(ctx.obj["home"])
        try:
            click.echo(store.add(name, role, org_unit, agency, expires_days=expires_days))
        finally:
            store.close()

    @users.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @click.pass_context
    def list_users(ctx: click.Context, as_json: bool) -> None:
        """Every user: name, role, org unit, agency, created, expires, status (active,
        expired, revoked or disabled). Never a token: only its hash is kept."""
        store = UserStore.at_home(ctx.obj["home"])
        try:
            now = now_micros()
            rows = [account.public(now) for account in store.accounts()]
        finally:
            store.close()
        if as_json:
            for row in rows:
                click.echo(orjson.dumps(row).decode())
            return
        columns = ("name", "role", "org_unit", "agency", "created_at", "expires_at", "status")
        table = [[str(row[c] if row[c] is not None else "-") for c in columns] for row in rows]
        widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
        for line in ([list(columns)] + table):
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                       .rstrip())

    @users.command("revoke")
    @click.argument("name")
    @click.pass_context
    def revoke(ctx: click.Context, name: str) -> None:
        """Revoke the user's token at once (from the next request; open alert streams
        close). `users add NAME …` issues a new one."""
        _change(ctx, name, lambda store: store.revoke(name), "revoked")

    @users.command("disable")
    @click.argument("name")
    @click.pass_context
    def disable(ctx: click.Context, name: str) -> None:
        """Shut the account at once (its token is refused; open alert streams close)
        until `users enable NAME`."""
        _change(ctx, name, lambda store: store.set_disabled(name), "disabled")

    @users.command("enable")
    @click.argument("name")
    @click.pass_context
    def enable(ctx: click.Context, name: str) -> None:
        """Reopen a disabled account (a revoked token stays revoked)."""
        _change(ctx, name, lambda store: store.set_disabled(name, False), "enabled")

    def _change(ctx: click.Context, name: str, change: Callable[[UserStore], bool],
                done: str) -> None:
        store = UserStore.at_home(ctx.obj["home"])
        try:
            known = store.get(name) is not None
            changed = change(store)
        finally:
            store.close()
        if not known:
            raise click.ClickException(f"no user named {name!r}")
        if not changed:
            raise click.ClickException(f"{name}: not changed (a revoked user is re-keyed "
                                       "with `jiahe users add`)")
        click.echo(f"{name}: {done}")
