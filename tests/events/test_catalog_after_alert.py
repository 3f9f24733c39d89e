"""The catalog of the work after an alert (DESIGN "Catalog v2"): commands on warnings,
referrals and consent — their fields, vocabularies and personal text."""

from __future__ import annotations

import json

import pytest

from events import catalog
from events.codec import Decoded, Rejected, decode
from events.schema_export import export_schemas
from tests.helpers import T0, data_of, envelope, line
from tests.rules.after_alert import (
    accept,
    assess,
    close_referral,
    consent,
    decline,
    refer,
    reopen,
    withdraw,
)

RISKS = ["low", "medium", "high"]
AGENCIES = ["police", "court", "procuratorate", "civil_affairs", "justice", "legal_aid",
            "shelter", "health", "education"]
BASES = ["consent", "emergency", "legal_duty"]
OUTCOMES = ["service_provided", "no_service", "withdrawn"]
W = "w-0123456789abcdef"


def accepted(text: str) -> dict:
    result = decode(text)
    assert isinstance(result, Decoded), getattr(result, "reason", result)
    return data_of(result)


def rejected(text: str) -> str:
    result = decode(text)
    assert isinstance(result, Rejected)
    return result.reason


def test_the_vocabularies_are_designs():
    assert list(catalog.Risk.__args__) == RISKS  # type: ignore[attr-defined]
    assert list(catalog.Agency.__args__) == AGENCIES  # type: ignore[attr-defined]
    assert list(catalog.Basis.__args__) == BASES  # type: ignore[attr-defined]
    assert list(catalog.ReferralOutcome.__args__) == OUTCOMES  # type: ignore[attr-defined]


@pytest.mark.parametrize("risk", RISKS)
def test_an_assessment_carries_a_risk_and_an_optional_note(risk):
    assert accepted(assess("h1", W, T0, risk, note="n")) == {
        "warning_id": W, "by": "chair-1", "risk": risk, "note": "n"}
    bare = envelope("warning.assessed", "h1", T0, {"warning_id": W, "by": "c", "risk": risk})
    assert accepted(line(bare)) == {"warning_id": W, "by": "c", "risk": risk}


def test_a_reopening_needs_a_reason():
    assert accepted(reopen("h1", W, T0, reason="again")) == {
        "warning_id": W, "by": "chair-1", "reason": "again"}
    bare = envelope("warning.reopened", "h1", T0, {"warning_id": W, "by": "c"})
    assert rejected(line(bare)) == "data.reason: Field required"


@pytest.mark.parametrize("agency", AGENCIES)
@pytest.mark.parametrize("basis", BASES)
def test_a_referral_goes_to_any_agency_on_any_basis(agency, basis):
    data = accepted(refer("h1", "r-1", T0, agency, basis))
    assert (data["agency"], data["basis"]) == (agency, basis)


def test_a_referral_may_name_a_warning_and_carry_a_note():
    assert accepted(refer("h1", "r-1", T0, warning_id=W, note="n")) == {
        "referral_id": "r-1", "agency": "police", "basis": "emergency", "note": "n",
        "warning_id": W}
    minimal = {"referral_id": "r-1", "agency": "court", "basis": "legal_duty"}
    assert accepted(line(envelope("referral.sent", "h1", T0, minimal))) == minimal


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_close_carries_an_outcome(outcome):
    assert accepted(close_referral("h1", "r-1", T0, outcome))["outcome"] == outcome


def test_answers_name_the_referral_and_who_answered():
    assert accepted(accept("h1", "r-1", T0)) == {"referral_id": "r-1", "by": "officer-1"}
    assert accepted(decline("h1", "r-1", T0, reason="x")) == {
        "referral_id": "r-1", "by": "officer-1", "reason": "x"}


@pytest.mark.parametrize("build", [consent, withdraw], ids=["recorded", "withdrawn"])
def test_consent_lists_one_agency_or_more(build):
    assert accepted(build("h1", T0, AGENCIES))["agencies"] == AGENCIES
    assert "at least 1 item" in rejected(build("h1", T0, []))


def test_the_free_text_of_the_work_after_an_alert_is_personal():
    assert {t: catalog.PERSONAL_FIELDS.get(t) for t in (
        "warning.assessed", "warning.reopened", "referral.sent", "referral.accepted",
        "referral.declined", "referral.closed", "consent.recorded", "consent.withdrawn",
    )} == {
        "warning.assessed": ("note",), "warning.reopened": ("reason",),
        "referral.sent": ("note",), "referral.accepted": None,
        "referral.declined": ("reason",), "referral.closed": None,
        "consent.recorded": None, "consent.withdrawn": None,
    }


def test_the_json_schema_export_covers_the_work_after_an_alert(tmp_path):
    export_schemas(tmp_path)
    sent = json.loads((tmp_path / "referral.sent.schema.json").read_text())
    words = set(json.dumps(sent).split('"'))
    assert {"referral_id", "agency", "basis", "warning_id", *AGENCIES, *BASES} <= words
    recorded = json.loads((tmp_path / "consent.recorded.schema.json").read_text())
    assert '"minItems": 1' in json.dumps(recorded)
