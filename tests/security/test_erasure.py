"""``jiahe erase`` reaches every copy in the home, checked on the bytes of its files.

The attack: after a household asked to be forgotten, an outsider with a copy of the
home directory (a backup, a stolen disk) looks for its name, phone or notes, or its id
in the warehouse, in every file: the log, dead letters, the outbox, webhook bodies
waiting in the subscription store, the chdb parts. Nothing of it may be found, and the
other households' data must still be there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from alerts.subscriptions import SubscriptionStore
from app.bootstrap import bootstrap_embedded
from events.codec import Decoded, Rejected, decode
from privacy.crypto import ERASED
from privacy.pseudonym import household_key
from sdk.outbox import Outbox
from streams.clock import EventTimeClock
from streams.embedded.runtime import WAREHOUSE_DIR
from tests.helpers import DAY, T0, envelope, line
from tests.privacy.test_erase import erase_cli
from tests.security.test_sealing import home_bytes

ORG = "230102001001"
GONE, STAY = "hh-gone", "hh-stay"
#: What only the erased household's records say, and what only the other's say.
SECRETS = {GONE: ("李秀英", "13811112222", "GONE-NOTE 丈夫酒后动手"),
           STAY: ("赵桂兰", "13933334444", "STAY-NOTE 孩子无人照看")}


def visit(hh: str) -> dict[str, Any]:
    name, phone, note = SECRETS[hh]
    data = {"indicators": ["injury_observed"], "notes": note, "witness_name": name}
    event = envelope("screening.visit_recorded", hh, T0, data, ORG, f"visit-{hh}")
    event["caller_phone"] = phone
    return event


def refused(hh: str) -> bytes:
    """An input refused at ingest that names the household and holds its texts."""
    event = visit(hh)
    event["event_id"] = f"not-a-uuid-{hh}"
    return orjson.dumps(event)


def garbage(hh: str) -> bytes:
    """Input that is not even JSON, naming the household only inside its text."""
    name, phone, _ = SECRETS[hh]
    return f'{{"household_id": "{hh}", "who": "{name} {phone}"'.encode()


def webhook_body(hh: str) -> bytes:
    warning = {"warning_id": f"w-{hh}", "rule_id": "violence-injury", "level": "red",
               "org_unit": ORG, "district": ORG[:6], "household_id": hh}
    return orjson.dumps({"subscription_id": "sub-1", "transition": "raised",
                         "warning": warning, "record": {"household_id": hh}},
                        option=orjson.OPT_SORT_KEYS)


def files_under(path: Path) -> bytes:
    return home_bytes(path) if path.is_dir() else path.read_bytes()


def build_home(home: Path) -> bytes:
    """Both households everywhere a household can be; returns the pseudonym secret."""
    runtime = bootstrap_embedded(home)
    try:
        inputs: list[bytes | str] = [line(visit(GONE)), line(visit(STAY)), refused(GONE),
                                     refused(STAY), garbage(GONE), garbage(STAY)]
        counts = runtime.publish(inputs, "test")
        assert (counts.accepted, counts.rejected) == (2, 4)
        runtime.process(EventTimeClock(T0 + DAY))
        secret = runtime.pseudonym_secret()
    finally:
        runtime.close()
    decoded = [decode(line(visit(hh))) for hh in (GONE, STAY)]
    rejected = [decode(refused(hh)) for hh in (GONE, STAY)] + [decode(garbage(GONE))]
    with Outbox(home / "outbox.sqlite3") as outbox:  # a publisher without a key ring
        outbox.enqueue([d for d in decoded if isinstance(d, Decoded)],
                       [r for r in rejected if isinstance(r, Rejected)])
    store = SubscriptionStore.at_home(home)
    try:
        for hh in (GONE, STAY):
            store.enqueue("sub-1", f"w-{hh}", "raised", webhook_body(hh))
    finally:
        store.close()
    return secret


def test_erase_leaves_no_byte_of_the_household_in_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = build_home(home)
    gone_texts = [t.encode() for t in SECRETS[GONE]]
    stay_texts = [t.encode() for t in SECRETS[STAY]]
    quoted_gone = orjson.dumps(GONE)
    # Before: the outbox holds them clear, the warehouse and webhook bodies name the id.
    before = home_bytes(home)
    assert all(t in before for t in gone_texts)
    assert GONE.encode() in files_under(home / WAREHOUSE_DIR)
    assert quoted_gone in (home / "alerts.sqlite3").read_bytes()

    result = erase_cli(home, GONE)
    assert result.exit_code == 0, result.output
    assert "warehouse directory parts rewritten" in result.output

    after = home_bytes(home)
    for text in gone_texts:
        assert text not in after, text
    warehouse = files_under(home / WAREHOUSE_DIR)
    assert GONE.encode() not in warehouse
    alerts = (home / "alerts.sqlite3").read_bytes()
    assert quoted_gone not in alerts
    assert household_key(secret, GONE).encode() in alerts  # still delivered, by its key
    # the other household: untouched everywhere
    assert STAY.encode() in warehouse and orjson.dumps(STAY) in alerts
    assert all(t in after for t in stay_texts)  # (clear in the key-less outbox)
    runtime = bootstrap_embedded(home)
    try:
        log = runtime.log
        bodies = {orjson.loads(e.body)["household_id"]: orjson.loads(e.body)
                  for e in log.read_events(0, 10)}
        stay, _ = log.keyring.open_event(bodies[STAY])
        gone, _ = log.keyring.open_event(bodies[GONE])
        opened = {row.household_id: log.dead_letters.unsealed_body(row.id)
                  for row in log.dead_letters.letters() if row.household_id is not None}
        directory = runtime.warehouse.query(
            "SELECT household_id FROM household_directory FINAL ORDER BY 1").rows
    finally:
        runtime.close()
    assert stay["data"]["witness_name"] == SECRETS[STAY][0]
    assert stay["caller_phone"] == SECRETS[STAY][1]
    assert gone["data"]["witness_name"] == ERASED and gone["caller_phone"] == ERASED
    assert opened[STAY] == refused(STAY)
    assert opened[GONE] == ERASED.encode()
    assert directory == [(STAY,)]


def test_erase_reaches_quarantined_dead_letters_that_name_the_household(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    runtime = bootstrap_embedded(home)
    try:
        runtime.publish([garbage(GONE), garbage(STAY)], "test")
    finally:
        runtime.close()
    assert erase_cli(home, GONE).exit_code == 0
    runtime = bootstrap_embedded(home)
    try:
        dead = runtime.log.dead_letters
        opened = sorted((dead.unsealed_body(row.id) or b"") for row in dead.letters())
    finally:
        runtime.close()
    assert opened == sorted([ERASED.encode(), garbage(STAY)])
