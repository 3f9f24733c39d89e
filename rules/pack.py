"""The rule pack: YAML data validated on load into an immutable model.

A bad pack is refused with the rule (or signal) and the reason, before any
event is processed: a silently wrong rule is worse than no rule. The engine
(``rules.engine``) is generic over this model.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from events.catalog import EVENT_TYPES, Category, Channel, HouseholdFlag, Indicator, Outcome
from events.errors import JiaheError
from events.instants import MICROS_PER_DAY, MICROS_PER_HOUR

DEFAULT_PACK_PATH = Path(__file__).parent / "packs" / "default.yaml"
WarningLevel = Literal["red", "orange", "yellow"]
RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
LEVEL_RANK: dict[str, int] = {"red": 3, "orange": 2, "yellow": 1}


class RulePackError(JiaheError, ValueError):
    """The pack cannot be used; the message names the rule or signal and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Signal(_Strict):
    """A predicate over one event; all given conditions must hold."""

    type: str
    indicators_any: tuple[Indicator, ...] = ()
    category_in: tuple[Category, ...] = ()
    channel_in: tuple[Channel, ...] = ()
    outcome_in: tuple[Outcome, ...] = ()
    urgent: bool | None = None
    #: A registration listing any of these flags.
    flags_any: tuple[HouseholdFlag, ...] = ()

    @model_validator(mode="after")
    def _known_type(self) -> Signal:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        needs = {
            "indicators_any": "screening.visit_recorded",
            "category_in": "petition.received",
            "channel_in": "petition.received",
            "urgent": "petition.received",
            "outcome_in": "mediation.concluded",
            "flags_any": "household.registered",
        }
        for field_name, event_type in needs.items():
            value = getattr(self, field_name)
            if value not in ((), None) and self.type != event_type:
                raise ValueError(f"{field_name} applies only to {event_type}, not {self.type}")
        return self


class CountCondition(_Strict):
    """≥ ``at_least`` processed events matching ``of`` in [t − within_days, t]."""

    of: tuple[str, ...] = Field(min_length=1)
    within_days: float = Field(gt=0)
    at_least: int = Field(ge=1)

    @property
    def window_us(self) -> int:
        return round(self.within_days * MICROS_PER_DAY)


class Requirement(_Strict):
    count: CountCondition | None = None
    ever: tuple[str, ...] = ()


class DeadlineSpec(_Strict):
    """A deadline ``days`` after an ``after`` event; it triggers unless cancelled."""

    after: str
    days: float = Field(gt=0)
    unless_any: tuple[str, ...] = ()

    @property
    def delay_us(self) -> int:
        return round(self.days * MICROS_PER_DAY)


class CadenceSpec(_Strict):
    """One deadline per *registered* household, at L + C, rescheduled whenever L or C changes.

    L is the latest ``occurred_at`` among the events matching ``after`` processed
    while the household is registered (its registration included); C is ``days``, or
    the least of ``flag_days`` over the flags of the household's registration. The
    event that set L is the trigger (on equal ``occurred_at``, the first processed).
    A cadence is a promise of contact, so it exists only for households on the
    register: the registration is what makes one due.
    """

    after: tuple[str, ...] = Field(min_length=1)
    days: float = Field(gt=0)
    flag_days: dict[HouseholdFlag, float] = {}

    @model_validator(mode="after")
    def _positive(self) -> CadenceSpec:
        for flag, days in self.flag_days.items():
            if not days > 0:
                raise ValueError(f"flag_days.{flag}: must be greater than 0")
        return self

    def delay_us(self, flags: frozenset[str] | set[str]) -> int:
        days = min(
            (d for flag, d in self.flag_days.items() if flag in flags), default=self.days
        )
        return round(days * MICROS_PER_DAY)


class Rule(_Strict):
    """A household rule: triggered by one household's event (``when``), a deadline after
    one event (``deadline``) or a registered household's cadence (``cadence``).

    ``resolved_by`` names signals whose processed event resolves the household's open
    warning of this rule (auto-resolution: the work the warning asked for was done). On a
    deadline rule it answers one trigger instead: an event that refers to the deadline's
    ``after`` event (a referral's answer refers to its ``referral.sent``) voids that
    deadline and resolves the warning that trigger raised, and no other.
    """

    id: str = Field(pattern=RULE_ID_PATTERN)
    kind: Literal["household"] = "household"
    level: WarningLevel
    when: tuple[str, ...] = ()
    require: Requirement = Requirement()
    deadline: DeadlineSpec | None = None
    cadence: CadenceSpec | None = None
    resolved_by: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_trigger(self) -> Rule:
        triggers = bool(self.when) + (self.deadline is not None) + (self.cadence is not None)
        if triggers != 1:
            raise ValueError("a rule needs exactly one of 'when', 'deadline' or 'cadence'")
        return self

    def signal_names(self) -> set[str]:
        names = set(self.when) | set(self.require.ever) | set(self.resolved_by)
        if self.require.count:
            names |= set(self.require.count.of)
        if self.deadline:
            names |= {self.deadline.after, *self.deadline.unless_any}
        if self.cadence:
            names |= set(self.cadence.after)
        return names


class SurgeRule(_Strict):
    """An aggregate rule over a whole district (``kind: surge``); see ``rules.surge``.

    At each day close C it holds for a district when the events matching
    signal ``of`` with occurred_at in [C − window_days, C] number at least
    ``min_count`` and at least ``ratio`` × the district's trailing weekly
    average over ``baseline_weeks`` (scaled to the window's length).
    """

    id: str = Field(pattern=RULE_ID_PATTERN)
    kind: Literal["surge"]
    level: WarningLevel
    of: str
    scope: Literal["district"] = "district"
    window_days: int = Field(ge=1, le=366)
    baseline_weeks: int = Field(ge=1, le=52)
    ratio: float = Field(gt=0, allow_inf_nan=False)
    min_count: int = Field(ge=1)

    def signal_names(self) -> set[str]:
        return {self.of}


class RulePack(_Strict):
    pack: str
    version: int = Field(ge=1)
    ack_sla_hours: dict[WarningLevel, float]
    signals: dict[str, Signal]
    #: Household rules, evaluated by ``rules.engine`` per household.
    rules: tuple[Rule, ...] = ()
    #: ``kind: surge`` entries of the YAML ``rules`` list, in their order.
    surges: tuple[SurgeRule, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _split_kinds(cls, data: Any) -> Any:
        """The YAML has one ``rules`` list; surge rules are set apart by their ``kind``."""
        if isinstance(data, dict) and isinstance(data.get("rules"), list) and "surges" not in data:
            rules = data["rules"]
            surge = [isinstance(r, dict) and r.get("kind") == "surge" for r in rules]
            if any(surge):
                data = {
                    **data,
                    "rules": [r for r, s in zip(rules, surge, strict=True) if not s],
                    "surges": [r for r, s in zip(rules, surge, strict=True) if s],
                }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RulePack:
        missing_sla = set(get_args(WarningLevel)) - set(self.ack_sla_hours)
        if missing_sla:
            raise ValueError(f"ack_sla_hours lacks {sorted(missing_sla)}")
        if not self.rules and not self.surges:
            raise ValueError("rules: the pack has no rule")
        seen: set[str] = set()
        every: tuple[Rule | SurgeRule, ...] = (*self.rules, *self.surges)
        for rule in every:
            if rule.id in seen:
                raise ValueError(f"rule {rule.id}: duplicate rule id")
            seen.add(rule.id)
            unknown = sorted(rule.signal_names() - set(self.signals))
            if unknown:
                raise ValueError(f"rule {rule.id}: unknown signal(s) {unknown}")
        return self

    def sla_us(self, level: str) -> int:
        return round(self.ack_sla_hours[level] * MICROS_PER_HOUR)  # type: ignore[index]

    @cached_property
    def windowed_signals(self) -> frozenset[str]:
        """Signals whose timestamps must be kept (counted in windows or cancelling deadlines)."""
        names: set[str] = set()
        for rule in self.rules:
            if rule.require.count:
                names |= set(rule.require.count.of)
            if rule.deadline:
                names |= set(rule.deadline.unless_any)
        return frozenset(names)

    @cached_property
    def flag_signals(self) -> frozenset[str]:
        """Signals remembered only as 'ever seen'."""
        return frozenset(name for rule in self.rules for name in rule.require.ever)


def _locate(error: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    if len(loc) >= 2 and loc[0] in ("rules", "surges") and isinstance(loc[1], int):
        listed = document.get("rules")
        rules = [
            r for r in (listed if isinstance(listed, list) else [])
            if (isinstance(r, dict) and r.get("kind") == "surge") == (loc[0] == "surges")
        ]
        rule = rules[loc[1]] if loc[1] < len(rules) else None
        rule_id = rule.get("id", f"#{loc[1]}") if isinstance(rule, dict) else f"#{loc[1]}"
        rest = ".".join(str(p) for p in loc[2:])
        return f"rule {rule_id}" + (f" ({rest})" if rest else "")
    if len(loc) >= 2 and loc[0] == "signals":
        return f"signal {loc[1]}" + (f" ({'.'.join(str(p) for p in loc[2:])})" if loc[2:] else "")
    return ".".join(str(p) for p in loc) or "pack"


def parse_pack(document: Any) -> RulePack:
    """Validate a parsed YAML document into a pack, or raise RulePackError naming the rule."""
    if not isinstance(document, dict):
        raise RulePackError("pack: the YAML document must be a mapping")
    try:
        return RulePack.model_validate(document)
    except ValidationError as exc:
        problems = [
            f"{_locate(err, document)}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise RulePackError("invalid rule pack: " + "; ".join(problems)) from exc


def load_pack(path: Path | str = DEFAULT_PACK_PATH) -> RulePack:
    """Read and validate a YAML rule pack."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulePackError(f"{path}: not valid YAML ({exc})") from exc
    return parse_pack(document)
