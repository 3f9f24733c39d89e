"""Ingest authorization by owner on the Kafka runtime, against a real broker.

The API decides from the owner directory of its mirrored log, with the events it
accepted itself and the mirror has not brought back yet folded on top (in the order
it accepted them). So a household a request placed is owned from the next request
on, even while the broker is away, across an API restart, and after the mirror
catches up. A refused event never reaches ``jiahe.events``; it goes to ``jiahe.dlq``
with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rules.ownership import NOT_OWNER_FORBIDDEN
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set
from tests.api.conftest import USERS, Api, event, serve_api
from tests.api.test_kafka_mode import (  # noqa: F401 - the module's broker/worker/API fixture
    KafkaApi,
    eventually,
    kafka_api,
    read_topic,
)

OURS = "230102001001"
THEIRS = "230103001001"


def _post(api: Api, user: str, events: list[Any]) -> tuple[int, dict[str, Any]]:
    response = api.call("POST", "/v1/events", user, json=events)
    return response.status_code, dict(response.json())


def _reasons(letters: list[Any]) -> dict[str, str]:
    out = {}
    for message in letters:
        headers = dict(message.headers)
        out[headers.get("event_id", b"").decode()] = headers["reason"].decode()
    return out


def test_unmirrored_events_already_own_their_household(tmp_path: Path) -> None:
    """Broker away: the mirror has nothing, yet the API's own accepted event places the
    household, also after a restart; once a broker answers, the same holds from the mirror."""
    from devtools import kafka_local
    from tests.api.conftest import free_port

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    home = tmp_path / "home"
    home.mkdir()
    args = ("--tick", "0.5", "--bootstrap", bootstrap, "--topic-prefix", "own.")
    placed = event(OURS, "hh-own-k", "followup.recorded", {"action": "phone_call"})
    grab = event(THEIRS, "hh-own-k", "followup.recorded", {"action": "home_visit"})
    with serve_api(home, USERS, args) as api:
        assert api.publish("chair102", [placed])["accepted"] == 1  # queued in the outbox
        status, body = _post(api, "chair103", [grab])
        assert status == 403 and body["results"][0]["reason"] == NOT_OWNER_FORBIDDEN
    grab_again = {**grab, "event_id": event(THEIRS, "x")["event_id"]}
    with serve_api(home, USERS, args) as api:  # a restart: rebuilt from the outbox
        status, body = _post(api, "chair103", [grab_again])
        assert status == 403 and body["results"][0]["reason"] == NOT_OWNER_FORBIDDEN
        try:
            kafka_local.start(tmp_path / "kafka", port=port)
            topics = Topics.with_prefix("own.")
            create_topic_set(bootstrap, topics, 1)
            sent = eventually(lambda: read_topic(bootstrap, topics.events), "the queued event")
            assert [orjson.loads(m.value)["event_id"] for m in sent] == [placed["event_id"]]
            letters = eventually(lambda: len(read_topic(bootstrap, topics.dlq)) >= 2
                                 and read_topic(bootstrap, topics.dlq), "the dead letters")
            assert sorted(_reasons(letters).values()) == [NOT_OWNER_FORBIDDEN] * 2
            eventually(lambda: api.sql("log.sqlite3", "SELECT owner FROM household_owner "
                                       "WHERE household_id = 'hh-own-k'"), "the mirror")
            assert api.sql("log.sqlite3", "SELECT owner FROM household_owner WHERE "
                           "household_id = 'hh-own-k'") == [(OURS,)]
            third = {**grab, "event_id": event(THEIRS, "x")["event_id"]}
            assert _post(api, "chair103", [third])[0] == 403  # now from the mirrored log
            assert api.publish("chair102", [event(THEIRS, "hh-own-k", "followup.recorded",
                                                  {"action": "home_visit"})])["accepted"] == 1
        finally:
            kafka_local.stop(tmp_path / "kafka")


def test_the_attack_is_refused_on_kafka(kafka_api: KafkaApi) -> None:  # noqa: F811
    api = kafka_api.api
    api.publish("chair103", [event(THEIRS, "hh-own-k103")])  # red, 南岗区

    def inbox() -> dict[str, Any] | None:
        rows = api.call("GET", "/v1/alerts", "chair103").json()["alerts"]
        return next((r for r in rows if r["household_id"] == "hh-own-k103"), None)

    assert eventually(inbox, "the warning in 南岗区's inbox")["status"] == "open"
    attack = event(OURS, "hh-own-k103", "case.resolved", {"resolution": "resolved_locally"})
    status, body = _post(api, "cadre102", [attack])
    assert status == 403 and body["results"][0]["reason"] == NOT_OWNER_FORBIDDEN
    admin = event(THEIRS, "hh-own-k103", "followup.recorded", {"action": "phone_call"})
    assert api.publish("admin", [admin])["accepted"] == 1  # city level: allowed
    # once the admin's later event is mirrored, the attack would have been too: it was not
    eventually(lambda: api.sql("log.sqlite3", "SELECT 1 FROM events WHERE event_id = ?",
                               admin["event_id"]), "the admin's event mirrored")
    assert not api.sql("log.sqlite3", "SELECT 1 FROM events WHERE event_id = ?",
                       attack["event_id"])
    assert not [m for m in read_topic(kafka_api.bootstrap, kafka_api.topics.events)
                if orjson.loads(m.value)["event_id"] == attack["event_id"]]
    letters = eventually(lambda: _reasons(read_topic(kafka_api.bootstrap,
                                                     kafka_api.topics.dlq)).get(
        attack["event_id"]), "the attack's dead letter")
    assert letters == NOT_OWNER_FORBIDDEN
    assert inbox()["status"] == "open"  # type: ignore[index]
