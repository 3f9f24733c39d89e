"""The embedded runtime at several history sizes, in one run: does the cost per event grow?

``jiahe bench --scale N [--scale M …]`` (or ``python -m bench.scale --events N …``)
runs, for each size, the commands a user runs, each as its own process on a fresh
home: ``jiahe sample --events N --households N/10 --seed 7``, ``jiahe publish``,
``jiahe process --no-project`` and ``jiahe rebuild``. Each step reports wall
seconds, events per second, the CPU seconds of its process (user + system: on a
shared machine the wall clock also counts other people's work) and that process's
peak RSS (``wait4``'s ``ru_maxrss``, the one child only); each size reports the
home's bytes on disk per accepted event (log and warehouse apart).

Separate processes, as in production: nothing one step allocated or cached is
inherited by the next, and each step's peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The steps timed per size, in order, as ``jiahe`` arguments (``{stream}``: the sample file).
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("publish", ("publish", "{stream}")),
    ("process", ("process", "--no-project")),
    ("rebuild", ("rebuild",)),
)
#: Households per event in the generated history (a city: ten events per household).
HOUSEHOLDS_PER_EVENT = 0.1
SEED = 7
LOG_FILES = ("log.sqlite3", "log.sqlite3-wal", "log.sqlite3-shm")


@dataclass(frozen=True)
class Run:
    """One finished child process: wall and CPU seconds, peak RSS, its output."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str


def _jiahe(home: Path, args: list[str]) -> Run:
    """Run ``jiahe --home HOME ARGS`` in a child process; raises if it fails.

    ``os.wait4`` gives this child's own resource usage (``RUSAGE_CHILDREN`` would be
    the maximum over every child so far).
    """
    command = [sys.executable, "-m", "cli.main", "--home", str(home), *args]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err)  # noqa: S603 - our own CLI
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {child.returncode}: {stderr[-2000:]}")
    # ru_maxrss is in KiB on Linux
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def _bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _accepted(publish_output: str) -> int:
    """The accepted count ``jiahe publish`` printed (``… accepted N, …``)."""
    words = publish_output.replace(",", " ").split()
    return int(words[words.index("accepted") + 1])


def run_size(events: int, workdir: Path, households: int | None = None,
             seed: int = SEED) -> dict[str, Any]:
    """Sample, publish, process and rebuild ``events`` events on a fresh home in ``workdir``."""
    households = households or max(1, int(events * HOUSEHOLDS_PER_EVENT))
    size_dir = workdir / f"scale-{events}"
    home, stream = size_dir / "home", size_dir / "stream.jsonl"
    size_dir.mkdir(parents=True, exist_ok=True)
    sampled = size_dir / f"stream-{households}-{seed}.done"
    sample_s: float | None = None
    if not sampled.exists():  # a kept workdir's stream is reused (the sample is deterministic)
        stream.unlink(missing_ok=True)
        sample = _jiahe(home, ["sample", "--events", str(events), "--households",
                               str(households), "--seed", str(seed), str(stream)])
        sampled.touch()
        sample_s = round(sample.wall_s, 2)
    if home.exists():
        shutil.rmtree(home)  # every step starts from a fresh home
    result: dict[str, Any] = {"events": events, "households": households, "seed": seed,
                              "sample_s": sample_s, "load_before": _load()}
    for name, template in STEPS:
        run = _jiahe(home, [arg.format(stream=stream) for arg in template])
        if name == "publish":
            result["accepted"] = _accepted(run.stdout)
        result[name] = {
            "seconds": round(run.wall_s, 2),
            "events_per_s": round(events / run.wall_s),
            "cpu_s": round(run.cpu_s, 2),
            "events_per_cpu_s": round(events / run.cpu_s) if run.cpu_s else None,
            "peak_rss_mb": round(run.peak_rss_mb),
        }
    log_bytes = sum(_bytes_under(home / name) for name in LOG_FILES if (home / name).exists())
    warehouse = home / "warehouse"
    warehouse_bytes = _bytes_under(warehouse) if warehouse.exists() else 0
    accepted = max(1, result["accepted"])
    result.update({
        "log_bytes": log_bytes,
        "warehouse_bytes": warehouse_bytes,
        "log_bytes_per_event": round(log_bytes / accepted),
        "home_bytes_per_event": round((log_bytes + warehouse_bytes) / accepted),
        "load_after": _load(),
    })
    return result


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared: say how busy it was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run(sizes: list[int], workdir: Path, keep: bool = False) -> dict[str, Any]:
    """Every size in turn; with more than one, each step's rate relative to the smallest."""
    results = [run_size(n, workdir) for n in sorted(sizes)]
    if not keep:
        for result in results:
            shutil.rmtree(workdir / f"scale-{result['events']}")
    report: dict[str, Any] = {"sizes": results}
    if len(results) > 1:
        first, last = results[0], results[-1]
        report["largest_vs_smallest"] = {
            name: round(last[name]["events_per_s"] / first[name]["events_per_s"], 2)
            for name, _ in STEPS
        }
    return report


def render(report: dict[str, Any]) -> str:
    """A plain table, one row per size and step."""
    lines = ["events  step     seconds  events/s  events/cpu-s  peak RSS MB"]
    for size in report["sizes"]:
        for name, _ in STEPS:
            step = size[name]
            lines.append(f"{size['events']:>9,}  {name:<7} {step['seconds']:>8.1f} "
                         f"{step['events_per_s']:>9,} {step['events_per_cpu_s'] or 0:>13,} "
                         f"{step['peak_rss_mb']:>12,}")
        lines.append(f"{size['events']:>9,}  disk: log {size['log_bytes_per_event']} B/event, "
                     f"home {size['home_bytes_per_event']} B/event; "
                     f"load {size['load_before']} → {size['load_after']}")
    if "largest_vs_smallest" in report:
        ratios = ", ".join(f"{k} {v}×" for k, v in report["largest_vs_smallest"].items())
        lines.append(f"largest size's rate / smallest's: {ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, action="append", required=True,
                        help="a history size (repeatable: 1000000 and 10000000)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the homes and streams here, and reuse the streams of an "
                             "earlier run (default: a temp dir)")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        report = run(args.events, args.workdir, keep=True)
    else:
        with tempfile.TemporaryDirectory(prefix="jiahe-scale-") as tmp:
            report = run(args.events, Path(tmp))
    print(render(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
