"""Aggregate ``kind: surge`` rules as the example pack states them:

a district's petitions in the 7 days up to a day close are ≥ 1.5 × its trailing
4-week weekly average and ≥ 10 → an orange district-level warning. Day closes
are Harbin local midnights (UTC+8); the warning resolves itself at the first
close where the condition no longer holds.
"""

from __future__ import annotations

import copy
import hashlib
import random
from pathlib import Path

import pytest
import yaml

from events.instants import MICROS_PER_DAY, format_instant, parse_instant
from rules.backtest import backtest
from rules.engine import Engine
from rules.pack import DEFAULT_PACK_PATH, RulePackError, load_pack, parse_pack
from rules.replay import Replay
from rules.surge import day_of_close, first_close_at_or_after
from tests.helpers import petition, visit

SURGE_PACK_PATH = Path(DEFAULT_PACK_PATH).parent / "surge-example.yaml"
RULE = "district-petition-surge"
HOUR = 3_600_000_000
DAY = MICROS_PER_DAY
WEEK = 7 * DAY
#: The close that ends local date 2026-04-30 (= 2026-04-30T16:00:00Z).
CLOSE = parse_instant("2026-05-01T00:00:00+08:00")
DAOLI, NANGANG = "230102001001", "230103002001"  # communities of 道里区 and 南岗区
DAOLI_DISTRICT, NANGANG_DISTRICT = "230102000000", "230103000000"

_serial = iter(range(10**9))


def petitions(n: int, start: int, end: int, org: str = DAOLI) -> list[str]:
    """``n`` petitions of distinct households, spread over [start, end]."""
    step = (end - start) // max(n - 1, 1)
    return [petition(f"hh-{next(_serial)}", start + i * step, org=org) for i in range(n)]


def history(weeks: int, org: str = DAOLI, per_week: int = 0) -> list[str]:
    """A district seen ``weeks`` full weeks before the window (a visit opens its history),
    with ``per_week`` petitions in each of those weeks."""
    start = CLOSE - WEEK - weeks * WEEK
    lines = [visit(f"hh-{next(_serial)}", start, [], org=org)]
    for w in range(weeks if per_week else 0):
        week_start = start + w * WEEK
        lines += petitions(per_week, week_start + DAY, week_start + 6 * DAY, org)
    return lines


def in_window(n: int, org: str = DAOLI) -> list[str]:
    """``n`` petitions on the last local day before CLOSE (so no earlier close sees them)."""
    return petitions(n, CLOSE - 20 * HOUR, CLOSE - HOUR, org)


def surge_records(lines: list[str], as_of: int = CLOSE, pack_path: Path = SURGE_PACK_PATH):
    replay = Replay(Engine(load_pack(pack_path)))
    records = replay.feed_all(lines) + replay.finish(as_of)
    return [r for r in records if r["household_id"] is None]


def raised_in(records) -> list[str]:
    return [r["org_unit"] for r in records if r["type"] == "warning.raised"]


# -- the thresholds ------------------------------------------------------------------


def test_ten_petitions_over_an_empty_baseline_raise_a_surge():
    assert raised_in(surge_records(history(4) + in_window(10))) == [DAOLI_DISTRICT]


def test_nine_petitions_are_below_the_minimum_count_whatever_the_baseline():
    assert surge_records(history(4) + in_window(9)) == []


def test_exactly_one_and_a_half_times_the_weekly_average_raises():
    # 4 weeks × 8 = 32 → 8 a week → 12 is exactly 1.5×.
    assert raised_in(surge_records(history(4, per_week=8) + in_window(12))) == [DAOLI_DISTRICT]


def test_one_petition_short_of_one_and_a_half_times_the_average_raises_nothing():
    assert surge_records(history(4, per_week=8) + in_window(11)) == []


def test_the_ratio_compares_exactly_not_in_floating_point():
    # 4 weeks × 7 = 28 → 7 a week → 1.5 × 7 = 10.5: 10 is short, 11 is enough.
    assert surge_records(history(4, per_week=7) + in_window(10)) == []
    assert raised_in(surge_records(history(4, per_week=7) + in_window(11))) == [DAOLI_DISTRICT]


# -- window edges --------------------------------------------------------------------


def test_a_petition_at_exactly_the_close_counts_in_its_window():
    lines = history(4) + in_window(9) + [petition("hh-edge", CLOSE, org=DAOLI)]
    assert raised_in(surge_records(lines)) == [DAOLI_DISTRICT]


def test_a_petition_at_exactly_seven_days_before_the_close_counts_in_the_window():
    lines = history(4) + in_window(9) + [petition("hh-edge", CLOSE - WEEK, org=DAOLI)]
    assert raised_in(surge_records(lines)) == [DAOLI_DISTRICT]


def test_a_petition_1_microsecond_earlier_is_baseline_not_window():
    lines = history(4) + in_window(9) + [petition("hh-edge", CLOSE - WEEK - 1, org=DAOLI)]
    assert surge_records(lines) == []


def test_a_petition_after_the_close_waits_for_the_next_close():
    lines = history(4) + in_window(9) + [petition("hh-late", CLOSE + 1, org=DAOLI)]
    assert surge_records(lines, as_of=CLOSE) == []
    assert raised_in(surge_records(lines, as_of=CLOSE + DAY)) == [DAOLI_DISTRICT]


def test_day_closes_are_harbin_local_midnights():
    assert first_close_at_or_after(parse_instant("2026-04-30T15:59:59Z")) == CLOSE
    assert first_close_at_or_after(CLOSE) == CLOSE
    assert first_close_at_or_after(CLOSE + 1) == CLOSE + DAY
    assert format_instant(CLOSE) == "2026-04-30T16:00:00Z"
    assert day_of_close(CLOSE) == "2026-04-30"


def test_no_close_is_evaluated_before_the_clock_reaches_it():
    assert surge_records(history(4) + in_window(10), as_of=CLOSE - 1) == []


# -- short history ---------------------------------------------------------------------


def test_with_two_weeks_of_history_the_average_is_over_those_two_weeks():
    # 2 weeks × 8 = 16 → 8 a week → needs 12. (Averaged over 4 weeks, 11 would do.)
    assert surge_records(history(2, per_week=8) + in_window(11)) == []
    assert raised_in(surge_records(history(2, per_week=8) + in_window(12))) == [DAOLI_DISTRICT]


def test_with_less_than_one_full_week_of_history_there_is_no_surge():
    start = CLOSE - WEEK - WEEK + 1  # one week minus 1 µs before the window
    lines = [visit("hh-first", start, [], org=DAOLI)] + in_window(50)
    assert surge_records(lines) == []


def test_a_district_whose_first_events_are_the_surge_itself_does_not_alarm():
    assert surge_records(in_window(50)) == []


def test_history_is_the_districts_own_not_the_citys():
    lines = history(4, org=NANGANG) + in_window(50, org=DAOLI)
    assert surge_records(lines) == []


# -- districts, lifecycle ------------------------------------------------------------


def test_two_districts_are_evaluated_independently():
    daoli = history(4) + in_window(10)
    nangang = history(4, org=NANGANG, per_week=8) + in_window(11, org=NANGANG)
    assert raised_in(surge_records(daoli)) == [DAOLI_DISTRICT]
    assert raised_in(surge_records(daoli + nangang)) == [DAOLI_DISTRICT]
    busy_nangang = history(4, org=NANGANG) + in_window(30, org=NANGANG)
    assert sorted(raised_in(surge_records(daoli + busy_nangang))) == [
        DAOLI_DISTRICT, NANGANG_DISTRICT,
    ]


def test_a_surge_warning_is_a_district_level_warning_without_a_household():
    (record,) = surge_records(history(4) + in_window(10))
    day = "2026-04-30"
    digest = hashlib.sha256(f"{RULE}:{DAOLI_DISTRICT}:{day}".encode()).hexdigest()[:16]
    assert record == {
        "type": "warning.raised",
        "warning_id": "w-" + digest,
        "rule_id": RULE,
        "household_id": None,
        "level": "orange",
        "org_unit": DAOLI_DISTRICT,
        "handling_level": "district",
        "handling_org_unit": DAOLI_DISTRICT,
        "at": "2026-04-30T16:00:00Z",
    }


def test_one_open_surge_per_district_then_it_resolves_at_the_first_close_it_no_longer_holds():
    # 10 petitions on local 2026-04-30: they stay in the 7-day window for 7 more closes
    # (up to and including the close ending 2026-05-06), then the window holds none.
    burst = petitions(10, CLOSE - 3 * HOUR, CLOSE - HOUR)
    records = surge_records(history(4) + burst, as_of=CLOSE + 10 * DAY)
    assert [(r["type"], r["at"]) for r in records] == [
        ("warning.raised", "2026-04-30T16:00:00Z"),
        ("warning.resolved", "2026-05-07T16:00:00Z"),
    ]
    assert records[0]["warning_id"] == records[1]["warning_id"]


def test_a_new_surge_after_resolution_is_a_new_warning():
    first = petitions(10, CLOSE - 3 * HOUR, CLOSE - HOUR)
    later = CLOSE + 20 * DAY
    second = petitions(10, later - 3 * HOUR, later - HOUR)
    records = surge_records(history(4) + first + second, as_of=later)
    raises = [r for r in records if r["type"] == "warning.raised"]
    assert [r["at"] for r in raises] == [format_instant(CLOSE), format_instant(later)]
    assert raises[0]["warning_id"] != raises[1]["warning_id"]


def test_only_events_matching_the_rules_signal_count():
    visits = [visit(f"hh-v{i}", CLOSE - 2 * DAY, ["threats"], org=DAOLI) for i in range(30)]
    assert surge_records(history(4) + in_window(9) + visits) == []


def test_duplicates_and_rejected_lines_do_not_count():
    window = in_window(9)
    broken = petition("hh-bad", CLOSE - DAY, org=DAOLI).replace('"hotline_12338"', '"fax"')
    assert surge_records(history(4) + window + window[:3] + [broken]) == []


# -- determinism -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_the_same_events_in_any_arrival_order_give_the_same_surge_records(seed):
    lines = (
        history(4, per_week=6) + in_window(12)
        + history(3, org=NANGANG, per_week=2) + in_window(10, org=NANGANG)
        + petitions(25, CLOSE + DAY, CLOSE + 5 * DAY)
    )
    expected = surge_records(lines, as_of=CLOSE + 30 * DAY)
    assert len(expected) >= 3
    shuffled = lines[:]
    random.Random(seed).shuffle(shuffled)
    assert surge_records(shuffled, as_of=CLOSE + 30 * DAY) == expected


def test_the_default_pack_has_no_surge_rule_and_writes_no_surge_record():
    assert load_pack().surges == ()
    assert surge_records(history(4) + in_window(40), pack_path=DEFAULT_PACK_PATH) == []


def test_surge_records_come_after_the_household_records_of_a_replay():
    replay = Replay(Engine(load_pack(SURGE_PACK_PATH)))
    records = replay.feed_all(history(4) + in_window(10)) + replay.finish(CLOSE)
    households = [r["household_id"] is None for r in records]
    assert households == sorted(households)
    assert households[-1] is True


# -- the pack ------------------------------------------------------------------------


@pytest.fixture
def surge_doc():
    return yaml.safe_load(SURGE_PACK_PATH.read_text(encoding="utf-8"))


def _surge(doc):
    return next(r for r in doc["rules"] if r.get("kind") == "surge")


def test_the_example_pack_is_the_default_pack_plus_the_surge_rule():
    default, example = load_pack(), load_pack(SURGE_PACK_PATH)
    assert example.rules == default.rules and example.signals == default.signals
    (surge,) = example.surges
    assert (surge.id, surge.level, surge.of, surge.scope) == (RULE, "orange", "petition",
                                                               "district")
    assert (surge.window_days, surge.baseline_weeks, surge.ratio, surge.min_count) == (
        7, 4, 1.5, 10,
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("of", "no_such_signal", "unknown signal"),
        ("scope", "street", "scope"),
        ("ratio", 0, "ratio"),
        ("min_count", 0, "min_count"),
        ("window_days", 0, "window_days"),
        ("baseline_weeks", 0, "baseline_weeks"),
        ("level", "purple", "level"),
        ("when", ["petition"], "when"),
    ],
)
def test_a_bad_surge_rule_is_refused_naming_the_rule_and_the_field(surge_doc, field, value,
                                                                     says):
    doc = copy.deepcopy(surge_doc)
    _surge(doc)[field] = value
    with pytest.raises(RulePackError) as info:
        parse_pack(doc)
    assert RULE in str(info.value) and says in str(info.value)


def test_a_surge_rule_without_a_threshold_is_refused(surge_doc):
    doc = copy.deepcopy(surge_doc)
    del _surge(doc)["min_count"]
    with pytest.raises(RulePackError, match=f"rule {RULE}.*min_count"):
        parse_pack(doc)


def test_a_surge_rule_id_must_not_repeat_a_household_rule_id(surge_doc):
    doc = copy.deepcopy(surge_doc)
    _surge(doc)["id"] = "repeat-petitions"
    with pytest.raises(RulePackError, match="duplicate rule id"):
        parse_pack(doc)


def test_an_unknown_rule_kind_is_refused(surge_doc):
    doc = copy.deepcopy(surge_doc)
    _surge(doc)["kind"] = "surges"
    with pytest.raises(RulePackError, match="kind"):
        parse_pack(doc)


# -- backtest ------------------------------------------------------------------------


def test_backtesting_the_surge_pack_against_the_default_shows_the_surge_appearing():
    lines = history(4) + in_window(10)
    result = backtest(load_pack(), load_pack(SURGE_PACK_PATH), lines, as_of=CLOSE)
    assert [(d.kind, d.warning.rule_id, d.warning.district) for d in result.differences] == [
        ("appear", RULE, DAOLI_DISTRICT),
    ]
    assert result.differences[0].as_dict()["household_id"] is None


def test_jiahe_rules_backtest_lists_a_surge_as_a_district_warning(tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(history(4) + in_window(10)) + "\n")
    result = CliRunner().invoke(main, [
        "--home", str(tmp_path / "home"), "rules", "backtest", "--pack", str(SURGE_PACK_PATH),
        "--as-of", format_instant(CLOSE), str(events),
    ])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("APPEAR")]
    assert RULE in line and DAOLI_DISTRICT in line and "(district)" in line
