"""District surge rules (pack ``kind: surge``, :mod:`rules.surge`) on the Kafka runtime.

A surge counts a whole district, and a district's households are spread over every
partition of ``jiahe.events``: no worker sees all of them. So the rules run in one
place, the *surge desk*, fed by every worker through a one-partition topic
(``jiahe.surge``, :attr:`Topics.surge`):

* each batch a worker processes sends, before it writes any state, what its processed
  events mean to the surge rules (:class:`SurgeObservations`): per district the
  earliest ``occurred_at`` seen (a minimum: re-sending it changes nothing), and each
  event a surge rule counts, with its ``event_id`` (the desk counts an event once,
  whichever worker or re-processing after a crash sent it);
* each deadline tick a worker sends a *mark* per partition it owns: how far that
  partition's deadline clock has got — the event-time clock (``as_of``) once the
  partition is read to its end offset as first assigned, on the wall clock the
  partition's deadline watermark. A worker's marks follow its observations on the
  same topic partition, so a mark says "everything this partition processed before
  this clock value was sent";
* the worker owning partition 0 of ``jiahe.events`` keeps the desk: it reads the topic
  from the offset stored with the desk's state, and evaluates the day closes up to the
  *lowest* mark of all partitions (none before every partition has one). A close is
  thus judged once every partition has processed what it will before that instant —
  as the embedded processor judges it at the end of its log — on the same multiset of
  events, so the records are the embedded runtime's, byte for byte.

The desk's state (the tracker, the counted event ids, the marks, the topic offset) is
one value in the state table's partition 0 under a key no household id can take
(:data:`DESK_KEY`, not UTF-8), written after the records are acknowledged: a crash in
between re-evaluates the same closes and re-emits the same records (deduplicated by
their ``record_id``). A surge record names no household; it is keyed by its
``warning_id`` on ``jiahe.warnings``, so a surge's raise and resolution share a
partition and are read in order.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping

import orjson

from events.catalog import EventFacts
from events.instants import MICROS_PER_DAY
from rules.engine import Record
from rules.pack import RulePack
from rules.surge import WEEK_US, SurgeTracker
from streams.kafka import admin as kafka_admin

#: The desk's state in the household-state table: invalid UTF-8, so never a household id.
DESK_KEY = b"\xff\xfejiahe-surge-desk"
#: The table partition (= ``jiahe.events`` partition) whose owner keeps the desk.
DESK_PARTITION = 0


class SurgeObservations(SurgeTracker):
    """What one batch's processed events mean to the surge rules (fed by ``streams.step``).

    A tracker for ``observe`` only: it keeps the districts' earliest instants as the
    tracker does, and instead of counting it lists each matching event with its id.
    """

    def __init__(self, pack: RulePack) -> None:
        super().__init__(pack)
        #: (rule_id, district, occurred_at µs, event_id) of each event a rule counts
        self.items: list[tuple[str, str, int, str]] = []

    def observe(self, event: EventFacts, occurred_us: int) -> None:
        district = self._seen(event, occurred_us)
        for rule, event_type, predicate in self._match:
            if event.type == event_type and predicate(event):
                self.items.append((rule.id, district, occurred_us, event.event_id))

    def message(self) -> bytes | None:
        """The value sent to the surge topic; None when the batch processed nothing."""
        if not self.first_seen:
            return None
        return orjson.dumps({"first_seen": self.first_seen, "items": self.items})


def marks_message(marks: Mapping[int, int]) -> bytes:
    """``partition → clock value`` reached (see the module docstring)."""
    return orjson.dumps({"marks": {str(p): at for p, at in sorted(marks.items())}})


class SurgeDesk:
    """The surge tracker fed from the surge topic; pure (the worker does the I/O)."""

    def __init__(self, pack: RulePack, partitions: int, blob: bytes | None = None) -> None:
        self.partitions = partitions
        doc = orjson.loads(blob) if blob else {}
        tracker = doc.get("tracker")
        self.tracker = SurgeTracker.restore(pack, tracker.encode() if tracker else None)
        #: rule_id → event_id → occurred_at µs of the events counted (pruned with the series)
        self.counted: dict[str, dict[str, int]] = {
            rule.id: dict(doc.get("counted", {}).get(rule.id, {})) for rule in pack.surges}
        self.marks: dict[int, int] = {int(p): int(at) for p, at in doc.get("marks", {}).items()}
        #: The next offset of the surge topic to read.
        self.offset: int = int(doc.get("offset", 0))

    def apply(self, value: bytes | None, offset: int) -> None:
        """One message of the surge topic (observations or marks); skip what is not one."""
        self.offset = offset + 1
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        for district, at in (doc.get("first_seen") or {}).items():
            known = self.tracker.first_seen.get(district)
            if known is None or at < known:
                self.tracker.first_seen[district] = int(at)
        for rule_id, district, at, event_id in doc.get("items") or ():
            counted = self.counted.get(rule_id)
            if counted is None or event_id in counted:
                continue
            counted[event_id] = int(at)
            insort(self.tracker.series[rule_id].setdefault(district, []), int(at))
        for partition, at in (doc.get("marks") or {}).items():
            p = int(partition)
            self.marks[p] = max(int(at), self.marks.get(p, int(at)))

    def limit(self) -> int | None:
        """The lowest clock value all partitions have reached; None while one has none."""
        if any(p not in self.marks for p in range(self.partitions)):
            return None
        return min(self.marks[p] for p in range(self.partitions))

    def close(self) -> list[Record]:
        """Evaluate the day closes up to :meth:`limit`; the lifecycle records."""
        limit = self.limit()
        if limit is None:
            return []
        records = self.tracker.close_until(limit)
        self._prune()
        return records

    def _prune(self) -> None:
        """Forget counted ids older than any later close can count (the tracker's own
        horizon): a re-sent copy of such an event can change no surge."""
        next_close = self.tracker.next_close
        if next_close is None:
            return
        for rule in self.tracker.rules:
            horizon = (next_close - rule.window_days * MICROS_PER_DAY
                       - rule.baseline_weeks * WEEK_US)
            counted = self.counted[rule.id]
            for event_id in [e for e, at in counted.items() if at < horizon]:
                del counted[event_id]

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "tracker": self.tracker.to_bytes().decode(),
            "counted": self.counted,
            "marks": {str(p): at for p, at in sorted(self.marks.items())},
            "offset": self.offset,
        }, option=orjson.OPT_SORT_KEYS)


def ensure_surge_topic(bootstrap: str, name: str, replication: int = 1) -> str:
    """Create the surge topic if missing (one partition, kept forever: a desk whose state
    is lost rebuilds from the topic's start); "created" or "exists"."""
    with kafka_admin._admin(bootstrap) as admin:
        response = admin.create_topics(
            {name: {"num_partitions": 1, "replication_factor": replication,
                    "configs": {"retention.ms": "-1"}}},
            timeout_ms=30_000, raise_errors=False)
        outcome = kafka_admin._outcome(response["topics"][0])
        if outcome == "created":
            admin.wait_for_topics([name], timeout_ms=30_000)
    return outcome


def household_entries(items: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[bytes, bytes]]:
    """A table partition's entries without the desk's state (it is no household)."""
    return ((key, value) for key, value in items if key != DESK_KEY)


__all__ = ["DESK_KEY", "DESK_PARTITION", "SurgeDesk", "SurgeObservations", "ensure_surge_topic",
           "household_entries", "marks_message"]
