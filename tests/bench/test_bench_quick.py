"""Smoke tests: the benchmark functions run on tiny inputs and return their keys.

No timing assertions — the numbers belong in BENCHMARKS.md, not in CI.
"""

from __future__ import annotations

from pathlib import Path

from events.sample import StreamSpec, write_jsonl

EMBEDDED_KEYS = {
    "events", "households", "generate_s", "json_loads_events_per_s", "replay_events_per_s",
    "replay_vs_json_loads", "publish_events_per_s", "process_without_warehouse_events_per_s",
    "processor_with_ledgers_events_per_s", "rebuild_s", "rebuild_rows_per_s",
    "lifecycle_records", "peak_rss_mb",
}


def test_embedded_bench_returns_keys(tmp_path: Path) -> None:
    from bench import embedded as bench

    results = bench.run_embedded_bench(600, 100, tmp_path)
    assert set(results) >= EMBEDDED_KEYS
    assert results["events"] == 600


def test_rss_bench_reports_households(tmp_path: Path) -> None:
    from bench import embedded as bench

    report = bench.run_rss_bench(households=50, events=400, workdir=tmp_path)
    assert 0 < report["households_with_state"] <= 50
    assert report["processor_peak_rss_mb"] > 0


def test_eventsourcing_peer_matches_jiahe_ledger(tmp_path: Path) -> None:
    import eventsourcing  # noqa: F401  # a test dependency (pyproject): never skipped

    from bench import peers as bench_peers

    path = tmp_path / "s.jsonl"
    write_jsonl(StreamSpec(events=1500, households=120, seed=3, at_risk_fraction=0.2), path)
    lines = path.read_bytes().splitlines()
    reference = bench_peers.jiahe_ledger(lines)
    assert reference  # the stream raises warnings
    for every in (1, 100):
        workdir = tmp_path / f"peer-{every}"
        workdir.mkdir()
        report = bench_peers.run_eventsourcing_peer(lines, workdir, save_every=every)
        assert report["ledger"] == reference
        assert {"events_per_s", "received", "warnings", "total_s"} <= set(report)


def test_eventsourcing_peer_run_returns_keys() -> None:
    import eventsourcing  # noqa: F401  # a test dependency (pyproject): never skipped

    from bench import peers as bench_peers

    results = bench_peers.run(events=300, households=40, check_events=300, save_every=(50,))
    peer = results["eventsourcing_save_every_50"]
    assert peer["ledger_equal_on_check_stream"] is True
    assert {"events_per_s", "jiahe_replay_events_per_s", "jiahe_speedup"} <= set(peer)


def test_analytics_quick_run_returns_keys() -> None:
    from bench import analytics as bench_analytics

    report = bench_analytics.run(events=3000, households=300, runs=2, chunk=1000, optimize=True)
    assert report["load"]["events"] == 3000
    for phase in ("as_loaded", "after_optimize"):
        assert set(report[phase]) == (set(bench_analytics.dashboard_queries(0, "230102"))
                                      | set(bench_analytics.other_queries(0, "230102")))
        for stats in report[phase].values():
            assert {"p50_ms", "p95_ms", "rows"} <= set(stats)
    assert report["as_loaded"]["warnings_full_as_of"]["rows"] > 0
