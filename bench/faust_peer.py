"""Peer for ``jiahe bench``: the same rules as an idiomatic per-event Faust agent.

What a faust-streaming user would write for "apply the rule engine to every event,
keep each household's rule state in a table, forward lifecycle records": one
``@app.agent`` over the events topic, iterating event by event; an ``app.Table`` keyed
by household (the message key) holding the household's serialised
:class:`rules.state.HouseholdState`; ``table[key] = …`` after every processed event
(faust sends the changelog record per write); every lifecycle record sent with
``topic.send``; rejected input to the DLQ topic with its reason. The standard
``kafka://`` transport and faust's own stream iteration, acking and commits — none of
the batch delivery or partition-explicit state writes jiahe's worker adds
(``streams.kafka``), which is exactly the difference being measured. The rules
are jiahe's pure engine (``rules.engine.Engine``), so the output must be the same.

Event-time clock (``--as-of``), as jiahe's worker: when the agent has handled a
partition's last message (offset + 1 ≥ the fetch's high-water mark) it fires, once, the
deadlines due ≤ as_of of the households of that partition it saw with a pending
deadline. Firing happens inside the stream iteration, so the table writes go to the
right changelog partition (faust refuses table writes outside an agent).

Settings kept equal to jiahe's worker for a fair measurement: the same state store
(rocksdb when rocksdict imports), commit interval, session timeout, no web server, and
faust's terminal spinner off (it lowers the root logger to DEBUG).

``python -m bench.faust_peer --bootstrap B --topic-prefix P --app-id G
--data-dir D [--as-of ISO]`` runs one peer worker until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import faust
import orjson

from events.codec import Rejected, decode
from events.instants import parse_instant
from rules.engine import Engine, Record
from rules.pack import load_pack
from rules.state import HouseholdState
from streams.kafka import admin as kafka_admin
from streams.kafka.app import store_url
from streams.kafka.batch import record_id
from streams.kafka.settings import Topics

RULES_TABLE = "household-rules"


def _dlq_headers(reason: str, stage: str) -> dict[str, bytes]:
    return {"reason": reason.encode()[:2000], "stage": stage.encode()}


def build_peer_app(bootstrap: str, topics: Topics, app_id: str, data_dir: Path,
                   as_of: int | None, partitions: int, store: str = "auto",
                   commit_interval_s: float = 1.0) -> faust.App:
    """The peer's faust app: one agent, one table, three topics."""
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=[f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()],
        store=store_url(store),
        datadir=str(data_dir),
        web_enabled=False,
        topic_partitions=partitions,  # the table's changelog: as many as the events topic
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        table_standby_replicas=0,
        broker_session_timeout=10.0,
        broker_commit_interval=commit_interval_s,
    )
    engine = Engine(load_pack())
    events = app.topic(topics.events, key_type=bytes, value_type=bytes)
    warnings = app.topic(topics.warnings, key_type=bytes, value_type=bytes)
    dlq = app.topic(topics.dlq, key_type=bytes, value_type=bytes)
    rules_state = app.Table(RULES_TABLE, key_type=bytes, value_type=bytes)
    #: partition -> households seen there with a pending deadline (for the as_of clock)
    pending: dict[int, set[bytes]] = defaultdict(set)
    fired: set[int] = set()

    async def forward(key: bytes, records: list[Record]) -> None:
        for record in records:
            await warnings.send(key=key, value=orjson.dumps(record),
                                headers={"record_id": record_id(record).encode()})

    async def fire_deadlines(partition: int, limit: int) -> None:
        for key in sorted(pending.pop(partition, ())):
            state = HouseholdState.from_bytes(rules_state[key])
            records = engine.advance(state, key.decode(), limit)
            if records:
                rules_state[key] = state.to_bytes()
                await forward(key, records)

    @app.agent(events)
    async def apply_rules(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            value: bytes | None = event.value
            decoded = decode(value) if value else Rejected("event: empty message", b"")
            if isinstance(decoded, Rejected):
                await dlq.send(key=event.key, value=value or b"",
                               headers=_dlq_headers(decoded.reason, "decode"))
            else:
                key = decoded.household_id.encode()
                blob = rules_state.get(key)
                state = HouseholdState.from_bytes(blob) if blob else HouseholdState()
                outcome = engine.apply(state, decoded)
                if outcome.status == "rejected":
                    await dlq.send(key=event.key, value=value,
                                   headers=_dlq_headers(outcome.reason or "", "engine"))
                elif outcome.status == "processed":
                    rules_state[key] = state.to_bytes()
                    await forward(key, outcome.records)
                    if state.next_due is not None:
                        pending[message.partition].add(key)
            if as_of is not None and message.partition not in fired:
                end = app.consumer.highwater(message.tp)
                if end is not None and message.offset + 1 >= end:
                    fired.add(message.partition)
                    await fire_deadlines(message.partition, as_of)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=None,
                        help="of the events topic (default: asked from the broker)")
    parser.add_argument("--as-of", default=None, help="ISO 8601 instant with an offset")
    parser.add_argument("--store", choices=["auto", "rocksdb", "memory"], default="auto")
    parser.add_argument("--loglevel", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper())
    as_of = parse_instant(args.as_of) if args.as_of else None
    topics = Topics.with_prefix(args.topic_prefix)
    partitions = args.partitions or kafka_admin.describe(args.bootstrap)[topics.events]
    app = build_peer_app(args.bootstrap, topics, args.app_id, args.data_dir, as_of,
                         partitions, args.store)
    worker = faust.Worker(app, loglevel=args.loglevel.upper(), quiet=True,
                          redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
