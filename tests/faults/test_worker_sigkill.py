"""``jiahe worker`` SIGKILLed at ≥ 20 random points on the real broker: same output as replay.

One continuous campaign over one stream (30k lines + bad lines) on a fresh topic set:
each round starts a worker (same data dir: rocksdict store + changelog; same chdb
warehouse) and kills it with SIGKILL at a point drawn from the seeded RNG — a delay
after spawn (start-up, group join, changelog recovery) or a committed offset a little
further on (mid-batch, between a send and its offset commit, mid-warehouse-insert; at
least five kills land so). Small batches and a short commit interval make every run commit
progress. A last worker then runs to the end. Checked against the engine alone
(``Replay`` over the same lines, as ``jiahe replay`` does):

* every expected lifecycle record reached the warnings topic, identical re-sends only
  (at-least-once; readers deduplicate by the ``record_id`` header), and each
  (warning_id, transition) exactly once after that deduplication;
* every rejected line is in the DLQ with its reason (received = processed + duplicates
  + rejected: the processed count is checked in the warehouse);
* the chdb warehouse, written by 21 processes of which 20 died mid-way, holds each
  event and each lifecycle record exactly once (FINAL).
"""

from __future__ import annotations

import time
from pathlib import Path

from streams.kafka.settings import Topics
from tests.faults.harness import Campaign, Kill, duplicated_transitions, fault_rng, kill_count
from tests.streams.kafka.test_worker import (
    AS_OF,
    BAD_LINES,
    Workers,
    assert_dlq,
    assert_same,
    big_stream,
    committed,
    expected_from,
    publish,
    read_all,
    wait_for_records,
    warehouse_counts,
    workers,  # noqa: F401  (the fixture)
)

RUN_ARGS = ("--as-of", AS_OF, "--batch", "200", "--commit-interval", "0.2")


MID_STREAM_KILLS = 5  # at least this many kills must land with the stream half-consumed


def kill_campaign(pool: Workers, total: int, kills: int, warehouse: Path) -> Campaign:
    """Kill the worker ``kills`` times; each round's kill point comes from the RNG.

    *after-spawn* kills wait a delay after spawn. *at-position* kills wait until the
    group's committed offset passed a point 1–6 % of the stream further on, then a short
    delay. Drawing by position rather than wall time keeps the mid-stream kills from
    depending on the machine's speed; the last rounds are forced to *at-position* when
    needed, so at least ``MID_STREAM_KILLS`` land mid-stream.
    """
    seed, rng = fault_rng("worker")
    campaign = Campaign("worker", seed)
    step = max(1, total // 100)
    run = 0
    while len(campaign.kills) < kills:
        run += 1
        before = committed(pool.bootstrap, pool.group)
        owed = MID_STREAM_KILLS - sum(k.phase == "mid-stream" for k in campaign.kills)
        forced = owed >= kills - len(campaign.kills)
        targeted = before < total - 6 * step and (forced or rng.random() < 0.5)
        mode = "at-position" if targeted else "after-spawn"
        target = before + rng.randint(1, 6) * step
        delay = rng.uniform(0.0, 0.5) if targeted else rng.uniform(0.3, 6.0)
        spawned = time.monotonic()
        victim = pool.start("w", *RUN_ARGS, "--warehouse", f"chdb:{warehouse}")
        if targeted:
            deadline = spawned + 120
            while (victim.poll() is None and time.monotonic() < deadline
                   and committed(pool.bootstrap, pool.group) < target):
                time.sleep(0.05)
        time.sleep(delay)
        if victim.poll() is not None:
            pool.assert_alive()  # a worker must never exit on its own here
        victim.kill()
        victim.wait()
        after = committed(pool.bootstrap, pool.group)
        phase = "all committed" if after >= total else "mid-stream" if after > before else (
            "before 1st commit")
        campaign.kills.append(Kill(run, round(time.monotonic() - spawned, 2), mode, before,
                                   after, phase))
    return campaign


def test_twenty_sigkills_of_the_worker_lose_and_duplicate_nothing(
    workers: Workers, tmp_path: Path  # noqa: F811
) -> None:
    lines = big_stream(tmp_path, seed=29) + BAD_LINES
    expected = expected_from(lines, AS_OF)
    topics = Topics.with_prefix(workers.prefix)
    publish(workers.bootstrap, topics.events, lines)
    warehouse = workers.tmp / "warehouse"

    started = time.monotonic()
    campaign = kill_campaign(workers, len(lines), kill_count(), warehouse)
    print(campaign.summary(), f"in {time.monotonic() - started:.1f} s")
    for kill in campaign.kills:
        print(f"  run {kill.run:>2}: {kill.mode:<12} killed at {kill.delay_s:>5.2f} s, "
              f"committed {kill.before:>6} → {kill.after:>6} ({kill.phase})")
    mid_stream = sum(k.phase == "mid-stream" for k in campaign.kills)
    assert mid_stream >= MID_STREAM_KILLS, campaign.summary()

    workers.start("w", *RUN_ARGS, "--warehouse", f"chdb:{warehouse}")
    got = wait_for_records(workers, expected)
    assert_same(got, expected)
    assert duplicated_transitions(got.values()) == {}
    assert_dlq(workers, expected)
    sent = len(read_all(workers.bootstrap, topics.warnings))
    print(f"  warnings topic: {sent} messages for {len(got)} records "
          f"({sent - len(got)} identical re-sends after kills)")
    workers.stop()  # chdb: one process per path
    events, records, raw = warehouse_counts(workers, warehouse)
    print(f"  warehouse: {events} events, {records} records ({raw} lifecycle rows before FINAL)")
    assert (events, records) == (expected.processed, len(expected.records))
