"""The warning lifecycle (from which the warning ledger is derived) is hash-chained.

``jiahe verify`` exits 0 when the chain is intact and 1 otherwise, naming the
seq of every edited, removed or reordered record and a truncated tail.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from app.bootstrap import bootstrap_embedded
from privacy.audit import GENESIS, canonical
from tests.privacy.audit.tools import scalar, sql, verify

LOG = "log.sqlite3"


def last_seq(home: Path) -> int:
    return scalar(home, LOG, "SELECT MAX(seq) FROM lifecycle")


def test_an_intact_home_verifies_with_counts_and_exit_0(home: Path) -> None:
    end = last_seq(home)
    result = verify(home)
    assert result.exit_code == 0, result.output
    assert f"lifecycle chain: {end} rows, head seq {end}" in result.output
    assert "audit chain: 8 rows, head seq 8" in result.output
    assert f"warehouse lifecycle: {end} records compared: OK" in result.output
    assert result.output.rstrip().endswith("verify: OK")


def test_every_record_links_to_the_one_before(home: Path) -> None:
    import sqlite3

    db = sqlite3.connect(home / LOG)
    rows = db.execute("SELECT seq, body, prev_hash, hash FROM lifecycle ORDER BY seq").fetchall()
    db.close()
    prev = GENESIS
    for seq, body, prev_hash, digest in rows:
        record = {**orjson.loads(body), "seq": seq}
        assert prev_hash == prev
        assert digest == hashlib.sha256(prev.encode() + canonical(record)).hexdigest()
        prev = digest


def test_an_edited_record_is_named_by_its_seq(home: Path) -> None:
    sql(home, LOG, "UPDATE lifecycle SET body = replace(body, '\"at\":\"2026', '\"at\":\"2025') "
        "WHERE seq = 7")
    result = verify(home)
    assert result.exit_code == 1
    assert "lifecycle: seq 7: hash mismatch" in result.output
    assert "lifecycle: seq 8" not in result.output  # one edit, one named row


def test_an_edited_record_whose_hash_was_recomputed_breaks_the_next_link(home: Path) -> None:
    sql(home, LOG, "UPDATE lifecycle SET hash = 'ab' || substr(hash, 3) WHERE seq = 7")
    result = verify(home)
    assert result.exit_code == 1
    assert "lifecycle: seq 7: hash mismatch" in result.output
    assert "lifecycle: seq 8: prev_hash does not match the hash of seq 7" in result.output


def test_a_removed_middle_record_is_named_as_a_gap(home: Path) -> None:
    sql(home, LOG, "DELETE FROM lifecycle WHERE seq = 10")
    result = verify(home)
    assert result.exit_code == 1
    assert "lifecycle: gap after seq 9: seq 10 missing (removed)" in result.output
    assert "is not in the log (warehouse seq 10)" in result.output  # the warehouse has it


def test_swapped_records_are_reported_as_reordered(home: Path) -> None:
    sql(home, LOG,
        "UPDATE lifecycle SET seq = -1 WHERE seq = 5",
        "UPDATE lifecycle SET seq = 5 WHERE seq = 6",
        "UPDATE lifecycle SET seq = 6 WHERE seq = -1")
    result = verify(home)
    assert result.exit_code == 1
    assert "lifecycle: seq 5: hash mismatch" in result.output
    assert "lifecycle: seq 6: hash mismatch" in result.output
    assert "lifecycle: seq 5: chained after seq 6 but comes after seq 4: rows reordered" \
        in result.output


def test_a_truncated_tail_is_detected_against_the_head(home: Path) -> None:
    end = last_seq(home)
    sql(home, LOG, f"DELETE FROM lifecycle WHERE seq > {end - 3}")
    result = verify(home)
    assert result.exit_code == 1
    assert (f"lifecycle: truncated tail: head says seq {end}, last row is seq {end - 3} "
            "(3 missing)") in result.output


def test_a_removed_head_row_is_detected(home: Path) -> None:
    sql(home, LOG, "DELETE FROM meta WHERE key = 'chain.lifecycle.head'")
    result = verify(home)
    assert result.exit_code == 1
    assert "lifecycle: no head row" in result.output


def test_a_row_inserted_outside_the_chain_is_named(home: Path) -> None:
    end = last_seq(home)
    sql(home, LOG, "INSERT INTO lifecycle(seq, household_id, warning_id, type, body) "
        f"SELECT {end + 1}, household_id, warning_id, type, body FROM lifecycle WHERE seq = 1")
    result = verify(home)
    assert result.exit_code == 1
    assert f"lifecycle: seq {end + 1}: not chained (no hash)" in result.output


def test_processing_after_a_truncation_keeps_the_evidence(home: Path) -> None:
    """The next append continues after the head, so the hole stays visible."""
    end = last_seq(home)
    sql(home, LOG, f"DELETE FROM lifecycle WHERE seq > {end - 2}")
    runtime = bootstrap_embedded(home)
    try:
        seqs = runtime.log.append_lifecycle([{
            "type": "warning.acknowledged", "warning_id": "w-0000000000000000",
            "household_id": "hh-x", "at": "2026-11-30T00:00:00Z"}])
    finally:
        runtime.close()
    assert seqs == [end + 1]
    result = verify(home, "--no-warehouse")
    assert result.exit_code == 1
    assert f"lifecycle: gap after seq {end - 2}: seqs {end - 1}–{end} missing" in result.output
