"""``jiahe bench --quick --json``: one run, every section, sane numbers, targets judged.

A smoke test, not a timing test: it checks that each section ran on the real parts
(a real broker, worker processes, the Faust peer, the eventsourcing peer, chdb), that
every rate is positive, that the ratios were computed from them, and that every target
carries a verdict — never whether a target is met.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner

from cli.main import main

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_quick_bench_json_has_every_section(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--quick", "--events", "6000",
                                       "--analytics-events", "50000",
                                       "--bootstrap", kafka_broker.bootstrap,
                                       "--json", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "targets" in result.output
    report = json.loads(out.read_text())

    assert report["stream"]["events"] == 6000 and report["stream"]["districts"] == 18
    embedded = report["embedded"]
    for key in ("replay_events_per_s", "processor_with_ledgers_events_per_s", "rebuild_s"):
        assert _positive(embedded[key]), key

    kafka = report["kafka"]
    assert kafka["publish"]["events"] == 6000
    assert _positive(kafka["raw_getmany_events_per_s"])
    assert [run["processes"] for run in kafka["worker_runs"]] == [1, 2]
    assert all(_positive(run["events_per_s"]) for run in kafka["worker_runs"])
    one = kafka["worker_runs"][0]["events_per_s"]
    assert kafka["one_worker_vs_ceiling"] == round(one / kafka["raw_getmany_events_per_s"], 3)
    peer = kafka["faust_agent_peer"]
    assert _positive(peer["events_per_s"]) and peer["events"] == 4000
    assert kafka["one_worker_vs_faust_agent"] == round(one / peer["events_per_s"], 2)
    latency = kafka["latency"]
    assert latency["records"] == latency["events"] > 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]

    es = report["eventsourcing_peer"]
    assert es["ledger_equal_to_jiahe_replay"] is True and _positive(es["events_per_s"])
    jiahe_same_prefix = es["jiahe_processor_with_ledgers_same_prefix_events_per_s"]
    assert _positive(jiahe_same_prefix)
    assert report["eventsourcing_ratio"] == es["jiahe_speedup"]
    assert abs(es["jiahe_speedup"] - jiahe_same_prefix / es["events_per_s"]) < 0.1

    analytics = report["analytics"]
    assert analytics["load"]["events"] == 50000
    assert 0 < analytics["dashboard_p50_max_ms"] <= analytics["dashboard_p95_max_ms"]

    rss = report["peak_rss_mb"]
    flat = [v for value in rss.values() for v in (value if isinstance(value, list) else [value])]
    assert len(rss) >= 8 and all(_positive(v) for v in flat)
    verdicts = {t["name"]: t["met"] for t in report["targets"]}
    assert len(verdicts) == 5 and all(isinstance(met, bool) for met in verdicts.values())


def test_only_embedded_skips_the_other_sections(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--quick", "--events", "1000",
                                       "--only", "embedded", "--json", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    report = json.loads(out.read_text())
    assert "embedded" in report and not {"kafka", "analytics", "eventsourcing_peer"} & set(report)
    not_run = [t for t in report["targets"] if t["met"] is None]
    assert len(not_run) == 4  # everything but the --quick wall clock
