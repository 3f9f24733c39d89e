"""Drive ``jiahe verify`` and tamper with the files as someone with shell access would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click
from click.testing import CliRunner, Result

from cli.verify import register


def verify(home: Path, *args: str) -> Result:
    """``jiahe verify --home HOME ARGS`` (the command as ``jiahe`` runs it)."""

    @click.group()
    def cli() -> None:
        pass

    register(cli)
    return CliRunner().invoke(cli, ["verify", "--home", str(home), *args],
                              catch_exceptions=False)


def sql(home: Path, file: str, *statements: str) -> None:
    """Tamper with a SQLite file directly, as someone with shell access would."""
    db = sqlite3.connect(home / file)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def scalar(home: Path, file: str, query: str) -> int:
    db = sqlite3.connect(home / file)
    try:
        return int(db.execute(query).fetchone()[0])
    finally:
        db.close()
