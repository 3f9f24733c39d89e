"""Per-household rule state, small enough to live in a Faust table.

Everything the rules need about one household: which event ids were seen (for
duplicates), timestamps of windowed signals, 'ever seen' flags, the open
warnings in raise order, the ids of closed ones, and pending deadlines. It
serializes to compact JSON (``to_bytes``/``from_bytes``) so the embedded log
(SQLite) and the Kafka runtime (a table with a changelog) store the same bytes.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import orjson

ESCALATION = "esc"
RULE_DEADLINE = "rule"


@dataclass(slots=True)
class OpenWarning:
    """A warning not yet resolved; ``handling_level`` is 0..3 (community..city)."""

    warning_id: str
    rule_id: str
    level: str
    org_unit: str
    handling_level: int
    acknowledged: bool
    raised_at: int

    def to_list(self) -> list[Any]:
        return [
            self.warning_id,
            self.rule_id,
            self.level,
            self.org_unit,
            self.handling_level,
            self.acknowledged,
            self.raised_at,
        ]

    @classmethod
    def from_list(cls, row: list[Any]) -> OpenWarning:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


#: (due_us, creation_seq, kind, payload): heap order = due time, ties by creation.
Deadline = tuple[int, int, str, tuple[Any, ...]]


@dataclass(slots=True)
class HouseholdState:
    seen: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[int]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    open: dict[str, OpenWarning] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    deadlines: list[Deadline] = field(default_factory=list)
    seq: int = 0

    def schedule(self, due: int, kind: str, payload: tuple[Any, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.deadlines, (due, self.seq, kind, payload))

    @property
    def next_due(self) -> int | None:
        return self.deadlines[0][0] if self.deadlines else None

    def open_of_rule(self, rule_id: str) -> OpenWarning | None:
        for warning in self.open.values():
            if warning.rule_id == rule_id:
                return warning
        return None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "s": self.seen,
                "t": self.series,
                "f": sorted(self.flags),
                "o": [w.to_list() for w in self.open.values()],
                "c": sorted(self.closed),
                "d": [
                    [due, seq, kind, list(payload)] for due, seq, kind, payload in self.deadlines
                ],
                "q": self.seq,
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> HouseholdState:
        doc = orjson.loads(blob)
        open_warnings = (OpenWarning.from_list(row) for row in doc["o"])
        return cls(
            seen=doc["s"],
            series=doc["t"],
            flags=set(doc["f"]),
            open={w.warning_id: w for w in open_warnings},
            closed=set(doc["c"]),
            # The stored list is already a valid heap (saved in heap order).
            deadlines=[(d[0], d[1], d[2], tuple(d[3])) for d in doc["d"]],
            seq=doc["q"],
        )
