"""The rule pack (DESIGN.md: "Rules are data (a YAML pack validated on load)")."""

from __future__ import annotations

import copy

import pytest
import yaml

from rules.pack import DEFAULT_PACK_PATH, RulePackError, load_pack, parse_pack


@pytest.fixture
def doc():
    return yaml.safe_load(DEFAULT_PACK_PATH.read_text(encoding="utf-8"))


def refused(document) -> str:
    with pytest.raises(RulePackError) as info:
        parse_pack(document)
    return str(info.value)


def rule(document, rule_id):
    return next(r for r in document["rules"] if r["id"] == rule_id)


# -- the default pack ----------------------------------------------------------


def test_the_default_pack_loads():
    pack = load_pack()
    assert pack.pack == "default"


def test_the_default_pack_has_the_nine_design_rules_in_order_with_their_levels():
    pack = load_pack()
    assert [(r.id, r.level) for r in pack.rules] == [
        ("violence-injury", "red"),
        ("repeat-petitions", "orange"),
        ("escalating-dispute", "orange"),
        ("vulnerable-person-harm", "red"),
        ("guardianship-no-followup", "yellow"),
        ("mediation-failed", "yellow"),
        ("screening-overdue", "yellow"),
        ("referral-unanswered", "orange"),
        ("referral-declined", "yellow"),
    ]


def test_the_default_acknowledgement_slas_are_24_72_168_hours():
    pack = load_pack()
    assert dict(pack.ack_sla_hours) == {"red": 24, "orange": 72, "yellow": 168}
    hour = 3_600_000_000
    assert [pack.sla_us(lvl) for lvl in ("red", "orange", "yellow")] == [
        24 * hour,
        72 * hour,
        168 * hour,
    ]


def test_the_default_windows_and_deadline_are_30_and_60_days_and_7_days():
    pack = load_pack()
    by_id = {r.id: r for r in pack.rules}
    assert by_id["repeat-petitions"].require.count.within_days == 30
    assert by_id["repeat-petitions"].require.count.at_least == 3
    assert by_id["escalating-dispute"].require.count.within_days == 60
    assert by_id["escalating-dispute"].require.count.at_least == 2
    assert by_id["guardianship-no-followup"].deadline.days == 7


def test_the_default_document_round_trips_through_parse_pack(doc):
    assert parse_pack(doc) == load_pack()


# -- bad packs are refused, naming the rule ------------------------------------


def test_a_rule_using_an_unknown_signal_is_refused_naming_the_rule_and_signal(doc):
    rule(doc, "repeat-petitions")["require"]["count"]["of"].append("petitoin")
    message = refused(doc)
    assert "repeat-petitions" in message and "petitoin" in message
    assert "unknown signal" in message


def test_an_unknown_signal_in_when_is_refused_naming_the_rule(doc):
    rule(doc, "violence-injury")["when"].append("ghost")
    message = refused(doc)
    assert "violence-injury" in message and "ghost" in message


def test_an_unknown_signal_in_a_deadline_is_refused_naming_the_rule(doc):
    rule(doc, "guardianship-no-followup")["deadline"]["unless_any"].append("ghost")
    message = refused(doc)
    assert "guardianship-no-followup" in message and "ghost" in message


def test_a_duplicate_rule_id_is_refused_naming_the_rule(doc):
    doc["rules"].append(copy.deepcopy(rule(doc, "mediation-failed")))
    message = refused(doc)
    assert "mediation-failed" in message and "duplicate" in message


def test_a_signal_of_an_unknown_event_type_is_refused_naming_the_signal_and_type(doc):
    doc["signals"]["petition"]["type"] = "petition.recieved"
    message = refused(doc)
    assert "signal petition" in message and "petition.recieved" in message


def test_a_rule_with_both_when_and_deadline_is_refused_naming_the_rule(doc):
    rule(doc, "mediation-failed")["deadline"] = {"after": "guardianship_gap", "days": 7}
    message = refused(doc)
    assert "mediation-failed" in message and "when" in message and "deadline" in message


def test_a_rule_with_neither_when_nor_deadline_is_refused_naming_the_rule(doc):
    del rule(doc, "mediation-failed")["when"]
    assert "mediation-failed" in refused(doc)


@pytest.mark.parametrize("level", ["red", "orange", "yellow"])
def test_a_pack_missing_an_sla_level_is_refused_naming_the_level(level, doc):
    del doc["ack_sla_hours"][level]
    message = refused(doc)
    assert "ack_sla_hours" in message and level in message


def test_an_unknown_rule_level_is_refused_naming_the_rule(doc):
    rule(doc, "violence-injury")["level"] = "purple"
    message = refused(doc)
    assert "violence-injury" in message and "level" in message


def test_a_misspelt_rule_key_is_refused_naming_the_rule_and_key(doc):
    rule(doc, "violence-injury")["whne"] = rule(doc, "violence-injury").pop("when")
    message = refused(doc)
    assert "violence-injury" in message and "whne" in message


def test_a_condition_that_does_not_apply_to_the_signal_type_is_refused(doc):
    doc["signals"]["petition"]["indicators_any"] = ["threats"]
    message = refused(doc)
    assert "signal petition" in message and "indicators_any" in message


def test_an_indicator_outside_the_vocabulary_is_refused_naming_the_signal(doc):
    doc["signals"]["injury_visit"]["indicators_any"] = ["injury"]
    assert "signal injury_visit" in refused(doc)


def test_a_non_mapping_document_is_refused():
    assert "mapping" in refused(["rules"])


def test_invalid_yaml_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("pack: [unclosed\n", encoding="utf-8")
    with pytest.raises(RulePackError):
        load_pack(path)


# -- catalog v2: cadences, resolved_by, registration flags -----------------------


def test_the_default_screening_cadence_is_180_days_and_30_for_key_households():
    overdue = {r.id: r for r in load_pack().rules}["screening-overdue"]
    assert overdue.cadence is not None
    assert overdue.cadence.after == ("registration", "visit")
    assert overdue.cadence.delay_us(frozenset()) == 180 * 86_400_000_000
    assert overdue.cadence.delay_us(frozenset({"rural"})) == 180 * 86_400_000_000
    assert overdue.cadence.delay_us(frozenset({"key_household", "rural"})) == 30 * 86_400_000_000


def test_vulnerable_person_harm_also_counts_a_registration_flag():
    pack = load_pack()
    harm = {r.id: r for r in pack.rules}["vulnerable-person-harm"]
    assert harm.require.ever == ("disability_visit", "disability_registration")
    signal = pack.signals["disability_registration"]
    assert (signal.type, signal.flags_any) == ("household.registered",
                                               ("intellectual_disability",))


def test_a_rule_with_a_cadence_and_a_when_is_refused_naming_the_rule(doc):
    rule(doc, "screening-overdue")["when"] = ["visit"]
    message = refused(doc)
    assert "screening-overdue" in message and "cadence" in message


def test_an_unknown_signal_in_a_cadence_is_refused_naming_the_rule(doc):
    rule(doc, "screening-overdue")["cadence"]["after"] = ["registration", "visits"]
    message = refused(doc)
    assert "screening-overdue" in message and "visits" in message


def test_an_unknown_signal_in_resolved_by_is_refused_naming_the_rule(doc):
    rule(doc, "screening-overdue")["resolved_by"] = ["home_visit"]
    message = refused(doc)
    assert "screening-overdue" in message and "home_visit" in message


def test_a_cadence_flag_outside_the_vocabulary_is_refused(doc):
    rule(doc, "screening-overdue")["cadence"]["flag_days"] = {"vip": 7}
    assert "screening-overdue" in refused(doc)


def test_a_cadence_of_zero_days_for_a_flag_is_refused(doc):
    rule(doc, "screening-overdue")["cadence"]["flag_days"] = {"key_household": 0}
    assert "flag_days.key_household" in refused(doc)


def test_flags_any_applies_only_to_registrations(doc):
    doc["signals"]["visit"]["flags_any"] = ["rural"]
    assert "flags_any applies only to household.registered" in refused(doc)


def test_the_surge_example_is_the_default_pack_plus_a_surge():
    default = load_pack()
    surge = load_pack(DEFAULT_PACK_PATH.parent / "surge-example.yaml")
    assert surge.rules == default.rules and surge.signals == default.signals
    assert [s.id for s in surge.surges] == ["district-petition-surge"]
