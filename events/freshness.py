"""How far ahead of the receiver's clock a live event's ``occurred_at`` may be.

Rule time is event time: one event dated next year would move a household's
windows, and the ledgers' "now", into the future. A live entry point (HTTP ingest,
a field app's publisher) refuses such an event with this reason; a replayed file
(``jiahe replay`` / ``publish``) is history and is not checked.
"""

from __future__ import annotations

from events.instants import MICROS_PER_MINUTE, format_instant

#: tolerated clock skew of a live producer.
MAX_FUTURE_MINUTES = 10
MAX_FUTURE_MICROS = MAX_FUTURE_MINUTES * MICROS_PER_MINUTE
FROM_THE_FUTURE = "occurred_at: more than"


def future_refusal(occurred_us: int, received_us: int) -> str | None:
    """The rejection reason when ``occurred_us`` lies more than ``MAX_FUTURE_MINUTES``
    after ``received_us`` (the server's receive time), else None."""
    if occurred_us <= received_us + MAX_FUTURE_MICROS:
        return None
    return (f"{FROM_THE_FUTURE} {MAX_FUTURE_MINUTES} minutes after the server received it "
            f"({format_instant(received_us)}): live ingest refuses events from the future")
