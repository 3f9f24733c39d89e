"""Instants as integer microseconds since the Unix epoch (UTC).

The core never compares datetimes: integer microseconds make window and
deadline arithmetic exact (no float rounding, no timezone surprises) and make
per-household state cheap to serialize. Text form is ISO 8601 in UTC with a
``Z`` suffix, so every runtime writes byte-identical lifecycle records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from events.errors import JiaheError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_SECOND = 1_000_000
MICROS_PER_MINUTE = 60 * MICROS_PER_SECOND
MICROS_PER_HOUR = 60 * MICROS_PER_MINUTE
MICROS_PER_DAY = 24 * MICROS_PER_HOUR


class InstantError(JiaheError, ValueError):
    """A timestamp that cannot be placed on the time line (e.g. no offset)."""


_ONE_MICROSECOND = timedelta(microseconds=1)


def from_datetime(moment: datetime) -> int:
    """Microseconds since the epoch; refuses naive datetimes (they are ambiguous)."""
    if moment.tzinfo is None:
        raise InstantError("timestamp has no UTC offset")
    try:
        return (moment - EPOCH) // _ONE_MICROSECOND
    except TypeError as exc:  # a tzinfo whose utcoffset() is None: still naive
        raise InstantError("timestamp has no UTC offset") from exc


def to_datetime(micros: int) -> datetime:
    """The UTC datetime for an instant (exact: no float conversion)."""
    return EPOCH + timedelta(microseconds=micros)


#: Harbin's offset from UTC (China Standard Time, no daylight saving since 1991).
LOCAL_OFFSET_MICROS = 8 * MICROS_PER_HOUR


def local_date(micros: int) -> date:
    """The Harbin calendar day of an instant: users read days as local days."""
    return (to_datetime(micros) + timedelta(microseconds=LOCAL_OFFSET_MICROS)).date()


def format_instant(micros: int) -> str:
    """ISO 8601 in UTC, ``Z`` suffix, microseconds only when non-zero."""
    return to_datetime(micros).isoformat().replace("+00:00", "Z")


def parse_instant(text: str) -> int:
    """Parse an ISO 8601 timestamp that carries an offset (``Z`` accepted)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InstantError(f"not an ISO 8601 timestamp: {text!r}") from exc
    return from_datetime(moment)


def now_micros() -> int:
    """The wall clock, for live runtimes only — the core never calls this."""
    return from_datetime(datetime.now(UTC))
