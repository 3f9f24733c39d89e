"""The durable outbox (sdk/outbox.py): order, duplicates, marks, atomicity, crash survival.

No broker here: the outbox is the part of the publisher that must hold up when there is
none. Crash survival is tested with a real SIGKILL of a child process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.codec import Decoded, Rejected, decode
from sdk.outbox import CONFLICT, Outbox, OutboxError, canonical_json

_NS = uuid.UUID("6f1c3a52-0d1e-4a8e-9a53-7c2b61f0e9d4")


def event(hh: str, i: int, notes: str | None = None) -> dict[str, Any]:
    """A valid screening visit; ``i`` orders a household's events."""
    return {
        "event_id": str(uuid.uuid5(_NS, f"{hh}/{i}")),
        "type": "screening.visit_recorded",
        "schema_version": 1,
        "occurred_at": f"2026-03-01T08:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
        "org_unit": "230102001001",
        "household_id": hh,
        "data": {"indicators": ["isolation"], "notes": notes if notes is not None else f"v{i}"},
    }


def valid(obj: dict[str, Any]) -> Decoded:
    out = decode(orjson.dumps(obj))
    assert isinstance(out, Decoded), out
    return out


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite")
    yield box
    box.close()


def test_enqueue_assigns_increasing_sequence_in_input_order(outbox: Outbox) -> None:
    items = [valid(event(f"h{i % 3}", i)) for i in range(10)]
    outcomes = outbox.enqueue(items)
    assert [o.status for o in outcomes] == ["accepted"] * 10
    seqs = [o.seq or 0 for o in outcomes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10 and seqs[0] > 0
    pending = outbox.pending(limit=100)
    assert [r.event_id for r in pending] == [d.event_id for d in items]
    assert [r.seq for r in pending] == seqs
    first = pending[0]
    assert first.household_id == "h0"
    assert first.event_type == "screening.visit_recorded" and first.schema_version == 1
    assert first.payload == canonical_json(items[0].raw)
    assert orjson.loads(first.payload) == items[0].raw
    assert [r.seq for r in outbox.pending(limit=3)] == seqs[:3]


def test_duplicates_and_conflicts_within_and_across_calls(outbox: Outbox) -> None:
    a, b = event("h1", 1), event("h1", 2)
    changed = dict(a, data={"indicators": ["threats"], "notes": "different"})
    restamped = dict(a, recorded_at="2026-03-02T00:00:00+08:00")  # gateway stamp ignored
    first = outbox.enqueue([valid(a), valid(b), valid(a)])
    assert [o.status for o in first] == ["accepted", "accepted", "duplicate"]
    second = outbox.enqueue([valid(restamped), valid(changed)])
    assert [o.status for o in second] == ["duplicate", "conflict"]
    assert second[1].reason == CONFLICT
    counts = outbox.counts()
    assert (counts.events, counts.pending, counts.dead_letters) == (2, 2, 1)
    (dead,) = outbox.pending_dead_letters()
    assert dead.reason == CONFLICT and dead.event_id == a["event_id"]
    assert orjson.loads(dead.raw) == changed


def test_mark_sent_is_a_monotonic_high_water_mark(outbox: Outbox) -> None:
    outcomes = outbox.enqueue([valid(event("h", i)) for i in range(5)])
    seqs = [o.seq for o in outcomes]
    assert all(s is not None for s in seqs)
    outbox.mark_sent(seqs[2] or 0)
    assert [r.seq for r in outbox.pending()] == seqs[3:]
    outbox.mark_sent(seqs[0] or 0)  # a late, older mark never moves it back
    outbox.mark_sent(seqs[2] or 0)  # repeated: harmless
    assert outbox.sent_up_to() == seqs[2]
    with pytest.raises(OutboxError, match="beyond the last stored seq"):
        outbox.mark_sent((seqs[-1] or 0) + 1)
    counts = outbox.counts()
    assert (counts.events, counts.sent, counts.pending, counts.last_seq) == (5, 3, 2, seqs[-1])


def test_enqueue_is_all_or_nothing(outbox: Outbox) -> None:
    outbox.enqueue([valid(event("h", 0))])

    def exploding() -> Iterator[Decoded]:
        yield valid(event("h", 1))
        yield valid(event("h", 2))
        raise RuntimeError("field app crashed mid-batch")

    with pytest.raises(RuntimeError):
        outbox.enqueue(exploding())
    assert outbox.counts().events == 1
    # The ids of the failed batch are free: nothing of it was committed.
    assert [o.status for o in outbox.enqueue([valid(event("h", 1))])] == ["accepted"]


def test_rejected_input_is_kept_with_the_batch(outbox: Outbox) -> None:
    bad = decode(b'{"type": "no.such.type", "household_id": "h9"}')
    assert isinstance(bad, Rejected)
    outbox.enqueue([valid(event("h", 0))], rejected=[bad])
    (dead,) = outbox.pending_dead_letters()
    assert (dead.reason, dead.household_id, dead.raw) == (bad.reason, "h9", bad.raw)
    outbox.mark_dead_letters_sent(dead.seq)
    assert outbox.pending_dead_letters() == []
    assert outbox.counts().dead_letters_pending == 0
    assert outbox.add_dead_letters([bad, bad]) == 2
    assert outbox.counts().dead_letters_pending == 2


def test_prune_keeps_pending_events_and_never_reuses_a_sequence(outbox: Outbox) -> None:
    outcomes = outbox.enqueue([valid(event("h", i)) for i in range(6)])
    outbox.mark_sent(outcomes[3].seq or 0)
    assert outbox.prune_sent(keep_last=1) == 3
    assert [r.seq for r in outbox.pending()] == [o.seq for o in outcomes[4:]]
    outbox.mark_sent(outcomes[5].seq or 0)
    assert outbox.prune_sent() == 3
    counts = outbox.counts()
    assert (counts.events, counts.pending, counts.last_seq) == (0, 0, outcomes[5].seq)
    (later,) = outbox.enqueue([valid(event("h", 99))])
    assert (later.seq or 0) > (outcomes[5].seq or 0)


def test_file_is_wal_with_full_fsync(outbox: Outbox) -> None:
    probe = sqlite3.connect(outbox.path)
    try:
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        probe.close()
    # synchronous is per connection: check the outbox's own (2 = FULL).
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_not_an_outbox_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(junk)


def test_enqueued_events_survive_sigkill(tmp_path: Path) -> None:
    """A child process enqueues, reports, and is SIGKILLed without closing anything."""
    path = tmp_path / "outbox.sqlite"
    events = [event(f"h{i % 4}", i) for i in range(200)]
    source = tmp_path / "events.json"
    source.write_bytes(orjson.dumps(events))
    child = textwrap.dedent(
        f"""
        import os, signal, orjson
        from events.codec import decode
        from sdk.outbox import Outbox
        box = Outbox({str(path)!r})
        items = [decode(orjson.dumps(e)) for e in orjson.loads(open({str(source)!r}, 'rb').read())]
        box.enqueue(items[:150])
        box.mark_sent(100)
        box.enqueue(items[150:])
        print("enqueued", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "enqueued"
    with Outbox(path) as reopened:
        counts = reopened.counts()
        assert (counts.events, counts.sent, counts.pending) == (200, 100, 100)
        pending = reopened.pending(limit=1000)
        assert [r.event_id for r in pending] == [e["event_id"] for e in events[100:]]


def test_two_handles_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with Outbox(path) as first, Outbox(path) as second:
        first.enqueue([valid(event("h", 0))])
        assert [o.status for o in second.enqueue([valid(event("h", 0))])] == ["duplicate"]
        assert second.counts().events == 1
    assert os.path.exists(path)
