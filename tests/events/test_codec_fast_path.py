"""The codec's fast path equals its slow path (tests/events/codec_reference.py).

``events.codec.decode`` skips the float walk when validation proves there is no
float, writes its checks inline and builds ``Decoded`` from its slots. Whatever
the input — valid events of every type, each field replaced by any JSON value
(floats, integers beyond 64 bits, nested lists and objects, unicode), extra keys,
respelled ids, odd timestamps, versions to upcast, deep nesting — it must give
exactly what the straightforward composition gives: the same Decoded (event,
raw, instant, fingerprint, source) or the same Rejected, reason byte for byte.
"""

from __future__ import annotations

import copy
import json
import typing
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from events import codec
from events.catalog import EVENT_MODELS, Envelope
from events.codec import Decoded, Rejected
from events.sample import sample_events
from events.upcasting import UpcasterRegistry
from tests.corpus.bad_inputs import CORPUS
from tests.events import codec_reference as reference

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

#: Real envelopes of every type the sample stream makes, plus hand-made ones for the rest.
_SAMPLES: list[dict[str, Any]] = sample_events(400, seed=3)
_BASE = {"event_id": "6f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de", "schema_version": 1,
         "occurred_at": "2026-03-01T08:00:00+08:00", "org_unit": "230102001001",
         "household_id": "hh-1"}
_SAMPLES += [
    {**_BASE, "type": "mediation.concluded", "data": {"mediation_id": "m-1",
                                                      "outcome": "agreement"}},
    {**_BASE, "type": "child.guardianship_gap_recorded",
     "data": {"child_ref": "c-1", "reason": "外出务工"}},
    {**_BASE, "type": "warning.assigned",
     "data": {"warning_id": "w-1", "by": "chair-1", "assignee": "staff-2"}},
    {**_BASE, "type": "warning.resolved", "recorded_at": "2026-03-01T09:00:00Z",
     "data": {"warning_id": "w-1", "by": "chair-1", "note": "ok"}},
]
_TYPES = sorted({e["type"] for e in _SAMPLES})
_FIELDS = ["event_id", "type", "schema_version", "occurred_at", "recorded_at", "org_unit",
           "household_id", "actor", "data", "app_version", "device_id", "x", "score"]
_DATA_KEYS = ["indicators", "notes", "channel", "category", "urgent", "mediation_id",
              "outcome", "action", "child_ref", "reason", "resolution", "warning_id", "by",
              "assignee", "note", "extra", "weight"]

big_ints = st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)]
) | st.integers(min_value=2**64, max_value=2**90) | st.integers(
    min_value=-(2**90), max_value=-(2**63) - 1
)
text = st.text(max_size=12)  # any code point, lone surrogates included
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | big_ints
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.0, 1e20])
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)
timestamps = st.sampled_from([
    "2026-03-01T08:00:00Z", "2026-03-01t08:00:00+08:00", "2026-03-01 08:00:00-05:30",
    "2026-03-01T08:00:00.123456+08:00", "2026-03-01T08:00:00", "2026-03-01T08:00Z",
    "２０２６-03-01T08:00:00Z", "٢٠٢٦-03-01T08:00:00Z", "2026-03-01", "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z", "2026-13-01T08:00:00Z",
    "2026-03-01T24:00:00Z", "2026/03/01T08:00:00Z", "",
]) | text
event_ids = st.sampled_from([
    "6F1C1C1E-6A51-4B4E-9A0B-0C0FFEE0C0DE", "6f1c1c1e6a514b4e9a0b0c0ffee0c0de",
    "{6f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de}", "urn:uuid:6f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de",
    "not-a-uuid", "６f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de", "",
]) | st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    obj: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(_SAMPLES)))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(
            ["field", "data", "drop", "drop_data", "event_id", "timestamp", "version", "type"]
        ))
        if action == "field":
            obj[draw(st.sampled_from(_FIELDS))] = draw(json_values)
        elif action == "data" and isinstance(obj.get("data"), dict):
            obj["data"][draw(st.sampled_from(_DATA_KEYS))] = draw(json_values)
        elif action == "drop" and obj:
            obj.pop(draw(st.sampled_from(sorted(obj))))
        elif action == "drop_data" and isinstance(obj.get("data"), dict) and obj["data"]:
            obj["data"].pop(draw(st.sampled_from(sorted(obj["data"]))))
        elif action == "event_id":
            obj["event_id"] = draw(event_ids)
        elif action == "timestamp":
            obj[draw(st.sampled_from(["occurred_at", "recorded_at"]))] = draw(timestamps)
        elif action == "version":
            obj["schema_version"] = draw(st.sampled_from([0, 1, 2, 3, "1", 1.0, True, None,
                                                          2**64, 2**70]))
        elif action == "type":
            obj["type"] = draw(st.sampled_from(_TYPES + ["nope", "", 1, None, ["x"]]))
    if draw(st.integers(0, 19)) == 0:  # now and then not an object at all
        return draw(json_values)
    return obj


def _text(value: Any, ensure_ascii: bool) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii)


def _describe(result: Decoded | Rejected) -> tuple[Any, ...]:
    """Everything a caller can see, repr'd where == would let 1 == 1.0 == True pass."""
    if isinstance(result, Rejected):
        return (type(result), result.reason, result.raw, result.event_id, result.household_id)
    event = result.event
    dumped = event.model_dump() if isinstance(event, BaseModel) else repr(event)
    return (type(result), type(event), repr(event), repr(dumped), repr(result.raw),
            type(result.raw), result.occurred_us, result.fingerprint, result.source)


def _outcome(call: Callable[[], Decoded | Rejected]) -> tuple[Any, ...]:
    """What a call gives, or what it raises (both paths must raise alike where one does:
    e.g. ``decode_object`` of a dict with a 65-bit integer and no raw bytes)."""
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return _describe(result)


def assert_same(fast: Callable[[], Decoded | Rejected],
                slow: Callable[[], Decoded | Rejected]) -> None:
    assert _outcome(fast) == _outcome(slow)


@SETTINGS
@given(mutated_events(), st.booleans(), st.booleans())
def test_decode_equals_the_slow_path(value: Any, ensure_ascii: bool, as_text: bool) -> None:
    line = _text(value, ensure_ascii)
    data: str | bytes = line if as_text else line.encode("utf-8", "surrogatepass")
    assert_same(lambda: codec.decode(data), lambda: reference.decode(data))


@SETTINGS
@given(mutated_events())
def test_decode_of_orjson_bytes_equals_the_slow_path(value: Any) -> None:
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, lone surrogates
        return
    assert_same(lambda: codec.decode(raw), lambda: reference.decode(raw))


@SETTINGS
@given(mutated_events())
def test_decode_object_equals_the_slow_path(value: Any) -> None:
    assert_same(lambda: codec.decode_object(copy.deepcopy(value)),
                lambda: reference.decode_object(copy.deepcopy(value)))


@SETTINGS
@given(mutated_events())
def test_decode_object_of_a_dict_subclass_equals_the_slow_path(value: Any) -> None:
    if not isinstance(value, dict):
        return
    assert_same(lambda: codec.decode_object(OrderedDict(value)),
                lambda: reference.decode_object(OrderedDict(value)))
    assert_same(lambda: codec.decode_object(OrderedDict(value), b"{}"),
                lambda: reference.decode_object(OrderedDict(value), b"{}"))


def _to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "data": {**raw["data"], "upcast": True}}  # raises on odd data, alike


def _drop_notes(raw: dict[str, Any]) -> dict[str, Any]:
    """Moves a value out of validation's sight: a huge integer in ``notes`` must still be
    refused as one, so the float check has to run before any upcaster."""
    data = raw.get("data")
    if isinstance(data, dict):
        raw = {**raw, "data": {k: v for k, v in data.items() if k != "notes"}}
    return raw


@SETTINGS
@given(mutated_events(), st.booleans())
def test_decode_with_upcasters_equals_the_slow_path(value: Any, with_step: bool) -> None:
    """A registry with steps (or a newer current version) takes the general path."""
    upcasters = UpcasterRegistry()
    if with_step:
        upcasters.register("screening.visit_recorded", 1, _drop_notes)
        upcasters.register("petition.received", 1, _to_v2)
    else:
        upcasters.current["followup.recorded"] = 2  # v1 is then older, with no upcaster
    line = _text(value, False).encode("utf-8", "surrogatepass")
    assert_same(lambda: codec.decode(line, upcasters), lambda: reference.decode(line, upcasters))


@pytest.mark.parametrize("with_step", [False, True])
@pytest.mark.parametrize("number", [2**64, 2**70, -(2**63) - 1, 2**64 - 1, 1.5, 10**400])
@pytest.mark.parametrize("where", ["notes", "indicators", "x", "data.x", "schema_version",
                                   "actor", "recorded_at", "data"])
def test_a_float_or_huge_integer_anywhere_is_judged_as_before(
    where: str, number: int | float, with_step: bool
) -> None:
    upcasters = UpcasterRegistry()
    if with_step:
        upcasters.register("screening.visit_recorded", 1, _drop_notes)
    obj = copy.deepcopy(_SAMPLES[0])
    assert obj["type"] == "screening.visit_recorded"
    if where in ("notes", "indicators"):
        obj["data"][where] = number if where == "notes" else ["threats", [number]]
    elif where == "data.x":
        obj["data"]["x"] = {"deep": [number]}
    else:
        obj[where] = number
    line = json.dumps(obj).encode()
    assert_same(lambda: codec.decode(line, upcasters), lambda: reference.decode(line, upcasters))


class _Registry(UpcasterRegistry):
    """A subclass may change ``upcast``: the fast path must call it like the slow one."""

    def upcast(self, raw: typing.Mapping[str, Any]) -> dict[str, Any]:
        return {**super().upcast(raw), "household_id": "hh-subclass"}


def test_a_registry_subclass_is_called_as_before() -> None:
    line = orjson.dumps(_SAMPLES[0])
    assert_same(lambda: codec.decode(line, _Registry()),
                lambda: reference.decode(line, _Registry()))
    fast = codec.decode(line, _Registry())
    assert isinstance(fast, Decoded) and fast.household_id == "hh-subclass"


def test_the_sample_stream_and_the_corpus_decode_as_before() -> None:
    from events.sample import StreamSpec, generate

    spec = StreamSpec(events=3_000, households=500, seed=11, invalid_fraction=0.05)
    for line in generate(spec):
        raw = line.text.encode()
        assert _describe(codec.decode(raw)) == _describe(reference.decode(raw))
        assert codec.decode(line.text) == reference.decode(line.text)
    for entry in CORPUS:
        if entry.expected == "nested more than":  # the reference crashed on it: a fix
            continue
        assert _describe(codec.decode(entry.raw)) == _describe(reference.decode(entry.raw))
        try:
            obj = orjson.loads(entry.raw)
        except orjson.JSONDecodeError:
            continue
        assert _describe(codec.decode_object(obj)) == _describe(reference.decode_object(obj))


@pytest.mark.parametrize("where", ["top", "extra", "data_extra", "indicators", "notes"])
@pytest.mark.parametrize("depth", [1, 10, 63, 64, 65, 66, 100, 200, 250, 260, 300, 350, 400,
                                   500, 800, 1030])
def test_deep_nesting_is_refused_never_raised(where: str, depth: int) -> None:
    """Up to ``MAX_NESTING`` levels below the event, the same outcome as before; deeper,
    a rejection with a reason where the reference composition crashed (or passed)."""
    nested = f"[{2**70}]" if depth % 2 else "[1.5]"  # text: json.dumps stops at ~1000
    for i in range(depth):
        nested = f'{{"k":{nested}}}' if i % 2 else f"[{nested}]"
    obj = copy.deepcopy(_SAMPLES[0])
    value: Any = "@nested@"
    if where != "top":
        value = obj
        if where == "extra":
            obj["x"] = "@nested@"
        elif where == "data_extra":
            obj["data"]["x"] = "@nested@"
        else:
            obj["data"][where] = "@nested@"
    line = json.dumps(value).replace('"@nested@"', nested).encode()
    got = _outcome(lambda: codec.decode(line))
    assert got[0] != "raised", got
    try:
        too_deep = codec.nested_deeper_than(orjson.loads(line), codec.MAX_NESTING + 1)
    except orjson.JSONDecodeError:  # past orjson's own 1024 levels: not valid JSON at all
        too_deep = False
    if too_deep:
        assert isinstance(codec.decode(line), Rejected)
        assert codec.decode(line).reason == codec.NESTED_TOO_DEEP  # type: ignore[union-attr]
    else:
        assert got == _outcome(lambda: reference.decode(line))


def test_fingerprint_is_unchanged() -> None:
    for event in _SAMPLES:
        assert codec.fingerprint_of(event) == reference.fingerprint_of(event)


# ------------------------------------------------------- the promise the fast path rests on


def _float_free(annotation: Any) -> bool:
    """Whether validating ``annotation`` (as the catalog spells it) can only accept input
    that holds no float: strings, string literals, strict bools, lists of those."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        inner, *meta = args
        if inner is bool:
            return any(getattr(m, "strict", False) for m in meta)
        return _float_free(inner)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return all(_float_free(a) for a in args)
    if origin is list:
        return _float_free(args[0])
    if origin in (typing.NotRequired, typing.Required):
        return _float_free(args[0])
    return annotation in (str, type(None))


def test_validated_fields_cannot_hold_a_float() -> None:
    """events.codec skips the float walk when every key is a validated one and the event
    decodes: that is exact only while no such field accepts a float (or a structure that
    may hold one). A new field that does must leave the walk in place (see
    ``_FLOAT_FREE_FIELDS``): extend ``_float_free`` only if validation still refuses floats.
    """
    for model in EVENT_MODELS:
        for name, info in model.model_fields.items():
            if name in ("occurred_at", "recorded_at"):
                # AwareDatetime takes numbers, but decode refuses non-strings before it.
                assert "AwareDatetime" in repr(info.annotation)
                continue
            if name == "schema_version":
                assert info.annotation is int and any(
                    getattr(m, "strict", False) for m in info.metadata
                )
                continue
            if name == "data":
                hints = typing.get_type_hints(info.annotation, include_extras=True)
                for key, hint in hints.items():
                    assert _float_free(hint), (model.__name__, key, hint)
                continue
            assert _float_free(info.annotation), (model.__name__, name, info.annotation)
            assert all(
                type(m).__module__.startswith(("annotated_types", "pydantic"))
                for m in info.metadata
            ), (model.__name__, name, info.metadata)  # constraints, no validators
    assert set(Envelope.model_fields) | {"data"} == codec._FLOAT_FREE_FIELDS
