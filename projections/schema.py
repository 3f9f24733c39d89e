"""Warehouse schema: one DDL for every backend (chdb and a ClickHouse server).

Three tables and two views:

* ``events`` — one row per accepted event (analytics fact). Holds only the
  pseudonymous ``household_key`` and the catalog's coded fields (a
  registration's ``flags``, a transfer's ``to_org_unit``); free text
  (``data.notes`` of visits and registrations, ``data.note`` of
  warning.resolved) is never written, nor is the command's ``by``.
* ``lifecycle`` — one row per lifecycle record. Non-raise records carry the
  warning's rule_id/level/org_unit/district too (copied from its raise at
  write time) so that analysts can group by district and level without a
  join; an escalation's handling_level is its to_level.
* ``household_directory`` — household_key → household_id, kept apart so that
  analysts' tables never contain the id (see ``privacy.pseudonym``).
* views ``daily_event_counts`` and ``daily_lifecycle_counts`` (Harbin days, UTC+8:
  users read a day as a local day; ``LOCAL_DAY_ZONE``).
* pre-aggregates kept by materialized views on every insert (for the
  dashboard's "now" reads, see ``projections.now``): ``warning_state`` — one
  aggregate row per (district, warning): raise attributes, first
  acknowledgement/resolution, escalation levels, latest escalation —,
  ``household_state`` — one per (event district, household): latest event,
  first/last instants, indicators, petitions —, ``case_resolutions`` (the
  case.resolved events by district), ``data_bounds`` — the
  latest instant of each source table (the ledgers' default "now") —, and for
  the guardianship ledger ``guardianship_state`` (per household and child: latest
  gap, restores) and ``household_care`` (per household: care instants, latest
  follow-up), ``household_by_key`` — ``household_state``'s columns merged per
  household, ordered by its key (keyed lookups: a page's households, their
  home district) — and ``household_warnings`` — per (scope, household) the
  least and greatest id of the warnings raised there (repeat households) —, and
  ``warning_kpis``, ``warning_state``'s facts the KPIs count, as numbers only
  (the city's KPIs read all warnings: merging strings and arrays costs 4×) —, and
  ``guardianship_districts``, the (household, child) pairs with a gap in each
  district (a guardianship page's candidates), and ``household_owner`` — per
  household what ownership is folded from (first event, registrations and
  transfers, visits; the household and coverage ledgers) and ``household_coverage``,
  the numbers the coverage ledger reads for a whole city, and ``warning_raises``
  — per warning its raise attributes, keyed for the writes that copy them. Every
  aggregate is idempotent (min, max, set union), so re-sent rows, a replay,
  or the backfill ``ensure_schema`` runs when a pre-aggregate is added to an
  existing warehouse change nothing.

Idempotency: all tables are ReplacingMergeTree and every read uses FINAL. A
replay after a crash re-sends the same rows but not necessarily in the same
batches (the sink's batch boundaries depend on when it crashed), so insert
deduplication tokens — which drop only byte-identical blocks, and on a plain
MergeTree only within ``non_replicated_deduplication_window`` — would miss
them; replacing on the natural key removes duplicates whatever the batching.
The version column (``offset`` / ``seq``) makes the surviving row
deterministic. Keys: events by ``event_id``; lifecycle by (warning_id, type,
to_level) — a warning is raised, acknowledged and resolved at most once and
reaches each level at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

EVENTS = "events"
LIFECYCLE = "lifecycle"
DIRECTORY = "household_directory"
DAILY_EVENT_COUNTS = "daily_event_counts"
DAILY_LIFECYCLE_COUNTS = "daily_lifecycle_counts"
WARNING_STATE = "warning_state"
HOUSEHOLD_STATE = "household_state"
CASE_RESOLUTIONS = "case_resolutions"
BOUNDS = "data_bounds"
GUARDIANSHIP_STATE = "guardianship_state"
HOUSEHOLD_CARE = "household_care"
HOUSEHOLD_BY_KEY = "household_by_key"
HOUSEHOLD_WARNINGS = "household_warnings"
WARNING_KPIS = "warning_kpis"
GUARDIANSHIP_DISTRICTS = "guardianship_districts"
HOUSEHOLD_OWNER = "household_owner"
HOUSEHOLD_COVERAGE = "household_coverage"
WARNING_FOLLOWUPS = "warning_followups"
WARNING_RAISES = "warning_raises"
TABLES: tuple[str, ...] = (EVENTS, LIFECYCLE, DIRECTORY)
#: Tables filled by materialized views (truncated with the sources on reset).
AGGREGATES: tuple[str, ...] = (
    WARNING_STATE,
    HOUSEHOLD_STATE,
    CASE_RESOLUTIONS,
    BOUNDS,
    GUARDIANSHIP_STATE,
    HOUSEHOLD_CARE,
    HOUSEHOLD_BY_KEY,
    HOUSEHOLD_WARNINGS,
    WARNING_KPIS,
    GUARDIANSHIP_DISTRICTS,
    HOUSEHOLD_OWNER,
    HOUSEHOLD_COVERAGE,
    WARNING_FOLLOWUPS,
    WARNING_RAISES,
)
#: The pre-aggregates the dashboard reads with FINAL: whole for the city's KPIs
#: (``projections.kpis``), by district for the warning and household pages. A bulk
#: write (replay, rebuild, catch-up, backfill) leaves each in several overlapping
#: parts, and FINAL then merges them again on every read until background merges
#: catch up (city KPIs several times slower; the household page 71 → 109 ms p95 with
#: a 10M load's 5 parts). A bulk path compacts them (``SqlWarehouse.compact``): ~7 s
#: together after a 10M-event load on a quiet machine, most of it the two household
#: tables; more after a replay that left dozens of parts.
COMPACTED_AFTER_BULK: tuple[str, ...] = (
    WARNING_KPIS, HOUSEHOLD_WARNINGS, CASE_RESOLUTIONS,
    WARNING_STATE, HOUSEHOLD_STATE, HOUSEHOLD_BY_KEY, HOUSEHOLD_OWNER, HOUSEHOLD_COVERAGE,
)
#: Of those, the ones a city-wide read takes whole (the city's KPIs and coverage): in
#: two parts FINAL merges every row on each read (city coverage 0.4 → 3.7 s at 10M), so
#: a bulk write merges them whole. Their size is the number of warnings or households,
#: not of events; the tables read by key ranges are left to background merges.
MERGED_WHOLE_AFTER_BULK: tuple[str, ...] = (
    WARNING_KPIS, HOUSEHOLD_WARNINGS, CASE_RESOLUTIONS, HOUSEHOLD_COVERAGE,
)
#: "No such instant" in the min/max aggregates (no NULLs: they would defeat merging).
NEVER = (1 << 63) - 1
BEFORE_ALL = -(1 << 63)
#: Digits of an org unit code that the units containing it share (city, district,
#: street, community): the scopes of ``household_warnings``.
SCOPE_PREFIX_DIGITS: tuple[int, ...] = (4, 6, 9, 12)

_TS = pa.timestamp("us", tz="UTC")
_LC_NULL_STR = "LowCardinality(Nullable(String))"


@dataclass(frozen=True, slots=True)
class Column:
    """A column's SQL type and the Arrow type rows are shipped in."""

    name: str
    sql_type: str
    arrow_type: pa.DataType


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "String", pa.string()),
    Column("type", "LowCardinality(String)", pa.string()),
    Column("schema_version", "UInt16", pa.uint16()),
    Column("occurred_at", "DateTime64(6, 'UTC')", _TS),
    Column("recorded_at", "Nullable(DateTime64(6, 'UTC'))", _TS),
    Column("org_unit", "LowCardinality(String)", pa.string()),
    Column("street", "LowCardinality(String)", pa.string()),
    Column("district", "LowCardinality(String)", pa.string()),
    Column("household_key", "String", pa.string()),
    Column("actor", "Nullable(String)", pa.string()),
    Column("indicators", "Array(LowCardinality(String))", pa.list_(pa.string())),
    Column("channel", _LC_NULL_STR, pa.string()),
    Column("category", _LC_NULL_STR, pa.string()),
    Column("urgent", "Nullable(Bool)", pa.bool_()),
    Column("action", _LC_NULL_STR, pa.string()),
    Column("outcome", _LC_NULL_STR, pa.string()),
    Column("mediation_id", "Nullable(String)", pa.string()),
    Column("child_ref", "Nullable(String)", pa.string()),
    Column("resolution", _LC_NULL_STR, pa.string()),
    Column("warning_id", "Nullable(String)", pa.string()),
    Column("offset", "UInt64", pa.uint64()),
    Column("flags", "Array(LowCardinality(String))", pa.list_(pa.string())),
    Column("to_org_unit", _LC_NULL_STR, pa.string()),
    # the coded fields of assessments, referrals and consent (catalog v2)
    Column("risk", _LC_NULL_STR, pa.string()),
    Column("referral_id", "Nullable(String)", pa.string()),
    Column("agency", _LC_NULL_STR, pa.string()),
    Column("basis", _LC_NULL_STR, pa.string()),
    Column("agencies", "Array(LowCardinality(String))", pa.list_(pa.string())),
)
#: Columns added to ``events`` after warehouses existed: ``ensure_schema`` adds them
#: to an older table (empty / NULL on its rows, which predate the types that fill them).
ADDED_EVENT_COLUMNS: tuple[str, ...] = (
    "flags", "to_org_unit", "risk", "referral_id", "agency", "basis", "agencies",
)

LIFECYCLE_COLUMNS: tuple[Column, ...] = (
    Column("seq", "UInt64", pa.uint64()),
    Column("type", "LowCardinality(String)", pa.string()),
    Column("warning_id", "String", pa.string()),
    Column("rule_id", _LC_NULL_STR, pa.string()),
    Column("household_key", "String", pa.string()),
    Column("level", _LC_NULL_STR, pa.string()),
    Column("org_unit", _LC_NULL_STR, pa.string()),
    Column("district", _LC_NULL_STR, pa.string()),
    Column("handling_level", _LC_NULL_STR, pa.string()),
    Column("handling_org_unit", _LC_NULL_STR, pa.string()),
    Column("from_level", _LC_NULL_STR, pa.string()),
    Column("to_level", _LC_NULL_STR, pa.string()),
    Column("at", "DateTime64(6, 'UTC')", _TS),
)

DIRECTORY_COLUMNS: tuple[Column, ...] = (
    Column("household_key", "String", pa.string()),
    Column("household_id", "String", pa.string()),
)

TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    EVENTS: EVENT_COLUMNS,
    LIFECYCLE: LIFECYCLE_COLUMNS,
    DIRECTORY: DIRECTORY_COLUMNS,
}

_ENGINES: dict[str, str] = {
    EVENTS: "ReplacingMergeTree(`offset`) ORDER BY event_id",
    LIFECYCLE: "ReplacingMergeTree(seq) ORDER BY (warning_id, type, ifNull(to_level, ''))",
    DIRECTORY: "ReplacingMergeTree ORDER BY household_key",
}


def quote_ident(name: str) -> str:
    """Backquote an identifier (``offset`` is a keyword)."""
    return "`" + name.replace("`", "``") + "`"


def column_list(table: str) -> str:
    return ", ".join(quote_ident(c.name) for c in TABLE_COLUMNS[table])


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in TABLE_COLUMNS[table]])


def create_table(table: str) -> str:
    cols = ",\n  ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in TABLE_COLUMNS[table])
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n) ENGINE = {_ENGINES[table]}"


#: The zone of a day in the daily aggregates: Harbin's (UTC+8 all year), as
#: ``events.instants.local_date`` counts it. Stored instants stay UTC.
LOCAL_DAY_ZONE = "Asia/Shanghai"


def daily_event_counts_select(where: str = "") -> str:
    """Events per Harbin day, district and type (the view body; ``where`` for as_of)."""
    return (
        f"SELECT toDate(occurred_at, '{LOCAL_DAY_ZONE}') AS day, district, type, "
        f"count() AS events "
        f"FROM {EVENTS} FINAL {where} GROUP BY day, district, type"
    )


def daily_lifecycle_counts_select(where: str = "") -> str:
    """Lifecycle records per Harbin day, warning district, warning level and type."""
    return (
        f"SELECT toDate(at, '{LOCAL_DAY_ZONE}') AS day, district, level, type, "
        f"count() AS records "
        f"FROM {LIFECYCLE} FINAL {where} GROUP BY day, district, level, type"
    )


def ddl() -> list[str]:
    """Every statement ``ensure_schema`` runs, in order; each is idempotent.
    (Pre-aggregates come separately: ``aggregate_ddl``, since they need a backfill.)"""
    statements = [create_table(t) for t in TABLES]
    statements += [
        f"ALTER TABLE {EVENTS} ADD COLUMN IF NOT EXISTS {quote_ident(c.name)} {c.sql_type}"
        for c in EVENT_COLUMNS
        if c.name in ADDED_EVENT_COLUMNS
    ]
    # Replaced, not "if not exists": a warehouse made when days were UTC days must not
    # keep the old definition. The views hold no rows, so replacing them rebuilds them.
    statements.append(
        f"CREATE OR REPLACE VIEW {DAILY_EVENT_COUNTS} AS {daily_event_counts_select()}"
    )
    statements.append(
        f"CREATE OR REPLACE VIEW {DAILY_LIFECYCLE_COUNTS} AS {daily_lifecycle_counts_select()}"
    )
    return statements


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A pre-aggregated table, the views that feed it, and how to backfill it."""

    table: str
    create: str
    #: (view name, source table, SELECT over the source producing the table's rows)
    feeds: tuple[tuple[str, str, str], ...]

    def views(self) -> list[str]:
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {self.table} AS {select}"
            for view, _, select in self.feeds
        ]

    def backfill(self) -> list[str]:
        """Re-aggregate the sources (harmless when repeated: the aggregates are idempotent)."""
        return [f"INSERT INTO {self.table} {select}" for _, _, select in self.feeds]


_US = "toUnixTimestamp64Micro"
#: Only these feed warning_state; other lifecycle types (warning.assigned) are ignored.
_WARNING_TYPES = (
    "('warning.raised', 'warning.acknowledged', 'warning.resolved', 'warning.escalated')"
)


def _raise_attr(column: str) -> str:
    return f"if(type = 'warning.raised', ifNull({column}, ''), '')"


def _first(kind: str) -> str:
    return f"if(type = '{kind}', {_US}(at), {NEVER})"


#: Raise attributes kept as max(String): '' on other rows, so max is the raise's value.
WARNING_RAISE_ATTRS: tuple[tuple[str, str], ...] = (
    ("rule_id", "rule_id"),
    ("level", "level"),
    ("household_key", "household_key"),
    ("org_unit", "org_unit"),
    ("raised_handling", "handling_level"),
    ("raised_handling_org", "handling_org_unit"),
)

_WARNING_STATE_SELECT = (
    "SELECT ifNull(district, '') AS district_key, warning_id, "
    f"{_first('warning.raised')} AS raised_us, "
    f"{_first('warning.acknowledged')} AS ack_us, "
    f"{_first('warning.resolved')} AS resolved_us, "
    + ", ".join(f"{_raise_attr(src)} AS {name}" for name, src in WARNING_RAISE_ATTRS)
    + ", if(type = 'warning.escalated', [ifNull(to_level, '')], []) AS esc_levels, "
    "if(type = 'warning.escalated', "
    f"({_US}(at), seq, ifNull(to_level, ''), ifNull(handling_org_unit, '')), "
    f"(toInt64({BEFORE_ALL}), toUInt64(0), '', '')) AS latest_esc "
    f"FROM {LIFECYCLE} WHERE type IN {_WARNING_TYPES}"
)

# Why (district_key, warning_id): a district's warnings are one index range. A
# transition written before its raise was known has no district ('' key); reads
# merge those rows in (``projections.now``), so the result stays exact.
WARNING_STATE_AGGREGATE = Aggregate(
    WARNING_STATE,
    f"""CREATE TABLE IF NOT EXISTS {WARNING_STATE} (
  district_key String,
  warning_id String,
  raised_us SimpleAggregateFunction(min, Int64),
  ack_us SimpleAggregateFunction(min, Int64),
  resolved_us SimpleAggregateFunction(min, Int64),
  {", ".join(f"{name} SimpleAggregateFunction(max, String)" for name, _ in WARNING_RAISE_ATTRS)},
  esc_levels SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
  latest_esc SimpleAggregateFunction(max, Tuple(Int64, UInt64, String, String))
) ENGINE = AggregatingMergeTree ORDER BY (district_key, warning_id)""",
    (("warning_state_from_lifecycle", LIFECYCLE, _WARNING_STATE_SELECT),),
)
# Per (event district, household): what the household ledger shows "now". Keyed
# by the *event's* district, so a district is one index range; a household with
# events in several districts has a row in each, merged at read time
# (``projections.now``). Petitions are kept as (instant, event_id) pairs: the
# 30/90-day windows end at the read's "now", and the pairs count re-sent events once.
_HOUSEHOLD_STATE_SELECT = (
    "SELECT district AS district_key, household_key, "
    f"({_US}(occurred_at), `offset`, toString(org_unit)) AS latest, "
    f"{_US}(occurred_at) AS first_us, "
    f"if(type = 'screening.visit_recorded', {_US}(occurred_at), {BEFORE_ALL}) AS last_visit_us, "
    f"if(type = 'followup.recorded', {_US}(occurred_at), {BEFORE_ALL}) AS last_followup_us, "
    "CAST(indicators, 'Array(String)') AS indicators, "
    f"if(type = 'petition.received', [({_US}(occurred_at), event_id)], []) AS petitions "
    f"FROM {EVENTS}"
)

_HOUSEHOLD_COLUMNS = """latest SimpleAggregateFunction(max, Tuple(Int64, UInt64, String)),
  first_us SimpleAggregateFunction(min, Int64),
  last_visit_us SimpleAggregateFunction(max, Int64),
  last_followup_us SimpleAggregateFunction(max, Int64),
  indicators SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
  petitions SimpleAggregateFunction(groupUniqArrayArray, Array(Tuple(Int64, String)))"""

# A transfer also puts the household into its destination's district range, with
# neutral values (nothing happened there yet): a district's households — those it may
# own — are then one index range, whatever moved them there.
_HOUSEHOLD_ARRIVALS_SELECT = (
    "SELECT concat(substring(ifNull(CAST(to_org_unit, 'Nullable(String)'), ''), 1, 6), "
    "'000000') AS district_key, household_key, "
    f"(toInt64({BEFORE_ALL}), toUInt64(0), '') AS latest, toInt64({NEVER}) AS first_us, "
    f"toInt64({BEFORE_ALL}) AS last_visit_us, toInt64({BEFORE_ALL}) AS last_followup_us, "
    "CAST([], 'Array(String)') AS indicators, "
    "CAST([], 'Array(Tuple(Int64, String))') AS petitions "
    f"FROM {EVENTS} WHERE type = 'household.transferred' AND to_org_unit IS NOT NULL"
)

HOUSEHOLD_STATE_AGGREGATE = Aggregate(
    HOUSEHOLD_STATE,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_STATE} (
  district_key String,
  household_key String,
  {_HOUSEHOLD_COLUMNS}
) ENGINE = AggregatingMergeTree ORDER BY (district_key, household_key)""",
    (
        ("household_state_from_events", EVENTS, _HOUSEHOLD_STATE_SELECT),
        ("household_state_from_arrivals", EVENTS, _HOUSEHOLD_ARRIVALS_SELECT),
    ),
)

# The same columns per household, all districts merged, ordered by the key: a
# household page reads its few households (and checks their home district) by key
# instead of scanning ``household_state``'s key column. Small granules: a lookup
# of ~100 random keys reads ~100 granules.
HOUSEHOLD_BY_KEY_AGGREGATE = Aggregate(
    HOUSEHOLD_BY_KEY,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_BY_KEY} (
  household_key String,
  {_HOUSEHOLD_COLUMNS}
) ENGINE = AggregatingMergeTree ORDER BY household_key
SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 8192""",
    (
        (
            "household_by_key_from_events",
            EVENTS,
            _HOUSEHOLD_STATE_SELECT.replace("SELECT district AS district_key, ", "SELECT ", 1),
        ),
    ),
)

# The case.resolved events (6% of all) by district: the KPIs' local-resolution
# share reads one index range instead of FINAL over every event. Replacing on
# the event's id like ``events`` itself, so the same rows survive.
CASE_RESOLUTIONS_AGGREGATE = Aggregate(
    CASE_RESOLUTIONS,
    f"""CREATE TABLE IF NOT EXISTS {CASE_RESOLUTIONS} (
  district_key String,
  event_id String,
  org_unit String,
  resolution Nullable(String),
  occurred_us Int64,
  `offset` UInt64
) ENGINE = ReplacingMergeTree(`offset`) ORDER BY (district_key, event_id)""",
    (
        (
            "case_resolutions_from_events",
            EVENTS,
            "SELECT toString(district) AS district_key, event_id, "
            "toString(org_unit) AS org_unit, CAST(resolution, 'Nullable(String)') AS resolution, "
            f"{_US}(occurred_at) AS occurred_us, `offset` "
            f"FROM {EVENTS} WHERE type = 'case.resolved'",
        ),
    ),
)

BOUNDS_AGGREGATE = Aggregate(
    BOUNDS,
    f"""CREATE TABLE IF NOT EXISTS {BOUNDS} (
  source String,
  max_us SimpleAggregateFunction(max, Int64)
) ENGINE = AggregatingMergeTree ORDER BY source""",
    (
        (
            "data_bounds_from_events",
            EVENTS,
            f"SELECT '{EVENTS}' AS source, max({_US}(occurred_at)) AS max_us FROM {EVENTS} "
            "HAVING count() > 0",
        ),
        (
            "data_bounds_from_lifecycle",
            LIFECYCLE,
            f"SELECT '{LIFECYCLE}' AS source, max({_US}(at)) AS max_us FROM {LIFECYCLE} "
            "HAVING count() > 0",
        ),
    ),
)

_GAP = "'child.guardianship_gap_recorded'"
_RESTORED = "'child.guardianship_restored'"
_FOLLOWUP = "'followup.recorded'"

# Per (household, child): the guardianship ledger's row "now" — the latest gap as
# (instant, offset, org unit), so max() picks what argMax((us, offset)) picks, and
# the restore instants. Keyed by household, not district: the ledger's district is
# the latest gap's, which a later gap elsewhere can move; a district's rows are a
# filter on ~one row per pair (gaps are 3% of events).
GUARDIANSHIP_STATE_AGGREGATE = Aggregate(
    GUARDIANSHIP_STATE,
    f"""CREATE TABLE IF NOT EXISTS {GUARDIANSHIP_STATE} (
  household_key String,
  child String,
  latest_gap SimpleAggregateFunction(max, Tuple(Int64, UInt64, String)),
  restores SimpleAggregateFunction(groupUniqArrayArray, Array(Int64))
) ENGINE = AggregatingMergeTree ORDER BY (household_key, child)""",
    (
        (
            "guardianship_state_from_events",
            EVENTS,
            "SELECT household_key, ifNull(child_ref, '') AS child, "
            f"if(type = {_GAP}, ({_US}(occurred_at), `offset`, toString(org_unit)), "
            f"(toInt64({BEFORE_ALL}), toUInt64(0), '')) AS latest_gap, "
            f"if(type = {_RESTORED}, [{_US}(occurred_at)], []) AS restores "
            f"FROM {EVENTS} WHERE type IN ({_GAP}, {_RESTORED})",
        ),
    ),
)

# Per household: the instants of care (restores and follow-ups, any child) that
# stop a gap from being overdue, and the latest follow-up. Read for a page's
# households only, by their key.
HOUSEHOLD_CARE_AGGREGATE = Aggregate(
    HOUSEHOLD_CARE,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_CARE} (
  household_key String,
  care SimpleAggregateFunction(groupUniqArrayArray, Array(Int64)),
  last_followup_us SimpleAggregateFunction(max, Int64)
) ENGINE = AggregatingMergeTree ORDER BY household_key""",
    (
        (
            "household_care_from_events",
            EVENTS,
            f"SELECT household_key, [{_US}(occurred_at)] AS care, "
            f"if(type = {_FOLLOWUP}, {_US}(occurred_at), {BEFORE_ALL}) AS last_followup_us "
            f"FROM {EVENTS} WHERE type IN ({_RESTORED}, {_FOLLOWUP})",
        ),
    ),
)

# Per (scope, household): the least and greatest id of the warnings raised there,
# for every scope that contains the raise's org unit (its city, district, street
# and community prefixes: ``kpis.scope_prefix``). A household repeats in a scope
# iff the two differ; min / max keep re-sent raises idempotent, and only the raise
# (which carries the household and the org unit) decides, as in the ledger.
HOUSEHOLD_WARNINGS_AGGREGATE = Aggregate(
    HOUSEHOLD_WARNINGS,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_WARNINGS} (
  scope_key String,
  household_key String,
  first_warning SimpleAggregateFunction(min, String),
  last_warning SimpleAggregateFunction(max, String)
) ENGINE = AggregatingMergeTree ORDER BY (scope_key, household_key)""",
    (
        (
            "household_warnings_from_lifecycle",
            LIFECYCLE,
            "SELECT arrayJoin(arrayDistinct(arrayMap(n -> substring(ifNull(org_unit, ''), 1, n), "
            f"{list(SCOPE_PREFIX_DIGITS)}))) AS scope_key, household_key, "
            "warning_id AS first_warning, warning_id AS last_warning "
            f"FROM {LIFECYCLE} WHERE type = 'warning.raised'",
        ),
    ),
)

_SEVERITY = "['yellow', 'orange', 'red']"
_HANDLING = "['community', 'street', 'district', 'city']"

# Per (district, warning), like ``warning_state``, but only what the KPIs count and
# only numbers: the raise's level as its rank in _SEVERITY, the highest handling
# level as its rank in _HANDLING (the raise's handling level or an escalation's
# to_level, as ``ledger_sql.warning_facts`` ranks them), whether it was escalated.
WARNING_KPIS_AGGREGATE = Aggregate(
    WARNING_KPIS,
    f"""CREATE TABLE IF NOT EXISTS {WARNING_KPIS} (
  district_key String,
  warning_id String,
  raised_us SimpleAggregateFunction(min, Int64),
  ack_us SimpleAggregateFunction(min, Int64),
  resolved_us SimpleAggregateFunction(min, Int64),
  level_rank SimpleAggregateFunction(max, UInt8),
  highest_rank SimpleAggregateFunction(max, UInt8),
  escalated SimpleAggregateFunction(max, UInt8)
) ENGINE = AggregatingMergeTree ORDER BY (district_key, warning_id)""",
    (
        (
            "warning_kpis_from_lifecycle",
            LIFECYCLE,
            "SELECT ifNull(district, '') AS district_key, warning_id, "
            f"{_first('warning.raised')} AS raised_us, "
            f"{_first('warning.acknowledged')} AS ack_us, "
            f"{_first('warning.resolved')} AS resolved_us, "
            "toUInt8(if(type = 'warning.raised', "
            f"indexOf({_SEVERITY}, ifNull(level, '')), 0)) AS level_rank, "
            "toUInt8(multiIf("
            f"type = 'warning.raised', indexOf({_HANDLING}, ifNull(handling_level, '')), "
            f"type = 'warning.escalated', indexOf({_HANDLING}, ifNull(to_level, '')), "
            "0)) AS highest_rank, "
            "toUInt8(type = 'warning.escalated') AS escalated "
            f"FROM {LIFECYCLE} WHERE type IN {_WARNING_TYPES}",
        ),
    ),
)

# The (household, child) pairs with a gap recorded in each district: one index
# range holds every pair whose ledger row can belong to the district (its latest
# gap is one of its gaps), so a page reads its candidates in page order and checks
# the latest gap of a few (``projections.now_guardianship``). Keys only: a
# re-sent gap replaces its own row.
GUARDIANSHIP_DISTRICTS_AGGREGATE = Aggregate(
    GUARDIANSHIP_DISTRICTS,
    f"""CREATE TABLE IF NOT EXISTS {GUARDIANSHIP_DISTRICTS} (
  district_key String,
  household_key String,
  child String
) ENGINE = ReplacingMergeTree ORDER BY (district_key, household_key, child)""",
    (
        (
            "guardianship_districts_from_events",
            EVENTS,
            "SELECT toString(district) AS district_key, household_key, "
            f"ifNull(child_ref, '') AS child FROM {EVENTS} WHERE type = {_GAP}",
        ),
    ),
)

# Per household, what ownership (DESIGN "Ownership") is folded from: the first event
# by processing order as (offset, org unit), every registration and transfer as
# (offset, type, org unit, to_org_unit, flags, instant), the visits as (offset,
# instant) — L counts those processed after the registration — and the latest visit
# (coverage). Sets and min / max: idempotent; the fold runs at read time
# (``ledger_sql.ownership``), over a household's few moves. Keyed by household like
# ``household_by_key``: a page reads its households by key; coverage reads it whole.
_MOVE_TUPLE = "Tuple(UInt64, String, String, String, Array(String), Int64)"
HOUSEHOLD_OWNER_AGGREGATE = Aggregate(
    HOUSEHOLD_OWNER,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_OWNER} (
  household_key String,
  first SimpleAggregateFunction(min, Tuple(UInt64, String)),
  moves SimpleAggregateFunction(groupUniqArrayArray, Array({_MOVE_TUPLE})),
  visits SimpleAggregateFunction(groupUniqArrayArray, Array(Tuple(UInt64, Int64))),
  last_visit_us SimpleAggregateFunction(max, Int64)
) ENGINE = AggregatingMergeTree ORDER BY household_key
SETTINGS index_granularity = 256, min_compress_block_size = 4096, max_compress_block_size = 8192""",
    (
        (
            "household_owner_from_events",
            EVENTS,
            "SELECT household_key, (`offset`, toString(org_unit)) AS first, "
            "if(type IN ('household.registered', 'household.transferred'), "
            f"[CAST((`offset`, toString(type), toString(org_unit), "
            "ifNull(CAST(to_org_unit, 'Nullable(String)'), ''), CAST(flags, 'Array(String)'), "
            f"{_US}(occurred_at)), '{_MOVE_TUPLE}')], []) AS moves, "
            f"if(type = 'screening.visit_recorded', [(`offset`, {_US}(occurred_at))], []) "
            "AS visits, "
            f"if(type = 'screening.visit_recorded', {_US}(occurred_at), toInt64({BEFORE_ALL})) "
            f"AS last_visit_us FROM {EVENTS}",
        ),
    ),
)

_TO = "ifNull(CAST(to_org_unit, 'Nullable(String)'), '')"
#: ``events.orgunits.level_of(code) is COMMUNITY`` for a string expression ``{0}``.
COMMUNITY_CODE = (
    "(match({0}, '^[0-9]{{12}}$') AND substring({0}, 1, 2) != '00' "
    "AND substring({0}, 3, 2) != '00' AND substring({0}, 5, 2) != '00' "
    "AND substring({0}, 7, 3) != '000' AND substring({0}, 10, 3) != '000')"
)
#: "No such offset" in the min aggregates of offsets.
NO_OFFSET = (1 << 64) - 1
#: A registration in numbers: (offset, org unit as a number, key household 0/1).
NUMERIC_REGISTRATION = "Tuple(UInt64, UInt64, UInt8)"
#: A transfer in numbers: (offset, org unit, to_org_unit — 0 unless a community code).
NUMERIC_TRANSFER = "Tuple(UInt64, UInt64, UInt64)"
_REGISTRATION_OF_ROW = (
    "(`offset`, toUInt64(toString(org_unit)), toUInt8(has(flags, 'key_household')))"
)

# Per household, the coverage ledger's "now" in numbers only: a city's households are
# read whole (~10⁶ rows at 10M events), so every byte per row counts, and a per-row
# array of all registrations and transfers (most households' only "move" is their
# registration) cost more than the rest together. What decides the owner of a
# registered household is its first registration and the transfers after it
# (re-registrations never move it), so transfers — ~2% of households — are the only
# array, empty elsewhere; the key flag is the last registration's whenever that
# registration is certainly valid (the only one, or no transfer after the first and
# the same community). The rest — several transfers, re-registered households with a
# transfer, or whose last registration came from another community — are read from
# ``household_owner`` and folded in full (``projections.now_coverage``, the "rare" path).
HOUSEHOLD_COVERAGE_AGGREGATE = Aggregate(
    HOUSEHOLD_COVERAGE,
    f"""CREATE TABLE IF NOT EXISTS {HOUSEHOLD_COVERAGE} (
  household_key String,
  first_registration SimpleAggregateFunction(min, {NUMERIC_REGISTRATION}),
  last_registration SimpleAggregateFunction(max, {NUMERIC_REGISTRATION}),
  last_transfer SimpleAggregateFunction(max, UInt64),
  last_visit_us SimpleAggregateFunction(max, Int64),
  transfers SimpleAggregateFunction(groupUniqArrayArray, Array({NUMERIC_TRANSFER}))
) ENGINE = AggregatingMergeTree ORDER BY household_key""",
    (
        (
            "household_coverage_from_events",
            EVENTS,
            "SELECT household_key, "
            f"if(type = 'household.registered', {_REGISTRATION_OF_ROW}, "
            f"(toUInt64({NO_OFFSET}), toUInt64(0), toUInt8(0))) AS first_registration, "
            f"if(type = 'household.registered', {_REGISTRATION_OF_ROW}, "
            "(toUInt64(0), toUInt64(0), toUInt8(0))) AS last_registration, "
            "if(type = 'household.transferred', `offset`, toUInt64(0)) AS last_transfer, "
            f"if(type = 'screening.visit_recorded', {_US}(occurred_at), toInt64({BEFORE_ALL})) "
            "AS last_visit_us, "
            "if(type = 'household.transferred', "
            "[CAST((`offset`, toUInt64(toString(org_unit)), "
            f"if({COMMUNITY_CODE.format(_TO)}, toUInt64({_TO}), toUInt64(0))), "
            f"'{NUMERIC_TRANSFER}')], []) AS transfers "
            f"FROM {EVENTS} WHERE type IN ('household.registered', "
            "'household.transferred', 'screening.visit_recorded')",
        ),
    ),
)

# The raise attributes every later record of a warning carries (``rule_id``, ``level``,
# ``org_unit``), for a write whose records belong to warnings raised in earlier batches.
# Keyed by warning_id in small granules: a lookup of n ids reads ~n × 256 rows per part
# whatever the history. The same lookup on ``lifecycle`` (8192-row granules, several
# records per warning) read every granule once a batch named a few hundred warnings.
WARNING_RAISES_AGGREGATE = Aggregate(
    WARNING_RAISES,
    f"""CREATE TABLE IF NOT EXISTS {WARNING_RAISES} (
  seq UInt64,
  warning_id String,
  rule_id {_LC_NULL_STR},
  level {_LC_NULL_STR},
  org_unit {_LC_NULL_STR}
) ENGINE = ReplacingMergeTree(seq) ORDER BY warning_id
SETTINGS index_granularity = 256""",
    (
        (
            "warning_raises_from_lifecycle",
            LIFECYCLE,
            f"SELECT seq, warning_id, rule_id, level, org_unit "
            f"FROM {LIFECYCLE} WHERE type = 'warning.raised'",
        ),
    ),
)

#: Pre-aggregates a later schema replaced: (view, table), dropped by ``ensure_schema``
#: so that an existing warehouse stops feeding them.
OBSOLETE_AGGREGATES: tuple[tuple[str, str], ...] = (
    ("coverage_state_from_events", "coverage_state"),
)

AGGREGATE_DEFINITIONS: tuple[Aggregate, ...] = (
    WARNING_STATE_AGGREGATE,
    HOUSEHOLD_STATE_AGGREGATE,
    CASE_RESOLUTIONS_AGGREGATE,
    BOUNDS_AGGREGATE,
    GUARDIANSHIP_STATE_AGGREGATE,
    HOUSEHOLD_CARE_AGGREGATE,
    HOUSEHOLD_BY_KEY_AGGREGATE,
    HOUSEHOLD_WARNINGS_AGGREGATE,
    WARNING_KPIS_AGGREGATE,
    GUARDIANSHIP_DISTRICTS_AGGREGATE,
    HOUSEHOLD_OWNER_AGGREGATE,
    HOUSEHOLD_COVERAGE_AGGREGATE,
    WARNING_RAISES_AGGREGATE,
)


# --- after the alert (catalog v2): referrals and every transition of a warning ------
#
# ``referral_records`` holds the referral lifecycle records (they name a referral, not a
# warning): one row per (household, referral, type) — a referral is sent, answered and
# closed at most once. ``warning_transitions`` holds every lifecycle record of a
# warning, repeats included: ``lifecycle`` keeps one row per (warning, type, to_level),
# which a reopened warning's second acknowledgement, resolution or escalation, and a
# warning's later assessments, would replace. Here the key also holds the instant and
# what tells two records of one instant apart (risk, destination), so only a re-sent
# record replaces its own row. Written beside ``lifecycle`` by every write; a warehouse
# from before it is backfilled from ``lifecycle`` by ``ensure_schema`` (it held no
# repeats then, so the copy is exact).
REFERRAL_RECORDS = "referral_records"
WARNING_TRANSITIONS = "warning_transitions"
REFERRAL_COLUMNS: tuple[Column, ...] = (
    Column("seq", "UInt64", pa.uint64()),
    Column("type", "LowCardinality(String)", pa.string()),
    Column("referral_id", "String", pa.string()),
    Column("household_key", "String", pa.string()),
    Column("agency", "LowCardinality(String)", pa.string()),
    Column("basis", _LC_NULL_STR, pa.string()),
    Column("warning_id", "Nullable(String)", pa.string()),
    Column("outcome", _LC_NULL_STR, pa.string()),
    Column("at", "DateTime64(6, 'UTC')", _TS),
)
TRANSITION_COLUMNS: tuple[Column, ...] = (
    *LIFECYCLE_COLUMNS,
    Column("risk", _LC_NULL_STR, pa.string()),
    Column("from_org_unit", _LC_NULL_STR, pa.string()),
    Column("to_org_unit", _LC_NULL_STR, pa.string()),
)
TABLE_COLUMNS[REFERRAL_RECORDS] = REFERRAL_COLUMNS
TABLE_COLUMNS[WARNING_TRANSITIONS] = TRANSITION_COLUMNS
_ENGINES[REFERRAL_RECORDS] = (
    "ReplacingMergeTree(seq) ORDER BY (household_key, referral_id, type)"
)
_ENGINES[WARNING_TRANSITIONS] = (
    "ReplacingMergeTree(seq) ORDER BY (warning_id, type, at, ifNull(to_level, ''), "
    "ifNull(risk, ''), ifNull(to_org_unit, ''))"
)
AFTER_ALERT_TABLES: tuple[str, ...] = (REFERRAL_RECORDS, WARNING_TRANSITIONS)

# Per warning assessed or reopened (catalog v2): its first reopening (NEVER: none),
# the log positions of its reopenings, its latest assessment by log order and the
# instant of its last one. Two reads use it: every count of open warnings takes the
# warnings ever reopened from their history (``projections.reopened``), and a ledger
# page learns by key which of its warnings were followed up at all, reading their
# history only when the aggregate cannot answer (``projections.followups``).
# Idempotent: min, max and set union.
WARNING_FOLLOWUPS_AGGREGATE = Aggregate(
    WARNING_FOLLOWUPS,
    f"""CREATE TABLE IF NOT EXISTS {WARNING_FOLLOWUPS} (
  warning_id String,
  first_reopen_us SimpleAggregateFunction(min, Int64),
  reopens SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)),
  latest_assessment SimpleAggregateFunction(max, Tuple(UInt64, String)),
  last_assessed_us SimpleAggregateFunction(max, Int64)
) ENGINE = AggregatingMergeTree ORDER BY warning_id""",
    (
        (
            "warning_followups_from_transitions",
            WARNING_TRANSITIONS,
            "SELECT warning_id, "
            f"if(type = 'warning.reopened', {_US}(at), toInt64({NEVER})) AS first_reopen_us, "
            "if(type = 'warning.reopened', [seq], []) AS reopens, "
            "if(type = 'warning.assessed', (seq, ifNull(risk, '')), (toUInt64(0), '')) "
            "AS latest_assessment, "
            f"if(type = 'warning.assessed', {_US}(at), toInt64({BEFORE_ALL})) "
            "AS last_assessed_us "
            f"FROM {WARNING_TRANSITIONS} "
            "WHERE type IN ('warning.reopened', 'warning.assessed')",
        ),
    ),
)
#: Pre-aggregates fed by the after-alert tables (created after them).
AFTER_ALERT_AGGREGATES: tuple[Aggregate, ...] = (WARNING_FOLLOWUPS_AGGREGATE,)


def transitions_backfill() -> str:
    """``warning_transitions`` from ``lifecycle`` (a warehouse from before the table)."""
    copied = ", ".join(quote_ident(c.name) for c in LIFECYCLE_COLUMNS)
    return (
        f"INSERT INTO {WARNING_TRANSITIONS} ({copied}) "
        f"SELECT {copied} FROM {LIFECYCLE} FINAL"
    )


#: The latest referral record's instant, as a ``lifecycle`` bound of ``data_bounds``.
REFERRAL_BOUNDS_SELECT = (
    f"SELECT '{LIFECYCLE}' AS source, max({_US}(at)) AS max_us FROM {REFERRAL_RECORDS} "
    "HAVING count() > 0"
)
REFERRAL_BOUNDS_VIEW = (
    f"CREATE MATERIALIZED VIEW IF NOT EXISTS data_bounds_from_referrals TO {BOUNDS} "
    f"AS {REFERRAL_BOUNDS_SELECT}"
)
