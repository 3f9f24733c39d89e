"""CLI command for privacy: ``jiahe erase HOUSEHOLD`` (crypto-shredding, see events.crypto)."""

from __future__ import annotations

import click

from events.crypto import KeyringError
from streams.embedded import EmbeddedRuntime


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("household")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
    @click.pass_context
    def erase(ctx: click.Context, household: str, yes: bool) -> None:
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
        runtime = EmbeddedRuntime(ctx.obj["home"])
        try:
            done = runtime.erase(household)
        except KeyringError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            runtime.close()
        if done["already_erased"]:
            click.echo(f"household {household} was already erased; erasure applied again")
        if done["key_deleted"]:
            click.echo("data key deleted: its personal fields now read as [erased]")
        else:
            click.echo("no data key was stored for this household (nothing to shred)")
        click.echo(f"events kept in the log (counts unchanged): {done['events_kept']}")
        click.echo(f"dead letters redacted: {done['dead_letters_redacted']}")
        click.echo(f"warehouse directory row deleted: ledgers show {done['ledger_label']}")
        click.echo("later events of this household: accepted and processed, "
                   "personal fields dropped on arrival")
        if not done["wal_checkpoint_complete"]:
            click.echo("note: another process holds the log open; run `jiahe erase` again "
                       "once it stops so old WAL copies are overwritten", err=True)
