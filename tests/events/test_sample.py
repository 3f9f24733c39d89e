"""The sample city and stream: deterministic, realistic, and noisy in known ways.

``jiahe demo``, the engine tests and the benchmarks all lean on this generator,
so these tests pin what they rely on: byte-identical output per seed, the
planned mix of valid / duplicate / conflict / invalid lines, envelopes that the
catalog accepts, and the awkward parts of real input (late offline bursts,
re-deliveries, every kind of malformed line).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.orgunits import HARBIN_DISTRICTS, Level, check_community, level_of, street_of
from events.sample import (
    AFTER_ALERT_TYPES,
    INVALID_REASONS,
    SampleLine,
    StreamSpec,
    build_city,
    generate,
    sample_events,
    v1_spec,
    warning_id,
    write_jsonl,
)

TZ = timezone(timedelta(hours=8))
ENVELOPE = ("event_id", "type", "schema_version", "occurred_at", "org_unit", "household_id")
CATALOG = {
    "screening.visit_recorded",
    "petition.received",
    "mediation.opened",
    "mediation.concluded",
    "followup.recorded",
    "child.guardianship_gap_recorded",
    "child.guardianship_restored",
    "case.resolved",
    "warning.acknowledged",
    "warning.resolved",
    "household.registered",
    "household.transferred",
    *AFTER_ALERT_TYPES,
}
#: sha256 of the catalog v1 stream (every v2 share 0) of seeds 0 and 3, as generated before
#: the work after an alert was added: v1 specs keep giving these bytes.
V1_DIGESTS = {
    0: "8e62b811db9d008220bfd35853cf34d0a6d4ed317261eb5566a3581a7c6c5811",
    3: "b0306de9b7db71a4415a17325ffa2640380a6fdaa365e93d47bd25dc3b49cf86",
}
#: ... and of the v2 stream with registrations and transfers but no work after an alert.
HOUSEHOLDS_ONLY_DIGESTS = {
    0: "ea8c720510efc1ab9c9cbfaba9aa0c312ce317ed0448d641f2ac0efd31523a82",
    3: "1c2affb06f989c753a83156e0d0faadc5b82c8c2bde1160f5611ff6063cccf84",
}
REGISTER_FLAGS = {"key_household", "rural", "intellectual_disability", "left_behind_children",
                  "single_parent", "elderly_alone"}
INDICATORS = {
    "marital_conflict", "threats", "domestic_violence_signs", "injury_observed",
    "sexual_violence_signs", "child_neglect", "guardianship_gap", "intellectual_disability",
    "economic_hardship", "alcohol_abuse", "isolation",
}  # fmt: skip
CHANNELS = {"hotline_12338", "walk_in", "letter", "online", "wechat", "referral"}


@pytest.fixture(scope="module")
def stream() -> list[SampleLine]:
    """One 50k-line stream shared by the module (about half a second to build)."""
    return list(generate(StreamSpec(events=50_000, households=8_000, seed=7)))


@pytest.fixture(scope="module")
def valid(stream: list[SampleLine]) -> list[dict[str, Any]]:
    return [orjson.loads(line.text) for line in stream if line.kind == "valid"]


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None, text
    return moment


# ----------------------------------------------------------------------------- city


def test_city_has_communities_under_all_harbin_districts() -> None:
    city = build_city(1)
    assert len(city.communities) == 18 * 8 * 10
    assert {code[:6] for code in city.communities} == set(HARBIN_DISTRICTS)
    for code in city.communities:
        assert check_community(code) == code
        assert code[6:9] != "000" and code[9:] != "000"
    assert all(level_of(street) is Level.STREET for street in city.streets)


def test_city_codes_are_sequential_and_names_plausible() -> None:
    city = build_city(3, streets_per_district=2, communities_per_street=3)
    daoli = [c for c in city.communities if c.startswith("230102")]
    assert daoli == [
        "230102001001", "230102001002", "230102001003",
        "230102002001", "230102002002", "230102002003",
    ]  # fmt: skip
    for code in city.communities:
        assert city.name_of(code).endswith(("社区", "村"))
        assert city.name_of(street_of(code)).endswith(("街道", "镇", "乡"))
        assert city.full_name(code).startswith("哈尔滨市" + HARBIN_DISTRICTS[code[:6]])
    assert city.name_of("230102000000") == "道里区"
    assert city.name_of("230100000000") == "哈尔滨市"


def test_city_is_deterministic() -> None:
    assert build_city(5) == build_city(5)
    assert build_city(5).names != build_city(6).names


def test_community_names_are_unique_within_a_street() -> None:
    city = build_city(2, communities_per_street=40)
    for street in city.streets:
        names = [city.name_of(c) for c in city.communities if street_of(c) == street]
        assert len(names) == len(set(names)) == 40


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    spec = StreamSpec(events=5_000, households=1_000, seed=11)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    counts_a = write_jsonl(spec, first)
    counts_b = write_jsonl(spec, second)
    assert first.read_bytes() == second.read_bytes()
    assert counts_a == counts_b


def test_generate_matches_write_jsonl(tmp_path: Path) -> None:
    spec = StreamSpec(events=3_000, households=500, seed=4)
    path = tmp_path / "s.jsonl"
    write_jsonl(spec, path)
    text = "".join(line.text + "\n" for line in generate(spec))
    assert path.read_text(encoding="utf-8") == text


def test_different_seed_gives_different_stream() -> None:
    a = [line.text for line in generate(StreamSpec(events=2_000, households=400, seed=1))]
    b = [line.text for line in generate(StreamSpec(events=2_000, households=400, seed=2))]
    assert a != b
    assert not set(a) & set(b)


# ----------------------------------------------------------------------------- counts


def test_exact_line_count_and_kind_fractions(stream: list[SampleLine]) -> None:
    assert len(stream) == 50_000
    kinds = Counter(line.kind for line in stream)
    assert kinds["duplicate"] == pytest.approx(1_000, rel=0.05)
    assert kinds["invalid"] == pytest.approx(250, rel=0.05)
    assert 10 <= kinds["conflict"] <= 100
    assert kinds["valid"] == 50_000 - kinds["duplicate"] - kinds["invalid"] - kinds["conflict"]


def test_counts_reconcile_with_the_lines(tmp_path: Path) -> None:
    spec = StreamSpec(events=8_000, households=1_500, seed=9)
    progress: list[int] = []
    counts = write_jsonl(spec, tmp_path / "s.jsonl", progress=progress.append)
    lines = list(generate(spec))
    kinds = Counter(line.kind for line in lines)
    assert counts.total == 8_000 == len(lines)
    assert (counts.valid, counts.duplicate, counts.conflict, counts.invalid) == (
        kinds["valid"], kinds["duplicate"], kinds["conflict"], kinds["invalid"],
    )  # fmt: skip
    assert sum(counts.by_type.values()) == counts.valid
    assert counts.late == sum(1 for line in lines if line.reason == "late")
    assert progress and progress[-1] == 8_000 and progress == sorted(progress)


@pytest.mark.parametrize("events", [0, 1, 7, 150])
def test_tiny_streams_have_exactly_the_requested_lines(events: int) -> None:
    lines = list(generate(StreamSpec(events=events, households=30, seed=3)))
    assert len(lines) == events


# ----------------------------------------------------------------------------- envelopes


def test_valid_lines_are_catalog_envelopes(valid: list[dict[str, Any]]) -> None:
    ids = set()
    for env in valid:
        for name in ENVELOPE:
            assert name in env, (name, env)
        assert env["type"] in CATALOG
        assert env["schema_version"] == 1
        assert str(uuid.UUID(env["event_id"])) == env["event_id"]
        assert uuid.UUID(env["event_id"]).version == 4
        assert check_community(env["org_unit"]) == env["org_unit"]
        assert env["household_id"].startswith("hh-")
        occurred = _instant(env["occurred_at"])
        assert occurred.utcoffset() == timedelta(hours=8)
        if "recorded_at" in env:
            assert _instant(env["recorded_at"]) >= occurred
        assert isinstance(env["data"], dict)
        ids.add(env["event_id"])
    assert len(ids) == len(valid)


def test_valid_lines_stay_in_the_time_window(valid: list[dict[str, Any]]) -> None:
    spec = StreamSpec()
    occurred = [_instant(env["occurred_at"]) for env in valid]
    assert spec.start <= min(occurred) and max(occurred) < spec.end
    hours = Counter(moment.astimezone(TZ).hour for moment in occurred)
    assert hours[10] > 5 * hours[3]  # field work happens in the daytime


def test_data_fields_use_the_vocabularies(valid: list[dict[str, Any]]) -> None:
    for env in valid:
        data = env["data"]
        if env["type"] == "screening.visit_recorded":
            assert set(data["indicators"]) <= INDICATORS
            assert isinstance(data["notes"], str) and data["notes"]
        elif env["type"] == "petition.received":
            assert data["channel"] in CHANNELS
            assert isinstance(data["urgent"], bool)


def test_households_live_in_one_community_until_transferred(
    valid: list[dict[str, Any]],
) -> None:
    """A household's events come from its home community (its id names the home's
    county) or, once transferred, from the transfer's target in another district.
    Delivery order may differ both ways: late deliveries may still carry the old home
    after the transfer, and a transfer recorded offline may reach the log after the
    first events from the new home."""
    targets: dict[str, set[str]] = {}
    transfers = 0
    for env in valid:
        if env["type"] == "household.transferred":
            target = env["data"]["to_org_unit"]
            assert target[:6] != env["org_unit"][:6] and check_community(target) == target
            assert env["data"]["reason"] in {"moved", "administrative"}
            targets.setdefault(env["household_id"], set()).add(target)
            transfers += 1
    assert transfers > 0
    # the places a household's events come from, the targets of its transfers aside
    homes: dict[str, set[str]] = {}
    for env in valid:
        if env["org_unit"] not in targets.get(env["household_id"], set()):
            homes.setdefault(env["household_id"], set()).add(env["org_unit"])
    for household, places in homes.items():
        assert len(places) == 1, (household, places)  # one home
        assert household.startswith("hh-" + next(iter(places))[:6] + "-")


def test_about_seventy_percent_registered_a_tenth_of_them_key_households(
    valid: list[dict[str, Any]],
) -> None:
    registrations = [env for env in valid if env["type"] == "household.registered"]
    registered = {env["household_id"] for env in registrations}
    assert abs(len(registered) / 8_000 - 0.7) < 0.02  # the module stream: 8,000 households
    key = {env["household_id"] for env in registrations
           if "key_household" in env["data"]["flags"]}
    assert 0.08 < len(key) / len(registered) < 0.12
    for env in registrations:
        assert set(env["data"]["flags"]) <= REGISTER_FLAGS
        assert len(set(env["data"]["flags"])) == len(env["data"]["flags"])
        assert env["data"]["notes"]  # personal text, sealed like a visit's notes


def test_a_v1_spec_has_no_catalog_v2_events() -> None:
    """The v1 sample (for before/after comparisons) is still one spec away."""
    spec = v1_spec(events=3000, households=400, seed=2)
    assert (spec.registered_fraction, spec.transfer_fraction, spec.assess_fraction,
            spec.referral_fraction, spec.reopen_fraction) == (0, 0, 0, 0, 0)
    types = {orjson.loads(line.text)["type"] for line in generate(spec) if line.kind == "valid"}
    assert not types & {"household.registered", "household.transferred", *AFTER_ALERT_TYPES}
    assert "screening.visit_recorded" in types


def _digest(spec: StreamSpec) -> str:
    return hashlib.sha256("".join(line.text + "\n" for line in generate(spec)).encode()
                          ).hexdigest()


@pytest.mark.parametrize("seed", sorted(V1_DIGESTS))
def test_with_every_v2_share_at_zero_the_v1_stream_is_byte_identical(seed: int) -> None:
    """The shares of the work after an alert draw from their own generator, and only
    when non-zero: a v1 spec, and a households-only v2 spec, give the bytes they gave
    before those shares existed."""
    assert _digest(v1_spec(events=20_000, households=3_000, seed=seed)) == V1_DIGESTS[seed]
    households_only = StreamSpec(events=20_000, households=3_000, seed=seed,
                                 assess_fraction=0.0, referral_fraction=0.0,
                                 reopen_fraction=0.0)
    assert _digest(households_only) == HOUSEHOLDS_ONLY_DIGESTS[seed]


def test_the_work_after_an_alert_comes_at_modest_rates(valid: list[dict[str, Any]]) -> None:
    """Assessments of a share of the handled warnings, referrals of some medium and high
    ones with their answers, consents before consent-based referrals, a few reopenings."""
    count = Counter(env["type"] for env in valid)
    share = {kind: count[kind] / len(valid) for kind in AFTER_ALERT_TYPES}
    assert 0.003 < share["warning.assessed"] < 0.03
    assert 0.0005 < share["referral.sent"] < share["warning.assessed"] / 2
    assert count["referral.sent"] > count["referral.accepted"] > count["referral.closed"] > 0
    assert 0 < count["referral.declined"] < count["referral.accepted"]
    assert 0 < count["consent.recorded"] <= count["referral.sent"]
    assert 0 < count["consent.withdrawn"] < count["consent.recorded"]
    assert 0 < count["warning.reopened"] < count["warning.resolved"] / 10
    assert sum(share.values()) < 0.05  # modest: the v1 mix stays what it was


def test_the_work_after_an_alert_follows_the_contract(valid: list[dict[str, Any]]) -> None:
    """In log order: a referral is sent once, answered once and closed only when accepted;
    a consent-based referral has a standing consent; risks and agencies are in vocabulary;
    free text (note, reason) is present where DESIGN has it."""
    consent: dict[str, set[str]] = {}
    status: dict[str, str] = {}
    risks: Counter[str] = Counter()
    for env in valid:
        kind, data, household = env["type"], env["data"], env["household_id"]
        if kind == "consent.recorded":
            consent.setdefault(household, set()).update(data["agencies"])
        elif kind == "consent.withdrawn":
            assert set(data["agencies"]) <= consent.get(household, set())
            consent[household] -= set(data["agencies"])
        elif kind == "warning.assessed":
            risks[data["risk"]] += 1
            assert data["note"] and env["actor"] == data["by"]
        elif kind == "warning.reopened":
            assert data["reason"] and data["warning_id"].startswith("w-")
        elif kind == "referral.sent":
            rid = data["referral_id"]
            assert rid not in status and data["note"] and data["warning_id"].startswith("w-")
            assert data["basis"] in {"consent", "emergency", "legal_duty"}
            if data["basis"] == "consent":
                assert data["agency"] in consent.get(household, set()), env
            status[rid] = "sent"
        elif kind in ("referral.accepted", "referral.declined"):
            assert status[data["referral_id"]] == "sent"
            assert data["by"].startswith(("police-", "court-", "procuratorate-",
                                          "civil_affairs-", "justice-", "legal_aid-",
                                          "shelter-", "health-", "education-"))
            status[data["referral_id"]] = kind.removeprefix("referral.")
            if kind == "referral.declined":
                assert data["reason"]
        elif kind == "referral.closed":
            assert status[data["referral_id"]] == "accepted"
            assert data["outcome"] in {"service_provided", "no_service", "withdrawn"}
            status[data["referral_id"]] = "closed"
    assert set(risks) == {"low", "medium", "high"}
    assert "sent" in status.values()  # some referrals go unanswered


def test_some_envelopes_carry_unknown_fields_or_omit_optional_ones(
    valid: list[dict[str, Any]],
) -> None:
    known = {*ENVELOPE, "recorded_at", "actor", "data"}
    assert any(set(env) - known for env in valid)
    assert any("recorded_at" not in env for env in valid)
    assert any("actor" not in env for env in valid)


# ----------------------------------------------------------------------------- realism


def test_event_mix_is_plausible(valid: list[dict[str, Any]]) -> None:
    share = {k: v / len(valid) for k, v in Counter(env["type"] for env in valid).items()}
    assert 0.40 <= share["screening.visit_recorded"] <= 0.52
    assert 0.16 <= share["petition.received"] <= 0.24
    assert 0.11 <= share["followup.recorded"] <= 0.20
    assert share["mediation.opened"] >= share["mediation.concluded"] > 0.01
    assert share["child.guardianship_gap_recorded"] > share["child.guardianship_restored"] > 0
    assert share["case.resolved"] > 0.003
    assert share["warning.acknowledged"] > share["warning.resolved"] > 0.003


def test_most_visits_find_nothing_and_signal_is_concentrated(
    valid: list[dict[str, Any]],
) -> None:
    visits = [env for env in valid if env["type"] == "screening.visit_recorded"]
    empty = sum(1 for env in visits if not env["data"]["indicators"])
    assert empty / len(visits) > 0.6
    serious = {"threats", "domestic_violence_signs", "injury_observed", "child_neglect"}
    flagged = Counter(
        env["household_id"] for env in visits if serious & set(env["data"]["indicators"])
    )
    households = {env["household_id"] for env in valid}
    assert 0 < len(flagged) < 0.08 * len(households)
    assert max(flagged.values()) >= 3  # a few households produce repeated signals


def test_notes_contain_fake_personal_data(valid: list[dict[str, Any]]) -> None:
    notes = [env["data"]["notes"] for env in valid if env["type"] == "screening.visit_recorded"]
    with_phone = [n for n in notes if "电话1" in n]
    assert len(with_phone) > 0.2 * len(notes)
    assert any("某某" in n for n in with_phone)


def test_some_households_petition_three_times_in_thirty_days(
    valid: list[dict[str, Any]],
) -> None:
    times: dict[str, list[datetime]] = {}
    for env in valid:
        if env["type"] == "petition.received":
            times.setdefault(env["household_id"], []).append(_instant(env["occurred_at"]))
    repeaters = 0
    for series in times.values():
        series.sort()
        if any(b - a <= timedelta(days=30) for a, b in zip(series, series[2:], strict=False)):
            repeaters += 1
    assert repeaters >= 10
    assert repeaters < 0.05 * len(times)


def test_mediations_open_before_they_conclude(valid: list[dict[str, Any]]) -> None:
    opened: dict[str, datetime] = {}
    outcomes: Counter[str] = Counter()
    for env in sorted(valid, key=lambda e: _instant(e["occurred_at"])):
        data = env["data"]
        if env["type"] == "mediation.opened":
            opened[data["mediation_id"]] = _instant(env["occurred_at"])
        elif env["type"] == "mediation.concluded":
            assert opened[data["mediation_id"]] < _instant(env["occurred_at"])
            outcomes[data["outcome"]] += 1
    assert outcomes["failed"] > 0 and outcomes["agreement"] > outcomes["failed"] / 2


def test_guardianship_gaps_are_sometimes_followed_up_and_sometimes_not(
    valid: list[dict[str, Any]],
) -> None:
    gaps = [
        (env["household_id"], _instant(env["occurred_at"]))
        for env in valid
        if env["type"] == "child.guardianship_gap_recorded"
    ]
    followups: dict[str, list[datetime]] = {}
    for env in valid:
        if env["type"] in ("followup.recorded", "child.guardianship_restored"):
            followups.setdefault(env["household_id"], []).append(_instant(env["occurred_at"]))
    timely = sum(
        1
        for household, at in gaps
        if any(at <= f <= at + timedelta(days=7) for f in followups.get(household, ()))
    )
    assert 0.3 * len(gaps) < timely < 0.9 * len(gaps)


def test_commands_name_warnings_computed_as_the_engine_does(
    valid: list[dict[str, Any]],
) -> None:
    """Every command names sha256(rule:household:trigger) of an event of its household."""
    triggers = {
        "screening.visit_recorded": (
            "violence-injury", "vulnerable-person-harm", "escalating-dispute",
        ),
        "petition.received": ("violence-injury", "repeat-petitions"),
        "mediation.concluded": ("mediation-failed",),
        "child.guardianship_gap_recorded": ("guardianship-no-followup",),
        "referral.sent": ("referral-unanswered",),
        "referral.declined": ("referral-declined",),
    }  # fmt: skip
    candidates: dict[str, str] = {}
    for env in valid:
        for rule in triggers.get(env["type"], ()):
            candidates[warning_id(rule, env["household_id"], env["event_id"])] = rule
    commands = [env for env in valid if env["type"].startswith("warning.")]
    assert commands
    named: Counter[str] = Counter()
    for env in commands:
        named[candidates[env["data"]["warning_id"]]] += 1
        assert env["actor"] == env["data"]["by"]
    assert len(named) == 8  # every rule the sample plans handling for gets handled
    expected = "w-" + hashlib.sha256(b"r:h:e").hexdigest()[:16]
    assert warning_id("r", "h", "e") == expected


def test_acknowledgements_are_sometimes_within_and_sometimes_beyond_the_sla(
    valid: list[dict[str, Any]],
) -> None:
    trigger_at: dict[str, tuple[str, datetime]] = {}
    rules = {"violence-injury": 24, "repeat-petitions": 72}
    for env in valid:
        for rule in rules:
            wid = warning_id(rule, env["household_id"], env["event_id"])
            trigger_at[wid] = (rule, _instant(env["occurred_at"]))
    within = late = 0
    for env in valid:
        if env["type"] == "warning.acknowledged" and env["data"]["warning_id"] in trigger_at:
            rule, at = trigger_at[env["data"]["warning_id"]]
            delay = _instant(env["occurred_at"]) - at
            if delay <= timedelta(hours=rules[rule]):
                within += 1
            else:
                late += 1
    assert within > late > 0


# ----------------------------------------------------------------------------- delivery order


def test_late_lines_exist(stream: list[SampleLine]) -> None:
    """Offline bursts: a line whose occurred_at is > 1 day before one already delivered."""
    latest: datetime | None = None
    late = 0
    for line in stream:
        if line.kind != "valid":
            continue
        occurred = _instant(orjson.loads(line.text)["occurred_at"])
        if latest is not None and occurred < latest - timedelta(days=1):
            late += 1
            assert line.reason == "late"
        latest = occurred if latest is None else max(latest, occurred)
    flagged = sum(1 for line in stream if line.reason == "late")
    assert 0.02 * len(stream) < flagged < 0.08 * len(stream)
    assert late > 0.5 * flagged


def test_late_lines_arrive_in_bursts(stream: list[SampleLine]) -> None:
    runs = 0
    previous = ""
    for line in stream:
        if line.reason == "late" and previous == "late":
            runs += 1
        previous = line.reason if line.kind == "valid" else previous
    assert runs > 100


def test_delivery_order_follows_recorded_at(valid: list[dict[str, Any]]) -> None:
    recorded = [_instant(env["recorded_at"]) for env in valid if "recorded_at" in env]
    out_of_order = sum(1 for a, b in zip(recorded, recorded[1:], strict=False) if b < a)
    assert out_of_order < 0.01 * len(recorded)


# ----------------------------------------------------------------------------- noise


def test_duplicates_repeat_an_earlier_valid_line_exactly(stream: list[SampleLine]) -> None:
    seen: set[str] = set()
    for line in stream:
        if line.kind == "duplicate":
            assert line.text in seen
            assert line.reason == "redelivery"
        elif line.kind == "valid":
            assert line.text not in seen
            seen.add(line.text)


def test_conflicts_reuse_an_event_id_with_different_content(stream: list[SampleLine]) -> None:
    earlier: dict[str, dict[str, Any]] = {}
    conflicts = 0
    for line in stream:
        if line.kind == "valid":
            env = orjson.loads(line.text)
            earlier[env["event_id"]] = env
        elif line.kind == "conflict":
            env = orjson.loads(line.text)
            original = earlier[env["event_id"]]
            assert env["household_id"] == original["household_id"]
            assert env["type"] == original["type"]
            assert {k: v for k, v in env.items() if k != "recorded_at"} != {
                k: v for k, v in original.items() if k != "recorded_at"
            }
            assert check_community(env["org_unit"])
            _instant(env["occurred_at"])
            conflicts += 1
    assert conflicts > 0


def test_every_invalid_kind_appears(stream: list[SampleLine]) -> None:
    reasons = Counter(line.reason for line in stream if line.kind == "invalid")
    assert set(reasons) == set(INVALID_REASONS)


def _broken(reason: str, text: str) -> bool:
    """Check that a line really has the defect its reason names."""
    try:
        env = orjson.loads(text)
    except orjson.JSONDecodeError:
        return reason == "broken_json"
    if reason == "unknown_type":
        return env["type"] not in CATALOG
    if reason == "missing_household_id":
        return "household_id" not in env
    if reason == "org_unit_not_12_digits":
        return len(env["org_unit"]) != 12
    if reason == "org_unit_street_level":
        return level_of(env["org_unit"]) is Level.STREET
    if reason == "timestamp_without_offset":
        return datetime.fromisoformat(env["occurred_at"]).tzinfo is None
    if reason == "indicator_outside_vocabulary":
        return not set(env["data"]["indicators"]) <= INDICATORS
    if reason == "channel_outside_vocabulary":
        return env["data"]["channel"] not in CHANNELS
    if reason == "missing_data":
        return "data" not in env
    if reason == "schema_version_0":
        return env["schema_version"] == 0
    return False


def test_invalid_lines_have_exactly_the_named_defect(stream: list[SampleLine]) -> None:
    for line in stream:
        if line.kind == "invalid":
            assert _broken(line.reason, line.text), line


# ----------------------------------------------------------------------------- helpers


def test_sample_events_are_valid_envelopes_in_delivery_order() -> None:
    events = sample_events(300, seed=5)
    assert len(events) == 300
    assert events == sample_events(300, seed=5)
    assert len({env["event_id"] for env in events}) == 300
    for env in events:
        assert env["type"] in CATALOG
        check_community(env["org_unit"])
    assert any(env["type"] == "petition.received" for env in events)


def test_spec_rejects_nonsense() -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError):
        StreamSpec(start=naive)
    with pytest.raises(ValueError):
        StreamSpec(duplicate_fraction=0.7, invalid_fraction=0.4)
    with pytest.raises(ValueError):
        StreamSpec(events=-1)


def test_custom_window_is_respected() -> None:
    start = datetime(2026, 1, 1, tzinfo=TZ)
    end = start + timedelta(days=10)
    spec = StreamSpec(events=2_000, households=300, start=start, end=end, seed=8)
    for line in generate(spec):
        if line.kind == "valid":
            occurred = _instant(orjson.loads(line.text)["occurred_at"])
            assert start <= occurred < end


def test_sample_events_are_v1_unless_asked_for_v2() -> None:
    """Engine unit tests keep the v1 stream; ``v2=True`` adds the register sweep."""
    v1 = {env["type"] for env in sample_events(2000, seed=4)}
    v2 = {env["type"] for env in sample_events(2000, seed=4, v2=True)}
    assert not v1 & {"household.registered", "household.transferred", *AFTER_ALERT_TYPES}
    assert "household.registered" in v2 and "warning.assessed" in v2
