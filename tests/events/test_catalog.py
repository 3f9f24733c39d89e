"""The catalog (DESIGN.md "Events" and "Catalog v2"): every type, every vocabulary value,
the tolerant reader."""

from __future__ import annotations

import json

import pytest

from events import catalog
from events.codec import Decoded, decode
from events.instants import parse_instant
from tests.helpers import (
    T0,
    ack,
    assign,
    case_resolved,
    data_of,
    envelope,
    followup,
    gap,
    line,
    mediation_concluded,
    mediation_opened,
    petition,
    resolve,
    restored,
    visit,
)
from tests.rules.after_alert import (
    accept,
    assess,
    close_referral,
    consent,
    decline,
    refer,
    reopen,
    withdraw,
)
from tests.rules.households import register, transfer

INDICATORS = [
    "marital_conflict",
    "threats",
    "domestic_violence_signs",
    "injury_observed",
    "sexual_violence_signs",
    "child_neglect",
    "guardianship_gap",
    "intellectual_disability",
    "economic_hardship",
    "alcohol_abuse",
    "isolation",
]
CHANNELS = ["hotline_12338", "walk_in", "letter", "online", "wechat", "referral"]
CATEGORIES = [
    "marriage_family_dispute",
    "domestic_violence",
    "sexual_assault",
    "child_rights",
    "property_rights",
    "other",
]
OUTCOMES = ["reconciled", "agreement", "failed", "referred"]
ACTIONS = [
    "home_visit",
    "phone_call",
    "legal_aid",
    "psych_counselling",
    "police_referral",
    "shelter",
]
RESOLUTIONS = ["resolved_locally", "referred", "closed_no_action"]

ONE_OF_EACH_TYPE = {
    "screening.visit_recorded": visit("h1", T0, ["threats"]),
    "petition.received": petition("h1", T0),
    "mediation.opened": mediation_opened("h1", T0),
    "mediation.concluded": mediation_concluded("h1", T0, "agreement"),
    "followup.recorded": followup("h1", T0),
    "child.guardianship_gap_recorded": gap("h1", T0),
    "child.guardianship_restored": restored("h1", T0),
    "case.resolved": case_resolved("h1", T0),
    "warning.acknowledged": ack("h1", "w-0123456789abcdef", T0),
    "warning.assigned": assign("h1", "w-0123456789abcdef", T0),
    "warning.resolved": resolve("h1", "w-0123456789abcdef", T0),
    "household.registered": register("h1", T0, ["key_household"], notes="3 people"),
    "household.transferred": transfer("h1", T0, "230103002004"),
    "warning.assessed": assess("h1", "w-0123456789abcdef", T0, "medium"),
    "warning.reopened": reopen("h1", "w-0123456789abcdef", T0),
    "referral.sent": refer("h1", "r-1", T0, "police", "consent"),
    "referral.accepted": accept("h1", "r-1", T0),
    "referral.declined": decline("h1", "r-1", T0),
    "referral.closed": close_referral("h1", "r-1", T0),
    "consent.recorded": consent("h1", T0, ["police", "shelter"]),
    "consent.withdrawn": withdraw("h1", T0, ["police"]),
}
HOUSEHOLD_FLAGS = [
    "key_household",
    "rural",
    "intellectual_disability",
    "left_behind_children",
    "single_parent",
    "elderly_alone",
]


def model_of(decoded: Decoded) -> catalog.Envelope:
    """The validated model behind a decoded event (``Decoded.event`` is typed by its facts)."""
    assert isinstance(decoded.event, catalog.Envelope)
    return decoded.event


def accepted(text: str) -> Decoded:
    result = decode(text)
    assert isinstance(result, Decoded), getattr(result, "reason", result)
    return result


def test_the_catalog_has_exactly_the_v1_types_and_the_ten_of_v2():
    assert set(catalog.EVENT_TYPES) == set(ONE_OF_EACH_TYPE)
    assert set(catalog.CURRENT_VERSION.values()) == {1}


@pytest.mark.parametrize("event_type", sorted(ONE_OF_EACH_TYPE))
def test_a_well_formed_event_of_every_type_is_accepted(event_type):
    decoded = accepted(ONE_OF_EACH_TYPE[event_type])
    assert decoded.event.type == event_type
    assert isinstance(decoded.event, catalog.EVENT_TYPES[event_type])
    assert decoded.household_id == "h1"
    assert decoded.occurred_us == T0


def test_a_visit_carries_its_indicators_and_notes():
    obj = json.loads(visit("h1", T0, ["threats", "isolation"]))
    obj["data"]["notes"] = "home, 2 adults"
    decoded = accepted(line(obj))
    assert data_of(decoded) == {"indicators": ["threats", "isolation"], "notes": "home, 2 adults"}


def test_a_visit_with_no_indicators_is_accepted():
    assert data_of(accepted(visit("h1", T0, [])))["indicators"] == []


@pytest.mark.parametrize("indicator", INDICATORS)
def test_every_indicator_of_the_vocabulary_is_accepted(indicator):
    assert data_of(accepted(visit("h1", T0, [indicator])))["indicators"] == [indicator]


def test_a_visit_may_carry_every_indicator_at_once():
    assert data_of(accepted(visit("h1", T0, INDICATORS)))["indicators"] == INDICATORS


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_petition_channel_is_accepted(channel):
    assert data_of(accepted(petition("h1", T0, channel=channel)))["channel"] == channel


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("urgent", [True, False])
def test_every_petition_category_is_accepted_urgent_or_not(category, urgent):
    data = data_of(accepted(petition("h1", T0, category=category, urgent=urgent)))
    assert (data["category"], data["urgent"]) == (category, urgent)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_mediation_outcome_is_accepted(outcome):
    assert data_of(accepted(mediation_concluded("h1", T0, outcome)))["outcome"] == outcome


@pytest.mark.parametrize("action", ACTIONS)
def test_every_followup_action_is_accepted(action):
    assert data_of(accepted(followup("h1", T0, action)))["action"] == action


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_every_case_resolution_is_accepted(resolution):
    assert data_of(accepted(case_resolved("h1", T0, resolution)))["resolution"] == resolution


def test_commands_carry_the_warning_id_and_who_acted():
    acknowledged = data_of(accepted(ack("h1", "w-0123456789abcdef", T0, by="chair-7")))
    assert (acknowledged["warning_id"], acknowledged["by"]) == ("w-0123456789abcdef", "chair-7")
    resolved = data_of(accepted(resolve("h1", "w-0123456789abcdef", T0, note="settled")))
    assert (resolved["warning_id"], resolved["note"]) == ("w-0123456789abcdef", "settled")


def test_an_assignment_names_the_warning_who_assigned_it_and_to_whom():
    assigned = data_of(accepted(assign("h1", "w-0123456789abcdef", T0, "cadre-3", "chair-7")))
    assert assigned == {"warning_id": "w-0123456789abcdef", "by": "chair-7",
                        "assignee": "cadre-3"}


@pytest.mark.parametrize("missing", ["warning_id", "by", "assignee"])
def test_an_assignment_without_any_of_its_fields_is_rejected_naming_it(missing):
    obj = json.loads(assign("h1", "w-0123456789abcdef", T0))
    del obj["data"][missing]
    result = decode(line(obj))
    assert not isinstance(result, Decoded)
    assert missing in result.reason


def test_an_empty_assignee_is_rejected():
    result = decode(assign("h1", "w-0123456789abcdef", T0, assignee=""))
    assert not isinstance(result, Decoded)
    assert "assignee" in result.reason


def test_recorded_at_and_actor_are_optional():
    obj = json.loads(petition("h1", T0))
    assert "recorded_at" not in obj and "actor" not in obj
    decoded = accepted(line(obj))
    assert model_of(decoded).recorded_at is None and model_of(decoded).actor is None


def test_recorded_at_and_actor_are_read_when_present():
    obj = json.loads(petition("h1", T0))
    obj |= {"recorded_at": "2026-03-02T09:30:00+08:00", "actor": "op-12338-04"}
    decoded = accepted(line(obj))
    assert model_of(decoded).actor == "op-12338-04"
    recorded_at = model_of(decoded).recorded_at
    assert recorded_at is not None and recorded_at.isoformat() == "2026-03-02T09:30:00+08:00"


def test_occurred_at_with_an_offset_is_placed_on_the_utc_time_line():
    decoded = accepted(petition("h1", "2026-03-01T16:00:00+08:00"))
    assert decoded.occurred_us == parse_instant("2026-03-01T08:00:00Z") == T0


def test_occurred_at_keeps_microseconds():
    assert accepted(petition("h1", "2026-03-01T08:00:00.000001Z")).occurred_us == T0 + 1


def test_unknown_envelope_fields_are_tolerated_and_kept():
    obj = json.loads(petition("h1", T0))
    obj["app_version"] = "3.2.1"
    obj["device"] = {"os": "android", "offline_for_s": 3600}
    decoded = accepted(line(obj))
    assert decoded.raw["app_version"] == "3.2.1"
    assert decoded.raw["device"] == {"os": "android", "offline_for_s": 3600}


def test_unknown_data_fields_are_tolerated_and_kept():
    obj = envelope(
        "petition.received",
        "h1",
        T0,
        {"channel": "letter", "category": "other", "urgent": False, "ticket": "12338-991"},
    )
    decoded = accepted(line(obj))
    assert data_of(decoded)["category"] == "other"
    assert decoded.raw["data"]["ticket"] == "12338-991"


def test_an_event_of_any_harbin_district_community_is_accepted():
    for prefix in ("230102", "230113", "230184"):
        assert accepted(petition("h1", T0, org=prefix + "105203")).event.org_unit == (
            prefix + "105203"
        )


def test_the_json_schema_export_covers_the_assignment_command(tmp_path):
    from events.schema_export import export_schemas

    names = {p.name for p in export_schemas(tmp_path)}
    assert len(names) == len(catalog.EVENT_TYPES) == 21
    schema = json.loads((tmp_path / "warning.assigned.schema.json").read_text())
    assert {"warning_id", "by", "assignee"} <= set(json.dumps(schema).split('"'))


def test_the_json_schema_export_covers_the_household_types(tmp_path):
    from events.schema_export import export_schemas

    export_schemas(tmp_path)
    registered = json.loads((tmp_path / "household.registered.schema.json").read_text())
    transferred = json.loads((tmp_path / "household.transferred.schema.json").read_text())
    assert set(HOUSEHOLD_FLAGS) <= set(json.dumps(registered).split('"'))
    assert {"to_org_unit", "moved", "administrative"} <= set(json.dumps(transferred).split('"'))


def test_a_registration_may_carry_every_flag_or_none():
    assert data_of(accepted(register("h1", T0, HOUSEHOLD_FLAGS)))["flags"] == HOUSEHOLD_FLAGS
    assert data_of(accepted(register("h1", T0, [])))["flags"] == []


def test_a_registration_without_notes_is_accepted():
    obj = envelope("household.registered", "h1", T0, {"flags": ["rural"]})
    assert data_of(accepted(line(obj))) == {"flags": ["rural"]}


def test_registration_notes_are_personal_data():
    assert catalog.PERSONAL_FIELDS["household.registered"] == ("notes",)
    assert "household.transferred" not in catalog.PERSONAL_FIELDS


@pytest.mark.parametrize("reason", ["moved", "administrative"])
def test_a_transfer_to_a_community_of_another_district_is_accepted(reason):
    data = data_of(accepted(transfer("h1", T0, "230184105203", reason=reason)))
    assert data == {"to_org_unit": "230184105203", "reason": reason}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"flags": ["vip"]}, "data.flags.0"),
        ({"flags": "rural"}, "data.flags"),
        ({}, "data.flags: Field required"),
        ({"flags": [], "notes": 7}, "data.notes"),
    ],
)
def test_a_bad_registration_is_rejected_naming_the_field(data, reason):
    result = decode(line(envelope("household.registered", "h1", T0, data)))
    assert not isinstance(result, Decoded) and reason in result.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"to_org_unit": "230103002000", "reason": "moved"},
         "data.to_org_unit: org unit '230103002000' is not a community-level code"),
        ({"to_org_unit": "2301", "reason": "moved"}, "data.to_org_unit"),
        ({"reason": "moved"}, "data.to_org_unit: Field required"),
        ({"to_org_unit": "230103002004", "reason": "eloped"}, "data.reason"),
        ({"to_org_unit": "230103002004"}, "data.reason: Field required"),
    ],
)
def test_a_bad_transfer_is_rejected_naming_the_field(data, reason):
    result = decode(line(envelope("household.transferred", "h1", T0, data)))
    assert not isinstance(result, Decoded) and reason in result.reason
