"""What the endpoints do, on either runtime, behind one lock.

The runtime's SQLite connection and chdb session are not safe for concurrent
use, and chdb allows one process per path, so this process owns the runtime
and serialises every use of it. What differs between the runtimes is only how
accepted input moves on, the :class:`IngestPath` (chosen by ``app.bootstrap_api``):

* :class:`InlineProcessing` (embedded): ingest processes **inline**: the response
  is returned after the processor (wall clock) has raised warnings and committed
  them to the log, and the webhook loop is woken at once (deliveries read the log,
  not the warehouse). Projection into the warehouse is **lazy**: every read first
  brings the warehouse up to the processor (``EmbeddedRuntime.project``), and so
  does the ticker. A client that got ``accepted`` still reads its warning at once,
  but a burst of ingest batches is projected in one insert rather than one per
  request: each insert into ``events`` runs the warehouse's materialized views,
  and per request they cost about a fifth of the ingest rate (``python -m bench.api``).
* ``app.kafka_mode.KafkaPublishing`` (Kafka): writes go to ``jiahe.events``
  through the publisher SDK, the worker processes them, and a mirror thread brings
  events and lifecycle records back into the home, so every read below is unchanged.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from access.break_glass import BreakGlass
from access.users import User, UserStore
from alerts.delivery import DeliveryWorker
from alerts.subscriptions import SubscriptionStore
from events.codec import Decoded, Rejected, decode_object
from events.errors import JiaheError
from events.freshness import future_refusal
from events.instants import MICROS_PER_DAY, format_instant, now_micros, parse_instant
from events.orgunits import Level, district_of, is_within, level_of
from privacy.crypto import Keyring
from projections import kpis, ledgers, timeliness
from projections.ledger_common import GUARDIANSHIP_FOLLOWUP_MICROS
from projections.now import latest_instant
from rules.ownership import REFUSALS, Admission, Standing, covers
from streams.clock import WallClock
from streams.embedded.runtime import EmbeddedRuntime
from streams.kafka.settings import KafkaSettings
from streams.ports import OwnerDirectory

Row = dict[str, Any]
_LEVEL_ORDER = ("red", "orange", "yellow")
log = logging.getLogger(__name__)
LEDGERS = {
    "warnings": ledgers.warning_ledger,
    "households": ledgers.household_ledger,
    "guardianship": ledgers.guardianship_ledger,
    "coverage": ledgers.coverage_ledger,
    "referrals": ledgers.referral_ledger,
}
#: The column that places a ledger's row in the org-unit tree (scoping); org_unit
#: unless named here (coverage rows are communities: the owners of its households).
LEDGER_UNIT = {"coverage": "community"}
#: Rejection reasons that mean "not yours to write": the ingest face answers them 403.
FORBIDDEN = REFUSALS
COMMANDS = ("type: warning commands go through "
            "/v1/alerts/{warning_id}/acknowledge|resolve|assign|assess|reopen")
#: Event types only the faces that check their role may append (not ``POST /v1/events``):
#: a referral's answer is a partner's, consent and referrals a chair's.
COMMAND_ROUTES = {
    "referral.": "type: referrals go through /v1/referrals (send) and "
                 "/v1/referrals/{referral_id}/accept|decline|close",
    "consent.": "type: consent goes through /v1/households/{household_id}/consent",
}
#: the work list shows registered households whose next visit falls due within this.
WORKLIST_HORIZON_DAYS = 7
#: the most rows of each work-list section (a cadre's list is a day's work, not a ledger).
WORKLIST_LIMIT = 200


class OwnershipRefused(JiaheError, PermissionError):
    """A write about a household the caller's scope does not cover (answered 403)."""


class CommandInvalid(JiaheError, ValueError):
    """A command the catalog rejects as built from a request's body (answered 422)."""


class IngestPath(Protocol):
    """Where screened input goes, and what keeps the home's log and warehouse current."""

    #: The Kafka runtime this path publishes to; None when input is processed here.
    kafka: KafkaSettings | None
    #: Each household's owner as this path knows it, for the ingest guard; called
    #: without the services lock (it takes the lock itself where it needs it).
    owners: OwnerDirectory
    @property
    def keyring(self) -> Keyring:
        """Opens the personal fields of the events this path appended (a partner's view
        of a referral's note); used under the services lock."""
        ...

    def start(self) -> None:
        """Start whatever runs beside the requests."""

    def accept(self, items: Sequence[Decoded | Rejected], source: str) -> list[str]:
        """A status per item, worded as ``SqliteLog.publish_decoded`` words them."""
        ...

    def tick(self) -> None:
        """The ticker's periodic work (deadlines, other writers, a queued outbox)."""

    def fresh(self) -> None:
        """Bring the warehouse up to date before a read (called under the lock)."""

    def close(self) -> None:
        """Stop what ``start`` started and release what the path holds."""


class LockedOwners:
    """An ``OwnerDirectory`` read under a lock (the log's connection is shared)."""

    def __init__(self, directory: OwnerDirectory, lock: threading.Lock) -> None:
        self.directory = directory
        self.lock = lock

    def owner_of(self, household_id: str) -> str | None:
        with self.lock:
            return self.directory.owner_of(household_id)

    def standing_of(self, household_id: str) -> Standing:
        with self.lock:
            return self.directory.standing_of(household_id)


class InlineProcessing:
    """The embedded runtime: append to the log and process at once; project on read."""

    kafka: KafkaSettings | None = None

    def __init__(self, runtime: EmbeddedRuntime, lock: threading.Lock,
                 on_new: Callable[[], None]) -> None:
        self.runtime = runtime
        self.lock = lock
        #: called after the processor ran (the delivery loop is woken).
        self.on_new = on_new
        #: kept by the log in the transaction of each append, in log order
        self.owners: OwnerDirectory = LockedOwners(runtime.log, lock)
        self.keyring: Keyring = runtime.log.keyring

    def start(self) -> None:
        pass

    def accept(self, items: Sequence[Decoded | Rejected], source: str) -> list[str]:
        with self.lock:
            _, statuses = self.runtime.log.publish_decoded(items, source=source)
            if any(s == "accepted" for s in statuses):
                self.runtime.process(WallClock(), project=False)  # reads project (fresh)
        self.on_new()
        return statuses

    def tick(self) -> None:
        """Run the processor: deadlines fire, events of other writers are picked up."""
        with self.lock:
            self.runtime.process(WallClock())
        self.on_new()

    def fresh(self) -> None:
        self.runtime.project()

    def close(self) -> None:
        pass


class Services:
    """The runtime, the stores, the delivery worker and the wall-clock ticker of one home.

    Built by ``app.bootstrap_api.bootstrap_api``. The ticker calls the ingest path's
    ``tick`` every ``tick_s`` seconds so that deadlines (escalations, guardianship
    follow-ups) fire on a quiet system too, and so that events published by other
    writers (``jiahe publish``) are picked up.
    """

    def __init__(self, runtime: EmbeddedRuntime, ingest_path: IngestPath, lock: threading.Lock,
                 users: UserStore, subscriptions: SubscriptionStore, worker: DeliveryWorker,
                 tick_s: float | None = 30.0) -> None:
        self.home = runtime.home
        self.runtime = runtime
        self.ingest_path = ingest_path
        #: shared with the ingest path: every use of the runtime holds it.
        self.lock = lock
        self.users = users
        #: break-glass grants (access.break_glass): reads of one household outside scope
        self.grants = BreakGlass.of(users)
        self.subscriptions = subscriptions
        self.worker = worker
        self.tick_s = tick_s
        #: the Kafka runtime (None: embedded), for the faces that answer differently on it.
        self.kafka = ingest_path.kafka
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="jiahe-clock", daemon=True)
        #: one write at a time from the guard's reading of the owners to the append, so
        #: a request is judged against the owners every earlier request left
        self._ingest_lock = threading.Lock()

    def start(self) -> None:
        with self.lock:
            self.runtime.warehouse  # noqa: B018 - open chdb now, not on the first request
        self.worker.start()
        self.ingest_path.start()
        if self.tick_s:
            self._ticker.start()

    def _tick(self) -> None:
        assert self.tick_s
        while not self._stop.wait(self.tick_s):
            try:
                self.ingest_path.tick()
            except Exception:  # keep ticking: the next tick retries from the checkpoint
                log.exception("processor tick")

    def close(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=30)
        self.ingest_path.close()
        self.worker.stop()
        with self.lock:
            self.runtime.close()
        self.users.close()
        self.subscriptions.close()

    # -- ingest -----------------------------------------------------------------

    def _screen(self, obj: Any, user: User, received_us: int) -> Decoded | Rejected:
        item = decode_object(obj)
        if isinstance(item, Rejected):
            return item
        future = future_refusal(item.occurred_us, received_us)  # live input: not from ahead
        if future is not None:
            return Rejected(future, orjson.dumps(item.raw), item.event_id, item.household_id)
        if item.event.type.startswith("warning."):
            return Rejected(COMMANDS, orjson.dumps(item.raw), item.event_id, item.household_id)
        for prefix, reason in COMMAND_ROUTES.items():
            if item.event.type.startswith(prefix):
                return Rejected(reason, orjson.dumps(item.raw), item.event_id,
                                item.household_id)
        return item  # scope is the guard's to judge, by the household's owner (_guard)

    def _guard(self, items: Sequence[Decoded | Rejected], user: User
               ) -> list[Decoded | Rejected]:
        """DESIGN "Ingest": only a caller whose scope covers a household's current owner
        (for a household never seen: the event's ``org_unit``) may write about it.

        The batch is judged in order (``rules.ownership.Admission``); a refused event
        becomes a rejection with its reason (``REFUSALS``), so it is kept as a dead letter.
        """
        admission = Admission(user.org_unit, self.ingest_path.owners.standing_of)
        out: list[Decoded | Rejected] = []
        for item in items:
            if isinstance(item, Decoded):
                event = item.event
                reason = admission.refusal(item.household_id, event.type, event.org_unit,
                                           event.data)
                if reason is not None:
                    item = Rejected(reason, orjson.dumps(item.raw), item.event_id,
                                    item.household_id)
            out.append(item)
        return out

    def ingest(self, objs: list[Any], user: User) -> list[Row]:
        """A result per event, in order; events outside the caller's scope are rejected
        with a reason in ``REFUSALS`` (the face answers 403), never accepted."""
        received = now_micros()
        items: list[Decoded | Rejected] = [self._screen(obj, user, received) for obj in objs]
        with self._ingest_lock:
            items = self._guard(items, user)
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
        """The write port: the ingest path takes it from here."""
        return self.ingest_path.accept(items, source=f"http:{user.name}")

    # -- reads --------------------------------------------------------------------

    def _fresh(self) -> None:
        """Bring the warehouse up to date before a read (call under the lock)."""
        self.ingest_path.fresh()

    def _now(self, as_of: int | None) -> int | None:
        """The ledgers' "now" when the caller names none (call under the lock): the
        latest instant in the data, but never past the wall clock, so that an event
        dated ahead (replayed, or within live ingest's tolerance) cannot move every
        reader's windows. None keeps the ledgers' own default (the fast path)."""
        if as_of is not None:
            return as_of
        wall = now_micros()
        latest = latest_instant(self.runtime.warehouse)
        return wall if latest is not None and latest > wall else None

    def ledger(self, name: str, user: User, as_of: int | None, district: str | None) -> list[Row]:
        with self.lock:
            self._fresh()
            rows = LEDGERS[name](self.runtime.warehouse, as_of=self._now(as_of),
                                 district=district)
        unit = LEDGER_UNIT.get(name, "org_unit")
        return [r for r in rows if is_within(r[unit], user.org_unit)]

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
            rows = LEDGERS[name](self.runtime.warehouse, as_of=self._now(as_of),
                                 district=district, limit=limit, offset=offset)
        unit = LEDGER_UNIT.get(name, "org_unit")
        return [r for r in rows if is_within(r[unit], user.org_unit)]

    def find_warning(self, user: User, warning_id: str) -> Row | None:
        """The warning's ledger row if it exists *and* lies in the caller's scope (one
        keyed read, ``ledgers.warning_row``: acknowledging must not read the ledger)."""
        with self.lock:
            self._fresh()
            row = ledgers.warning_row(self.runtime.warehouse, warning_id)
        if row is None or not is_within(row["org_unit"], user.org_unit):
            return None
        return row

    # -- households: who may read them, commands about them -----------------------

    def owner_of(self, household_id: str) -> str | None:
        """The household's current owner as the ingest guard sees it (None: never seen)."""
        return self.ingest_path.owners.owner_of(household_id)

    def may_read_household(self, user: User, household_id: str, action: str) -> bool:
        """Whether ``user`` may read (and command) anything about the household: its
        current owner lies in the caller's scope (DESIGN "Ingest").

        Every household-keyed read and command of the faces asks here, with ``action``
        naming the endpoint (``alerts.history``, ``referrals.send``, ``consent.read`` …),
        so that one place decides, and one place may widen it (a time-limited grant
        outside the scope, audited with its reason).

        Outside the scope, a live break-glass grant of the caller on the household
        opens a *read* (``access.break_glass.is_read``), audited with the grant's reason.
        """
        owner = self.owner_of(household_id)
        if owner is None:
            return False
        if covers(user.org_unit, owner):
            return True
        return self.grants.read(self.users, user, household_id, action, now_micros()) is not None

    def visible(self, user: User, rows: list[Row], action: str, unit: str = "org_unit"
                ) -> list[Row]:
        """The rows of a list read that ``user`` may see: ``row[unit]`` within her scope
        (the one place a list read is scoped by household, beside ``may_read_household``);
        outside it, rows of a household the caller holds a live break-glass grant on
        (each such household's read audited once with the grant's reason)."""
        now = now_micros()
        grants = self.grants.live_households(user, now)
        if not grants:
            return [r for r in rows if is_within(r[unit], user.org_unit)]
        out: list[Row] = []
        opened: dict[str, bool] = {}
        for r in rows:
            household = r.get("household_id")
            if is_within(r[unit], user.org_unit):
                out.append(r)
            elif household in grants:
                if household not in opened:
                    opened[household] = self.grants.read(
                        self.users, user, household, action, now, grants[household]) is not None
                if opened[household]:
                    out.append(r)
        return out

    def warning_in_reach(self, user: User, warning_id: str, action: str) -> Row | None:
        """The warning's row when the caller may see it: in her scope as the inbox shows
        it (``find_warning``), or its household is one she may read."""
        with self.lock:
            self._fresh()
            row = ledgers.warning_row(self.runtime.warehouse, warning_id)
        if row is None:
            return None
        if is_within(row["org_unit"], user.org_unit):
            return row
        household = row["household_id"]
        if household is not None and self.may_read_household(user, household, action):
            return row
        return None

    def read(self, query: Callable[..., Any], *args: Any) -> Any:
        """``query(warehouse, *args)`` on a warehouse brought up to date first."""
        with self.lock:
            self._fresh()
            return query(self.runtime.warehouse, *args)

    def command(self, user: User, event_type: str, household_id: str, data: Row) -> str:
        """Append one command event about a household; returns its event_id.

        Built here (a new uuid4, occurred_at now, ``org_unit`` the household's current
        owner, ``actor`` the caller) and passed through the same ingest guard and path
        as every event (processed inline when embedded; published on Kafka). Raises
        :class:`OwnershipRefused` when the guard refuses (kept as a dead letter too), and
        :class:`CommandInvalid` for a body the catalog rejects (the faces validate first).
        """
        owner = self.owner_of(household_id)
        if owner is None:
            raise OwnershipRefused("household_id: no such household")
        event = {
            "event_id": str(uuid.uuid4()), "type": event_type, "schema_version": 1,
            "occurred_at": format_instant(now_micros()), "org_unit": owner,
            "household_id": household_id, "actor": user.name, "data": data,
        }
        return self._append_command(user, event)

    def _append_command(self, user: User, event: Row) -> str:
        item = decode_object(event)
        if isinstance(item, Rejected):
            raise CommandInvalid(item.reason)
        with self._ingest_lock:
            [checked] = self._guard([item], user)
            self._write([checked], user)  # a refusal is kept as a dead letter too
        if isinstance(checked, Rejected):
            raise OwnershipRefused(checked.reason)
        return item.event_id

    def events_of(self, household_ids: Sequence[str], event_type: str) -> list[Row]:
        """The households' events of one type in log order, personal fields opened
        (``[erased]`` after erasure, ``[unreadable]`` when tampered): for the few reads
        that show free text to the one reader entitled to it.

        One pass over the log per 500 households (the log has no index by household:
        appends stay cheap, and this read is a partner's page of referrals)."""
        wanted = sorted(set(household_ids))
        needle = orjson.dumps(event_type)
        out: list[Row] = []
        with self._ingest_lock, self.lock:  # on Kafka the keyring is the writer's
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.runtime.log.db.execute(
                    f"SELECT body FROM events WHERE household_id IN ({marks}) "
                    "AND instr(body, ?) > 0 ORDER BY position", (*chunk, needle)).fetchall()
                for (body,) in rows:
                    event = orjson.loads(body)
                    if event.get("type") == event_type:
                        out.append(self.ingest_path.keyring.open_event(event)[0])
        return out

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
        return self._append_command(user, event)

    def assignees(self, warning_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Each warning's current assignee: its latest ``warning.assigned`` lifecycle record
        (of ``warning_ids`` only, when given: one indexed lookup per warning of a page)."""
        with self.lock:
            if warning_ids is None:
                rows = self.runtime.log.db.execute(
                    "SELECT body FROM lifecycle WHERE type = 'warning.assigned' ORDER BY seq"
                ).fetchall()
            else:
                rows = [row for wid in dict.fromkeys(warning_ids)
                        for row in self.runtime.log.db.execute(
                            "SELECT body FROM lifecycle WHERE warning_id = ? AND "
                            "type = 'warning.assigned' ORDER BY seq", (wid,)).fetchall()]
        out: dict[str, str] = {}
        for (body,) in rows:
            record = orjson.loads(body)
            out[record["warning_id"]] = record["assignee"]
        return out

    # -- the cadres' work list ----------------------------------------------------------

    def worklist(self, user: User, limit: int = WORKLIST_LIMIT) -> Row:
        """What a field worker should do next in her scope: visits due, warnings assigned
        to her, guardianship gaps nobody has followed up. Ids, codes and instants only:
        no free text (notes stay sealed in the log), so the list may rest on a device.

        "Now" is the wall clock, not the latest event: the list is about today's work.
        Each section is sorted most urgent first and cut at ``limit``; ``total`` says how
        many there were.
        """
        now = now_micros()
        horizon = now + WORKLIST_HORIZON_DAYS * MICROS_PER_DAY
        district = None if level_of(user.org_unit) is Level.CITY else district_of(user.org_unit)
        mine = sorted(w for w, name in self.assignees().items() if name == user.name)
        with self.lock:
            self._fresh()
            warehouse = self.runtime.warehouse
            households = ledgers.household_ledger(warehouse, as_of=now, district=district)
            gaps = ledgers.guardianship_ledger(warehouse, as_of=now, district=district)
            assigned = [ledgers.warning_row(warehouse, w) for w in mine]
        visits = sorted(
            ({"household_id": r["household_id"], "org_unit": r["org_unit"],
              "district": r["district"], "flags": list(r.get("flags") or []),
              "key_household": "key_household" in (r.get("flags") or ()),
              "next_visit_due": r["next_visit_due"],
              "visit_overdue": parse_instant(r["next_visit_due"]) < now,
              "last_visit_at": r["last_visit_at"], "open_warnings": r["open_warnings"],
              "highest_open_level": r["highest_open_level"]}
             for r in households
             if r.get("registered") and r.get("next_visit_due")
             and is_within(r["org_unit"], user.org_unit)
             and parse_instant(r["next_visit_due"]) <= horizon),
            key=lambda v: (not v["key_household"], parse_instant(v["next_visit_due"]),
                           v["household_id"]))
        warnings = sorted(
            ({k: w[k] for k in ("warning_id", "rule_id", "level", "household_id", "org_unit",
                                "district", "status", "raised_at", "acknowledged_at",
                                "handling_level", "handling_org_unit")}
             for w in assigned
             if w is not None and w["status"] != "resolved"
             and is_within(w["org_unit"], user.org_unit)),
            key=lambda w: (_LEVEL_ORDER.index(w["level"]), parse_instant(w["raised_at"]),
                           w["warning_id"]))
        followups = []
        for g in gaps:
            gap_us = parse_instant(g["gap_recorded_at"])
            followed = g["last_followup_at"] and parse_instant(g["last_followup_at"]) >= gap_us
            if g["restored_at"] or followed or not is_within(g["org_unit"], user.org_unit):
                continue
            due = gap_us + GUARDIANSHIP_FOLLOWUP_MICROS
            followups.append({"household_id": g["household_id"], "child_ref": g["child_ref"],
                              "org_unit": g["org_unit"], "district": g["district"],
                              "gap_recorded_at": g["gap_recorded_at"],
                              "followup_due": format_instant(due), "overdue": due <= now})
        followups.sort(key=lambda g: (parse_instant(g["followup_due"]), g["household_id"],
                                      g["child_ref"]))
        return {
            "user": {"name": user.name, "role": user.role, "org_unit": user.org_unit},
            "as_of": format_instant(now), "horizon_days": WORKLIST_HORIZON_DAYS,
            "limit": limit,
            "visits": {"total": len(visits), "rows": visits[:limit]},
            "warnings": {"total": len(warnings), "rows": warnings[:limit]},
            "guardianship": {"total": len(followups), "rows": followups[:limit]},
        }

    # -- KPIs ---------------------------------------------------------------------

    def kpis(self, user: User, as_of: int | None) -> Row:
        """Counts only, computed in the warehouse (``projections.kpis``), scoped by org unit."""
        with self.lock:
            self._fresh()
            as_of = self._now(as_of)
            return {**kpis.kpis(self.runtime.warehouse, user.org_unit, as_of),
                    "timeliness": timeliness.timeliness(self.runtime.warehouse, as_of, None,
                                                        scope_org_unit=user.org_unit)}
