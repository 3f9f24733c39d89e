"""``jiahe rules backtest``: what a candidate pack would change on history.

A candidate pack is replayed over the same events as the current pack, with
the same clock; warnings are compared by their deterministic id.
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
from rules.backtest import backtest
from rules.pack import DEFAULT_PACK_PATH, parse_pack
from tests.helpers import DAY, HOUR, T0, ack, event_id, petition, visit, wid

OTHER_DISTRICT = "230103001001"  # 南岗区


def _pack_doc() -> dict[str, Any]:
    return dict(yaml.safe_load(DEFAULT_PACK_PATH.read_text(encoding="utf-8")))


def _rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["id"] == rule_id)


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _history() -> list[str]:
    """hh-two: 2 petitions (no repeat warning at 3); hh-three: 3 (warning at 3);
    hh-red: an injury visit, acknowledged after 30 h (escalated once at 24 h)."""
    return [
        petition("hh-two", T0, eid="two-1"),
        petition("hh-two", T0 + 5 * DAY, eid="two-2"),
        petition("hh-three", T0, org=OTHER_DISTRICT, eid="three-1"),
        petition("hh-three", T0 + DAY, org=OTHER_DISTRICT, eid="three-2"),
        petition("hh-three", T0 + 2 * DAY, org=OTHER_DISTRICT, eid="three-3"),
        visit("hh-red", T0, ["injury_observed"], eid="red-1"),
        ack("hh-red", wid("violence-injury", "hh-red", event_id("red-1")), T0 + 30 * HOUR,
            eid="red-ack"),
    ]


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def main() -> None:
        pass

    register(main)
    return main


def _run(cli: click.Group, *args: str) -> Any:
    return CliRunner().invoke(cli, ["rules", "backtest", *args])


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(_history()) + "\n\n", encoding="utf-8")
    return path


def test_lower_repeat_threshold_shows_new_warnings(cli: click.Group, tmp_path: Path) -> None:
    doc = _pack_doc()
    _rule(doc, "repeat-petitions")["require"]["count"]["at_least"] = 2
    doc["version"] = 2
    candidate = _write(tmp_path, "candidate.yaml", doc)

    result = _run(cli, "--pack", str(candidate), str(_events(tmp_path)), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.output.splitlines()]
    diffs = [r for r in rows if "warning_id" in r]
    # at 2 petitions both households now warn, each at its second petition (new trigger ids)
    assert {(d["change"], d["household_id"], d["warning_id"]) for d in diffs} == {
        ("appear", "hh-two", wid("repeat-petitions", "hh-two", event_id("two-2"))),
        ("appear", "hh-three", wid("repeat-petitions", "hh-three", event_id("three-2"))),
        ("vanish", "hh-three", wid("repeat-petitions", "hh-three", event_id("three-3"))),
    }
    by_rule = [r for r in rows if r.get("summary") == "rule"]
    assert by_rule == [{"summary": "rule", "rule_id": "repeat-petitions",
                        "appear": 2, "vanish": 1, "change": 0}]
    by_district = {r["district"]: (r["appear"], r["vanish"]) for r in rows
                   if r.get("summary") == "district"}
    assert by_district == {"230102000000": (1, 0), "230103000000": (1, 1)}
    total = rows[-1]
    assert total["summary"] == "total" and total["candidate_pack"] == "default v2"
    assert (total["base_warnings"], total["candidate_warnings"]) == (2, 3)
    assert total["events"]["received"] == len(_history())

    table = _run(cli, "--pack", str(candidate), str(_events(tmp_path)))
    assert table.exit_code == 0, table.output
    assert "APPEAR" in table.output and "VANISH" in table.output
    assert "repeat-petitions" in table.output and "by district" in table.output


def test_removing_a_rule_shows_its_warnings_vanish(cli: click.Group, tmp_path: Path) -> None:
    doc = _pack_doc()
    doc["rules"] = [r for r in doc["rules"] if r["id"] != "violence-injury"]
    candidate = _write(tmp_path, "no-violence.yaml", doc)
    result = _run(cli, "--pack", str(candidate), str(_events(tmp_path)), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    diffs = [orjson.loads(line) for line in result.output.splitlines()]
    diffs = [d for d in diffs if "warning_id" in d]
    assert [(d["change"], d["rule_id"], d["household_id"]) for d in diffs] == [
        ("vanish", "violence-injury", "hh-red")]
    assert diffs[0]["history"][0].startswith("escalated ")
    assert diffs[0]["history"][1].startswith("acknowledged ")


def test_a_longer_sla_changes_the_escalation_history(tmp_path: Path) -> None:
    """Same warning id, different lifecycle: reported as a CHANGE with both histories."""
    base = parse_pack(_pack_doc())
    doc = _pack_doc()
    doc["ack_sla_hours"]["red"] = 48
    result = backtest(base, parse_pack(doc), _history())
    assert [(d.kind, d.warning.warning_id) for d in result.differences] == [
        ("change", wid("violence-injury", "hh-red", event_id("red-1")))]
    (text,) = result.differences[0].changes()
    assert text.startswith("history escalated ") and "→ acknowledged " in text


def test_level_change_and_as_of(tmp_path: Path) -> None:
    """A rule moved to red is a CHANGE of level; --as-of fires later deadlines in both runs."""
    base = parse_pack(_pack_doc())
    doc = _pack_doc()
    _rule(doc, "repeat-petitions")["level"] = "red"
    diffs = backtest(base, parse_pack(doc), _history()).differences
    assert [(d.kind, d.changes()[0]) for d in diffs] == [("change", "level orange→red")]
    later = backtest(base, parse_pack(doc), _history(), as_of=T0 + 10 * DAY).differences
    assert [d.kind for d in later] == ["change"]
    assert "history" in later[0].changes()[1]  # red escalates faster than orange


def test_identical_packs_show_nothing(cli: click.Group, tmp_path: Path) -> None:
    result = _run(cli, "--pack", str(DEFAULT_PACK_PATH), str(_events(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "appear 0, vanish 0, change 0" in result.output


def test_an_invalid_candidate_is_refused_with_rule_and_reason(
    cli: click.Group, tmp_path: Path
) -> None:
    doc = _pack_doc()
    _rule(doc, "repeat-petitions")["require"]["count"]["of"] = ["no_such_signal"]
    bad = _write(tmp_path, "bad.yaml", doc)
    result = _run(cli, "--pack", str(bad), str(_events(tmp_path)))
    assert result.exit_code == 1
    assert "candidate pack" in result.output and "refused" in result.output
    assert "rule repeat-petitions" in result.output and "no_such_signal" in result.output

    doc = _pack_doc()
    _rule(doc, "mediation-failed")["level"] = "purple"
    result = _run(cli, "--pack", str(_write(tmp_path, "bad2.yaml", doc)),
                  str(_events(tmp_path)))
    assert result.exit_code == 1 and "rule mediation-failed" in result.output

    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("rules: [unclosed\n", encoding="utf-8")
    result = _run(cli, "--pack", str(garbage), str(_events(tmp_path)))
    assert result.exit_code == 1 and "not valid YAML" in result.output


def test_bad_as_of_is_a_usage_error(cli: click.Group, tmp_path: Path) -> None:
    result = _run(cli, "--pack", str(DEFAULT_PACK_PATH), str(_events(tmp_path)),
                  "--as-of", "yesterday")
    assert result.exit_code == 2 and "--as-of" in result.output
