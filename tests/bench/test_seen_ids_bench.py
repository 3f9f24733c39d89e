"""``python -m bench.seen_ids``: the report's shape, never its timings."""

from __future__ import annotations

import json

import pytest

from bench import seen_ids as bench


def test_the_module_prints_both_costs_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--ids", "4", "--number", "10", "--repeat", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ids"] == 4
    assert report["fresh_add_us"] > 0 and report["stored_cycle_us"] > 0


def test_a_household_without_ids_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--ids", "0"])
