"""What a household's seen ids cost per event, in the two ways the engine meets them.

``python -m bench.seen_ids [--ids N] [--number K] [--repeat R]`` prints JSON.

* ``fresh_add_us``: ``SeenIds.add_if_new`` on a state that has nothing stored, per id,
  over ``N`` ids — what the replay pays for every event (its states are never stored);
* ``stored_cycle_us``: decode a stored state that holds ``N - 1`` ids, ask about one
  new id, encode it again — what a worker that reloads its states pays for an event.

Best of ``R`` timings of ``K`` loops each (``timeit``), in microseconds. The figures
sit below the noise of a whole replay on a shared machine, which is why they are timed
alone; compare two versions of the code by running each tree's copy of this module.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
import uuid

from rules.seen import SeenIds
from rules.state import HouseholdState


def measure(ids: int, number: int, repeat: int) -> dict[str, float]:
    event_ids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(ids)]
    fingerprints = [f"{i:016x}" for i in range(ids)]
    pairs = list(zip(event_ids, fingerprints, strict=True))

    def fresh_adds() -> None:
        seen = SeenIds()
        for event_id, fingerprint in pairs:
            seen.add_if_new(event_id, fingerprint)

    earlier = SeenIds()
    for event_id, fingerprint in pairs[:-1]:
        earlier.add_if_new(event_id, fingerprint)
    stored = HouseholdState(seen=earlier).to_bytes()
    last_id, last_fingerprint = pairs[-1]

    def stored_cycle() -> None:
        state = HouseholdState.from_bytes(stored)
        state.seen.add_if_new(last_id, last_fingerprint)
        state.to_bytes()

    fresh = min(timeit.repeat(fresh_adds, number=number, repeat=repeat)) / number / ids
    cycle = min(timeit.repeat(stored_cycle, number=number, repeat=repeat)) / number
    return {"ids": ids, "fresh_add_us": round(fresh * 1e6, 3),
            "stored_cycle_us": round(cycle * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ids", type=int, default=10, help="ids per household (default 10)")
    parser.add_argument("--number", type=int, default=20_000, help="loops per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is kept")
    args = parser.parse_args(argv)
    if args.ids < 1:
        parser.error("--ids must be at least 1")
    json.dump(measure(args.ids, args.number, args.repeat), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
