"""Clocks injected into runtimes; the core never reads time itself.

``EventTimeClock`` makes runs reproducible (replays, backtests, equivalence
tests): deadlines fire at the end of input up to ``as_of`` (default: the
largest occurred_at processed). ``WallClock`` is for live runtimes: deadlines
fire as the real clock passes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.instants import format_instant, now_micros


@dataclass(frozen=True)
class EventTimeClock:
    as_of: int | None = None
    live: bool = False

    def limit(self, max_occurred: int | None) -> int | None:
        return self.as_of if self.as_of is not None else max_occurred

    def describe(self) -> str:
        when = format_instant(self.as_of) if self.as_of is not None else "latest event"
        return f"event time, as of {when}"


@dataclass(frozen=True)
class WallClock:
    live: bool = True

    def limit(self, max_occurred: int | None) -> int | None:
        return now_micros()

    def describe(self) -> str:
        return f"wall clock ({format_instant(now_micros())})"


Clock = EventTimeClock | WallClock
