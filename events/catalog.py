"""The event catalog v1 as immutable pydantic v2 models.

One model per event type, discriminated on ``type``, so that a field app gets
an error naming the exact field and reason. Fields outside the catalog are
ignored by these models (a tolerant reader) but stay in the log, which keeps
the raw envelope.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from events.orgunits import check_community

Indicator = Literal[
    "marital_conflict",
    "threats",
    "domestic_violence_signs",
    "injury_observed",
    "sexual_violence_signs",
    "child_neglect",
    "guardianship_gap",
    "intellectual_disability",
    "economic_hardship",
    "alcohol_abuse",
    "isolation",
]
Channel = Literal["hotline_12338", "walk_in", "letter", "online", "wechat", "referral"]
Category = Literal[
    "marriage_family_dispute",
    "domestic_violence",
    "sexual_assault",
    "child_rights",
    "property_rights",
    "other",
]
Outcome = Literal["reconciled", "agreement", "failed", "referred"]
Action = Literal[
    "home_visit", "phone_call", "legal_aid", "psych_counselling", "police_referral", "shelter"
]
Resolution = Literal["resolved_locally", "referred", "closed_no_action"]

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def _check_uuid(value: str) -> str:
    if not _UUID.match(value):
        raise ValueError("event_id must be a UUID")
    return value


def _check_org_unit(value: str) -> str:
    return check_community(value)


EventId = Annotated[str, AfterValidator(_check_uuid)]
CommunityCode = Annotated[str, AfterValidator(_check_org_unit)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class VisitData(_Data):
    indicators: list[Indicator]
    notes: str = Field(default="", max_length=20_000)


class PetitionData(_Data):
    channel: Channel
    category: Category
    urgent: bool


class MediationOpenedData(_Data):
    mediation_id: NonEmpty


class MediationConcludedData(_Data):
    mediation_id: NonEmpty
    outcome: Outcome


class FollowupData(_Data):
    action: Action


class GuardianshipGapData(_Data):
    child_ref: NonEmpty
    reason: str = Field(max_length=2_000)


class GuardianshipRestoredData(_Data):
    child_ref: NonEmpty


class CaseResolvedData(_Data):
    resolution: Resolution


class WarningAcknowledgedData(_Data):
    warning_id: NonEmpty
    by: NonEmpty


class WarningResolvedData(_Data):
    warning_id: NonEmpty
    by: NonEmpty
    note: str = Field(default="", max_length=20_000)


class Envelope(BaseModel):
    """Fields every event carries; ``occurred_at`` drives all rule time."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: EventId
    type: str
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime | None = None
    org_unit: CommunityCode
    household_id: NonEmpty
    actor: str | None = Field(default=None, max_length=200)


class ScreeningVisitRecorded(Envelope):
    type: Literal["screening.visit_recorded"]
    data: VisitData


class PetitionReceived(Envelope):
    type: Literal["petition.received"]
    data: PetitionData


class MediationOpened(Envelope):
    type: Literal["mediation.opened"]
    data: MediationOpenedData


class MediationConcluded(Envelope):
    type: Literal["mediation.concluded"]
    data: MediationConcludedData


class FollowupRecorded(Envelope):
    type: Literal["followup.recorded"]
    data: FollowupData


class GuardianshipGapRecorded(Envelope):
    type: Literal["child.guardianship_gap_recorded"]
    data: GuardianshipGapData


class GuardianshipRestored(Envelope):
    type: Literal["child.guardianship_restored"]
    data: GuardianshipRestoredData


class CaseResolved(Envelope):
    type: Literal["case.resolved"]
    data: CaseResolvedData


class WarningAcknowledged(Envelope):
    type: Literal["warning.acknowledged"]
    data: WarningAcknowledgedData


class WarningResolved(Envelope):
    type: Literal["warning.resolved"]
    data: WarningResolvedData


EVENT_MODELS: tuple[type[Envelope], ...] = (
    ScreeningVisitRecorded,
    PetitionReceived,
    MediationOpened,
    MediationConcluded,
    FollowupRecorded,
    GuardianshipGapRecorded,
    GuardianshipRestored,
    CaseResolved,
    WarningAcknowledged,
    WarningResolved,
)

EVENT_TYPES: dict[str, type[Envelope]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in EVENT_MODELS
}

AnyEvent = Annotated[
    ScreeningVisitRecorded
    | PetitionReceived
    | MediationOpened
    | MediationConcluded
    | FollowupRecorded
    | GuardianshipGapRecorded
    | GuardianshipRestored
    | CaseResolved
    | WarningAcknowledged
    | WarningResolved,
    Field(discriminator="type"),
]

#: The newest schema_version of each type; older ones are upcast on read.
CURRENT_VERSION: dict[str, int] = dict.fromkeys(EVENT_TYPES, 1)

#: Free-text fields that carry personal data and must never leave the log in clear.
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "screening.visit_recorded": ("notes",),
    "warning.resolved": ("note",),
    "child.guardianship_gap_recorded": ("reason",),
}
