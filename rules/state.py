"""Per-household rule state, small enough to live in a Faust table.

Everything the rules need about one household: which event ids were seen (for
duplicates, 24 bytes an id: ``rules.seen``; none behind a log that refuses repeated
ids, ``Engine(unique_ids=True)``), timestamps of windowed signals, 'ever
seen' flags, the open warnings in raise order, the ids of closed ones, pending
deadlines, and where the household belongs (its owner, whether it is registered and
with which flags, and the state of each cadence rule), what a reopening needs of each
resolved warning, the household's referrals and its standing consent. It
serializes to compact JSON (``to_bytes``/``from_bytes``) so the embedded log
(SQLite) and the Kafka runtime (a table with a changelog) store the same bytes.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import orjson

from rules.seen import SeenIds

ESCALATION = "esc"
RULE_DEADLINE = "rule"
#: A cadence rule's one deadline per household; payload ``(rule_id,)``.
CADENCE = "cad"


@dataclass(slots=True)
class Cadence:
    """One cadence rule's L (``last``), the event that set it, and the deadline it scheduled.

    ``org_unit`` is the trigger's (a raised warning's ``org_unit``); ``due`` is the
    pending deadline (L + C), kept to tell whether a new L or C reschedules it.
    """

    last: int
    trigger_event_id: str
    org_unit: str
    due: int

    def to_list(self) -> list[Any]:
        return [self.last, self.trigger_event_id, self.org_unit, self.due]

    @classmethod
    def from_list(cls, row: list[Any]) -> Cadence:
        return cls(row[0], row[1], row[2], row[3])


@dataclass(slots=True)
class OpenWarning:
    """A warning not yet resolved; ``handling_level`` is 0..3 (community..city).

    ``assignee`` is the staff member it was last assigned to (None: never), kept
    so that assigning it to the same person again changes nothing; ``risk`` is its
    last assessment (None: never assessed), kept so that the same risk again changes
    nothing; ``reopened`` counts its reopenings.
    """

    warning_id: str
    rule_id: str
    level: str
    #: The community it is handled from: its handling org unit is this code's ancestor at
    #: ``handling_level``. The household's owner when raised; a transfer moves it.
    org_unit: str
    handling_level: int
    acknowledged: bool
    raised_at: int
    assignee: str | None = None
    risk: str | None = None
    reopened: int = 0

    def to_list(self) -> list[Any]:
        row: list[Any] = [
            self.warning_id,
            self.rule_id,
            self.level,
            self.org_unit,
            self.handling_level,
            self.acknowledged,
            self.raised_at,
        ]
        # Trailing fields only up to the last one set: a row without them is the row
        # stored before they existed (seven fields; eight with an assignee).
        if self.reopened:
            row += (self.assignee, self.risk, self.reopened)
        elif self.risk is not None:
            row += (self.assignee, self.risk)
        elif self.assignee is not None:
            row.append(self.assignee)
        return row

    @classmethod
    def from_list(cls, row: list[Any]) -> OpenWarning:
        size = len(row)
        return cls(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6],
            row[7] if size > 7 else None,
            row[8] if size > 8 else None,
            (row[9] or 0) if size > 9 else 0,
        )


@dataclass(slots=True)
class ResolvedWarning:
    """What a resolved warning keeps so that it can be reopened (DESIGN "Commands on
    warnings"): its rule (no other open warning of it may exist), its level (the SLA of
    its next deadline), when it was raised (auto-resolution never goes before it) and
    resolved (the 30-day window), and what it carries over (assignee, last risk, count
    of reopenings)."""

    rule_id: str
    level: str
    raised_at: int
    resolved_at: int
    assignee: str | None = None
    risk: str | None = None
    reopened: int = 0

    def to_list(self) -> list[Any]:
        return [self.rule_id, self.level, self.raised_at, self.resolved_at,
                self.assignee, self.risk, self.reopened]

    @classmethod
    def from_list(cls, row: list[Any]) -> ResolvedWarning:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


#: A referral's status: sent, then accepted or declined, then (accepted only) closed.
SENT, ACCEPTED, DECLINED, CLOSED = "sent", "accepted", "declined", "closed"


@dataclass(slots=True)
class Referral:
    """One referral of the household: the ``referral.sent`` event that opened it (the
    trigger of its ``referral-unanswered`` deadline), the agency and its status."""

    sent_event_id: str
    agency: str
    status: str

    def to_list(self) -> list[Any]:
        return [self.sent_event_id, self.agency, self.status]

    @classmethod
    def from_list(cls, row: list[Any]) -> Referral:
        return cls(row[0], row[1], row[2])


#: (due_us, creation_seq, kind, payload): heap order = due time, ties by creation.
Deadline = tuple[int, int, str, tuple[Any, ...]]


class HouseholdState:
    """One household's rule state; containers exist only once something is in them.

    Most households send one or two events, so empty sets, dicts and lists
    would be most of a state's memory (an empty ``set`` alone is 216 bytes);
    every container but ``seen`` is created on first access instead. Reading
    an attribute creates its container, so code inside this class uses the
    private slots to look without creating. ``to_bytes`` writes exactly what
    the eager version wrote (stored states stay readable and byte-identical).
    """

    __slots__ = (
        "seen", "_series", "_flags", "_open", "_closed", "_deadlines", "seq",
        "owner", "household_flags", "_cadences", "_resolved", "_referrals", "_consent",
    )

    def __init__(
        self,
        seen: SeenIds | dict[str, str] | None = None,
        series: dict[str, list[int]] | None = None,
        flags: set[str] | None = None,
        open: dict[str, OpenWarning] | None = None,
        closed: set[str] | None = None,
        deadlines: list[Deadline] | None = None,
        seq: int = 0,
        owner: str | None = None,
        household_flags: frozenset[str] | None = None,
        cadences: dict[str, Cadence] | None = None,
        resolved: dict[str, ResolvedWarning] | None = None,
        referrals: dict[str, Referral] | None = None,
        consent: set[str] | None = None,
    ) -> None:
        self.seen: SeenIds = seen if isinstance(seen, SeenIds) else SeenIds(seen)
        self._series = series or None
        self._flags = flags or None
        self._open = open or None
        self._closed = closed or None
        self._deadlines = deadlines or None
        self.seq = seq
        #: The community the household belongs to (None: no event processed yet).
        self.owner = owner
        #: The flags of its registration; None while it is not registered.
        self.household_flags = household_flags
        self._cadences = cadences or None
        self._resolved = resolved or None
        self._referrals = referrals or None
        self._consent = consent or None

    @property
    def registered(self) -> bool:
        return self.household_flags is not None

    @property
    def cadences(self) -> dict[str, Cadence]:
        if self._cadences is None:
            self._cadences = {}
        return self._cadences

    @property
    def resolved(self) -> dict[str, ResolvedWarning]:
        """Resolved warnings (a subset of ``closed``: those closed since it was kept)."""
        if self._resolved is None:
            self._resolved = {}
        return self._resolved

    @property
    def referrals(self) -> dict[str, Referral]:
        if self._referrals is None:
            self._referrals = {}
        return self._referrals

    @property
    def consent(self) -> set[str]:
        """The agencies with a standing consent."""
        if self._consent is None:
            self._consent = set()
        return self._consent

    @property
    def series(self) -> dict[str, list[int]]:
        if self._series is None:
            self._series = {}
        return self._series

    @property
    def flags(self) -> set[str]:
        if self._flags is None:
            self._flags = set()
        return self._flags

    @property
    def open(self) -> dict[str, OpenWarning]:
        if self._open is None:
            self._open = {}
        return self._open

    @property
    def closed(self) -> set[str]:
        if self._closed is None:
            self._closed = set()
        return self._closed

    @property
    def deadlines(self) -> list[Deadline]:
        if self._deadlines is None:
            self._deadlines = []
        return self._deadlines

    def schedule(self, due: int, kind: str, payload: tuple[Any, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.deadlines, (due, self.seq, kind, payload))

    def unschedule(self, kind: str, *key: Any) -> None:
        """Drop the pending deadlines of ``kind`` whose payload starts with ``key``."""
        heap = self._deadlines
        if not heap:
            return
        width = len(key)
        kept = [d for d in heap if not (d[2] == kind and d[3][:width] == key)]
        if len(kept) != len(heap):
            heapq.heapify(kept)
            self._deadlines = kept or None

    @property
    def next_due(self) -> int | None:
        return self._deadlines[0][0] if self._deadlines else None

    def open_of_rule(self, rule_id: str) -> OpenWarning | None:
        for warning in (self._open or {}).values():
            if warning.rule_id == rule_id:
                return warning
        return None

    def to_bytes(self) -> bytes:
        # Key order and layout are the stored bytes' (SQLite, Kafka changelog): do not change.
        # Where the household belongs comes after, then what a reopening needs of resolved
        # warnings ("x"), the referrals ("y"), the standing consent ("g") and the seen ids
        # held as records ("z", rules.seen), each key only once it has a value, so states
        # stored before them keep their bytes and load.
        seen = self.seen
        doc: dict[str, Any] = {
            "s": seen.other,
            "t": self._series or {},
            "f": sorted(self._flags or ()),
            "o": [w.to_list() for w in (self._open or {}).values()],
            "c": sorted(self._closed or ()),
            "d": [
                [due, seq, kind, list(payload)]
                for due, seq, kind, payload in (self._deadlines or ())
            ],
            "q": self.seq,
        }
        if self.owner is not None:
            doc["w"] = self.owner
        if self.household_flags is not None:
            doc["r"] = sorted(self.household_flags)
        if self._cadences:
            doc["k"] = {rule_id: c.to_list() for rule_id, c in self._cadences.items()}
        if self._resolved:
            doc["x"] = {w: r.to_list() for w, r in self._resolved.items()}
        if self._referrals:
            doc["y"] = {r: ref.to_list() for r, ref in self._referrals.items()}
        if self._consent:
            doc["g"] = sorted(self._consent)
        packed = seen.packed()
        if packed is not None:
            doc["z"] = packed
        return orjson.dumps(doc)

    def __eq__(self, other: object) -> bool:
        """Equal when they would store the same bytes (an empty container = an absent one)."""
        if not isinstance(other, HouseholdState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"HouseholdState({self.to_bytes().decode()})"

    @classmethod
    def from_bytes(cls, blob: bytes) -> HouseholdState:
        doc = orjson.loads(blob)
        flags, rows, closed, deadlines = doc["f"], doc["o"], doc["c"], doc["d"]
        state = cls(seen=SeenIds.stored(doc["s"], doc.get("z")), series=doc["t"], seq=doc["q"],
                    owner=doc.get("w"))
        registered = doc.get("r")
        if registered is not None:
            state.household_flags = frozenset(registered)
        cadences = doc.get("k")
        if cadences:
            state._cadences = {k: Cadence.from_list(v) for k, v in cadences.items()}
        resolved = doc.get("x")
        if resolved:
            state._resolved = {w: ResolvedWarning.from_list(r) for w, r in resolved.items()}
        referrals = doc.get("y")
        if referrals:
            state._referrals = {r: Referral.from_list(v) for r, v in referrals.items()}
        consent = doc.get("g")
        if consent:
            state._consent = set(consent)
        if flags:
            state._flags = set(flags)
        if rows:
            state._open = {row[0]: OpenWarning.from_list(row) for row in rows}
        if closed:
            state._closed = set(closed)
        if deadlines:
            # The stored list is already a valid heap (saved in heap order).
            state._deadlines = [(d[0], d[1], d[2], tuple(d[3])) for d in deadlines]
        return state
