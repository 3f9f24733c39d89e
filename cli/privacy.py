"""CLI command for privacy: ``jiahe erase HOUSEHOLD`` (crypto-shredding, see privacy.crypto).

Embedded runtime: the key lives in the log. Kafka runtime (``--bootstrap``): the key
lives in the home's key store (``privacy.keystore``, used by ``jiahe publish
--bootstrap`` and the API on Kafka), and an erasure marker goes to the compacted
``jiahe.erasures`` topic (``streams.kafka.erasure_topic``) for projections rebuilt from topics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from app.bootstrap import bootstrap_embedded
from app.erasure import erase_side_channels
from events.instants import format_instant, now_micros
from privacy.crypto import KeyringError
from privacy.keystore import kafka_keyring
from privacy.pseudonym import deployment_secret
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE, PSEUDONYM_SECRET
from streams.kafka.erasure_topic import erasures_topic, publish_erasure


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("household")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
    # No envvar: an exported $JIAHE_KAFKA_BOOTSTRAP must not silently switch runtimes.
    @click.option("--bootstrap",
                  help="Kafka runtime: shred the key in HOME/keys.sqlite3 and publish an "
                  "erasure marker to the erasures topic at HOST:PORT.")
    @click.option("--topic-prefix", default="",
                  help="Kafka runtime: prefix of the topic names.")
    @click.pass_context
    def erase(ctx: click.Context, household: str, yes: bool, bootstrap: str | None,
              topic_prefix: str) -> None:
        """Erase HOUSEHOLD: shred its data key; ledgers then show it as erased:<key>.

        Irreversible. Its events stay in the log and every count stays, but
        their personal fields can no longer be read. Later events of the
        household are still accepted and processed (warnings are not lost),
        with their personal fields dropped on arrival; the household stays
        erased in the ledgers (register it under a new id to follow it again).
        Backups of the log and master.key taken earlier still hold the key.
        """
        if not yes:
            click.confirm(f"Erase household {household!r}? This cannot be undone", abort=True)
        if bootstrap:
            _erase_on_kafka(Path(ctx.obj["home"]), household, bootstrap, topic_prefix)
            return
        runtime = bootstrap_embedded(ctx.obj["home"])
        try:
            done = runtime.erase(household)
            side = erase_side_channels(runtime.home, household, runtime.pseudonym_secret,
                                       runtime.warehouse)
        except KeyringError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            runtime.close()
        _report_shredding(household, done, "its personal fields now read as [erased]")
        click.echo(f"events kept in the log (counts unchanged): {done['events_kept']}")
        click.echo(f"dead letters redacted: {done['dead_letters_redacted']}")
        click.echo(f"warehouse directory row deleted: ledgers show {done['ledger_label']}")
        _report_side_channels(side)
        click.echo("later events of this household: accepted and processed, "
                   "personal fields dropped on arrival")
        if not done["wal_checkpoint_complete"]:
            click.echo("note: another process holds the log open; run `jiahe erase` again "
                       "once it stops so old WAL copies are overwritten", err=True)


def _report_shredding(household: str, done: dict[str, Any], effect: str) -> None:
    if done["already_erased"]:
        click.echo(f"household {household} was already erased; erasure applied again")
    if done["key_deleted"]:
        click.echo(f"data key deleted: {effect}")
    else:
        click.echo("no data key was stored for this household (nothing to shred)")


def _report_side_channels(side: dict[str, Any]) -> None:
    if side["warehouse_parts_rewritten"]:
        click.echo("warehouse directory parts rewritten without the household")
    click.echo(f"outbox events erased: {side['outbox_events_erased']}, "
               f"outbox dead letters erased: {side['outbox_dead_letters_erased']}")
    click.echo(f"webhook bodies rewritten to its pseudonymous key: "
               f"{side['webhook_bodies_rewritten']}")


def _home_pseudonym_secret(home: Path) -> bytes:
    """The secret the delivery worker keys webhook bodies with (``alerts.delivery``)."""
    secret = deployment_secret()
    if secret is not None:
        return secret
    log = SqliteLog(home / LOG_FILE)
    try:
        return log.secret(PSEUDONYM_SECRET)
    finally:
        log.close()


def _erase_on_kafka(home: Path, household: str, bootstrap: str, prefix: str) -> None:
    """Shred first, then publish the marker: if publishing fails the data is already
    unreadable, and re-running the command (idempotent) sends the marker again."""
    keyring = kafka_keyring(home)
    try:
        done = keyring.erase(household)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        keyring.close()
    _report_shredding(household, done, "its sealed fields in every topic now read as [erased]")
    _report_side_channels(
        erase_side_channels(home, household, lambda: _home_pseudonym_secret(home)))
    topic = erasures_topic(prefix)
    try:
        publish_erasure(bootstrap, topic, household, format_instant(now_micros()))
    except Exception as exc:  # kafka-python raises several unrelated types
        raise click.ClickException(
            f"key shredded, but the erasure marker was not published to {topic} "
            f"({type(exc).__name__}: {exc}); run the command again") from exc
    click.echo(f"erasure marker published to {topic}: rebuilt ledgers show the household "
               "as erased:<key>, counts unchanged")
    click.echo("later events of this household published from this home: accepted, "
               "personal fields dropped on arrival")
    if not done["wal_checkpoint_complete"]:
        click.echo("note: another process holds the key store open; run `jiahe erase` again "
                   "once it stops so old WAL copies are overwritten", err=True)
