"""``jiahe api`` and ``jiahe users add``; the lead registers them with ``register(main)``."""

from __future__ import annotations

from pathlib import Path

import click

from api.delivery import DEFAULT_MAX_ATTEMPTS
from api.users import ROLES, UserStore
from events.orgunits import OrgUnitError, check_code


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
    @click.pass_context
    def api(ctx: click.Context, port: int, host: str, webhook_max_attempts: int,
            webhook_backoff: float, tick: float, smtp: str | None,
            repeat_red_minutes: float, group_wait: float, group_interval: float,
            bootstrap: str | None, topic_prefix: str, pack: Path | None) -> None:
        """Serve the HTTP API (OpenAPI at /openapi.json) on the embedded runtime, or with
        --bootstrap on the Kafka runtime (the worker owns the rules; this process mirrors
        the topics into --home for ledgers, inbox, SSE and deliveries)."""
        import os

        from api.email_channel import parse_hostport
        from api.kafka_mode import KafkaSettings
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
        if pack is not None:
            from rules.pack import RulePackError, load_pack

            if bootstrap:
                raise click.BadParameter("the Kafka worker owns the rules: give the pack "
                                         "to `jiahe worker --pack`", param_hint="--pack")
            try:
                load_pack(pack)
            except RulePackError as exc:
                raise click.BadParameter(str(exc), param_hint="--pack") from exc
        kafka = KafkaSettings(bootstrap, topic_prefix) if bootstrap else None
        serve(home, host, port, webhook_max_attempts, webhook_backoff, tick_s=tick,
              kafka=kafka, pack=pack)

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
