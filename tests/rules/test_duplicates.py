"""Duplicates (DESIGN.md "Processing order and time" and "Events"): an event whose event_id
was already processed for the same household is a duplicate — ignored entirely when
identical, rejected as a conflict when its content differs. Counts reconcile:
received = processed + duplicates + rejected."""

from __future__ import annotations

import json

from events.codec import Decoded, decode
from rules.engine import Engine
from rules.pack import load_pack
from rules.state import HouseholdState
from tests.helpers import (
    DAY,
    T0,
    gap,
    line,
    petition,
    raised,
    replay,
    run,
    visit,
)


def reconciles(rp) -> bool:
    c = rp.counts
    return c.received == c.processed + c.duplicates + c.rejected


def restamped(event_line: str, recorded_at: str) -> str:
    obj = json.loads(event_line)
    obj["recorded_at"] = recorded_at
    return line(obj)


def test_an_identical_redelivery_is_a_duplicate_and_produces_nothing():
    first = visit("h1", T0, ["injury_observed"])
    rp, records = replay([first], as_of=T0)
    _, outcome = rp.feed_line(first)
    assert outcome.status == "duplicate"
    assert outcome.records == [] and outcome.notices == []
    assert len(records) == 1


def test_an_identical_redelivery_does_not_count_again_in_windows():
    p1, p2 = petition("h1", T0), petition("h1", T0 + DAY)
    assert raised(run([p1, p2, p1, p2, p2])) == []


def test_a_redelivery_with_another_recorded_at_is_still_a_duplicate():
    first = restamped(visit("h1", T0, ["injury_observed"]), "2026-03-01T08:05:00Z")
    again = restamped(first, "2026-03-03T19:00:00+08:00")
    rp, _ = replay([first], as_of=T0)
    assert rp.feed_line(again)[1].status == "duplicate"


def test_a_redelivery_with_recorded_at_added_by_the_gateway_is_still_a_duplicate():
    first = visit("h1", T0, ["injury_observed"])
    rp, _ = replay([first], as_of=T0)
    assert rp.feed_line(restamped(first, "2026-03-01T09:00:00Z"))[1].status == "duplicate"


def test_a_redelivery_with_other_key_order_and_spacing_is_still_a_duplicate():
    first = petition("h1", T0)
    shuffled = json.dumps(dict(reversed(list(json.loads(first).items()))), indent=2)
    rp, _ = replay([first], as_of=T0)
    assert rp.feed_line(shuffled)[1].status == "duplicate"


def test_the_same_id_with_different_content_is_rejected_as_a_conflict():
    first = petition("h1", T0, eid="p-1")
    changed = petition("h1", T0, category="sexual_assault", eid="p-1")
    rp, _ = replay([first], as_of=T0)
    _, outcome = rp.feed_line(changed)
    assert outcome.status == "rejected"
    assert "conflict" in outcome.reason and "event_id" in outcome.reason
    assert outcome.records == []


def test_a_conflicting_event_is_not_applied():
    first = petition("h1", T0, eid="p-1")
    changed = petition("h1", T0, category="sexual_assault", eid="p-1")
    assert run([first, changed]) == []


def test_a_conflicting_event_does_not_replace_the_original():
    first = petition("h1", T0, eid="p-1")
    changed = petition("h1", T0 + 1, eid="p-1")
    rp, _ = replay([first, changed], as_of=T0)
    assert rp.feed_line(first)[1].status == "duplicate"
    assert rp.feed_line(changed)[1].status == "rejected"


def test_counts_reconcile_with_duplicates_conflicts_and_invalid_lines():
    first = petition("h1", T0, eid="p-1")
    lines = [
        first,
        first,  # duplicate
        restamped(first, "2026-03-09T00:00:00Z"),  # duplicate
        petition("h1", T0, category="other", urgent=True, eid="p-1"),  # conflict
        "{not json",  # rejected
        petition("h2", T0),
    ]
    rp, _ = replay(lines)
    counts = rp.counts
    assert (counts.received, counts.processed, counts.duplicates, counts.rejected) == (6, 2, 2, 2)
    assert reconciles(rp)


def test_a_duplicate_is_ignored_entirely_and_fires_no_deadline():
    # The late gap schedules D = T0 + 7 d; a re-delivered event at T0 + 30 d must not fire it.
    later = visit("h1", T0 + 30 * DAY, [])
    rp, _ = replay([later, gap("h1", T0)], as_of=T0)
    assert rp.feed_line(later)[1].records == []


def test_a_conflict_fires_no_deadline():
    later = visit("h1", T0 + 30 * DAY, [], eid="v-1")
    changed = visit("h1", T0 + 30 * DAY, ["isolation"], eid="v-1")
    rp, _ = replay([later, gap("h1", T0)], as_of=T0)
    assert rp.feed_line(changed)[1].records == []


def test_the_engine_dedupes_per_household_so_another_household_may_reuse_an_id():
    # DESIGN: "already processed for the same household" — the engine's own rule.
    engine = Engine(load_pack())
    first = decode(visit("h1", T0, ["injury_observed"], eid="x"))
    second = decode(visit("h2", T0, ["injury_observed"], eid="x"))
    assert isinstance(first, Decoded) and isinstance(second, Decoded)
    assert engine.apply(HouseholdState(), first).status == "processed"
    assert engine.apply(HouseholdState(), second).status == "processed"


def test_a_replay_refuses_an_id_another_household_already_used_like_the_log_does():
    # The embedded log and the SDK outbox keep event_id unique; a file replay
    # classifies such input the same way (a conflict), so every entry agrees.
    rp, records = replay(
        [
            visit("h1", T0, ["injury_observed"], eid="x"),
            visit("h2", T0, ["injury_observed"], eid="x"),
        ]
    )
    assert (rp.counts.processed, rp.counts.rejected) == (1, 1)
    assert "another household" in next(iter(rp.counts.reasons))
    assert [r["household_id"] for r in raised(records)] == ["h1"]


def test_an_invalid_line_is_counted_as_rejected_and_processing_goes_on():
    rp, records = replay(["{", '{"type": "nope"}', visit("h1", T0, ["injury_observed"])])
    assert (rp.counts.received, rp.counts.rejected, rp.counts.processed) == (3, 2, 1)
    assert len(records) == 1


def test_an_engine_behind_a_log_of_unique_ids_keeps_no_seen_ids_and_decides_the_same():
    """``unique_ids``: the log in front refuses repeats, so the state holds only what the
    rules need, and every record is the one the checking engine writes."""
    lines = [visit("h1", T0, ["injury_observed"]), petition("h1", T0 + DAY),
             gap("h1", T0 + 2 * DAY), petition("h1", T0 + 3 * DAY)]
    pack = load_pack()
    checking, trusting = Engine(pack), Engine(pack, unique_ids=True)
    kept, lean = HouseholdState(), HouseholdState()
    for event_line in lines:
        decoded = decode(event_line)
        assert isinstance(decoded, Decoded)
        assert (checking.apply(kept, decoded).records
                == trusting.apply(lean, decoded).records)
    assert len(kept.seen) == len(lines)
    assert len(lean.seen) == 0 and b'"z"' not in lean.to_bytes()
    assert len(lean.to_bytes()) < len(kept.to_bytes())
