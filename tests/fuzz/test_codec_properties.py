"""Property tests on the codec (events/codec.py).

* any bytes (and any text, and any JSON value) → ``decode`` returns a
  ``Decoded`` or a ``Rejected``, never raises;
* a valid event keeps its fingerprint through an orjson round trip and any
  reordering of keys (the fingerprint is content identity, not bytes);
* changing ``recorded_at`` keeps the fingerprint (a gateway stamps it);
* changing any other field changes it (a different record is not a duplicate).
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import MAX_EVENT_BYTES, Decoded, Rejected, decode
from tests.corpus.bad_inputs import CORPUS

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

INDICATORS = ["marital_conflict", "threats", "injury_observed", "child_neglect", "isolation",
              "intellectual_disability", "economic_hardship"]
ORGS = ["230102001001", "230103002015", "230184105201"]

instants = st.datetimes(
    min_value=datetime(2001, 1, 1),
    max_value=datetime(2098, 12, 31),
    timezones=st.sampled_from([
        UTC,
        timezone(timedelta(hours=8)),
        timezone(timedelta(hours=-5, minutes=-30)),
    ]),
)
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
#: JSON integers orjson can write (the tests build their input with orjson).
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["visit", "petition", "followup", "gap", "ack"]))
    if kind == "visit":
        type_, data = "screening.visit_recorded", {
            "indicators": draw(st.lists(st.sampled_from(INDICATORS), unique=True, max_size=4)),
            "notes": draw(text),
        }
    elif kind == "petition":
        type_, data = "petition.received", {
            "channel": draw(st.sampled_from(["hotline_12338", "walk_in", "letter"])),
            "category": draw(st.sampled_from(["other", "domestic_violence", "sexual_assault"])),
            "urgent": draw(st.booleans()),
        }
    elif kind == "followup":
        type_, data = "followup.recorded", {"action": draw(st.sampled_from(["home_visit",
                                                                           "shelter"]))}
    elif kind == "gap":
        type_, data = "child.guardianship_gap_recorded", {
            "child_ref": draw(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1,
                                      max_size=10)),
            "reason": draw(text),
        }
    else:
        type_, data = "warning.acknowledged", {"warning_id": "w-0123456789abcdef",
                                               "by": "chair-1"}
    obj: dict[str, Any] = {
        "event_id": str(draw(st.uuids())),
        "type": type_,
        "schema_version": 1,
        "occurred_at": draw(instants).isoformat(),
        "org_unit": draw(st.sampled_from(ORGS)),
        "household_id": draw(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1,
                                     max_size=30)),
        "data": data,
    }
    if draw(st.booleans()):
        obj["actor"] = draw(st.text(max_size=20, alphabet="abc-0123"))
    if draw(st.booleans()):
        obj["recorded_at"] = draw(instants).isoformat()
    if draw(st.booleans()):
        obj["x_extension"] = draw(ints | text)
    return obj


def _reorder(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _reorder(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_reorder(v, rnd) for v in value]
    return value


def _decoded(obj: dict[str, Any]) -> Decoded:
    result = decode(orjson.dumps(obj))
    assert isinstance(result, Decoded), (obj, result)
    return result


# ---------------------------------------------------------------------------- never raises


@SETTINGS
@given(st.binary(max_size=2048))
def test_decode_never_raises_on_any_bytes(raw: bytes) -> None:
    assert isinstance(decode(raw), Decoded | Rejected)


@SETTINGS
@given(st.text(st.characters(codec=None, categories=None), max_size=512))
def test_decode_never_raises_on_any_text(raw: str) -> None:
    """Text input (SDK items, API bodies, ``feed_line(str)``) may hold lone surrogates."""
    try:
        result = decode(raw)
    except Exception as exc:
        raise AssertionError(f"decode raised on text input {raw!r}: {exc!r}") from exc
    assert isinstance(result, Decoded | Rejected)


def test_decode_text_with_lone_surrogate_is_rejected_not_raised() -> None:
    line = '{"event_id": "6f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de", "data": {"notes": "\ud800"}}'
    try:
        result = decode(line)
    except Exception as exc:
        raise AssertionError(f"decode raised: {exc!r}") from exc
    assert isinstance(result, Rejected)


json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(json_values)
def test_decode_never_raises_on_any_json_value(value: Any) -> None:
    assert isinstance(decode(orjson.dumps(value)), Decoded | Rejected)


@SETTINGS
@given(valid_events(), st.sampled_from(["event_id", "type", "schema_version", "occurred_at",
                                        "org_unit", "household_id", "data", "actor",
                                        "recorded_at"]),
       json_values)
def test_decode_never_raises_when_one_field_is_replaced(
    obj: dict[str, Any], field: str, value: Any
) -> None:
    obj[field] = value
    assert isinstance(decode(orjson.dumps(obj)), Decoded | Rejected)


@SETTINGS
@given(valid_events(), st.data())
def test_decode_never_raises_on_mutated_bytes(obj: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(orjson.dumps(obj))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    assert isinstance(decode(bytes(raw[:cut])), Decoded | Rejected)


def test_decode_never_raises_on_corpus_and_its_prefixes() -> None:
    for entry in CORPUS:
        raw = entry.raw[:4096]
        for cut in range(0, len(raw), 7):
            assert isinstance(decode(raw[:cut]), Decoded | Rejected)


def test_oversize_boundary() -> None:
    obj = {"event_id": str(uuid.uuid4()), "type": "screening.visit_recorded",
           "schema_version": 1, "occurred_at": "2026-03-01T08:00:00Z",
           "org_unit": ORGS[0], "household_id": "h",
           "data": {"indicators": [], "notes": ""}}
    base = len(orjson.dumps(obj))
    obj["data"]["notes"] = "n" * (MAX_EVENT_BYTES - base)
    at_limit = orjson.dumps(obj)
    assert len(at_limit) == MAX_EVENT_BYTES
    result = decode(at_limit)
    # Exactly at the limit is not "larger than" the limit; notes > 20k chars are refused.
    assert isinstance(result, Rejected) and "larger than" not in result.reason
    obj["data"]["notes"] += "n"
    over = decode(orjson.dumps(obj))
    assert isinstance(over, Rejected) and "larger than" in over.reason


# ---------------------------------------------------------------------------- fingerprints


@SETTINGS
@given(valid_events(), st.randoms(use_true_random=False))
def test_fingerprint_survives_round_trip_and_key_reordering(
    obj: dict[str, Any], rnd: random.Random
) -> None:
    first = _decoded(obj)
    again = _decoded(orjson.loads(orjson.dumps(obj)))
    assert again.fingerprint == first.fingerprint
    shuffled = _reorder(obj, rnd)
    spaced = json.dumps(shuffled, ensure_ascii=True, indent=1)  # other bytes, same content
    for raw in (orjson.dumps(shuffled), spaced.encode()):
        result = decode(raw)
        assert isinstance(result, Decoded)
        assert result.fingerprint == first.fingerprint


@SETTINGS
@given(valid_events(), instants | st.none())
def test_changing_recorded_at_keeps_the_fingerprint(obj: dict[str, Any], when: Any) -> None:
    first = _decoded(obj)
    changed = dict(obj)
    if when is None:
        changed.pop("recorded_at", None)
    else:
        changed["recorded_at"] = when.isoformat()
    assert _decoded(changed).fingerprint == first.fingerprint


def _changed_variants(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One variant per field (top-level and data), each still a valid event."""
    out: list[tuple[str, dict[str, Any]]] = []

    def variant(name: str, mutate: Any) -> None:
        copy_ = copy.deepcopy(obj)
        mutate(copy_)
        out.append((name, copy_))

    variant("event_id", lambda o: o.__setitem__("event_id", str(uuid.uuid4())))
    variant("occurred_at", lambda o: o.__setitem__(
        "occurred_at", o["occurred_at"][:-6] + ("+09:00" if o["occurred_at"][-6:] != "+09:00"
                                                else "+10:00")))
    variant("org_unit", lambda o: o.__setitem__(
        "org_unit", next(c for c in ORGS if c != o["org_unit"])))
    variant("household_id", lambda o: o.__setitem__("household_id", o["household_id"] + "x"))
    variant("actor", lambda o: o.__setitem__("actor", str(o.get("actor")) + "!"))
    variant("extension", lambda o: o.__setitem__("x_extension", [o.get("x_extension")]))
    for key, value in obj["data"].items():
        def change(o: dict[str, Any], key: str = key, value: Any = value) -> None:
            if isinstance(value, bool):
                o["data"][key] = not value
            elif isinstance(value, list):
                o["data"][key] = value[:-1] if value else ["isolation"]
            elif key == "channel":
                o["data"][key] = "online" if value != "online" else "wechat"
            elif key == "category":
                o["data"][key] = "child_rights" if value != "child_rights" else "other"
            elif key == "action":
                o["data"][key] = "legal_aid" if value != "legal_aid" else "shelter"
            else:
                o["data"][key] = value + "·"
        variant(f"data.{key}", change)
    return out


@SETTINGS
@given(valid_events())
def test_changing_any_other_field_changes_the_fingerprint(obj: dict[str, Any]) -> None:
    first = _decoded(obj)
    for name, changed in _changed_variants(obj):
        result = decode(orjson.dumps(changed))
        assert isinstance(result, Decoded), (name, result)
        assert result.fingerprint != first.fingerprint, f"changing {name} kept the fingerprint"
