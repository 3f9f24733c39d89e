"""A command checked against one state and applied to another (a second request landed
in between): on the embedded runtime the answer confirms what the event changed, and
an event the engine turned into a notice answers 409 with the reason, never 200.

The services run in this process (one home, no ticker); the "other request" is the
same services' own command, issued between the check and the append.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from access.users import User
from app import after_alert
from app.after_alert import CommandRefused
from app.bootstrap_api import bootstrap_api
from app.services import Row, Services
from tests.api.conftest import event

CHAIR = User("chair", "chair", "230102000000")
POLICE = User("police", "partner", "230102000000", "police")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    found = bootstrap_api(tmp_path / "home", tick_s=None)
    found.start()
    try:
        yield found
    finally:
        found.close()


def _interleave(services: Services, monkeypatch: pytest.MonkeyPatch,
                first: tuple[User, str, str, Row]) -> None:
    """Make the next ``services.command`` append ``first`` before its own event."""
    command = services.command
    pending = [first]

    def racing(user: User, event_type: str, household_id: str, data: Row) -> str:
        while pending:
            command(*pending.pop())
        return command(user, event_type, household_id, data)

    monkeypatch.setattr(services, "command", racing)


def _warning(services: Services, household: str) -> str:
    services.ingest([event("230102001001", household)], CHAIR)
    [row] = [r for r in services.ledger("warnings", CHAIR, None, None)
             if r["household_id"] == household]
    return str(row["warning_id"])


def test_an_assessment_of_a_warning_resolved_meanwhile_is_409(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    warning = _warning(services, "hh-race-1")
    _interleave(services, monkeypatch, (CHAIR, "warning.resolved", "hh-race-1",
                                        {"warning_id": warning, "by": "other"}))
    with pytest.raises(CommandRefused, match="warning is resolved: reopen it before"):
        after_alert.assess(services, CHAIR, warning, "high", None)
    row = services.warning_in_reach(CHAIR, warning, "test")
    assert row is not None and row["status"] == "resolved" and row["risk"] is None


def test_a_second_acceptance_meanwhile_is_409(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    services.ingest([event("230102001001", "hh-race-2", "followup.recorded",
                           {"action": "phone_call"})], CHAIR)
    sent = after_alert.send_referral(services, CHAIR, "hh-race-2", "police", "emergency",
                                     None, None)
    referral_id = sent.body["referral_id"]
    _interleave(services, monkeypatch, (POLICE, "referral.declined", "hh-race-2",
                                        {"referral_id": referral_id, "by": "other",
                                         "reason": "no capacity"}))
    with pytest.raises(CommandRefused, match="referral already declined"):
        after_alert.answer_referral(services, POLICE, referral_id, "accepted", {})


def test_a_consent_withdrawn_meanwhile_refuses_the_referral(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    services.ingest([event("230102001001", "hh-race-3", "followup.recorded",
                           {"action": "phone_call"})], CHAIR)
    after_alert.change_consent(services, CHAIR, "hh-race-3", "record", ["police"])
    _interleave(services, monkeypatch, (CHAIR, "consent.withdrawn", "hh-race-3",
                                        {"agencies": ["police"], "by": "other"}))
    with pytest.raises(CommandRefused, match="no standing consent of the household for "
                                             "police"):
        after_alert.send_referral(services, CHAIR, "hh-race-3", "police", "consent", None,
                                  None)
    rows: list[dict[str, Any]] = after_alert.referrals(services, CHAIR, None, None, None,
                                                       0)["rows"]
    assert not [r for r in rows if r["household_id"] == "hh-race-3"]


@pytest.mark.parametrize(("row", "risk", "says"), [
    ({"household_id": None, "status": "open"}, "low", "district surge"),
    ({"household_id": "h", "status": "resolved", "risk": None}, "low", "is resolved"),
    ({"household_id": "h", "status": "open", "risk": "low"}, "low", "assessment unchanged"),
    ({"household_id": "erased:0f3c", "status": "open", "risk": None}, "low", "was erased"),
])
def test_assess_refusals_are_the_contracts(row: Row, risk: str, says: str) -> None:
    reason = after_alert.assess_refusal(row, risk)
    assert reason is not None and says in reason
    assert after_alert.assess_refusal(row | {"household_id": "h", "status": "open",
                                             "risk": None}, risk) is None


@pytest.mark.parametrize(("status", "kind", "refused"), [
    ("sent", "accepted", False), ("sent", "declined", False), ("sent", "closed", True),
    ("accepted", "accepted", True), ("accepted", "declined", True),
    ("accepted", "closed", False), ("declined", "closed", True), ("closed", "closed", True),
])
def test_answer_refusals_are_the_contracts(status: str, kind: str, refused: bool) -> None:
    assert (after_alert.answer_refusal({"status": status}, kind) is not None) is refused
