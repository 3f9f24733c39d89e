"""A realistic, deterministic sample city and event stream.

``jiahe demo``, the tests and the benchmarks need the same thing: a Harbin-shaped
city (18 county-level units, generated streets and communities) and a JSONL
stream that looks like what the field apps, the 12338 hotline and the mediation
committees really send — mostly routine visits, a few percent of households
producing most of the signal, late offline bursts, re-deliveries, conflicts and
malformed lines. The rule pack must find something, in proportions a cadre
would find plausible.

Design choices, and why:

* **Deterministic.** Everything derives from ``seed`` through ``random.Random``
  (string seeds hash with SHA-512, not with the salted ``hash``), and no set or
  salted hash ever decides an order, so one seed gives byte-identical output on
  every machine and run.
* **Fast.** One million lines must take seconds, not minutes: envelopes are
  plain dicts serialised with orjson, timestamps are formatted from integer
  seconds with a per-day prefix cache, UUIDs are built from one
  ``getrandbits(128)``; no pydantic on the hot path.
* **Simulated, not shuffled.** A count-driven clock walks from ``start`` to
  ``end`` (denser in working hours); *initiating* events (visits, petitions,
  ...) happen at the clock, and each may schedule *follow-on* events
  (follow-ups, mediation conclusions, acknowledgements) in a heap. Every event
  gets a delivery instant; lines leave in delivery order, so offline field apps
  produce late bursts exactly as a real log would receive them.
* **After the alert** (catalog v2): chairs assess (研判) some of the warnings they
  act on, refer some medium and high ones to a partner agency (联动; recording the
  household's consent first when the basis is consent), agencies accept, decline
  or leave a referral unanswered and close what they accepted, a few consents are
  withdrawn and a few resolved warnings reopened. Those decisions draw from their
  own generator, and only when their shares are non-zero, so a spec with every
  catalog v2 share at 0 gives the catalog v1 stream byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
import zlib
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from heapq import heappop, heappush
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from events.orgunits import HARBIN_CITY, HARBIN_DISTRICTS, street_of

# --------------------------------------------------------------------------- city

#: Districts whose streets are almost all 街道 (urban core) or mixed (suburban).
_URBAN = ("230102", "230103", "230104", "230108", "230109", "230110")
_SUBURBAN = ("230111", "230112", "230113")

#: Characters combined pairwise into place names (兴华, 永安, 福民 ...).
_NAME_FIRST = "新兴永长福安和红光富胜建宏丰德顺康泰友群文正朝明联前太东西南北中"
_NAME_SECOND = "华安民利丰盛平和阳光明兴旺荣乐康泰宁福源发升合祥江山林"


@dataclass(frozen=True, slots=True)
class SampleCity:
    """Generated org units under Harbin's 18 real county-level codes.

    Codes follow the national scheme, so ``events.orgunits`` accepts every
    community and derives its street and district; names let ledgers and the
    demo show something a cadre recognises.
    """

    seed: int
    streets: list[str]
    communities: list[str]
    names: dict[str, str]

    def name_of(self, code: str) -> str:
        """The unit's own name (community, street, district or the city)."""
        if code == HARBIN_CITY:
            return "哈尔滨市"
        if code[6:] == "000000":
            return HARBIN_DISTRICTS[code[:6]]
        return self.names[code]

    def full_name(self, code: str) -> str:
        """City down to the unit, e.g. 哈尔滨市道里区兴华街道永安社区."""
        parts = ["哈尔滨市", HARBIN_DISTRICTS[code[:6]]]
        if code[9:] != "000" or code[6:9] != "000":
            parts.append(self.names[street_of(code)])
        if code[9:] != "000":
            parts.append(self.names[code])
        return "".join(parts)


def _place_names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct two-character names, numbered once the pool runs out."""
    pool = [a + b for a in _NAME_FIRST for b in _NAME_SECOND if a != b]
    picked = rng.sample(pool, min(count, len(pool)))
    picked += [f"第{i + 1}" for i in range(len(picked), count)]
    return picked


def _street_suffix(rng: random.Random, county: str, index: int) -> str:
    """街道 in the urban core, mostly 镇/乡 in the counties (the seat is a 街道)."""
    roll = rng.random()
    if county in _URBAN:
        return "街道" if roll < 0.85 else "镇"
    if county in _SUBURBAN:
        return "街道" if roll < 0.3 else ("镇" if roll < 0.85 else "乡")
    if index == 0:
        return "街道"
    return "镇" if roll < 0.65 else "乡"


def _community_suffix(rng: random.Random, street_suffix: str, index: int) -> str:
    """社区 under 街道; a town's first communities are 社区, the rest 村."""
    if street_suffix == "街道":
        return "社区"
    if street_suffix == "镇" and (index < 2 or rng.random() < 0.15):
        return "社区"
    return "村"


def build_city(
    seed: int, streets_per_district: int = 8, communities_per_street: int = 10
) -> SampleCity:
    """Streets and communities under each of the 18 Harbin county-level units.

    Street = county + township 001… + "000"; community = street[:9] + 001….
    Independent of the stream's random sequence, so the demo can rebuild the
    same city (for names) from the seed alone.
    """
    if not 1 <= streets_per_district <= 999 or not 1 <= communities_per_street <= 999:
        raise ValueError("streets and communities per parent must be in 1..999")
    rng = random.Random(f"jiahe-city:{seed}")
    streets: list[str] = []
    communities: list[str] = []
    names: dict[str, str] = {}
    for county in HARBIN_DISTRICTS:
        street_names = _place_names(rng, streets_per_district)
        for s, base in enumerate(street_names):
            street = f"{county}{s + 1:03d}000"
            suffix = _street_suffix(rng, county, s)
            names[street] = base + suffix
            streets.append(street)
            for c, cbase in enumerate(_place_names(rng, communities_per_street)):
                code = f"{street[:9]}{c + 1:03d}"
                names[code] = cbase + _community_suffix(rng, suffix, c)
                communities.append(code)
    return SampleCity(seed=seed, streets=streets, communities=communities, names=names)


# --------------------------------------------------------------------------- spec

_TZ = timezone(timedelta(hours=8))
DEFAULT_END = datetime(2026, 11, 20, tzinfo=_TZ)
DEFAULT_START = DEFAULT_END - timedelta(days=120)

LineKind = Literal["valid", "duplicate", "conflict", "invalid"]

#: Every kind of malformed line the stream contains (the ``reason`` of an invalid line).
INVALID_REASONS: tuple[str, ...] = (
    "broken_json",
    "unknown_type",
    "missing_household_id",
    "org_unit_not_12_digits",
    "org_unit_street_level",
    "timestamp_without_offset",
    "indicator_outside_vocabulary",
    "channel_outside_vocabulary",
    "missing_data",
    "schema_version_0",
)


@dataclass(slots=True)
class StreamSpec:
    """What to generate. Fractions are of the total line count ``events``."""

    events: int = 50_000
    households: int = 10_000
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_END
    seed: int = 0
    #: Valid events whose field app was offline: delivered in a burst days later.
    late_fraction: float = 0.05
    #: Exact re-deliveries of an earlier valid line.
    duplicate_fraction: float = 0.02
    #: Same event_id as an earlier line, different content.
    conflict_fraction: float = 0.001
    invalid_fraction: float = 0.005
    #: Households that generate most of the signal.
    at_risk_fraction: float = 0.03
    streets_per_district: int = 8
    communities_per_street: int = 10
    #: Households registered (``household.registered``) over the span; 0 and a zero
    #: ``transfer_fraction`` give the catalog v1 stream, unchanged for a seed.
    registered_fraction: float = 0.7
    #: Of the registered households, those flagged key_household.
    key_fraction: float = 0.1
    #: Of the registered households, those transferred to another district.
    transfer_fraction: float = 0.02
    #: After the alert; 0 for all three (and the two above) give the catalog v1 stream.
    #: Of the warnings the simulation plans a chair's handling for, those assessed (研判).
    assess_fraction: float = 0.4
    #: Of the warnings assessed medium or high, those referred to a partner agency (联动).
    referral_fraction: float = 0.3
    #: Of the warnings resolved by a chair, those reopened within 30 days.
    reopen_fraction: float = 0.03

    @property
    def after_alert(self) -> bool:
        """Whether the stream has the work after an alert (assessments, referrals …)."""
        return bool(self.assess_fraction or self.reopen_fraction)

    def __post_init__(self) -> None:
        if self.events < 0 or self.households < 1:
            raise ValueError("events must be >= 0 and households >= 1")
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError("start and end must be aware datetimes with start < end")
        noise = self.duplicate_fraction + self.conflict_fraction + self.invalid_fraction
        fractions = (self.late_fraction, self.at_risk_fraction, noise,
                     self.registered_fraction, self.key_fraction, self.transfer_fraction,
                     self.assess_fraction, self.referral_fraction, self.reopen_fraction)
        if any(not 0.0 <= f < 1.0 for f in fractions):
            raise ValueError("fractions must lie in [0, 1)")


class SampleLine(NamedTuple):
    """One delivered line; a NamedTuple because a million of them are built."""

    text: str
    kind: LineKind
    #: Why the line is special: an INVALID_REASONS entry, "late", "redelivery",
    #: "conflict", or "" for an ordinary valid line.
    reason: str


@dataclass(slots=True)
class Counts:
    """What a run produced, so callers can reconcile received = processed + dup + rejected."""

    total: int = 0
    valid: int = 0
    duplicate: int = 0
    conflict: int = 0
    invalid: int = 0
    late: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, reason: str, event_type: str | None) -> None:
        self.total += 1
        if kind == "valid":
            self.valid += 1
            self.late += reason == "late"
            if event_type is not None:
                self.by_type[event_type] = self.by_type.get(event_type, 0) + 1
        elif kind == "duplicate":
            self.duplicate += 1
        elif kind == "conflict":
            self.conflict += 1
        else:
            self.invalid += 1
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


def warning_id(rule_id: str, household_id: str, trigger_event_id: str) -> str:
    """The engine's deterministic warning id (DESIGN.md), so commands can name warnings."""
    digest = hashlib.sha256(f"{rule_id}:{household_id}:{trigger_event_id}".encode())
    return "w-" + digest.hexdigest()[:16]


# --------------------------------------------------------------------------- vocab

HOUR = 3600
DAY = 86_400
_LOCAL = 8 * HOUR
_NEVER = 1 << 62

SCREENING = "screening.visit_recorded"
PETITION = "petition.received"
MED_OPEN = "mediation.opened"
MED_DONE = "mediation.concluded"
FOLLOWUP = "followup.recorded"
GAP = "child.guardianship_gap_recorded"
RESTORED = "child.guardianship_restored"
CASE = "case.resolved"
ACK = "warning.acknowledged"
RESOLVE = "warning.resolved"
REGISTER = "household.registered"
TRANSFER = "household.transferred"
ASSESS = "warning.assessed"
REOPEN = "warning.reopened"
REF_SENT = "referral.sent"
REF_ACCEPTED = "referral.accepted"
REF_DECLINED = "referral.declined"
REF_CLOSED = "referral.closed"
CONSENT = "consent.recorded"
WITHDRAW = "consent.withdrawn"
#: The catalog v2 types of the work after an alert (``StreamSpec.after_alert``).
AFTER_ALERT_TYPES = (ASSESS, REOPEN, REF_SENT, REF_ACCEPTED, REF_DECLINED, REF_CLOSED,
                     CONSENT, WITHDRAW)

#: Activity by local hour: field work 8–18 h, hotline evenings, quiet nights.
_HOUR_WEIGHTS = (
    0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 0.6, 1.5, 4.0, 7.0, 8.0, 7.0,
    4.0, 5.0, 7.0, 7.0, 6.0, 4.0, 2.0, 1.5, 1.0, 0.7, 0.4, 0.3,
)  # fmt: skip

_HARM = frozenset(
    ("domestic_violence_signs", "sexual_violence_signs", "injury_observed", "child_neglect")
)
_SERIOUS = _HARM | {"threats"}

#: Independent per-visit probabilities for an at-risk household (vocabulary order).
_RISK_INDICATORS = (
    ("marital_conflict", 0.40),
    ("threats", 0.14),
    ("domestic_violence_signs", 0.15),
    ("injury_observed", 0.03),
    ("sexual_violence_signs", 0.006),
    ("child_neglect", 0.07),
    ("guardianship_gap", 0.03),
    ("economic_hardship", 0.30),
    ("alcohol_abuse", 0.18),
    ("isolation", 0.08),
)


class _Weighted:
    """A weighted choice by bisect on cumulative weights (``choices`` allocates a list)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum: list[float] = []
        acc = 0.0
        for _, weight in pairs:
            acc += weight
            self.cum.append(acc)
        self.total = acc

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect_right(self.cum, rng.random() * self.total)]


_ROUTINE_VISIT = _Weighted([
    ((), 78.0),
    (("economic_hardship",), 10.0),
    (("isolation",), 5.0),
    (("economic_hardship", "isolation"), 2.0),
    (("alcohol_abuse",), 1.2),
    (("marital_conflict",), 2.5),
    (("marital_conflict", "economic_hardship"), 1.0),
    (("domestic_violence_signs",), 0.2),
    (("child_neglect",), 0.08),
    (("guardianship_gap",), 0.15),
])  # fmt: skip
_CHANNELS = _Weighted([
    ("hotline_12338", 35), ("walk_in", 25), ("wechat", 15), ("online", 12),
    ("referral", 8), ("letter", 5),
])  # fmt: skip
_ROUTINE_CATEGORY = _Weighted([
    ("marriage_family_dispute", 45), ("property_rights", 15), ("other", 15),
    ("domestic_violence", 11), ("child_rights", 9), ("sexual_assault", 0.25),
])  # fmt: skip
_RISK_CATEGORY = _Weighted([
    ("marriage_family_dispute", 40), ("domestic_violence", 36), ("child_rights", 10),
    ("property_rights", 7), ("other", 5), ("sexual_assault", 2),
])  # fmt: skip
_URGENT = {"domestic_violence": 0.12, "sexual_assault": 0.6, "child_rights": 0.1}
_ROUTINE_ACTION = _Weighted([
    ("home_visit", 40), ("phone_call", 38), ("legal_aid", 8), ("psych_counselling", 8),
    ("police_referral", 4), ("shelter", 2),
])  # fmt: skip
_SERIOUS_ACTION = _Weighted([
    ("home_visit", 35), ("phone_call", 15), ("legal_aid", 15), ("psych_counselling", 15),
    ("police_referral", 15), ("shelter", 5),
])  # fmt: skip
_OUTCOME = _Weighted([("reconciled", 36), ("agreement", 36), ("failed", 15), ("referred", 13)])
_RESOLUTION = _Weighted([("resolved_locally", 65), ("referred", 20), ("closed_no_action", 15)])

_SURNAMES = "张王李刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐韩冯于董"
_PHONE_PREFIXES = ("138", "139", "137", "135", "150", "151", "158", "159", "186", "187", "189")
_ROLES = ("女方", "男方", "户主", "当事人", "其母亲")
_GAP_REASONS = (
    "父母均外出务工，由年迈祖母照看",
    "父亲服刑，母亲离家多年无音讯",
    "母亲病故，父亲长期在外打工",
    "父母离异后均未履行监护职责",
    "监护人重病住院，无人照料",
)
_ROUTINE_NOTES = (
    "例行入户走访，家庭和睦，无异常情况",
    "入户宣传《反家庭暴力法》，家庭情况正常",
    "走访了解家庭情况，未发现风险隐患",
    "电话预约后入户，家庭成员关系融洽",
)
_PHRASES: dict[str, tuple[str, ...]] = {
    "marital_conflict": ("夫妻近期因家庭开支多次争吵", "双方因子女教育问题矛盾激化"),
    "threats": ("女方反映男方扬言要“弄死她”", "男方曾以带走孩子相威胁"),
    "domestic_violence_signs": ("女方手臂有淤青，称系摔伤，神情紧张", "邻居反映夜间常听到打骂声"),
    "injury_observed": ("发现女方面部有明显外伤，已建议就医并固定证据",),
    "sexual_violence_signs": ("当事人陈述疑似遭受性侵害，情绪极不稳定",),
    "child_neglect": ("孩子衣着单薄、长期无人照料，未按时上学",),
    "guardianship_gap": ("父母均外出务工，孩子由年迈祖母照看",),
    "intellectual_disability": (
        "家中女儿为智力残疾人（持残疾证）",
        "女方为智力残疾人，表达能力有限",
    ),
    "economic_hardship": ("家庭经济困难，男方失业在家", "低保户，主要靠打零工维持生活"),
    "alcohol_abuse": ("男方长期酗酒，酒后脾气暴躁",),
    "isolation": ("独居，子女在外地，平时少有人来往",),
}
_EXTRA_VALUES = ("3.2.1", "3.3.0-beta", "android-14", "hm-os-4")
#: Which level each default-pack rule raises (DESIGN.md), for the commands.
_RULE_LEVEL = {
    "violence-injury": "red",
    "vulnerable-person-harm": "red",
    "escalating-dispute": "orange",
    "repeat-petitions": "orange",
    "mediation-failed": "yellow",
    "guardianship-no-followup": "yellow",
    "referral-unanswered": "orange",
    "referral-declined": "yellow",
}
#: The risk a chair judges a rule's warnings to carry (研判): violence mostly high,
#: a failed mediation or a missed follow-up mostly low (what backtest precision shows).
_RISK_BY_RULE = {
    rule: _Weighted([("low", low), ("medium", medium), ("high", high)])
    for rule, (low, medium, high) in {
        "violence-injury": (10, 35, 55),
        "vulnerable-person-harm": (15, 40, 45),
        "escalating-dispute": (30, 50, 20),
        "repeat-petitions": (50, 38, 12),
        "mediation-failed": (65, 30, 5),
        "guardianship-no-followup": (45, 45, 10),
        "referral-unanswered": (40, 45, 15),
        "referral-declined": (50, 40, 10),
    }.items()
}
#: Which agency a rule's cases are referred to.
_AGENCY_BY_RULE = {
    "violence-injury": _Weighted([("police", 45), ("health", 20), ("shelter", 15),
                                  ("legal_aid", 10), ("procuratorate", 10)]),
    "vulnerable-person-harm": _Weighted([("civil_affairs", 40), ("police", 35),
                                         ("health", 25)]),
    "escalating-dispute": _Weighted([("police", 40), ("justice", 30), ("legal_aid", 30)]),
    "repeat-petitions": _Weighted([("justice", 40), ("legal_aid", 35), ("court", 25)]),
    "mediation-failed": _Weighted([("court", 45), ("legal_aid", 40), ("justice", 15)]),
    "guardianship-no-followup": _Weighted([("civil_affairs", 70), ("education", 30)]),
    "referral-unanswered": _Weighted([("civil_affairs", 50), ("legal_aid", 50)]),
    "referral-declined": _Weighted([("legal_aid", 60), ("civil_affairs", 40)]),
}
_REF_OUTCOME = _Weighted([("service_provided", 70), ("no_service", 20), ("withdrawn", 10)])
_ASSESS_NOTES = {
    "low": ("经核实系一般家庭矛盾，暂无人身危险", "当事人情绪平稳，已纳入日常走访"),
    "medium": ("存在反复冲突，需持续关注并联系社区民警", "当事人有求助意愿，建议转介法律援助"),
    "high": ("有明确暴力威胁，当事人安全堪忧，建议立即联动", "伤情明显且有再次施暴风险"),
}
_REFERRAL_NOTES = (
    "当事人同意由派出所出具告诫书",
    "请协助核实监护情况并落实临时照料",
    "当事人申请法律援助，联系电话见卷宗",
    "需安排庇护，当事人暂住亲属家",
)
_DECLINE_REASONS = ("不属于本单位管辖范围", "材料不全，请补充后重新转介", "当事人拒绝配合")
_REOPEN_REASONS = ("回访发现矛盾再次激化", "当事人再次来电求助", "邻居反映仍有打骂声")
#: Per level: acknowledgement SLA (hours), P(acknowledged at all), P(within the SLA).
#: Reds get attention fastest but are also the ones that most often overrun.
_HANDLING = {"red": (24, 0.85, 0.7), "orange": (72, 0.8, 0.7), "yellow": (168, 0.65, 0.8)}
_RESOLVE_NOTES = (
    "已上门核实，双方签订调解协议",
    "已协调派出所出具告诫书，持续关注",
    "已转介法律援助中心，当事人情绪稳定",
    "经多次回访，家庭矛盾已化解",
)


_UUID_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4(bits: int) -> str:
    """Same text as ``str(uuid.UUID(int=bits, version=4))``, several times faster."""
    h = (bits & _UUID_KEEP | _UUID_SET).to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Clock:
    """Integer seconds → ISO 8601 with +08:00, and the working-hours warp."""

    __slots__ = ("days", "times", "warp")

    def __init__(self) -> None:
        #: Local day number → "YYYY-MM-DDT", filled by ``day`` on first use.
        self.days: dict[int, str] = {}
        # All 86 400 "HH:MM:SS+08:00" suffixes (~5 MB): formatting becomes one concatenation.
        self.times = [
            f"{h:02d}:{m:02d}:{s:02d}+08:00"
            for h in range(24)
            for m in range(60)
            for s in range(60)
        ]
        self.warp = _warp_table()

    def day(self, day: int) -> str:
        """The date prefix of a local day number, cached."""
        prefix = self.days.get(day)
        if prefix is None:
            prefix = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")
            self.days[day] = prefix
        return prefix

    def iso(self, t: int) -> str:
        """Harbin local time from cached day prefixes and time-of-day suffixes."""
        day, sod = divmod(t + _LOCAL, DAY)
        return (self.days.get(day) or self.day(day)) + self.times[sod]


def _warp_table() -> list[int]:
    """``table[k]``: seconds into a local day after ``k`` of 86 400 equal shares of activity.

    A uniform clock mapped through it is dense in busy hours and sparse at night,
    monotone, and costs one list index per event.
    """
    total = sum(_HOUR_WEIGHTS)
    cum = [0.0]
    for weight in _HOUR_WEIGHTS:
        cum.append(cum[-1] + weight / total)
    table = []
    hour = 0
    for k in range(DAY):
        fraction = k / DAY
        while hour < 23 and cum[hour + 1] <= fraction:
            hour += 1
        share = (fraction - cum[hour]) / (cum[hour + 1] - cum[hour])
        table.append(min(DAY - 1, int((hour + share) * HOUR)))
    return table


def _below(rng: random.Random, n: int) -> int:
    """Uniform in [0, n): ``randrange`` costs several times more and n is small here."""
    return int(rng.random() * n)


def _one(rng: random.Random, items: Sequence[Any]) -> Any:
    """``rng.choice`` without its Python-level overhead (called for most lines)."""
    return items[int(rng.random() * len(items))]


def _daytime(t: int, rng: random.Random) -> int:
    """Move a follow-on instant into working hours (cadres do not visit at 3 a.m.)."""
    sod = (t + _LOCAL) % DAY
    if sod < 8 * HOUR:
        return t - sod + 8 * HOUR + _below(rng, 3 * HOUR)
    if sod >= 19 * HOUR:
        return t - sod + DAY + 8 * HOUR + _below(rng, 3 * HOUR)
    return t


# --------------------------------------------------------------------------- population


@dataclass(slots=True)
class _Population:
    """Households as parallel lists: 100k objects would cost memory and time."""

    ids: list[str]
    community: list[int]
    traits: bytearray
    children: bytearray
    at_risk: list[int]
    petitioners: list[int]
    gap_prone: list[int]


_AT_RISK, _DISABLED, _PETITIONER, _GAP_PRONE = 1, 2, 4, 8


def _community_weights(rng: random.Random, communities: list[str]) -> list[float]:
    """Urban communities are bigger than villages; within a district sizes vary."""
    cum: list[float] = []
    acc = 0.0
    for code in communities:
        county = code[:6]
        base = 3.0 if county in _URBAN else (1.6 if county in _SUBURBAN else 1.0)
        acc += base * rng.uniform(0.5, 1.5)
        cum.append(acc)
    return cum


def _household_traits(rng: random.Random, at_risk_fraction: float) -> tuple[int, int]:
    """Trait bits and number of children for one household."""
    traits = 0
    children = rng.choices((0, 1, 2, 3), (30, 45, 20, 5))[0]
    if rng.random() < at_risk_fraction:
        traits |= _AT_RISK
        traits |= _DISABLED if rng.random() < 0.25 else 0
        traits |= _PETITIONER if rng.random() < 0.35 else 0
        traits |= _GAP_PRONE if children and rng.random() < 0.3 else 0
    else:
        traits |= _DISABLED if rng.random() < 0.01 else 0
        traits |= _GAP_PRONE if children and rng.random() < 0.05 else 0
    return traits, children


def _build_population(rng: random.Random, city: SampleCity, spec: StreamSpec) -> _Population:
    """Place households in communities; ids are hh-<county>-<serial within county>."""
    cum = _community_weights(rng, city.communities)
    serial: dict[str, int] = {}
    pop = _Population([], [], bytearray(), bytearray(), [], [], [])
    for index in range(spec.households):
        c = bisect_right(cum, rng.random() * cum[-1])
        county = city.communities[c][:6]
        serial[county] = serial.get(county, 0) + 1
        traits, children = _household_traits(rng, spec.at_risk_fraction)
        pop.ids.append(f"hh-{county}-{serial[county]:06d}")
        pop.community.append(c)
        pop.traits.append(traits)
        pop.children.append(children)
        if traits & _AT_RISK:
            pop.at_risk.append(index)
        if traits & _PETITIONER:
            pop.petitioners.append(index)
        if traits & _GAP_PRONE:
            pop.gap_prone.append(index)
    return pop


# --------------------------------------------------------------------------- simulation

#: (line, kind, reason, envelope or None): what the simulation yields internally.
Raw = tuple[bytes, LineKind, str, dict[str, Any] | None]
_RING = 4096
#: At most about this share of valid events are initiations (follow-ons are the rest):
#: weights planned on it finish the register sweep a little before the end.
_INITIATED = 0.55


class _Stream:
    """The simulation. Internal: callers use ``generate`` / ``write_jsonl``."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"jiahe-stream:{spec.seed}")
        self.city = build_city(spec.seed, spec.streets_per_district, spec.communities_per_street)
        self.pop = _build_population(self.rng, self.city, spec)
        self.clock = _Clock()
        self.start = int(spec.start.timestamp())
        self.end = int(spec.end.timestamp())
        self._plan_counts()
        self._init_state()
        self._init_actors()

    def _plan_counts(self) -> None:
        """Exact quotas, so a run always emits exactly ``spec.events`` lines."""
        n = self.spec.events
        self.dup_left = round(n * self.spec.duplicate_fraction)
        self.conf_left = round(n * self.spec.conflict_fraction)
        self.inv_left = round(n * self.spec.invalid_fraction)
        self.n_valid = n - self.dup_left - self.conf_left - self.inv_left
        if self.n_valid == 0:  # nothing to re-deliver: all noise is malformed lines
            self.inv_left += self.dup_left + self.conf_left
            self.dup_left = self.conf_left = 0
        self.total = n
        self.emitted = 0
        # Offline windows are per actor; hotline and command events are never late,
        # so the per-window probability is scaled up to hit the requested share.
        self.offline_p = min(1.0, self.spec.late_fraction / 0.8)
        reasons = list(INVALID_REASONS)
        self.rng.shuffle(reasons)
        self.invalid_cycle = reasons

    def _init_state(self) -> None:
        self.created = 0
        self.seq = 0
        self.pending: list[tuple[int, int, int, int, Any]] = []
        self.outbox: list[tuple[int, int, dict[str, Any], bool]] = []
        self.ring: deque[bytes] = deque(maxlen=_RING)  # recent lines, for re-deliveries
        self.petitions: dict[int, list[int]] = {}
        self.disputes: dict[int, list[int]] = {}
        self.disabled_seen: set[int] = set()
        self.open_until: dict[tuple[str, int], int] = {}
        self.gaps: dict[int, int] = {}
        self.mediation_serial: dict[str, int] = {}
        self.invalid_serial = 0
        self.last_delivery = self.start
        self.counts = Counts()
        self.noise_at = _NEVER
        self._plan_noise()
        self.span = self.end - self.start
        self.midnight = self.start - (self.start + _LOCAL) % DAY
        self.clock_base = self.start - self.midnight
        self.clock_step = self.span / max(1, self.n_valid)
        self.warp = self.clock.warp
        initiators: list[tuple[Any, float]] = [
            (self._init_routine_visit, 25.0),
            (self._init_risk_visit, 5.0),
            (self._init_routine_petition, 11.0),
            (self._init_risk_petition, 1.6),
            (self._init_mediation, 1.5),
            (self._init_followup, 3.5),
            (self._init_gap, 0.9),
        ]  # fmt: skip
        initiators += self._register_initiators(sum(w for _, w in initiators))
        self.initiators = _Weighted(initiators)
        self.handlers: list[Callable[[int, int, Any], None]] = [
            self._visit, self._petition, self._mediation_open, self._mediation_done,
            self._followup, self._gap, self._restored, self._case, self._ack, self._resolve,
            self._assess, self._reopen, self._send_referral, self._accept_referral,
            self._decline_referral, self._close_referral, self._withdraw_consent,
        ]  # fmt: skip
        self._init_after_alert()

    def _register_initiators(self, weight: float) -> list[tuple[Any, float]]:
        """The register sweep (catalog v2): registrations, then a few transfers to
        another district. Which households, in which order, and their key flag are
        drawn from a separate generator, so a v1 spec (both fractions 0) draws
        nothing more and keeps its stream. Weights give the wanted counts out of
        the ~``_INITIATED`` share of valid events that initiations are (the rest are
        their follow-on events)."""
        spec = self.spec
        plan = random.Random(f"jiahe-register:{spec.seed}")
        order = list(range(len(self.pop.ids)))
        plan.shuffle(order)
        self.to_register = order[: round(len(order) * spec.registered_fraction)]
        self.key_households = {
            hh for hh in self.to_register if plan.random() < spec.key_fraction
        }
        self.registered_n = 0
        transfers = round(len(self.to_register) * spec.transfer_fraction)
        out: list[tuple[Any, float]] = []
        n = max(self.n_valid, 1) * _INITIATED
        for action, count in ((self._init_registration, len(self.to_register)),
                              (self._init_transfer, transfers)):
            share = min(count / n, 0.5)
            if share > 0:
                out.append((action, weight * share / (1.0 - share)))
        return out

    def _init_after_alert(self) -> None:
        """The work after an alert draws from its own generator, and only when on."""
        self.after_on = self.spec.after_alert
        self.after = random.Random(f"jiahe-after-alert:{self.spec.seed}")
        #: each planned warning's rule (a reopening must know it).
        self.rule_of: dict[str, str] = {}
        #: standing consent per household, as the simulation has emitted it.
        self.consents: dict[int, set[str]] = {}
        self.referral_serial: dict[str, int] = {}
        self.reopened: set[str] = set()

    def _init_actors(self) -> None:
        """One cadre per ~3 communities (cadre-<street9><n>), as DESIGN's example id."""
        self.cadres: list[str] = []
        for code in self.city.communities:
            self.cadres.append(f"cadre-{code[:9]}{(int(code[9:]) - 1) // 3 % 10}")
        #: actor → [phase, crc, last window, its sync instant or -1]
        self.offline: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ driving loop

    def run(self) -> Iterator[Raw]:
        """Yield (line, kind, reason, envelope) in delivery order."""
        # Locals: this loop runs once per event, attribute lookups show in the profile.
        outbox, pending, handlers, rng = self.outbox, self.pending, self.handlers, self.rng
        deliver, initiate = self._deliver, self.initiators.pick
        n_valid, midnight, start, last = self.n_valid, self.midnight, self.start, self.end - 1
        base, step, warp = self.clock_base, self.clock_step, self.warp
        while self.created < n_valid:
            # Count-driven clock: reaches ``end`` exactly when the valid quota is created.
            day, share = divmod(base + int(self.created * step), DAY)
            now = min(max(midnight + day * DAY + warp[share], start), last)
            if pending and pending[0][0] <= now:  # create what is due before delivering,
                t, _, code, hh, payload = heappop(pending)  # or deliveries go out of order
                handlers[code](hh, t, payload)
                continue
            while outbox and outbox[0][0] <= now:
                while self.emitted >= self.noise_at:
                    yield self._noise(now)
                yield deliver()
            initiate(rng)(now)
        while outbox:
            while self.emitted >= self.noise_at:
                yield self._noise(self.end)
            yield self._deliver()
        while self.emitted < self.total:
            yield self._noise(self.end)

    def _plan_noise(self) -> None:
        """Place the next noise line a geometric gap ahead: each remaining line is noise
        with probability (noise owed / lines left), at the cost of one compare per line."""
        noise = self._noise_left()
        if noise == 0:
            self.noise_at = _NEVER
            return
        p = noise / (self.total - self.emitted)
        gap = 0 if p >= 1.0 else int(math.log(1.0 - self.rng.random()) / math.log1p(-p))
        self.noise_at = self.emitted + gap

    def _deliver(self) -> Raw:
        """Pop the next delivered event and remember it for later re-deliveries."""
        _, _, env, late = heappop(self.outbox)
        line = orjson.dumps(env)
        ring = self.ring
        ring.append(line)
        if len(ring) == 1:  # re-deliveries just became possible
            self._plan_noise()
        self.emitted += 1
        counts = self.counts  # inlined Counts.add: this is the hot case
        counts.total += 1
        counts.valid += 1
        by_type = counts.by_type
        by_type[env["type"]] = by_type.get(env["type"], 0) + 1
        if late:
            counts.late += 1
            return line, "valid", "late", env
        return line, "valid", "", env

    # ------------------------------------------------------------------ noise lines

    def _noise_left(self) -> int:
        """Noise lines still owed; re-deliveries only once something was delivered."""
        if self.ring:
            return self.dup_left + self.conf_left + self.inv_left
        return self.inv_left

    def _noise(self, now: int) -> Raw:
        """One duplicate, conflict or invalid line, drawn in proportion to what is left."""
        roll = self.rng.random() * self._noise_left()
        raw = self._noise_line(roll, now)
        self.counts.add(raw[1], raw[2], None)
        self.emitted += 1
        self._plan_noise()
        return raw

    def _noise_line(self, roll: float, now: int) -> Raw:
        """Re-deliveries need an earlier line; until one exists only malformed lines go."""
        if self.ring and roll < self.dup_left:
            self.dup_left -= 1
            return self._ring_pick(), "duplicate", "redelivery", None
        if self.ring and roll < self.dup_left + self.conf_left:
            self.conf_left -= 1
            env = self._conflict_of(orjson.loads(self._ring_pick()), now)
            return orjson.dumps(env), "conflict", "conflict", env
        self.inv_left -= 1
        return self._invalid(now)

    def _ring_pick(self) -> bytes:
        """Mostly an immediate retry (the last few lines), sometimes an old re-sync."""
        size = len(self.ring)
        back = (
            self.rng.randrange(min(size, 32))
            if self.rng.random() < 0.7
            else self.rng.randrange(size)
        )
        return self.ring[size - 1 - back]

    def _conflict_of(self, env: dict[str, Any], now: int) -> dict[str, Any]:
        """Same event_id and household, different content (a field app edited a record)."""
        out = dict(env)
        data = dict(env["data"])
        kind = env["type"]
        if kind == SCREENING:
            data["notes"] = data["notes"] + "（补录更正）"
        elif kind == PETITION:
            data["urgent"] = not data["urgent"]
        elif kind == MED_DONE:
            data["outcome"] = "failed" if data["outcome"] != "failed" else "agreement"
        else:
            shifted = datetime.fromisoformat(env["occurred_at"]) + timedelta(minutes=37)
            out["occurred_at"] = shifted.isoformat()
        out["data"] = data
        if "recorded_at" in out:
            out["recorded_at"] = max(out["recorded_at"], self.clock.iso(now))
        return out

    def _invalid(self, now: int) -> Raw:
        """A malformed line of the next kind in a shuffled cycle, so all kinds appear."""
        rng = self.rng
        reason = self.invalid_cycle[self.invalid_serial % len(self.invalid_cycle)]
        self.invalid_serial += 1
        hh = _below(rng, len(self.pop.ids))
        if reason == "channel_outside_vocabulary":
            channel = rng.choice(("hotline_12345", "fax", "email"))
            data: dict[str, Any] = {"channel": channel, "category": "other", "urgent": False}
            env = self._envelope(PETITION, hh, now, now, data, None)
        else:
            indicators = ["isolation"]
            if reason == "indicator_outside_vocabulary":
                indicators.append(rng.choice(("poverty", "家暴", "unemployed")))
            data = {"indicators": indicators, "notes": "走访记录"}
            env = self._envelope(SCREENING, hh, now, now, data, self._cadre(hh))
        return self._corrupt(env, reason).encode(), "invalid", reason, None

    def _corrupt(self, env: dict[str, Any], reason: str) -> str:
        """Break one thing in an otherwise valid envelope, as a buggy or old client would."""
        rng = self.rng
        if reason == "unknown_type":
            env["type"] = rng.choice(("household.relocated", "petition.withdrawn"))
        elif reason == "missing_household_id":
            del env["household_id"]
        elif reason == "org_unit_not_12_digits":
            code = env["org_unit"]
            env["org_unit"] = code[:-1] if rng.random() < 0.5 else code + "0"
        elif reason == "org_unit_street_level":
            env["org_unit"] = street_of(env["org_unit"])
        elif reason == "timestamp_without_offset":
            env["occurred_at"] = env["occurred_at"][:-6]
        elif reason == "missing_data":
            del env["data"]
        elif reason == "schema_version_0":
            env["schema_version"] = 0
        text = orjson.dumps(env).decode()
        if reason == "broken_json":  # a write cut short: a prefix of an object never parses
            text = text[: rng.randrange(len(text) // 3, len(text) - 1)]
        return text

    # ------------------------------------------------------------------ envelopes

    def _cadre(self, hh: int) -> str:
        """The cadre who covers the household's community (records its visits)."""
        return self.cadres[self.pop.community[hh]]

    def _envelope(
        self, kind: str, hh: int, t: int, delivered: int, data: dict[str, Any], actor: str | None
    ) -> dict[str, Any]:
        """The envelope dict; recorded_at (the gateway's receipt) is usually present."""
        rng, clock = self.rng, self.clock
        days, times = clock.days, clock.times  # Clock.iso inlined: twice per event
        day, sod = divmod(t + _LOCAL, DAY)
        occurred = (days.get(day) or clock.day(day)) + times[sod]
        day, sod = divmod(delivered + _LOCAL, DAY)
        recorded = (days.get(day) or clock.day(day)) + times[sod]
        env: dict[str, Any] = {  # one literal, then deletions: cheaper than inserts
            "event_id": _uuid4(rng.getrandbits(128)),
            "type": kind,
            "schema_version": 1,
            "occurred_at": occurred,
            "recorded_at": recorded,
            "org_unit": self.city.communities[self.pop.community[hh]],
            "household_id": self.pop.ids[hh],
            "actor": actor,
            "data": data,
        }
        roll = rng.random()
        if roll < 0.05:
            del env["recorded_at"]
        if actor is None:
            del env["actor"]
        if roll >= 0.99:  # a newer field app: tolerant readers must keep going
            env["app_version" if roll >= 0.995 else "device_id"] = _one(rng, _EXTRA_VALUES)
        return env

    def _delivery(self, t: int, actor: str | None) -> tuple[int, bool]:
        """When the log receives it: minutes later, or at the next sync after an offline spell.

        Offline spells are 4-day windows per field actor; every event of an offline
        window is delivered together at the evening sync 1–2 days after it closes —
        the burst a real log sees when a cadre's tablet gets signal again.
        """
        if actor is None or not actor.startswith(("cadre-", "mediator-")):
            return t + 5 + _below(self.rng, 600), False
        known = self.offline.get(actor)
        if known is None:
            crc = zlib.crc32(f"{self.spec.seed}:{actor}".encode())
            known = self.offline[actor] = [crc % 4, crc, -1, -1]
        phase, crc, last_window, sync = known
        window = ((t + _LOCAL) // DAY + phase) // 4
        if window != last_window:  # consecutive events of an actor mostly share a window
            sync = self._sync_of(phase, crc, window)
            known[2], known[3] = window, sync
        if sync < 0:
            return t + 30 + _below(self.rng, 1800), False
        return max(sync, t + DAY + HOUR), True

    def _sync_of(self, phase: int, crc: int, window: int) -> int:
        """The evening sync after an offline window, or -1 when the actor was online."""
        roll = zlib.crc32(b"%d" % window, crc)
        if roll >= self.offline_p * 0x1_0000_0000:
            return -1
        sync_day = (window + 1) * 4 - phase + 1
        return sync_day * DAY - _LOCAL + 20 * HOUR + roll % (2 * HOUR)

    def _emit(self, kind: str, hh: int, t: int, data: dict[str, Any], actor: str | None) -> str:
        """Create one valid event: queue it for delivery, return its event_id."""
        delivered, late = self._delivery(t, actor)
        env = self._envelope(kind, hh, t, delivered, data, actor)
        self.seq += 1
        heappush(self.outbox, (delivered, self.seq, env, late))
        self.created += 1
        self.last_delivery = delivered
        return str(env["event_id"])

    def _schedule(self, t: int, code: int, hh: int, payload: Any = None) -> None:
        """Plan a follow-on event; it happens only if ``t`` falls before the stream ends."""
        if t < self.end:
            self.seq += 1
            heappush(self.pending, (t, self.seq, code, hh, payload))

    def _days(self, low: float, high: float) -> int:
        """A uniform delay in seconds between ``low`` and ``high`` days."""
        return int(self.rng.uniform(low, high) * DAY)

    # ------------------------------------------------------------------ initiators

    def _init_routine_visit(self, now: int) -> None:
        self._visit(_below(self.rng, len(self.pop.ids)), now, None)

    def _init_risk_visit(self, now: int) -> None:
        self._visit(self._risky(self.pop.at_risk), now, None)

    def _init_routine_petition(self, now: int) -> None:
        """Ordinary households rarely petition twice in a month: redraw once if this one
        did, so that repeat-petitions is driven by the at-risk petitioners, not chance."""
        hh = _below(self.rng, len(self.pop.ids))
        recent = self.petitions.get(hh)
        if recent and recent[-1] > now - 30 * DAY:
            hh = _below(self.rng, len(self.pop.ids))
        self._petition(hh, now, None)

    def _init_risk_petition(self, now: int) -> None:
        group = self.pop.petitioners if self.rng.random() < 0.6 else self.pop.at_risk
        self._petition(self._risky(group), now, None)

    def _init_mediation(self, now: int) -> None:
        self._mediation_open(_below(self.rng, len(self.pop.ids)), now, None)

    def _init_followup(self, now: int) -> None:
        hh = _below(self.rng, len(self.pop.ids))
        self._followup(hh, now, _ROUTINE_ACTION.pick(self.rng))

    def _init_gap(self, now: int) -> None:
        self._gap(self._risky(self.pop.gap_prone), now, None)

    def _init_registration(self, now: int) -> None:
        """The next household of the sweep is registered (a routine visit once all are)."""
        if self.registered_n >= len(self.to_register):
            self._init_routine_visit(now)
            return
        hh = self.to_register[self.registered_n]
        self.registered_n += 1
        self._emit(REGISTER, hh, now, {"flags": self._flags(hh), "notes": self._register_note(hh)},
                   self._cadre(hh))

    def _flags(self, hh: int) -> list[str]:
        """Register flags from what the simulation knows of the household."""
        rng, traits = self.rng, self.pop.traits[hh]
        flags = []
        if hh in self.key_households:
            flags.append("key_household")
        if self.city.communities[self.pop.community[hh]][:6] not in _URBAN:
            flags.append("rural")
        if traits & _DISABLED:
            flags.append("intellectual_disability")
        if traits & _GAP_PRONE:
            flags.append("left_behind_children")
        if rng.random() < 0.08:
            flags.append("single_parent")
        if not self.pop.children[hh] and rng.random() < 0.06:
            flags.append("elderly_alone")
        return flags

    def _register_note(self, hh: int) -> str:
        """Free text, personal data like a visit's notes (sealed in the log)."""
        surname = _one(self.rng, _SURNAMES)
        return f"{surname}某户，{self.pop.children[hh]}名子女，入户登记。"

    def _init_transfer(self, now: int) -> None:
        """A registered household moves to a community of another district; its later
        events come from there (the transfer itself carries the old owner)."""
        if not self.registered_n:
            self._init_routine_visit(now)
            return
        hh = self.to_register[_below(self.rng, self.registered_n)]
        here = self.pop.community[hh]
        there = _below(self.rng, len(self.city.communities))
        communities = self.city.communities
        while communities[there][:6] == communities[here][:6]:
            there = _below(self.rng, len(communities))
        reason = "moved" if self.rng.random() < 0.8 else "administrative"
        self._emit(TRANSFER, hh, now, {"to_org_unit": communities[there], "reason": reason},
                   self._cadre(hh))
        self.pop.community[hh] = there

    def _risky(self, group: list[int]) -> int:
        """A household from ``group``, or any household when the city has none."""
        if group:
            return group[_below(self.rng, len(group))]
        return _below(self.rng, len(self.pop.ids))

    # ------------------------------------------------------------------ event handlers
    # Codes for _schedule: index into self.handlers.
    VISIT, PET, MOPEN, MDONE, FUP, GAPC, REST, CASEC, ACKC, RESC = range(10)
    ASSESSC, REOPENC, SENTC, ACCEPTC, DECLINEC, CLOSEC, WITHDRAWC = range(10, 17)

    def _visit(self, hh: int, t: int, _: Any) -> None:
        indicators = self._indicators(hh)
        data = {"indicators": indicators, "notes": self._notes(indicators)}
        event_id = self._emit(SCREENING, hh, t, data, self._cadre(hh))
        if indicators:  # most visits find nothing: skip the bookkeeping
            self._visit_rules(hh, t, indicators, event_id)
            self._visit_followons(hh, t, indicators)

    def _indicators(self, hh: int) -> list[str]:
        """Mostly nothing for ordinary homes; independent signals for at-risk ones."""
        traits = self.pop.traits[hh]
        rng = self.rng
        if not traits & _AT_RISK:
            found = list(_ROUTINE_VISIT.pick(rng))
        else:
            found = [name for name, p in _RISK_INDICATORS if rng.random() < p]
        if traits & _DISABLED and rng.random() < 0.6:
            found.append("intellectual_disability")
        return found

    def _notes(self, indicators: list[str]) -> str:
        """Free text with fake personal data (name + phone), for the privacy tests."""
        rng = self.rng
        if indicators:
            body = "；".join([_one(rng, _PHRASES[name]) for name in indicators])
        else:
            body = _one(rng, _ROUTINE_NOTES)
        roll = rng.random()
        if roll < 0.5:
            return f"入户走访：{body}。"
        given = "某某" if roll < 0.85 else "某"
        who = _one(rng, _ROLES) + _one(rng, _SURNAMES) + given
        phone = f"{_one(rng, _PHONE_PREFIXES)}{_below(rng, 100_000_000):08d}"
        return f"入户走访，{who}（电话{phone}）：{body}。"

    def _visit_rules(self, hh: int, t: int, indicators: list[str], event_id: str) -> None:
        """Commands for the red/orange rules this visit obviously triggers."""
        if "intellectual_disability" in indicators:
            self.disabled_seen.add(hh)
        if "marital_conflict" in indicators:
            self._recent(self.disputes, hh, t, 60)
        if "injury_observed" in indicators or "sexual_violence_signs" in indicators:
            self._raised("violence-injury", hh, t, event_id)
        if hh in self.disabled_seen and not _HARM.isdisjoint(indicators):
            self._raised("vulnerable-person-harm", hh, t, event_id)
        if "threats" in indicators and len(self.disputes.get(hh, ())) >= 2:
            self._raised("escalating-dispute", hh, t, event_id)

    def _visit_followons(self, hh: int, t: int, indicators: list[str]) -> None:
        rng = self.rng
        serious = not _SERIOUS.isdisjoint(indicators)
        if serious and rng.random() < 0.75:
            when = _daytime(t + self._days(0.5, 5), rng)
            self._schedule(when, self.FUP, hh, _SERIOUS_ACTION.pick(rng))
        elif indicators and rng.random() < 0.12:
            self._schedule(_daytime(t + self._days(1, 10), rng), self.FUP, hh, "phone_call")
        if serious and rng.random() < 0.08:
            self._schedule(_daytime(t + self._days(20, 60), rng), self.CASEC, hh)
        if "marital_conflict" in indicators and rng.random() < 0.1:
            self._schedule(_daytime(t + self._days(2, 14), rng), self.MOPEN, hh)
        if "guardianship_gap" in indicators and rng.random() < 0.6:
            self._schedule(_daytime(t + self._days(0, 2), rng), self.GAPC, hh)

    def _recent(self, table: dict[int, list[int]], hh: int, t: int, days: int) -> int:
        """Append ``t`` to the household's times, drop those older than ``days``; count."""
        times = table.setdefault(hh, [])
        times.append(t)
        cutoff = t - days * DAY
        while times and times[0] < cutoff:
            times.pop(0)
        return len(times)

    def _petition(self, hh: int, t: int, payload: Any) -> None:
        rng = self.rng
        risky = self.pop.traits[hh] & _AT_RISK
        category = (_RISK_CATEGORY if risky else _ROUTINE_CATEGORY).pick(rng)
        urgent = rng.random() < _URGENT.get(category, 0.03)
        channel = _CHANNELS.pick(rng)
        data = {"channel": channel, "category": category, "urgent": urgent}
        event_id = self._emit(PETITION, hh, t, data, self._petition_actor(hh, channel))
        self._petition_rules(hh, t, category, urgent, event_id)
        self._petition_followons(hh, t, category, burst=payload == "burst")

    def _petition_actor(self, hh: int, channel: str) -> str | None:
        """Hotline operators and reception staff record petitions; web forms have no actor."""
        if channel == "hotline_12338":
            return f"op-12338-{1 + _below(self.rng, 12):02d}"
        if channel in ("online", "wechat"):
            return None
        if channel == "walk_in":
            return self._cadre(hh)
        return f"staff-{self.city.communities[self.pop.community[hh]][:6]}"

    def _petition_rules(self, hh: int, t: int, category: str, urgent: bool, event_id: str) -> None:
        if category in ("marriage_family_dispute", "domestic_violence"):
            self._recent(self.disputes, hh, t, 60)
        if category == "sexual_assault" or (category == "domestic_violence" and urgent):
            self._raised("violence-injury", hh, t, event_id)
        if self._recent(self.petitions, hh, t, 30) >= 3:
            self._raised("repeat-petitions", hh, t, event_id)

    def _petition_followons(self, hh: int, t: int, category: str, burst: bool) -> None:
        rng = self.rng
        if rng.random() < 0.3:
            grave = category in ("domestic_violence", "sexual_assault")
            action = (_SERIOUS_ACTION if grave else _ROUTINE_ACTION).pick(rng)
            self._schedule(_daytime(t + self._days(0.2, 7), rng), self.FUP, hh, action)
        if category in ("marriage_family_dispute", "property_rights") and rng.random() < 0.12:
            self._schedule(_daytime(t + self._days(1, 10), rng), self.MOPEN, hh)
        if rng.random() < 0.05:
            self._schedule(_daytime(t + self._days(10, 45), rng), self.CASEC, hh)
        if not burst and self.pop.traits[hh] & _PETITIONER and rng.random() < 0.4:
            for _ in range(rng.choice((2, 2, 3))):  # keeps calling: ≥ 3 within 30 days
                self._schedule(t + self._days(1, 27), self.PET, hh, "burst")

    def _mediation_open(self, hh: int, t: int, _: Any) -> None:
        county = self.city.communities[self.pop.community[hh]][:6]
        serial = self.mediation_serial[county] = self.mediation_serial.get(county, 0) + 1
        mediation_id = f"med-{county}-{serial:06d}"
        actor = f"mediator-{county}-{self.rng.randrange(1, 9):02d}"
        self._emit(MED_OPEN, hh, t, {"mediation_id": mediation_id}, actor)
        when = _daytime(t + self._days(3, 40), self.rng)
        self._schedule(when, self.MDONE, hh, (mediation_id, actor))

    def _mediation_done(self, hh: int, t: int, payload: Any) -> None:
        mediation_id, actor = payload
        outcome = _OUTCOME.pick(self.rng)
        data = {"mediation_id": mediation_id, "outcome": outcome}
        event_id = self._emit(MED_DONE, hh, t, data, actor)
        rng = self.rng
        if outcome == "failed":
            self._raised("mediation-failed", hh, t, event_id)
        if outcome == "failed" and rng.random() < 0.5:
            action = rng.choice(("legal_aid", "police_referral", "home_visit"))
            self._schedule(_daytime(t + self._days(1, 7), rng), self.FUP, hh, action)
        elif outcome in ("reconciled", "agreement") and rng.random() < 0.3:
            self._schedule(_daytime(t + self._days(1, 10), rng), self.CASEC, hh)

    def _followup(self, hh: int, t: int, action: Any) -> None:
        self._emit(FOLLOWUP, hh, t, {"action": action}, self._cadre(hh))

    def _gap(self, hh: int, t: int, _: Any) -> None:
        """A gap; a timely follow-up usually, sometimes late or never (the yellow rule)."""
        rng = self.rng
        count = self.gaps[hh] = self.gaps.get(hh, 0) + 1
        child = (count - 1) % max(1, self.pop.children[hh]) + 1
        child_ref = f"{self.pop.ids[hh]}-c{child}"
        data = {"child_ref": child_ref, "reason": rng.choice(_GAP_REASONS)}
        event_id = self._emit(GAP, hh, t, data, self._cadre(hh))
        roll = rng.random()
        if roll < 0.55:
            self._schedule(_daytime(t + self._days(0.5, 6), rng), self.FUP, hh, "home_visit")
        else:  # no follow-up within 7 days: the yellow warning fires at the deadline
            due = t + 7 * DAY
            self._raised("guardianship-no-followup", hh, due, event_id, seen=due)
            if roll < 0.7:
                self._schedule(_daytime(t + self._days(8, 20), rng), self.FUP, hh, "home_visit")
        if rng.random() < 0.35:
            self._schedule(_daytime(t + self._days(10, 60), rng), self.REST, hh, child_ref)

    def _restored(self, hh: int, t: int, child_ref: Any) -> None:
        self._emit(RESTORED, hh, t, {"child_ref": child_ref}, self._cadre(hh))

    def _case(self, hh: int, t: int, _: Any) -> None:
        resolution = _RESOLUTION.pick(self.rng)
        self._emit(CASE, hh, t, {"resolution": resolution}, self._cadre(hh))
        for rule in (
            "violence-injury",
            "vulnerable-person-harm",
            "escalating-dispute",
            "repeat-petitions",
        ):
            key = (rule, hh)
            if self.open_until.get(key, -1) > t:
                self.open_until[key] = t

    # ------------------------------------------------------------------ commands

    def _raised(self, rule: str, hh: int, t: int, trigger: str, seen: int | None = None) -> None:
        """Plan the chair's acknowledgement/resolution for a warning the engine will raise.

        Skipped when a warning of the rule is still open for the household (the
        engine raises nothing then). Acks are timed from when the warning can be
        seen — nobody acknowledges before the event reaches the log — and some
        miss the SLA, so escalation has work to do.
        """
        key = (rule, hh)
        if self.open_until.get(key, -1) >= t:
            return
        rng = self.rng
        wid = warning_id(rule, self.pop.ids[hh], trigger)
        community = self.city.communities[self.pop.community[hh]]
        by = f"chair-{community[:6]}" if rng.random() < 0.4 else f"staff-{community[:9]}"
        seen = max(t, self.last_delivery) if seen is None else seen
        sla_hours, p_ack, p_in_time = _HANDLING[_RULE_LEVEL[rule]]
        close = _NEVER
        acked: int | None = None
        if rng.random() < p_ack:
            in_time = rng.random() < p_in_time
            share = rng.uniform(0.02, 0.95) if in_time else rng.uniform(1.05, 3.5)
            acked = seen + int(share * sla_hours * HOUR)
            self._schedule(acked, self.ACKC, hh, (wid, by))
            if rng.random() < 0.7:
                close = _daytime(acked + self._days(0.5, 20), rng)
                self._schedule(close, self.RESC, hh, (wid, by))
        elif rng.random() < 0.1:
            close = _daytime(seen + self._days(0.5, 5), rng)
            self._schedule(close, self.RESC, hh, (wid, by))
        self.open_until[key] = close
        if self.after_on:
            self.rule_of[wid] = rule
            self._plan_assessment(rule, hh, wid, by, acked if acked is not None else seen,
                                  close)

    def _ack(self, hh: int, t: int, payload: Any) -> None:
        wid, by = payload
        self._emit(ACK, hh, t, {"warning_id": wid, "by": by}, by)

    def _resolve(self, hh: int, t: int, payload: Any) -> None:
        wid, by = payload
        note = self.rng.choice(_RESOLVE_NOTES)
        self._emit(RESOLVE, hh, t, {"warning_id": wid, "by": by, "note": note}, by)
        if (self.after_on and wid in self.rule_of and wid not in self.reopened
                and self.after.random() < self.spec.reopen_fraction):
            when = t + int(self.after.uniform(0.5, 25) * DAY)
            self._schedule(when, self.REOPENC, hh, (wid, by, t))

    # ------------------------------------------------------------------ after the alert
    # Every draw here is from ``self.after`` (the main generator only makes the envelopes),
    # and chairs, staff and agencies are online actors: their events reach the log minutes
    # after they happen, in the order the simulation creates them.

    def _plan_assessment(self, rule: str, hh: int, wid: str, by: str, base: int,
                         close: int) -> None:
        """研判 some time after the acknowledgement (or after the warning is seen: the
        assessment then acknowledges it), while the warning is still open."""
        after = self.after
        if after.random() >= self.spec.assess_fraction:
            return
        at = base + int(after.uniform(0.5, 48) * HOUR)
        if at >= close:  # resolved first: assess in between, when there is time to
            if close - base < 2 * HOUR:
                return
            at = base + int(after.uniform(0.2, 0.9) * (close - base))
        risk = _RISK_BY_RULE[rule].pick(after)
        self._schedule(at, self.ASSESSC, hh, (wid, by, risk, rule))

    def _assess(self, hh: int, t: int, payload: Any) -> None:
        wid, by, risk, rule = payload
        after = self.after
        note = _one(after, _ASSESS_NOTES[risk])
        self._emit(ASSESS, hh, t, {"warning_id": wid, "by": by, "risk": risk, "note": note}, by)
        if risk != "low" and after.random() < self.spec.referral_fraction:
            agency = _AGENCY_BY_RULE[rule].pick(after)
            roll = after.random()
            basis = ("emergency" if risk == "high" and roll < 0.35 else
                     "legal_duty" if roll > 0.85 else "consent")
            when = t + int(after.uniform(0.1, 3) * DAY)
            self._schedule(when, self.SENTC, hh, (wid, by, agency, basis))

    def _send_referral(self, hh: int, t: int, payload: Any) -> None:
        """联动; on basis consent, the household's consent is recorded first when it has
        none standing for the agency (the referral follows half an hour or so later)."""
        wid, by, agency, basis = payload
        after = self.after
        if basis == "consent" and agency not in self.consents.get(hh, ()):
            agencies = [agency]
            if after.random() < 0.3:  # consent to a second agency at the same time
                extra = _one(after, ("legal_aid", "civil_affairs", "health"))
                if extra != agency:
                    agencies.append(extra)
            self._emit(CONSENT, hh, t, {"agencies": agencies, "by": by}, by)
            self.consents.setdefault(hh, set()).update(agencies)
            self._schedule(t + 1_200 + int(after.uniform(0, 3_600)), self.SENTC, hh, payload)
            return
        county = self.city.communities[self.pop.community[hh]][:6]
        serial = self.referral_serial[county] = self.referral_serial.get(county, 0) + 1
        referral_id = f"ref-{county}-{serial:06d}"
        data = {"referral_id": referral_id, "agency": agency, "basis": basis,
                "warning_id": wid, "note": _one(after, _REFERRAL_NOTES)}
        sent_id = self._emit(REF_SENT, hh, t, data, by)
        partner = f"{agency}-{county}"
        answer = (referral_id, partner, agency, by)
        roll = after.random()
        if roll < 0.72:
            self._schedule(t + int(after.uniform(2, 60) * HOUR), self.ACCEPTC, hh, answer)
        elif roll < 0.84:
            self._schedule(t + int(after.uniform(4, 70) * HOUR), self.DECLINEC, hh, answer)
        else:  # unanswered for 72 h: the referral-unanswered rule fires
            due = t + 72 * HOUR
            self._raised("referral-unanswered", hh, due, sent_id, seen=due)
            if roll < 0.92:  # answered late after all (resolves that warning)
                late = t + int(after.uniform(75, 140) * HOUR)
                self._schedule(late, self.ACCEPTC, hh, answer)

    def _accept_referral(self, hh: int, t: int, payload: Any) -> None:
        referral_id, partner, agency, by = payload
        after = self.after
        self._emit(REF_ACCEPTED, hh, t, {"referral_id": referral_id, "by": partner}, partner)
        if after.random() < 0.7:
            when = t + int(after.uniform(3, 30) * DAY)
            self._schedule(when, self.CLOSEC, hh, payload)

    def _decline_referral(self, hh: int, t: int, payload: Any) -> None:
        referral_id, partner, _, _ = payload
        data = {"referral_id": referral_id, "by": partner,
                "reason": _one(self.after, _DECLINE_REASONS)}
        event_id = self._emit(REF_DECLINED, hh, t, data, partner)
        self._raised("referral-declined", hh, t, event_id)

    def _close_referral(self, hh: int, t: int, payload: Any) -> None:
        referral_id, partner, agency, by = payload
        after = self.after
        outcome = _REF_OUTCOME.pick(after)
        self._emit(REF_CLOSED, hh, t, {"referral_id": referral_id, "by": partner,
                                       "outcome": outcome}, partner)
        if after.random() < 0.3:  # the household no longer wants the agency involved
            when = t + int(after.uniform(1, 20) * DAY)
            self._schedule(when, self.WITHDRAWC, hh, (agency, by))

    def _withdraw_consent(self, hh: int, t: int, payload: Any) -> None:
        agency, by = payload
        standing = self.consents.get(hh, set())
        if agency in standing:
            standing.discard(agency)
            self._emit(WITHDRAW, hh, t, {"agencies": [agency], "by": by}, by)

    def _reopen(self, hh: int, t: int, payload: Any) -> None:
        """A resolved warning opened again, if it is still the household's latest of its
        rule (DESIGN: no other warning of the rule open); then handled once more."""
        wid, by, resolved = payload
        key = (self.rule_of[wid], hh)
        if self.open_until.get(key) != resolved:
            return
        after = self.after
        self.reopened.add(wid)
        reason = _one(after, _REOPEN_REASONS)
        self._emit(REOPEN, hh, t, {"warning_id": wid, "by": by, "reason": reason}, by)
        close = _NEVER
        acked = t + int(after.uniform(1, 30) * HOUR)
        self._schedule(acked, self.ACKC, hh, (wid, by))
        if after.random() < 0.8:
            close = _daytime(acked + int(after.uniform(1, 15) * DAY), after)
            self._schedule(close, self.RESC, hh, (wid, by))
        self.open_until[key] = close


# --------------------------------------------------------------------------- public API


def generate(spec: StreamSpec) -> Iterator[SampleLine]:
    """The stream in delivery order, exactly ``spec.events`` lines."""
    for line, kind, reason, _ in _Stream(spec).run():
        yield SampleLine(line.decode(), kind, reason)


def write_jsonl(
    spec: StreamSpec, path: str | Path, progress: Callable[[int], None] | None = None
) -> Counts:
    """Write the stream as JSONL (bytes straight from orjson) and count what was written."""
    stream = _Stream(spec)
    buffer: list[bytes] = []
    with open(path, "wb") as out:
        for raw in stream.run():
            buffer.append(raw[0])
            if len(buffer) >= 10_000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
                if progress is not None:
                    progress(stream.emitted)
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    if progress is not None:
        progress(stream.emitted)
    return stream.counts


def _v1(spec: StreamSpec) -> StreamSpec:
    """Every catalog v2 share to 0: the catalog v1 stream of the spec's seed."""
    spec.registered_fraction = spec.transfer_fraction = 0.0
    spec.assess_fraction = spec.referral_fraction = spec.reopen_fraction = 0.0
    return spec


def v1_spec(**fields: Any) -> StreamSpec:
    """A spec of the catalog v1 stream (for before/after comparisons), other fields as given."""
    return _v1(StreamSpec(**fields))


def sample_events(n: int, seed: int = 0, *, v2: bool = False) -> list[dict[str, Any]]:
    """``n`` valid envelopes (no noise) in delivery order, for unit tests of the engine:
    the catalog v1 stream unless ``v2`` (registrations, transfers and the work after an
    alert too)."""
    spec = StreamSpec(
        events=n,
        households=max(20, n // 5),
        seed=seed,
        duplicate_fraction=0.0,
        conflict_fraction=0.0,
        invalid_fraction=0.0,
    )
    if not v2:
        _v1(spec)
    return [env for _, kind, _, env in _Stream(spec).run() if kind == "valid" and env]


def _main(argv: list[str] | None = None) -> int:
    """Benchmark entry point: ``python -m events.sample --events 300000 --out /tmp/x.jsonl``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--households", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/dev/null")
    parser.add_argument("--v1", action="store_true",
                        help="the catalog v1 stream: no registrations, transfers, "
                        "assessments, referrals, consents or reopenings")
    args = parser.parse_args(argv)
    households = args.households or min(100_000, max(1_000, args.events // 5))
    spec = StreamSpec(events=args.events, households=households, seed=args.seed)
    if args.v1:
        _v1(spec)
    began, cpu = time.perf_counter(), time.process_time()
    counts = write_jsonl(spec, args.out)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    # CPU time too: on a shared machine the wall clock also measures the neighbours.
    print(
        f"{counts.total} lines in {elapsed:.2f} s = {counts.total / elapsed:,.0f} lines/s "
        f"(CPU {cpu:.2f} s = {counts.total / cpu:,.0f} lines/s), {households} households"
    )
    print(
        f"valid {counts.valid} (late {counts.late}) duplicate {counts.duplicate} "
        f"conflict {counts.conflict} invalid {counts.invalid}"
    )
    for kind, count in sorted(counts.by_type.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:34s} {count:8d} {100 * count / max(1, counts.valid):5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
