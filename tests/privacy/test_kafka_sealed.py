"""Personal fields on the Kafka runtime, on a REAL broker and a real ``jiahe worker``.

The publisher SDK, given the home's key store (``privacy.keystore``), seals personal
fields before they enter its outbox; the worker validates and processes the sealed
events without any key. Checked here:

* no planted personal text in any byte (value, key, headers) of the events or warnings
  topic, in the outbox or key store files, or in the worker's log; in the DLQ only
  input that names no household (it cannot be tied to anyone's erasure — documented);
* the worker's lifecycle output equals the engine over the *clear* stream;
* ``jiahe erase HH --bootstrap`` shreds the key and publishes a marker to the erasures
  topic: the household's sealed fields and sealed dead letters then read as erased,
  the others still open, and ledgers rebuilt from the topics show the household as
  ``erased:<key>`` with every count unchanged; a later event of it loses its
  personal fields on arrival.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from click.testing import CliRunner

from cli.main import main
from events.instants import parse_instant
from privacy.crypto import ERASED, is_envelope
from privacy.dead_letters import quarantine_day
from privacy.keystore import KEYSTORE_FILE, kafka_keyring
from privacy.pseudonym import erased_label, household_key
from privacy.sealed import decode_sealed
from projections.reference import household_ledger
from sdk.publisher import Publisher
from streams.kafka.erasure_topic import erasures_topic, read_erasures
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.helpers import DAY, T0, envelope, line
from tests.privacy.conftest import AS_OF, MARK, personal_texts, story, visit_with_notes
from tests.streams.kafka.test_worker import (
    Expected,
    Workers,
    expected_from,
    read_all,
    wait_for_records,
)

if TYPE_CHECKING:
    from tests.kafka_fixtures import KafkaBroker

ERASED_HH = "hh-0"
SECRET = b"test-pseudonym-secret"


def bad_lines() -> list[str]:
    """Rejected input carrying personal text: with a household (sealed whole), a conflict
    (same event_id, other notes: its fields sealed) and one naming no household."""
    bad_org = envelope("screening.visit_recorded", ERASED_HH, T0 + DAY,
                       {"indicators": ["threats"], "notes": f"{MARK}-badorg 李某"}, org="2301",
                       eid="bad-org")
    first_hh1 = story()[5]
    conflict = json.loads(first_hh1)
    conflict["data"]["notes"] = f"{MARK}-conflict 张某"
    anonymous = {"type": "screening.visit_recorded", "data": {"notes": f"{MARK}-nohh"}}
    return [line(bad_org), line(conflict), json.dumps(anonymous)]


def message_bytes(message: Any) -> bytes:
    headers = b"".join(k.encode() + (v or b"") for k, v in message.headers or ())
    return (message.key or b"") + (message.value or b"") + headers


def leaks(blob: bytes) -> list[str]:
    texts = [MARK, *personal_texts(), "王某某", "13800138", "红旗街"]
    return [t for t in texts if t.encode() in blob]


def file_bytes(*paths: Path) -> bytes:
    out = b""
    for path in paths:
        for suffix in ("", "-wal", "-shm"):
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                out += candidate.read_bytes()
    return out


@pytest.fixture(scope="module")
def sealed_run(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, Any]:
    """The story published sealed, one worker over it; everything the tests look at."""
    import uuid

    tmp = tmp_path_factory.mktemp("kafka-sealed")
    prefix = f"t.kafka-sealed.{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    create_topic_set(kafka_broker.bootstrap, topics, 3)
    home = tmp / "publisher-home"
    lines = story()  # once: events without an explicit id get a fresh one per call
    keyring = kafka_keyring(home)
    try:
        with Publisher(kafka_broker.bootstrap, home / "outbox.sqlite3", topics.events,
                       topics.dlq, keyring=keyring) as publisher:
            result = publisher.publish([*lines, *bad_lines()], timeout=60)
    finally:
        keyring.close()
    assert result.error is None and result.queued == 0, result
    assert (result.received, result.accepted, result.rejected) == (33, 30, 3)
    clear = expected_from([x.encode() for x in lines], AS_OF)
    pool = Workers(kafka_broker.bootstrap, prefix, tmp / "workers", keys_home=home)
    pool.tmp.mkdir()
    try:
        pool.start("w1", "--as-of", AS_OF, "--store", "memory")
        wait_for = Expected(clear.records, set(), [b""] * result.accepted, clear.processed)
        got = wait_for_records(pool, wait_for)
    finally:
        pool.stop()
    return {"bootstrap": kafka_broker.bootstrap, "prefix": prefix, "topics": topics,
            "home": home, "clear": clear, "got": got, "logs": pool.logs()}


def test_worker_output_on_sealed_events_equals_the_clear_run(sealed_run: dict[str, Any]
                                                             ) -> None:
    clear: Expected = sealed_run["clear"]
    assert len(clear.records) >= 12  # each household: a red and a yellow warning at least
    assert set(sealed_run["got"]) == set(clear.records)
    assert sealed_run["got"] == clear.records


def test_no_personal_text_in_events_or_warnings_topic(sealed_run: dict[str, Any]) -> None:
    topics, bootstrap = sealed_run["topics"], sealed_run["bootstrap"]
    for topic in (topics.events, topics.warnings):
        messages = read_all(bootstrap, topic)
        assert messages, topic
        found = [(m.offset, leaks(message_bytes(m))) for m in messages if leaks(message_bytes(m))]
        assert not found, f"{topic}: {found}"
    sealed_fields = 0
    for message in read_all(bootstrap, topics.events):
        data = orjson.loads(message.value)["data"]
        sealed_fields += sum(1 for v in data.values() if is_envelope(v))
    assert sealed_fields == 24  # 6 households × (2 notes, 1 note, 1 reason)


def test_dead_letters_are_sealed_by_household_or_under_the_quarantine_key(
    sealed_run: dict[str, Any],
) -> None:
    letters = read_all(sealed_run["bootstrap"], sealed_run["topics"].dlq)
    assert len(letters) == 3
    keyring = kafka_keyring(sealed_run["home"])
    try:  # the sender can still see what it sent (until the household is erased)
        sealed = [m for m in letters if m.key == ERASED_HH.encode()]
        assert [keyring.open_blob(orjson.loads(m.value)) for m in sealed] == [
            bad_lines()[0].encode()]
        anonymous = [m for m in letters if m.key is None]
        assert [keyring.open_blob(orjson.loads(m.value)) for m in anonymous] == [
            bad_lines()[2].encode()]
        assert quarantine_day(orjson.loads(anonymous[0].value)["household_id"]) is not None
    finally:
        keyring.close()
    for message in letters:
        assert dict(message.headers)["reason"]
        assert not leaks(message_bytes(message))


def test_no_personal_text_in_outbox_key_store_or_worker_log(sealed_run: dict[str, Any]) -> None:
    home: Path = sealed_run["home"]
    assert not leaks(file_bytes(home / KEYSTORE_FILE))
    assert not leaks(file_bytes(home / "outbox.sqlite3"))
    assert not leaks(sealed_run["logs"].encode())


def test_sealed_fields_open_with_the_key_store(sealed_run: dict[str, Any]) -> None:
    """Sealing is real encryption, not deletion: the home's keys give the text back."""
    keyring = kafka_keyring(sealed_run["home"])
    try:
        opened = []
        for message in read_all(sealed_run["bootstrap"], sealed_run["topics"].events):
            body, problems = keyring.open_event(orjson.loads(message.value))
            assert not problems
            opened += [v for k, v in body["data"].items() if k in ("notes", "note", "reason")]
    finally:
        keyring.close()
    assert sorted(opened) == sorted(personal_texts())


def test_worker_rejects_a_malformed_envelope_with_a_reason() -> None:
    body = json.loads(visit_with_notes("hh-x", T0, ["threats"], "x", "230102001001"))
    body["data"]["notes"] = {"enc": "aesgcm", "kid": "k", "nonce": "nope", "ct": "AA=="}
    rejected = decode_sealed(orjson.dumps(body))
    assert getattr(rejected, "reason", "").startswith("data.notes: sealed envelope")
    body["data"]["indicators"] = {"enc": "aesgcm"}  # only personal fields may be sealed
    body["data"]["notes"] = "clear"
    assert "indicators" in getattr(decode_sealed(orjson.dumps(body)), "reason", "")


def _ledger(events: list[dict[str, Any]], lifecycle: list[dict[str, Any]],
            erased: set[str]) -> list[dict[str, Any]]:
    return household_ledger(events, lifecycle, parse_instant(AS_OF), erased=erased,
                            pseudonym_secret=SECRET)


def test_erase_on_kafka_shreds_the_key_and_marks_the_household(
    sealed_run: dict[str, Any],
) -> None:
    bootstrap, prefix, home = sealed_run["bootstrap"], sealed_run["prefix"], sealed_run["home"]
    topics: Topics = sealed_run["topics"]
    out = CliRunner().invoke(main, ["--home", str(home), "erase", ERASED_HH, "--yes",
                                    "--bootstrap", bootstrap, "--topic-prefix", prefix])
    assert out.exit_code == 0, out.output
    assert "data key deleted" in out.output

    markers = read_erasures(bootstrap, erasures_topic(prefix))
    assert set(markers) == {ERASED_HH}

    keyring = kafka_keyring(home)
    erased_texts = 0
    try:
        events = []
        for message in read_all(bootstrap, topics.events):
            body, problems = keyring.open_event(orjson.loads(message.value))
            assert not problems
            texts = [body["data"][k] for k in ("notes", "note", "reason") if k in body["data"]]
            if not texts:
                assert body["type"] == "petition.received"
            elif body["household_id"] == ERASED_HH:
                assert set(texts) == {ERASED}
                erased_texts += len(texts)
            else:
                assert ERASED not in texts
            decoded = decode_sealed(message.value)
            assert not hasattr(decoded, "reason")
            events.append({**decoded.raw, "offset": message.offset})  # type: ignore[union-attr]
        assert erased_texts == 4
        erased_letters = 0
        for message in read_all(bootstrap, topics.dlq):
            if message.key == ERASED_HH.encode():
                assert keyring.open_blob(orjson.loads(message.value)) is None
                erased_letters += 1
            elif message.key is not None:  # the conflict of hh-1: fields still sealed, open
                opened = keyring.open_dead_letter(message.value)  # quarantined by the worker
                assert opened is not None
                body, problems = keyring.open_event(orjson.loads(opened))
                assert not problems and body["data"]["notes"].endswith("张某")
        assert erased_letters == 1
        # A later event of the erased household: kept, its personal field dropped.
        with Publisher(bootstrap, home / "outbox.sqlite3", topics.events, topics.dlq,
                       keyring=keyring) as publisher:
            late = visit_with_notes(ERASED_HH, T0 + 9 * DAY, ["threats"], f"{MARK}-late",
                                    "230102001001")
            assert publisher.publish([late], flush=False).accepted == 1
            payload = publisher.outbox.pending(10)[-1].payload
        assert orjson.loads(payload)["data"]["notes"] == ERASED
    finally:
        keyring.close()

    lifecycle = [{**orjson.loads(m.value), "seq": i}
                 for i, m in enumerate(read_all(bootstrap, topics.warnings))]
    before, after = _ledger(events, lifecycle, set()), _ledger(events, lifecycle, set(markers))
    label = erased_label(household_key(SECRET, ERASED_HH))
    assert [r["household_id"] for r in after].count(label) == 1
    assert ERASED_HH not in [r["household_id"] for r in after]
    strip = [{k: v for k, v in r.items() if k != "household_id"} for r in before]
    assert sorted(map(str, strip)) == sorted(
        str({k: v for k, v in r.items() if k != "household_id"}) for r in after)


def test_warehouse_rebuilt_from_the_topics_shows_the_household_erased(
    sealed_run: dict[str, Any],
) -> None:
    """A fresh worker (new app id) with a chdb warehouse, after the erasure above: it reads
    the erasures topic, so its ledger names the household ``erased:<key>``, counts kept."""
    from projections.ledgers import household_ledger as warehouse_ledger
    from projections.warehouse.chdb_backend import ChdbWarehouse

    prefix, clear = sealed_run["prefix"], sealed_run["clear"]
    assert set(read_erasures(sealed_run["bootstrap"], erasures_topic(prefix))) == {ERASED_HH}
    pool = Workers(sealed_run["bootstrap"], prefix, sealed_run["home"].parent / "rebuild")
    pool.tmp.mkdir()
    pool.group = prefix + "rebuild"
    warehouse = pool.tmp / "warehouse"
    # The story's 30 events (the late event above was only enqueued, never flushed).
    wait_for = Expected(clear.records, set(), [b""] * 30, clear.processed)
    try:
        pool.start("r1", "--as-of", AS_OF, "--store", "memory", "--warehouse", f"chdb:{warehouse}")
        wait_for_records(pool, wait_for)
        deadline = time.monotonic() + 60
        while "erased households kept out of the warehouse" not in pool.logs():
            assert time.monotonic() < deadline, pool.logs()
            time.sleep(0.5)
    finally:
        pool.stop()
    secret = (pool.tmp / "home" / "pseudonym.key").read_bytes().strip()
    store = ChdbWarehouse(warehouse, secret)
    try:
        rows = warehouse_ledger(store, as_of=parse_instant(AS_OF))
    finally:
        store.close()
    names = [r["household_id"] for r in rows]
    assert ERASED_HH not in names
    assert names.count(erased_label(household_key(secret, ERASED_HH))) == 1
    assert len(rows) == 6
