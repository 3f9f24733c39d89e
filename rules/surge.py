"""Aggregate ``kind: surge`` rules: a district's matching events surge at a day close.

DESIGN.md keeps all *household* rule state inside one household so that the
outcome never depends on other households or on partitioning. A surge is
cross-household by nature (it counts a whole district), so it lives beside the
household engine, not inside it, and is made partition-proof another way: the
condition at a day close C is a pure function of the multiset of processed
events with occurred_at ≤ C — the same whatever their arrival order or the
runtime — and C is evaluated only once the clock has reached it.

Readings (documented in README's rules section):

* **Day close** = local midnight in Harbin (UTC+8, no daylight saving): chairs
  count "the last 7 days" in local days; a UTC day would end at 08:00 local.
  The close ending local date D is D+1 00:00+08:00; its warning ids use D.
* **Window** [C − window_days, C], both ends inclusive (as DESIGN's windows).
* **Baseline**: the events in [C − window − n weeks, C − window) over n weeks,
  scaled to the window's length; n = baseline_weeks, or fewer *full* weeks
  when the district's history (its earliest processed event of any type) is
  shorter. With less than one full week of history there is no baseline and
  no surge: a freshly deployed district must not alarm on its first week.
* **Holds** when count ≥ min_count and count ≥ ratio × baseline average
  (compared exactly, in fractions).
* **Lifecycle**: at most one open warning per (rule, district). It is raised
  at the first close where the condition holds, with warning_id = "w-" +
  sha256("{rule_id}:{district}:{day}")[:16], handling level district at the
  district; it resolves itself (``warning.resolved``) at the first close where
  the condition no longer holds. It does not escalate and takes no commands
  (a command names a household). Its records carry ``household_id: null``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from datetime import timedelta
from fractions import Fraction
from typing import Any

import orjson

from events.catalog import EventFacts
from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR, format_instant, to_datetime
from events.orgunits import district_of
from rules.engine import _compile as compile_signal  # one predicate compiler for all rules
from rules.pack import RulePack, SurgeRule

Record = dict[str, Any]
#: Harbin local time (China Standard Time; no daylight saving since 1991).
LOCAL_OFFSET_US = 8 * MICROS_PER_HOUR
WEEK_US = 7 * MICROS_PER_DAY


def first_close_at_or_after(us: int) -> int:
    """The earliest local midnight ≥ ``us`` (an instant at exactly midnight is its own close)."""
    local = us + LOCAL_OFFSET_US
    return -(-local // MICROS_PER_DAY) * MICROS_PER_DAY - LOCAL_OFFSET_US


def day_of_close(close: int) -> str:
    """The local date that ends at ``close`` (ISO ``YYYY-MM-DD``)."""
    return (to_datetime(close - 1) + timedelta(microseconds=LOCAL_OFFSET_US)).date().isoformat()


def surge_warning_id(rule_id: str, district: str, day: str) -> str:
    digest = hashlib.sha256(f"{rule_id}:{district}:{day}".encode()).hexdigest()
    return "w-" + digest[:16]


def _between(series: Sequence[int], low: int, high: int) -> int:
    """How many instants lie in [low, high]."""
    return bisect_right(series, high) - bisect_left(series, low)


class SurgeTracker:
    """What surge rules need of every processed event, and the day closes done so far.

    ``observe`` every processed event (any order); ``close_until(limit)``
    evaluates each day close ≤ ``limit`` not evaluated yet, in time order.
    The state serializes (``to_bytes``/``restore``) so a runtime can commit it
    with the batch that changed it.
    """

    def __init__(self, pack: RulePack) -> None:
        self.rules: tuple[SurgeRule, ...] = pack.surges
        self._match = [
            (rule, pack.signals[rule.of].type, compile_signal(pack.signals[rule.of]))
            for rule in self.rules
        ]
        #: district → earliest occurred_at of any processed event there.
        self.first_seen: dict[str, int] = {}
        #: rule_id → district → sorted occurred_at of matching events (pruned to the lookback).
        self.series: dict[str, dict[str, list[int]]] = {rule.id: {} for rule in self.rules}
        #: "rule_id district" → warning_id of the open surge warning.
        self.open: dict[str, str] = {}
        #: The first day close not evaluated yet (None: nothing evaluated).
        self.next_close: int | None = None

    # -- input ------------------------------------------------------------------

    def observe(self, event: EventFacts, occurred_us: int) -> None:
        """Count one processed event (duplicates and rejected input must not come here)."""
        district = self._seen(event, occurred_us)
        for rule, event_type, predicate in self._match:
            if event.type == event_type and predicate(event):
                insort(self.series[rule.id].setdefault(district, []), occurred_us)

    def _seen(self, event: EventFacts, occurred_us: int) -> str:
        """The event's district, whose earliest instant seen it may move back."""
        district = district_of(event.org_unit)
        known = self.first_seen.get(district)
        if known is None or occurred_us < known:
            self.first_seen[district] = occurred_us
        return district

    # -- day closes ---------------------------------------------------------------

    def close_until(self, limit: int) -> list[Record]:
        """Evaluate every day close ≤ ``limit`` not evaluated yet; the lifecycle records."""
        if not self.first_seen:
            return []
        close = self.next_close
        if close is None:
            close = first_close_at_or_after(min(self.first_seen.values()))
        records: list[Record] = []
        while close <= limit:
            records.extend(self._evaluate(close))
            close += MICROS_PER_DAY
        if close != self.next_close:
            self.next_close = close
            self._prune(close)
        return records

    def holds(self, rule: SurgeRule, district: str, close: int) -> bool:
        """The surge condition of ``rule`` for ``district`` at ``close``."""
        first = self.first_seen.get(district)
        if first is None or first > close:
            return False
        window = rule.window_days * MICROS_PER_DAY
        series = self.series[rule.id].get(district, [])
        count = _between(series, close - window, close)
        if count < rule.min_count:
            return False
        weeks = min(rule.baseline_weeks, (close - window - first) // WEEK_US)
        if weeks < 1:
            return False
        baseline_end = close - window
        baseline = bisect_left(series, baseline_end) - bisect_left(
            series, baseline_end - weeks * WEEK_US
        )
        # count ≥ ratio × (baseline / (7·weeks days)) × window_days, exactly.
        ratio = Fraction(str(rule.ratio))
        return count * 7 * weeks >= ratio * baseline * rule.window_days

    def _evaluate(self, close: int) -> list[Record]:
        records: list[Record] = []
        at = format_instant(close)
        for rule in self.rules:
            for district in sorted(self.first_seen):
                key = f"{rule.id} {district}"
                open_id = self.open.get(key)
                holds = self.holds(rule, district, close)
                if open_id is not None and not holds:
                    del self.open[key]
                    records.append(
                        {"type": "warning.resolved", "warning_id": open_id,
                         "household_id": None, "at": at}
                    )
                elif open_id is None and holds:
                    warning_id = surge_warning_id(rule.id, district, day_of_close(close))
                    self.open[key] = warning_id
                    records.append(
                        {
                            "type": "warning.raised",
                            "warning_id": warning_id,
                            "rule_id": rule.id,
                            "household_id": None,
                            "level": rule.level,
                            "org_unit": district,
                            "handling_level": "district",
                            "handling_org_unit": district,
                            "at": at,
                        }
                    )
        return records

    def _prune(self, next_close: int) -> None:
        """Drop instants no later close can count (memory stays ~ one lookback)."""
        for rule in self.rules:
            horizon = next_close - rule.window_days * MICROS_PER_DAY - rule.baseline_weeks * WEEK_US
            for series in self.series[rule.id].values():
                cut = bisect_left(series, horizon)
                if cut:
                    del series[:cut]

    # -- persistence --------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "first_seen": self.first_seen,
                "series": self.series,
                "open": self.open,
                "next_close": self.next_close,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def restore(cls, pack: RulePack, blob: bytes | None) -> SurgeTracker:
        """A tracker for ``pack`` with the stored state (rules no longer in the pack dropped)."""
        tracker = cls(pack)
        if not blob:
            return tracker
        doc = orjson.loads(blob)
        tracker.first_seen = {str(k): int(v) for k, v in doc["first_seen"].items()}
        for rule_id, by_district in doc["series"].items():
            if rule_id in tracker.series:
                tracker.series[rule_id] = {d: list(s) for d, s in by_district.items()}
        ids = {rule.id for rule in tracker.rules}
        tracker.open = {k: v for k, v in doc["open"].items() if k.split(" ", 1)[0] in ids}
        tracker.next_close = doc["next_close"]
        return tracker
