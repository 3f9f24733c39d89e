"""Topic administration for jiahe's Kafka topics (kafka-python KafkaAdminClient).

The broker runs with ``auto.create.topics.enable=false``, so topics exist only because
:func:`create_topics` made them, with the partition count and retention chosen here
rather than broker defaults. Events are the system of record (event sourcing), hence
``retention.ms=-1`` on events, warnings and dead letters: Kafka must never age them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kafka.admin import KafkaAdminClient

__all__ = [
    "DLQ_TOPIC",
    "EVENTS_TOPIC",
    "WARNINGS_TOPIC",
    "create_topics",
    "describe",
    "topic_specs",
]

EVENTS_TOPIC = "jiahe.events"
"""Domain events, keyed by household_id so one household's events stay in order."""
WARNINGS_TOPIC = "jiahe.warnings"
"""Early warnings raised by the rules; same partitioning as events."""
DLQ_TOPIC = "jiahe.dlq"
"""Records that failed validation or processing, kept for replay after a fix."""

_KEEP_FOREVER = {"retention.ms": "-1"}
#: Events carry the broker's append time, not the producer's: the worker's wall-clock
#: deadlines trail it (``streams.kafka.app``), so it must be one clock, in log order.
_BROKER_TIME = {"message.timestamp.type": "LogAppendTime"}
_COMPACTED = {"cleanup.policy": "compact"}
_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code TOPIC_ALREADY_EXISTS
_TIMEOUT_MS = 30_000

TopicSpec = dict[str, object]


def topic_specs(
    partitions: int = 6, replication: int = 1, compacted: Iterable[str] = ()
) -> dict[str, TopicSpec]:
    """The topics jiahe needs, as kafka-python ``create_topics`` dict specs.

    The DLQ gets the same partition count as events so a household's dead letters keep
    their relative order too. ``compacted`` names extra log-compacted topics (latest
    value per key) for callers that keep state outside Faust's own changelogs.
    """
    def spec(configs: dict[str, str]) -> TopicSpec:
        return {"num_partitions": partitions, "replication_factor": replication,
                "configs": dict(configs)}

    specs = {name: spec(_KEEP_FOREVER) for name in (EVENTS_TOPIC, WARNINGS_TOPIC, DLQ_TOPIC)}
    specs[EVENTS_TOPIC] = spec({**_KEEP_FOREVER, **_BROKER_TIME})
    specs.update({name: spec(_COMPACTED) for name in compacted})
    return specs


@contextmanager
def _admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    """A short-lived admin client that is always closed (it owns a network thread)."""
    client = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="jiahe-admin",
        bootstrap_timeout_ms=_TIMEOUT_MS, request_timeout_ms=_TIMEOUT_MS,
    )
    try:
        yield client
    finally:
        client.close()


def _outcome(result: dict[str, object]) -> str:
    """Map one CreateTopics result entry to "created" / "exists", raising on real errors."""
    code = result.get("error_code", 0)
    if code == 0:
        return "created"
    if code == _TOPIC_ALREADY_EXISTS:
        return "exists"
    raise RuntimeError(f"creating topic {result.get('name')!r} failed: "
                       f"error {code}: {result.get('error_message')}")


def create_topics(
    bootstrap: str, partitions: int = 6, replication: int = 1, compacted: Iterable[str] = ()
) -> dict[str, str]:
    """Create jiahe's topics if missing; return topic name -> "created" or "exists".

    Safe to re-run: an existing topic is reported as "exists" and left untouched (its
    partition count is not changed). Returns only after new topics have a leader for
    every partition, so producers can write at once.
    """
    specs = topic_specs(partitions, replication, compacted)
    with _admin(bootstrap) as admin:
        response = admin.create_topics(specs, timeout_ms=_TIMEOUT_MS, raise_errors=False)
        outcome = {str(r["name"]): _outcome(r) for r in response["topics"]}
        created = [name for name, what in outcome.items() if what == "created"]
        if created:
            admin.wait_for_topics(created, timeout_ms=_TIMEOUT_MS)
    return outcome


def describe(bootstrap: str) -> dict[str, int]:
    """Topic name -> partition count for every non-internal topic (for tests and checks)."""
    with _admin(bootstrap) as admin:
        topics = admin.describe_topics()
    return {
        str(t["name"]): len(t.get("partitions") or [])
        for t in topics
        if not t.get("is_internal")
    }
