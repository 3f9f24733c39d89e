"""Tamper evidence: hash chains over the lifecycle records and the audit trail.

Every lifecycle record (``log.sqlite3``, table ``lifecycle``) and every audit
row (``users.sqlite3``, table ``audit``) carries ``prev_hash`` and
``hash = sha256(prev_hash || canonical JSON of the record)``, written in the
same transaction as the row. The canonical JSON has sorted keys and includes
the row's number (``seq`` for lifecycle records, ``id`` for audit rows), so
moving a row to another number breaks its hash. The first row chains to
``GENESIS``. The warning ledger is derived from the lifecycle records, so
chaining them makes the ledger tamper-evident.

The head of each chain (number and hash of its last row) is also kept in a
meta row (``meta`` in the log, ``audit_meta`` in the user store), so removing
rows at the tail is detected; ``jiahe verify --anchor FILE`` can copy the
heads to a file kept elsewhere, which also catches a rewrite of the head row.

Existing homes: a table created before the chain existed gets the two columns
(``ALTER TABLE``) and its rows are chained on first use (the next append, or
``jiahe verify``). Such rows are vouched for from that moment on only; the
meta row ``chain.<name>.adopted`` records how many and when, and verify shows
it. A head row that vanished while chained rows exist is rebuilt by the next
append (processing must go on) but recorded as ``chain.<name>.head_restored``,
which verify reports as a problem.

What a chain cannot see: someone who rewrites the whole chain and its head
(hashes are unkeyed). The external anchor is the answer to that.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from events.instants import format_instant, now_micros, parse_instant

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: JSON with sorted keys, no whitespace."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: str, record: Mapping[str, Any]) -> str:
    """``sha256(prev_hash || canonical(record))`` as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Where a chain lives and how a stored row becomes the record that was hashed."""

    name: str
    table: str
    key: str
    columns: tuple[str, ...]
    meta: str
    record: Callable[[int, tuple[Any, ...]], dict[str, Any]]
    check: Callable[[int, tuple[Any, ...], dict[str, Any]], list[str]] | None = None

    def meta_key(self, what: str) -> str:
        return f"chain.{self.name}.{what}"


def _lifecycle_record(seq: int, values: tuple[Any, ...]) -> dict[str, Any]:
    body = orjson.loads(values[3])
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    return {**body, "seq": seq}


def _lifecycle_check(seq: int, values: tuple[Any, ...], record: dict[str, Any]) -> list[str]:
    expected = (record.get("household_id"), warning_column(record), record.get("type"))
    return [
        f"seq {seq}: column {name} = {value!r} but the record says {wanted!r}"
        for name, value, wanted in zip(("household_id", "warning_id", "type"), values[:3],
                                       expected, strict=True)
        if wanted != value
    ]


def warning_column(record: Mapping[str, Any]) -> str:
    """The lifecycle table's ``warning_id``: the record's warning, or "" for a referral's
    record that names none (the column predates records without a warning)."""
    return record.get("warning_id") or ""


AUDIT_COLUMNS = ("at", "user", "role", "scope", "action", "detail", "rows")


def _audit_record(row_id: int, values: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row_id, **dict(zip(AUDIT_COLUMNS, values, strict=True))}


LIFECYCLE = ChainSpec(
    name="lifecycle",
    table="lifecycle",
    key="seq",
    columns=("household_id", "warning_id", "type", "body"),
    meta="meta",
    record=_lifecycle_record,
    check=_lifecycle_check,
)
AUDIT = ChainSpec(
    name="audit", table="audit", key="id", columns=AUDIT_COLUMNS, meta="audit_meta",
    record=_audit_record,
)

# -- meta rows ------------------------------------------------------------------


def _meta_get(db: sqlite3.Connection, spec: ChainSpec, what: str) -> dict[str, Any] | None:
    row = db.execute(
        f"SELECT value FROM {spec.meta} WHERE key = ?", (spec.meta_key(what),)
    ).fetchone()
    if row is None:
        return None
    value = orjson.loads(bytes(row[0]) if not isinstance(row[0], str) else row[0])
    return value if isinstance(value, dict) else None


def _meta_set(db: sqlite3.Connection, spec: ChainSpec, what: str, value: dict[str, Any]) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO {spec.meta}(key, value) VALUES (?, ?)",
        (spec.meta_key(what), orjson.dumps(value)),
    )


def read_head(db: sqlite3.Connection, spec: ChainSpec) -> Head | None:
    value = _meta_get(db, spec, "head")
    if value is None:
        return None
    try:
        return Head(int(value["seq"]), str(value["hash"]))
    except (KeyError, TypeError, ValueError):
        return Head(-1, "")  # an unreadable head is reported by verify, never trusted


def _has_chain_columns(db: sqlite3.Connection, spec: ChainSpec) -> bool:
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({spec.table})")}
    return {"prev_hash", "hash"} <= columns


def _adopt(db: sqlite3.Connection, spec: ChainSpec) -> Head:
    """Start (or resume) the chain: add the columns, chain unchained rows at the tail."""
    if not _has_chain_columns(db, spec):
        for column in ("prev_hash", "hash"):
            db.execute(f"ALTER TABLE {spec.table} ADD COLUMN {column} TEXT")
    now = format_instant(now_micros())
    last = db.execute(
        f"SELECT {spec.key}, hash FROM {spec.table} WHERE hash IS NOT NULL "
        f"ORDER BY {spec.key} DESC LIMIT 1"
    ).fetchone()
    seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    if last:  # chained rows but no head: the head row was removed
        _meta_set(db, spec, "head_restored", {"seq": seq, "at": now})
    rows = db.execute(
        f"SELECT {spec.key}, {', '.join(spec.columns)} FROM {spec.table} "
        f"WHERE {spec.key} > ? ORDER BY {spec.key}",
        (seq,),
    ).fetchall()
    for row in rows:
        try:
            record = spec.record(int(row[0]), tuple(row[1:]))
        except ValueError as exc:
            raise ValueError(f"{spec.name} {spec.key} {row[0]}: cannot chain ({exc})") from exc
        digest = link(prev, record)
        db.execute(
            f"UPDATE {spec.table} SET prev_hash = ?, hash = ? WHERE {spec.key} = ?",
            (prev, digest, row[0]),
        )
        seq, prev = int(row[0]), digest
    if rows:
        _meta_set(db, spec, "adopted", {"count": len(rows), "upto": seq, "at": now})
    head = Head(seq, prev)
    _set_head(db, spec, head)
    return head


def _set_head(db: sqlite3.Connection, spec: ChainSpec, head: Head) -> None:
    _meta_set(db, spec, "head", {"seq": head.seq, "hash": head.hash})


def _head_for_append(db: sqlite3.Connection, spec: ChainSpec) -> tuple[int, str]:
    """(next number, prev hash): numbering continues after the head *and* the last row."""
    head = read_head(db, spec)
    if head is None or head.seq < 0:
        head = _adopt(db, spec)
    end = db.execute(f"SELECT COALESCE(MAX({spec.key}), 0) FROM {spec.table}").fetchone()[0]
    return max(head.seq, int(end)) + 1, head.hash


def ensure_chain(db: sqlite3.Connection, spec: ChainSpec) -> dict[str, Any] | None:
    """Adopt a table that has no chain yet (old home); returns the adoption note if made now.

    Does nothing when the head exists, or when chained rows exist without a
    head (that is evidence, left for verify to report).
    """
    if read_head(db, spec) is not None:
        return None
    if _has_chain_columns(db, spec) and db.execute(
        f"SELECT 1 FROM {spec.table} WHERE hash IS NOT NULL LIMIT 1"
    ).fetchone():
        return None
    with _savepoint(db):
        _adopt(db, spec)
    return _meta_get(db, spec, "adopted") or {"count": 0}


class _savepoint:
    """Atomic inside or outside an open transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("SAVEPOINT chain_append")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.db.execute("ROLLBACK TO chain_append")
        self.db.execute("RELEASE chain_append")


# -- appends --------------------------------------------------------------------


def append_lifecycle(db: sqlite3.Connection, records: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert chained lifecycle records and move the head; returns their seqs."""
    if not records:
        return []
    with _savepoint(db):
        first, prev = _head_for_append(db, LIFECYCLE)
        rows = []
        for offset, record in enumerate(records):
            seq = first + offset
            digest = link(prev, {**record, "seq": seq})
            rows.append((seq, record["household_id"], warning_column(record), record["type"],
                         orjson.dumps(record), prev, digest))
            prev = digest
        db.executemany(
            "INSERT INTO lifecycle(seq, household_id, warning_id, type, body, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        last = first + len(records) - 1
        _set_head(db, LIFECYCLE, Head(last, prev))
    return list(range(first, last + 1))


def append_audit(db: sqlite3.Connection, row: Mapping[str, Any]) -> int:
    """Insert one chained audit row (keys: ``AUDIT_COLUMNS``); returns its id."""
    with _savepoint(db):
        row_id, prev = _head_for_append(db, AUDIT)
        values = tuple(row[c] for c in AUDIT_COLUMNS)
        digest = link(prev, _audit_record(row_id, values))
        db.execute(
            f"INSERT INTO audit(id, {', '.join(AUDIT_COLUMNS)}, prev_hash, hash) "
            f"VALUES (?, {', '.join('?' * len(AUDIT_COLUMNS))}, ?, ?)",
            (row_id, *values, prev, digest),
        )
        _set_head(db, AUDIT, Head(row_id, digest))
    return row_id


# -- verification ---------------------------------------------------------------


@dataclass
class ChainReport:
    name: str
    rows: int = 0
    head: Head | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The records read (number → record), for the warehouse comparison.
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Stored hash per number (for the anchor check).
    hashes: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seqs {first}–{last}"


def walk(db: sqlite3.Connection, spec: ChainSpec) -> ChainReport:
    """Check every row's hash, the links between rows, and the head (call in a read txn)."""
    report = ChainReport(spec.name)
    label = spec.key
    if not _has_chain_columns(db, spec):
        count = db.execute(f"SELECT COUNT(*) FROM {spec.table}").fetchone()[0]
        report.rows = int(count)
        report.problems.append(f"not chained: table {spec.table} has no hash columns")
        return report
    rows = db.execute(
        f"SELECT {spec.key}, {', '.join(spec.columns)}, prev_hash, hash FROM {spec.table} "
        f"ORDER BY {spec.key}"
    ).fetchall()
    report.rows = len(rows)
    by_hash = {row[-1]: int(row[0]) for row in rows if row[-1] is not None}
    expected_prev, prev_key = GENESIS, 0
    last_hash: str | None = None
    for row in rows:
        key, values, prev_hash, digest = int(row[0]), tuple(row[1:-2]), row[-2], row[-1]
        if prev_hash is None or digest is None:
            report.problems.append(f"{label} {key}: not chained (no hash): "
                                   "inserted outside the chain")
            expected_prev, prev_key, last_hash = "", key, None
            continue
        report.hashes[key] = digest
        try:
            record = spec.record(key, values)
        except ValueError as exc:
            report.problems.append(f"{label} {key}: unreadable record ({exc}): edited")
        else:
            report.records[key] = record
            if link(prev_hash, record) != digest:
                report.problems.append(f"{label} {key}: hash mismatch: the row was edited "
                                       "or moved to another " + label)
            if spec.check is not None:
                report.problems.extend(spec.check(key, values, record))
        gap = key != prev_key + 1
        if gap:
            where = f"after {label} {prev_key}" if prev_key else "at the start"
            report.problems.append(
                f"gap {where}: {_span(prev_key + 1, key - 1).replace('seq', label)} "
                "missing (removed)"
            )
        if prev_hash != expected_prev:
            pointed = by_hash.get(prev_hash)
            if prev_hash == GENESIS:
                report.problems.append(f"{label} {key}: chained as the first row but comes "
                                       f"after {label} {prev_key}: rows reordered")
            elif pointed is not None and pointed != prev_key:
                report.problems.append(f"{label} {key}: chained after {label} {pointed} but comes "
                                       f"after {label} {prev_key}: rows reordered")
            elif not gap:
                before = f"{label} {prev_key}" if prev_key else "the start"
                report.problems.append(
                    f"{label} {key}: prev_hash does not match the hash of {before}: "
                    "a row before it was removed or rewritten"
                )
        expected_prev, prev_key, last_hash = digest, key, digest
    _check_head(db, spec, report, prev_key, last_hash)
    return report


def _check_head(
    db: sqlite3.Connection, spec: ChainSpec, report: ChainReport, last: int, last_hash: str | None
) -> None:
    label = spec.key
    head = read_head(db, spec)
    report.head = head
    restored = _meta_get(db, spec, "head_restored")
    if restored:
        report.problems.append(
            f"the head row was missing and was rebuilt from {label} {restored.get('seq')} "
            f"at {restored.get('at')}: rows removed from the tail before then are not detectable"
        )
    adopted = _meta_get(db, spec, "adopted")
    if adopted:
        report.notes.append(
            f"{adopted.get('count')} rows written before the chain existed were chained at "
            f"{adopted.get('at')} (vouched for from then on)"
        )
    if head is None:
        if report.rows:
            report.problems.append("no head row: the chain head was removed")
        return
    if head.seq < 0:
        report.problems.append("the head row is unreadable: edited")
    elif head.seq > last:
        left = f"last row is {label} {last}" if last else "no rows left"
        report.problems.append(
            f"truncated tail: head says {label} {head.seq}, {left} "
            f"({head.seq - last} missing)"
        )
    elif head.seq < last:
        report.problems.append(f"rows after the head: head says {label} {head.seq}, last row is "
                               f"{label} {last}: appended outside the chain")
    elif head.hash != (last_hash or GENESIS):
        report.problems.append(f"head hash does not match {label} {last}: the last row or the "
                               "head was rewritten")


# -- the warehouse --------------------------------------------------------------

LifecycleKey = tuple[str, str, str | None, int]


@dataclass
class WarehouseReport:
    compared: int = 0
    pending: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _what(key: LifecycleKey) -> str:
    warning_id, kind, to_level, _ = key
    level = f" to {to_level}" if to_level else ""
    return f"{kind}{level} of {warning_id}"


def _show(key: LifecycleKey) -> str:
    return f"{_what(key)} at {format_instant(key[3])}"


def compare_warehouse(
    records: Mapping[int, Mapping[str, Any]],
    projected_upto: int,
    rows: Sequence[tuple[Any, ...]],
) -> WarehouseReport:
    """Log records (seq ≤ the warehouse checkpoint) against warehouse rows.

    ``rows``: (warning_id, type, to_level, at in µs, seq) from the warehouse's
    lifecycle table (FINAL), and (referral_id, type, NULL, at in µs, seq) from its
    referral records (FINAL). Compared as multisets of (warning_id or referral_id,
    type, to_level, at); a row whose key matches but whose instant differs is
    reported as changed. The lifecycle table keeps one row per (warning, type,
    to_level), the latest: of a reopened warning's repeated transitions only the last
    projected one is expected there (every record still counts as compared).
    """
    report = WarehouseReport()
    log_keys: Counter[LifecycleKey] = Counter()
    pending: Counter[LifecycleKey] = Counter()
    log_seq: dict[LifecycleKey, int] = {}
    #: The warehouse row each record replaces: (warning, type, to_level) or a referral's.
    latest: dict[tuple[Any, ...], tuple[int, LifecycleKey]] = {}
    pending_slots: set[tuple[Any, ...]] = set()
    for seq, record in records.items():
        try:
            kind = str(record["type"])
            at = parse_instant(str(record["at"]))
            if kind.startswith("referral."):
                key: LifecycleKey = (str(record["referral_id"]), kind, None, at)
                slot: tuple[Any, ...] = (record["household_id"], *key[:2])
            else:
                key = (str(record["warning_id"]), kind, record.get("to_level"), at)
                slot = key[:3]
        except Exception:  # an edited record: already named by the chain walk
            continue
        if seq > projected_upto:
            # Not sent yet, or sent by a flush whose checkpoint did not commit: either way fine.
            report.pending += 1
            pending[key] += 1
            pending_slots.add(slot)
            continue
        report.compared += 1
        previous = latest.get(slot)
        if previous is None or previous[0] < seq:
            latest[slot] = (seq, key)
    wh_keys: Counter[LifecycleKey] = Counter()
    wh_seq: dict[LifecycleKey, int] = {}
    for warning_id, kind, to_level, at, seq in rows:
        key = (str(warning_id), str(kind), to_level or None, int(at))
        wh_keys[key] += 1
        wh_seq.setdefault(key, int(seq))
    for slot, (seq, key) in latest.items():
        if slot in pending_slots:
            # A newer record of the same row may already have replaced it: either is fine.
            if wh_keys[key]:
                wh_keys[key] -= 1
            continue
        log_keys[key] += 1
        log_seq.setdefault(key, seq)
    missing = log_keys - wh_keys
    extra = wh_keys - log_keys - pending
    extra_by_id = {k[:3]: k for k in extra}
    for key in sorted(missing, key=lambda k: log_seq[k]):
        other = extra_by_id.pop(key[:3], None)
        if other is not None:
            del extra[other]
            report.problems.append(
                f"warehouse: {_what(key)} differs: "
                f"at {format_instant(key[3])} in the log (seq {log_seq[key]}), "
                f"{format_instant(other[3])} in the warehouse"
            )
        else:
            report.problems.append(f"warehouse: missing {_show(key)} (log seq {log_seq[key]})")
    for key in sorted(extra, key=lambda k: wh_seq[k]):
        report.problems.append(f"warehouse: {_show(key)} is not in the log "
                               f"(warehouse seq {wh_seq[key]})")
    return report


WAREHOUSE_SQL = (
    "SELECT warning_id, type, to_level, toUnixTimestamp64Micro(at), seq FROM lifecycle FINAL "
    "UNION ALL "
    "SELECT referral_id, type, NULL, toUnixTimestamp64Micro(at), seq FROM referral_records FINAL"
)


# -- the whole home -------------------------------------------------------------


@dataclass
class VerifyReport:
    lifecycle: ChainReport
    audit: ChainReport
    warehouse: WarehouseReport | None = None
    anchor: list[str] = field(default_factory=list)
    anchor_notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = [f"lifecycle: {p}" for p in self.lifecycle.problems]
        out += [f"audit: {p}" for p in self.audit.problems]
        if self.warehouse is not None:
            out += self.warehouse.problems
        out += [f"anchor: {p}" for p in self.anchor]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def read_chain(db: sqlite3.Connection, spec: ChainSpec) -> tuple[ChainReport, str | None]:
    adopted = ensure_chain(db, spec)
    db.execute("BEGIN")  # one snapshot: rows and head agree even while a writer appends
    try:
        report = walk(db, spec)
    finally:
        db.execute("COMMIT")
    note = None
    if adopted is not None and adopted.get("count"):
        note = f"chained {adopted['count']} existing rows now (first use of the chain)"
    return report, note


def _heads(report: VerifyReport) -> dict[str, dict[str, Any]]:
    out = {}
    for chain in (report.lifecycle, report.audit):
        head = chain.head or Head(0, GENESIS)
        out[chain.name] = {"seq": head.seq, "hash": head.hash}
    return out


def check_anchor(report: VerifyReport, path: Path, update: bool) -> None:
    """Each anchored (seq, hash) must still be in its chain: the chain only grows."""
    heads = _heads(report)
    if not path.exists():
        if report.ok:
            path.write_bytes(orjson.dumps(heads, option=orjson.OPT_INDENT_2) + b"\n")
            report.anchor_notes.append(f"anchor written to {path}")
        else:
            report.anchor_notes.append("anchor not written: the chains are not intact")
        return
    try:
        anchored = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        report.anchor.append(f"{path} is not a jiahe anchor file")
        return
    for chain in (report.lifecycle, report.audit):
        mark = anchored.get(chain.name) if isinstance(anchored, dict) else None
        if not isinstance(mark, dict):
            report.anchor.append(f"{path} has no {chain.name} entry")
            continue
        seq, digest = int(mark.get("seq", 0)), str(mark.get("hash", ""))
        current = chain.head or Head(0, GENESIS)
        if seq == 0:
            continue
        if seq > current.seq:
            report.anchor.append(f"{chain.name}: anchored at seq {seq} but the head is seq "
                                 f"{current.seq}: truncated")
        elif seq == current.seq and digest != current.hash:
            report.anchor.append(f"{chain.name}: head hash differs from the anchor at seq {seq}: "
                                 "the chain was rewritten")
        elif seq < current.seq and chain.hashes.get(seq) != digest:
            report.anchor.append(f"{chain.name}: seq {seq} no longer has the anchored hash: "
                                 "the chain was rewritten")
    if update and report.ok:
        path.write_bytes(orjson.dumps(heads, option=orjson.OPT_INDENT_2) + b"\n")
        report.anchor_notes.append(f"anchor advanced in {path}")
    elif not report.anchor:
        report.anchor_notes.append(f"anchor {path} matches")

