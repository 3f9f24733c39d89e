"""FAULT INJECTION: ``python -m cli.kafka`` whose engine raises for one household.

The rules never raise on valid input, so a worker that meets an engine bug has to be
made: ``python -m tests.streams.kafka.faulty_worker ARGS`` is ``python -m cli.kafka ARGS``
with :meth:`rules.engine.Engine.apply` raising ``RuntimeError(FAULT)`` for every event
of :data:`FAULTY_HOUSEHOLD` (the real engine for every other). Only tests start it.
"""

from __future__ import annotations

from cli import kafka
from events.codec import Decoded
from rules.engine import Engine, Outcome
from rules.state import HouseholdState

FAULTY_HOUSEHOLD = "hh-engine-fault"
FAULT = "injected fault"
_real_apply = Engine.apply


def faulty_apply(self: Engine, state: HouseholdState, decoded: Decoded) -> Outcome:
    if decoded.household_id == FAULTY_HOUSEHOLD:
        raise RuntimeError(FAULT)
    return _real_apply(self, state, decoded)


if __name__ == "__main__":
    Engine.apply = faulty_apply  # type: ignore[method-assign]
    kafka.cli()
