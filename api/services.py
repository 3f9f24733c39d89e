"""What the endpoints do, on the embedded runtime, behind one lock.

The runtime's SQLite connection and chdb session are not safe for concurrent
use, and chdb allows one process per path, so this process owns the runtime
and serialises every use of it. Ingest processes **inline**: the response is
returned after the processor (wall clock) has raised warnings and committed
them to the log, and the webhook loop is woken at once (deliveries read the
log, not the warehouse).

Projection into the warehouse is **lazy**: every read first brings the
warehouse up to the processor (``EmbeddedRuntime.project``), and so does the
ticker. A client that got ``accepted`` still reads its warning at once, but a
burst of ingest batches is projected in one insert rather than one per request:
each insert into ``events`` runs the warehouse's materialized views, and per
request they cost about a fifth of the ingest rate (issue 4's benchmark).

With ``kafka`` settings (``jiahe api --bootstrap``) the same services run on the
Kafka runtime instead (``api.kafka_mode``): writes go to ``jiahe.events`` through
the publisher SDK, the worker processes them, and a mirror thread brings events
and lifecycle records back into the home, so every read below is unchanged.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson

from api.delivery import DEFAULT_MAX_ATTEMPTS, DeliveryWorker
from api.kafka_mode import KafkaMirror, KafkaSettings, KafkaWriter
from api.subscriptions import SubscriptionStore
from api.users import User, UserStore
from events.codec import Decoded, Rejected, decode_object
from events.instants import format_instant, now_micros
from events.orgunits import Level, district_of, is_within, level_of
from projections import kpis, ledgers
from streams.clock import WallClock
from streams.embedded import EmbeddedRuntime

Row = dict[str, Any]
log = logging.getLogger(__name__)
LEDGERS = {
    "warnings": ledgers.warning_ledger,
    "households": ledgers.household_ledger,
    "guardianship": ledgers.guardianship_ledger,
}
OUTSIDE = "org_unit: outside your org unit"
COMMANDS = ("type: warning commands go through "
            "/v1/alerts/{warning_id}/acknowledge|resolve|assign")


class Services:
    """The runtime, the stores, the delivery worker and the wall-clock ticker of one home.

    The ticker re-runs the processor every ``tick_s`` seconds so that deadlines
    (escalations, guardianship follow-ups) fire on a quiet system too, and so
    that events published by other writers (``jiahe publish``) are picked up.
    """

    def __init__(self, home: Path, max_attempts: int = DEFAULT_MAX_ATTEMPTS, backoff_s: float = 1.0,
                 poll_s: float = 0.5, tick_s: float | None = 30.0,
                 kafka: KafkaSettings | None = None, pack: Path | None = None) -> None:
        self.home = home
        self.runtime = EmbeddedRuntime(home, pack=pack)
        self.lock = threading.Lock()
        self.users = UserStore.at_home(home)
        self.subscriptions = SubscriptionStore.at_home(home)
        self.worker = DeliveryWorker(home, self.subscriptions, max_attempts=max_attempts,
                                     backoff_s=backoff_s, poll_s=poll_s, kafka=kafka)
        self.tick_s = tick_s
        #: the Kafka runtime (None: embedded): writer to jiahe.events, mirror of the topics.
        self.kafka = kafka
        self.writer = KafkaWriter(home, kafka) if kafka else None
        self.mirror = (KafkaMirror(kafka, self.runtime, self.lock, self.worker.wake)
                       if kafka else None)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="jiahe-clock", daemon=True)

    def start(self) -> None:
        with self.lock:
            self.runtime.warehouse  # noqa: B018 - open chdb now, not on the first request
        self.worker.start()
        if self.mirror is not None:
            self.mirror.start()
        if self.tick_s:
            self._ticker.start()

    def _tick(self) -> None:
        """Embedded: run the processor. Kafka: resend what the outbox still holds."""
        assert self.tick_s
        while not self._stop.wait(self.tick_s):
            try:
                if self.writer is not None:
                    if self.writer.queued():
                        self.writer.flush()
                    continue
                with self.lock:
                    self.runtime.process(WallClock())
                self.worker.wake()
            except Exception:  # keep ticking: the next tick retries from the checkpoint
                log.exception("processor tick")

    def close(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=30)
        if self.mirror is not None:
            self.mirror.stop()
        if self.writer is not None:
            self.writer.close()
        self.worker.stop()
        with self.lock:
            self.runtime.close()
        self.users.close()
        self.subscriptions.close()

    # -- ingest -----------------------------------------------------------------

    def _screen(self, obj: Any, user: User) -> Decoded | Rejected:
        item = decode_object(obj)
        if isinstance(item, Rejected):
            return item
        if item.event.type.startswith("warning."):
            return Rejected(COMMANDS, orjson.dumps(item.raw), item.event_id, item.household_id)
        if not is_within(item.event.org_unit, user.org_unit):
            return Rejected(OUTSIDE, orjson.dumps(item.raw), item.event_id, item.household_id)
        return item

    def ingest(self, objs: list[Any], user: User) -> list[Row]:
        """A result per event, in order; out-of-scope events are rejected, never accepted."""
        items = [self._screen(obj, user) for obj in objs]
        statuses = self._write(items, user)
        out = []
        for index, (item, status) in enumerate(zip(items, statuses, strict=True)):
            result: Row = {"index": index, "event_id": item.event_id,
                           "status": status.split(":", 1)[0]}
            if status.startswith("rejected: "):
                result["reason"] = status.removeprefix("rejected: ")
            out.append(result)
        return out

    def _write(self, items: list[Decoded | Rejected], user: User) -> list[str]:
        """The write port. Embedded: append and process inline. Kafka: publish only."""
        if self.writer is not None:
            return self.writer.write(items)
        with self.lock:
            _, statuses = self.runtime.log.publish_decoded(items, source=f"http:{user.name}")
            if any(s == "accepted" for s in statuses):
                self.runtime.process(WallClock(), project=False)  # reads project (_fresh)
        self.worker.wake()
        return statuses

    # -- reads --------------------------------------------------------------------

    def _fresh(self) -> None:
        """Bring the warehouse up to the processor before a read (call under the lock)."""
        if self.writer is None:  # on Kafka the mirror thread projects what it copies
            self.runtime.project()

    def ledger(self, name: str, user: User, as_of: int | None, district: str | None) -> list[Row]:
        with self.lock:
            self._fresh()
            rows = LEDGERS[name](self.runtime.warehouse, as_of=as_of, district=district)
        return [r for r in rows if is_within(r["org_unit"], user.org_unit)]

    def ledger_page(self, name: str, user: User, as_of: int | None, district: str | None,
                    limit: int, offset: int) -> list[Row] | None:
        """Up to ``limit`` rows cut in the warehouse, or None when scope forbids it.

        Only for readers whose unit is a district or the city: their scope is exactly
        a district filter (or none), so the SQL page holds only rows they may see and
        the warehouse's pre-aggregated page queries apply (projections.now). A street
        or community reader gets None: her rows are a subset the SQL cannot cut yet.
        """
        level = level_of(user.org_unit)
        if level not in (Level.DISTRICT, Level.CITY):
            return None
        if level is Level.DISTRICT:
            district = district or district_of(user.org_unit)
        with self.lock:
            self._fresh()
            rows = LEDGERS[name](self.runtime.warehouse, as_of=as_of, district=district,
                                 limit=limit, offset=offset)
        return [r for r in rows if is_within(r["org_unit"], user.org_unit)]

    def find_warning(self, user: User, warning_id: str) -> Row | None:
        """The warning's ledger row if it exists *and* lies in the caller's scope (one
        keyed read, ``ledgers.warning_row``: acknowledging must not read the ledger)."""
        with self.lock:
            self._fresh()
            row = ledgers.warning_row(self.runtime.warehouse, warning_id)
        if row is None or not is_within(row["org_unit"], user.org_unit):
            return None
        return row

    def act(self, user: User, row: Row, kind: str, note: str | None,
            assignee: str | None = None) -> str:
        """Append a warning.acknowledged / resolved / assigned event (processed inline when
        embedded; on Kafka the worker applies it and the mirror brings the record back)."""
        data: Row = {"warning_id": row["warning_id"], "by": user.name}
        if kind == "resolved" and note:
            data["note"] = note
        if kind == "assigned":
            data["assignee"] = assignee
        event = {
            "event_id": str(uuid.uuid4()), "type": f"warning.{kind}", "schema_version": 1,
            "occurred_at": format_instant(now_micros()), "org_unit": row["org_unit"],
            "household_id": row["household_id"], "actor": user.name, "data": data,
        }
        item = decode_object(event)
        if isinstance(item, Rejected):  # pragma: no cover - we built it ourselves
            raise ValueError(item.reason)
        self._write([item], user)
        return item.event_id

    def assignees(self) -> dict[str, str]:
        """Each warning's current assignee: its latest ``warning.assigned`` lifecycle record."""
        with self.lock:
            rows = self.runtime.log.db.execute(
                "SELECT body FROM lifecycle WHERE type = 'warning.assigned' ORDER BY seq"
            ).fetchall()
        out: dict[str, str] = {}
        for (body,) in rows:
            record = orjson.loads(body)
            out[record["warning_id"]] = record["assignee"]
        return out

    # -- KPIs ---------------------------------------------------------------------

    def kpis(self, user: User, as_of: int | None) -> Row:
        """Counts only, computed in the warehouse (``projections.kpis``), scoped by org unit."""
        with self.lock:
            self._fresh()
            return kpis.kpis(self.runtime.warehouse, user.org_unit, as_of)
