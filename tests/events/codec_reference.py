"""The codec's slow path, kept as the specification the fast one must equal.

``events.codec.decode`` was made cheaper per event (the float walk skipped where
validation already proves there is no float, checks written out inline, the
fingerprint hasher copied, ``Decoded`` built from its slots). This module is the
straightforward composition of the same rules, as the codec read before that
change: every check a call, in the documented order, the float walk over every
parsed value first. ``test_codec_fast_path`` asserts that both give the very
same ``Decoded`` / ``Rejected`` (reasons byte for byte) on generated input.

The rules themselves (messages, patterns) are imported from ``events.codec``:
a deliberate change of a rule shows in both paths; only the composition is
duplicated here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, cast

import orjson
from pydantic import ValidationError

from events.catalog import EVENT_TYPES, EventFacts
from events.codec import (
    _ADAPTER,
    EARLIEST,
    LATEST,
    MAX_EVENT_BYTES,
    Decoded,
    Rejected,
    _canonical_event_id,
    _contains_float,
    _has_unrepresentable_integer,
    _identity,
    _path_of_big_integer,
    _timestamp_problem,
    _type_problem,
    format_validation_error,
)
from events.instants import format_instant, from_datetime
from events.upcasting import DEFAULT_UPCASTERS, UpcasterRegistry, UpcastError


def fingerprint_of(raw: Mapping[str, Any]) -> str:
    content = dict(raw)
    content.pop("recorded_at", None)
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def decode_object(
    obj: Any, raw: bytes | None = None, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    if raw is None:
        raw = orjson.dumps(obj, default=str)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"event: larger than {MAX_EVENT_BYTES} bytes", raw)
    if not isinstance(obj, dict):
        return Rejected("event: must be a JSON object", raw)
    event_id, household_id = _identity(obj)
    event_type = obj.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return Rejected(_type_problem(event_type), raw, event_id, household_id)
    problem = _timestamp_problem(obj)
    if problem:
        return Rejected(problem, raw, event_id, household_id)
    obj = _canonical_event_id(obj)
    try:
        current = upcasters.upcast(obj)
        event = _ADAPTER.validate_python(current)
    except UpcastError as exc:
        return Rejected(f"schema_version: {exc}", raw, event_id, household_id)
    except ValidationError as exc:
        return Rejected(format_validation_error(exc, event_type), raw, event_id, household_id)
    occurred_us = from_datetime(event.occurred_at)
    if not EARLIEST <= occurred_us < LATEST:
        return Rejected(
            f"occurred_at: outside {format_instant(EARLIEST)} … {format_instant(LATEST)}",
            raw, event_id, household_id,
        )
    return Decoded(
        cast(EventFacts, event), current, occurred_us, fingerprint_of(current), source=raw
    )


def decode(
    line: bytes | str, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"event: larger than {MAX_EVENT_BYTES} bytes", raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"event: not valid JSON ({exc})", raw)
    if _contains_float(obj) and _has_unrepresentable_integer(raw):
        where = _path_of_big_integer(json.loads(raw)) or "event"
        return Rejected(
            f"{where}: an integer outside the 64-bit range cannot be kept exactly", raw,
            *_identity(obj),
        )
    return decode_object(obj, raw, upcasters)
