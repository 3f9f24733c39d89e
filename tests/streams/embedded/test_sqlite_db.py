"""The log file's WAL after a run of large commits: not left at its peak size."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from streams.embedded import sqlite_db


def _bulk_write(db: sqlite3.Connection, tag: str, megabytes: int) -> None:
    with sqlite_db.transaction(db):
        db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            ((f"{tag}{i}", os.urandom(4096)) for i in range(megabytes * 256)),
        )


def test_a_run_of_large_commits_leaves_no_large_wal_behind(tmp_path: Path) -> None:
    db = sqlite_db.connect(tmp_path / "log.sqlite3")
    with sqlite_db.fewer_checkpoints(db):
        _bulk_write(db, "a", 100)
        assert sqlite_db.wal_bytes(db) > sqlite_db.KEPT_WAL_BYTES  # no checkpoint meanwhile
    assert sqlite_db.wal_bytes(db) == 0
    assert db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 100 * 256


def test_the_wal_is_not_truncated_under_a_reader_and_nobody_waits(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    db = sqlite_db.connect(path)
    reader = sqlite3.connect(path, isolation_level=None, timeout=30)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM meta").fetchone() == (0,)
    try:
        with sqlite_db.fewer_checkpoints(db):
            _bulk_write(db, "b", 80)
        assert sqlite_db.wal_bytes(db) > sqlite_db.KEPT_WAL_BYTES
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] > 0  # restored
        assert reader.execute("SELECT COUNT(*) FROM meta").fetchone() == (0,)  # its snapshot
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert sqlite_db.truncate_wal(db) and sqlite_db.wal_bytes(db) == 0
