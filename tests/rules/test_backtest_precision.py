"""``jiahe rules backtest``: each rule's assessed risk and precision, next to the diff.

The chairs' assessments (研判, ``warning.assessed``) in the history say how each
warning was judged; per rule the backtest counts low / medium / high / unassessed
(a warning counted once, by its last assessment) for the base and the candidate
run, and precision = share of the assessed warnings judged medium or high.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner

from cli.rules import register
from rules.backtest import RiskProfile, backtest, risk_profiles, run
from rules.pack import DEFAULT_PACK_PATH, load_pack, parse_pack
from tests.helpers import (
    DAY,
    HOUR,
    T0,
    envelope,
    event_id,
    iso,
    line,
    mediation_concluded,
    mediation_opened,
    visit,
    wid,
)


def _assess(hh: str, warning_id: str, at: int, risk: str) -> str:
    data = {"warning_id": warning_id, "by": "chair-1", "risk": risk, "note": "研判"}
    return line(envelope("warning.assessed", hh, at, data))


def _history() -> list[str]:
    """Three violence-injury warnings judged high, low-then-medium and never; one
    mediation-failed warning judged low; a referral (a record of no warning)."""
    a = wid("violence-injury", "hh-a", event_id("a-1"))
    b = wid("violence-injury", "hh-b", event_id("b-1"))
    m = wid("mediation-failed", "hh-m", event_id("m-2"))
    referral = {"referral_id": "ref-1", "agency": "police", "basis": "emergency",
                "warning_id": a, "note": "转派出所"}
    return [
        visit("hh-a", T0, ["injury_observed"], eid="a-1"),
        visit("hh-b", T0, ["injury_observed"], eid="b-1"),
        visit("hh-c", T0, ["injury_observed"], eid="c-1"),
        mediation_opened("hh-m", T0, eid="m-1"),
        mediation_concluded("hh-m", T0 + DAY, outcome="failed", eid="m-2"),
        _assess("hh-a", a, T0 + HOUR, "high"),
        _assess("hh-b", b, T0 + HOUR, "low"),
        _assess("hh-b", b, T0 + 2 * HOUR, "medium"),  # the last judgment counts
        _assess("hh-m", m, T0 + DAY + HOUR, "low"),
        line(envelope("referral.sent", "hh-a", T0 + 3 * HOUR, referral)),
    ]


def _candidate_without(rule_id: str) -> Any:
    doc = dict(yaml.safe_load(DEFAULT_PACK_PATH.read_text(encoding="utf-8")))
    doc["rules"] = [r for r in doc["rules"] if r["id"] != rule_id]
    doc["version"] = 2
    return doc


def test_precision_is_the_share_of_assessed_warnings_judged_medium_or_high() -> None:
    assert RiskProfile("r", low=1, medium=1, high=2, unassessed=5).precision == 0.75
    assert RiskProfile("r", low=3).precision == 0.0
    assert RiskProfile("r", unassessed=4).precision is None  # nobody judged any
    assert RiskProfile("r", low=1, medium=2).assessed == 3


def test_each_rule_shows_how_its_warnings_were_judged() -> None:
    base = load_pack(DEFAULT_PACK_PATH)
    candidate = parse_pack(_candidate_without("mediation-failed"))
    result = backtest(base, candidate, _history())
    assert result.base_risk == {
        "mediation-failed": RiskProfile("mediation-failed", low=1),
        "violence-injury": RiskProfile("violence-injury", medium=1, high=1, unassessed=1),
    }
    assert result.base_risk["violence-injury"].precision == 1.0
    assert result.base_risk["mediation-failed"].precision == 0.0
    # the candidate drops the rule whose warning was judged low: its precision is gone
    assert "mediation-failed" not in result.candidate_risk
    assert result.candidate_risk["violence-injury"] == result.base_risk["violence-injury"]
    assert [(rule, pack) for rule, pack, _ in result.risk_rows()] == [
        ("mediation-failed", "base"), ("mediation-failed", "candidate"),
        ("violence-injury", "base"), ("violence-injury", "candidate")]
    assert [d.kind for d in result.differences] == ["vanish"]


def test_assessments_are_part_of_a_warnings_history() -> None:
    pack = load_pack(DEFAULT_PACK_PATH)
    runs, _, _ = run(pack, _history(), None)
    b = runs[wid("violence-injury", "hh-b", event_id("b-1"))]
    assert b.risk == "medium"
    assert [step for step in b.history_text() if step.startswith("assessed")] == [
        f"assessed {iso(T0 + HOUR)} low", f"assessed {iso(T0 + 2 * HOUR)} medium"]
    assert runs[wid("violence-injury", "hh-c", event_id("c-1"))].risk is None
    assert risk_profiles(runs)["violence-injury"].unassessed == 1
    assert backtest(pack, pack, _history()).differences == []  # same pack, same judgments


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def main() -> None:
        pass

    register(main)
    return main


def _run(cli: click.Group, tmp_path: Path, *args: str) -> Any:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(_history()) + "\n", encoding="utf-8")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(_candidate_without("mediation-failed"),
                                        allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "backtest", "--pack", str(candidate),
                                      str(events), *args])
    assert result.exit_code == 0, result.output
    return result


def test_the_table_shows_risk_and_precision_next_to_the_diff(cli: click.Group,
                                                             tmp_path: Path) -> None:
    out = _run(cli, tmp_path).output
    assert out.index("VANISH") < out.index("assessed risk by rule")
    lines = out.splitlines()
    start = next(i for i, text in enumerate(lines) if text.startswith("assessed risk by rule"))
    header = lines[start].split()
    assert header[-5:] == ["low", "medium", "high", "unassessed", "precision"]
    rows = [text.split() for text in lines[start + 1:start + 5]]
    assert rows == [
        ["mediation-failed", "base", "1", "0", "0", "0", "0.0%"],
        ["candidate", "0", "0", "0", "0", "-"],
        ["violence-injury", "base", "0", "1", "1", "1", "100.0%"],
        ["candidate", "0", "1", "1", "1", "100.0%"],
    ]
    assert "judged medium or high" in out


def test_jsonl_has_a_risk_row_per_rule_and_run(cli: click.Group, tmp_path: Path) -> None:
    rows = [orjson.loads(text) for text in _run(cli, tmp_path, "--format", "jsonl")
            .output.splitlines()]
    risk = [r for r in rows if r.get("summary") == "risk"]
    assert risk[0] == {"summary": "risk", "pack": "base", "rule_id": "mediation-failed",
                       "low": 1, "medium": 0, "high": 0, "unassessed": 0, "assessed": 1,
                       "precision": 0.0}
    assert [(r["rule_id"], r["pack"], r["precision"]) for r in risk] == [
        ("mediation-failed", "base", 0.0), ("mediation-failed", "candidate", None),
        ("violence-injury", "base", 1.0), ("violence-injury", "candidate", 1.0)]
    assert rows[-1]["summary"] == "total"
