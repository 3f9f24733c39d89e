"""The ledgers as ClickHouse SQL — one dialect for chdb and a ClickHouse server.

Every statement takes an explicit ``as_of`` (integer microseconds, inlined as
an integer literal, so no quoting is involved) and reads with FINAL so that
re-sent rows count once. Instants come back as Int64 microseconds and are
formatted in Python, which keeps backends' datetime conversions out of the
result. ``ledgers.py`` turns the rows into ledger dicts.
"""

from __future__ import annotations

from events.instants import MICROS_PER_DAY
from privacy.pseudonym import ERASED_PREFIX
from projections import ledger_common as lc
from projections import reopened
from projections.schema import BOUNDS, COMMUNITY_CODE, DIRECTORY, EVENTS, LIFECYCLE
from projections.warehouse.rows import sql_string

_HANDLING = "['community', 'street', 'district', 'city']"
_SEVERITY = "['yellow', 'orange', 'red']"
#: Unmatched LEFT JOIN columns must be type defaults ([] / 0), whatever the server profile says.
_SETTINGS = "SETTINGS join_use_nulls = 0"


def _s(value: str) -> str:
    return sql_string(value)


def _at_most(column: str, as_of: int) -> str:
    return f"{column} <= fromUnixTimestamp64Micro(toInt64({int(as_of)}), 'UTC')"


def data_bounds() -> str:
    """Largest occurred_at and at in the data (the default 'now'); NULL when empty.
    Read from the ``data_bounds`` pre-aggregate: a few rows, not a 10M-row scan."""
    return (
        f"SELECT maxOrNullIf(max_us, source = {_s(EVENTS)}) AS ev, "
        f"maxOrNullIf(max_us, source = {_s(LIFECYCLE)}) AS lc FROM {BOUNDS}"
    )


def _directory(keys: str | None = None) -> str:
    scope = f" WHERE household_key IN {keys}" if keys else ""
    return f"(SELECT household_key, household_id, 1 AS present FROM {DIRECTORY} FINAL{scope})"


def _lifecycle(as_of: int, scope: str = "") -> str:
    return (
        f"(SELECT *, toUnixTimestamp64Micro(at) AS us FROM {LIFECYCLE} FINAL "
        f"WHERE {_at_most('at', as_of)}{scope})"
    )


def _events(
    as_of: int, types: tuple[str, ...] | None = None, keys: str | None = None
) -> str:
    only = f" AND type IN ({', '.join(_s(t) for t in types)})" if types else ""
    scope = f" AND household_key IN {keys}" if keys else ""
    return (
        f"(SELECT household_key, type, org_unit, indicators, child_ref, `offset` AS off, "
        f"flags, to_org_unit, "
        f"toUnixTimestamp64Micro(occurred_at) AS us FROM {EVENTS} FINAL "
        f"WHERE {_at_most('occurred_at', as_of)}{only}{scope})"
    )


# Ownership (DESIGN "Ownership"): a fold over a household's registrations and
# transfers in processing (offset) order, from the owner its first event set. The
# state is (owner, registered, flags, offset of the first registration, latest
# occurred_at of a valid registration); a move that breaks a condition keeps it.
_OWNED_TYPE = "Tuple(String, UInt8, Array(String), UInt64, Int64)"
#: (offset, type, org unit, to_org_unit or '', flags, occurred_at) of a raw events row.
MOVE_OF_ROW = (
    "(off, toString(type), toString(org_unit), "
    "ifNull(CAST(to_org_unit, 'Nullable(String)'), ''), CAST(flags, 'Array(String)'), us)"
)
MOVE_TYPES = f"({_s(lc.REGISTERED)}, {_s(lc.TRANSFERRED)})"
_COMMUNITY = COMMUNITY_CODE
NO_VISITS = "CAST([], 'Array(Tuple(UInt64, Int64))')"


def ownership(first_org: str, moves: str, visits: str, prefix: str = "h_") -> str:
    """Select-list items naming a household's ``{prefix}org`` (its owner),
    ``{prefix}registered`` (0/1), ``{prefix}flags`` (sorted) and
    ``{prefix}last_screening`` (L of ``screening-overdue``; NULL unless registered),
    from its first event's org unit, its moves (``MOVE_OF_ROW`` tuples, any order) and
    its visits ((offset, occurred_at) tuples)."""
    reg, moved = _s(lc.REGISTERED), _s(lc.TRANSFERRED)
    owned = f"{prefix}owned"

    def state(*items: str) -> str:
        return f"CAST(({', '.join(items)}), {_s(_OWNED_TYPE)})"

    fold = f"""arrayFold((acc, m) -> multiIf(
      m.2 = {reg} AND acc.2 = 0, {state("m.3", "1", "m.5", "m.1", "m.6")},
      m.2 = {reg} AND m.3 = acc.1, {state("acc.1", "1", "m.5", "acc.4", "greatest(acc.5, m.6)")},
      m.2 = {moved} AND m.3 = acc.1 AND {_COMMUNITY.format("m.4")} AND m.4 != acc.1,
        {state("m.4", "acc.2", "acc.3", "acc.4", "acc.5")},
      acc), arraySort({moves}), {state(first_org, "0", "[]", "0", "0")})"""
    after = f"arrayMap(v -> if(v.1 > {owned}.4, v.2, {owned}.5), {visits})"
    return f"""{fold} AS {owned},
    {owned}.1 AS {prefix}org, {owned}.2 AS {prefix}registered,
    arraySort({owned}.3) AS {prefix}flags,
    if({owned}.2 = 1, arrayMax(arrayPushBack({after}, {owned}.5)), NULL)
      AS {prefix}last_screening"""


# District scoping of the warning and household ledgers (a dashboard asks for one
# district of 18): every ledger row of a district needs a record *in* that district
# — a household's owner is one of its events' org units or a transfer's to_org_unit,
# a warning's org unit is its raise's — so restricting the inputs to the keys that
# have such a record first, then aggregating and applying the exact HAVING filter, gives the
# same rows while grouping, joining and reading the directory for ~1/18 of the data.
# (Rows re-sent before a merge only repeat a key: the key sets need no FINAL.)


def _district_prefix(district: str | None) -> str | None:
    return None if district is None else district[:6]


def _in_prefix(prefix: str) -> str:
    return f"startsWith(org_unit, {_s(prefix)})"


def _event_keys(as_of: int, district: str | None) -> str | None:
    """Households with an event ≤ as_of in the district; None: all."""
    if district is None:
        return None
    arrived = f"startsWith(ifNull(to_org_unit, ''), {_s(district[:6])})"
    return (
        f"(SELECT household_key FROM {EVENTS} WHERE ({_in_prefix(district[:6])} OR {arrived}) "
        f"AND {_at_most('occurred_at', as_of)})"
    )


def _raised_within(as_of: int, prefix: str | None, column: str) -> str | None:
    """``column`` (warning_id / household_key) of warnings raised ≤ as_of under ``prefix``."""
    if prefix is None:
        return None
    return (
        f"(SELECT {column} FROM {LIFECYCLE} WHERE type = {_s(lc.RAISED)} "
        f"AND {_in_prefix(prefix)} AND {_at_most('at', as_of)})"
    )


def _prefix_filter(column: str, prefix: str | None) -> str:
    return "" if prefix is None else f" AND startsWith({column}, {_s(prefix)})"


def _district_filter(column: str, district: str | None) -> str:
    return _prefix_filter(column, _district_prefix(district))


def _shown_id(directory: str, key: str) -> str:
    """The household_id a ledger shows (the erased label without a directory row): the
    ledgers' sort key, so that SQL can page in the same order Python sorts."""
    erased = f"concat({_s(ERASED_PREFIX)}, {key})"
    return f"if({directory}.present = 1, {directory}.household_id, {erased})"


def warning_facts(as_of: int, prefix: str | None) -> str:
    """Per warning raised ≤ as_of whose org unit starts with ``prefix`` (None: all):
    its raise's attributes and its transitions ≤ as_of. Shared by the warning
    ledger and the KPIs (``projections.kpis``), so both read the same semantics."""
    raised, esc = _s(lc.RAISED), _s(lc.ESCALATED)
    ids = _raised_within(as_of, prefix, "warning_id")
    scope = f" AND warning_id IN {ids}" if ids else ""
    return f"""(
  SELECT warning_id,
    anyIf(rule_id, type = {raised}) AS w_rule,
    anyIf(level, type = {raised}) AS w_level,
    anyIf(household_key, type = {raised}) AS w_key,
    anyIf(org_unit, type = {raised}) AS w_org,
    minIf(us, type = {raised}) AS raised_us,
    minIfOrNull(us, type = {_s(lc.ACKNOWLEDGED)}) AS ack_us,
    minIfOrNull(us, type = {_s(lc.RESOLVED)}) AS resolved_us,
    countIf(type = {esc}) AS escalations,
    anyIf(handling_level, type = {raised}) AS w_raised_handling,
    anyIf(handling_org_unit, type = {raised}) AS w_raised_handling_org,
    if(escalations > 0, argMaxIf(to_level, (us, seq), type = {esc}),
       w_raised_handling) AS w_handling,
    if(escalations > 0, argMaxIf(handling_org_unit, (us, seq), type = {esc}),
       w_raised_handling_org) AS w_handling_org,
    {_HANDLING}[greatest(indexOf({_HANDLING}, ifNull(w_raised_handling, '')),
                         maxIf(indexOf({_HANDLING}, ifNull(to_level, '')), type = {esc}))]
      AS w_highest
  FROM {_lifecycle(as_of, scope)}
  GROUP BY warning_id
  HAVING countIf(type = {raised}) > 0{_prefix_filter("w_org", prefix)}
)"""


def warnings(
    as_of: int,
    district: str | None,
    *,
    limit: int | None = None,
    offset: int = 0,
    facts: str | None = None,
) -> str:
    """One row per warning raised ≤ as_of, with its transitions ≤ as_of, in ledger
    order (raise instant, id); ``limit``/``offset`` page it before the directory join.

    ``facts``: a cheaper source of the same per-warning columns as ``warning_facts``
    (the pre-aggregate, ``projections.now``), whose page also names the directory
    rows to read (cheap to compute twice, unlike the raw aggregate)."""
    prefix = _district_prefix(district)
    order = "raised_us, warning_id"
    keys = _raised_within(as_of, prefix, "household_key")
    if facts is None:
        facts = warning_facts(as_of, prefix)
    else:
        keys = f"(SELECT w_key FROM {facts} ORDER BY {order}{page(limit, offset)})"
    return f"""
SELECT w.warning_id AS warning_id, w.w_rule AS rule_id, w.w_level AS level,
       w.w_key AS household_key, d.household_id AS household_id, d.present AS present,
       w.w_org AS org_unit, w.raised_us AS raised_us, w.ack_us AS ack_us,
       w.resolved_us AS resolved_us, w.escalations AS escalations,
       w.w_handling AS handling_level, w.w_handling_org AS handling_org_unit,
       w.w_highest AS highest_handling_level
FROM (SELECT * FROM {facts} ORDER BY {order}{page(limit, offset)}) AS w
LEFT JOIN {_directory(keys)} AS d ON w.w_key = d.household_key
ORDER BY {order}
{_SETTINGS}"""


def page(limit: int | None, offset: int) -> str:
    """`` LIMIT …`` for a page of an ordered result ('' for everything)."""
    if limit is None and offset == 0:
        return ""
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError("limit and offset must not be negative")
    return f" LIMIT {int(offset)}, {(1 << 63) - 1 if limit is None else int(limit)}"


def _open_warnings(as_of: int, keys: str | None = None) -> str:
    """Per household: warnings raised and not resolved ≤ as_of (a reopened one: not
    since its latest reopening, ``projections.reopened``), and their top severity."""
    raised = _s(lc.RAISED)
    scope = f" AND warning_id NOT IN {reopened.REOPENED_IDS}"
    if keys:
        scope += f" AND household_key IN {keys}"
    return f"""(
  SELECT o_key AS household_key, count() AS open_warnings, max(o_severity) AS severity
  FROM (
    SELECT warning_id, anyIf(household_key, type = {raised}) AS o_key,
           indexOf({_SEVERITY}, ifNull(anyIf(level, type = {raised}), '')) AS o_severity
    FROM {_lifecycle(as_of, scope)}
    GROUP BY warning_id
    HAVING countIf(type = {raised}) > 0 AND countIf(type = {_s(lc.RESOLVED)}) = 0
    UNION ALL
    SELECT * FROM {reopened.open_of_households(as_of, keys)}
  )
  GROUP BY o_key
)"""


def household_facts(as_of: int, district: str | None) -> str:
    """Per household with an event ≤ as_of whose owner is in ``district``:
    the household ledger's columns that come from events."""
    windows = ",\n    ".join(
        f"countIf(type = {_s(lc.PETITION)} AND us >= {as_of - days * MICROS_PER_DAY}) "
        f"AS petitions_{days}d"
        for days in lc.PETITION_WINDOWS_DAYS
    )
    keys = _event_keys(as_of, district)
    return f"""(
  SELECT household_key,
    {ownership("min((off, toString(org_unit))).2",
               f"groupArrayIf({MOVE_OF_ROW}, type IN {MOVE_TYPES})",
               f"groupArrayIf((off, us), type = {_s(lc.VISIT)})")},
    arraySort(groupUniqArrayArray(indicators)) AS h_indicators,
    maxIfOrNull(us, type = {_s(lc.VISIT)}) AS last_visit_us,
    maxIfOrNull(us, type = {_s(lc.FOLLOWUP)}) AS last_followup_us,
    {windows},
    min(us) AS first_seen_us
  FROM {_events(as_of, keys=keys)}
  GROUP BY household_key
  HAVING 1{_district_filter("h_org", district)}
)"""


def households(
    as_of: int,
    district: str | None,
    *,
    limit: int | None = None,
    offset: int = 0,
    now_sources: tuple[str, str, str | None] | None = None,
) -> str:
    """One row per household with an event ≤ as_of (windows end at as_of), ordered
    by the household_id shown; ``limit``/``offset`` page it.

    ``now_sources``: (household facts, open warnings, directory keys) from the
    pre-aggregates (``projections.now``), same columns as the raw subqueries."""
    keys = _event_keys(as_of, district)
    if now_sources is None:
        facts, open_warnings = household_facts(as_of, district), _open_warnings(as_of, keys)
    else:
        facts, open_warnings, keys = now_sources
    return f"""
SELECT h.household_key AS household_key, d.household_id AS household_id,
       d.present AS present, h.h_org AS org_unit, h.h_indicators AS indicators,
       h.last_visit_us AS last_visit_us, h.last_followup_us AS last_followup_us,
       {", ".join(f"h.petitions_{n}d AS petitions_{n}d" for n in lc.PETITION_WINDOWS_DAYS)},
       h.first_seen_us AS first_seen_us, h.h_registered AS registered, h.h_flags AS flags,
       h.h_last_screening AS last_screening_us,
       o.open_warnings AS open_warnings, o.severity AS severity
FROM {facts} AS h
LEFT JOIN {open_warnings} AS o ON h.household_key = o.household_key
LEFT JOIN {_directory(keys)} AS d ON h.household_key = d.household_key
ORDER BY {_shown_id("d", "h.household_key")}{page(limit, offset)}
{_SETTINGS}"""


def guardianship(
    as_of: int, district: str | None, *, limit: int | None = None, offset: int = 0
) -> str:
    """One row per (household, child) with a gap ≤ as_of; overdue judged at as_of.
    Ordered by (household_id shown, child); ``limit``/``offset`` page it."""
    gap, restored, followup = _s(lc.GAP), _s(lc.RESTORED), _s(lc.FOLLOWUP)
    due = lc.GUARDIANSHIP_FOLLOWUP_MICROS
    # Not district-scoped: the care rows are few already (three types), and scoping
    # them costs more (IN-set filters on household_key) than it saves (measured at 10M).
    care = _events(as_of, (lc.GAP, lc.RESTORED, lc.FOLLOWUP))
    return f"""
SELECT g.household_key AS household_key, d.household_id AS household_id, d.present AS present,
       g.child AS child_ref, g.g_org AS org_unit, g.gap_us AS gap_us,
       arrayFilter(x -> x >= g.gap_us, r.restores) AS later_restores,
       if(empty(later_restores), NULL, arrayMax(later_restores)) AS restored_us,
       c.last_followup_us AS last_followup_us,
       g.gap_us + {due} <= {int(as_of)}
         AND NOT arrayExists(x -> x >= g.gap_us AND x <= g.gap_us + {due}, c.care)
         AS overdue
FROM (
  SELECT household_key, ifNull(child_ref, '') AS child, max(us) AS gap_us,
         argMax(org_unit, (us, off)) AS g_org
  FROM {care} WHERE type = {gap}
  GROUP BY household_key, child
  HAVING 1{_district_filter("g_org", district)}
) AS g
LEFT JOIN (
  SELECT household_key, ifNull(child_ref, '') AS child, groupArray(us) AS restores
  FROM {care} WHERE type = {restored}
  GROUP BY household_key, child
) AS r ON g.household_key = r.household_key AND g.child = r.child
LEFT JOIN (
  SELECT household_key, groupArrayIf(us, type IN ({restored}, {followup})) AS care,
         maxIfOrNull(us, type = {followup}) AS last_followup_us
  FROM {care}
  GROUP BY household_key
) AS c ON g.household_key = c.household_key
LEFT JOIN {_directory()} AS d ON g.household_key = d.household_key
ORDER BY {_shown_id("d", "g.household_key")}, g.child{page(limit, offset)}
{_SETTINGS}"""


def coverage_facts(as_of: int, district: str | None) -> str:
    """Per registered household (≤ as_of) whose owner is in ``district``: its owner
    (``c_org``), whether it is a key household (``c_key``, 0/1), its latest visit
    (``c_last_visit``, read when ``c_visited``). A registered household's owner does
    not depend on its first event (the first registration sets it), so only moves and
    visits are read."""
    visit = _s(lc.VISIT)
    rows = _events(as_of, (lc.REGISTERED, lc.TRANSFERRED, lc.VISIT))
    return f"""(
  SELECT household_key, c_org, c_key, c_last_visit, c_visited FROM (
  SELECT household_key,
    {ownership("''", f"groupArrayIf({MOVE_OF_ROW}, type IN {MOVE_TYPES})", NO_VISITS, "c_")},
    toUInt8(has(c_flags, {_s(lc.KEY_FLAG)})) AS c_key,
    maxIf(us, type = {visit}) AS c_last_visit, countIf(type = {visit}) > 0 AS c_visited
  FROM {rows}
  GROUP BY household_key
  HAVING c_registered = 1{_district_filter("c_org", district)})
)"""


def coverage(facts: str, as_of: int) -> str:
    """The coverage ledger's counts per owning community from ``facts``
    (``coverage_facts``' columns; ``projections.now_coverage`` has a pre-aggregated
    source, whose ``c_org`` is a number: grouped first, written as a code after)."""
    key = "c_key = 1"
    window = f"if({key}, {lc.KEY_CADENCE_MICROS}, {lc.CADENCE_MICROS})"
    covered = f"(c_visited AND c_last_visit >= {int(as_of)} - {window})"
    return f"""
SELECT toString(c_org) AS community, count() AS registered, countIf({covered}) AS covered,
       countIf({key}) AS key_registered, countIf({key} AND {covered}) AS key_covered
FROM {facts}
GROUP BY c_org
ORDER BY community"""
