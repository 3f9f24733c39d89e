"""``jiahe soak``: the Kafka runtime's soak test as a command (the run is :mod:`bench.soak`).

``python -m cli.soak`` runs the same command on its own.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

import click

from bench.soak import Sample, SoakSettings, run


def print_sample(sample: Sample) -> None:
    click.echo(f"{sample.t_s:>8.1f} s  published {sample.published:>9}  rss "
               f"{sample.rss_kb / 1024:>7.1f} MB  lag {sample.lag:>7}  lifecycle "
               f"{sample.lifecycle:>8}  dlq {sample.dead_letters:>6}", err=True)


@click.command("soak")
@click.option("--minutes", type=click.FloatRange(0.1), default=30.0, show_default=True)
@click.option("--rate", type=click.IntRange(1), default=2000, show_default=True,
              help="Events per second sent by the publisher.")
@click.option("--bootstrap", help="Use this broker (default: start a private one).")
@click.option("--partitions", type=click.IntRange(1), default=6, show_default=True)
@click.option("--interval", type=click.FloatRange(0.5), default=10.0, show_default=True,
              help="Seconds between samples.")
@click.option("--warmup", type=click.FloatRange(0), help="Seconds before the memory baseline "
              "(default: 20% of the run, at least 30 s).")
@click.option("--max-memory-growth", type=click.FloatRange(0), default=0.20, show_default=True)
@click.option("--max-lag-seconds", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Lag bound, in seconds of input at --rate.")
@click.option("--drain", "drain_s", type=click.FloatRange(1), default=120.0, show_default=True)
@click.option("--households", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Broker data, worker home and log (default: a new temp dir, kept).")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write settings, samples and verdict as JSON here.")
def soak_command(minutes: float, rate: int, bootstrap: str | None, partitions: int,
                 interval: float, warmup: float | None, max_memory_growth: float,
                 max_lag_seconds: float, drain_s: float, households: int, seed: int,
                 workdir: Path | None, json_out: Path | None) -> None:
    """Soak the Kafka runtime: steady rate for MINUTES; fail on memory growth or lag."""
    settings = SoakSettings(
        minutes=minutes, rate=rate, bootstrap=bootstrap, partitions=partitions,
        interval_s=interval, warmup_s=warmup, max_memory_growth=max_memory_growth,
        max_lag_seconds=max_lag_seconds, drain_s=drain_s, households=households, seed=seed,
        workdir=workdir,
    )
    click.echo(f"soak: {minutes} min at {rate} events/s, warm-up {settings.warmup:.0f} s, "
               f"lag bound {settings.max_lag} events", err=True)
    verdict, samples = run(settings, print_sample)
    result = {
        "settings": {k: str(v) if isinstance(v, Path) else v
                     for k, v in asdict(settings).items()},
        "samples": [asdict(s) for s in samples],
        "figures": verdict.figures,
        "problems": verdict.problems,
        "exit_code": verdict.exit_code,
        "load_average": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    if json_out:
        json_out.write_text(text + "\n")
    click.echo(json.dumps({"figures": verdict.figures, "problems": verdict.problems,
                           "exit_code": verdict.exit_code}, indent=2))
    with suppress(BrokenPipeError):
        sys.stdout.flush()
    sys.exit(verdict.exit_code)


def register(main_group: click.Group) -> None:
    """Add ``soak`` to the main ``jiahe`` group."""
    main_group.add_command(soak_command)


if __name__ == "__main__":  # pragma: no cover
    soak_command()
