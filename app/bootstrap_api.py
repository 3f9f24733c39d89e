"""The composition root of the API's services, on either runtime.

:func:`bootstrap_api` builds :class:`Services` over the home's embedded runtime
(``app.bootstrap.bootstrap_embedded``) with the ingest path of the runtime it serves:
processing inline, or on the Kafka runtime publishing to the topics and mirroring them
back (:func:`kafka_publishing`). Apart from ``app.bootstrap`` because the services load
the API's read side (ledgers, KPIs, deliveries: pyarrow among them, about 50 MiB), which
a Kafka worker process has no use for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from access.users import UserStore
from alerts.channels.email import SmtpSender
from alerts.delivery import DEFAULT_MAX_ATTEMPTS, DeliveryWorker
from alerts.egress import EgressGuard
from alerts.routing import Grouping
from alerts.subscriptions import SubscriptionStore
from app.bootstrap import PackPolicyError, bootstrap_embedded
from app.kafka_mode import KafkaMirror, KafkaPublishing, KafkaWriter
from app.services import IngestPath, InlineProcessing, Services
from streams.embedded.runtime import EmbeddedRuntime
from streams.kafka.settings import KafkaSettings

#: Why the API takes no pack on the Kafka runtime.
PACK_ON_KAFKA_API = "the Kafka worker owns the rules: give the pack to `jiahe worker --pack`"


def bootstrap_api(
    home: Path,
    *,
    kafka: KafkaSettings | None = None,
    pack: Path | None = None,
    runtime: EmbeddedRuntime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_s: float = 1.0,
    poll_s: float = 0.5,
    tick_s: float | None = 30.0,
    smtp: str | None = None,
    repeat_red_minutes: float | None = None,
    group_wait_s: float | None = None,
    group_interval_s: float | None = None,
    allow_webhook_hosts: Sequence[str] = (),
) -> Services:
    """The API's services of ``home``: embedded, or on the Kafka runtime with ``kafka``.

    ``runtime`` swaps the home's embedded runtime (default: :func:`bootstrap_embedded`
    with ``pack``). On the Kafka runtime the worker owns the rules, so a ``pack`` is
    refused. Routing and e-mail (``alerts.routing``, ``alerts.channels.email``) not
    passed are read from ``$JIAHE_SMTP`` (HOST:PORT), ``$JIAHE_REPEAT_RED_MINUTES``
    (0: off; default 240) and ``$JIAHE_GROUP_WAIT_S`` / ``$JIAHE_GROUP_INTERVAL_S``
    (grouping by (district, rule); off unless the interval is > 0). Webhooks go to public
    addresses only, plus ``allow_webhook_hosts`` and ``$JIAHE_ALLOW_WEBHOOK_HOSTS``
    (``HOST[:PORT]``, comma-separated; ``alerts.egress``), checked at creation and at
    every delivery.
    """
    if kafka is not None and pack is not None:
        raise PackPolicyError(PACK_ON_KAFKA_API)
    runtime = runtime if runtime is not None else bootstrap_embedded(home, pack=pack)
    lock = threading.Lock()
    users = UserStore.at_home(home)
    subscriptions = SubscriptionStore.at_home(home, EgressGuard.from_env(allow_webhook_hosts))
    worker = DeliveryWorker(home, subscriptions, max_attempts=max_attempts,
                            backoff_s=backoff_s, poll_s=poll_s, kafka=kafka,
                            owner_scope=users.delivery_scope)
    smtp = smtp or os.environ.get("JIAHE_SMTP") or None
    if smtp:
        worker.smtp = SmtpSender.parse(smtp)
    if repeat_red_minutes is None:
        repeat_red_minutes = float(os.environ.get("JIAHE_REPEAT_RED_MINUTES", "240"))
    worker.repeat_red_s = repeat_red_minutes * 60 or None
    if group_wait_s is None:
        group_wait_s = float(os.environ.get("JIAHE_GROUP_WAIT_S", "0"))
    if group_interval_s is None:
        group_interval_s = float(os.environ.get("JIAHE_GROUP_INTERVAL_S", "0"))
    if group_interval_s > 0:
        worker.grouping = Grouping(group_wait_s, group_interval_s)
    path: IngestPath
    if kafka is not None:
        path = kafka_publishing(kafka, home=home, runtime=runtime, lock=lock,
                                on_new=worker.wake)
    else:
        path = InlineProcessing(runtime, lock, on_new=worker.wake)
    return Services(runtime, path, lock, users, subscriptions, worker, tick_s=tick_s)


def kafka_publishing(
    settings: KafkaSettings,
    *,
    home: Path,
    runtime: EmbeddedRuntime,
    lock: threading.Lock,
    on_new: Callable[[], None],
) -> KafkaPublishing:
    """The API's adapters on the Kafka runtime: the writer (publisher SDK with its outbox
    and key store under ``home``) and the mirror of the topics into ``runtime``."""
    return KafkaPublishing(settings, KafkaWriter(home, settings),
                           KafkaMirror(settings, runtime, lock, on_new))
