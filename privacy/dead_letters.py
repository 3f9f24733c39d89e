"""Sealing of dead letters: the household's key when one is named, else the quarantine key.

A dead letter keeps refused input as it came, and refused input is exactly what no
validation vouches for: a note in the wrong field, a name where an id belongs, a
whole record that failed to parse. So no dead letter's body is stored clear:

* a dead letter that names a household (an id of 1 to 200 characters, as the
  catalog's ids are) is sealed with that household's data key
  (``Keyring.seal_blob``): ``jiahe erase`` shreds it with the rest of the household;
* any other is sealed with the *quarantine key* of the day, a data key kept like a
  household's under :func:`quarantine_id` (longer than any valid household id, so no
  event can ever name it), and purged after a retention period (:func:`retention_days`,
  30 days unless ``JIAHE_DLQ_RETENTION_DAYS`` says otherwise): the embedded log
  replaces the body by ``[purged]``; the Kafka key store shreds the keys of expired
  days (``privacy.keystore``), since a record of ``jiahe.dlq`` cannot be deleted.

Listings show the reason and the metadata; the body is unsealed only by whoever holds
the key store and its master key (the operator), with :func:`open_dead_letter`.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from events.errors import JiaheError
from events.instants import now_micros
from privacy.crypto import ERASED, Keyring, is_envelope

#: Longest id a dead letter is sealed under as a household (the catalog's limit).
MAX_HOUSEHOLD_ID = 200
QUARANTINE_PREFIX = "jiahe:quarantine:"
_DAY_US = 86_400_000_000
#: The ``purpose`` bound into a dead letter's associated data.
PURPOSE = "dead_letter"
#: What a quarantined body becomes once its retention period is over.
PURGED = b"[purged]"
RETENTION_ENV = "JIAHE_DLQ_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0


class RetentionError(JiaheError, ValueError):
    """``JIAHE_DLQ_RETENTION_DAYS`` is not a positive number of days."""


def names_household(household_id: str | None) -> bool:
    """Whether a dead letter's household id can be one (and so be sealed under its key)."""
    return household_id is not None and 0 < len(household_id) <= MAX_HOUSEHOLD_ID


def quarantine_id(day: int) -> str:
    """The quarantine key of one UTC day (days since 1970): padded to 201 characters,
    so never a household id. One key a day lets a store whose records cannot be deleted
    one by one (a Kafka topic) purge them by shredding the keys of expired days."""
    return f"{QUARANTINE_PREFIX}{day}".ljust(MAX_HOUSEHOLD_ID + 1, ".")


def quarantine_day(key_id: str) -> int | None:
    """The day of a quarantine key id, None for any other id."""
    if len(key_id) <= MAX_HOUSEHOLD_ID or not key_id.startswith(QUARANTINE_PREFIX):
        return None
    day = key_id[len(QUARANTINE_PREFIX):].rstrip(".")
    return int(day) if day.isdigit() else None


def expired_quarantine_ids(key_ids: list[str], now_us: int, days: float) -> list[str]:
    """The quarantine keys among ``key_ids`` whose whole day is older than ``days``."""
    cutoff = (now_us - int(days * _DAY_US)) // _DAY_US
    return [k for k in key_ids if (day := quarantine_day(k)) is not None and day < cutoff]


def sealing_id(household_id: str | None, now_us: int | None = None) -> str:
    """The key a dead letter is sealed under: its household's, or today's quarantine key."""
    if household_id is not None and names_household(household_id):
        return household_id
    return quarantine_id((now_micros() if now_us is None else now_us) // _DAY_US)


def seal_dead_letter(keyring: Keyring, household_id: str | None, body: bytes) -> bytes:
    """The stored form of a dead letter's input: a JSON envelope (``Keyring.seal_blob``),
    or ``[erased]`` when the household it names was erased already."""
    envelope = keyring.seal_blob(sealing_id(household_id), body, PURPOSE)
    return ERASED.encode() if envelope is None else orjson.dumps(envelope)


def stored_object(stored: bytes) -> dict[str, Any] | None:
    """The JSON object a stored body is, or None (clear input, a mark, other JSON)."""
    if not stored.startswith(b"{"):
        return None
    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def sealed_envelope(stored: bytes) -> dict[str, Any] | None:
    """The envelope a stored body holds, or None (clear input of an older home, a mark)."""
    value = stored_object(stored)
    if value is not None and is_envelope(value) and value.get("purpose") == PURPOSE:
        return dict(value)
    return None


def open_dead_letter(keyring: Keyring, stored: bytes) -> bytes | None:
    """The input a dead letter holds; None once its household was erased.

    A body that is no envelope (``[erased]``, ``[purged]``, or clear input kept by an
    older version) is returned as it is. Raises ``KeyringError`` for a tampered one.
    """
    envelope = sealed_envelope(stored)
    if envelope is None:
        return stored
    return keyring.open_blob(envelope)


def retention_days(environ: dict[str, str] | None = None) -> float:
    """How long quarantined dead letters keep their body (``JIAHE_DLQ_RETENTION_DAYS``)."""
    text = (os.environ if environ is None else environ).get(RETENTION_ENV, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(text)
    except ValueError as exc:
        raise RetentionError(f"{RETENTION_ENV}={text!r} is not a number of days") from exc
    if not days > 0:
        raise RetentionError(f"{RETENTION_ENV} must be a positive number of days, not {text}")
    return days
