"""Envelopes and lifecycle dicts → Arrow tables in the warehouse's column order.

Only catalog fields are picked from ``data`` by name, so free text
(``notes``, ``note``) and unknown extra keys can never reach the warehouse.
Tables are built column-wise (the insert hot path); either backend then
ships one Arrow table per insert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from events.instants import parse_instant
from events.orgunits import district_of, street_of
from projections import schema

#: ``data`` fields copied verbatim (all optional, None when absent). Free text —
#: visit ``notes``, resolution ``note``, the guardianship gap ``reason`` (it
#: describes a child's family situation) — is personal data and never copied.
DATA_FIELDS: tuple[str, ...] = (
    "channel",
    "category",
    "urgent",
    "action",
    "outcome",
    "mediation_id",
    "child_ref",
    "resolution",
    "warning_id",
    "to_org_unit",
    "risk",
    "referral_id",
    "agency",
    "basis",
)
#: ``data`` list fields (an absent list is stored empty): visit indicators, the
#: registration's coded flags and the agencies of a consent.
LIST_FIELDS: tuple[str, ...] = ("indicators", "flags", "agencies")

RAISED = "warning.raised"
ESCALATED = "warning.escalated"
REFERRAL_PREFIX = "referral."


@dataclass(frozen=True, slots=True)
class RaiseInfo:
    """The warning attributes copied onto its later lifecycle rows."""

    rule_id: str | None
    level: str | None
    org_unit: str | None


def _table(name: str, columns: Mapping[str, Any]) -> pa.Table:
    """``name``'s columns picked from ``columns`` (Python lists, or Arrow arrays as they are)."""
    target = schema.arrow_schema(name)
    arrays = [
        column if isinstance(column := columns[f.name], pa.Array) else pa.array(column, type=f.type)
        for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


def _optional_instant(text: str | None) -> int | None:
    return None if text is None else parse_instant(text)


def instant_array(texts: list[str | None], arrow_type: pa.DataType) -> pa.Array:
    """ISO 8601 texts (with offsets) as an Arrow timestamp column.

    Arrow's own ISO parser does it ~50× faster than Python; should it refuse a
    spelling that validation accepted, the batch falls back to the exact
    Python parser rather than fail the flush.
    """
    try:
        return pa.array(texts, type=pa.string()).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_optional_instant(t) for t in texts], type=arrow_type)


_DATA_TYPE = pa.struct(
    [pa.field(name, pa.list_(pa.string())) for name in LIST_FIELDS]
    + [pa.field(c.name, c.arrow_type) for c in schema.EVENT_COLUMNS if c.name in DATA_FIELDS]
)
#: The envelope as Arrow reads it: only these keys are ever looked at.
_ENVELOPE_TYPE = pa.struct(
    [
        pa.field("event_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("schema_version", pa.uint16()),
        pa.field("actor", pa.string()),
        pa.field("offset", pa.uint64()),
        pa.field("data", _DATA_TYPE),
    ]
)


def event_table(events: Sequence[Mapping[str, Any]], keys: Mapping[str, str]) -> pa.Table:
    """The ``events`` rows for accepted envelopes (dicts; instants as UTC microseconds).

    Arrow converts the envelopes against a struct type naming only catalog
    fields (C++ speed, and keys such as ``notes`` are never even read);
    Python handles what needs the project's helpers: instants, org-unit
    parents and the pseudonym (``keys``: household_id → household_key).
    """
    envelope = pa.array(events, type=_ENVELOPE_TYPE)
    parts = dict(zip(_ENVELOPE_TYPE.names, envelope.flatten(), strict=True))
    data = dict(zip(_DATA_TYPE.names, parts.pop("data").flatten(), strict=True))
    for name in LIST_FIELDS:
        values = data[name]
        data[name] = pc.if_else(pc.is_null(values), pa.scalar([], type=values.type), values)
    org_units: list[str] = [e["org_unit"] for e in events]
    households: list[str] = [e["household_id"] for e in events]
    python_cols: dict[str, list[Any]] = {
        "occurred_at": [e["occurred_at"] for e in events],
        "recorded_at": [e.get("recorded_at") for e in events],
        "org_unit": org_units,
        "street": [street_of(o) for o in org_units],
        "district": [district_of(o) for o in org_units],
        "household_key": [keys[h] for h in households],
    }
    target = schema.arrow_schema(schema.EVENTS)
    arrays = [
        instant_array(python_cols[f.name], f.type)
        if f.name in _INSTANT_COLUMNS
        else pa.array(python_cols[f.name], type=f.type)
        if f.name in python_cols
        else (parts.get(f.name) or data[f.name])
        for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


_INSTANT_COLUMNS = frozenset({"occurred_at", "recorded_at"})


def warning_tables(
    records: Sequence[Mapping[str, Any]],
    key_of: Callable[[str], str],
    raises: Mapping[str, RaiseInfo],
) -> tuple[pa.Table, pa.Table]:
    """The ``lifecycle`` rows and the ``warning_transitions`` rows of the same records;
    non-raise rows get their warning's attributes from ``raises``.

    Transitions carry the ``lifecycle`` columns plus an assessment's risk and a
    transfer's units: the shared columns are built once for both tables.
    """
    cols = _warning_columns(records, key_of, raises)
    lifecycle = _table(schema.LIFECYCLE, cols)
    for name in ("risk", "from_org_unit", "to_org_unit"):
        cols[name] = [record.get(name) for record in records]
    return lifecycle, _table(schema.WARNING_TRANSITIONS, cols)


def referral_table(
    records: Sequence[Mapping[str, Any]], key_of: Callable[[str], str]
) -> pa.Table:
    """The ``referral_records`` rows (coded fields only: a referral's note never is one)."""
    cols: dict[str, list[Any]] = {c.name: [] for c in schema.REFERRAL_COLUMNS}
    for record in records:
        cols["seq"].append(record["seq"])
        cols["type"].append(record["type"])
        cols["referral_id"].append(record["referral_id"])
        cols["household_key"].append(key_of(record["household_id"]))
        for name in ("agency", "basis", "warning_id", "outcome"):
            cols[name].append(record.get(name))
        cols["at"].append(parse_instant(record["at"]))
    cols["agency"] = [a or "" for a in cols["agency"]]
    return _table(schema.REFERRAL_RECORDS, cols)


def is_referral(record: Mapping[str, Any]) -> bool:
    """A referral's record (it names a referral, not a warning)."""
    return str(record["type"]).startswith(REFERRAL_PREFIX)


def _warning_columns(
    records: Sequence[Mapping[str, Any]],
    key_of: Callable[[str], str],
    raises: Mapping[str, RaiseInfo],
) -> dict[str, Any]:
    """The columns of ``lifecycle`` (lists, and ``at`` already an Arrow column)."""
    cols: dict[str, Any] = {c.name: [] for c in schema.TABLE_COLUMNS[schema.LIFECYCLE]}
    seqs, kinds, warnings = cols["seq"], cols["type"], cols["warning_id"]
    rule_ids, households, levels = cols["rule_id"], cols["household_key"], cols["level"]
    org_units, districts = cols["org_unit"], cols["district"]
    handling_levels, handling_units = cols["handling_level"], cols["handling_org_unit"]
    from_levels, to_levels = cols["from_level"], cols["to_level"]
    instants: list[str | None] = []
    for record in records:
        kind = record["type"]
        info = raise_info(record) if kind == RAISED else raises.get(record["warning_id"])
        org_unit = info.org_unit if info else None
        seqs.append(record["seq"])
        kinds.append(kind)
        warnings.append(record["warning_id"])
        rule_ids.append(info.rule_id if info else None)
        household = record.get("household_id")  # None: a district-level warning
        households.append("" if household is None else key_of(household))
        levels.append(info.level if info else None)
        org_units.append(org_unit)
        districts.append(district_of(org_unit) if org_unit else None)
        to_level = record.get("to_level")
        handling_levels.append(to_level if kind == ESCALATED else record.get("handling_level"))
        handling_units.append(record.get("handling_org_unit"))
        from_levels.append(record.get("from_level"))
        to_levels.append(to_level)
        instants.append(record["at"])
    cols["at"] = instant_array(instants, schema.arrow_schema(schema.LIFECYCLE).field("at").type)
    return cols


def raise_info(record: Mapping[str, Any]) -> RaiseInfo:
    return RaiseInfo(record.get("rule_id"), record.get("level"), record.get("org_unit"))


def directory_table(keys: Mapping[str, str]) -> pa.Table:
    """``household_directory`` rows from a household_key → household_id mapping."""
    return _table(
        schema.DIRECTORY,
        {"household_key": list(keys), "household_id": list(keys.values())},
    )


def sql_string(value: str) -> str:
    """A ClickHouse string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
