"""Decoding events whose personal fields arrive already sealed (the Kafka events topic).

On Kafka the publishers seal personal fields before producing (``privacy.keystore``),
so the worker reads ``"notes": {"enc": "aesgcm", ...}`` where the catalog says text.
The worker never holds keys and the rules never read personal fields, so it validates
the event with each well-formed envelope standing in as text, and keeps the envelope
(not the text) in ``Decoded.raw``: the lifecycle output is the same as for the clear
event, and the sealed bytes are what reach dead letters.

Only the catalog's personal fields may be sealed, and only with an envelope of the
exact shape a publisher writes; anything else is rejected with a reason, like every
other bad input. An envelope cannot be checked without its key: a forged one is kept
and later reads as ``[unreadable]`` to whoever holds the key store.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from events.catalog import PERSONAL_FIELDS
from events.codec import MAX_EVENT_BYTES, Decoded, Rejected, decode, decode_object, fingerprint_of
from privacy.crypto import ALGORITHM

#: Stands in for a sealed field during validation (the rules never read it).
SEALED_TEXT = "[sealed]"
_ENVELOPE_KEYS = frozenset({"enc", "kid", "nonce", "ct"})
_MAX_KID = 64


def _envelope_problem(value: Any) -> str | None:
    """Why ``value`` is not an envelope as a publisher writes it (None when it is)."""
    if not isinstance(value, dict) or set(value) != _ENVELOPE_KEYS or value["enc"] != ALGORITHM:
        return "expected text or a sealed envelope {enc, kid, nonce, ct}"
    kid, nonce, ct = value["kid"], value["nonce"], value["ct"]
    if not (isinstance(kid, str) and 0 < len(kid) <= _MAX_KID):
        return "sealed envelope: kid must be a short string"
    try:
        if not isinstance(nonce, str) or len(base64.b64decode(nonce, validate=True)) != 12:
            return "sealed envelope: nonce must be 12 bytes, base64"
        if not isinstance(ct, str) or len(base64.b64decode(ct, validate=True)) < 16:
            return "sealed envelope: ct must be base64 with a 16-byte tag"
    except (ValueError, binascii.Error):
        return "sealed envelope: nonce and ct must be base64"
    return None


def decode_sealed(value: bytes) -> Decoded | Rejected:
    """``events.codec.decode``, accepting sealed envelopes in the personal fields only."""
    if b'"enc"' not in value or len(value) > MAX_EVENT_BYTES:
        return decode(value)  # the common, clear case: exactly the shared codec
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return decode(value)
    data = obj.get("data") if isinstance(obj, dict) else None
    names = PERSONAL_FIELDS.get(str(obj.get("type"))) if isinstance(obj, dict) else None
    if not isinstance(data, dict) or not names:
        return decode(value)
    sealed = {n: data[n] for n in names if n in data and isinstance(data[n], dict)}
    if not sealed:
        return decode(value)
    identity = (obj.get("event_id") if isinstance(obj.get("event_id"), str) else None,
                obj.get("household_id") if isinstance(obj.get("household_id"), str) else None)
    for name, envelope in sealed.items():
        problem = _envelope_problem(envelope)
        if problem is not None:
            return Rejected(f"data.{name}: {problem}", value, *identity)
    stand_in = {**obj, "data": {**data, **dict.fromkeys(sealed, SEALED_TEXT)}}
    checked = decode_object(stand_in, value)
    if isinstance(checked, Rejected):
        return checked
    current = dict(checked.raw)
    current_data = dict(current["data"])
    for name, envelope in sealed.items():
        if current_data.get(name) == SEALED_TEXT:
            current_data[name] = envelope
    current["data"] = current_data
    return Decoded(checked.event, current, checked.occurred_us, fingerprint_of(current),
                   source=value)
