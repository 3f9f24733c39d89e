"""Decoding raw input into validated events, or a rejection with a clear reason.

Every entry (file, SDK, HTTP, Kafka) goes through ``decode`` so that the same
bytes are accepted or refused the same way everywhere. A rejection is data,
never an exception: callers keep it (dead-letter) and go on.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from events.catalog import EVENT_TYPES, AnyEvent, Envelope, EventFacts, TrustedEvent
from events.instants import (
    _ONE_MICROSECOND,
    EPOCH,
    format_instant,
    from_datetime,
    parse_instant,
)
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
    digest = _BLAKE2B_8.copy()  # the same hash as blake2b(canonical, digest_size=8), cheaper
    digest.update(orjson.dumps(content, option=_SORT_KEYS))
    return digest.hexdigest()


#: Copying a fresh hasher costs less than building one (its keyword arguments are parsed).
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)
_SORT_KEYS = orjson.OPT_SORT_KEYS


#: Fields that hold a community code (their pattern is ``catalog.COMMUNITY_PATTERN``).
_COMMUNITY_FIELDS = frozenset({"org_unit", "data.to_org_unit"})


def _explain(error: Mapping[str, Any], where: str) -> str:
    """Patterns are checked in Rust; say in words which rule the value broke."""
    if error["type"] == "string_pattern_mismatch":
        value = error.get("input")
        if where in _COMMUNITY_FIELDS and isinstance(value, str):
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


_TIMESTAMP_PROBLEM = "{}: must be an ISO 8601 date-time with a UTC offset"
_TIMESTAMP_FIELDS = ("occurred_at", "recorded_at")  # checked in this order


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


#: ``_is_iso_date_time`` for ASCII digits, in one C call: a match implies that test, so only
#: a string that does not match needs it (Unicode digits also pass ``str.isdigit``).
_ASCII_DATE_TIME = re.compile(r"[0-9]{4}-..-..[Tt ]..:..", re.DOTALL).match


def _timestamp_problem(obj: Mapping[str, Any]) -> str | None:
    """Timestamps must be ISO 8601 date-times; pydantic would also take Unix numbers."""
    for name in _TIMESTAMP_FIELDS:
        value = obj.get(name)
        if value is not None and (
            not isinstance(value, str)
            or (_ASCII_DATE_TIME(value) is None and not _is_iso_date_time(value))
        ):
            return _TIMESTAMP_PROBLEM.format(name)
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
    if nested_deeper_than(obj, MAX_NESTING + 1):  # + 1: decode counts below the event
        kept = raw if raw is not None else repr(obj)[:1024].encode()
        return Rejected(NESTED_TOO_DEEP, kept, *_identity(obj))
    if raw is None:
        raw = orjson.dumps(obj, default=str)
    if len(raw) > MAX_EVENT_BYTES:  # the same limit as a JSONL line, whatever the entry
        return Rejected(f"event: larger than {MAX_EVENT_BYTES} bytes", raw)
    if not isinstance(obj, dict):
        return Rejected("event: must be a JSON object", raw)
    return _decode_dict(obj, raw, upcasters, obj.get("type"))


#: Every event passes through here: the steps of ``_identity``, ``_canonical_event_id``
#: and ``UpcasterRegistry.upcast`` (its no-op case) are written out inline, with the very
#: same tests in the same order (a call costs as much as a test).
_VALIDATE = _ADAPTER.validator.validate_python  # what TypeAdapter.validate_python calls


def _decode_dict(
    obj: dict[str, Any], raw: bytes, upcasters: UpcasterRegistry, event_type: Any
) -> Decoded | Rejected:
    """``decode_object`` once ``obj`` is known to be a dict and ``raw`` not oversize;
    ``event_type`` is ``obj.get("type")``. A rejection names the event by
    ``_identity(obj)`` of the dict as given."""
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return Rejected(_type_problem(event_type), raw, *_identity(obj))
    return _decode_typed(obj, raw, upcasters, event_type)


def _decode_typed(
    obj: dict[str, Any], raw: bytes, upcasters: UpcasterRegistry, event_type: str
) -> Decoded | Rejected:
    """``_decode_dict`` once ``event_type`` is known to be a catalog type."""
    get = obj.get
    problem = _timestamp_problem(obj)
    if problem is not None:
        return Rejected(problem, raw, *_identity(obj))
    current = obj
    value = get("event_id")  # _canonical_event_id's test, before calling it
    if isinstance(value, str) and not (len(value) == 36 and value.islower()):
        current = _canonical_event_id(obj)
    try:
        version = get("schema_version")
        if not (
            type(version) is int
            and type(upcasters) is UpcasterRegistry
            and version == upcasters.current.get(event_type)
        ):  # else UpcasterRegistry.upcast's no-op case: it returns its argument
            current = upcasters.upcast(current)
        event = _VALIDATE(current)
    except UpcastError as exc:
        return Rejected(f"schema_version: {exc}", raw, *_identity(obj))
    except ValidationError as exc:
        reason = format_validation_error(exc, event_type)
        return Rejected(reason, raw, *_identity(obj))
    moment = event.occurred_at
    try:  # from_datetime, inline for the aware datetimes AwareDatetime yields
        occurred_us = (moment - EPOCH) // _ONE_MICROSECOND
    except TypeError:
        occurred_us = None
    if occurred_us is None:
        occurred_us = from_datetime(moment)  # raises InstantError, as it always did
    if not EARLIEST <= occurred_us < LATEST:
        return Rejected(
            f"occurred_at: outside {format_instant(EARLIEST)} … {format_instant(LATEST)}",
            raw, *_identity(obj),
        )
    # fingerprint_of(current) and Decoded(...), written out: the same operations, without
    # two calls and the frozen dataclass's __init__ (it costs twice these slot stores).
    content = dict(current)
    content.pop("recorded_at", None)
    digest = _BLAKE2B_8.copy()
    digest.update(orjson.dumps(content, option=_SORT_KEYS))
    decoded = _new(Decoded)
    _set_event(decoded, event)
    _set_raw(decoded, current)
    _set_occurred(decoded, occurred_us)
    _set_fingerprint(decoded, digest.hexdigest())
    _set_source(decoded, raw)
    return decoded


def _slot_setter(name: str) -> Callable[[Decoded, Any], None]:
    """The slot's own descriptor: it stores past the frozen ``__setattr__``, as
    ``__init__`` does."""
    return cast(Callable[[Decoded, Any], None], vars(Decoded)[name].__set__)


#: Decoded has no __post_init__: setting its slots is all its __init__ does.
_new = object.__new__
_set_event = _slot_setter("event")
_set_raw = _slot_setter("raw")
_set_occurred = _slot_setter("occurred_us")
_set_fingerprint = _slot_setter("fingerprint")
_set_source = _slot_setter("source")
if [f.name for f in fields(Decoded)] != ["event", "raw", "occurred_us", "fingerprint", "source"]:
    raise TypeError("Decoded changed: update the slot stores in _decode_typed")


def decode(
    line: bytes | str, upcasters: UpcasterRegistry = DEFAULT_UPCASTERS
) -> Decoded | Rejected:
    """Parse and validate one JSON text (a JSONL line)."""
    # surrogatepass: a lone surrogate in a Python str must become a rejection, not a crash
    if type(line) is bytes:
        raw = line  # what bytes(line) returns for a bytes object
    else:
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line)
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"event: larger than {MAX_EVENT_BYTES} bytes", raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"event: not valid JSON ({exc})", raw)
    result: Decoded | Rejected | None = None
    if type(obj) is dict:
        # The float check below comes first in meaning, not necessarily in time: when
        # every key is one the models validate, a Decoded result proves there is no float
        # at all (see _FLOAT_FREE_FIELDS), so the walk is only needed otherwise.
        event_type = obj.get("type")
        data = obj.get("data")
        if (
            type(event_type) is str
            and type(data) is dict
            and _FLOAT_FREE_FIELDS.issuperset(obj)
            and (declared := _FLOAT_FREE_DATA.get(event_type)) is not None
            and declared.issuperset(data)
            and type(upcasters) is UpcasterRegistry
            and not upcasters.steps  # no upcaster code runs before the float check
        ):
            result = _decode_typed(obj, raw, upcasters, event_type)
            if type(result) is Decoded:
                return result
    try:
        has_float = _float_in(obj)
    except _TooDeep:  # no event nests so deep; past ~250 levels the fingerprint would crash
        return Rejected(NESTED_TOO_DEEP, raw, *_identity(obj))
    if has_float and _has_unrepresentable_integer(raw):
        where = _path_of_big_integer(json.loads(raw)) or "event"
        return Rejected(
            f"{where}: an integer outside the 64-bit range cannot be kept exactly", raw,
            *_identity(obj),
        )
    if result is not None:
        return result  # the rejection decode_object gives (it is deterministic)
    if type(obj) is dict:  # decode_object's own checks hold already (size, a dict)
        return _decode_dict(obj, raw, upcasters, obj.get("type"))
    return decode_object(obj, raw, upcasters)


def _unaliased(fields: Mapping[str, FieldInfo]) -> frozenset[str]:
    return frozenset(
        name for name, info in fields.items()
        if info.alias is None and info.validation_alias is None
    )


#: Keys whose values a successful validation proves free of floats: every model field
#: (strings, literals, a strict int and a strict bool, lists of literals; the timestamps
#: are checked to be strings before validation) and, per type, every ``data`` key. A
#: float that orjson made of a huge integer can then only sit under another key.
#: tests/events/test_codec_fast_path.py keeps the catalog to that promise.
_FLOAT_FREE_FIELDS = frozenset.intersection(
    *(_unaliased(model.model_fields) for model in EVENT_TYPES.values())
)
_FLOAT_FREE_DATA: dict[str, frozenset[str]] = {
    event_type: frozenset(data.__required_keys__ | data.__optional_keys__)
    for event_type, model in EVENT_TYPES.items()
    if (data := model.model_fields["data"].annotation) is not None
}


#: Every top-level key some catalog model declares (aliases included).
_ENVELOPE_FIELDS = frozenset(
    name
    for model in EVENT_TYPES.values()
    for field_name, info in model.model_fields.items()
    for name in (field_name, info.alias)
    if isinstance(name, str)
)


def unknown_fields(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keys of a validated event that the catalog does not declare: top-level ones,
    then those of ``data``.

    The tolerant reader accepts such fields and keeps them in ``Decoded.raw``, so a
    field app may send anything there (a witness's name, a phone number); the key ring
    seals them like the personal fields, since nothing says they are not personal.
    """
    data = raw.get("data")
    event_type = raw.get("type")
    declared = _FLOAT_FREE_DATA.get(event_type) if isinstance(event_type, str) else None
    if declared is None or not isinstance(data, Mapping):
        declared, data = _NOTHING, _NOTHING
    # The common case, a catalog event and nothing more, in two C-level set tests.
    if _ENVELOPE_FIELDS.issuperset(raw) and declared.issuperset(data):
        return _NO_NAMES
    top = tuple(name for name in raw if name not in _ENVELOPE_FIELDS)
    return top, tuple(name for name in data if name not in declared)


_NOTHING: frozenset[str] = frozenset()


_NO_NAMES: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


#: orjson turns integers beyond 64 bits into floats (silently changing them); the
#: stdlib parser checks exactly, and only runs when a float appears at all (the
#: catalog has no float fields, so that is rare). A regex over every line cost 8 µs;
#: walking every parsed event with ``_contains_float`` was a quarter of ``decode``, so
#: ``decode`` skips the walk where validation proves there is no float and otherwise
#: walks with ``_float_in``. ``_contains_float`` stays the definition (api/ uses it too).


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values() if not isinstance(v, str))
    if isinstance(value, list):
        return any(_contains_float(v) for v in value if not isinstance(v, str))
    return False


def _float_in(value: Any) -> bool:
    """``_contains_float`` for what ``orjson.loads`` returns, 2× cheaper: one frame per level
    and no generator, ``type() is`` tests (orjson builds exactly dict, list, str, int, float,
    bool and None; any other type still gets the generic test). Raises ``_TooDeep`` past
    ``_FAST_DEPTH`` levels below the event: ``decode`` then refuses it (``NESTED_TOO_DEEP``)."""
    kind = type(value)
    if kind is dict:
        return _float_within(value.values(), 0)
    if kind is list:
        return _float_within(value, 0)
    return _contains_float(value)


class _TooDeep(Exception):
    """Deeper than ``MAX_NESTING``: the event is refused (``NESTED_TOO_DEEP``)."""


#: Objects and arrays may nest this deep inside an event, no deeper. The catalog's fields
#: nest two or three levels; the limit exists because deeper input crashed the codec
#: (orjson's serialiser stops at 254 levels, Python's recursion near 400) — one such
#: message on a topic would have stopped a worker instead of reaching the DLQ.
MAX_NESTING = 64
NESTED_TOO_DEEP = f"event: objects and arrays nested more than {MAX_NESTING} levels deep"
_FAST_DEPTH = MAX_NESTING


def nested_deeper_than(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether dicts and lists nest more than ``limit`` levels below ``value`` (a container
    itself is level 1). Iterative, so no input can reach the recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def _float_within(values: Iterable[Any], depth: int) -> bool:
    # The same depth-first order as ``_contains_float``, stopping at the same first float.
    for value in values:
        kind = type(value)
        if kind is str:
            continue
        if kind is float:
            return True
        if kind is dict or kind is list:
            if depth >= _FAST_DEPTH:
                raise _TooDeep
            if _float_within(value.values() if kind is dict else value, depth + 1):
                return True
        elif kind is not int and kind is not bool and value is not None and (
            _contains_float(value)
        ):
            return True
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
