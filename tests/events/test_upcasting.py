"""Upcasting (DESIGN.md "Events": schema_version ≥ 1, old versions are upcast on read).

The shipped catalog is v1 everywhere, so these tests pretend a v2 exists by
registering upcasters in a private registry and decoding through it.
"""

from __future__ import annotations

import json

from events.catalog import Envelope
from events.codec import Decoded, Rejected, decode
from events.upcasting import DEFAULT_UPCASTERS, UpcasterRegistry
from tests.helpers import T0, data_of, followup, line, petition


def envelope(result: Decoded) -> Envelope:
    """The validated model behind a decoded event (``Decoded.event`` is typed by its facts)."""
    assert isinstance(result.event, Envelope)
    return result.event


def v1_petition_without_urgent() -> dict:
    """A v1 petition as an imaginary older field app sent it: no `urgent` flag."""
    obj = json.loads(petition("h1", T0, category="domestic_violence"))
    del obj["data"]["urgent"]
    return obj


def add_urgent(raw: dict) -> dict:
    raw["data"] = {**raw["data"], "urgent": False}
    return raw


def registry_with_petition_v2() -> UpcasterRegistry:
    registry = UpcasterRegistry()
    registry.register("petition.received", 1, add_urgent)
    return registry


def test_without_an_upcaster_the_old_shape_is_rejected_naming_the_missing_field():
    result = decode(line(v1_petition_without_urgent()))
    assert isinstance(result, Rejected)
    assert "data.urgent" in result.reason


def test_a_v1_event_is_upcast_to_the_current_version_on_read():
    result = decode(line(v1_petition_without_urgent()), upcasters=registry_with_petition_v2())
    assert isinstance(result, Decoded), getattr(result, "reason", None)
    assert envelope(result).schema_version == 2
    assert data_of(result)["urgent"] is False
    assert result.raw["schema_version"] == 2
    assert result.raw["data"]["urgent"] is False


def test_an_event_already_at_the_current_version_is_not_upcast():
    calls = []

    def record(raw):
        calls.append(raw)
        return raw

    registry = UpcasterRegistry()
    registry.register("petition.received", 1, record)
    obj = json.loads(petition("h1", T0, urgent=True))
    obj["schema_version"] = 2
    result = decode(line(obj), upcasters=registry)
    assert isinstance(result, Decoded)
    assert data_of(result)["urgent"] is True
    assert calls == []


def test_upcasting_a_type_leaves_other_types_alone():
    result = decode(followup("h1", T0), upcasters=registry_with_petition_v2())
    assert isinstance(result, Decoded)
    assert envelope(result).schema_version == 1


def test_upcasters_chain_from_any_old_version_in_order():
    steps = []

    def step(name):
        def apply(raw):
            steps.append((name, raw["schema_version"]))
            return add_urgent(raw) if name == "v1->v2" else raw

        return apply

    registry = UpcasterRegistry()
    registry.register("petition.received", 1, step("v1->v2"))
    registry.register("petition.received", 2, step("v2->v3"))
    result = decode(line(v1_petition_without_urgent()), upcasters=registry)
    assert isinstance(result, Decoded)
    assert steps == [("v1->v2", 1), ("v2->v3", 2)]
    assert envelope(result).schema_version == 3


def test_a_gap_in_the_upcaster_chain_is_rejected_naming_schema_version():
    registry = UpcasterRegistry()
    registry.register("petition.received", 2, lambda raw: raw)  # no step from v1
    result = decode(line(v1_petition_without_urgent()), upcasters=registry)
    assert isinstance(result, Rejected)
    assert result.reason.startswith("schema_version")


def test_a_version_newer_than_the_reader_knows_is_rejected_naming_schema_version():
    obj = json.loads(petition("h1", T0))
    obj["schema_version"] = 2
    result = decode(line(obj))
    assert isinstance(result, Rejected)
    assert result.reason.startswith("schema_version")
    assert "newer" in result.reason


def test_a_version_newer_than_a_private_registry_knows_is_rejected_too():
    obj = json.loads(petition("h1", T0))
    obj["schema_version"] = 3
    result = decode(line(obj), upcasters=registry_with_petition_v2())
    assert isinstance(result, Rejected)
    assert result.reason.startswith("schema_version")


def test_upcasting_does_not_touch_the_callers_input_or_the_default_registry():
    registry = registry_with_petition_v2()
    original = v1_petition_without_urgent()
    text = line(original)
    decode(text, upcasters=registry)
    assert json.loads(text) == original
    assert DEFAULT_UPCASTERS.current["petition.received"] == 1
    assert ("petition.received", 1) not in DEFAULT_UPCASTERS.steps


def test_an_upcast_event_drives_the_rules_like_a_current_one():
    # The upcast shape is what the engine sees: a v1 sexual-assault petition
    # (without `urgent`) raises the red violence-injury warning.
    from rules.engine import Engine
    from rules.state import HouseholdState
    from tests.helpers import default_pack

    obj = v1_petition_without_urgent()
    obj["data"]["category"] = "sexual_assault"
    decoded = decode(line(obj), upcasters=registry_with_petition_v2())
    assert isinstance(decoded, Decoded)
    outcome = Engine(default_pack()).apply(HouseholdState(), decoded)
    assert [r["rule_id"] for r in outcome.records] == ["violence-injury"]
