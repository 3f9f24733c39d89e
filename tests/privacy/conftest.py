"""A small story whose every personal field carries a unique, searchable text."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.instants import format_instant
from tests.helpers import DAY, HOUR, T0, envelope, gap, line, petition, resolve, wid

#: Every personal text holds this marker (ASCII, so it is found in any encoding).
MARK = "PRIVATE-MARK"
DISTRICTS = ("230102001001", "230103002003", "230104001002")
HOUSEHOLDS = [f"hh-{n}" for n in range(6)]
AS_OF = format_instant(T0 + 30 * DAY)


def personal(n: int, what: str) -> str:
    return f"{MARK}-{what}-{n:02d} 王某某 13800138{n:03d} 道里区红旗街5号"


def visit_with_notes(hh: str, at: int, indicators: list[str], notes: str, org: str) -> str:
    data = {"indicators": indicators, "notes": notes}
    return line(envelope("screening.visit_recorded", hh, at, data, org, f"visit-{hh}-{at}"))


def story() -> list[str]:
    """Per household: a visit with injury (a red warning) and notes, a resolution with a
    note, a guardianship gap with a reason (a yellow warning after 7 days), petitions."""
    lines = []
    for n, hh in enumerate(HOUSEHOLDS):
        org = DISTRICTS[n % len(DISTRICTS)]
        at = T0 + n * HOUR
        first = visit_with_notes(hh, at, ["injury_observed"], personal(n, "visit"), org)
        lines.append(first)
        lines.append(visit_with_notes(hh, at + DAY, ["marital_conflict"],
                                      personal(n, "visit2"), org))
        lines.append(resolve(hh, wid("violence-injury", hh, first), at + 2 * DAY,
                             note=personal(n, "note"), org=org, eid=f"resolve-{hh}"))
        lines.append(gap(hh, at + 3 * DAY, reason=personal(n, "reason"), org=org,
                         eid=f"gap-{hh}"))
        lines.append(petition(hh, at + 4 * DAY, category="other", org=org))
    return lines


def personal_texts() -> list[str]:
    out = []
    for n in range(len(HOUSEHOLDS)):
        out += [personal(n, w) for w in ("visit", "visit2", "note", "reason")]
    return out


def file_bytes(home: Path, names: tuple[str, ...] = ("log.sqlite3",)) -> bytes:
    """The raw bytes of the log: the database, its WAL and shared-memory files."""
    out = b""
    for name in names:
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = home / (name + suffix)
            if path.exists():
                out += path.read_bytes()
    return out


@pytest.fixture
def lines() -> list[str]:
    return story()
