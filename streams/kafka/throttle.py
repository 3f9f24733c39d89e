"""``jiahe worker --max-rate``: at most N events a second, over time.

A worker catching up on a backlog otherwise takes a whole core and floods its
warehouse; an operator sharing a host (the API, a ClickHouse server) caps it.
The limit only delays the next fetch, so it never changes what is computed.
"""

from __future__ import annotations


class Throttle:
    """How long to wait after handling a batch so the rate stays ≤ ``events_per_s``.

    Time a worker spent idle is not saved up as credit: after a quiet minute the
    next backlog is still read at the capped rate, not in one burst.
    """

    def __init__(self, events_per_s: float) -> None:
        if events_per_s <= 0:
            raise ValueError("the rate must be positive")
        self.events_per_s = events_per_s
        self._free_at = 0.0

    def delay_after(self, handled: int, started: float, now: float) -> float:
        """Seconds to sleep after ``handled`` events, handled from ``started`` to ``now``
        (monotonic seconds): the batch's share of time begins when it started, or when
        the previous share ended, whichever is later."""
        self._free_at = max(self._free_at, started) + handled / self.events_per_s
        return max(0.0, self._free_at - now)
