"""Decoding raw input into validated events, or a rejection with a clear reason.

Every entry (file, SDK, HTTP, Kafka) goes through ``decode`` so that the same
bytes are accepted or refused the same way everywhere. A rejection is data,
never an exception: callers keep it (dead-letter) and go on.
"""

from __future__ import annotations

import hashlib
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


def _timestamp_problem(obj: Mapping[str, Any]) -> str | None:
    """Timestamps must be ISO 8601 text; pydantic would also take Unix numbers."""
    for name in ("occurred_at", "recorded_at"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name}: must be an ISO 8601 string with a UTC offset"
    return None


def decode_object(
    obj: Any, raw: bytes | None = None, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    """Validate an already-parsed JSON value."""
    if raw is None:
        raw = orjson.dumps(obj, default=str)
    if not isinstance(obj, dict):
        return Rejected("event: must be a JSON object", raw)
    event_id, household_id = _identity(obj)
    event_type = obj.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return Rejected(_type_problem(event_type), raw, event_id, household_id)
    problem = _timestamp_problem(obj)
    if problem:
        return Rejected(problem, raw, event_id, household_id)
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
    return Decoded(cast(EventFacts, event), current, occurred_us, fingerprint_of(current))


def decode(
    line: bytes | str, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    """Parse and validate one JSON text (a JSONL line)."""
    raw = line.encode() if isinstance(line, str) else bytes(line)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"event: larger than {MAX_EVENT_BYTES} bytes", raw[:1024])
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"event: not valid JSON ({exc})", raw)
    return decode_object(obj, raw, upcasters)


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
