"""Tiny builders for test events (JSONL lines) and a one-call replay.

Times are integer microseconds since the epoch (``events.instants``) or ISO
strings; event ids are deterministic UUIDs (uuid5 of a name, or of a counter
when no name is given). Every builder returns one JSON line.
"""

from __future__ import annotations

import itertools
import json
import uuid
from functools import lru_cache
from typing import Any

from events.instants import (
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    format_instant,
    parse_instant,
)
from rules.engine import Engine, warning_id_for
from rules.pack import load_pack
from rules.replay import Replay

DAY = MICROS_PER_DAY
HOUR = MICROS_PER_HOUR
US = 1
#: 2026-03-01T08:00:00Z, the start of most test stories.
T0 = parse_instant("2026-03-01T08:00:00Z")
ORG = "230102001001"  # a community in 道里区 (Harbin)

_NAMESPACE = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
_counter = itertools.count(1)


def event_id(name: str | None = None) -> str:
    """A deterministic UUID: uuid5 of ``name`` (or of a fresh counter value)."""
    if name is None:
        name = f"auto-{next(_counter)}"
    else:
        try:
            return str(uuid.UUID(name))
        except ValueError:
            pass
    return str(uuid.uuid5(_NAMESPACE, name))


def iso(at: int | str) -> str:
    return at if isinstance(at, str) else format_instant(at)


def envelope(
    type_: str,
    hh: str,
    at: int | str,
    data: dict[str, Any],
    org: str = ORG,
    eid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The event as a dict (for tests that need to break it)."""
    return {
        "event_id": event_id(eid),
        "type": type_,
        "schema_version": 1,
        "occurred_at": iso(at),
        "org_unit": org,
        "household_id": hh,
        "data": data,
        **extra,
    }


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def visit(
    hh: str, at: int | str, indicators: list[str], org: str = ORG, eid: str | None = None
) -> str:
    data = {"indicators": list(indicators), "notes": ""}
    return line(envelope("screening.visit_recorded", hh, at, data, org, eid))


def petition(
    hh: str,
    at: int | str,
    category: str = "other",
    urgent: bool = False,
    channel: str = "hotline_12338",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"channel": channel, "category": category, "urgent": urgent}
    return line(envelope("petition.received", hh, at, data, org, eid))


def mediation_opened(
    hh: str, at: int | str, mediation_id: str = "m-1", org: str = ORG, eid: str | None = None
) -> str:
    data = {"mediation_id": mediation_id}
    return line(envelope("mediation.opened", hh, at, data, org, eid))


def mediation_concluded(
    hh: str,
    at: int | str,
    outcome: str = "failed",
    mediation_id: str = "m-1",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"mediation_id": mediation_id, "outcome": outcome}
    return line(envelope("mediation.concluded", hh, at, data, org, eid))


def followup(
    hh: str, at: int | str, action: str = "home_visit", org: str = ORG, eid: str | None = None
) -> str:
    return line(envelope("followup.recorded", hh, at, {"action": action}, org, eid))


def gap(
    hh: str,
    at: int | str,
    child_ref: str = "c-1",
    reason: str = "parents away",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"child_ref": child_ref, "reason": reason}
    return line(envelope("child.guardianship_gap_recorded", hh, at, data, org, eid))


def restored(
    hh: str, at: int | str, child_ref: str = "c-1", org: str = ORG, eid: str | None = None
) -> str:
    data = {"child_ref": child_ref}
    return line(envelope("child.guardianship_restored", hh, at, data, org, eid))


def case_resolved(
    hh: str,
    at: int | str,
    resolution: str = "resolved_locally",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    return line(envelope("case.resolved", hh, at, {"resolution": resolution}, org, eid))


def ack(
    hh: str,
    warning_id: str,
    at: int | str,
    by: str = "cadre-1",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"warning_id": warning_id, "by": by}
    return line(envelope("warning.acknowledged", hh, at, data, org, eid))


def resolve(
    hh: str,
    warning_id: str,
    at: int | str,
    by: str = "cadre-1",
    note: str = "",
    org: str = ORG,
    eid: str | None = None,
) -> str:
    data = {"warning_id": warning_id, "by": by, "note": note}
    return line(envelope("warning.resolved", hh, at, data, org, eid))


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


def data_of(decoded: Any) -> dict[str, Any]:
    """The validated ``data`` of a decoded event as a dict (model or TypedDict alike)."""
    data = decoded.event.data
    return dict(data) if isinstance(data, dict) else data.model_dump()


def eid_of(event_line: str) -> str:
    return json.loads(event_line)["event_id"]


def wid(rule_id: str, hh: str, trigger_line_or_eid: str) -> str:
    """The warning id a trigger (a line or an event id) gives for ``rule_id``."""
    trigger = trigger_line_or_eid
    if trigger.lstrip().startswith("{"):
        trigger = eid_of(trigger)
    return warning_id_for(rule_id, hh, trigger)


@lru_cache(maxsize=1)
def default_pack():
    return load_pack()


def engine() -> Engine:
    return Engine(default_pack())


def replay(lines: list[str], as_of: int | str | None = None) -> tuple[Replay, list[dict]]:
    """Feed ``lines`` then finish at ``as_of``; the Replay (for counts) and all records."""
    rp = Replay(engine())
    records = rp.feed_all(lines)
    limit = parse_instant(as_of) if isinstance(as_of, str) else as_of
    records += rp.finish(limit)
    return rp, records


def run(lines: list[str], as_of: int | str | None = None) -> list[dict]:
    return replay(lines, as_of)[1]


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


def raised(records: list[dict], rule_id: str | None = None) -> list[dict]:
    return [
        r
        for r in records
        if r["type"] == "warning.raised" and (rule_id is None or r["rule_id"] == rule_id)
    ]


def rules_raised(records: list[dict]) -> list[str]:
    return [r["rule_id"] for r in raised(records)]
