"""Publisher SDK for field apps: validate, keep durably, then deliver to Kafka in order.

Field apps work offline and publish late, in bursts, so publishing is two steps:

1. :meth:`Publisher.publish` validates every input with :mod:`events.codec` (the same rules
   as every other entry) and commits the valid events to the local :class:`~sdk.outbox.
   Outbox` (SQLite, fsynced). Invalid input is never sent to the events topic: it is
   reported in the result and kept as a dead letter for the DLQ topic (header ``reason``).
   Once ``publish`` returns, accepted events survive a crash or a power cut.
2. :meth:`Publisher.flush` sends what the outbox holds, oldest first, with an idempotent
   kafka-python producer (``acks="all"``), and advances the outbox's high-water mark only
   over records whose delivery futures resolved successfully. ``publish`` calls it for you;
   when the broker is down it reports the events as *queued* instead of raising, and a
   later ``flush`` (same object, or a new Publisher on the same outbox after a restart)
   delivers everything.

Delivery guarantees, and why they hold:

* **No loss.** The mark only moves over a *contiguous* prefix of acknowledged records, so
  anything not acknowledged is sent again by the next flush.
* **Order per household.** Records go out in outbox order with key = household_id, so
  one household is one partition; the idempotent producer keeps order within a partition
  (kafka-python mutes a partition while a batch is in flight). If a batch fails anyway,
  the producer is stopped at once (fail-stop) so no later record of that partition can
  overtake it; the next flush resends from the first unacknowledged record.
* **Duplicates are possible, and only as exact re-sends.** A crash or timeout between the
  broker's acknowledgement and ``mark_sent`` (or a record acknowledged after an earlier
  failure) makes the next flush send the same bytes again: same key, canonical JSON value,
  same headers. Consumers dedupe by ``event_id`` (the design already treats a repeated
  identical event as a duplicate), so at-least-once here is exactly-once downstream.
  Kafka's idempotence only dedupes retries *within* one producer session; it cannot
  cover a restart, which is why the outbox's re-sends are byte-identical.
* **Personal fields never leave in clear** when a ``keyring`` is given (the Kafka-mode
  key store, ``privacy.keystore.kafka_keyring``): each accepted event's personal fields
  are sealed *before* it enters the outbox, so neither the outbox file nor any topic
  holds them in clear. Sealing is deterministic (synthetic nonces), so a re-publish of
  the same event is byte-identical and stays a duplicate downstream. A dead letter
  whose input names a household is sealed whole under that household's key (an
  erasure then shreds it too); one that names none (not JSON, no household_id) is
  sealed under the key store's quarantine key.
* **Only what the caller may write**, when given a ``caller`` (the org unit whose scope
  publishes) and ``owners`` (an ``OwnerDirectory``): an event about a household whose
  current owner lies outside that scope (never seen: whose ``org_unit`` does) is refused
  like invalid input, with a reason in ``rules.ownership.REFUSALS``, and goes to the
  DLQ; city-level callers cover every household. A publish call is judged in order
  (``rules.ownership.Admission``); between calls the directory is the truth.
* **No infinite hangs.** Connecting, metadata and every wait for acknowledgements are
  bounded by ``connect_timeout`` / ``timeout``; on expiry the producer is torn down and
  the events stay queued.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError, KafkaTimeoutError

from events.codec import Decoded, Rejected, decode, fingerprint_of
from events.errors import JiaheError
from events.freshness import future_refusal
from events.instants import now_micros
from privacy.crypto import Keyring
from privacy.dead_letters import seal_dead_letter
from rules.ownership import REFUSALS, Admission
from sdk.outbox import DeadLetter, EnqueueOutcome, Outbox, OutboxRecord
from streams.kafka.admin import DLQ_TOPIC, EVENTS_TOPIC
from streams.ports import OwnerDirectory

__all__ = [
    "CODECS",
    "DEFAULT_CLIENT_ID",
    "BrokerUnavailable",
    "DeliveryFailed",
    "FlushResult",
    "Progress",
    "PublishResult",
    "Publisher",
    "PublisherError",
    "Rejection",
    "compression_setting",
    "publish_file",
]

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "jiahe-publisher"
#: Items validated and committed per outbox transaction (one fsync each), and records sent
#: per acknowledgement round: large enough to amortise both, small enough to bound memory.
DEFAULT_CHUNK = 10_000

Item = str | bytes | bytearray | Mapping[str, Any]
_Rec = TypeVar("_Rec", OutboxRecord, DeadLetter)


#: The codecs a Kafka producer may use; the worker, the API's mirror and every other
#: consumer of the project read each (aiokafka with cramjam, kafka-python with lz4,
#: python-snappy and zstandard).
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def compression_setting(codec: str | None) -> str | None:
    """kafka-python's ``compression_type`` for a codec of :data:`CODECS` (None: the default)."""
    if codec is None:
        return _default_compression()
    if codec not in CODECS:
        raise ValueError(f"compression: {codec!r} is not one of {', '.join(CODECS)}")
    return None if codec == "none" else codec


def _default_compression() -> str:
    """lz4 (the cheapest codec) only when both ends can handle it, else gzip (stdlib).

    kafka-python compresses lz4 with the ``lz4`` package, but the worker's consumer
    (aiokafka 0.14) decompresses it with ``cramjam``: without cramjam the worker crashes
    on the first lz4 batch (UnsupportedCodecError), found by tests/privacy/
    test_kafka_sealed.py. gzip is readable by every client.
    """
    both = all(importlib.util.find_spec(m) is not None for m in ("lz4", "cramjam"))
    return "lz4" if both else "gzip"


# --------------------------------------------------------------------------- errors


class PublisherError(JiaheError, RuntimeError):
    """Delivery to Kafka did not complete; the outbox still holds what was not sent.

    ``flushed`` tells what the failed flush did deliver before it stopped (and what is
    still queued), so callers can report partial progress.
    """

    flushed: FlushResult | None = None


class BrokerUnavailable(PublisherError):
    """No broker answered or acknowledged within the timeout (offline, down, wrong address)."""


class DeliveryFailed(PublisherError):
    """The broker answered but refused or could not take the records (missing topic, ...)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused input: ``index`` is its 1-based position (the line number for files)."""

    index: int
    reason: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Reported to a ``progress`` callback: ``phase`` "validated" or "sent", running count."""

    phase: Literal["validated", "sent"]
    done: int


@dataclass(slots=True)
class FlushResult:
    """What one flush delivered and what is still waiting in the outbox."""

    sent: int = 0
    dead_letters_sent: int = 0
    queued: int = 0
    dead_letters_queued: int = 0


@dataclass(slots=True)
class PublishResult:
    """Counts for one publish call; ``received == accepted + duplicates + rejected``.

    ``sent`` counts events acknowledged by the broker during this call (it may include a
    backlog from earlier calls); ``queued`` is what the outbox still holds afterwards.
    ``error`` says why delivery stopped when something is queued, else None.
    """

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    sent: int = 0
    queued: int = 0
    dead_letters_sent: int = 0
    dead_letters_queued: int = 0
    error: str | None = None

    @property
    def status(self) -> Literal["sent", "queued"]:
        """"queued" while anything (event or dead letter) still waits for the broker."""
        return "queued" if self.queued or self.dead_letters_queued else "sent"

    @property
    def forbidden(self) -> int:
        """Rejections because the household lies outside the caller's scope (see ``caller``)."""
        return sum(1 for r in self.rejections if r.reason in REFUSALS)

    @property
    def reasons(self) -> dict[str, int]:
        """Rejections counted by reason, most frequent first (for a one-screen summary)."""
        return dict(Counter(r.reason for r in self.rejections).most_common())

    def _absorb(self, flushed: FlushResult) -> None:
        self.sent += flushed.sent
        self.dead_letters_sent += flushed.dead_letters_sent
        self.queued = flushed.queued
        self.dead_letters_queued = flushed.dead_letters_queued


# --------------------------------------------------------------------------- input


def _decode_item(item: Item) -> Decoded | Rejected:
    """Validate one input. Mappings go through JSON first, so a dict and its JSON text are
    accepted or refused identically (and anything not JSON-representable is refused)."""
    if isinstance(item, Mapping):
        try:
            line = orjson.dumps(item)
        except TypeError as exc:
            return Rejected(f"event: not JSON-serialisable ({exc})", repr(item)[:1024].encode())
        return decode(line)
    if isinstance(item, str | bytes):
        return decode(item)
    if isinstance(item, bytearray):
        return decode(bytes(item))
    return Rejected(f"event: expected a JSON text or a mapping, got {type(item).__name__}",
                    repr(item)[:1024].encode())


def _sealed_letter(keyring: Keyring, rejected: Rejected) -> Rejected:
    """The dead letter with its input sealed (``privacy.dead_letters``): under the key of
    the household it names, else under the quarantine key.

    The value on the DLQ topic is then JSON ``{"enc": "aesgcm", "kid", "nonce", "ct",
    "household_id", "purpose": "dead_letter"}``: readable with the key store
    (``Keyring.open_blob``) until the household is erased, ``[erased]`` after.
    """
    return replace(rejected, raw=seal_dead_letter(keyring, rejected.household_id,
                                                  bytes(rejected.raw)))


def _admitted(admission: Admission, item: Decoded) -> Decoded | Rejected:
    """The event, or its refusal when the caller's scope does not cover its household."""
    event = item.event
    reason = admission.refusal(item.household_id, event.type, event.org_unit, event.data)
    if reason is None:
        return item
    return Rejected(reason, item.source or orjson.dumps(item.raw), item.event_id,
                    item.household_id)


def _fresh(item: Decoded, received_us: int) -> Decoded | Rejected:
    """The event, or its refusal when it is dated too far after its receipt."""
    reason = future_refusal(item.occurred_us, received_us)
    if reason is None:
        return item
    return Rejected(reason, item.source or orjson.dumps(item.raw), item.event_id,
                    item.household_id)


def _chunks(items: Iterable[tuple[int, Item]], size: int) -> Iterator[list[tuple[int, Item]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --------------------------------------------------------------------------- publisher


class Publisher:
    """Validating, outbox-backed Kafka publisher for one field app (thread-safe).

    ``connect_timeout`` bounds reaching a broker and fetching topic metadata;
    ``flush(timeout)`` bounds each wait for acknowledgements (per chunk of records), so a
    large backlog may take longer than ``timeout`` overall but never stalls longer.
    ``compression_type`` is one of :data:`CODECS` (None: lz4 where it can be read, else
    gzip); kafka-python sends a batch uncompressed when the codec would not shrink it.
    """

    def __init__(
        self,
        bootstrap: str,
        outbox_path: str | Path,
        topic: str = EVENTS_TOPIC,
        dlq_topic: str = DLQ_TOPIC,
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        connect_timeout: float = 10.0,
        linger_ms: int = 10,
        batch_size: int = 512 * 1024,
        compression_type: str | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        keyring: Keyring | None = None,
        caller: str | None = None,
        owners: OwnerDirectory | None = None,
        live: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if (caller is None) != (owners is None):
            raise ValueError("caller and owners go together: the guard judges a caller's "
                             "scope against the households' owners")
        #: the org unit whose scope the events are published in (None: not checked)
        self.caller = caller
        #: each household's current owner, for the guard (e.g. a mirrored home's log)
        self.owners = owners
        #: a field app's live input (``events.freshness``): an event dated more than ten
        #: minutes after its receipt is refused; a replayed file (``jiahe publish``) is not
        self.live = live
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.chunk_size = chunk_size
        self.outbox = Outbox(outbox_path)
        self.keyring = keyring
        self._seal_lock = threading.Lock()  # a Keyring is not thread-safe
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            # Durability and order: every in-sync replica has it, retries cannot duplicate
            # or reorder within the session. Explicit enable_idempotence=True makes
            # kafka-python raise (rather than silently downgrade) on a conflicting setting.
            "acks": "all",
            "enable_idempotence": True,
            # <= 5 is the ceiling idempotence allows (the broker tracks 5 batches per
            # producer); kafka-python additionally keeps one batch in flight per partition.
            "max_in_flight_requests_per_connection": 5,
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "compression_type": compression_setting(compression_type),
            # Bounded blocking: bootstrap, metadata and buffer waits all give up.
            "bootstrap_timeout_ms": int(connect_timeout * 1000),
            "max_block_ms": int(connect_timeout * 1000),
            # Our flush timeout, not the producer's, decides when to give up; a long
            # delivery timeout keeps the producer from expiring (and so reordering) batches
            # on its own while we still wait.
            "request_timeout_ms": 30_000,
            "delivery_timeout_ms": 10 * 60_000,
            # Reconnect soon after a broker restart (default backoff grows to 30 s).
            "reconnect_backoff_ms": 50,
            "reconnect_backoff_max_ms": 1_000,
            # Topics are created deliberately (jiahe topics create), never by a typo.
            "allow_auto_create_topics": False,
        }
        self._producer: Any = None
        self._flush_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> None:
        """Close the producer (waiting up to ``timeout`` for anything in flight) and the outbox.

        Never raises for delivery problems: whatever was not acknowledged is still in the
        outbox for the next Publisher.
        """
        with self._flush_lock:
            producer, self._producer = self._producer, None
            if producer is not None:
                try:
                    producer.close(timeout=timeout)
                except KafkaError:
                    _abandon(producer)
            self.outbox.close()

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        items: Iterable[Item],
        *,
        flush: bool = True,
        timeout: float = 30.0,
        progress: Callable[[Progress], None] | None = None,
    ) -> PublishResult:
        """Validate ``items`` (JSON texts or mappings), keep them durably, then try to send.

        Never raises because the broker is unreachable: the result then says "queued" and
        ``error`` says why. With ``flush=False`` nothing touches the network.
        """
        return self._publish(enumerate(items, start=1), flush, timeout, progress)

    def _publish(
        self,
        numbered: Iterable[tuple[int, Item]],
        flush: bool,
        timeout: float,
        progress: Callable[[Progress], None] | None,
    ) -> PublishResult:
        result = PublishResult()
        admission = (Admission(self.caller, self.owners.standing_of)
                     if self.caller is not None and self.owners is not None else None)
        for chunk in _chunks(numbered, self.chunk_size):
            self._ingest(chunk, result, admission)
            if progress is not None:
                progress(Progress("validated", result.received))
        flushed: FlushResult | None = None
        if flush:
            try:
                flushed = self.flush(timeout, progress=progress)
            except PublisherError as exc:
                result.error = str(exc)
                flushed = exc.flushed
                log.warning("events queued in %s: %s", self.outbox.path, exc)
        if flushed is None:
            counts = self.outbox.counts()
            flushed = FlushResult(queued=counts.pending,
                                  dead_letters_queued=counts.dead_letters_pending)
        result._absorb(flushed)
        return result

    def _ingest(self, chunk: Sequence[tuple[int, Item]], result: PublishResult,
                admission: Admission | None = None) -> None:
        """Validate one chunk and commit it (events and dead letters) in one transaction.

        With an ``admission`` (a ``caller``), an event about a household outside the
        caller's scope is refused like invalid input: reported with its reason and kept
        as a dead letter for the DLQ topic.
        """
        valid: list[tuple[int, Decoded]] = []
        refused: list[tuple[int, Rejected]] = []
        received_us = now_micros()
        for index, item in chunk:
            checked = _decode_item(item)
            if isinstance(checked, Decoded) and self.live:
                checked = _fresh(checked, received_us)
            if isinstance(checked, Decoded) and admission is not None:
                checked = _admitted(admission, checked)
            if isinstance(checked, Rejected):
                refused.append((index, checked))
            else:
                valid.append((index, checked))
        if self.keyring is not None:
            valid, refused = self._seal(self.keyring, valid, refused)
        outcomes = self.outbox.enqueue(
            [d for _, d in valid], rejected=[r for _, r in refused]
        )
        result.received += len(chunk)
        rejections = [Rejection(i, r.reason, r.event_id) for i, r in refused]
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.status == "accepted":
                result.accepted += 1
            elif outcome.status == "duplicate":
                result.duplicates += 1
            else:
                rejections.append(Rejection(index, outcome.reason or "conflict",
                                            outcome.event_id))
        rejections.sort(key=lambda r: r.index)
        result.rejected += len(rejections)
        result.rejections.extend(rejections)

    def enqueue_checked(
        self, items: Sequence[Decoded | Rejected]
    ) -> list[EnqueueOutcome | Rejected]:
        """Keep input that the caller decoded (and screened) itself, e.g. the API.

        Sealed as :meth:`publish` seals, committed in one transaction; returns, in input
        order, the outbox's outcome for each event and the Rejected itself for refused
        input (kept as a dead letter). Nothing is sent: call :meth:`flush`.
        """
        numbered = list(enumerate(items))
        valid = [(i, x) for i, x in numbered if isinstance(x, Decoded)]
        refused = [(i, x) for i, x in numbered if isinstance(x, Rejected)]
        if self.keyring is not None:
            valid, refused = self._seal(self.keyring, valid, refused)
        outcomes = self.outbox.enqueue([d for _, d in valid], rejected=[r for _, r in refused])
        outcome_of = {index: o for (index, _), o in zip(valid, outcomes, strict=True)}
        return [item if isinstance(item, Rejected) else outcome_of[index]
                for index, item in numbered]

    def _seal(
        self, keyring: Keyring, valid: list[tuple[int, Decoded]],
        refused: list[tuple[int, Rejected]],
    ) -> tuple[list[tuple[int, Decoded]], list[tuple[int, Rejected]]]:
        """Seal personal fields of events and whole dead letters that name a household.

        The outbox stores the sealed payload and its fingerprint (of the sealed form,
        deterministic), so nothing derived from the clear text is kept on disk.
        """
        with self._seal_lock:
            try:
                keyring.refresh()  # another process may have erased a household meanwhile
                sealed_events = []
                for index, decoded in valid:
                    raw = keyring.seal_event(decoded.raw)
                    if raw is not decoded.raw and raw != decoded.raw:
                        decoded = replace(decoded, raw=raw, fingerprint=fingerprint_of(raw),
                                          source=None)
                    sealed_events.append((index, decoded))
                sealed_letters = [(i, _sealed_letter(keyring, r)) for i, r in refused]
            except BaseException:
                keyring.rollback()
                raise
            keyring.commit()  # new keys durable before the outbox keeps what they sealed
        return sealed_events, sealed_letters

    # ------------------------------------------------------------------ flush

    def flush(
        self, timeout: float = 30.0, progress: Callable[[Progress], None] | None = None
    ) -> FlushResult:
        """Send everything the outbox holds (events, then dead letters), oldest first.

        Returns when the outbox is drained (at once, without connecting, if it is empty).
        Raises :class:`BrokerUnavailable` or :class:`DeliveryFailed` (both
        :class:`PublisherError`) when it cannot finish; the records acknowledged before the
        failure stay marked, the rest stay queued.
        """
        with self._flush_lock:
            result = FlushResult()
            if not (self.outbox.pending(1) or self.outbox.pending_dead_letters(1)):
                return result  # nothing to send: do not wait for a broker that may be away

            def events_acked(count: int) -> None:
                result.sent += count
                if progress is not None:
                    progress(Progress("sent", result.sent))

            def dead_letters_acked(count: int) -> None:
                result.dead_letters_sent += count

            try:
                producer = self._connect()
                self._drain(producer, self.outbox.pending, self.outbox.mark_sent,
                            self._event_message, timeout, events_acked)
                self._drain(producer, self.outbox.pending_dead_letters,
                            self.outbox.mark_dead_letters_sent, self._dead_letter_message,
                            timeout, dead_letters_acked)
            except PublisherError as exc:
                exc.flushed = result
                raise
            finally:
                counts = self.outbox.counts()
                result.queued = counts.pending
                result.dead_letters_queued = counts.dead_letters_pending
            return result

    def _event_message(self, rec: OutboxRecord) -> tuple[str, bytes | None, bytes, list[Any]]:
        headers = [
            ("type", rec.event_type.encode()),
            ("schema_version", str(rec.schema_version).encode()),
            ("event_id", rec.event_id.encode()),
        ]
        return self.topic, rec.household_id.encode(), rec.payload, headers

    def _dead_letter_message(
        self, rec: DeadLetter
    ) -> tuple[str, bytes | None, bytes, list[Any]]:
        headers = [("reason", rec.reason.encode()), ("client_id", self.client_id.encode())]
        if rec.event_id is not None:
            headers.append(("event_id", rec.event_id.encode()))
        key = rec.household_id.encode() if rec.household_id is not None else None
        return self.dlq_topic, key, rec.raw, headers

    def _connect(self) -> Any:
        """The live producer, created on demand (bootstrap is bounded by connect_timeout)."""
        if self._producer is None:
            try:
                self._producer = KafkaProducer(**self._config)
            except KafkaConfigurationError as exc:
                raise PublisherError(f"invalid producer configuration: {exc}") from exc
            except KafkaError as exc:  # KafkaTimeoutError / NoBrokersAvailable on bootstrap
                raise BrokerUnavailable(
                    f"no Kafka broker answered at {self.bootstrap} within "
                    f"{self.connect_timeout:g}s ({type(exc).__name__}: {exc})"
                ) from exc
        return self._producer

    def _drain(
        self,
        producer: Any,
        fetch: Callable[[int], Sequence[_Rec]],
        mark: Callable[[int], None],
        message: Callable[[_Rec], tuple[str, bytes | None, bytes, list[Any]]],
        timeout: float,
        acked_count: Callable[[int], None],
    ) -> None:
        """Send fetch()'s records chunk by chunk; mark each chunk's acknowledged prefix."""
        halt = _fail_stop(producer)
        while batch := fetch(self.chunk_size):
            futures: list[Any] = []
            send_error: BaseException | None = None
            topic = ""
            try:
                for rec in batch:
                    topic, key, value, headers = message(rec)
                    future = producer.send(topic, value=value, key=key, headers=headers)
                    future.add_errback(halt)
                    futures.append(future)
            except KafkaError as exc:  # metadata timeout, producer halted by a failure
                send_error = exc
            deadline = time.monotonic() + timeout
            # flush() raises KafkaTimeoutError on timeout, and in 3.0.12 also UnknownError
            # ("Future not done") after it split an oversized batch; either way the
            # futures are the truth, and get() follows a record into its split batch.
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=timeout)
            acked = 0
            for future in futures:
                if not future.is_done:
                    with contextlib.suppress(Exception):  # judged just below
                        future.get(timeout=max(0.0, deadline - time.monotonic()))
                if not (future.is_done and future.exception is None):
                    break
                acked += 1
            if acked:
                mark(batch[acked - 1].seq)
                acked_count(acked)
            if acked < len(batch):
                failed = futures[acked] if acked < len(futures) else None
                cause = failed.exception if failed is not None and failed.is_done else send_error
                self._discard_producer()
                raise self._failure(topic, cause, len(batch) - acked, timeout)

    def _failure(
        self, topic: str, cause: BaseException | None, unsent: int, timeout: float
    ) -> PublisherError:
        """Turn what kafka-python reported into an exception that says what to do."""
        tail = f"{unsent} record(s) of this round stay queued in {self.outbox.path}"
        if cause is None:
            return BrokerUnavailable(
                f"no acknowledgement from {self.bootstrap} within {timeout:g}s; {tail}"
            )
        if isinstance(cause, KafkaTimeoutError) and "metadata" in str(cause).lower():
            return DeliveryFailed(
                f"no metadata for topic {topic!r} from {self.bootstrap} within "
                f"{self.connect_timeout:g}s: the topic does not exist (create it with "
                f"`jiahe topics create`) or the broker is unreachable; {tail}"
            )
        kind = BrokerUnavailable if getattr(cause, "retriable", False) else DeliveryFailed
        return kind(f"delivery to {topic!r} failed ({type(cause).__name__}: {cause}); {tail}")

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            _abandon(producer)


def _fail_stop(producer: Any) -> Callable[[BaseException], None]:
    """An errback that stops the producer's sender thread at the first failed record.

    Runs on the sender thread, before it drains the next batch of the failed partition, so
    a later record of the same household can never be written ahead of an earlier one
    that failed. Reaches into ``_sender`` because kafka-python offers no public abort.
    """
    fired = threading.Event()

    def halt(_exc: BaseException) -> None:
        # Once only: every aborted record calls back, and each force_close() writes a
        # wake-up byte to a socket that this very thread is supposed to read.
        if fired.is_set():
            return
        fired.set()
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()

    return halt


def _abandon(producer: Any) -> None:
    """Tear a producer down now, failing whatever it still holds.

    kafka-python 3.0.12's ``close(timeout)`` flushes first and *raises* KafkaTimeoutError
    when records are pending, leaving its network thread alive and retrying forever (seen
    on a stopped broker). A zombie producer could deliver stale batches behind the back
    of the next one, so force-close its sender (private API, guarded) and then close.
    """
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5.0)
    try:
        producer.close(timeout=1.0)
    except KafkaError as exc:  # pragma: no cover - only if the sender refused to stop
        log.warning("kafka producer did not close cleanly: %s", exc)


# --------------------------------------------------------------------------- files


def _file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with 1-based line numbers; a UTF-8 BOM on line 1 is ignored."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                yield number, stripped


def publish_file(
    path: str | Path,
    bootstrap: str,
    outbox_path: str | Path,
    progress: Callable[[Progress], None] | None = None,
    *,
    topic: str = EVENTS_TOPIC,
    dlq_topic: str = DLQ_TOPIC,
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    keyring: Keyring | None = None,
    compression_type: str | None = None,
) -> PublishResult:
    """Publish a JSONL file for ``jiahe publish FILE --bootstrap B``; prints nothing.

    Blank lines are skipped; every other line is one input (rejection indices are line
    numbers). The file is validated and committed to the outbox in chunks, then one flush
    sends everything queued (earlier backlog included). A broker that cannot be reached
    leaves the events queued, reported in the result rather than raised.
    """
    started = time.perf_counter()
    with Publisher(bootstrap, outbox_path, topic, dlq_topic, connect_timeout=connect_timeout,
                   keyring=keyring, compression_type=compression_type) as publisher:
        result = publisher._publish(_file_lines(Path(path)), True, timeout, progress)
    log.info("published %s in %.2fs: %s", path, time.perf_counter() - started, result)
    return result


def _main(argv: list[str] | None = None) -> int:
    """Benchmark/debug entry point (the real CLI is ``jiahe publish``):
    ``python -m sdk.publisher FILE --bootstrap B --outbox PATH`` prints one JSON line."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--topic", default=EVENTS_TOPIC)
    parser.add_argument("--dlq-topic", default=DLQ_TOPIC)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--compression", choices=CODECS, default=None)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result = publish_file(args.file, args.bootstrap, args.outbox, topic=args.topic,
                          dlq_topic=args.dlq_topic, timeout=args.timeout,
                          compression_type=args.compression)
    elapsed = time.perf_counter() - began
    summary = {
        "received": result.received, "accepted": result.accepted,
        "duplicates": result.duplicates, "rejected": result.rejected,
        "sent": result.sent, "queued": result.queued,
        "dead_letters_sent": result.dead_letters_sent, "error": result.error,
        "reasons": len(result.reasons), "seconds": round(elapsed, 3),
        "received_per_s": round(result.received / elapsed) if elapsed else None,
    }
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0 if result.error is None else 1


if __name__ == "__main__":
    raise SystemExit(_main())
