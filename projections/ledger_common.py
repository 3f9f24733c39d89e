"""Definitions both ledger implementations share: vocabularies, units, presentation.

Only naming and formatting live here (level orders, how an instant or a
duration is printed, how rows are ordered). The *semantics* — which records
count, which instant wins — are written twice on purpose: once as SQL
(``ledger_sql``) and once in plain Python (``reference``), and the contract
tests compare them.
"""

from __future__ import annotations

from typing import Any

from events.instants import MICROS_PER_DAY, MICROS_PER_MINUTE, format_instant, parse_instant

RAISED = "warning.raised"
ESCALATED = "warning.escalated"
ACKNOWLEDGED = "warning.acknowledged"
RESOLVED = "warning.resolved"

VISIT = "screening.visit_recorded"
PETITION = "petition.received"
FOLLOWUP = "followup.recorded"
GAP = "child.guardianship_gap_recorded"
RESTORED = "child.guardianship_restored"
REGISTERED = "household.registered"
TRANSFERRED = "household.transferred"

#: handling levels bottom-up (index = rank).
HANDLING_LEVELS: tuple[str, ...] = ("community", "street", "district", "city")
#: warning levels by severity, lowest first (index + 1 = rank).
WARNING_LEVELS: tuple[str, ...] = ("yellow", "orange", "red")

PETITION_WINDOWS_DAYS: tuple[int, ...] = (30, 90)
GUARDIANSHIP_FOLLOWUP_DAYS = 7
GUARDIANSHIP_FOLLOWUP_MICROS = GUARDIANSHIP_FOLLOWUP_DAYS * MICROS_PER_DAY

#: The flag that makes a registered household a key household (重点户).
KEY_FLAG = "key_household"
#: Screening cadence C of ``screening-overdue``: key households, everyone else.
KEY_CADENCE_DAYS = 30
CADENCE_DAYS = 180
KEY_CADENCE_MICROS = KEY_CADENCE_DAYS * MICROS_PER_DAY
CADENCE_MICROS = CADENCE_DAYS * MICROS_PER_DAY


def cadence_micros(flags: list[str] | tuple[str, ...]) -> int:
    """C for a registered household with these flags."""
    return KEY_CADENCE_MICROS if KEY_FLAG in flags else CADENCE_MICROS


def coverage_ratio(covered: int, registered: int) -> float:
    """covered / registered rounded to 4 decimals, computed from the two counts on
    both sides (SQL and Python floats would round a tie differently)."""
    return round(covered / registered, 4) if registered else 0.0


def iso(micros: int | None) -> str | None:
    return None if micros is None else format_instant(micros)


def minutes_between(start: int, end: int | None) -> float | None:
    """Minutes from start to end, rounded to 2 decimals; None while end is unknown."""
    return None if end is None else round((end - start) / MICROS_PER_MINUTE, 2)


def warning_status(acknowledged: int | None, resolved: int | None) -> str:
    if resolved is not None:
        return "resolved"
    return "acknowledged" if acknowledged is not None else "open"


def district_code(district: str | None) -> str | None:
    """Normalise a ``--district`` argument: 6-digit prefix or 12-digit district code."""
    if district is None:
        return None
    if len(district) == 6 and district.isdigit():
        return district + "000000"
    if len(district) == 12 and district.isdigit() and district[6:] == "000000":
        return district
    raise ValueError(f"not a district code: {district!r}")


def warning_sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Raise instant (parsed: ISO text does not sort by time), then id."""
    return (parse_instant(row["raised_at"]), row["warning_id"])


def household_sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["household_id"],)


def coverage_sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["community"],)


def guardianship_sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["household_id"], row["child_ref"])
