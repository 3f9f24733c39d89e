"""Decoding (DESIGN.md "Events"): invalid input is rejected with a reason naming the field.

"An event that fails validation (bad JSON, unknown type, a field missing or
outside its vocabulary, an org_unit that is not a 12-digit community-level
code, a timestamp without offset, missing household) is rejected, never
dropped." A rejection is a value (``Rejected``), never an exception.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from events.codec import MAX_EVENT_BYTES, Decoded, Rejected, decode
from tests.helpers import (
    T0,
    ack,
    case_resolved,
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

GOOD = json.loads(petition("h1", T0, category="domestic_violence"))


def with_(changes: dict[str, Any], base: dict[str, Any] = GOOD) -> str:
    obj = json.loads(json.dumps(base))
    for key, value in changes.items():
        target, name = obj, key
        if key.startswith("data."):
            target, name = obj["data"], key[len("data.") :]
        if value is _DROP:
            del target[name]
        else:
            target[name] = value
    return line(obj)


_DROP = object()


def rejected(text: str | bytes) -> Rejected:
    result = decode(text)
    assert isinstance(result, Rejected), f"accepted: {result}"
    assert result.reason
    return result


def reason_names(text: str | bytes, field: str) -> str:
    reason = rejected(text).reason
    assert reason.split(":")[0].strip() == field or f"{field}:" in reason, reason
    return reason


def test_the_base_event_is_valid():
    assert isinstance(decode(with_({})), Decoded)


# -- bad JSON and non-objects ------------------------------------------------


@pytest.mark.parametrize("text", ["", "{", "{'event_id': 1}", "not json", '{"a": 1,}', "\x00"])
def test_bad_json_is_rejected(text):
    assert "JSON" in rejected(text).reason


@pytest.mark.parametrize("text", ["[]", "1", '"event"', "null", "true"])
def test_a_json_value_that_is_not_an_object_is_rejected(text):
    assert rejected(text).reason.startswith("event")


def test_invalid_utf8_is_rejected():
    rejected(b'{"event_id": "\xff\xfe"}')


def test_an_oversize_event_is_rejected_without_parsing():
    big = with_({"data.notes": "x" * (MAX_EVENT_BYTES + 1)})
    result = rejected(big)
    assert "larger" in result.reason
    assert result.raw == big.encode()  # kept whole in the dead letters, never cut


# -- type --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["petition.recieved", "petition", "", "Petition.Received", 5])
def test_an_unknown_type_is_rejected_naming_type(value):
    assert "unknown" in reason_names(with_({"type": value}), "type")


def test_a_missing_type_is_rejected_naming_type():
    reason_names(with_({"type": _DROP}), "type")


@pytest.mark.parametrize("value", [["petition.received"], {"name": "petition.received"}])
def test_a_type_that_is_not_a_string_is_rejected_not_raised(value):
    # "rejected, never dropped ... processing goes on": a JSON array or object as
    # the type must give a Rejected, not an exception out of decode().
    reason_names(with_({"type": value}), "type")


# -- missing fields ----------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["event_id", "schema_version", "occurred_at", "org_unit", "household_id", "data"],
)
def test_a_missing_envelope_field_is_rejected_naming_it(field):
    assert "required" in reason_names(with_({field: _DROP}), field).lower()


@pytest.mark.parametrize(
    ("event_line", "field"),
    [
        (visit("h1", T0, ["threats"]), "indicators"),
        (petition("h1", T0), "channel"),
        (petition("h1", T0), "category"),
        (petition("h1", T0), "urgent"),
        (mediation_opened("h1", T0), "mediation_id"),
        (mediation_concluded("h1", T0), "mediation_id"),
        (mediation_concluded("h1", T0), "outcome"),
        (followup("h1", T0), "action"),
        (gap("h1", T0), "child_ref"),
        (restored("h1", T0), "child_ref"),
        (case_resolved("h1", T0), "resolution"),
        (ack("h1", "w-0123456789abcdef", T0), "warning_id"),
        (ack("h1", "w-0123456789abcdef", T0), "by"),
        (resolve("h1", "w-0123456789abcdef", T0), "warning_id"),
        (resolve("h1", "w-0123456789abcdef", T0), "by"),
    ],
)
def test_a_missing_data_field_is_rejected_naming_it(event_line, field):
    base = json.loads(event_line)
    reason_names(with_({f"data.{field}": _DROP}, base), f"data.{field}")


def test_data_that_is_not_an_object_is_rejected_naming_data():
    reason_names(with_({"data": "hotline"}), "data")


# -- values outside the vocabulary ----------------------------------------------


def test_an_indicator_outside_the_vocabulary_is_rejected_naming_the_indicator():
    base = json.loads(visit("h1", T0, ["threats", "bruises"]))
    reason_names(line(base), "data.indicators.1")


def test_indicators_that_are_not_a_list_are_rejected():
    base = json.loads(visit("h1", T0, []))
    reason_names(with_({"data.indicators": "threats"}, base), "data.indicators")


@pytest.mark.parametrize(
    ("event_line", "field", "value"),
    [
        (petition("h1", T0), "channel", "fax"),
        (petition("h1", T0), "category", "bullying"),
        (mediation_concluded("h1", T0), "outcome", "abandoned"),
        (followup("h1", T0), "action", "sms"),
        (case_resolved("h1", T0), "resolution", "solved"),
    ],
)
def test_a_value_outside_its_vocabulary_is_rejected_naming_the_field(event_line, field, value):
    base = json.loads(event_line)
    reason_names(with_({f"data.{field}": value}, base), f"data.{field}")


@pytest.mark.parametrize("value", ["maybe", None, [], {}])
def test_urgent_that_is_not_a_boolean_is_rejected(value):
    reason_names(with_({"data.urgent": value}), "data.urgent")


@pytest.mark.parametrize("value", ["true", "yes", 1])
def test_urgent_must_be_a_json_boolean_not_a_lookalike(value):
    # DESIGN: `urgent`: bool. A string or a number is not a JSON bool; accepting
    # "yes" as true would let a malformed petition raise a red warning.
    reason_names(with_({"data.urgent": value}), "data.urgent")


# -- org_unit ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "23010200100",  # 11 digits
        "2301020010011",  # 13 digits
        "23010200100a",
        "2301-0200100",
        " 230102001001",
        "２３０１０２００１００１",  # full-width digits
        "",
        230102001001,  # a number, not a string
        None,
    ],
)
def test_an_org_unit_that_is_not_12_digits_is_rejected_naming_org_unit(value):
    reason_names(with_({"org_unit": value}), "org_unit")


@pytest.mark.parametrize(
    "value",
    [
        "230102001000",  # street 新阳路街道-like (township level)
        "230102000000",  # district 道里区
        "230100000000",  # city 哈尔滨
    ],
)
def test_an_org_unit_above_community_level_is_rejected_naming_org_unit(value):
    reason_names(with_({"org_unit": value}), "org_unit")


@pytest.mark.parametrize("value", ["000000000000", "230000000000", "230102000001"])
def test_an_org_unit_that_is_not_a_valid_division_code_is_rejected(value):
    reason_names(with_({"org_unit": value}), "org_unit")


# -- timestamps --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2026-03-01T08:00:00", "2026-03-01 08:00:00", "2026-03-01T08:00:00.123456", "2026-03-01"],
)
def test_occurred_at_without_offset_is_rejected_naming_occurred_at(value):
    reason_names(with_({"occurred_at": value}), "occurred_at")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T08:00:00Z", "", None])
def test_occurred_at_that_is_not_a_timestamp_is_rejected_naming_occurred_at(value):
    reason_names(with_({"occurred_at": value}), "occurred_at")


def test_occurred_at_as_a_unix_number_is_rejected_naming_occurred_at():
    # DESIGN: occurred_at is "ISO 8601 with offset"; a bare number is neither.
    reason_names(with_({"occurred_at": 1772352000}), "occurred_at")


def test_recorded_at_without_offset_is_rejected_naming_recorded_at():
    reason_names(with_({"recorded_at": "2026-03-01T08:00:00"}), "recorded_at")


def test_timestamps_with_z_or_any_offset_are_accepted():
    for value in ("2026-03-01T08:00:00Z", "2026-03-01T08:00:00+00:00", "2026-03-01T16:00:00+08:00"):
        decoded = decode(with_({"occurred_at": value}))
        assert isinstance(decoded, Decoded) and decoded.occurred_us == T0


# -- household, schema_version, event_id ----------------------------------------


@pytest.mark.parametrize("value", ["", None, 42])
def test_an_empty_or_non_string_household_is_rejected_naming_household_id(value):
    reason_names(with_({"household_id": value}), "household_id")


@pytest.mark.parametrize("value", [0, -1])
def test_schema_version_below_1_is_rejected_naming_schema_version(value):
    reason_names(with_({"schema_version": value}), "schema_version")


@pytest.mark.parametrize("value", [None, "one", 1.5])
def test_schema_version_that_is_not_an_integer_is_rejected(value):
    reason_names(with_({"schema_version": value}), "schema_version")


@pytest.mark.parametrize(
    "value",
    ["e-1", "", "6f1c2a52-3c7e-4a8e-9b1e-0d3c0f7a1b2", "6f1c2a52-3c7e-4a8e-9b1e-0d3c0f7a1b2g", 7],
)
def test_an_event_id_that_is_not_a_uuid_is_rejected_naming_event_id(value):
    reason_names(with_({"event_id": value}), "event_id")


# -- the rejection itself --------------------------------------------------------


def test_a_rejection_keeps_the_raw_input_and_the_identity_it_could_read():
    text = with_({"org_unit": "230102000000"})
    result = rejected(text)
    assert result.raw == text.encode()
    assert result.event_id == GOOD["event_id"]
    assert result.household_id == "h1"


def test_several_problems_are_all_named():
    reason = rejected(with_({"org_unit": "230102000000", "household_id": _DROP})).reason
    assert "org_unit" in reason and "household_id" in reason


def test_decode_accepts_bytes_and_str_alike():
    text = with_({})
    from_text, from_bytes = decode(text), decode(text.encode())
    assert isinstance(from_text, Decoded) and isinstance(from_bytes, Decoded)
    assert from_text.event == from_bytes.event
