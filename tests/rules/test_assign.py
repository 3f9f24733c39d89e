"""``warning.assigned``: a chair hands an open warning to a staff member.

The command follows DESIGN.md's command rules (it names a warning by id and
carries that warning's household_id; unknown, closed or mismatched warnings
change nothing and are reported). It records who should act; it does not stop
escalation — only acknowledgement does.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from app.bootstrap import bootstrap_embedded
from cli.main import main
from events.instants import format_instant
from projections.ledgers import household_ledger, warning_ledger
from rules.replay import Replay
from rules.state import HouseholdState, OpenWarning
from streams.clock import EventTimeClock
from tests.helpers import (
    DAY,
    HOUR,
    T0,
    ack,
    assign,
    case_resolved,
    of_type,
    replay,
    resolve,
    run,
    visit,
    wid,
)

R = T0
VI = "violence-injury"


def red(hh: str = "h1", at: int = R) -> str:
    return visit(hh, at, ["injury_observed"])


def feed(rp: Replay, event_line: str):
    _, outcome = rp.feed_line(event_line)
    assert outcome is not None
    return outcome


def test_assigning_an_open_warning_writes_a_lifecycle_record_naming_the_assignee():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run([trigger, assign("h1", warning_id, R + HOUR, "cadre-3")], as_of=R + HOUR)
    assert of_type(records, "warning.assigned") == [
        {
            "type": "warning.assigned",
            "warning_id": warning_id,
            "household_id": "h1",
            "assignee": "cadre-3",
            "at": format_instant(R + HOUR),
        }
    ]


def test_the_assigning_user_is_not_in_the_lifecycle_record():
    trigger = red()
    records = run([trigger, assign("h1", wid(VI, "h1", trigger), R, "cadre-3", by="chair-7")])
    assert "chair-7" not in orjson.dumps(records).decode()


def test_assignment_does_not_stop_escalation():
    trigger = red()
    records = run([trigger, assign("h1", wid(VI, "h1", trigger), R + HOUR)], as_of=R + 30 * DAY)
    assert [r["to_level"] for r in of_type(records, "warning.escalated")] == [
        "street", "district", "city",
    ]


def test_an_acknowledged_warning_can_still_be_assigned_and_stays_acknowledged():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run(
        [trigger, ack("h1", warning_id, R + HOUR), assign("h1", warning_id, R + 2 * HOUR)],
        as_of=R + 30 * DAY,
    )
    assert [r["type"] for r in records] == [
        "warning.raised", "warning.acknowledged", "warning.assigned",
    ]


def test_an_escalated_warning_can_be_assigned_at_its_current_level():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run([trigger, assign("h1", warning_id, R + 30 * HOUR)], as_of=R + 30 * HOUR)
    assert [r["type"] for r in records] == [
        "warning.raised", "warning.escalated", "warning.assigned",
    ]


def test_reassigning_to_another_person_writes_a_new_record():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    records = run(
        [
            trigger,
            assign("h1", warning_id, R + HOUR, "cadre-3"),
            assign("h1", warning_id, R + 2 * HOUR, "cadre-4"),
            assign("h1", warning_id, R + 3 * HOUR, "cadre-3"),
        ],
        as_of=R + 3 * HOUR,
    )
    assert [r["assignee"] for r in of_type(records, "warning.assigned")] == [
        "cadre-3", "cadre-4", "cadre-3",
    ]


def test_assigning_to_the_same_person_again_changes_nothing_and_is_reported():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, assign("h1", warning_id, R + HOUR, "cadre-3")], as_of=R + HOUR)
    outcome = feed(rp, assign("h1", warning_id, R + 2 * HOUR, "cadre-3", by="chair-2"))
    assert outcome.status == "processed"
    assert outcome.records == []
    assert len(outcome.notices) == 1 and warning_id in outcome.notices[0]


def test_assigning_an_unknown_warning_changes_nothing_and_is_reported():
    rp, _ = replay([red()], as_of=R)
    outcome = feed(rp, assign("h1", "w-0000000000000000", R + HOUR))
    assert (outcome.status, outcome.records) == ("processed", [])
    assert len(outcome.notices) == 1 and "unknown" in outcome.notices[0]


@pytest.mark.parametrize("closing", ["resolve", "case_resolved"])
def test_assigning_a_closed_warning_changes_nothing_and_is_reported(closing):
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    close = resolve("h1", warning_id, R + HOUR) if closing == "resolve" else case_resolved(
        "h1", R + HOUR
    )
    rp, _ = replay([trigger, close], as_of=R + HOUR)
    outcome = feed(rp, assign("h1", warning_id, R + 2 * HOUR))
    assert outcome.records == []
    assert len(outcome.notices) == 1 and "closed" in outcome.notices[0]


def test_assigning_with_another_households_id_changes_nothing_and_is_reported():
    trigger = red("h1")
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, red("h2")], as_of=R)
    outcome = feed(rp, assign("h2", warning_id, R + HOUR))
    assert outcome.records == []
    assert len(outcome.notices) == 1 and warning_id in outcome.notices[0]
    # h1's warning was not assigned: assigning it to the same person now is a change.
    assert feed(rp, assign("h1", warning_id, R + 2 * HOUR)).records != []


def test_the_assignee_survives_saving_and_loading_the_household_state():
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    rp, _ = replay([trigger, assign("h1", warning_id, R + HOUR, "cadre-3")], as_of=R + HOUR)
    rp.states["h1"] = HouseholdState.from_bytes(rp.states["h1"].to_bytes())
    assert feed(rp, assign("h1", warning_id, R + 2 * HOUR, "cadre-3")).records == []


def test_a_state_saved_before_assignment_existed_still_loads_unassigned():
    warning = OpenWarning("w-1", VI, "red", "230102001001", 0, False, R)
    row = warning.to_list()
    assert len(row) == 7  # an unassigned warning is stored exactly as before
    assert OpenWarning.from_list(row).assignee is None


def test_jiahe_replay_writes_the_assignment_records(tmp_path: Path):
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join([trigger, assign("h1", warning_id, R + HOUR, "cadre-3")]) + "\n")
    out = tmp_path / "warnings.jsonl"
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "home"), "replay", str(source), "--warnings-out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(r["type"], r.get("assignee")) for r in written] == [
        ("warning.raised", None), ("warning.assigned", "cadre-3"),
    ]


def test_the_embedded_processor_and_the_ledgers_work_with_assignments(tmp_path: Path):
    """The warehouse keeps the assignment rows but neither user name; ledgers are unchanged."""
    trigger = red()
    warning_id = wid(VI, "h1", trigger)
    lines = [
        trigger,
        assign("h1", warning_id, R + HOUR, "cadre-3", by="chair-7"),
        assign("h1", warning_id, R + 2 * HOUR, "cadre-4", by="chair-7"),
    ]
    runtime = bootstrap_embedded(tmp_path / "home")
    try:
        runtime.publish([x.encode() for x in lines], "test")
        runtime.process(EventTimeClock(), project=True)
        stored = [orjson.loads(e.body) for e in runtime.log.read_lifecycle(0, 100)]
        assert [r.get("assignee") for r in of_type(stored, "warning.assigned")] == [
            "cadre-3", "cadre-4",
        ]
        wh = runtime.warehouse
        (row,) = warning_ledger(wh)
        assert (row["warning_id"], row["status"], row["escalations"]) == (warning_id, "open", 0)
        (household,) = household_ledger(wh)
        assert (household["household_id"], household["open_warnings"]) == ("h1", 1)
        lifecycle_types = {r[0] for r in wh.query("SELECT type FROM lifecycle").rows}
        assert "warning.assigned" in lifecycle_types
        tables = wh.query("SELECT * FROM lifecycle").rows + wh.query("SELECT * FROM events").rows
        dump = orjson.dumps(tables, default=str).decode()
        for name in ("cadre-3", "cadre-4", "chair-7"):
            assert name not in dump
    finally:
        runtime.close()
