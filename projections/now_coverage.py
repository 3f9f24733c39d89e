"""The coverage ledger "now", from the ``household_coverage`` pre-aggregate.

A coverage ledger reads every registered household of its scope (a city: ~7·10⁵
at 10M events), so it is one scan of numbers, grouped by owning community:

* owner: the first registration's community, moved by each valid transfer after
  it (from the owner, to another community). Transfers before the first
  registration never count — the registration sets the owner — nor do
  re-registrations, which must come from the owner;
* key household: the last registration's flag, when that registration is
  certainly valid — it is the only one, or no transfer followed the first and it
  came from the first's community;
* the scan decides the owner when no transfer followed the first registration, or
  when the household's only transfer did;
* everything else — several transfers, re-registered households with a transfer,
  or whose last registration came from another community — is the *rare* path:
  counted in the scan as community 0, then folded in full from ``household_owner``
  (the raw path's rules, ``ledger_sql.ownership``) and merged in Python.

Exact like the raw path (``ledger_sql.coverage_facts``): the aggregates are
min / max / set union, so re-sent rows change nothing, and only an ``as_of`` that
cuts nothing off comes here (``projections.now.resolve``).
"""

from __future__ import annotations

from typing import Any

from projections import ledger_common as lc
from projections import ledger_sql
from projections.schema import BEFORE_ALL, HOUSEHOLD_COVERAGE, HOUSEHOLD_OWNER, NO_OFFSET
from projections.warehouse.rows import sql_string

Row = dict[str, Any]

#: The community of the rare path's households in ``counts_sql``.
RARE = "0"

_FIRST, _LAST = "first_registration", "last_registration"
_SINGLE = f"{_LAST}.1 = {_FIRST}.1"
_NO_LATER_TRANSFER = f"last_transfer < {_FIRST}.1"
_SAME_COMMUNITY = f"{_LAST}.2 = {_FIRST}.2"
_COMMON = f"({_SINGLE} OR ({_NO_LATER_TRANSFER} AND {_SAME_COMMUNITY}))"
_ONE_TRANSFER = "transfers[1]"
#: The owner, or 0 for the rare path. No lambda: a fold over every row's (mostly empty)
#: transfer array cost as much as the rest of the scan.
_OWNER = f"""multiIf(
    NOT {_COMMON}, toUInt64(0),
    {_NO_LATER_TRANSFER}, {_FIRST}.2,
    length(transfers) = 1,
      if({_ONE_TRANSFER}.2 = {_FIRST}.2 AND {_ONE_TRANSFER}.3 != 0
         AND {_ONE_TRANSFER}.3 != {_FIRST}.2, {_ONE_TRANSFER}.3, {_FIRST}.2),
    toUInt64(0))"""


def _in_scope(column: str, district: str | None) -> str:
    """The rare marker (0) or an owner in ``district`` (None: anywhere)."""
    if district is None:
        return "1"
    low = int(district[:6]) * 1_000_000
    return f"{column} = 0 OR {column} BETWEEN {low} AND {low + 999_999}"


def counts_sql(district: str | None, as_of: int) -> str:
    """Per owning community (``community``, a code; ``RARE`` for the rare path's
    households, whatever their district), the ledger's counts."""
    return ledger_sql.coverage(f"""(
  SELECT c_owner AS c_org, c_key, last_visit_us AS c_last_visit,
    last_visit_us != {BEFORE_ALL} AS c_visited
  FROM (
    SELECT {_OWNER} AS c_owner, {_LAST}.3 AS c_key, last_visit_us
    FROM {HOUSEHOLD_COVERAGE} FINAL
    WHERE {_FIRST}.1 != {NO_OFFSET})
  WHERE {_in_scope("c_owner", district)}
)""", as_of)


def rare_facts(district: str | None) -> str:
    """``ledger_sql.coverage_facts``' columns for the rare path's households, folded
    from ``household_owner`` (their few keys: one index lookup each)."""
    rare = (
        f"(SELECT household_key FROM {HOUSEHOLD_COVERAGE} FINAL "
        f"WHERE {_FIRST}.1 != {NO_OFFSET} AND {_OWNER} = 0)"
    )
    in_district = (
        "" if district is None else f" AND startsWith(c_org, {sql_string(district[:6])})"
    )
    return f"""(
  SELECT household_key, c_org, toUInt8(has(c_flags, {sql_string(lc.KEY_FLAG)})) AS c_key,
    last_visit_us AS c_last_visit, last_visit_us != {BEFORE_ALL} AS c_visited
  FROM (
    SELECT household_key,
      {ledger_sql.ownership("first.2", "moves", "visits", "c_")}, last_visit_us
    FROM (
      SELECT household_key, min(first) AS first, groupUniqArrayArray(moves) AS moves,
        groupUniqArrayArray(visits) AS visits, max(last_visit_us) AS last_visit_us
      FROM {HOUSEHOLD_OWNER} WHERE household_key IN {rare}
      GROUP BY household_key))
  WHERE c_registered = 1{in_district}
)"""


def merge_counts(common: list[Row], rare: list[Row]) -> list[Row]:
    """The scan's rows without the rare marker, plus the rare path's, per community,
    ordered by community."""
    fields = ("registered", "covered", "key_registered", "key_covered")
    merged: dict[str, Row] = {}
    for row in [r for r in common if r["community"] != RARE] + rare:
        into = merged.setdefault(row["community"], dict.fromkeys(fields, 0))
        for name in fields:
            into[name] += int(row[name])
    return [{"community": c, **merged[c]} for c in sorted(merged)]


def has_rare(common: list[Row]) -> bool:
    return any(r["community"] == RARE for r in common)


__all__ = ["RARE", "counts_sql", "has_rare", "merge_counts", "rare_facts"]
