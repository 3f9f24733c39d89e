"""Decoding raw input into validated events, or a rejection with a clear reason.

Every entry (file, SDK, HTTP, Kafka) goes through ``decode`` so that the same
bytes are accepted or refused the same way everywhere. A rejection is data,
never an exception: callers keep it (dead-letter) and go on.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import TypeAdapter, ValidationError

from events.catalog import EVENT_TYPES, AnyEvent, Envelope, EventFacts, TrustedEvent
from events.instants import format_instant, from_datetime, parse_instant
from events.orgunits import OrgUnitError, check_community
from events.upcasting import DEFAULT_UPCASTERS, UpcasterRegistry, UpcastError

_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(AnyEvent)
#: Oversize input is refused before parsing (a field app bug, or abuse).
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid event plus what the engine and the log need from it."""

    event: EventFacts
    raw: dict[str, Any]
    occurred_us: int
    fingerprint: str
    #: The bytes as received, when decoded from text (kept intact in dead letters).
    source: bytes | None = None

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def household_id(self) -> str:
        return self.event.household_id


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that failed validation; ``reason`` names the field and the rule."""

    reason: str
    raw: bytes
    event_id: str | None = None
    household_id: str | None = None


def fingerprint_of(raw: Mapping[str, Any]) -> str:
    """Content identity for duplicate detection: canonical JSON without ``recorded_at``.

    ``recorded_at`` is left out because a gateway stamps it; a re-delivery of
    the same field record is the same event even when stamped twice.
    """
    content = dict(raw)
    content.pop("recorded_at", None)
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def _explain(error: Mapping[str, Any], where: str) -> str:
    """Patterns are checked in Rust; say in words which rule the value broke."""
    if error["type"] == "string_pattern_mismatch":
        value = error.get("input")
        if where == "org_unit" and isinstance(value, str):
            try:
                check_community(value)
            except OrgUnitError as exc:
                return str(exc)
            return f"org unit {value!r} is not a community-level code"
        if where == "event_id":
            return "event_id must be a UUID"
    return str(error["msg"])


def format_validation_error(exc: ValidationError, event_type: str | None = None) -> str:
    """One line per problem: ``field.path: message`` (input values are never echoed)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=True):
        loc = [str(p) for p in error["loc"]]
        # Drop the discriminator tag pydantic puts first for tagged unions.
        if loc and loc[0] == event_type:
            loc = loc[1:]
        where = ".".join(loc) or "event"
        parts.append(f"{where}: {_explain(error, where)}")
    return "; ".join(parts)


def _identity(obj: Any) -> tuple[str | None, str | None]:
    if not isinstance(obj, dict):
        return None, None
    event_id = obj.get("event_id")
    household_id = obj.get("household_id")
    return (
        event_id if isinstance(event_id, str) else None,
        household_id if isinstance(household_id, str) else None,
    )


#: Instants the platform accepts; anything else is a field-app clock or typing error.
EARLIEST = parse_instant("2000-01-01T00:00:00Z")
LATEST = parse_instant("2100-01-01T00:00:00Z")


def _type_problem(event_type: Any) -> str:
    if event_type is None:
        return "type: missing"
    if not isinstance(event_type, str):
        return f"type: unknown event type {event_type!r} (must be a string naming a catalog type)"
    return f"type: unknown event type {event_type!r}"


def _is_iso_date_time(value: str) -> bool:
    """``YYYY-MM-DD[T ]HH:MM…`` by shape (pydantic then parses and checks the digits)."""
    return (
        len(value) >= 16
        and value[4] == "-"
        and value[7] == "-"
        and value[10] in "Tt "
        and value[13] == ":"
        and value[:4].isdigit()
    )


def _timestamp_problem(obj: Mapping[str, Any]) -> str | None:
    """Timestamps must be ISO 8601 date-times; pydantic would also take Unix numbers."""
    for name in ("occurred_at", "recorded_at"):
        value = obj.get(name)
        if value is not None and (not isinstance(value, str) or not _is_iso_date_time(value)):
            return f"{name}: must be an ISO 8601 date-time with a UTC offset"
    return None


def _canonical_event_id(obj: dict[str, Any]) -> dict[str, Any]:
    """One spelling per UUID (lower case, hyphenated): the same id re-sent in upper case
    or without hyphens is the same event, not a new one."""
    value = obj.get("event_id")
    if isinstance(value, str) and not (len(value) == 36 and value.islower()):
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            return obj  # validation names the problem
        if canonical != value:
            obj = {**obj, "event_id": canonical}
    return obj


def decode_object(
    obj: Any, raw: bytes | None = None, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    """Validate an already-parsed JSON value."""
    if raw is None:
        raw = orjson.dumps(obj, default=str)
    if len(raw) > MAX_EVENT_BYTES:  # the same limit as a JSONL line, whatever the entry
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
        reason = format_validation_error(exc, event_type)
        return Rejected(reason, raw, event_id, household_id)
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
    """Parse and validate one JSON text (a JSONL line)."""
    # surrogatepass: a lone surrogate in a Python str must become a rejection, not a crash
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


#: orjson turns integers beyond 64 bits into floats (silently changing them); the
#: stdlib parser checks exactly, and only runs when a float appears at all (the
#: catalog has no float fields, so that is rare). A regex over every line cost 8 µs.


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values() if not isinstance(v, str))
    if isinstance(value, list):
        return any(_contains_float(v) for v in value if not isinstance(v, str))
    return False

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _checked_int(text: str) -> int:
    value = int(text)
    if not _INT64_MIN <= value <= _UINT64_MAX:
        raise OverflowError(text)
    return value


def _has_unrepresentable_integer(raw: bytes) -> bool:
    try:
        json.loads(raw, parse_int=_checked_int)
    except OverflowError:
        return True
    except ValueError:
        return False
    return False


def _path_of_big_integer(value: Any, path: str = "") -> str | None:
    """Where the first integer outside 64 bits sits, for a reason that names the field."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return path or "event" if not _INT64_MIN <= value <= _UINT64_MAX else None
    items: Any = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in items:
        found = _path_of_big_integer(child, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def decode_trusted(
    raw: dict[str, Any], body: bytes, fingerprint: str,
    upcasters: UpcasterRegistry = DEFAULT_UPCASTERS,
) -> Decoded | Rejected:
    """Rebuild an event that this platform's own log already validated.

    The embedded log only ever stores input that passed ``decode``; validating
    it again on every read would cost more than the rules themselves. Events
    of an older schema version still take the full path (upcast + validate).
    """
    event_type = raw.get("type")
    if (
        not isinstance(event_type, str)
        or event_type not in EVENT_TYPES
        or raw.get("schema_version") != upcasters.current.get(event_type)
    ):
        return decode_object(raw, body, upcasters)
    event = TrustedEvent(
        raw["event_id"], event_type, raw["org_unit"], raw["household_id"], raw["data"]
    )
    return Decoded(event, raw, parse_instant(raw["occurred_at"]), fingerprint)
