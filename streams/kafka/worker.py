"""Running one Kafka-runtime worker process, and the topic helpers it relies on.

Separate from :mod:`streams.kafka.app` so that building the app (``app.bootstrap``, tests,
benchmarks) and owning a process (signals, logging, GC tuning, exit) stay apart.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, NoReturn

from kafka.admin import KafkaAdminClient

from privacy.log_lines import escape_log_lines
from streams.kafka import admin as kafka_admin
from streams.kafka.settings import Topics

if TYPE_CHECKING:
    from streams.kafka.app import JiaheApp, WorkerRuntime

_TIMEOUT_MS = 30_000


def create_topic_set(
    bootstrap: str, topics: Topics, partitions: int = 6, replication: int = 1
) -> dict[str, str]:
    """Create the events/warnings/DLQ topics under ``topics``' names; name -> created/exists.

    Same specs as :func:`streams.kafka.admin.create_topics` (kept forever), so that a
    prefixed set for tests or a second deployment behaves like the default one.
    """
    if topics == Topics():
        return kafka_admin.create_topics(bootstrap, partitions, replication)
    base = kafka_admin.topic_specs(partitions, replication)
    names = {
        kafka_admin.EVENTS_TOPIC: topics.events,
        kafka_admin.WARNINGS_TOPIC: topics.warnings,
        kafka_admin.DLQ_TOPIC: topics.dlq,
    }
    specs = {names[name]: spec for name, spec in base.items()}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="jiahe-admin",
                             request_timeout_ms=_TIMEOUT_MS)
    try:
        response = admin.create_topics(specs, timeout_ms=_TIMEOUT_MS, raise_errors=False)
        outcome = {str(r["name"]): kafka_admin._outcome(r) for r in response["topics"]}
        created = [name for name, what in outcome.items() if what == "created"]
        if created:
            admin.wait_for_topics(created, timeout_ms=_TIMEOUT_MS)
    finally:
        admin.close()
    return outcome


def check_topics(bootstrap: str, topics: Topics, changelog: str,
                 partitions: int | None = None) -> int:
    """The events topic's partition count, after checking what the worker relies on.

    The three topics must exist (the broker does not auto-create them, and a send to a
    missing topic would stall a batch instead of failing it), and the state changelog, if
    it exists already, must have as many partitions as the events topic: a household's
    state lives in the changelog partition of the same number as its events.
    """
    found = kafka_admin.describe(bootstrap)
    missing = [t for t in (topics.events, topics.warnings, topics.dlq) if t not in found]
    if missing:
        raise RuntimeError(f"topics {missing} do not exist on {bootstrap}; "
                           "run `jiahe topics create`")
    count = found[topics.events]
    if partitions is not None and partitions != count:
        raise RuntimeError(f"--partitions {partitions} but {topics.events} has {count}")
    if changelog in found and found[changelog] != count:
        raise RuntimeError(f"{changelog} has {found[changelog]} partitions but "
                           f"{topics.events} has {count}; they must match")
    return count


def tune_gc() -> None:
    """Collect less often and never rescan start-up objects.

    A batch allocates tens of thousands of short-lived objects (decoded events); with
    CPython's default thresholds the full collections that follow rescan every live
    object and cost a third of the worker's time.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def configure_logging(level: str) -> None:
    """The worker's log format; first thing, so that building the app logs the same way.
    Messages have their control characters escaped (ids come from clients)."""
    escape_log_lines()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def run_worker(app: JiaheApp, runtime: WorkerRuntime, log_level: str) -> NoReturn:
    """Run a built app until SIGINT/SIGTERM (faust's Worker owns the loop)."""
    import faust  # heavy, and only a worker process needs its Worker

    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True,
                          redirect_stdouts=False)
    # faust's terminal spinner lowers the root logger to DEBUG so that it "spins for every
    # log message": every aiokafka debug call would then build a LogRecord (~10% of CPU).
    worker.spinner = None

    tune_gc()
    try:
        worker.execute_from_commandline()
    finally:
        logging.getLogger("jiahe.worker").warning("worker stopped: %s", runtime.status())
