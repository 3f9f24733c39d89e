"""``jiahe verify``: on an embedded home, both hash chains, the warehouse, the anchor;
on the Kafka runtime, the lifecycle records on ``jiahe.warnings``, the key store and
the sealed fields on ``jiahe.events``, the audit chain, the anchor.

The chain walking and comparisons are :mod:`privacy.audit`'s; this use case only
opens the home's log, user store and warehouse and hands them over.

On Kafka the lifecycle records are not chained where they are stored: a topic is
append-only, so a record cannot be edited in place, but anyone who may produce to
``jiahe.warnings`` can append a forged one, and retention or a deleted topic can lose
records. :func:`verify_kafka` therefore checks what a topic can show: every record's
``record_id`` header names its own content (the worker writes it; an edited copy does
not match), a re-emitted record equals the first copy, every transition of a warning
follows that warning's ``warning.raised`` in its partition (a referral's answer its
``referral.sent``), and the key of each record is its household (a district
surge's, which names none: its warning). The chain is computed
at verify time (sha256 over each partition's records in offset order) and compared
with ``--anchor``, which catches records that vanished or were rewritten since.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from access.users import USERS_FILE, UserStore
from app.bootstrap import bootstrap_embedded
from app.kafka_mode import skip_unreadable
from privacy.audit import (
    AUDIT,
    LIFECYCLE,
    WAREHOUSE_SQL,
    ChainReport,
    VerifyReport,
    WarehouseReport,
    check_anchor,
    compare_warehouse,
    read_chain,
)
from privacy.crypto import KeyringError
from privacy.keystore import KEYSTORE_FILE, kafka_keyring
from streams.embedded.processor import LIFECYCLE_CONSUMER
from streams.embedded.runtime import LOG_FILE
from streams.kafka.batch import record_id
from streams.kafka.settings import KafkaSettings
from streams.kafka.unreadable import UnreadableBatch


def verify_home(
    home: Path,
    warehouse: bool = True,
    anchor: Path | None = None,
    update_anchor: bool = False,
) -> VerifyReport:
    """Walk both chains under ``home``, compare the warehouse, check the anchor."""
    if not (home / LOG_FILE).exists():
        raise FileNotFoundError(f"no embedded log at {home / LOG_FILE}")
    runtime = bootstrap_embedded(home)
    try:
        lifecycle, note = read_chain(runtime.log.db, LIFECYCLE)
        if note:
            lifecycle.notes.append(note)
        audit = _verify_audit(home / USERS_FILE)
        report = VerifyReport(lifecycle, audit)
        if warehouse:
            upto = runtime.log.checkpoint(LIFECYCLE_CONSUMER)
            try:
                rows = runtime.warehouse.query(WAREHOUSE_SQL).rows
            except Exception as exc:  # chdb refuses a path another process holds
                report.warehouse = WarehouseReport(problems=[
                    f"warehouse: could not be read ({exc}); stop the process that holds it, "
                    "or use --no-warehouse"])
            else:
                report.warehouse = compare_warehouse(lifecycle.records, upto, rows)
    finally:
        runtime.close()
    if anchor is not None:
        check_anchor(report, anchor, update_anchor)
    return report


def _verify_audit(path: Path) -> ChainReport:
    if not path.exists():
        report = ChainReport("audit")
        report.notes.append("no user store (users.sqlite3): no audit trail yet")
        return report
    store = UserStore(path)  # creates missing tables (audit_meta) like any other open
    try:
        report, note = read_chain(store.db, AUDIT)
    finally:
        store.close()
    if note:
        report.notes.append(note)
    return report


# -- the Kafka runtime ------------------------------------------------------------

GENESIS = "0" * 64
#: A record that names a warning and must follow its raise; a referral's answer and
#: closing must follow its ``referral.sent``.
RAISED, SENT = "warning.raised", "referral.sent"


@dataclass
class TopicCheck:
    """What reading one topic to its end found."""

    topic: str
    records: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: partition → (last offset read, sha256 chain over the records up to it)
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: partition → the hash after each offset (for the anchor check)
    hashes: dict[int, dict[int, str]] = field(default_factory=dict)


@dataclass
class KafkaVerifyReport:
    warnings: TopicCheck
    events: TopicCheck | None
    keys: int
    key_problems: list[str]
    audit: ChainReport
    anchor: list[str] = field(default_factory=list)
    anchor_notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = [f"{self.warnings.topic}: {p}" for p in self.warnings.problems]
        if self.events is not None:
            out += [f"{self.events.topic}: {p}" for p in self.events.problems]
        out += [f"key store: {p}" for p in self.key_problems]
        out += [f"audit: {p}" for p in self.audit.problems]
        out += [f"anchor: {p}" for p in self.anchor]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_kafka(
    home: Path,
    settings: KafkaSettings,
    sealed: bool = True,
    anchor: Path | None = None,
    update_anchor: bool = False,
    timeout_s: float = 60.0,
) -> KafkaVerifyReport:
    """Check the Kafka runtime of ``home`` (its key store and user store) and its topics."""
    topics = settings.topics
    warnings = check_lifecycle_topic(settings.bootstrap, topics.warnings, timeout_s)
    keys, key_problems, events = 0, [], None
    if not (home / KEYSTORE_FILE).exists():
        warnings.notes.append(f"no key store ({home / KEYSTORE_FILE}): no sealed fields to "
                              "check from this home")
    else:
        keyring = kafka_keyring(home)
        try:
            keys = keyring.store.key_count()
            key_problems = keyring.verify_keys()
            if sealed:
                events = _check_sealed(settings.bootstrap, topics.events, keyring, timeout_s)
        finally:
            keyring.close()
    report = KafkaVerifyReport(warnings, events, keys, key_problems,
                               _verify_audit(home / USERS_FILE))
    if anchor is not None:
        _check_topic_anchor(report, anchor, update_anchor)
    return report


def read_topic(bootstrap: str, topic: str, timeout_s: float) -> Iterator[Any]:
    """Every message of ``topic`` up to its end offsets as of now, partition by partition
    in offset order; an unreadable batch comes as one ``UnreadableBatch`` message."""
    consumer = skip_unreadable(KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                             enable_auto_commit=False,
                                             client_id="jiahe-verify"))
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise FileNotFoundError(f"no topic {topic} at {bootstrap}")
        for partition in sorted(partitions):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            deadline = time.monotonic() + timeout_s
            while consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}[{partition}]: not read to offset {end} "
                                       f"within {timeout_s:.0f} s")
                for message in consumer.poll(timeout_ms=500).get(tp, []):
                    if message.offset < end:
                        yield message
    finally:
        consumer.close()


def check_lifecycle_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> TopicCheck:
    """The lifecycle records on ``topic`` (see the module docstring for the checks)."""
    check = TopicCheck(topic)
    first: dict[str, dict[str, Any]] = {}
    #: subject (warning, or household/referral) → where its opening record is
    opened: dict[tuple[str, ...], tuple[int, int]] = {}
    followers: list[tuple[tuple[str, ...], str, int, int]] = []
    for message in read_topic(bootstrap, topic, timeout_s):
        partition, offset = message.partition, message.offset
        where = f"partition {partition} offset {offset}"
        _chain(check, message)
        if isinstance(message.value, UnreadableBatch):
            check.problems.append(f"partition {partition}: {message.value.reason}")
            continue
        record = _record(message.value)
        if record is None:
            check.problems.append(f"{where}: not a lifecycle record")
            continue
        check.records += 1
        try:
            expected = record_id(record)
        except (KeyError, TypeError) as exc:
            check.problems.append(f"{where}: not a lifecycle record (no {exc})")
            continue
        headers = dict(message.headers or ())
        stated = headers.get("record_id", b"").decode(errors="replace")
        if stated != expected:
            check.problems.append(f"{where}: its record_id header {stated!r} does not name "
                                  f"its content ({expected}): edited or forged")
        household = record.get("household_id")
        # a district surge names no household: its records are keyed by their warning
        owner = household if household is not None else record.get("warning_id")
        if message.key != (owner.encode() if isinstance(owner, str) else None):
            check.problems.append(f"{where}: keyed {message.key!r}, but its household is "
                                  f"{household!r}")
        if expected in first:
            if first[expected] == record:
                check.duplicates += 1
            else:
                check.problems.append(f"{where}: {expected} again with other content")
            continue
        first[expected] = record
        subject, kind = _subject(record), str(record["type"])
        if kind in (RAISED, SENT):
            opened.setdefault(subject, (partition, offset))
        else:
            followers.append((subject, kind, partition, offset))
    for subject, kind, partition, offset in followers:
        start = opened.get(subject)
        opener = SENT if subject[0] == "referral" else RAISED
        if start is None:
            check.problems.append(f"{kind} of {'/'.join(subject[1:])} (partition {partition} "
                                  f"offset {offset}): its {opener} is missing")
        elif start[0] != partition or start[1] > offset:
            check.problems.append(f"{kind} of {'/'.join(subject[1:])} (partition {partition} "
                                  f"offset {offset}) is not after its {opener}")
    return check


def _record(value: bytes | None) -> dict[str, Any] | None:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("type"), str) else None


def _subject(record: dict[str, Any]) -> tuple[str, ...]:
    if str(record["type"]).startswith("referral."):
        return ("referral", str(record.get("household_id")), str(record.get("referral_id")))
    return ("warning", str(record.get("warning_id")))


def _chain(check: TopicCheck, message: Any) -> None:
    """Extend the partition's chain: sha256(previous hash, offset, key, value, headers)."""
    prev = check.heads.get(message.partition, (-1, GENESIS))[1]
    digest = hashlib.sha256()
    digest.update(prev.encode())
    digest.update(orjson.dumps([message.offset, (message.key or b"").hex(),
                                bytes(message.value or b"").hex(),
                                [[k, (v or b"").hex()] for k, v in message.headers or ()]]))
    head = digest.hexdigest()
    check.heads[message.partition] = (message.offset, head)
    check.hashes.setdefault(message.partition, {})[message.offset] = head


def _check_sealed(bootstrap: str, topic: str, keyring: Any, timeout_s: float) -> TopicCheck:
    """Open every sealed field on ``topic`` once: edited, moved or foreign ciphertexts."""
    check = TopicCheck(topic)
    keyring.refresh()
    for message in read_topic(bootstrap, topic, timeout_s):
        body = _record(message.value) if not isinstance(message.value, UnreadableBatch) else None
        if body is None:
            continue  # not an event: the worker dead-letters it (jiahe.dlq)
        check.records += 1
        try:
            _, unreadable = keyring.open_event(body)
        except KeyringError as exc:
            check.problems.append(f"event {body.get('event_id')}: {exc}")
            continue
        check.problems.extend(str(p) for p in unreadable if "erased" not in p.reason)
    return check


def _check_topic_anchor(report: KafkaVerifyReport, path: Path, update: bool) -> None:
    """Each anchored (offset, hash) of a partition must still be in its chain."""
    check = report.warnings
    heads = {"topic": check.topic, "partitions": {
        str(p): {"offset": o, "hash": h} for p, (o, h) in sorted(check.heads.items())}}
    if not path.exists() or update:
        if not report.ok:
            report.anchor_notes.append("anchor not written: the checks found problems")
        elif path.exists() and not _anchor_matches(report, path):
            return
        else:
            path.write_bytes(orjson.dumps(heads, option=orjson.OPT_INDENT_2) + b"\n")
            report.anchor_notes.append(f"anchor written to {path}")
        return
    if _anchor_matches(report, path):
        report.anchor_notes.append(f"anchor {path} matches")


def _anchor_matches(report: KafkaVerifyReport, path: Path) -> bool:
    check = report.warnings
    try:
        anchored = orjson.loads(path.read_bytes())
        marks = anchored["partitions"] if anchored.get("topic") == check.topic else None
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        marks = None
    if not isinstance(marks, dict):
        report.anchor.append(f"{path} is not an anchor of {check.topic}")
        return False
    for partition, mark in sorted(marks.items()):
        offset, digest = int(mark["offset"]), str(mark["hash"])
        last = check.heads.get(int(partition), (-1, GENESIS))[0]
        if offset > last:
            report.anchor.append(f"partition {partition}: anchored at offset {offset} but "
                                 f"the topic ends at {last}: records are gone")
        elif check.hashes.get(int(partition), {}).get(offset) != digest:
            report.anchor.append(f"partition {partition}: offset {offset} no longer has the "
                                 "anchored hash: records before it changed or are gone")
    return not report.anchor
