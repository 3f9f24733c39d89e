"""``warning.assigned`` lines for tests (``tests/helpers.py`` predates the type)."""

from __future__ import annotations

from tests.helpers import ORG, envelope, line


def assign(
    hh: str,
    warning_id: str,
    at: int | str,
    assignee: str = "cadre-9",
    by: str = "chair-1",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    """A chair hands warning ``warning_id`` of household ``hh`` to ``assignee``."""
    data = {"warning_id": warning_id, "by": by, "assignee": assignee}
    return line(envelope("warning.assigned", hh, at, data, org, eid))
