"""CPU cost per event of decoding, and of the worker's whole per-event path.

``python -m bench.decode [--events 50000] [--repeat 5]`` prints JSON:

* ``decode_us``: ``events.codec.decode`` over the lines of ``events.sample``
  (seed 0: its late / duplicate / conflict / invalid mix), as bytes (as Kafka
  delivers them);
* ``orjson_loads_us``: ``orjson.loads`` alone over the same lines (the floor);
* ``batch_us``: ``streams.kafka.batch.BatchProcessor.process`` in batches
  of 2,000, states stored as bytes in a dict (loaded with ``from_bytes``, written
  back with ``to_bytes``), lifecycle messages encoded — the worker without Kafka.

CPU time (``time.process_time``), best of ``--repeat`` runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from events.codec import decode
from events.sample import StreamSpec, generate
from rules.engine import Engine
from rules.pack import load_pack
from rules.state import HouseholdState
from streams.kafka.batch import BatchProcessor, Incoming, lifecycle_message


def _lines(events: int, seed: int) -> list[bytes]:
    spec = StreamSpec(events=events, households=max(1_000, events // 5), seed=seed)
    return [line.text.encode() for line in generate(spec)]


def _best_us(run: Callable[[], None], events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        began = time.process_time()
        run()
        best = min(best, time.process_time() - began)
    return round(best / events * 1e6, 2)


def _batch_runner(lines: list[bytes], batch_size: int) -> Callable[[], None]:
    messages = [
        Incoming("jiahe.events", 0, offset, None, value) for offset, value in enumerate(lines)
    ]
    batches = [messages[i:i + batch_size] for i in range(0, len(messages), batch_size)]
    engine = Engine(load_pack())

    def run() -> None:
        processor = BatchProcessor(engine)
        store: dict[str, bytes] = {}

        def load(household_id: str, partition: int) -> HouseholdState | None:
            blob = store.get(household_id)
            return None if blob is None else HouseholdState.from_bytes(blob)

        for batch in batches:
            result = processor.process(batch, load)
            for record in result.records:
                lifecycle_message(record)
            for household_id, touched in result.touched.items():
                store[household_id] = touched.state.to_bytes()

    return run


def measure(events: int = 50_000, repeat: int = 5, seed: int = 0,
            batch: bool = True) -> dict[str, Any]:
    lines = _lines(events, seed)

    def loads_all() -> None:
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(line)

    def decode_all() -> None:
        for line in lines:
            decode(line)

    out: dict[str, Any] = {"events": len(lines), "repeat": repeat}
    out["orjson_loads_us"] = _best_us(loads_all, len(lines), repeat)
    out["decode_us"] = _best_us(decode_all, len(lines), repeat)
    if batch:
        out["batch_us"] = _best_us(_batch_runner(lines, 2_000), len(lines), repeat)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-batch", action="store_true", help="decode only")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.events, args.repeat, args.seed, not args.no_batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
