"""Ingest commits to the log at once; the warehouse catches up before the next read.

Projection is lazy in the API (``app.services``): each insert into the warehouse's
``events`` table runs its materialized views, so one insert per ingest request cost
about a fifth of the ingest rate. These tests pin the contract that makes the
deferral safe: nothing is lost (the log holds it, processed), every read sees
everything accepted before it, and alerts do not wait for the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from access.users import User
from app.bootstrap_api import bootstrap_api
from app.services import Services
from tests.api.conftest import event

CHAIR = User("chair", "chair", "230102000000")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """The services of one home with no ticker, so only reads and ingest move things."""
    found = bootstrap_api(tmp_path / "home", tick_s=None)
    found.start()
    try:
        yield found
    finally:
        found.close()


def test_ingest_is_processed_at_once_and_projected_by_the_next_read(
    services: Services,
) -> None:
    results = services.ingest([event("230102001001", "hh-lazy-1"),
                               event("230102001002", "hh-lazy-2")], CHAIR)
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    log = services.runtime.log
    raised = log.db.execute("SELECT COUNT(*) FROM lifecycle WHERE type = 'warning.raised'"
                            ).fetchone()[0]
    assert raised == 2  # processed inline: deliveries read these at once
    assert services.runtime.pending_projection() == (2, 2)  # the warehouse waits

    households = {r["household_id"] for r in services.ledger("warnings", CHAIR, None, None)}
    assert households == {"hh-lazy-1", "hh-lazy-2"}
    assert services.runtime.pending_projection() == (0, 0)


def test_every_read_path_sees_what_was_accepted_before_it(services: Services) -> None:
    services.ingest([event("230102001001", "hh-lazy-3")], CHAIR)
    assert services.kpis(CHAIR, None)["warnings"] == 1

    services.ingest([event("230102001001", "hh-lazy-4")], CHAIR)
    page = services.ledger_page("warnings", CHAIR, None, None, limit=10, offset=0)
    assert page is not None and {r["household_id"] for r in page} == {"hh-lazy-3",
                                                                     "hh-lazy-4"}

    services.ingest([event("230102001001", "hh-lazy-5")], CHAIR)
    warning_id = log_warning(services, "hh-lazy-5")
    found = services.find_warning(CHAIR, warning_id)
    assert found is not None and found["status"] == "open"


def test_a_batch_of_requests_is_projected_in_one_catch_up(services: Services) -> None:
    for n in range(5):
        services.ingest([event("230102001001", f"hh-burst-{n}-{i}") for i in range(20)],
                        CHAIR)
    assert services.runtime.pending_projection() == (100, 100)
    report = services.runtime.project()
    assert (report.events, report.lifecycle) == (100, 100)


def log_warning(services: Services, household: str) -> str:
    row = services.runtime.log.db.execute(
        "SELECT warning_id FROM lifecycle WHERE household_id = ? AND type = 'warning.raised'",
        (household,)).fetchone()
    assert row, household
    return str(row[0])
