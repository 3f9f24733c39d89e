"""The soak script: its bounds (pure, on made-up series) and a 30-second run on the broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.soak import EXIT_BOUND, EXIT_OK, EXIT_RATE, Sample, SoakSettings, judge
from tests.faults.harness import ROOT

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

SETTINGS = SoakSettings(minutes=10, rate=1000, interval_s=10, warmup_s=60,
                        max_lag_seconds=30)


def series(rss: list[int], lag: list[int]) -> list[Sample]:
    return [Sample(t_s=10.0 * (i + 1), published=10_000 * (i + 1), rss_kb=r, end_offset=0,
                   committed=0, lag=g, lifecycle=0, dead_letters=0)
            for i, (r, g) in enumerate(zip(rss, lag, strict=True))]


def test_flat_memory_and_small_lag_pass() -> None:
    samples = series([90_000] * 5 + [120_000, 121_000, 125_000, 122_000, 130_000], [500] * 10)
    verdict = judge(samples, SETTINGS, drained_in_s=3.0, published=600_000, publish_s=600)
    assert (verdict.exit_code, verdict.problems) == (EXIT_OK, [])
    assert verdict.figures["rss_baseline_kb"] == 120_000
    assert verdict.figures["rss_growth"] == round(10_000 / 120_000, 4)


def test_memory_growing_past_the_bound_after_warm_up_fails() -> None:
    samples = series([90_000] * 5 + [100_000, 110_000, 115_000, 118_000, 121_000], [0] * 10)
    verdict = judge(samples, SETTINGS, drained_in_s=1.0, published=600_000, publish_s=600)
    assert verdict.exit_code == EXIT_BOUND
    assert verdict.problems == [
        "memory grew 21.0% after warm-up (100000 → 121000 kB), bound 20%"]


def test_growth_during_warm_up_does_not_count() -> None:
    samples = series([10_000, 40_000, 80_000, 100_000, 100_000, 100_000], [0] * 6)
    assert judge(samples, SETTINGS, 1.0, 600_000, 600).exit_code == EXIT_OK


def test_lag_beyond_the_bound_or_never_drained_fails() -> None:
    lagging = series([100_000] * 8, [0] * 6 + [30_001, 0])
    verdict = judge(lagging, SETTINGS, drained_in_s=1.0, published=600_000, publish_s=600)
    assert verdict.exit_code == EXIT_BOUND and "lag reached 30001" in verdict.problems[0]
    stuck = series([100_000] * 8, [10] * 8)
    verdict = judge(stuck, SETTINGS, drained_in_s=None, published=600_000, publish_s=600)
    assert verdict.exit_code == EXIT_BOUND and "did not drain" in verdict.problems[0]


def test_a_publisher_below_the_rate_makes_the_run_not_count() -> None:
    samples = series([100_000] * 8, [0] * 8)
    verdict = judge(samples, SETTINGS, drained_in_s=1.0, published=500_000, publish_s=600)
    assert verdict.exit_code == EXIT_RATE and "does not count" in verdict.problems[0]


def test_a_run_without_samples_after_warm_up_is_not_a_pass() -> None:
    verdict = judge(series([100_000] * 3, [0] * 3), SETTINGS, 1.0, 600_000, 600)
    assert verdict.exit_code == EXIT_BOUND


def test_thirty_seconds_on_the_broker_stay_bounded(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "cli.soak", "--minutes", "0.5", "--rate", "250",
         "--bootstrap", kafka_broker.bootstrap, "--interval", "5", "--warmup", "10",
         "--workdir", str(tmp_path / "work"), "--json-out", str(out)],
        cwd=ROOT, capture_output=True, timeout=300, check=False)
    assert done.returncode == EXIT_OK, (done.stdout.decode(), done.stderr.decode()[-3000:])
    result = json.loads(out.read_text())
    samples = result["samples"]
    assert len(samples) >= 6 and all(s["rss_kb"] > 0 for s in samples)
    assert result["figures"]["published"] >= 0.9 * 250 * 30
    assert samples[-1]["lag"] == 0 and samples[-1]["committed"] >= result["figures"]["published"]
    assert samples[-1]["lifecycle"] > 0 and samples[-1]["dead_letters"] > 0
    print("[soak 30 s]", json.dumps(result["figures"]))
