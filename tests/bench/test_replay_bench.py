"""``python -m bench.replay`` on a tiny stream: the report's shape, never its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import replay as bench
from events.sample import StreamSpec, write_jsonl

RATES = (
    "json_loads_events_per_s", "json_loads_events_per_cpu_s",
    "orjson_loads_events_per_s", "orjson_loads_events_per_cpu_s",
    "replay_events_per_s", "replay_events_per_cpu_s",
)


def test_the_report_times_both_loops_over_the_same_warning_heavy_stream(tmp_path: Path) -> None:
    report = bench.run(events=600, seed=3, repeat=1, workdir=tmp_path)

    assert report["events"] == 600 and report["json_loads"] == "stdlib json"
    assert report["at_risk_fraction"] == bench.AT_RISK_FRACTION
    for key in RATES:
        assert isinstance(report[key], int) and report[key] > 0, key
    for key in ("replay_vs_json_loads", "replay_vs_json_loads_cpu"):
        assert isinstance(report[key], float) and report[key] > 0, key
    # The replay wrote the warnings file as `jiahe replay --warnings-out` would.
    written = (tmp_path / "warnings.jsonl").read_bytes().splitlines()
    assert report["lifecycle_records"] == len(written) > 0
    assert report["records_per_event"] == pytest.approx(len(written) / 600, abs=0.001)
    assert all(json.loads(line)["type"].startswith(("warning.", "referral."))
               for line in written)


def test_the_module_prints_the_report_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--events", "300", "--seed", "1", "--repeat", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == 300 and report["seed"] == 1 and report["repeat"] == 1
    assert set(RATES) <= set(report)


def test_an_existing_stream_is_timed_as_it_is(tmp_path: Path) -> None:
    stream = tmp_path / "given.jsonl"
    write_jsonl(StreamSpec(events=400, households=40, seed=5), stream)
    workdir = tmp_path / "work"
    workdir.mkdir()

    report = bench.run(repeat=1, workdir=workdir, stream=stream)

    assert report["stream"] == str(stream) and report["events"] == 400
    assert report["households"] is None and report["seed"] is None
    assert not (workdir / "stream.jsonl").exists()
    written = (workdir / "warnings.jsonl").read_bytes().splitlines()
    assert report["lifecycle_records"] == len(written)
