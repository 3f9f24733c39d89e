"""The shape shared by the contract suites: an adapter per test, closed afterwards."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from tests.helpers import envelope, line

Adapter = TypeVar("Adapter")


class Contract(ABC, Generic[Adapter]):
    """Subclasses say how to make the adapter under test; the tests receive it as ``adapter``."""

    @abstractmethod
    def make_adapter(self, tmp_path: Path) -> Adapter:
        """A fresh, empty adapter (files, if any, under ``tmp_path``)."""

    def close_adapter(self, adapter: Adapter) -> None:
        close = getattr(adapter, "close", None)
        if close is not None:
            close()

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Iterator[Adapter]:
        made = self.make_adapter(tmp_path)
        yield made
        self.close_adapter(made)


def visit_line(household_id: str, eid: str, notes: str = "", at: str = "2026-03-01T08:00:00Z"
               ) -> str:
    """One valid event (a screening visit) as a JSON line."""
    data: dict[str, Any] = {"indicators": [], "notes": notes}
    return line(envelope("screening.visit_recorded", household_id, at, data, eid=eid))


def record(n: int, household_id: str | None = "hh-1") -> dict[str, Any]:
    """A lifecycle record as the engine writes one (the fields the log indexes)."""
    return {"type": "warning.raised", "warning_id": f"w-{n}", "household_id": household_id,
            "n": n}
