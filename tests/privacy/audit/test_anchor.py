"""An anchor file kept elsewhere catches a rewrite that also fixes up the head row."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.privacy.audit.tools import scalar, sql, verify


def test_the_anchor_is_written_then_matched(home: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "elsewhere" / "anchor.json"
    anchor.parent.mkdir()
    first = verify(home, "--anchor", str(anchor))
    assert first.exit_code == 0 and "anchor written" in first.output
    heads = orjson.loads(anchor.read_bytes())
    assert set(heads) == {"lifecycle", "audit"} and heads["audit"]["seq"] == 8
    second = verify(home, "--anchor", str(anchor))
    assert second.exit_code == 0 and "matches" in second.output


def test_a_truncation_with_a_forged_head_is_caught_by_the_anchor(
    home: Path, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchor.json"
    assert verify(home, "--anchor", str(anchor)).exit_code == 0
    end = scalar(home, "log.sqlite3", "SELECT MAX(seq) FROM lifecycle")
    sql(home, "log.sqlite3",
        f"DELETE FROM lifecycle WHERE seq > {end - 2}",
        "UPDATE meta SET value = json_object('seq', seq, 'hash', hash) FROM "
        "(SELECT seq, hash FROM lifecycle ORDER BY seq DESC LIMIT 1) "
        "WHERE key = 'chain.lifecycle.head'")
    plain = verify(home, "--no-warehouse")
    assert plain.exit_code == 0  # the chain alone cannot tell
    result = verify(home, "--no-warehouse", "--anchor", str(anchor))
    assert result.exit_code == 1
    assert (f"anchor: lifecycle: anchored at seq {end} but the head is seq {end - 2}: "
            "truncated") in result.output
