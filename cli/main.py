"""The ``jiahe`` command line (DESIGN.md, "Command-line contract").

This module is only the umbrella: the ``--home`` option and one ``register`` call
per command module, each of which adds its commands to the group.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli import api as cli_api
from cli import audit as cli_audit
from cli import bench as cli_bench
from cli import demo as cli_demo
from cli import embedded as cli_embedded
from cli import files as cli_files
from cli import kafka as cli_kafka
from cli import privacy as cli_privacy
from cli import rules as cli_rules
from cli import soak as cli_soak
from cli import verify as cli_verify
from events.errors import JiaheError
from privacy.log_lines import escape_log_lines


class JiaheGroup(click.Group):
    """Turns any :class:`JiaheError` a command lets through into a clean usage error.

    Errors jiahe expects (a bad pack, an erased household, a broker away) carry a
    message for the user; anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: click.Context) -> object:
        escape_log_lines()  # ids in log lines come from clients: no forged lines
        try:
            return super().invoke(ctx)
        except JiaheError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=JiaheGroup)
@click.option("--home", type=click.Path(path_type=Path), envvar="JIAHE_HOME", default=".jiahe",
              show_default=True, help="State of the embedded runtime ($JIAHE_HOME).")
@click.pass_context
def main(ctx: click.Context, home: Path) -> None:
    """jiahe (家和): risk early warning for a women's federation network."""
    ctx.obj = {"home": home}


for module in (cli_files, cli_demo, cli_embedded, cli_kafka, cli_api, cli_rules, cli_verify,
               cli_privacy, cli_soak, cli_bench, cli_audit):
    module.register(main)

if __name__ == "__main__":  # pragma: no cover
    main()
