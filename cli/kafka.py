"""CLI of the Kafka runtime: ``kafka-local start|stop``, ``topics create``, ``worker``,
``quarantine-keys``.

Registered into the main ``jiahe`` group by :func:`register`; also runnable on its own
(``python -m cli.kafka worker …``) so tests and scripts can start a worker
without the rest of the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from app.bootstrap import PackPolicyError, bootstrap_kafka, check_worker_pack
from devtools import kafka_local
from events.instants import InstantError, format_instant, parse_instant
from privacy.keystore import kafka_keyring
from privacy.quarantine import DAY_US, write_public_keys
from rules.pack import RulePackError
from streams.kafka.settings import DEFAULT_APP_ID, PREFIX_ENV, Topics, WorkerSettings
from streams.kafka.warehouse import WarehouseConfigError
from streams.kafka.worker import check_topics, configure_logging, create_topic_set, run_worker

BOOTSTRAP_ENV = "JIAHE_KAFKA_BOOTSTRAP"
QUARANTINE_KEYS_ENV = "JIAHE_QUARANTINE_KEYS"


def _home(ctx: click.Context) -> Path:
    """The main group's ``--home`` when registered there, else $JIAHE_HOME or ./.jiahe."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("home") is not None:
        return Path(obj["home"])
    return Path(os.environ.get("JIAHE_HOME", ".jiahe"))


def _kafka_dir(ctx: click.Context, data: Path | None) -> Path:
    return data if data is not None else _home(ctx) / "kafka"


@click.group("kafka-local")
def kafka_local_group() -> None:
    """A single-node Kafka broker on 127.0.0.1, from the Maven Central jars."""


@kafka_local_group.command("start")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Broker data directory (default: $JIAHE_HOME/kafka).")
@click.option("--port", type=int, help="Client port (default: previous or a free one).")
@click.pass_context
def kafka_local_start(ctx: click.Context, data: Path | None, port: int | None) -> None:
    """Start the broker (or find it running) and print its bootstrap address."""
    try:
        info = kafka_local.start(_kafka_dir(ctx, data), port=port)
    except kafka_local.KafkaLocalError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(info.bootstrap)


@kafka_local_group.command("stop")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Broker data directory (default: $JIAHE_HOME/kafka).")
@click.pass_context
def kafka_local_stop(ctx: click.Context, data: Path | None) -> None:
    """Stop the broker of the data directory."""
    stopped = kafka_local.stop(_kafka_dir(ctx, data))
    click.echo("stopped" if stopped else "no broker running")


@click.group("topics")
def topics_group() -> None:
    """jiahe's Kafka topics."""


@topics_group.command("create")
@click.option("--bootstrap", required=True, envvar=BOOTSTRAP_ENV, help="HOST:PORT[,…]")
@click.option("--partitions", type=click.IntRange(1), default=6, show_default=True)
@click.option("--replication", type=click.IntRange(1), default=1, show_default=True)
@click.option("--topic-prefix", envvar=PREFIX_ENV, default="",
              help=f"Prefix for the topic names (${PREFIX_ENV}).")
def topics_create(bootstrap: str, partitions: int, replication: int, topic_prefix: str) -> None:
    """Create the events, warnings and DLQ topics (existing ones are left alone)."""
    outcome = create_topic_set(bootstrap, Topics.with_prefix(topic_prefix), partitions,
                               replication)
    for name, what in sorted(outcome.items()):
        click.echo(f"{name}: {what}")


def _as_of(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantError as exc:
        raise click.BadParameter(f"{exc} (use ISO 8601 with an offset)") from exc


@click.command("worker")
@click.option("--bootstrap", required=True, envvar=BOOTSTRAP_ENV, help="HOST:PORT[,…]")
@click.option("--as-of", "as_of", help="Event-time clock: fire deadlines due up to this "
              "instant once caught up (default: the wall clock).")
@click.option("--partitions", type=click.IntRange(1),
              help="Partitions of the events topic (checked; default: asked from the broker).")
@click.option("--warehouse", default="none", show_default=True,
              help="none | chdb:PATH | clickhouse:URL")
@click.option("--batch", type=click.IntRange(1), default=10_000, show_default=True,
              help="Most events per fetched batch (a live stream's fetches are smaller; "
              "a backlog's big batches pay the broker round trips less often).")
@click.option("--topic-prefix", envvar=PREFIX_ENV, default="",
              help=f"Prefix for the topic names (${PREFIX_ENV}).")
@click.option("--app-id", default=DEFAULT_APP_ID, show_default=True,
              help="faust app id = consumer group; also names the state changelog.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Local table store (default: $JIAHE_HOME/faust/APP_ID); one per process.")
@click.option("--store", type=click.Choice(["auto", "rocksdb", "memory"]), default="auto",
              show_default=True)
@click.option("--session-timeout", type=click.FloatRange(1), default=30.0, show_default=True,
              help="Consumer group session timeout, seconds.")
@click.option("--tick", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds between deadline checks (made between fetches).")
@click.option("--commit-interval", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds between offset commits (faust also commits every 10k events).")
@click.option("--max-rate", type=click.FloatRange(min=1), default=None,
              help="Most events per second to handle (default: no limit), to leave CPU "
              "to other services or spare a warehouse while catching up. Batches are cut "
              "to one second's worth, so no pause outlasts the group's poll interval.")
@click.option("--lateness", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Wall clock: seconds a deadline waits past its due time, in broker time "
              "of the records read (or now once caught up), before it fires; covers the "
              "delay of the newest appends and clock skew.")
@click.option("--pack", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule pack YAML (default: the built-in pack).")
@click.option("--quarantine-keys", type=click.Path(dir_okay=False, path_type=Path),
              envvar=QUARANTINE_KEYS_ENV,
              help="Public quarantine keys by day (`jiahe quarantine-keys`), re-read when it "
              "changes: refused input goes to the DLQ sealed with them. Without a key for "
              f"the day only its digest and length are kept (${QUARANTINE_KEYS_ENV}).")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def worker_command(
    ctx: click.Context, bootstrap: str, as_of: str | None, partitions: int | None,
    warehouse: str, batch: int, topic_prefix: str, app_id: str, data_dir: Path | None,
    store: str, session_timeout: float, tick: float, commit_interval: float,
    max_rate: float | None, lateness: float, pack: Path | None, quarantine_keys: Path | None,
    loglevel: str,
) -> None:
    """Run a faust worker: events → rules → warnings (+ DLQ, state table, warehouse)."""
    from streams.kafka.app import changelog_topic_name  # faust: loaded by the worker only

    home = _home(ctx)
    topics = Topics.with_prefix(topic_prefix)
    limit = _as_of(as_of)
    try:
        check_worker_pack(pack)  # refused before the broker is asked anything
        partitions = check_topics(bootstrap, topics, changelog_topic_name(app_id), partitions)
    except (RulePackError, PackPolicyError) as exc:
        raise click.BadParameter(str(exc), param_hint="--pack") from exc
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    settings = WorkerSettings(
        bootstrap=bootstrap,
        partitions=partitions,
        data_dir=data_dir or home / "faust" / app_id,
        topics=topics, app_id=app_id, as_of=limit, batch=batch, warehouse=warehouse,
        store=store, session_timeout_s=session_timeout, tick_s=tick,
        commit_interval_s=commit_interval, max_rate=max_rate, lateness_s=lateness, pack=pack,
        log_level=loglevel, quarantine_keys=quarantine_keys,
    )
    clock = f"event time as of {format_instant(limit)}" if limit is not None else "wall clock"
    click.echo(f"worker {app_id}: {topics.events} → {topics.warnings} ({clock})", err=True)
    configure_logging(loglevel)
    try:
        worker = bootstrap_kafka(settings, home=home)
    except WarehouseConfigError as exc:
        raise click.BadParameter(str(exc)) from exc
    run_worker(worker.app, worker.runtime, loglevel)


@click.command("quarantine-keys")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (replaced atomically); give it to the workers.")
@click.option("--days", type=click.IntRange(1, 3660), default=366, show_default=True,
              help="Days from today to publish a key for (created where missing).")
@click.pass_context
def quarantine_keys_command(ctx: click.Context, out: Path, days: int) -> None:
    """Export the public quarantine keys of the home's key store for `jiahe worker`.

    Run on the API host (it holds master.key and keys.sqlite3). The private halves stay
    in the key store and are purged with their day after the retention period
    ($JIAHE_DLQ_RETENTION_DAYS); the file holds nothing secret.
    """
    keyring = kafka_keyring(_home(ctx))
    try:
        keys = keyring.quarantine_public_keys(days)
    finally:
        keyring.close()
    if not keys:
        raise click.ClickException("no day left to make a quarantine key for")
    write_public_keys(out, keys)
    first, last = (format_instant(d * DAY_US)[:10] for d in (min(keys), max(keys)))
    click.echo(f"{len(keys)} quarantine public keys ({first} .. {last}) written to {out}")


def register(main_group: click.Group) -> None:
    """Add ``kafka-local``, ``topics``, ``worker`` and ``quarantine-keys`` to ``jiahe``."""
    for command in (kafka_local_group, topics_group, worker_command, quarantine_keys_command):
        main_group.add_command(command)


@click.group()
@click.option("--home", type=click.Path(path_type=Path), envvar="JIAHE_HOME", default=".jiahe",
              show_default=True, help="State directory ($JIAHE_HOME).")
@click.pass_context
def cli(ctx: click.Context, home: Path) -> None:
    """The Kafka runtime's commands on their own (same as under ``jiahe``)."""
    ctx.obj = {"home": home}


register(cli)

if __name__ == "__main__":  # pragma: no cover
    cli()
