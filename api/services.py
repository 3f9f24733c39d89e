"""What the endpoints do, on the embedded runtime, behind one lock.

The runtime's SQLite connection and chdb session are not safe for concurrent
use, and chdb allows one process per path, so this process owns the runtime
and serialises every use of it. Ingest processes **inline**: the response is
returned after the processor (wall clock) has raised warnings and projected
them, so a client that gets ``accepted`` can read the warning immediately and
the webhook loop is woken at once.
"""

from __future__ import annotations

import logging
import statistics
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from api.delivery import DeliveryWorker
from api.subscriptions import LEVELS, SubscriptionStore
from api.users import User, UserStore
from events.codec import Decoded, Rejected, decode_object
from events.instants import format_instant, now_micros, parse_instant, to_datetime
from events.orgunits import is_within
from projections import ledgers
from projections.ledger_sql import _at_most
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
COMMANDS = "type: warning commands go through /v1/alerts/{warning_id}/acknowledge|resolve"


def _weekly(rows: list[Row]) -> dict[str, dict[str, int]]:
    """Warnings raised per ISO week (``2026-W47``) and district: the trend chart's data."""
    out: dict[str, Counter[str]] = {}
    for r in rows:
        year, week, _ = to_datetime(parse_instant(r["raised_at"])).isocalendar()
        out.setdefault(r["district"], Counter())[f"{year}-W{week:02d}"] += 1
    return {district: dict(sorted(c.items())) for district, c in sorted(out.items())}


class Services:
    """The runtime, the stores, the delivery worker and the wall-clock ticker of one home.

    The ticker re-runs the processor every ``tick_s`` seconds so that deadlines
    (escalations, guardianship follow-ups) fire on a quiet system too, and so
    that events published by other writers (``jiahe publish``) are picked up.
    """

    def __init__(self, home: Path, max_attempts: int = 5, backoff_s: float = 1.0,
                 poll_s: float = 0.5, tick_s: float | None = 30.0) -> None:
        self.home = home
        self.runtime = EmbeddedRuntime(home)
        self.lock = threading.Lock()
        self.users = UserStore.at_home(home)
        self.subscriptions = SubscriptionStore.at_home(home)
        self.worker = DeliveryWorker(home, self.subscriptions, max_attempts=max_attempts,
                                     backoff_s=backoff_s, poll_s=poll_s)
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="jiahe-clock", daemon=True)

    def start(self) -> None:
        with self.lock:
            self.runtime.warehouse  # noqa: B018 - open chdb now, not on the first request
        self.worker.start()
        if self.tick_s:
            self._ticker.start()

    def _tick(self) -> None:
        assert self.tick_s
        while not self._stop.wait(self.tick_s):
            try:
                with self.lock:
                    self.runtime.process(WallClock())
                self.worker.wake()
            except Exception:  # keep ticking: the next tick retries from the checkpoint
                log.exception("processor tick")

    def close(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=30)
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
        with self.lock:
            _, statuses = self.runtime.log.publish_decoded(items, source=f"http:{user.name}")
            if any(s == "accepted" for s in statuses):
                self.runtime.process(WallClock())
        self.worker.wake()
        out = []
        for index, (item, status) in enumerate(zip(items, statuses, strict=True)):
            result: Row = {"index": index, "event_id": item.event_id,
                           "status": status.split(":", 1)[0]}
            if status.startswith("rejected: "):
                result["reason"] = status.removeprefix("rejected: ")
            out.append(result)
        return out

    # -- reads --------------------------------------------------------------------

    def ledger(self, name: str, user: User, as_of: int | None, district: str | None) -> list[Row]:
        with self.lock:
            rows = LEDGERS[name](self.runtime.warehouse, as_of=as_of, district=district)
        return [r for r in rows if is_within(r["org_unit"], user.org_unit)]

    def find_warning(self, user: User, warning_id: str) -> Row | None:
        """The warning's ledger row if it exists *and* lies in the caller's scope."""
        for row in self.ledger("warnings", user, None, None):
            if row["warning_id"] == warning_id:
                return row
        return None

    def act(self, user: User, row: Row, kind: str, note: str | None) -> str:
        """Append a warning.acknowledged / warning.resolved event and process it."""
        data: Row = {"warning_id": row["warning_id"], "by": user.name}
        if kind == "resolved" and note:
            data["note"] = note
        event = {
            "event_id": str(uuid.uuid4()), "type": f"warning.{kind}", "schema_version": 1,
            "occurred_at": format_instant(now_micros()), "org_unit": row["org_unit"],
            "household_id": row["household_id"], "actor": user.name, "data": data,
        }
        item = decode_object(event)
        if isinstance(item, Rejected):  # pragma: no cover - we built it ourselves
            raise ValueError(item.reason)
        with self.lock:
            self.runtime.log.publish_decoded([item], source=f"http:{user.name}")
            self.runtime.process(WallClock())
        self.worker.wake()
        return item.event_id

    # -- KPIs ---------------------------------------------------------------------

    def kpis(self, user: User, as_of: int | None) -> Row:
        """Counts only: no household id, no org unit below the caller's scope."""
        rows = self.ledger("warnings", user, as_of, None)
        by_level = {lv: Counter[str]() for lv in LEVELS}
        for r in rows:
            by_level[r["level"]][r["status"]] += 1
        acks = [r["minutes_to_acknowledge"] for r in rows
                if r["minutes_to_acknowledge"] is not None]
        households = Counter(r["household_id"] for r in rows)
        return {
            "scope": user.org_unit,
            "as_of": format_instant(as_of) if as_of is not None else None,
            "warnings": len(rows),
            "open_by_level": {lv: by_level[lv]["open"] for lv in LEVELS},
            "unresolved_by_level": {
                lv: by_level[lv]["open"] + by_level[lv]["acknowledged"] for lv in LEVELS
            },
            "escalated_to": dict(Counter(r["highest_handling_level"] for r in rows
                                         if r["escalations"])),
            "median_minutes_to_acknowledge": statistics.median(acks) if acks else None,
            "repeat_households": sum(1 for n in households.values() if n > 1),
            "weekly_raised_by_district": _weekly(rows),
            **self._local_resolution(user, as_of),
        }

    def _local_resolution(self, user: User, as_of: int | None) -> Row:
        where = "type = 'case.resolved'" + (
            f" AND {_at_most('occurred_at', as_of)}" if as_of is not None else "")
        with self.lock:
            result = self.runtime.warehouse.query(
                f"SELECT org_unit, resolution FROM events FINAL WHERE {where}"
            ).rows
        counts = Counter(res for org, res in result if is_within(org, user.org_unit))
        total = sum(counts.values())
        return {
            "cases_resolved": total,
            "share_resolved_locally": round(counts["resolved_locally"] / total, 4)
            if total else None,
        }
