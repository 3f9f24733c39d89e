"""``jiahe replay`` on a warning-heavy stream, against a bare JSON parsing loop.

``python -m bench.replay [--events N] [--seed S] [--repeat R] [--stream FILE]`` prints JSON.

The stream comes from ``events.sample`` with almost every household at risk and
about 40 events per household: of the shapes ``StreamSpec`` can take, the one
with the most lifecycle records per event (about 0.34; ``records_per_event``
says how many this one made). In one process, over the same file, best of
``--repeat`` runs each:

* ``json_loads``: ``for line in f: json.loads(line)`` with the stdlib ``json``
  module — the floor any validating reader is compared with (``orjson_loads``,
  the same loop with ``orjson.loads``, is reported for information);
* ``replay``: ``app.replay.replay_lines`` exactly as ``jiahe replay FILE
  --warnings-out OUT`` runs it: a fresh ``Replay`` of the default pack, the file
  opened in binary, every lifecycle record written to a file, inside
  ``bulk_mode``.

``--stream FILE`` times an existing JSONL file instead (to compare two versions of
the code on the very same bytes). The floor runs inside ``bulk_mode`` too, so
both sides see the same collector.
Rates are wall-clock (``*_events_per_s``) and CPU-time (``*_events_per_cpu_s``):
on a shared machine the wall clock also measures the neighbours. The ratio
``replay_vs_json_loads`` is replay time / floor time (wall; ``_cpu``: CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from app.bulk import bulk_mode
from app.replay import replay_lines
from events.sample import StreamSpec, write_jsonl
from rules.engine import Engine
from rules.pack import load_pack
from rules.replay import Replay

#: At risk: nearly every household (a fraction must stay below 1).
AT_RISK_FRACTION = 0.99
#: Events per household: about 40 keeps each household's warnings raising,
#: escalating and resolving (measured: 4 or 400 per household make fewer records).
EVENTS_PER_HOUSEHOLD = 40


def warning_heavy_spec(events: int, seed: int) -> StreamSpec:
    """The sample stream with its default noise, nearly every household at risk."""
    return StreamSpec(
        events=events,
        households=max(20, events // EVENTS_PER_HOUSEHOLD),
        seed=seed,
        at_risk_fraction=AT_RISK_FRACTION,
    )


def _stdlib_loop(path: Path) -> int:
    count = 0
    with path.open("rb") as source:
        for line in source:
            with contextlib.suppress(ValueError):  # the stream's invalid lines
                json.loads(line)
            count += 1
    return count


def _orjson_loop(path: Path) -> int:
    count = 0
    with path.open("rb") as source:
        for line in source:
            with contextlib.suppress(ValueError):
                orjson.loads(line)
            count += 1
    return count


def _replay(path: Path, out: Path) -> tuple[int, int]:
    """What ``jiahe replay PATH --warnings-out OUT`` does; (lines received, records written)."""
    runner = Replay(Engine(load_pack()))
    with bulk_mode(), path.open("rb") as source, out.open("wb") as sink:
        written = replay_lines(runner, source, sink)
    return runner.counts.received, written


def _best(action: Callable[[], Any], repeat: int, bulk: bool) -> tuple[float, float, Any]:
    """Best wall and best CPU seconds over ``repeat`` runs, and the last result."""
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        with bulk_mode() if bulk else contextlib.nullcontext():
            began, began_cpu = time.perf_counter(), time.process_time()
            result = action()
            wall_s, cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
        wall, cpu = min(wall, wall_s), min(cpu, cpu_s)
    return wall, cpu, result


def run(events: int = 200_000, seed: int = 7, repeat: int = 3,
        workdir: Path | None = None, stream: Path | None = None) -> dict[str, Any]:
    """Time both loops over ``stream``, or over a stream generated in ``workdir``
    (a temporary directory when None)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        out = workdir / "warnings.jsonl"
        spec = warning_heavy_spec(events, seed) if stream is None else None
        if spec is not None:
            stream = workdir / "stream.jsonl"
            write_jsonl(spec, stream)
        assert stream is not None
        source = stream
        loads_s, loads_cpu, lines = _best(lambda: _stdlib_loop(source), repeat, bulk=True)
        orjson_s, orjson_cpu, _ = _best(lambda: _orjson_loop(source), repeat, bulk=True)
        # _replay enters bulk_mode itself, as the CLI does.
        replay_s, replay_cpu, (received, written) = _best(
            lambda: _replay(source, out), repeat, bulk=False
        )
    return {
        "stream": "generated" if spec is not None else str(source),
        "events": lines,
        "households": spec.households if spec is not None else None,
        "seed": seed if spec is not None else None,
        "at_risk_fraction": spec.at_risk_fraction if spec is not None else None,
        "repeat": repeat,
        "lifecycle_records": written,
        "records_per_event": round(written / max(1, received), 3),
        "json_loads": "stdlib json",
        "json_loads_events_per_s": round(lines / loads_s),
        "json_loads_events_per_cpu_s": round(lines / loads_cpu),
        "orjson_loads_events_per_s": round(lines / orjson_s),
        "orjson_loads_events_per_cpu_s": round(lines / orjson_cpu),
        "replay_events_per_s": round(received / replay_s),
        "replay_events_per_cpu_s": round(received / replay_cpu),
        "replay_vs_json_loads": round(replay_s / loads_s, 2),
        "replay_vs_json_loads_cpu": round(replay_cpu / loads_cpu, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stream", type=Path, default=None,
                        help="time this JSONL file instead of generating one")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.seed, args.repeat, stream=args.stream), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
