"""``jiahe bench --scale N`` on tiny histories: the report's shape, never its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import scale
from cli.main import main


def test_each_size_runs_every_step_as_a_user_would_and_reports_disk(tmp_path: Path) -> None:
    report = scale.run([600, 300], tmp_path, keep=True)

    assert [size["events"] for size in report["sizes"]] == [300, 600]  # smallest first
    for size in report["sizes"]:
        assert size["households"] == size["events"] // 10 and size["seed"] == scale.SEED
        # the sample's duplicates and invalid lines are not accepted
        assert 0 < size["accepted"] < size["events"]
        for name, _ in scale.STEPS:
            step = size[name]
            assert step["seconds"] > 0 and step["cpu_s"] > 0, name
            assert step["events_per_s"] == pytest.approx(size["events"] / step["seconds"],
                                                         rel=0.02), name
            assert step["peak_rss_mb"] > 10, name  # the child's own, a Python process
        assert size["log_bytes"] > 0 and size["warehouse_bytes"] > 0  # rebuild wrote it
        assert size["log_bytes_per_event"] == round(size["log_bytes"] / size["accepted"])
        home = tmp_path / f"scale-{size['events']}" / "home"
        assert (home / "log.sqlite3").is_file()
    ratios = report["largest_vs_smallest"]
    assert set(ratios) == {"publish", "process", "rebuild"}
    big, small = report["sizes"][1], report["sizes"][0]
    assert ratios["publish"] == pytest.approx(
        big["publish"]["events_per_s"] / small["publish"]["events_per_s"], abs=0.01)


def test_jiahe_bench_scale_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(main, ["bench", "--scale", "300", "--json", str(out)])

    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "publish" in result.output and "B/event" in result.output
    report = json.loads(out.read_text())
    assert [size["events"] for size in report["sizes"]] == [300]
    assert "largest_vs_smallest" not in report  # one size: nothing to compare


def test_a_failing_step_names_the_command() -> None:
    with pytest.raises(RuntimeError, match="publish /nonexistent/stream.jsonl exited 2"):
        scale._jiahe(Path("/tmp/jiahe-scale-test-home"), ["publish", "/nonexistent/stream.jsonl"])


def test_a_kept_workdir_reuses_its_stream_and_starts_each_run_on_a_fresh_home(
    tmp_path: Path,
) -> None:
    first = scale.run_size(300, tmp_path)
    stream = tmp_path / "scale-300" / "stream.jsonl"
    written = stream.stat().st_mtime_ns
    again = scale.run_size(300, tmp_path)

    assert first["sample_s"] is not None and again["sample_s"] is None  # not sampled again
    assert stream.stat().st_mtime_ns == written
    # a fresh home each time: the second publish accepts what the first did, not duplicates
    assert again["accepted"] == first["accepted"]
