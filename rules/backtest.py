"""Backtest a candidate rule pack against history: which warnings appear, vanish or change.

The same events are replayed twice through the pure engine — once with the
current (base) pack, once with the candidate — with the same explicit
``as_of``, so the two runs differ only by the pack. Warnings are compared by
``warning_id`` (deterministic from rule, household and trigger event):

* ``appear``: raised by the candidate only;
* ``vanish``: raised by the base pack only;
* ``change``: raised by both, but with a different level or a different
  lifecycle history (escalations, acknowledgement, assessment, resolution,
  reopening, their times).

Next to the diff, each rule's **assessed risk**: how the chairs judged (研判,
``warning.assessed``) the warnings it raised in the log — low, medium, high, or
unassessed, each warning counted once by its last assessment — for the base and
the candidate run. A rule's **precision** is the share of its *assessed* warnings
judged medium or high: of the warnings someone looked at, how many were worth
raising. Unassessed warnings are outside it (nobody judged them), so it is None
for a rule with no assessment. A candidate that drops warnings judged low raises
it; one that adds warnings nobody could have judged adds only unassessed ones.

Nothing here does I/O beyond what the caller passes in; the CLI is
``cli.rules``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from events.instants import format_instant
from events.orgunits import district_of
from rules.engine import Engine, Record
from rules.pack import RulePack
from rules.replay import Counts, Replay

Kind = Literal["appear", "vanish", "change"]
KINDS: tuple[Kind, ...] = ("appear", "vanish", "change")
#: Assessed risk (DESIGN ``warning.assessed``), then the column of warnings never assessed.
RISKS: tuple[str, ...] = ("low", "medium", "high")
UNASSESSED = "unassessed"
RISK_COLUMNS: tuple[str, ...] = (*RISKS, UNASSESSED)
#: The risks that count as "worth raising" for precision.
WORTH_RAISING = frozenset({"medium", "high"})


@dataclass(frozen=True, slots=True)
class WarningRun:
    """One warning as a replay saw it: what was raised and everything that happened to it."""

    warning_id: str
    rule_id: str
    household_id: str | None
    level: str
    org_unit: str
    raised_at: str
    history: tuple[tuple[str, ...], ...]
    #: the last assessment's risk (None: never assessed).
    risk: str | None = None

    @property
    def district(self) -> str:
        return district_of(self.org_unit)

    def history_text(self) -> list[str]:
        return [" ".join(step) for step in self.history]


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    base: WarningRun | None
    candidate: WarningRun | None

    @property
    def warning(self) -> WarningRun:
        found = self.candidate if self.candidate is not None else self.base
        assert found is not None
        return found

    def changes(self) -> list[str]:
        """For ``change``: what differs, in words (``level orange→red``, ``history …``)."""
        if self.base is None or self.candidate is None:
            return []
        out = []
        if self.base.level != self.candidate.level:
            out.append(f"level {self.base.level}→{self.candidate.level}")
        if self.base.history != self.candidate.history:
            out.append("history " + "; ".join(self.base.history_text()) + " → "
                       + "; ".join(self.candidate.history_text()))
        return out

    def as_dict(self) -> dict[str, Any]:
        w = self.warning
        row: dict[str, Any] = {
            "change": self.kind, "warning_id": w.warning_id, "rule_id": w.rule_id,
            "household_id": w.household_id, "district": w.district, "org_unit": w.org_unit,
            "level": w.level, "raised_at": w.raised_at,
        }
        if self.kind == "change":
            assert self.base is not None and self.candidate is not None
            row["base"] = {"level": self.base.level, "history": self.base.history_text()}
            row["candidate"] = {"level": self.candidate.level,
                                "history": self.candidate.history_text()}
            row["differences"] = self.changes()
        else:
            row["history"] = w.history_text()
        return row


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """How one rule's warnings were judged: counts per assessed risk, and unassessed."""

    rule_id: str
    low: int = 0
    medium: int = 0
    high: int = 0
    unassessed: int = 0

    @property
    def assessed(self) -> int:
        return self.low + self.medium + self.high

    @property
    def precision(self) -> float | None:
        """Share of the assessed warnings judged medium or high (None: none assessed)."""
        if not self.assessed:
            return None
        return round((self.medium + self.high) / self.assessed, 4)

    def as_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "low": self.low, "medium": self.medium,
                "high": self.high, "unassessed": self.unassessed, "assessed": self.assessed,
                "precision": self.precision}


def risk_profiles(runs: dict[str, WarningRun]) -> dict[str, RiskProfile]:
    """Per rule (sorted), how its warnings were assessed."""
    counts: dict[str, Counter[str]] = {}
    for run in runs.values():
        counts.setdefault(run.rule_id, Counter())[run.risk or UNASSESSED] += 1
    return {rule: RiskProfile(rule, *(c[r] for r in RISK_COLUMNS))
            for rule, c in sorted(counts.items())}


@dataclass
class BacktestResult:
    base_pack: str
    candidate_pack: str
    as_of: int | None
    counts: Counts
    base_warnings: int
    candidate_warnings: int
    differences: list[Difference] = field(default_factory=list)
    #: per rule, the assessed risk of its warnings in each run (``risk_profiles``).
    base_risk: dict[str, RiskProfile] = field(default_factory=dict)
    candidate_risk: dict[str, RiskProfile] = field(default_factory=dict)

    def risk_rows(self) -> list[tuple[str, str, RiskProfile]]:
        """(rule, "base"|"candidate", profile) for every rule of either run, rule order."""
        rows = []
        for rule in sorted(self.base_risk.keys() | self.candidate_risk.keys()):
            for pack, profiles in (("base", self.base_risk),
                                   ("candidate", self.candidate_risk)):
                rows.append((rule, pack, profiles.get(rule, RiskProfile(rule))))
        return rows

    def by(self, key: str) -> dict[str, Counter[str]]:
        """Counts of appear/vanish/change per ``rule_id`` or per ``district``."""
        out: dict[str, Counter[str]] = {}
        for diff in self.differences:
            out.setdefault(getattr(diff.warning, key), Counter())[diff.kind] += 1
        return dict(sorted(out.items()))

    def totals(self) -> Counter[str]:
        return Counter(diff.kind for diff in self.differences)


def _collect(records: Iterable[Record]) -> dict[str, WarningRun]:
    """Warnings by id with their history; records of no warning (referrals) pass by."""
    raised: dict[str, Record] = {}
    history: dict[str, list[tuple[str, ...]]] = {}
    risk: dict[str, str] = {}
    for record in records:
        warning_id = record.get("warning_id")
        kind = str(record["type"])
        if warning_id is None or not kind.startswith("warning."):
            continue
        if kind == "warning.raised":
            raised[warning_id] = record
            history[warning_id] = []
            continue
        step: tuple[str, ...] = (kind.removeprefix("warning."), str(record["at"]))
        if kind == "warning.escalated":
            step += (f"to {record['to_level']}",)
        elif kind == "warning.assessed":
            step += (str(record["risk"]),)
            risk[warning_id] = str(record["risk"])
        history.setdefault(warning_id, []).append(step)
    return {
        wid: WarningRun(wid, r["rule_id"], r["household_id"], r["level"], r["org_unit"],
                        str(r["at"]), tuple(history.get(wid, [])), risk.get(wid))
        for wid, r in raised.items()
    }


def run(pack: RulePack, lines: Sequence[bytes | str], as_of: int | None
        ) -> tuple[dict[str, WarningRun], Counts, int | None]:
    """Replay ``lines`` with ``pack``; warnings by id, the input counts and the clock used."""
    replay = Replay(Engine(pack))
    records = replay.feed_all(lines)
    limit = replay.max_occurred if as_of is None else as_of
    records.extend(replay.finish(limit))
    return _collect(records), replay.counts, limit


def compare(base: dict[str, WarningRun], candidate: dict[str, WarningRun]) -> list[Difference]:
    """Differences ordered by raise time, then warning id (stable output)."""
    out: list[Difference] = []
    for wid in base.keys() | candidate.keys():
        b, c = base.get(wid), candidate.get(wid)
        if b is None:
            out.append(Difference("appear", None, c))
        elif c is None:
            out.append(Difference("vanish", b, None))
        elif (b.level, b.history) != (c.level, c.history):
            out.append(Difference("change", b, c))
    out.sort(key=lambda d: (d.warning.raised_at, d.warning.warning_id))
    return out


def backtest(base: RulePack, candidate: RulePack, lines: Iterable[bytes | str],
             as_of: int | None = None) -> BacktestResult:
    """Replay the same history with both packs and the same clock; compare the warnings."""
    events = [line for line in lines if line.strip()]
    base_runs, counts, limit = run(base, events, as_of)
    candidate_runs, _, _ = run(candidate, events, limit)
    return BacktestResult(
        base_pack=f"{base.pack} v{base.version}",
        candidate_pack=f"{candidate.pack} v{candidate.version}",
        as_of=limit, counts=counts, base_warnings=len(base_runs),
        candidate_warnings=len(candidate_runs),
        differences=compare(base_runs, candidate_runs),
        base_risk=risk_profiles(base_runs),
        candidate_risk=risk_profiles(candidate_runs),
    )


def summary(result: BacktestResult) -> dict[str, Any]:
    totals = result.totals()
    return {
        "base_pack": result.base_pack, "candidate_pack": result.candidate_pack,
        "as_of": format_instant(result.as_of) if result.as_of is not None else None,
        "events": result.counts.as_dict(),
        "base_warnings": result.base_warnings,
        "candidate_warnings": result.candidate_warnings,
        **{kind: totals[kind] for kind in KINDS},
    }
